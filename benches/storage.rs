//! Storage benchmark: Skyvault's backup storage against `restic` on the same generated corpus,
//! in the same run on the same machine. Rows: first backup, unchanged re-run, 1 %-changed run,
//! restore, repository size, peak memory.
//!
//! The corpus is generated from a seed: per user a mailbox of MIME messages (compressible text,
//! one in six with an attachment drawn from a company-wide pool, so the same attachment sits in many
//! mailboxes) and a OneDrive (copies of shared documents, unique text documents, unique binaries).
//! It is written to disk once; restic backs up the folder, Skyvault reads the same files as items.
//!
//! `SKYVAULT_BENCH_CORPUS_MB` sets the corpus size (default 1024), `SKYVAULT_BENCH_DIR` the work
//! folder (default a temporary one), `SKYVAULT_BENCH_SEED` the seed, `SKYVAULT_BENCH_ARCHIVES_AT_ONCE`
//! how many archives Skyvault backs up at the same time (default 2, as a worker would). Needs `restic` and
//! `/usr/bin/time` (Debian packages `restic` and `time`). Run: `cargo bench --bench storage`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::{StreamExt, stream};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skyvault::clock::ManualClock;
use skyvault::crypto::MasterKey;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::storage::{
    BackupRequest, BackupStorage, ItemContent, ItemKind, ItemMetadata, SourceItem, StorageLocation,
    SystemScope, Workload, catalog, ingest, read,
};

const RESTIC_PASSWORD: &str = "skyvault-bench";
const WORDS: [&str; 24] = [
    "the", "budget", "meeting", "report", "quarter", "customer", "review", "plan", "team",
    "project", "deadline", "invoice", "contract", "please", "thanks", "regards", "update",
    "schedule", "sales", "forecast", "draft", "attached", "agenda", "minutes",
];

