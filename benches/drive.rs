//! OneDrive backup benchmark.
//!
//! A simulated tenant of `SKYVAULT_BENCH_DRIVES` (20) users, each with a OneDrive of
//! `SKYVAULT_BENCH_FILES` (500) files from 1 KB to 50 MB (sizes drawn once from a fixed seed:
//! 98 % log-uniform between 1 KB and 1 MB, 2 % uniform between 1 and 50 MB; about 5 GB in all
//! at the default sizes), answers with 20–50 ms latency per request and enforces SharePoint's
//! resource units for a tenant of up to 1,000 licences (1,200 RU per minute per app: 1 RU per
//! download or delta page with a token, 2 per delta page without). The drives are backed up
//! `SKYVAULT_BENCH_CONCURRENCY` (10) at a time into a local repository and a fresh SQLite
//! catalog, then again after 1 % of the files changed. Then one user's drive alone holds
//! `SKYVAULT_BENCH_SINGLE_MB` (5,000) MB and is backed up by itself, for peak memory.
//!
//! It prints the wall time, the requests (the simulator's own count) and resource units, the
//! ceiling SharePoint's limits put on them (RU at 1,200 per minute, and bytes at the 400 GB per
//! hour egress limit per app per tenant, whichever is longer), the ratio, the incremental run's
//! requests and bytes as a share of the full run's, and the process's peak RSS (Skyvault and
//! the simulator together).
//!
//! The full setting: `cargo bench --bench drive`. A scaled-down one for a shared machine:
//! `SKYVAULT_BENCH_FILES=25 SKYVAULT_BENCH_SINGLE_MB=500 cargo bench --profile dev --bench drive`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use skyvault::backup::{BackupReport, BackupServices, BackupTarget, back_up};
use skyvault::crypto::MasterKey;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::m365::{GraphClient, M365Settings, TenantId};
use skyvault::simulator::{SimulatorOptions, TenantSpec};
use skyvault::storage::{BackupStorage, ItemKind, StorageLocation, Workload};
use support::sim::Sim;
use url::Url;

const LATENCY_MS: u64 = 20;
const JITTER_MS: u64 = 30;
/// SharePoint's resource units per app per tenant per minute, up to 1,000 licences (§5.3).
const RU_PER_MINUTE: f64 = 1_200.0;
/// Egress per app per tenant per hour (§5.3, newer revision).
const EGRESS_BYTES_PER_HOUR: f64 = 400e9;

fn size(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator for file sizes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn file_size(&mut self) -> u64 {
        if self.next() < 0.02 {
            (1e6 + self.next() * 49e6) as u64
        } else {
            (1e3 * (1e3f64).powf(self.next())) as u64
        }
    }
}

