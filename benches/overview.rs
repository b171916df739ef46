//! Overview benchmark: the partner's Customers list with every customer's state, and a
//! customer's Overview, for a partner with many customers.
//!
//! Seeds `SKYVAULT_BENCH_CUSTOMERS` (default 1,000) customers under one partner, each with one
//! organization of `SKYVAULT_BENCH_USERS` (default 50) users, one enabled "All users" plan for
//! mailboxes and OneDrives, a month of nightly runs (`SKYVAULT_BENCH_DAYS`, default 30; the
//! last run's per-item outcomes recorded, one customer in ten with a failed or partly failed
//! last run), twenty archives with a recovery point per night each, and an open alert for one
//! customer in ten. Then it reports the server time of the Customers page (default order, sorted
//! by state, filtered to failed customers), the partner's Alerts and Usage pages, and one
//! customer's Overview, each measured over HTTP on loopback as the median and 90th percentile of
//! 20 requests; and the domain call behind the Customers list on its own.
//!
//! PostgreSQL when `SKYVAULT_BENCH_DATABASE_URL` is set (a fresh database is created on that
//! server and dropped after), else SQLite in a temporary folder. Run with
//! `cargo bench --bench overview`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait};
use skyvault::accounts::tenancy;
use skyvault::clock::{ManualClock, SharedClock};
use skyvault::config::Settings;
use skyvault::inventory::entities::{organization, protected_item};
use skyvault::jobs::alerts::entities::alert;
use skyvault::jobs::entities::{job, job_item};
use skyvault::plans::entities::plan;
use uuid::Uuid;

fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Inserts rows in batches small enough for either database's parameter limit.
async fn insert_all<A>(db: &DatabaseConnection, rows: Vec<A>)
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<A> = rows.by_ref().take(200).collect();
        <A::Entity as EntityTrait>::insert_many(batch)
            .exec_without_returning(db)
            .await
            .unwrap();
    }
}