fn main() -> Result<()> {
    skyvault::install_crypto_provider();
    let corpus_mb: u64 = env_or("SKYVAULT_BENCH_CORPUS_MB", 1024);
    let seed: u64 = env_or("SKYVAULT_BENCH_SEED", 42);
    let temp = tempfile::tempdir()?;
    let work = std::env::var("SKYVAULT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or(temp.path().to_path_buf());
    std::fs::create_dir_all(&work)?;
    let corpus = work.join("corpus");
    let _ = std::fs::remove_dir_all(&corpus);
    let _ = std::fs::remove_dir_all(work.join("restic-repo"));
    let _ = std::fs::remove_dir_all(work.join("skyvault-storage"));

    eprintln!(
        "generating a {corpus_mb} MB corpus (seed {seed}) in {}",
        corpus.display()
    );
    let users = generate_corpus(&corpus, corpus_mb << 20, seed)?;
    let corpus_bytes = folder_size(&corpus);
    let corpus_files = count_files(&corpus);
    eprintln!(
        "corpus: {} files, {} bytes, {users} users",
        corpus_files, corpus_bytes
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();

    // ---- restic ----
    let restic_repo = work.join("restic-repo");
    run_restic(&restic_repo, &["init"])?;
    let restic_backup = || {
        run_restic(
            &restic_repo,
            &[
                "backup",
                "--no-cache",
                "--host",
                "bench",
                corpus.to_str().unwrap(),
            ],
        )
    };
    let first = restic_backup()?;
    let unchanged = restic_backup()?;

    // ---- Skyvault: first and unchanged ----
    let sky = runtime.block_on(SkyvaultBench::new(&work, users))?;
    let sky_first = runtime.block_on(sky.back_up_all(&corpus, 1))?;
    let sky_unchanged = runtime.block_on(sky.back_up_all(&corpus, 1))?;

    // ---- 1 % changed, the same files for both ----
    let changed = change_one_percent(&corpus, seed)?;
    eprintln!("changed {} files", changed.len());
    let restic_changed = restic_backup()?;
    let sky_changed = runtime.block_on(sky.back_up_all(&corpus, 2))?;

    // ---- restore ----
    let restic_target = work.join("restic-restore");
    let _ = std::fs::remove_dir_all(&restic_target);
    let restic_restore = run_restic(
        &restic_repo,
        &[
            "restore",
            "latest",
            "--no-cache",
            "--target",
            restic_target.to_str().unwrap(),
        ],
    )?;
    let sky_target = work.join("skyvault-restore");
    let _ = std::fs::remove_dir_all(&sky_target);
    let sky_restore = runtime.block_on(sky.restore_all(&sky_target))?;
    if count_files(&sky_target) != corpus_files {
        bail!(
            "Skyvault restored {} files of {corpus_files}",
            count_files(&sky_target)
        );
    }

    let restic_size = folder_size(&restic_repo);
    let sky_size = folder_size(&sky.repo_root);
    rows.push(Row::time("first backup", sky_first, first));
    rows.push(Row::time("unchanged re-run", sky_unchanged, unchanged));
    rows.push(Row::time("1 % changed run", sky_changed, restic_changed));
    rows.push(Row::time("restore", sky_restore, restic_restore));
    let sky_peak = [sky_first, sky_unchanged, sky_changed, sky_restore]
        .iter()
        .map(|m| m.peak_kib)
        .max()
        .unwrap_or(0);
    let restic_peak = [first, unchanged, restic_changed, restic_restore]
        .iter()
        .map(|m| m.peak_kib)
        .max()
        .unwrap_or(0);

    println!(
        "\nStorage benchmark: corpus {corpus_bytes} bytes in {corpus_files} files ({users} users, seed {seed})\n"
    );
    println!("| row | Skyvault | restic | Skyvault / restic |");
    println!("|---|---|---|---|");
    for row in &rows {
        println!("{row}");
    }
    println!(
        "| repository size | {} | {} | {:.2} |",
        mib(sky_size),
        mib(restic_size),
        sky_size as f64 / restic_size.max(1) as f64
    );
    println!(
        "| peak memory | {} | {} | {:.2} |",
        mib(sky_peak * 1024),
        mib(restic_peak * 1024),
        sky_peak as f64 / restic_peak.max(1) as f64
    );
    println!("\nper-phase peak memory (MiB), Skyvault / restic:");
    for (name, s, r) in [
        ("first", sky_first, first),
        ("unchanged", sky_unchanged, unchanged),
        ("1 % changed", sky_changed, restic_changed),
        ("restore", sky_restore, restic_restore),
    ] {
        println!(
            "  {name}: {:.0} / {:.0}",
            s.peak_kib as f64 / 1024.0,
            r.peak_kib as f64 / 1024.0
        );
    }
    Ok(())
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

#[derive(Clone, Copy, Debug)]
struct Measure {
    seconds: f64,
    peak_kib: u64,
}

struct Row {
    name: &'static str,
    skyvault: Measure,
    restic: Measure,
}

impl Row {
    fn time(name: &'static str, skyvault: Measure, restic: Measure) -> Self {
        Self {
            name,
            skyvault,
            restic,
        }
    }
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "| {} | {:.2} s | {:.2} s | {:.2} |",
            self.name,
            self.skyvault.seconds,
            self.restic.seconds,
            self.skyvault.seconds / self.restic.seconds.max(0.001)
        )
    }
}

/// Runs restic under `/usr/bin/time` for its wall time and peak resident memory.
fn run_restic(repo: &Path, args: &[&str]) -> Result<Measure> {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "BENCH %e %M", "restic", "-r"])
        .arg(repo)
        .arg("--quiet")
        .args(args)
        .env("RESTIC_PASSWORD", RESTIC_PASSWORD)
        .output()
        .context("running restic under /usr/bin/time (Debian packages restic and time)")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("restic {args:?} failed: {stderr}");
    }
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("BENCH "))
        .context("no time output")?;
    let mut parts = line.split_whitespace().skip(1);
    let seconds: f64 = parts.next().context("seconds")?.parse()?;
    let peak_kib: u64 = parts.next().context("memory")?.parse()?;
    eprintln!("restic {}: {seconds:.2} s, {peak_kib} KiB", args[0]);
    Ok(Measure { seconds, peak_kib })
}

/// Resets this process's peak-RSS counter, so each phase's peak is its own.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

struct SkyvaultBench {
    storage: BackupStorage,
    clock: ManualClock,
    repo_root: PathBuf,
    customer: CustomerId,
    org: OrgId,
    users: usize,
    items: Vec<ItemId>,
    _db: tempfile::TempDir,
}

