//! Shared pieces of the storage tests: a storage on a fresh database and folder, a manual clock,
//! and a small deterministic corpus of messages and files whose fetches are counted.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use futures::stream;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skyvault::clock::ManualClock;
use skyvault::crypto::MasterKey;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::storage::{
    BackupOutcome, BackupRequest, BackupStorage, ItemContent, ItemKind, ItemMetadata, SourceItem,
    StorageLocation, SystemScope, Workload, ingest,
};
use tempfile::TempDir;

use crate::support::{self, TestDb};

pub struct Fixture {
    pub storage: BackupStorage,
    pub clock: ManualClock,
    pub repo_root: PathBuf,
    pub customer: CustomerId,
    pub org: OrgId,
    master_key: MasterKey,
    _db: TestDb,
    _dir: TempDir,
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).single().unwrap()
}

pub async fn fixture() -> Fixture {
    let db = support::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let repo_root = dir.path().join("storage");
    let clock = ManualClock::new(start_time());
    let master_key = MasterKey::random();
    let storage = BackupStorage::new(
        db.conn.clone(),
        StorageLocation::Folder(repo_root.clone()),
        master_key.clone(),
        Arc::new(clock.clone()),
    );
    Fixture {
        storage,
        clock,
        repo_root,
        customer: CustomerId::new(),
        org: OrgId::new(),
        master_key,
        _db: db,
        _dir: dir,
    }
}

impl Fixture {
    /// The storage scope of the fixture's customer, as a worker would hold it.
    pub fn scope(&self) -> SystemScope {
        SystemScope::worker(self.customer, "test")
    }

    pub fn request(&self, item: ItemId, workload: Workload, name: &str) -> BackupRequest {
        BackupRequest {
            customer: self.customer,
            org: self.org,
            item,
            workload,
            display_name: name.to_string(),
            encrypted_repository: None,
        }
    }

    /// The same storage as another Skyvault process would see it: same database, folder and
    /// master key, but its own repository cache and in-process guards, so only the repository's
    /// lock files stand between the two. It waits `lock_wait` for a conflicting lock.
    pub fn other_process(&self, lock_wait: std::time::Duration) -> BackupStorage {
        BackupStorage::new(
            self.storage.db().clone(),
            StorageLocation::Folder(self.repo_root.clone()),
            self.master_key.clone(),
            Arc::new(self.clock.clone()),
        )
        .with_lock_wait(lock_wait)
    }

    /// Lock files in the customer's repository.
    pub fn lock_count(&self) -> usize {
        count_files(&self.repository_path().join("locks"))
    }

    pub fn repository_path(&self) -> PathBuf {
        self.repo_root.join(self.customer.to_string())
    }

    /// Number of pack files in the customer's repository.
    pub fn pack_count(&self) -> usize {
        count_files(&self.repository_path().join("data"))
    }

    pub async fn back_up(&self, request: &BackupRequest, items: &[TestItem]) -> BackupOutcome {
        let counter = Arc::new(AtomicUsize::new(0));
        self.back_up_counting(request, items, &counter).await
    }

    pub async fn back_up_counting(
        &self,
        request: &BackupRequest,
        items: &[TestItem],
        fetches: &Arc<AtomicUsize>,
    ) -> BackupOutcome {
        let items: Vec<SourceItem> = items.iter().map(|item| item.source(fetches)).collect();
        ingest::back_up_archive(&self.storage, request, stream::iter(items))
            .await
            .unwrap()
    }
}

pub fn count_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() { count_files(&path) } else { 1 }
        })
        .sum()
}

/// One item of a test corpus.
#[derive(Clone)]
pub struct TestItem {
    pub path: String,
    pub bytes: Arc<Vec<u8>>,
    pub kind: ItemKind,
    pub graph_id: String,
    pub change_key: String,
    pub modified: DateTime<Utc>,
    /// When set, fetching the bytes fails with this message.
    pub fail_with: Option<String>,
}

