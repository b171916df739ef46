//! Simulator benchmark (plain main, prints figures): start-up time and memory of a generated
//! tenant of 1,000 users × 1,000 messages, and the rate of small Graph requests with throttling
//! off. Run with `cargo bench --bench simulator` (release) on an otherwise idle machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use skyvault::simulator::{SimulatorOptions, TenantSpec, ThrottleLimits, start};

const CLIENT_ID: &str = "bench-client-0000-0000-000000000000";
const SECRET: &str = "bench-secret";

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    skyvault::install_crypto_provider();
    let users: u32 = std::env::var("SIM_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let messages: u32 = std::env::var("SIM_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let seconds: u64 = std::env::var("SIM_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let concurrency: usize = std::env::var("SIM_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let rss_before = rss_kib("VmRSS:");
        let started = Instant::now();
        let options = SimulatorOptions {
            tenants: vec![TenantSpec { users, messages_per_mailbox: messages, groups: 50, teams: 20, sites: 20, files_per_drive: 100, ..TenantSpec::default() }],
            limits: ThrottleLimits::disabled(),
            workers: cores,
            ..SimulatorOptions::default()
        };
        let sim = start(options).await.unwrap();
        let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
        let base = sim.base_url().to_owned();
        let ready = http.get(format!("{base}/")).send().await.unwrap();
        assert!(ready.status().is_success());
        let startup = started.elapsed();
        let rss_started = rss_kib("VmRSS:");
        println!("tenant: {users} users x {messages} messages (+50 groups, 20 sites, 100 files per drive)");
        println!("start-up: {:.3} s until the first answer", startup.as_secs_f64());
        println!("RSS: {} MiB before, {} MiB after start-up (whole bench process)", rss_before / 1024, rss_started / 1024);

        sim.register_app(CLIENT_ID, SECRET, &["http://127.0.0.1/cb"]);
        let tenant = sim.tenant().tenant_id;
        http.post(format!("{base}/_sim/tenants/{tenant}/consents/{CLIENT_ID}")).bearer_auth(sim.admin_token()).send().await.unwrap();
        let token: Value = http
            .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
            .form(&[("client_id", CLIENT_ID), ("client_secret", SECRET), ("scope", "https://graph.microsoft.com/.default"), ("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        let listing: Value = http.get(format!("{base}/v1.0/users?$top=999&$select=id")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let ids: Arc<Vec<String>> = Arc::new(listing["value"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect());

        // A full message delta of one 1,000-message mailbox's inbox, page by page.
        let delta_started = Instant::now();
        let mut url = format!("{base}/v1.0/users/{}/mailFolders/inbox/messages/delta", ids[1]);
        let (mut pages, mut items) = (0, 0);
        loop {
            let body: Value = http.get(&url).bearer_auth(&token).header("Prefer", "odata.maxpagesize=100").send().await.unwrap().json().await.unwrap();
            pages += 1;
            items += body["value"].as_array().map_or(0, Vec::len);
            match body["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => break,
            }
        }
        println!("inbox delta: {items} messages in {pages} pages, {:.3} s", delta_started.elapsed().as_secs_f64());

        // Small requests: GET /users/{id} and GET /users/{id}/mailFolders/inbox, round robin.
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let load_started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..concurrency {
            let (http, base, token, ids, done, failed) = (http.clone(), base.clone(), token.clone(), ids.clone(), done.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = worker;
                while Instant::now() < deadline {
                    let id = &ids[n % ids.len()];
                    let url = if n % 2 == 0 { format!("{base}/v1.0/users/{id}") } else { format!("{base}/v1.0/users/{id}/mailFolders/inbox") };
                    match http.get(url).bearer_auth(&token).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    n += concurrency;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = load_started.elapsed().as_secs_f64();
        let ok = done.load(Ordering::Relaxed);
        println!(
            "small Graph requests: {ok} in {elapsed:.1} s = {:.0} req/s with {concurrency} concurrent clients, {} failed (client and server share the machine)",
            ok as f64 / elapsed,
            failed.load(Ordering::Relaxed)
        );
        println!("RSS after load: {} MiB (peak {} MiB)", rss_kib("VmRSS:") / 1024, rss_kib("VmHWM:") / 1024);
        sim.stop().await;
    });
}