impl SkyvaultBench {
    async fn new(work: &Path, users: usize) -> Result<Self> {
        let db_dir = tempfile::tempdir()?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            db_dir.path().join("bench.sqlite").display()
        );
        let db = skyvault::db::connect_and_migrate(&url).await?;
        let repo_root = work.join("skyvault-storage");
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).single().unwrap());
        let master_key = MasterKey::random();
        let customer = CustomerId::new();
        // Created untimed, as `restic init` is: the timed first backup then opens the existing
        // repository (one key derivation), as `restic backup` does.
        BackupStorage::new(
            db.clone(),
            StorageLocation::Folder(repo_root.clone()),
            master_key.clone(),
            Arc::new(clock.clone()),
        )
        .repository(customer)
        .await?;
        let storage = BackupStorage::new(
            db,
            StorageLocation::Folder(repo_root.clone()),
            master_key,
            Arc::new(clock.clone()),
        );
        Ok(Self {
            storage,
            clock,
            repo_root,
            customer,
            org: OrgId::new(),
            users,
            items: (0..users).map(|_| ItemId::new()).collect(),
            _db: db_dir,
        })
    }

    fn requests(&self) -> Vec<(BackupRequest, &'static str)> {
        let mut requests = Vec::new();
        for (user, item) in self.items.iter().enumerate().take(self.users) {
            for (workload, folder) in [
                (Workload::Mailbox, "mailbox"),
                (Workload::OneDrive, "drive"),
            ] {
                requests.push((
                    BackupRequest {
                        customer: self.customer,
                        org: self.org,
                        item: *item,
                        workload,
                        display_name: format!("user{user:03}"),
                        encrypted_repository: None,
                    },
                    folder,
                ));
            }
        }
        requests
    }

    /// Backs up every archive, a few at a time, reading items from the corpus files. `version`
    /// stands for the change key the source would report (files changed since get a new one).
    async fn back_up_all(&self, corpus: &Path, version: u32) -> Result<Measure> {
        self.clock.advance(Duration::days(1));
        reset_peak_memory();
        let started = Instant::now();
        let requests = self.requests();
        let results: Vec<Result<()>> = stream::iter(requests)
            .map(|(request, folder)| {
                let root = corpus.join(&request.display_name).join(folder);
                async move {
                    let items = source_items(&root, version)?;
                    ingest::back_up_archive(&self.storage, &request, stream::iter(items)).await?;
                    Ok(())
                }
            })
            .buffer_unordered(
                usize::try_from(env_or("SKYVAULT_BENCH_ARCHIVES_AT_ONCE", 2)).unwrap_or(2),
            )
            .collect()
            .await;
        for result in results {
            result?;
        }
        let measure = Measure {
            seconds: started.elapsed().as_secs_f64(),
            peak_kib: peak_memory_kib(),
        };
        eprintln!(
            "skyvault backup: {:.2} s, {} KiB",
            measure.seconds, measure.peak_kib
        );
        Ok(measure)
    }

    /// Restores the newest point of every archive into `target`.
    async fn restore_all(&self, target: &Path) -> Result<Measure> {
        reset_peak_memory();
        let started = Instant::now();
        let scope = SystemScope::worker(self.customer, "benchmark");
        let archives = catalog::list_archives(self.storage.db(), &scope).await?;
        for archive in archives {
            let points =
                catalog::list_recovery_points(self.storage.db(), &scope, archive.id).await?;
            let point = points.last().context("archive without a point")?;
            let folder = match archive.workload {
                Workload::Mailbox => "mailbox",
                _ => "drive",
            };
            let into = target.join(&archive.display_name).join(folder);
            read::restore_to_folder(&self.storage, &scope, point.id, "", &into).await?;
        }
        let measure = Measure {
            seconds: started.elapsed().as_secs_f64(),
            peak_kib: peak_memory_kib(),
        };
        eprintln!(
            "skyvault restore: {:.2} s, {} KiB",
            measure.seconds, measure.peak_kib
        );
        Ok(measure)
    }
}

/// The files under `root` as backup items; files modified after the corpus was generated carry
/// the newer change key, as Graph would report them.
fn source_items(root: &Path, version: u32) -> Result<Vec<SourceItem>> {
    let mut files = Vec::new();
    walk(root, &mut files);
    let base = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).single().unwrap();
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(root)?.to_string_lossy().to_string();
            let metadata = std::fs::metadata(&path)?;
            let changed = std::fs::read_to_string(path.with_extension("changed")).is_ok();
            let change = if changed { version } else { 1 };
            let modified: DateTime<Utc> = base + Duration::hours(i64::from(change));
            let kind = if relative.ends_with(".eml") {
                ItemKind::Message
            } else {
                ItemKind::File
            };
            let open_path = path.clone();
            Ok(SourceItem {
                path: relative.clone(),
                metadata: ItemMetadata {
                    kind: Some(kind),
                    graph_id: Some(relative),
                    change_key: Some(format!("v{change}")),
                    last_modified: Some(modified),
                    source_size: Some(metadata.len()),
                    ..ItemMetadata::default()
                },
                content: ItemContent::from_fn(move || async move {
                    tokio::fs::File::open(open_path).await
                }),
            })
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_none_or(|e| e != "changed") {
            out.push(path);
        }
    }
}

