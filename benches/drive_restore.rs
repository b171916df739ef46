//! OneDrive restore benchmark: a 10 GB OneDrive restored into another user's OneDrive.
//!
//! One simulated user's OneDrive holds `SKYVAULT_BENCH_RESTORE_MB` (10,000) MB as 50 MB files
//! (deterministic content made block by block, so the source costs no memory). It is backed up
//! into a local repository, then every file is restored into another user's OneDrive under a
//! new folder, as a restore job does: each file through an upload session in 10 MiB chunks (a
//! multiple of 320 KiB), streamed from the repository. The simulator answers with 20–50 ms
//! latency and enforces SharePoint's resource units for a tenant of up to 1,000 licences (1,200
//! RU per minute per app; 2 per upload request, chunk PUTs included, 1 per single-item read).
//!
//! It prints the wall time, the requests by endpoint, their resource units, and the ceiling the
//! upload limits put on them: the longer of the resource units at 1,200 per minute and the bytes
//! at the 400 GB per hour ingress limit per app per tenant (§5.3). Target: within 1.2 × that
//! ceiling. The simulator keeps restored files in memory, so the peak RSS printed includes the
//! 10 GB it received.
//!
//! Run with `cargo bench --bench drive_restore`; a smaller drive with
//! `SKYVAULT_BENCH_RESTORE_MB=1000`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use futures::TryStreamExt;
use serde_json::json;
use skyvault::backup::{BackupServices, BackupTarget, back_up};
use skyvault::crypto::MasterKey;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::m365::{GraphClient, M365Settings, TenantId};
use skyvault::restore::drive::{self, Collision, DriveTarget};
use skyvault::simulator::{SimulatorOptions, TenantSpec};
use skyvault::storage::{BackupStorage, StorageLocation, Workload, catalog};
use support::sim::Sim;
use support::sink::Count;
use url::Url;

const LATENCY_MS: u64 = 20;
const JITTER_MS: u64 = 30;
/// SharePoint's resource units per app per tenant per minute, up to 1,000 licences (§5.3).
const RU_PER_MINUTE: f64 = 1_200.0;
/// Ingress per app per tenant per hour (§5.3, newer revision).
const INGRESS_BYTES_PER_HOUR: f64 = 400e9;
const FILE_BYTES: u64 = 50_000_000;

fn size(name: &str, default: u64) -> u64 {
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
    let megabytes = size("SKYVAULT_BENCH_RESTORE_MB", 10_000);
    let clock = skyvault::clock::system();
    let dir = tempfile::tempdir().unwrap();
    let sim = skyvault::simulator::start(SimulatorOptions {
        port: 0,
        tenants: vec![TenantSpec {
            organization: "Bench Corp".into(),
            seed: 12,
            users: 2,
            groups: 0,
            teams: 0,
            security_groups: 0,
            sites: 1,
            messages_per_mailbox: 1,
            files_per_drive: 0,
            licences: Some(2),
            ..TenantSpec::default()
        }],
        clock: clock.clone(),
        workers: 2,
        ..SimulatorOptions::default()
    })
    .await
    .unwrap();
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
    let db = skyvault::db::connect_and_migrate(&bench_database.url)
        .await
        .unwrap();
    let storage = BackupStorage::new(
        db,
        StorageLocation::Folder(dir.path().join("storage")),
        MasterKey::random(),
        clock.clone(),
    );
    let settings = M365Settings::new(
        "bench-client",
        "bench-secret",
        Url::parse("https://console.example/cb").unwrap(),
    )
    .with_base_url(&Url::parse(&control.base).unwrap());
    let graph = GraphClient::new(settings, clock.clone()).unwrap();
    let tenant = TenantId(sim.tenant().tenant_id);
    let client = graph.tenant(tenant);
    let users: Vec<_> = client.users().try_collect().await.unwrap();
    let source_drive = client.user_drive(&users[0].id).await.unwrap().unwrap();
    let target_drive = client.user_drive(&users[1].id).await.unwrap().unwrap();
    let count = megabytes * 1_000_000 / FILE_BYTES;
    for n in 0..count {
        control
            .control(
                "POST",
                &format!("tenants/default/drives/{}/synthetic-files", source_drive.id),
                Some(json!({"name": format!("video {n:03}.mp4"), "size": FILE_BYTES})),
            )
            .await;
    }
    let customer = CustomerId::new();
    let services = BackupServices {
        graph: graph.clone(),
        storage: storage.clone(),
        clock,
    };
    let started = Instant::now();
    let report = back_up(
        &services,
        &BackupTarget {
            customer,
            org: OrgId::new(),
            tenant,
            item: ItemId::new(),
            graph_id: users[0].id.clone(),
            workload: Workload::OneDrive,
            display_name: "source".into(),
            encrypted_repository: None,
        },
        &(),
    )
    .await
    .unwrap();
    assert!(report.outcome.failed.is_empty(), "backup failed items");
    println!(
        "backed up a OneDrive of {:.1} GB ({count} files of 50 MB) in {:.1} s",
        (count * FILE_BYTES) as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    let scope = skyvault::storage::scope::SystemScope::worker(customer, "drive restore benchmark");
    let point = report.outcome.recovery_point.id;
    let files = drive::plan_files(
        &catalog::list_items(storage.db(), &scope, point)
            .await
            .unwrap(),
    );
    control
        .control(
            "PUT",
            "faults/drive",
            Some(json!({"latency_ms": LATENCY_MS, "latency_jitter_ms": JITTER_MS})),
        )
        .await;
    control.control("DELETE", "counters", None).await;
    let sink = Count::default();
    let before = support::memory_mib("VmHWM");
    let started = Instant::now();
    let summary = drive::restore_files(
        &client,
        &storage,
        &scope,
        point,
        files,
        &DriveTarget {
            drive_id: target_drive.id.clone(),
            under: Some("Restored bench".into()),
            collision: Collision::Skip,
        },
        &sink,
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let counters = control.control("GET", "counters", None).await;
    let endpoints = counters["by_endpoint"].as_object().unwrap().clone();
    // SharePoint's table (§5.3): uploads, creates and multi-item queries 2 RU, single reads 1.
    let units: f64 = endpoints
        .iter()
        .map(|(name, n)| {
            let n = n.as_u64().unwrap() as f64;
            let two = name.starts_with("PUT")
                || name.starts_with("POST")
                || name.starts_with("PATCH")
                || name.contains("createUploadSession")
                || name.contains("children");
            if two { 2.0 * n } else { n }
        })
        .sum();
    let by_units = units / RU_PER_MINUTE * 60.0;
    let by_bytes = summary.bytes as f64 / INGRESS_BYTES_PER_HOUR * 3_600.0;
    let ceiling = by_units.max(by_bytes);
    println!(
        "restored {} of {count} files ({} failed), {:.2} GB, in {seconds:.1} s ({:.0} MB/s); \
         peak RSS {:.0} MiB (before the restore {before:.0} MiB)",
        summary.restored,
        summary.failed,
        summary.bytes as f64 / 1e9,
        summary.bytes as f64 / 1e6 / seconds,
        support::memory_mib("VmHWM"),
    );
    println!(
        "requests {} ({endpoints:?}), {units:.0} RU; ceiling from the upload limits {ceiling:.1} s \
         (RU {by_units:.1} s, ingress {by_bytes:.1} s at 400 GB per hour); ratio {:.2} (target ≤ 1.2)",
        counters["total"],
        seconds / ceiling
    );
}
