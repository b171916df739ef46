//! Mailbox backup benchmark.
//!
//! A simulated tenant of 50 mailboxes, each about 2,000 items of mixed types (1,650 messages,
//! 165 calendar items, 110 contacts, 82 tasks, 2 notes), answers with 20–50 ms latency per request
//! and enforces Microsoft's per-mailbox limits (4 concurrent requests, 10,000 requests per 10
//! minutes). The mailboxes are backed up `SKYVAULT_BENCH_CONCURRENCY` (10) at a time, as the
//! job system runs them, into a local repository and a fresh SQLite
//! catalog (PostgreSQL with `SKYVAULT_BENCH_DATABASE_URL`), then again after 1 % of the items
//! changed. It prints the wall time, the requests sent (the simulator's own count, per 1,000
//! items), the ceiling Microsoft's per-mailbox limits put on those requests, the ratio between
//! the two, the incremental run's share of the full run's requests, and the process's peak RSS
//! (Skyvault and the simulator together).
//!
//! Run with `cargo bench --bench mailbox`; sizes: `SKYVAULT_BENCH_MAILBOXES` (50),
//! `SKYVAULT_BENCH_MESSAGES` (1,650 messages per mailbox, the other items follow from it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use skyvault::backup::{BackupServices, BackupTarget, back_up};
use skyvault::crypto::MasterKey;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::m365::{GraphClient, M365Settings, TenantId};
use skyvault::simulator::{SimulatorOptions, TenantSpec};
use skyvault::storage::{BackupStorage, StorageLocation, Workload};
use support::sim::Sim;
use url::Url;

const LATENCY_MS: u64 = 20;
const JITTER_MS: u64 = 30;
/// Microsoft's per-app, per-mailbox limits (graph-protocol.md §5.2).
const MAILBOX_CONCURRENCY: f64 = 4.0;
const MAILBOX_REQUESTS_PER_WINDOW: f64 = 10_000.0;
const WINDOW_SECONDS: f64 = 600.0;