fn count_files(dir: &Path) -> usize {
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.len()
}

fn folder_size(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        total += if path.is_dir() {
            folder_size(&path)
        } else {
            entry.metadata().map(|m| m.len()).unwrap_or(0)
        };
    }
    total
}

// ---- corpus ---------------------------------------------------------------------------------

fn text(rng: &mut ChaCha8Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        out.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        out.push(if rng.random_range(0..12) == 0 {
            '\n'
        } else {
            ' '
        });
    }
    out
}

fn random_bytes(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    bytes
}

/// Writes the corpus; returns the number of users. 60 % of the bytes are mail (one message in six has an attachment), 40 % files.
fn generate_corpus(root: &Path, total: u64, seed: u64) -> Result<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let users = usize::try_from((total >> 20) / 32)
        .unwrap_or(1)
        .clamp(4, 64);
    // A company's shared attachments (PDFs, images: incompressible) and documents (text).
    let attachments: Vec<Vec<u8>> = (0..24)
        .map(|_| {
            let len = rng.random_range(60_000..1_500_000);
            random_bytes(&mut rng, len)
        })
        .collect();
    let documents: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            let len = rng.random_range(30_000..800_000);
            text(&mut rng, len).into_bytes()
        })
        .collect();
    let per_user = total / users as u64;
    for user in 0..users {
        let home = root.join(format!("user{user:03}"));
        let mut written = 0u64;
        let mut n = 0u32;
        while written < per_user * 6 / 10 {
            let folder = ["Inbox", "Sent Items", "Archive"][rng.random_range(0..3)];
            let body_len = rng.random_range(1_000..8_000);
            let mut message = format!(
                "From: user{}@example.com\r\nTo: user{user:03}@example.com\r\nSubject: {}\r\n\
                 Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{user}.{n}@example.com>\r\n\
                 MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b{n}\"\r\n\r\n\
                 --b{n}\r\nContent-Type: text/plain\r\n\r\n{}\r\n",
                rng.random_range(0..users),
                text(&mut rng, 40).trim(),
                text(&mut rng, body_len)
            );
            if rng.random_range(0..6) == 0 {
                // Popular attachments are sent more often: the square skews towards the start.
                let pick =
                    (rng.random_range(0.0f64..1.0).powi(2) * attachments.len() as f64) as usize;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&attachments[pick]);
                message.push_str(&format!(
                    "--b{n}\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                ));
                for line in encoded.as_bytes().chunks(76) {
                    message.push_str(std::str::from_utf8(line)?);
                    message.push_str("\r\n");
                }
            }
            message.push_str(&format!("--b{n}--\r\n"));
            let path = home
                .join("mailbox")
                .join(folder)
                .join(format!("AAMkAD{user:03}{n:06}.eml"));
            write(&path, message.as_bytes())?;
            written += message.len() as u64;
            n += 1;
        }
        let mut n = 0u32;
        while written < per_user {
            let choice = rng.random_range(0..10);
            let bytes = if choice < 5 {
                documents[rng.random_range(0..documents.len())].clone()
            } else if choice < 8 {
                let len = rng.random_range(10_000..400_000);
                text(&mut rng, len).into_bytes()
            } else {
                let len = rng.random_range(100_000..2_000_000);
                random_bytes(&mut rng, len)
            };
            let folder = ["Documents", "Desktop", "Pictures"][rng.random_range(0..3)];
            let path = home
                .join("drive")
                .join(folder)
                .join(format!("file {n:05}.dat"));
            write(&path, &bytes)?;
            written += bytes.len() as u64;
            n += 1;
        }
    }
    Ok(users)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Rewrites 1 % of the files (a changed paragraph in text, new bytes in binaries) and marks them
/// changed for the Skyvault source (a sidecar file restic also sees, a few bytes each).
fn change_one_percent(root: &Path, seed: u64) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    walk(root, &mut files);
    files.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut changed = Vec::new();
    // Every hundredth file, starting at a seeded offset: exactly 1 %, at least one file.
    let offset = rng.random_range(0..100usize.min(files.len().max(1)));
    for (index, path) in files.into_iter().enumerate() {
        if index % 100 != offset {
            continue;
        }
        let mut bytes = std::fs::read(&path)?;
        let at = bytes.len() / 2;
        let patch = text(&mut rng, 200).into_bytes();
        let end = (at + patch.len()).min(bytes.len());
        bytes.splice(at..end, patch);
        std::fs::write(&path, &bytes)?;
        std::fs::write(path.with_extension("changed"), b"1")?;
        changed.push(path);
    }
    Ok(changed)
}
