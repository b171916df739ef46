//! Browse benchmark: opening a recovery point of a 100,000-item mailbox and its first page.
//!
//! A mailbox of `SKYVAULT_BENCH_ITEMS` items (default 100,000) is backed up through the real
//! ingest path into a fresh repository and catalog: every item as its export (`.item`) and its
//! MIME copy (`.eml`, whose headers fill the catalog's subject and sender), so the catalog holds
//! two rows per item, spread over 24 folders with most of them (60 %) in the Inbox. Then the
//! server-side work of the browse page is timed: `restore::browse::open_point` (scope check,
//! folder tree, item count and one sorted page of 50), at the top and in the Inbox, sorted by
//! date and by subject, cold (first call) and as the median of 20 calls. The database is SQLite
//! in a temporary folder, or PostgreSQL when `SKYVAULT_BENCH_DATABASE_URL` is set.
//! Run with `cargo bench --bench browse`. Target: under 200 ms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use skyvault::crypto::MasterKey;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::restore::browse::{self, BrowseRequest};
use skyvault::storage::catalog::ItemOrder;
use skyvault::storage::{
    BackupRequest, BackupStorage, ItemContent, ItemKind, ItemMetadata, SourceItem, StorageLocation,
    SystemScope, Workload, ingest,
};

fn main() {
    skyvault::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

fn folder_of(n: u64) -> String {
    match n % 10 {
        0..=5 => "Inbox".into(),
        6 => "Sent Items".into(),
        7 => format!("Archive/{}", 2020 + n % 5),
        8 => format!("Inbox/Projects/P{}", n % 12),
        _ => "Deleted Items".into(),
    }
}

fn message(n: u64) -> Vec<u8> {
    format!(
        "From: Sender {s} <sender{s}@example.com>\r\nTo: owner@example.com\r\n\
         Subject: Message number {n} about item {x}\r\nDate: Mon, {d} Nov 2026 10:{m:02}:00 +0000\r\n\
         Message-ID: <{n}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n\
         Body of message {n}.\r\n",
        s = n % 97,
        x = n * 7919 % 100_000,
        d = 1 + n % 28,
        m = n % 60,
    )
    .into_bytes()
}

async fn run() {
    let items: u64 = std::env::var("SKYVAULT_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let bench_database = support::BenchDatabase::create(dir.path()).await;
    let url = bench_database.url.clone();
    let db = skyvault::db::connect_and_migrate(&url).await.unwrap();
    let storage = BackupStorage::new(
        db.clone(),
        StorageLocation::Folder(dir.path().join("storage")),
        MasterKey::random(),
        skyvault::clock::system(),
    );
    let customer = CustomerId::new();
    let request = BackupRequest {
        customer,
        org: OrgId::new(),
        item: ItemId::new(),
        workload: Workload::Mailbox,
        display_name: "Bench mailbox".into(),
        encrypted_repository: None,
    };
    let started = Instant::now();
    let sources = futures::stream::iter((0..items).flat_map(|n| {
        let folder = folder_of(n);
        let meta = |kind| ItemMetadata {
            kind: Some(kind),
            graph_id: Some(format!("AAMk{n:08}")),
            source_size: Some(400),
            item_class: Some("IPM.Note".into()),
            ..ItemMetadata::default()
        };
        [
            SourceItem {
                path: format!("{folder}/AAMk{n:08}.item"),
                metadata: meta(ItemKind::MailboxItem),
                content: ItemContent::from_bytes(format!("export {n}").into_bytes()),
            },
            SourceItem {
                path: format!("{folder}/AAMk{n:08}.eml"),
                metadata: meta(ItemKind::Message),
                content: ItemContent::from_bytes(message(n)),
            },
        ]
    }));
    let outcome = ingest::back_up_archive(&storage, &request, sources)
        .await
        .unwrap();
    println!(
        "mailbox of {items} items ({} catalog rows) backed up in {:.1} s; database: {}",
        outcome.recovery_point.item_count,
        started.elapsed().as_secs_f64(),
        bench_database.label()
    );
    let scope = Arc::new(SystemScope::worker(customer, "benchmark"));
    for (label, folder, order) in [
        ("top, by date", "", ItemOrder::Date),
        ("Inbox, by date", "Inbox", ItemOrder::Date),
        ("Inbox, by subject", "Inbox", ItemOrder::Subject),
    ] {
        let open = || {
            let (db, scope) = (db.clone(), scope.clone());
            let folder = folder.to_string();
            let (archive, point) = (outcome.archive.id, outcome.recovery_point.id);
            async move {
                let at = Instant::now();
                let view = browse::open_point(
                    &db,
                    scope.as_ref(),
                    archive,
                    point,
                    &BrowseRequest {
                        folder,
                        order,
                        descending: true,
                        page: 0,
                    },
                )
                .await
                .unwrap();
                (at.elapsed(), view)
            }
        };
        let (cold, view) = open().await;
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..20 {
            times.push(open().await.0);
        }
        times.sort();
        println!(
            "open point + first page ({label}): cold {:.1} ms, median {:.1} ms, max {:.1} ms \
             ({} folders, {} items in the folder, {} on the page)",
            ms(cold),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            view.folders.len(),
            view.page.total,
            view.page.items.len()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