fn size(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The shortest time Microsoft's per-mailbox limits allow for `requests` to one mailbox with
/// `latency` seconds per request: four at a time, and no more than 10,000 per 10 minutes.
fn mailbox_ceiling(requests: f64, latency: f64) -> f64 {
    let by_concurrency = requests * latency / MAILBOX_CONCURRENCY;
    let by_rate = (requests / MAILBOX_REQUESTS_PER_WINDOW - 1.0).max(0.0) * WINDOW_SECONDS;
    by_concurrency.max(by_rate)
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
    let mailboxes = size("SKYVAULT_BENCH_MAILBOXES", 50);
    let messages = size("SKYVAULT_BENCH_MESSAGES", 1_650);
    let clock = skyvault::clock::system();
    let dir = tempfile::tempdir().unwrap();
    let sim = skyvault::simulator::start(SimulatorOptions {
        port: 0,
        tenants: vec![TenantSpec {
            organization: "Bench Corp".into(),
            seed: 11,
            users: mailboxes,
            groups: 2,
            teams: 0,
            security_groups: 0,
            sites: 1,
            messages_per_mailbox: messages,
            files_per_drive: 1,
            licences: Some(mailboxes),
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
    control
        .control(
            "PUT",
            "faults/mail",
            Some(json!({"latency_ms": LATENCY_MS, "latency_jitter_ms": JITTER_MS})),
        )
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
    let users: Vec<_> = graph.tenant(tenant).users().try_collect().await.unwrap();
    let (customer, org) = (CustomerId::new(), OrgId::new());
    let targets: Vec<BackupTarget> = users
        .iter()
        .take(mailboxes as usize)
        .map(|user| BackupTarget {
            customer,
            org,
            tenant,
            item: ItemId::new(),
            graph_id: user.id.clone(),
            workload: Workload::Mailbox,
            display_name: user.display_name.clone().unwrap_or_default(),
            encrypted_repository: None,
        })
        .collect();
    println!(
        "mailbox backup: {} mailboxes × {messages} messages (+ calendar, contacts, tasks, notes), \
         {LATENCY_MS}–{} ms per request, Microsoft's per-mailbox limits enforced",
        targets.len(),
        LATENCY_MS + JITTER_MS
    );

    let full = back_up_all(&services, &targets, &control).await;
    let items: u64 = full.items;
    println!(
        "full: {:.1} s for {items} items, {} requests ({:.0} per 1,000 items: {} exportItems, {} $value, {} event/contact JSON, {} delta pages and lookups)",
        full.seconds,
        full.requests,
        full.requests as f64 * 1000.0 / items as f64,
        full.export,
        full.mime,
        full.json,
        full.requests - full.export - full.mime - full.json
    );
    println!(
        "full: ceiling from Microsoft's per-mailbox limits {:.1} s (each mailbox: requests × {:.0} ms mean latency / 4 concurrent, SKYVAULT_BENCH_CONCURRENCY mailboxes at a time; busiest mailbox {} requests); ratio {:.2}",
        full.ceiling,
        (LATENCY_MS as f64 + JITTER_MS as f64 / 2.0),
        full.busiest,
        full.seconds / full.ceiling
    );

    // 1 % of each mailbox's items change: a fifth new, the rest edited.
    let per_mailbox = (items / targets.len() as u64 / 100).max(1);
    for target in &targets {
        let user = &target.graph_id;
        let base = format!("tenants/default/users/{user}/mailbox/items");
        for n in 0..per_mailbox {
            if n % 5 == 0 {
                control
                    .control(
                        "POST",
                        &base,
                        Some(json!({"type": "message", "subject": format!("New {n}")})),
                    )
                    .await;
            }
        }
    }
    edit_items(&services, &targets, &control, per_mailbox - per_mailbox / 5).await;
    let incremental = back_up_all(&services, &targets, &control).await;
    println!(
        "incremental after 1 % change: {:.1} s, {} requests = {:.2} % of the full run's",
        incremental.seconds,
        incremental.requests,
        incremental.requests as f64 * 100.0 / full.requests as f64
    );
    println!(
        "peak RSS (Skyvault and simulator): {:.0} MiB",
        support::memory_mib("VmHWM")
    );
}

/// Edits `count` items of each mailbox (their categories), through the catalog's ids.
async fn edit_items(
    services: &BackupServices,
    targets: &[BackupTarget],
    control: &Sim,
    count: u64,
) {
    for target in targets {
        let request = skyvault::storage::BackupRequest {
            customer: target.customer,
            org: target.org,
            item: target.item,
            workload: target.workload,
            display_name: target.display_name.clone(),
            encrypted_repository: None,
        };
        let parent = skyvault::storage::ingest::parent_point(&services.storage, &request)
            .await
            .unwrap()
            .unwrap();
        let ids: Vec<String> = parent
            .entries
            .iter()
            .filter(|e| e.kind == skyvault::storage::ItemKind::MailboxItem)
            .filter_map(|e| e.graph_id.clone())
            .step_by(37)
            .take(count as usize)
            .collect();
        for id in ids {
            control
                .control(
                    "PATCH",
                    &format!(
                        "tenants/default/users/{}/mailbox/items/{id}",
                        target.graph_id
                    ),
                    Some(json!({"categories": ["Benchmark"]})),
                )
                .await;
        }
    }
}

/// Mailbox items (one export stream each) in the recovery points just written; the `.eml` and
/// `.json` copies beside them are not counted.
async fn mailbox_items(
    services: &BackupServices,
    reports: &[skyvault::backup::BackupReport],
) -> u64 {
    let mut items = 0;
    for report in reports {
        let entries = skyvault::storage::catalog::list_items(
            services.storage.db(),
            &skyvault::storage::SystemScope::worker(report.outcome.archive.customer, "benchmark"),
            report.outcome.recovery_point.id,
        )
        .await
        .unwrap();
        items += entries
            .iter()
            .filter(|e| e.kind == skyvault::storage::ItemKind::MailboxItem)
            .count() as u64;
    }
    items
}

struct Run {
    seconds: f64,
    items: u64,
    requests: u64,
    export: u64,
    mime: u64,
    json: u64,
    busiest: u64,
    ceiling: f64,
}

async fn back_up_all(services: &BackupServices, targets: &[BackupTarget], control: &Sim) -> Run {
    control.control("DELETE", "counters", None).await;
    let started = Instant::now();
    // As the job system runs them: a bounded number of backups at once per process.
    let concurrency = size("SKYVAULT_BENCH_CONCURRENCY", 10) as usize;
    let reports: Vec<_> = futures::stream::iter(targets)
        .map(|target| async move { back_up(services, target, &()).await.unwrap() })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let counters = control.control("GET", "counters", None).await;
    let endpoint = |suffix: &str| -> u64 {
        counters["by_endpoint"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.ends_with(suffix))
            .map(|(_, n)| n.as_u64().unwrap())
            .sum()
    };
    let per_mailbox: Vec<u64> = counters["by_mailbox"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .collect();
    let busiest = per_mailbox.iter().copied().max().unwrap_or(0);
    let failed: usize = reports.iter().map(|r| r.outcome.failed.len()).sum();
    assert_eq!(failed, 0, "items failed");
    let latency = (LATENCY_MS as f64 + JITTER_MS as f64 / 2.0) / 1000.0;
    Run {
        seconds,
        items: mailbox_items(services, &reports).await,
        requests: counters["total"].as_u64().unwrap(),
        export: endpoint("/exportItems"),
        mime: endpoint("/$value"),
        json: endpoint("/events/{id}") + endpoint("/contacts/{id}"),
        busiest,
        // With `concurrency` mailboxes at a time no schedule beats the busiest mailbox's own
        // ceiling, nor the sum of all mailboxes' ceilings shared among the slots.
        ceiling: mailbox_ceiling(busiest as f64, latency).max(
            per_mailbox
                .iter()
                .map(|n| mailbox_ceiling(*n as f64, latency))
                .sum::<f64>()
                / concurrency.min(targets.len()) as f64,
        ),
    }
}
