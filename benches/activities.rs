//! Activities benchmark: the page with 100,000 jobs, and 500 live progress streams on one node.
//!
//! One customer's Activities holds `SKYVAULT_BENCH_JOBS` (default 100,000) finished jobs of
//! every kind and outcome over the last 200 days, plus one running plan run. The console runs
//! in this process on a fresh database (SQLite in a temporary folder, or PostgreSQL when
//! `SKYVAULT_BENCH_DATABASE_URL` is set); a partner administrator signs in over HTTP on
//! loopback. It reports:
//! 1. the server time of Activities' first page (newest first), filtered by kind and status,
//!    sorted by status, and a page deep in the list: median and p90 of 30 requests each;
//! 2. `SKYVAULT_BENCH_STREAMS` (default 500) clients holding the running job's server-sent
//!    events open at once while the job reports progress ten times a second: the process's
//!    resident memory before and with the streams open (per stream), that every stream received
//!    the progress, and the first page's time while they are open.
//!
//! Run with `cargo bench --bench activities`. Targets: first page under 100 ms; 500 streams held
//! without slowing the console.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use sea_orm::{ActiveValue::Set, EntityTrait};
use skyvault::accounts::tenancy;
use skyvault::config::Settings;
use skyvault::jobs::entities::job;
use skyvault::jobs::progress::{self, LiveProgress};

fn size(name: &str, default: usize) -> usize {
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

const KINDS: [&str; 5] = ["plan_run", "directory_sync", "retention", "prune", "verify"];

fn finished_job(customer: uuid::Uuid, n: usize, now: chrono::DateTime<Utc>) -> job::ActiveModel {
    let started = now - chrono::Duration::minutes((n as i64) * 3);
    // One in 25 failed, the rest succeeded: a normal installation's history.
    let failed = n.is_multiple_of(25);
    job::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        kind: Set(KINDS[n % KINDS.len()].into()),
        customer_id: Set(customer),
        org_id: Set(None),
        status: Set(if failed { "failed" } else { "succeeded" }.into()),
        queued_at: Set(started),
        started_at: Set(Some(started)),
        finished_at: Set(Some(
            started + chrono::Duration::seconds(40 + (n % 300) as i64),
        )),
        lease_until: Set(None),
        attempts: Set(1),
        progress: Set(None),
        summary: Set((!failed).then(|| format!("{} items backed up, {} KB", n % 40, n % 9000))),
        error: Set(failed.then(|| "Microsoft 365 answered 503 Service Unavailable".into())),
        payload: Set(None),
        unique_key: Set(None),
        not_before: Set(None),
        max_attempts: Set(3),
        resource_key: Set(None),
        plan_id: Set(None),
    }
}

async fn run() {
    let jobs = size("SKYVAULT_BENCH_JOBS", 100_000);
    let streams = size("SKYVAULT_BENCH_STREAMS", 500);
    let clock = skyvault::clock::system();
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let bench_database = support::BenchDatabase::create(dir.path()).await;
    let database_url = bench_database.url.clone();
    let mut settings = Settings {
        bind: address.to_string(),
        data_dir: dir.path().display().to_string(),
        database_url,
        m365_client_id: "bench-client".into(),
        m365_client_secret: "bench-secret".into(),
        ..Settings::default()
    };
    settings.log = "warn".into();
    let state = skyvault::app::prepare(settings, clock.clone())
        .await
        .unwrap();
    let (partner, access) = support::partner_admin(&state.db, clock.as_ref()).await;
    let customer = tenancy::create_customer(
        &state.db,
        clock.as_ref(),
        &access,
        partner.id.into(),
        "Bench Customer",
    )
    .await
    .unwrap();

    let started = Instant::now();
    let now = clock.now();
    let rows: Vec<job::ActiveModel> = (1..=jobs)
        .map(|n| finished_job(customer.id, n, now))
        .collect();
    for chunk in rows.chunks(500) {
        job::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&state.db)
            .await
            .unwrap();
    }
    let running = uuid::Uuid::new_v4();
    let mut row = finished_job(customer.id, 0, now);
    row.id = Set(running);
    row.kind = Set("plan_run".into());
    row.status = Set("running".into());
    row.finished_at = Set(None);
    row.summary = Set(None);
    row.error = Set(None);
    row.progress = Set(Some("Starting".into()));
    job::Entity::insert(row)
        .exec_without_returning(&state.db)
        .await
        .unwrap();
    println!(
        "{} jobs written in {:.1} s; database: {}",
        jobs + 1,
        started.elapsed().as_secs_f64(),
        bench_database.label()
    );

    let server = skyvault::app::web_server(state.clone(), listener).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let http = signed_in(&address.to_string(), jar.clone()).await;
    let base = format!("http://{address}/c/{}/activities", customer.id);
    let pages = [
        ("first page", base.clone()),
        (
            "failed plan runs",
            format!("{base}?kind=plan_run&status=failed"),
        ),
        ("sorted by status", format!("{base}?sort=status&dir=asc")),
        ("page 500", format!("{base}?page=500")),
    ];
    for (label, url) in &pages {
        let (median, p90) = time_page(&http, url, 30).await;
        println!("Activities, {label}: median {median:.1} ms, p90 {p90:.1} ms (30 requests)");
    }

    // Live progress: `streams` clients on the running job's events.
    let events = format!("{base}/{running}/events");
    let before = support::memory_mib("VmRSS");
    let received = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    let opened = Instant::now();
    for _ in 0..streams {
        // One client (one connection) each, as separate browsers would hold, sharing the
        // session cookie rather than signing in 500 times.
        let client = client(jar.clone());
        let response = client.get(&events).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let received = received.clone();
        clients.push(tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut counted = false;
            while let Some(Ok(chunk)) = body.next().await {
                if !counted && String::from_utf8_lossy(&chunk).contains("Mailbox 7 of 10") {
                    received.fetch_add(1, Ordering::Relaxed);
                    counted = true;
                }
            }
        }));
    }
    let open_time = opened.elapsed();
    let publisher = tokio::spawn(async move {
        for tick in 0u64.. {
            progress::hub().publish(
                running,
                LiveProgress {
                    label: format!("Mailbox {} of 10", 1 + tick % 10),
                    target_index: tick % 10,
                    target_total: 10,
                    items_done: tick,
                    items_total: Some(100_000),
                    bytes: tick * 4096,
                    current: Some(format!("Inbox/message {tick}")),
                    throttled_until: None,
                },
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    let with = support::memory_mib("VmRSS");
    let (median, p90) = time_page(&http, &base, 30).await;
    println!(
        "{streams} progress streams opened in {:.1} s; {} of them received the live progress \
         within 5 s; resident memory {before:.0} MiB before, {with:.0} MiB with them open \
         ({:.1} KiB per stream, client side included)",
        open_time.as_secs_f64(),
        received.load(Ordering::Relaxed),
        (with - before) * 1024.0 / streams.max(1) as f64
    );
    println!(
        "Activities, first page with {streams} streams open: median {median:.1} ms, p90 {p90:.1} ms"
    );
    publisher.abort();
    for client in clients {
        client.abort();
    }
    handle.stop(false).await;
}

fn client(jar: Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client signed in as the partner administrator; its session cookie lands in `jar`.
async fn signed_in(address: &str, jar: Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    let http = client(jar);
    support::sign_in(&http, address).await;
    http
}

/// Median and p90 of `n` requests of `url`, in milliseconds, each read to its end.
async fn time_page(http: &reqwest::Client, url: &str, n: usize) -> (f64, f64) {
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let _ = response.bytes().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e3;
    (at(0.5), at(0.9))
}
