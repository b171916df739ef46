//! Benchmark: listing a large simulated directory through the Graph client — `users` paged at
//! 999, `users/delta` initial round, and groups — against the simulator with throttling off, so
//! the figure is the client's (and the loopback simulator's) own cost per object.
//!
//! Run: `cargo bench --bench m365_directory` (optionally `SKYVAULT_BENCH_USERS=50000`).

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use skyvault::m365::{DeltaStart, GraphClient, M365Settings, TenantId, collect_round};
use skyvault::simulator::{SimulatorOptions, TenantSpec, ThrottleLimits, start};
use url::Url;

const CLIENT_ID: &str = "0b8f5d1e-bench-4c6a-9d7e-5a1b2c3d4e5f";
const SECRET: &str = "bench-secret";
const RUNS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

type BenchResult = Result<(), Box<dyn std::error::Error>>;

fn main() -> BenchResult {
    skyvault::install_crypto_provider();
    let users: u32 = std::env::var("SKYVAULT_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let result: BenchResult = async {
            let spec = TenantSpec {
                users,
                groups: users / 20,
                teams: users / 100,
                security_groups: users / 100,
                sites: 10,
                messages_per_mailbox: 0,
                files_per_drive: 0,
                ..TenantSpec::small("Bench Corp", 11)
            };
            let sim = start(SimulatorOptions {
                tenants: vec![spec],
                limits: ThrottleLimits::disabled(),
                workers: 2,
                ..SimulatorOptions::default()
            })
            .await?;
            sim.register_app(CLIENT_ID, SECRET, &["https://bench.invalid/cb"]);
            let http = reqwest::Client::new();
            http.post(format!(
                "{}/_sim/tenants/default/consents/{CLIENT_ID}",
                sim.base_url()
            ))
            .bearer_auth(sim.admin_token())
            .send()
            .await?
            .error_for_status()?;
            let base = Url::parse(sim.base_url())?;
            let settings =
                M365Settings::new(CLIENT_ID, SECRET, Url::parse("https://bench.invalid/cb")?)
                    .with_base_url(&base);
            let client = GraphClient::new(settings, skyvault::clock::system())?;
            let graph = client.tenant(TenantId(sim.tenant().tenant_id));
            graph.organization().await?; // token fetched outside the timings

            let mut list = Vec::new();
            let mut delta = Vec::new();
            let mut groups = Vec::new();
            for _ in 0..RUNS {
                let t = Instant::now();
                let n = graph
                    .users()
                    .try_fold(0usize, |n, _| async move { Ok(n + 1) })
                    .await?;
                list.push(t.elapsed());
                assert_eq!(n, users as usize);

                let t = Instant::now();
                let round = collect_round(graph.users_delta(DeltaStart::Initial)).await?;
                delta.push(t.elapsed());
                assert_eq!(round.changes.len(), users as usize);

                let t = Instant::now();
                let g: Vec<_> = graph.groups().try_collect().await?;
                groups.push(t.elapsed());
                assert!(!g.is_empty());
            }
            let report = |name: &str, n: u32, samples: Vec<Duration>| {
                let m = median(samples);
                println!(
                    "{name:<28} {n:>7} objects  median {:>8.1} ms  {:>9.0} objects/s",
                    m.as_secs_f64() * 1e3,
                    f64::from(n) / m.as_secs_f64()
                );
            };
            println!("m365_directory: {RUNS} runs each, throttling off, loopback simulator");
            report("users (paged, $top=999)", users, list);
            report("users/delta (initial round)", users, delta);
            report("groups (paged)", users / 20 + users / 100, groups);
            sim.stop().await;
            Ok(())
        }
        .await;
        result
    })
}