impl TestItem {
    pub fn new(path: &str, bytes: Vec<u8>, kind: ItemKind) -> Self {
        Self {
            path: path.to_string(),
            graph_id: format!("id-{path}"),
            change_key: "ck-1".to_string(),
            modified: start_time() - chrono::Duration::days(3),
            bytes: Arc::new(bytes),
            kind,
            fail_with: None,
        }
    }

    /// The same item after an edit in Microsoft 365: new bytes, change key and time.
    pub fn edited(&self, bytes: Vec<u8>) -> Self {
        Self {
            bytes: Arc::new(bytes),
            change_key: format!("{}-edited", self.change_key),
            modified: self.modified + chrono::Duration::hours(1),
            ..self.clone()
        }
    }

    pub fn source(&self, fetches: &Arc<AtomicUsize>) -> SourceItem {
        let bytes = self.bytes.clone();
        let fetches = fetches.clone();
        let fail_with = self.fail_with.clone();
        SourceItem {
            path: self.path.clone(),
            metadata: ItemMetadata {
                kind: Some(self.kind),
                graph_id: Some(self.graph_id.clone()),
                change_key: Some(self.change_key.clone()),
                last_modified: Some(self.modified),
                source_size: Some(self.bytes.len() as u64 + 17),
                ..ItemMetadata::default()
            },
            content: ItemContent::from_fn(move || async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                match fail_with {
                    Some(reason) => Err(io::Error::other(reason)),
                    None => Ok(io::Cursor::new(bytes.to_vec())),
                }
            }),
        }
    }
}

/// Incompressible bytes from a seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    bytes
}

/// A MIME message with a base64 attachment.
pub fn mime_message(
    seed: u64,
    subject: &str,
    from: &str,
    to: &str,
    attachment: Option<&[u8]>,
) -> Vec<u8> {
    use base64::Engine;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let words = [
        "budget", "meeting", "report", "quarter", "customer", "review", "plan", "team",
    ];
    let body: Vec<&str> = (0..200)
        .map(|_| words[rng.random_range(0..words.len())])
        .collect();
    let mut text = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{seed}@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b{seed}\"\r\n\r\n--b{seed}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        body.join(" ")
    );
    if let Some(attachment) = attachment {
        let encoded = base64::engine::general_purpose::STANDARD.encode(attachment);
        text.push_str(&format!(
            "--b{seed}\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n"
        ));
        for line in encoded.as_bytes().chunks(76) {
            text.push_str(std::str::from_utf8(line).unwrap());
            text.push_str("\r\n");
        }
    }
    text.push_str(&format!("--b{seed}--\r\n"));
    text.into_bytes()
}

/// A small mailbox and drive: messages in two folders, files including one above the in-memory
/// spool limit.
pub fn small_corpus() -> Vec<TestItem> {
    let mut items = Vec::new();
    for i in 0..12u64 {
        let folder = if i % 3 == 0 { "Sent Items" } else { "Inbox" };
        let attachment = (i % 4 == 0).then(|| random_bytes(1000 + i, 30_000));
        let bytes = mime_message(
            i,
            &format!("Quarterly report {i}"),
            "Alice Example <alice@example.com>",
            &format!("bob{i}@example.com"),
            attachment.as_deref(),
        );
        items.push(TestItem::new(
            &format!("{folder}/AAMkAD{i:04}.eml"),
            bytes,
            ItemKind::Message,
        ));
    }
    items.push(TestItem::new(
        "Documents/report.docx",
        random_bytes(7, 200_000),
        ItemKind::File,
    ));
    items.push(TestItem::new(
        "Documents/big video.mp4",
        random_bytes(8, 6 << 20),
        ItemKind::File,
    ));
    items.push(TestItem::new(
        "Documents/empty.txt",
        Vec::new(),
        ItemKind::File,
    ));
    items
}
