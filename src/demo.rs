//! Demo mode: with no Microsoft app configured, `skyvault serve` starts the built-in Microsoft
//! 365 simulator beside the console, registers Skyvault's app with it and points the Graph
//! client at it, so the whole product can be tried without a Microsoft tenant.

use rand::distr::{Alphanumeric, SampleString};

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::inventory::{InventoryError, organizations};
use crate::simulator::{self, RunningSimulator, SimulatorError, SimulatorOptions, TenantSpec};
use sea_orm::DatabaseConnection;

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

/// Gives the demo tenant back the consent of the organizations the database already has. The
/// simulator keeps consent in memory and regenerates the same tenant (same ids, same content)
/// from its seed at every start, so without this every sync after a restart fails with
/// AADSTS700016, while Microsoft would have kept the consent. Returns how many were restored.
pub async fn restore_consent(
    db: &DatabaseConnection,
    simulator: &RunningSimulator,
) -> Result<usize, InventoryError> {
    let known = organizations::tenant_ids_on_instance(db).await?;
    Ok(known
        .into_iter()
        .filter(|tenant| simulator.grant_consent(*tenant, DEMO_CLIENT_ID))
        .count())
}

/// Where Microsoft sends the admin back after consent; register it on the Entra app.
pub fn consent_redirect_uri(settings: &Settings) -> String {
    format!("{}/m365/consent/callback", settings.public_url())
}
