//! Search benchmark: full-text search across 1,000,000 catalogued messages of one customer.
//!
//! `SKYVAULT_BENCH_MAILBOXES` (default 10) mailboxes of `SKYVAULT_BENCH_MESSAGES` (default
//! 100,000) messages each are backed up through the real ingest path into one customer's
//! repository and catalog. Each message is a small MIME message whose subject, sender,
//! recipients, date and body words are drawn from fixed vocabularies with a fixed seed, so some
//! words are common (in a few percent of messages) and some rare (in a handful). Then the
//! customer's index is built by `search::update_index` (the worker's path: catalog feed, bodies
//! read from the repository), timed, and `search::search` (the page's path, under the customer's
//! scope: index query, catalog rows, recovery points) is timed for typical questions, cold and as
//! the median of 20 calls. The database is SQLite in a temporary folder, or PostgreSQL when
//! `SKYVAULT_BENCH_DATABASE_URL` is set. Run with `cargo bench --bench search`.
//! Target: under 500 ms per search.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use skyvault::accounts::Role;
use skyvault::accounts::access::{Access, Home};
use skyvault::accounts::{tenancy, users};
use skyvault::crypto::MasterKey;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::restore::search::{self, SearchIndexes, SearchRequest};
use skyvault::storage::{
    BackupRequest, BackupStorage, ItemContent, ItemKind, ItemMetadata, SourceItem, StorageLocation,
    Workload, ingest,
};

const COMMON: &[&str] = &[
    "meeting", "invoice", "report", "budget", "schedule", "project", "review", "update",
    "contract", "travel", "design", "release", "customer", "support", "quarter", "planning",
];
const RARE: &[&str] = &["marmalade", "zanzibar", "quokka", "obsidian", "tamarind"];