/// The catalog's tables belong to `storage`, which has no bulk writer for made-up points: the
/// benchmark writes their rows directly.
async fn insert_storage(
    db: &DatabaseConnection,
    archives: Vec<(Uuid, Uuid, Uuid, Uuid)>,
    points: Vec<(Uuid, Uuid, Uuid, i64, chrono::DateTime<Utc>, i64)>,
) {
    for batch in archives.chunks(200) {
        let mut insert = Query::insert();
        insert.into_table(Alias::new("storage_archive")).columns([
            Alias::new("id"),
            Alias::new("customer_id"),
            Alias::new("org_id"),
            Alias::new("item_id"),
            Alias::new("workload"),
            Alias::new("display_name"),
            Alias::new("created_at"),
            Alias::new("last_seq"),
        ]);
        for (id, customer, org, item) in batch {
            insert.values_panic([
                (*id).into(),
                (*customer).into(),
                (*org).into(),
                (*item).into(),
                "mailbox".into(),
                "Bench user".into(),
                Utc::now().into(),
                0i64.into(),
            ]);
        }
        db.execute(&insert).await.unwrap();
    }
    for batch in points.chunks(200) {
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new("storage_recovery_point"))
            .columns([
                Alias::new("id"),
                Alias::new("archive_id"),
                Alias::new("customer_id"),
                Alias::new("seq"),
                Alias::new("snapshot_id"),
                Alias::new("taken_at"),
                Alias::new("status"),
                Alias::new("item_count"),
                Alias::new("failed_count"),
                Alias::new("reused_count"),
                Alias::new("bytes_added"),
                Alias::new("bytes_total"),
            ]);
        for (id, archive, customer, seq, taken, bytes) in batch {
            insert.values_panic([
                (*id).into(),
                (*archive).into(),
                (*customer).into(),
                (*seq).into(),
                format!("{:064x}", id.as_u128()).into(),
                (*taken).into(),
                "complete".into(),
                100i64.into(),
                0i64.into(),
                90i64.into(),
                (*bytes).into(),
                (*bytes * 10).into(),
            ]);
        }
        db.execute(&insert).await.unwrap();
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let customers = size("SKYVAULT_BENCH_CUSTOMERS", 1_000);
    let users = size("SKYVAULT_BENCH_USERS", 50);
    let days = size("SKYVAULT_BENCH_DAYS", 30).max(1);
    let dir = tempfile::tempdir().unwrap();
    let bench_db = support::BenchDatabase::create(dir.path()).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
    let clock: SharedClock = std::sync::Arc::new(ManualClock::new(now));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut settings = Settings {
        bind: address.to_string(),
        data_dir: dir.path().display().to_string(),
        database_url: bench_db.url.clone(),
        // Nothing here calls Microsoft; the client only needs to be configured.
        m365_client_id: "bench-client".into(),
        m365_client_secret: "bench-secret".into(),
        m365_authority_url: "http://127.0.0.1:9".into(),
        m365_graph_url: "http://127.0.0.1:9".into(),
        ..Settings::default()
    };
    settings.log = "warn".into();
    let state = skyvault::app::prepare(settings, clock.clone())
        .await
        .unwrap();
    let db = state.db.clone();

    // The partner, its administrator, its customers (through the console's own function).
    let seeding = Instant::now();
    let (partner, access) = support::partner_admin(&db, clock.as_ref()).await;
    let mut customer_ids = Vec::new();
    for n in 0..customers {
        let customer = tenancy::create_customer(
            &db,
            clock.as_ref(),
            &access,
            partner.id.into(),
            &format!("Customer {n:05}"),
        )
        .await
        .unwrap();
        customer_ids.push(customer.id);
    }

    // Organizations, items, plans, runs, outcomes, alerts, archives and points.
    let (mut orgs, mut items, mut plans, mut jobs, mut outcomes, mut alerts) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut archives, mut points) = (vec![], vec![]);
    for (n, customer) in customer_ids.iter().enumerate() {
        let org = Uuid::new_v4();
        orgs.push(organization::ActiveModel {
            id: Set(org),
            customer_id: Set(*customer),
            tenant_id: Set(Uuid::new_v4().to_string()),
            display_name: Set(format!("Org {n}")),
            default_domain: Set(format!("org{n}.example")),
            initial_domain: Set(format!("org{n}.onmicrosoft.com")),
            added_at: Set(now - chrono::Duration::days(days as i64 + 1)),
            last_sync_at: Set(Some(now - chrono::Duration::hours(3))),
            last_sync_outcome: Set(Some("Succeeded: 0 added".into())),
            next_sync_at: Set(now + chrono::Duration::hours(21)),
            item_counts: Set("{}".into()),
        });
        let mut user_ids = Vec::new();
        for u in 0..users {
            let id = Uuid::new_v4();
            user_ids.push(id);
            items.push(protected_item::ActiveModel {
                id: Set(id),
                org_id: Set(org),
                kind: Set("user".into()),
                graph_id: Set(Uuid::new_v4().to_string()),
                display_name: Set(format!("User {u}")),
                address: Set(format!("user{u}@org{n}.example")),
                detail: Set("Member".into()),
                state: Set("active".into()),
                has_mailbox: Set(Some(true)),
                has_drive: Set(Some(u % 5 != 0)),
                first_seen_at: Set(now - chrono::Duration::days(days as i64)),
                changed_at: Set(now - chrono::Duration::days(days as i64)),
                inactive_since: Set(None),
                checked_at: Set(None),
                check_error: Set(None),
                directory_hints: Set(None),
            });
        }
        let plan_id = Uuid::new_v4();
        plans.push(plan::ActiveModel {
            id: Set(plan_id),
            customer_id: Set(*customer),
            org_id: Set(org),
            name: Set("Everyone".into()),
            enabled: Set(true),
            workloads: Set("mailbox,drive".into()),
            all_kinds: Set("user".into()),
            retention_kind: Set("points".into()),
            retention_value: Set(30),
            start_minute: Set(((n * 15) % 1440) as i32),
            estimated_load: Set(users as i64 * 60),
            seconds_per_item: Set(60),
            next_run_at: Set(now + chrono::Duration::minutes((n % 1440) as i64)),
            last_run_at: Set(Some(now - chrono::Duration::hours(10))),
            version: Set(1),
            encrypted_repository_id: Set(None),
            created_at: Set(now - chrono::Duration::days(days as i64 + 1)),
        });
        for day in 0..days {
            let finished = now - chrono::Duration::hours(10 + 24 * day as i64);
            let last = day == 0;
            let failed = last && n % 10 == 3;
            let partial = last && n % 10 == 7;
            let id = Uuid::new_v4();
            jobs.push(job::ActiveModel {
                id: Set(id),
                kind: Set("plan_run".into()),
                customer_id: Set(*customer),
                org_id: Set(Some(org)),
                status: Set(if failed || partial {
                    "failed"
                } else {
                    "succeeded"
                }
                .into()),
                queued_at: Set(finished - chrono::Duration::minutes(30)),
                started_at: Set(Some(finished - chrono::Duration::minutes(29))),
                finished_at: Set(Some(finished)),
                lease_until: Set(None),
                attempts: Set(1),
                progress: Set(None),
                summary: Set(Some("done".into())),
                error: Set((failed || partial).then(|| "Some items failed.".to_string())),
                payload: Set(None),
                unique_key: Set(None),
                not_before: Set(None),
                max_attempts: Set(3),
                resource_key: Set(Some(format!("plan:{plan_id}"))),
                plan_id: Set(Some(plan_id)),
            });
            if last {
                for (u, item) in user_ids.iter().enumerate() {
                    let bad = failed || (partial && u % 10 == 0);
                    outcomes.push(job_item::ActiveModel {
                        job_id: Set(id),
                        item_id: Set(*item),
                        workload: Set("mailbox".into()),
                        status: Set(if bad { "failed" } else { "backed_up" }.into()),
                        detail: Set(if bad {
                            "[throttled]\nCode: TooManyRequests".into()
                        } else {
                            "Recovery point 30: 100 items".into()
                        }),
                        finished_at: Set(finished),
                    });
                }
            }
        }
        if n % 10 == 3 {
            alerts.push(alert::ActiveModel {
                id: Set(Uuid::new_v4()),
                customer_id: Set(*customer),
                cause: Set("backup_failed".into()),
                subject_key: Set(format!("plan:{plan_id}")),
                subject: Set("Plan “Everyone”".into()),
                message: Set("Some items failed.".into()),
                link: Set(None),
                open_key: Set(Some(format!("{customer}:backup_failed:plan:{plan_id}"))),
                first_seen: Set(now - chrono::Duration::hours(9)),
                last_seen: Set(now - chrono::Duration::hours(9)),
                occurrences: Set(1),
                acknowledged_by: Set(None),
                acknowledged_at: Set(None),
                resolved_at: Set(None),
                mail_state: Set("off".into()),
                mail_attempts: Set(0),
                mail_next_at: Set(None),
                mail_error: Set(None),
                resolution_mailed: Set(false),
            });
        }
        for item in user_ids.iter().take(20) {
            let archive = Uuid::new_v4();
            archives.push((archive, *customer, org, *item));
            for day in 0..days {
                points.push((
                    Uuid::new_v4(),
                    archive,
                    *customer,
                    (days - day) as i64,
                    now - chrono::Duration::hours(10 + 24 * day as i64),
                    if day + 1 == days { 50_000_000 } else { 400_000 },
                ));
            }
        }
    }
    let counts = (
        jobs.len(),
        outcomes.len(),
        items.len(),
        points.len(),
        alerts.len(),
    );
    insert_all(&db, orgs).await;
    insert_all(&db, items).await;
    insert_all(&db, plans).await;
    insert_all(&db, jobs).await;
    insert_all(&db, outcomes).await;
    insert_all(&db, alerts).await;
    insert_storage(&db, archives, points).await;
    println!(
        "seeded {customers} customers: {} items, {} jobs, {} item outcomes, {} recovery points, {} open alerts in {:.1} s",
        counts.2,
        counts.0,
        counts.1,
        counts.3,
        counts.4,
        seeding.elapsed().as_secs_f64()
    );

    // The domain call behind the Customers list, on its own.
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let ids: Vec<Uuid> = access
            .customers(&db)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        let health = skyvault::reports::fleet::customer_health(&db, &ids, now)
            .await
            .unwrap();
        assert_eq!(health.len(), customers);
        times.push(started.elapsed());
    }
    report("customers and their figures (reports::fleet)", &mut times);

    // Where that time goes: each aggregate on its own.
    let ids: Vec<Uuid> = customer_ids.clone();
    let typed: Vec<skyvault::ids::CustomerId> =
        ids.iter().copied().map(skyvault::ids::CustomerId).collect();
    let mut parts: Vec<(&str, Vec<Duration>)> = Vec::new();
    for _ in 0..5 {
        let mut time = |label: &'static str, started: Instant| {
            let elapsed = started.elapsed();
            match parts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, times)) => times.push(elapsed),
                None => parts.push((label, vec![elapsed])),
            }
        };
        let started = Instant::now();
        skyvault::inventory::organizations::sync_health(&db, &ids)
            .await
            .unwrap();
        time("  organizations and sync health", started);
        let started = Instant::now();
        skyvault::reports::coverage::CoverageFacts::load(&db, &ids)
            .await
            .unwrap()
            .seats();
        time("  seats (coverage facts)", started);
        let started = Instant::now();
        skyvault::storage::catalog::usage::stored_bytes(&db, &typed, None)
            .await
            .unwrap();
        time("  storage used, every customer (sorting by it)", started);
        let started = Instant::now();
        skyvault::storage::catalog::usage::stored_bytes(&db, &typed[..typed.len().min(50)], None)
            .await
            .unwrap();
        time("  storage used, one page of 50 customers", started);
        let started = Instant::now();
        skyvault::reports::runs::run_results(&db, &ids, now - chrono::Duration::hours(24))
            .await
            .unwrap();
        time("  last 24 hours' runs", started);
        let started = Instant::now();
        skyvault::jobs::alerts::open_counts(&db, &ids)
            .await
            .unwrap();
        time("  open alerts", started);
    }
    for (label, mut times) in parts {
        report(label, &mut times);
    }

    // The pages over HTTP, signed in as the partner administrator.
    let server = skyvault::app::web_server(state.clone(), listener).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    support::sign_in(&http, &address.to_string()).await;
    let failing = customer_ids[3];
    for (label, path) in [
        ("Customers, first page", "/customers".to_string()),
        ("Customers, sorted by state", "/customers?sort=state".into()),
        ("Customers, failed only", "/customers?state=failed".into()),
        (
            "Customers, sorted by storage",
            "/customers?sort=storage".into(),
        ),
        ("Partner alerts", "/alerts".into()),
        ("Usage, this month", "/usage".into()),
        ("Customer overview", format!("/c/{failing}/overview")),
    ] {
        let mut times = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let response = http
                .get(format!("http://{address}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let body = response.text().await.unwrap();
            times.push(started.elapsed());
            if path == "/customers?state=failed" {
                let failed = (0..customers).filter(|n| n % 10 == 3).count();
                assert!(body.contains(&format!("{failed} of {customers} customers")));
            }
        }
        report(label, &mut times);
    }
    handle.stop(false).await;
}

fn report(label: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{label}: median {:.1} ms, p90 {:.1} ms ({} runs)",
        at(0.5),
        at(0.9),
        times.len()
    );
}
