//! Mailbox restore benchmark: items per minute into one mailbox.
//!
//! One simulated mailbox of about 2,000 items (`SKYVAULT_BENCH_MESSAGES` messages, 1,650 by
//! default, plus calendar items, contacts, tasks and notes) is backed up into a local repository,
//! then every item is restored into another user's mailbox through the mailbox import API, as a
//! restore job does. The simulator answers with 20–50 ms latency and enforces Microsoft's
//! per-mailbox limits: 4 concurrent requests and 10,000 requests per 10 minutes, that is 1,000
//! per minute. A restore of 2,000 items fits in the first window, so the request limit would
//! never bind; the window is therefore scaled to the same rate over one minute (1,000 requests
//! per 60 s), which makes the steady-state limit bind after the first 1,000 requests, as it does
//! for a large mailbox against Microsoft; Skyvault's governor is given the same scaled window,
//! as it keeps to Microsoft's by default. It prints items, wall time, items per minute, the
//! requests the simulator counted for the restore, the ceiling the limits put on them (the time
//! the slowest of "4 at a time at the mean latency", "no more than 1,000 in any 60 s" and "no
//! more than 150 MB of uploads in any 5 minutes" allows) and the ratio between the two.
//! Microsoft 365 Backup publishes 200–300 items per minute per mailbox; the target is at least
//! 870.
//!
//! Run with `cargo bench --bench restore`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use futures::TryStreamExt;
use serde_json::json;
use skyvault::backup::{BackupServices, BackupTarget, back_up};
use skyvault::crypto::MasterKey;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::m365::{GovernorLimits, GraphClient, M365Settings, MailboxApi, MailboxRef, TenantId};
use skyvault::restore::mailbox::{self, FolderMode, MailboxTarget};
use skyvault::simulator::{SimulatorOptions, TenantSpec, ThrottleLimits};
use skyvault::storage::{BackupStorage, StorageLocation, Workload, catalog};
use support::sim::Sim;
use support::sink::Count;
use url::Url;

const LATENCY_MS: u64 = 20;
const JITTER_MS: u64 = 30;
const CONCURRENCY: f64 = 4.0;
const REQUESTS_PER_WINDOW: f64 = 1_000.0;
const WINDOW_SECONDS: f64 = 60.0;
/// Outlook's upload limit: 150 MB of request bodies per 5 minutes per mailbox.
const UPLOAD_BYTES_PER_WINDOW: f64 = 150.0 * 1024.0 * 1024.0;
const UPLOAD_WINDOW_SECONDS: f64 = 300.0;

