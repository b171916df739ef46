//! Discovery benchmark.
//!
//! A simulated tenant of 50,000 users, 10,000 groups and 5,000 sites, with as many licences as
//! users and Microsoft's published throttling limits enforced for that licence count (SharePoint:
//! 4,800 resource units a minute), is synced into a fresh SQLite database (or PostgreSQL when
//! `SKYVAULT_BENCH_DATABASE_URL` is set). It reports the time until the lists are saved (the
//! Users tab is complete), the time until every workload check is done and the ceiling
//! Microsoft's limits put on those checks, the requests and time of a re-sync with no changes,
//! the process's peak memory (console, database client and simulator together), and the server
//! time of the Users tab's first page, measured over HTTP on loopback. Run with
//! `cargo bench --bench discovery` (sizes: `SKYVAULT_BENCH_USERS`, `_GROUPS`, `_SITES`;
//! `SKYVAULT_BENCH_CHECKS=0` skips the checks, which take about ten minutes at full size).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde_json::Value;
use skyvault::accounts::tenancy;
use skyvault::config::Settings;
use skyvault::inventory::entities::organization;
use skyvault::inventory::sync::{check_workloads, list_directory, sync_directory};
use skyvault::simulator::{SimulatorOptions, TenantSpec};

fn size(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn counters(base: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/_sim/counters"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn endpoint_delta(before: &Value, after: &Value) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = after["by_endpoint"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_u64().unwrap() - before["by_endpoint"][k].as_u64().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    out.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    out
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
    let (users, groups, sites) = (
        size("SKYVAULT_BENCH_USERS", 50_000),
        size("SKYVAULT_BENCH_GROUPS", 10_000),
        size("SKYVAULT_BENCH_SITES", 5_000),
    );
    let run_checks = size("SKYVAULT_BENCH_CHECKS", 1) != 0;
    let clock = skyvault::clock::system();
    let dir = tempfile::tempdir().unwrap();
    let sim = skyvault::simulator::start(SimulatorOptions {
        port: 0,
        tenants: vec![TenantSpec {
            organization: "Bench Corp".into(),
            seed: 42,
            users,
            groups: groups * 8 / 10,
            teams: groups / 10,
            security_groups: groups / 10,
            sites,
            messages_per_mailbox: 10,
            files_per_drive: 5,
            licences: Some(users),
            ..TenantSpec::default()
        }],
        clock: clock.clone(),
        ..SimulatorOptions::default()
    })
    .await
    .unwrap();
    let base = sim.base_url().trim_end_matches('/').to_string();
    let tenant = sim.tenant().clone();

    // The console, on a fresh database, with the simulator as Microsoft.
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
        m365_authority_url: base.clone(),
        m365_graph_url: base.clone(),
        ..Settings::default()
    };
    settings.log = "warn".into();
    sim.register_app(
        "bench-client",
        "bench-secret",
        &[&skyvault::demo::consent_redirect_uri(&settings)],
    );
    reqwest::Client::new()
        .post(format!(
            "{base}/_sim/tenants/{}/consents/bench-client",
            tenant.tenant_id
        ))
        .bearer_auth(sim.admin_token())
        .send()
        .await
        .unwrap();
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
    let org = organization::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        customer_id: Set(customer.id),
        tenant_id: Set(tenant.tenant_id.to_string()),
        display_name: Set(tenant.display_name.clone()),
        default_domain: Set(tenant.domain.clone()),
        initial_domain: Set(tenant.domain.clone()),
        added_at: Set(clock.now()),
        last_sync_at: Set(None),
        last_sync_outcome: Set(None),
        next_sync_at: Set(clock.now()),
        item_counts: Set("{}".into()),
    }
    .insert(&state.db)
    .await
    .unwrap();

    println!(
        "tenant: {users} users, {groups} groups, {sites} sites; database: {}",
        if state.settings.database_url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let before = counters(&base, sim.admin_token()).await;
    let started = Instant::now();
    let listed = list_directory(&state.db, clock.as_ref(), &state.graph, &org, &|_: &str| {})
        .await
        .unwrap();
    let list_time = started.elapsed();
    let after_lists = counters(&base, sim.admin_token()).await;
    println!(
        "first sync, lists saved (Users tab complete): {:>8.2} s, {} requests ({})",
        list_time.as_secs_f64(),
        after_lists["total"].as_u64().unwrap() - before["total"].as_u64().unwrap(),
        listed.sentence()
    );
    for (endpoint, n) in endpoint_delta(&before, &after_lists) {
        println!("    {n:>6}  {endpoint}");
    }
    if run_checks {
        let checks = check_workloads(&state.db, clock.as_ref(), &state.graph, &org, &|_: &str| {})
            .await
            .unwrap();
        let check_time = started.elapsed();
        let after_checks = counters(&base, sim.admin_token()).await;
        let delta = endpoint_delta(&after_lists, &after_checks);
        let drive_checks: u64 = delta
            .iter()
            .filter(|(e, _)| e.contains("/drive"))
            .map(|(_, n)| n)
            .sum();
        let ru_per_minute = skyvault::m365::throttle::files_resource_units_for_licences(users);
        println!(
            "first sync, every check done: {:>8.2} s ({} checked, {} could not be checked)",
            check_time.as_secs_f64(),
            checks.checked,
            checks.unchecked
        );
        println!(
            "    ceiling: {drive_checks} OneDrive checks at 1 RU each under {ru_per_minute} RU/min = {:.1} s; mailbox checks go to separate mailboxes (4 concurrent, 10,000 per 10 min each)",
            drive_checks as f64 * 60.0 / f64::from(ru_per_minute)
        );
        for (endpoint, n) in delta {
            println!("    {n:>6}  {endpoint}");
        }
        let throttled: Value = reqwest::Client::new()
            .get(format!("{base}/_sim/throttling/events"))
            .bearer_auth(sim.admin_token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        println!(
            "    throttling answers from the simulator: {}",
            throttled.as_array().map_or(0, Vec::len)
        );
    }
    let after_first = counters(&base, sim.admin_token()).await;

    let started = Instant::now();
    let again = sync_directory(&state.db, clock.as_ref(), &state.graph, &org, &|_: &str| {})
        .await
        .unwrap();
    let again_time = started.elapsed();
    let after_again = counters(&base, sim.admin_token()).await;
    let again_requests =
        after_again["total"].as_u64().unwrap() - after_first["total"].as_u64().unwrap();
    println!(
        "re-sync, no change: {:>8.2} s, {again_requests} requests ({})",
        again_time.as_secs_f64(),
        again.sentence()
    );
    for (endpoint, n) in endpoint_delta(&after_first, &after_again) {
        println!("    {n:>6}  {endpoint}");
    }
    println!(
        "peak memory (whole process): {:.0} MiB",
        support::memory_mib("VmHWM")
    );

    skyvault::inventory::items::refresh_counts(&state.db, org.id)
        .await
        .unwrap();
    // Where a page's time goes: the domain calls on their own.
    let customer_scope = access
        .customer(&state.db, customer.id.into())
        .await
        .unwrap();
    let org_scope =
        skyvault::inventory::organizations::organization(&state.db, &customer_scope, org.id.into())
            .await
            .unwrap();
    for (label, search) in [
        ("list_items, first page", ""),
        ("list_items, search", "smith"),
    ] {
        let started = Instant::now();
        for _ in 0..10 {
            let query = skyvault::inventory::items::ItemQuery {
                search: search.into(),
                page: 0,
                ..Default::default()
            };
            skyvault::inventory::items::list_items(
                &state.db,
                &org_scope,
                skyvault::inventory::ItemKind::User,
                &query,
            )
            .await
            .unwrap();
        }
        println!("{label}: {:.1} ms", started.elapsed().as_secs_f64() * 100.0);
    }
    let started = Instant::now();
    for _ in 0..10 {
        skyvault::inventory::items::count_items(&state.db, org.id)
            .await
            .unwrap();
    }
    println!(
        "count_items: {:.1} ms",
        started.elapsed().as_secs_f64() * 100.0
    );

    // The Users tab over HTTP, signed in as the partner administrator managing the customer.
    let server = skyvault::app::web_server(state.clone(), listener).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    support::sign_in(&http, &address.to_string()).await;
    let url = format!(
        "http://{address}/c/{}/m365/{}?tab=users",
        customer.id, org.id
    );
    let search = format!(
        "http://{address}/c/{}/m365/{}?tab=users&q=smith",
        customer.id, org.id
    );
    for (label, url) in [
        ("Users tab, first page", &url),
        ("Users tab, search", &search),
    ] {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            let response = http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let _ = response.bytes().await.unwrap();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{label}: median {:.1} ms, p90 {:.1} ms (30 requests)",
            times[15].as_secs_f64() * 1e3,
            times[27].as_secs_f64() * 1e3
        );
    }
    handle.stop(false).await;
}