fn main() {
    skyvault::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let drives = size("SKYVAULT_BENCH_DRIVES", 20);
    let per_drive = size("SKYVAULT_BENCH_FILES", 500);
    let single_mb = size("SKYVAULT_BENCH_SINGLE_MB", 5_000);
    let clock = skyvault::clock::system();
    let dir = tempfile::tempdir().unwrap();
    let sim = skyvault::simulator::start(SimulatorOptions {
        port: 0,
        tenants: vec![TenantSpec {
            organization: "Bench Corp".into(),
            seed: 12,
            users: drives as u32 + 1,
            groups: 0,
            teams: 0,
            security_groups: 0,
            sites: 1,
            messages_per_mailbox: 1,
            files_per_drive: 0,
            licences: Some(drives as u32 + 1),
            ..TenantSpec::default()
        }],
        clock: clock.clone(),
        workers: 2,
        ..SimulatorOptions::default()
    })
    .await
    .unwrap();
    let base = sim.base_url().trim_end_matches('/').to_string();
    let control = Sim::of(&sim);
    sim.register_app(
        "bench-client",
        "bench-secret",
        &["https://console.example/cb"],
    );
    control
        .control("POST", "tenants/default/consents/bench-client", None)
        .await;

    let bench_database = support::BenchDatabase::create(dir.path()).await;
    let database_url = bench_database.url.clone();
    let db = skyvault::db::connect_and_migrate(&database_url)
        .await
        .unwrap();
    let storage = BackupStorage::new(
        db,
        StorageLocation::Folder(dir.path().join("storage")),
        MasterKey::random(),
        clock.clone(),
    );
    let url = Url::parse(&base).unwrap();
    let settings = M365Settings::new(
        "bench-client",
        "bench-secret",
        Url::parse("https://console.example/cb").unwrap(),
    )
    .with_base_url(&url);
    let graph = GraphClient::new(settings, clock.clone()).unwrap();
    let tenant = TenantId(sim.tenant().tenant_id);
    let services = BackupServices {
        graph: graph.clone(),
        storage,
        clock,
    };
    let client = graph.tenant(tenant);
    let users: Vec<_> = client.users().try_collect().await.unwrap();
    let (customer, org) = (CustomerId::new(), OrgId::new());
    let mut targets = Vec::new();
    let mut drive_ids = Vec::new();
    let mut sizes = Lcg(42);
    let mut total_bytes = 0u64;
    for user in users.iter().take(drives as usize + 1) {
        let drive = client.user_drive(&user.id).await.unwrap().unwrap();
        drive_ids.push(drive.id.clone());
        targets.push(BackupTarget {
            customer,
            org,
            tenant,
            item: ItemId::new(),
            graph_id: user.id.clone(),
            workload: Workload::OneDrive,
            display_name: user.display_name.clone().unwrap_or_default(),
            encrypted_repository: None,
        });
    }
    let single = targets.pop().unwrap();
    let single_drive = drive_ids.pop().unwrap();
    for drive in &drive_ids {
        for n in 0..per_drive {
            let bytes = sizes.file_size();
            total_bytes += bytes;
            control
                .control(
                    "POST",
                    &format!("tenants/default/drives/{drive}/synthetic-files"),
                    Some(json!({"name": format!("file {n:04}.bin"), "size": bytes})),
                )
                .await;
        }
    }
    control
        .control(
            "PUT",
            "faults/drive",
            Some(json!({"latency_ms": LATENCY_MS, "latency_jitter_ms": JITTER_MS})),
        )
        .await;
    println!(
        "drive backup: {} OneDrives × {per_drive} files (1 KB–50 MB, {:.2} GB in all), {LATENCY_MS}–{} ms per request, SharePoint's {RU_PER_MINUTE} RU per minute enforced",
        targets.len(),
        total_bytes as f64 / 1e9,
        LATENCY_MS + JITTER_MS
    );

    let full = back_up_all(&services, &targets, &control, None).await;
    let ceiling = ceiling(full.units, full.bytes);
    println!(
        "full: {:.1} s for {} files, {} requests, {:.0} RU, {:.2} GB read",
        full.seconds,
        full.files,
        full.requests,
        full.units,
        full.bytes as f64 / 1e9
    );
    println!(
        "full: ceiling from SharePoint's limits {ceiling:.1} s (max of {:.0} RU / {RU_PER_MINUTE} per minute and {:.2} GB at 400 GB per hour); ratio {:.2}",
        full.units,
        full.bytes as f64 / 1e9,
        full.seconds / ceiling
    );

    // 1 % of the files change: new content of another size.
    let mut changed = 0;
    for (drive, report) in drive_ids.iter().zip(&full.reports) {
        let entries = skyvault::storage::catalog::list_items(
            services.storage.db(),
            &bench_scope(&report.outcome.recovery_point),
            report.outcome.recovery_point.id,
        )
        .await
        .unwrap();
        let ids: Vec<String> = entries
            .iter()
            .filter(|e| e.kind == ItemKind::File)
            .filter_map(|e| e.graph_id.clone())
            .step_by(100)
            .collect();
        for id in ids {
            changed += 1;
            control
                .put_bytes(
                    &format!("drives/{drive}/items/{id}/content"),
                    vec![b'x'; 10_000 + changed * 7],
                )
                .await;
        }
    }
    let incremental = back_up_all(&services, &targets, &control, Some(&full.reports)).await;
    println!(
        "incremental after {changed} files changed ({:.2} %): {:.1} s, {} requests = {:.2} % of the full run's; {} bytes read = {:.3} % of the full run's",
        changed as f64 * 100.0 / full.files as f64,
        incremental.seconds,
        incremental.requests,
        incremental.requests as f64 * 100.0 / full.requests as f64,
        incremental.bytes,
        incremental.bytes as f64 * 100.0 / full.bytes as f64
    );
    println!(
        "peak RSS so far (Skyvault and simulator): {:.0} MiB",
        support::memory_mib("VmHWM")
    );

    // One OneDrive of `single_mb` MB: 50 MB files.
    let file = 50_000_000u64;
    let count = single_mb * 1_000_000 / file;
    for n in 0..count {
        control
            .control(
                "POST",
                &format!("tenants/default/drives/{single_drive}/synthetic-files"),
                Some(json!({"name": format!("video {n:03}.mp4"), "size": file})),
            )
            .await;
    }
    let before = support::memory_mib("VmHWM");
    let started = Instant::now();
    let report = back_up(&services, &single, &()).await.unwrap();
    assert!(
        report.outcome.failed.is_empty(),
        "{:?}",
        report.outcome.failed
    );
    println!(
        "single OneDrive of {:.1} GB ({count} files): {:.1} s; peak RSS {:.0} MiB (before it {:.0} MiB)",
        (count * file) as f64 / 1e9,
        started.elapsed().as_secs_f64(),
        support::memory_mib("VmHWM"),
        before
    );
}