fn size(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (SplitMix64), so every run backs up the same corpus.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

struct Message {
    subject: String,
    sender: String,
    recipient: String,
    day: u32,
    body: String,
}

fn message(n: u64) -> Message {
    let r = mix(n);
    let word = |i: u64| COMMON[(mix(r ^ i) % COMMON.len() as u64) as usize];
    // One message in 200,000 carries a rare word: about five per million.
    let rare = if mix(r ^ 99).is_multiple_of(200_000) {
        RARE[(r % RARE.len() as u64) as usize]
    } else {
        ""
    };
    Message {
        subject: format!("{} {} {}", word(1), word(2), n % 1000),
        sender: format!("sender{}@contoso.example", r % 500),
        recipient: format!("user{}@contoso.example", (r >> 16) % 200),
        day: 1 + (r >> 8) as u32 % 28,
        body: format!(
            "Hello, about the {} and the {}: see the {} {rare}. Regards, sender {}.",
            word(3),
            word(4),
            word(5),
            r % 500
        ),
    }
}

fn mime(m: &Message, n: u64) -> Vec<u8> {
    format!(
        "From: <{}>\r\nTo: <{}>\r\nSubject: {}\r\nDate: Mon, {} Oct 2026 10:00:00 +0000\r\n\
         Message-ID: <{n}@contoso.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{}\r\n",
        m.sender, m.recipient, m.subject, m.day, m.body
    )
    .into_bytes()
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
    let mailboxes = size("SKYVAULT_BENCH_MAILBOXES", 10);
    let messages = size("SKYVAULT_BENCH_MESSAGES", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let bench_database = support::BenchDatabase::create(dir.path()).await;
    let url = bench_database.url.clone();
    let db = skyvault::db::connect_and_migrate(&url).await.unwrap();
    let clock = skyvault::clock::system();
    let storage = BackupStorage::new(
        db.clone(),
        StorageLocation::Folder(dir.path().join("storage")),
        MasterKey::random(),
        clock.clone(),
    );

    // The signed-in partner administrator and the customer's scope, as the page gets them.
    let partner = tenancy::create_partner(&db, clock.as_ref(), "Bench partner", None)
        .await
        .unwrap();
    let admin = users::create_user(
        &db,
        clock.as_ref(),
        users::NewUser {
            email: "bench@partner.example",
            display_name: "Bench admin",
            password: "a long bench password",
            role: Role::PartnerAdmin,
            home: Home::Partner(skyvault::ids::PartnerId(partner.id)),
        },
    )
    .await
    .unwrap();
    let access = Access::from_user(&db, admin).await.unwrap().unwrap();
    let customer = tenancy::create_customer(
        &db,
        clock.as_ref(),
        &access,
        skyvault::ids::PartnerId(partner.id),
        "Bench customer",
    )
    .await
    .unwrap();
    let scope = access.customer(&db, CustomerId(customer.id)).await.unwrap();

    let started = Instant::now();
    let org = OrgId::new();
    for mailbox in 0..mailboxes {
        let request = BackupRequest {
            customer: scope.id(),
            org,
            item: ItemId::new(),
            workload: Workload::Mailbox,
            display_name: format!("Mailbox {mailbox}"),
            encrypted_repository: None,
        };
        let first = mailbox * messages;
        let sources = futures::stream::iter((first..first + messages).map(|n| {
            let m = message(n);
            let folder = if n % 10 < 7 { "Inbox" } else { "Sent Items" };
            SourceItem {
                path: format!("{folder}/AAMk{n:09}.eml"),
                metadata: ItemMetadata {
                    kind: Some(ItemKind::Message),
                    graph_id: Some(format!("AAMk{n:09}")),
                    source_size: Some(400),
                    item_class: Some("IPM.Note".into()),
                    ..ItemMetadata::default()
                },
                content: ItemContent::from_bytes(mime(&m, n)),
            }
        }));
        ingest::back_up_archive(&storage, &request, sources)
            .await
            .unwrap();
    }
    let total = mailboxes * messages;
    println!(
        "{total} messages in {mailboxes} mailboxes backed up in {:.1} s; database: {}",
        started.elapsed().as_secs_f64(),
        bench_database.label()
    );

    let indexes = SearchIndexes::new(dir.path());
    let started = Instant::now();
    let report = search::update_index(&storage, &indexes, scope.id())
        .await
        .unwrap();
    println!(
        "index built in {:.1} s: {} rows, {} bodies read from the repository",
        started.elapsed().as_secs_f64(),
        report.rows_indexed,
        report.contents_read
    );

    let questions: Vec<(&str, SearchRequest)> = vec![
        (
            "a rare word anywhere",
            SearchRequest {
                text: "marmalade".into(),
                ..SearchRequest::default()
            },
        ),
        (
            "a common word anywhere",
            SearchRequest {
                text: "invoice".into(),
                ..SearchRequest::default()
            },
        ),
        (
            "two words anywhere",
            SearchRequest {
                text: "budget contract".into(),
                ..SearchRequest::default()
            },
        ),
        (
            "sender and subject word",
            SearchRequest {
                sender: "sender42@contoso.example".into(),
                subject: "meeting".into(),
                ..SearchRequest::default()
            },
        ),
        (
            "recipient in a date range",
            SearchRequest {
                recipient: "user7@contoso.example".into(),
                after: NaiveDate::from_ymd_opt(2026, 10, 5),
                before: NaiveDate::from_ymd_opt(2026, 10, 12),
                ..SearchRequest::default()
            },
        ),
    ];
    for (label, request) in &questions {
        let ask = || async {
            let at = Instant::now();
            let results = search::search(&storage, &indexes, &scope, request)
                .await
                .unwrap();
            (at.elapsed(), results)
        };
        let (cold, results) = ask().await;
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..20 {
            times.push(ask().await.0);
        }
        times.sort();
        println!(
            "search ({label}): cold {:.1} ms, median {:.1} ms, max {:.1} ms \
             ({} matches, {} shown, {} rows not indexed)",
            ms(cold),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            results.total,
            results.hits.len(),
            results.behind
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