fn size(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
    let messages = size("SKYVAULT_BENCH_MESSAGES", 1_650);
    let clock = skyvault::clock::system();
    let dir = tempfile::tempdir().unwrap();
    let sim = skyvault::simulator::start(SimulatorOptions {
        port: 0,
        tenants: vec![TenantSpec {
            organization: "Bench Corp".into(),
            seed: 12,
            users: 2,
            groups: 1,
            teams: 0,
            security_groups: 0,
            sites: 1,
            messages_per_mailbox: messages,
            files_per_drive: 1,
            licences: Some(2),
            ..TenantSpec::default()
        }],
        limits: ThrottleLimits {
            mailbox_requests: REQUESTS_PER_WINDOW as u32,
            mailbox_window_seconds: WINDOW_SECONDS,
            ..ThrottleLimits::default()
        },
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
    let db = skyvault::db::connect_and_migrate(&bench_database.url)
        .await
        .unwrap();
    let storage = BackupStorage::new(
        db,
        StorageLocation::Folder(dir.path().join("storage")),
        MasterKey::random(),
        clock.clone(),
    );
    let url = Url::parse(&base).unwrap();
    let mut settings = M365Settings::new(
        "bench-client",
        "bench-secret",
        Url::parse("https://console.example/cb").unwrap(),
    )
    .with_base_url(&url);
    // The governor keeps to the same scaled window the simulator enforces, as it keeps to
    // Microsoft's 10,000 per 10 minutes by default.
    settings.limits = GovernorLimits {
        mailbox_requests_per_window: REQUESTS_PER_WINDOW as u32,
        mailbox_window: std::time::Duration::from_secs_f64(WINDOW_SECONDS),
        ..GovernorLimits::default()
    };
    let graph = GraphClient::new(settings, clock.clone()).unwrap();
    let tenant = TenantId(sim.tenant().tenant_id);
    let client = graph.tenant(tenant);
    let users: Vec<_> = client.users().try_collect().await.unwrap();
    let (source, target_user) = (users[0].id.clone(), users[1].id.clone());
    let services = BackupServices {
        graph: graph.clone(),
        storage: storage.clone(),
        clock,
    };
    let customer = CustomerId::new();
    let scope = skyvault::storage::scope::SystemScope::worker(customer, "restore benchmark");
    let report = back_up(
        &services,
        &BackupTarget {
            customer,
            org: OrgId::new(),
            tenant,
            item: ItemId::new(),
            graph_id: source.clone(),
            workload: Workload::Mailbox,
            display_name: "source".into(),
            encrypted_repository: None,
        },
        &(),
    )
    .await
    .unwrap();
    let point = report.outcome.recovery_point.id;
    let entries = catalog::list_items(storage.db(), &scope, point)
        .await
        .unwrap();
    let items = mailbox::plan_items(&entries);
    let total = items.len();
    // What the imports send: each export base64-encoded in a small JSON body.
    let upload_bytes: f64 = items
        .iter()
        .filter_map(|item| item.export.as_ref())
        .map(|export| (export.size as f64 / 3.0).ceil() * 4.0 + 100.0)
        .sum();
    let settings = client.exchange_mailboxes(&target_user).await.unwrap();
    let target = MailboxTarget {
        user_id: target_user.clone(),
        mailbox: MailboxRef {
            id: settings.primary.unwrap(),
            owner: target_user.clone(),
            api: MailboxApi::V1,
        },
        folders: FolderMode::NewFolder("Restored bench".into()),
    };
    // The backup's requests fell on the source mailbox; the target's window starts empty.
    control.control("DELETE", "counters", None).await;
    println!(
        "mailbox restore: {total} items into one mailbox through the import API, \
         {LATENCY_MS}–{} ms per request, 4 concurrent and {REQUESTS_PER_WINDOW} requests per \
         {WINDOW_SECONDS} s per mailbox enforced",
        LATENCY_MS + JITTER_MS
    );
    let sink = Count::default();
    let started = Instant::now();
    let summary =
        mailbox::restore_items(&client, &storage, &scope, point, items, &target, &sink).await;
    let elapsed = started.elapsed().as_secs_f64();
    let counters = control.control("GET", "counters", None).await;
    let requests = counters["total"].as_u64().unwrap_or(0) as f64;
    let mean_latency = (LATENCY_MS as f64 + JITTER_MS as f64 / 2.0) / 1000.0;
    let by_concurrency = requests * mean_latency / CONCURRENCY;
    // A sliding window: request k + 1,000 goes at least a window after request k.
    let by_rate = ((requests - 1.0).max(0.0) / REQUESTS_PER_WINDOW).floor() * WINDOW_SECONDS;
    let by_upload = (upload_bytes / UPLOAD_BYTES_PER_WINDOW).floor() * UPLOAD_WINDOW_SECONDS;
    let ceiling = by_concurrency.max(by_rate).max(by_upload);
    let throttled = counters["by_status"]["429"].as_u64().unwrap_or(0);
    let restored = summary.restored + summary.restored_with_loss;
    println!(
        "restored {restored} of {total} ({} failed) in {elapsed:.1} s: {:.0} items per minute",
        summary.failed,
        restored as f64 * 60.0 / elapsed
    );
    println!(
        "requests {requests:.0} ({:.2} per item, {throttled} answered 429), {:.1} MB uploaded; \
         ceiling from the limits {ceiling:.1} s (concurrency {by_concurrency:.1} s, request rate \
         {by_rate:.1} s, upload bytes {by_upload:.1} s); ratio {:.2}",
        requests / total.max(1) as f64,
        upload_bytes / 1e6,
        elapsed / ceiling.max(0.001),
    );
}