/// The shortest time SharePoint's limits allow: resource units at 1,200 per minute, bytes at
/// 400 GB per hour.
fn ceiling(units: f64, bytes: u64) -> f64 {
    let by_units = units / RU_PER_MINUTE * 60.0;
    let by_bytes = bytes as f64 / EGRESS_BYTES_PER_HOUR * 3_600.0;
    by_units.max(by_bytes)
}

struct Run {
    seconds: f64,
    files: u64,
    requests: u64,
    units: f64,
    bytes: u64,
    reports: Vec<BackupReport>,
}

async fn back_up_all(
    services: &BackupServices,
    targets: &[BackupTarget],
    control: &Sim,
    previous: Option<&[BackupReport]>,
) -> Run {
    control.control("DELETE", "counters", None).await;
    let started = Instant::now();
    let concurrency = size("SKYVAULT_BENCH_CONCURRENCY", 10) as usize;
    let reports: Vec<(usize, BackupReport)> = futures::stream::iter(targets.iter().enumerate())
        .map(|(i, target)| async move { (i, back_up(services, target, &()).await.unwrap()) })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut reports = reports;
    reports.sort_by_key(|(i, _)| *i);
    let reports: Vec<BackupReport> = reports.into_iter().map(|(_, r)| r).collect();
    let counters = control.control("GET", "counters", None).await;
    let endpoints = counters["by_endpoint"].as_object().unwrap().clone();
    // Resource units as SharePoint counts them: a delta page without a token 2, every other
    // request here (delta with a token, a download, a single GET) 1.
    let units: f64 = endpoints
        .iter()
        .map(|(name, n)| {
            let n = n.as_u64().unwrap() as f64;
            if name.contains("/root/delta") && previous.is_none() {
                2.0 * n
            } else {
                n
            }
        })
        .sum();
    let failed: usize = reports.iter().map(|r| r.outcome.failed.len()).sum();
    assert_eq!(failed, 0, "files failed");
    // Bytes read from Microsoft: files whose (id, content key) the previous point lacked.
    let mut files = 0;
    let mut bytes = 0;
    for (i, report) in reports.iter().enumerate() {
        let db = services.storage.db();
        let now = skyvault::storage::catalog::list_items(
            db,
            &bench_scope(&report.outcome.recovery_point),
            report.outcome.recovery_point.id,
        )
        .await
        .unwrap();
        let before: HashSet<(Option<String>, Option<String>)> = match previous {
            Some(previous) => skyvault::storage::catalog::list_items(
                db,
                &bench_scope(&previous[i].outcome.recovery_point),
                previous[i].outcome.recovery_point.id,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.graph_id, e.change_key))
            .collect(),
            None => HashSet::new(),
        };
        for entry in now.iter().filter(|e| e.kind == ItemKind::File) {
            files += 1;
            if !before.contains(&(entry.graph_id.clone(), entry.change_key.clone())) {
                bytes += entry.size;
            }
        }
    }
    Run {
        seconds,
        files,
        requests: counters["total"].as_u64().unwrap(),
        units,
        bytes,
        reports,
    }
}

/// The benchmark reads back its own customer's points.
fn bench_scope(point: &skyvault::storage::RecoveryPoint) -> skyvault::storage::scope::SystemScope {
    skyvault::storage::scope::SystemScope::worker(point.customer, "drive benchmark")
}
