//! Demo mode: with no Microsoft app configured, `skyvault serve` starts the built-in Microsoft
//! 365 simulator beside the console, registers Skyvault's app with it and points the Graph
//! client at it, so the whole product can be tried without a Microsoft tenant.

use rand::distr::{Alphanumeric, SampleString};

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::simulator::{self, RunningSimulator, SimulatorError, SimulatorOptions, TenantSpec};

pub const DEMO_CLIENT_ID: &str = "5kyva417-0000-4000-8000-00000000demo";

/// Starts the simulator and rewrites `settings` so the console uses it.
pub async fn start_demo_simulator(
    settings: &mut Settings,
    clock: SharedClock,
) -> Result<RunningSimulator, SimulatorError> {
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 40);
    let redirect_uri = consent_redirect_uri(settings);
    let options = SimulatorOptions {
        port: settings.demo_simulator_port,
        tenants: vec![TenantSpec::default()],
        clock,
        ..SimulatorOptions::demo()
    };
    let running = simulator::start(options).await?;
    running.register_app(DEMO_CLIENT_ID, &secret, &[redirect_uri.as_str()]);
    settings.m365_client_id = DEMO_CLIENT_ID.to_string();
    settings.m365_client_secret = secret;
    settings.m365_authority_url = running.base_url().trim_end_matches('/').to_string();
    settings.m365_graph_url = running.base_url().trim_end_matches('/').to_string();
    Ok(running)
}

/// Where Microsoft sends the admin back after consent; register it on the Entra app.
pub fn consent_redirect_uri(settings: &Settings) -> String {
    format!("{}/m365/consent/callback", settings.public_url())
}
