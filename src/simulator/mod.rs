//! A Microsoft 365 tenant simulator: the identity platform and Graph v1.0, stateful and throttled.
//! It shares no code with `crate::m365`: the two are independent readings of Microsoft's protocol
//! (`graph-protocol.md`), so a mistake in one is caught by the other. This module owns the public
//! surface (options, `start`, `run`, the running handle); it must never hold protocol logic itself.
//!
//! Layout: `state` (tenants, directory objects, overlays of changes), `generate` (deterministic
//! lazy content), `identity` (consent, sign-in, tokens), `graph` (the `/v1.0` surface),
//! `throttle` and `faults` (Microsoft's published limits, injected failures), `control`
//! (`/_sim/...`), `demo_page` (`/_demo/...`, the same changes from a web page), `server` (HTTP
//! plumbing).

mod attach;
mod control;
mod control_mailbox;
mod demo_page;
mod faults;
mod generate;
mod graph;
mod identity;
mod import;
mod mailbox;
mod metrics;
mod mime;
mod oidc;
mod pim;
mod quickxor;
mod record;
mod server;
mod state;
mod throttle;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::clock::{self, SharedClock};

pub use quickxor::quick_xor_hash;
pub use throttle::ThrottleLimits;

/// Errors from starting or configuring the simulator (never from serving: bad requests get
/// Microsoft's error shapes instead).
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("could not bind the simulator to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("could not read the simulator config file {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the simulator config file {path} is invalid: {message}")]
    ConfigInvalid { path: PathBuf, message: String },
    #[error("invalid simulator option: {0}")]
    InvalidOption(String),
}

/// Command line of `skyvault simulator`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorArgs {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 8081, env = "SKYVAULT_SIM_PORT")]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "SKYVAULT_SIM_BIND")]
    pub bind: IpAddr,
    /// Seed of the generated tenant: the same seed gives the same tenant, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Display name of the generated organization.
    #[arg(long, default_value = "Contoso")]
    pub organization: String,
    /// Number of users (the first is the global administrator).
    #[arg(long, default_value_t = 25)]
    pub users: u32,
    /// Number of Microsoft 365 groups (each with a team site and a drive).
    #[arg(long, default_value_t = 6)]
    pub groups: u32,
    /// How many of the Microsoft 365 groups are teams.
    #[arg(long, default_value_t = 3)]
    pub teams: u32,
    /// Number of security groups (no mailbox, no drive).
    #[arg(long, default_value_t = 2)]
    pub security_groups: u32,
    /// Number of communication sites besides the root site and the group sites.
    #[arg(long, default_value_t = 3)]
    pub sites: u32,
    /// Messages generated in each mailbox.
    #[arg(long, default_value_t = 200)]
    pub messages_per_mailbox: u32,
    /// Files generated in each drive.
    #[arg(long, default_value_t = 40)]
    pub files_per_drive: u32,
    /// Upper bound of a generated file's size in bytes (sizes are skewed small).
    #[arg(long, default_value_t = 512 * 1024)]
    pub max_file_size: u32,
    /// Password of the global administrator (generated from the seed if absent).
    #[arg(long, env = "SKYVAULT_SIM_ADMIN_PASSWORD")]
    pub admin_password: Option<String>,
    /// Bearer token for the control API `/_sim/...` (random if absent; printed at start).
    #[arg(long, env = "SKYVAULT_SIM_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    /// Seconds a soft-deleted user, group or site stays restorable.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    pub retention_seconds: i64,
    /// Lifetime of access tokens in seconds (`expires_in`).
    #[arg(long, default_value_t = 3599)]
    pub token_lifetime_seconds: i64,
    /// Serve without any throttling (benchmarks, demos).
    #[arg(long)]
    pub no_throttling: bool,
    /// JSON file registering applications: `{"apps":[{"client_id":..,"client_secret":..,"redirect_uris":[..]}]}`.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// One tenant to generate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSpec {
    pub organization: String,
    pub seed: u64,
    pub users: u32,
    pub groups: u32,
    pub teams: u32,
    pub security_groups: u32,
    pub sites: u32,
    pub messages_per_mailbox: u32,
    pub files_per_drive: u32,
    pub max_file_size: u32,
    pub admin_password: Option<String>,
    /// Licences the tenant bought (`subscribedSkus` prepaid units; SharePoint's throttling tier,
    /// §5.3). `None`: one per generated user.
    pub licences: Option<u32>,
}

impl Default for TenantSpec {
    fn default() -> Self {
        Self {
            organization: "Contoso".to_owned(),
            seed: 1,
            users: 25,
            groups: 6,
            teams: 3,
            security_groups: 2,
            sites: 3,
            messages_per_mailbox: 200,
            files_per_drive: 40,
            max_file_size: 512 * 1024,
            admin_password: None,
            licences: None,
        }
    }
}

impl TenantSpec {
    /// A tiny tenant for tests: a handful of users, few messages and files.
    pub fn small(organization: &str, seed: u64) -> Self {
        Self {
            organization: organization.to_owned(),
            seed,
            users: 8,
            groups: 3,
            teams: 1,
            security_groups: 1,
            sites: 1,
            messages_per_mailbox: 30,
            files_per_drive: 12,
            max_file_size: 64 * 1024,
            admin_password: None,
            licences: None,
        }
    }
}

/// An application registered with the simulated identity platform (multi-tenant: it can be
/// consented in every simulated tenant).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRegistration {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    #[serde(default = "default_app_name")]
    pub display_name: String,
    /// Application permissions (appRole values) the admin consents to; the backup set if empty.
    #[serde(default)]
    pub permissions: Vec<String>,
}

fn default_app_name() -> String {
    "Skyvault".to_owned()
}

/// The application permissions a backup app asks for (graph-protocol.md §2.5).
pub const BACKUP_PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "Group.Read.All",
    "Organization.Read.All",
    "Mail.ReadWrite",
    "MailboxSettings.Read",
    "Files.ReadWrite.All",
    "Sites.ReadWrite.All",
    "Calendars.Read",
    "Contacts.Read",
    "MailboxFolder.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.Read.All",
    "MailboxItem.ImportExport.All",
    "Channel.ReadBasic.All",
    "ChannelMessage.Read.All",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    apps: Vec<AppRegistration>,
    #[serde(default)]
    tenants: Vec<TenantSpec>,
}

/// Everything `start` needs. `Default` gives one small-ish tenant, real limits, system time.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    pub tenants: Vec<TenantSpec>,
    pub apps: Vec<AppRegistration>,
    pub clock: SharedClock,
    pub token_lifetime: Duration,
    pub deleted_retention: Duration,
    pub admin_token: Option<String>,
    pub limits: ThrottleLimits,
    /// actix workers; tests want few, the benchmark wants one per core.
    pub workers: usize,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            tenants: vec![TenantSpec::default()],
            apps: Vec::new(),
            clock: clock::system(),
            token_lifetime: Duration::seconds(3599),
            deleted_retention: Duration::days(30),
            admin_token: None,
            limits: ThrottleLimits::default(),
            workers: 2,
        }
    }
}

impl SimulatorOptions {
    /// What `skyvault serve` starts in demo mode: one Contoso tenant of 25 people on a free
    /// port, real limits, one worker (it shares the process with the console).
    pub fn demo() -> Self {
        Self {
            workers: 1,
            ..Self::default()
        }
    }

    fn from_args(args: &SimulatorArgs) -> Result<Self, SimulatorError> {
        let mut tenant = TenantSpec {
            organization: args.organization.clone(),
            seed: args.seed,
            users: args.users,
            groups: args.groups,
            teams: args.teams,
            security_groups: args.security_groups,
            sites: args.sites,
            messages_per_mailbox: args.messages_per_mailbox,
            files_per_drive: args.files_per_drive,
            max_file_size: args.max_file_size,
            admin_password: args.admin_password.clone(),
            licences: None,
        };
        let mut options = SimulatorOptions {
            bind: args.bind,
            port: args.port,
            admin_token: args.admin_token.clone(),
            token_lifetime: Duration::seconds(args.token_lifetime_seconds),
            deleted_retention: Duration::seconds(args.retention_seconds),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            ..SimulatorOptions::default()
        };
        if args.no_throttling {
            options.limits = ThrottleLimits::disabled();
        }
        if let Some(path) = &args.config {
            let text =
                std::fs::read_to_string(path).map_err(|source| SimulatorError::ConfigRead {
                    path: path.clone(),
                    source,
                })?;
            let file: ConfigFile =
                serde_json::from_str(&text).map_err(|error| SimulatorError::ConfigInvalid {
                    path: path.clone(),
                    message: error.to_string(),
                })?;
            options.apps = file.apps;
            if !file.tenants.is_empty() {
                options.tenants = file.tenants;
                tenant = options.tenants[0].clone();
            }
        }
        options.tenants[0] = tenant;
        Ok(options)
    }
}

/// What a caller needs to sign in to a generated tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantInfo {
    pub tenant_id: uuid::Uuid,
    pub display_name: String,
    /// The initial `*.onmicrosoft.com` domain.
    pub domain: String,
    pub admin_user_principal_name: String,
    pub admin_password: String,
}

/// A simulator serving in the background. Stops on `stop()` or drop.
pub struct RunningSimulator {
    base_url: String,
    admin_token: String,
    tenants: Vec<TenantInfo>,
    sim: Arc<state::Simulator>,
    handle: actix_web::dev::ServerHandle,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for RunningSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSimulator")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl RunningSimulator {
    /// `http://127.0.0.1:PORT`: identity platform, Graph (`/v1.0`) and control API (`/_sim`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Bearer token of the control API.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The tenant's control page for people (`/_demo/{secret}`): whoever has this address can
    /// change the first tenant, so it is shown only to those allowed to.
    pub fn demo_page_url(&self) -> String {
        format!("{}/_demo/{}", self.base_url, demo_page::page_key(&self.sim))
    }

    pub fn tenants(&self) -> &[TenantInfo] {
        &self.tenants
    }

    /// The first tenant, which always exists.
    pub fn tenant(&self) -> &TenantInfo {
        &self.tenants[0]
    }

    /// Registers (or replaces) an application, as the control API's `POST /_sim/apps` does.
    pub fn register_app(&self, client_id: &str, client_secret: &str, redirect_uris: &[&str]) {
        self.sim.identity.register(AppRegistration {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: redirect_uris.iter().map(|uri| (*uri).to_owned()).collect(),
            display_name: default_app_name(),
            permissions: Vec::new(),
        });
    }

    /// Records an administrator's consent to `client_id` in the tenant `tenant_id`, as the control
    /// API's `POST /_sim/tenants/{tenant}/consents/{client}` does; false for an unknown tenant.
    pub fn grant_consent(&self, tenant_id: uuid::Uuid, client_id: &str) -> bool {
        let Some(index) = self.tenants.iter().position(|t| t.tenant_id == tenant_id) else {
            return false;
        };
        self.sim.identity.grant_consent(index, client_id);
        true
    }

    /// Registers an application with full control over its fields.
    pub fn register_app_with(&self, app: AppRegistration) {
        self.sim.identity.register(app);
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if self.task.is_some() {
            // `stop` sends its command before the returned future is first polled.
            drop(self.handle.stop(false));
        }
    }
}

/// Starts a simulator on `options.bind:options.port` (0 = any free port) in the background of the
/// current tokio runtime.
pub async fn start(options: SimulatorOptions) -> Result<RunningSimulator, SimulatorError> {
    if options.tenants.is_empty() {
        return Err(SimulatorError::InvalidOption(
            "at least one tenant is needed".to_owned(),
        ));
    }
    let addr = SocketAddr::new(options.bind, options.port);
    let listener =
        TcpListener::bind(addr).map_err(|source| SimulatorError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SimulatorError::Bind { addr, source })?;
    let host = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let base_url = format!("http://{}", SocketAddr::new(host, local.port()));
    let sim = Arc::new(state::Simulator::new(&options, base_url.clone()));
    let tenants = sim.tenants.iter().map(|tenant| tenant.info()).collect();
    let admin_token = sim.admin_token.clone();
    let server = server::build(sim.clone(), listener, options.workers)
        .map_err(|source| SimulatorError::Bind { addr, source })?;
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningSimulator {
        base_url,
        admin_token,
        tenants,
        sim,
        handle,
        task: Some(task),
    })
}

/// Serves until the process is stopped (Ctrl-C). Used by `skyvault simulator`.
pub async fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    let options = SimulatorOptions::from_args(&args)?;
    let running = start(options).await?;
    println!(
        "Microsoft 365 simulator listening on {}",
        running.base_url()
    );
    println!("control API token: {}", running.admin_token());
    for tenant in running.tenants() {
        println!(
            "tenant {} ({}): global admin {} / {}",
            tenant.tenant_id,
            tenant.domain,
            tenant.admin_user_principal_name,
            tenant.admin_password
        );
    }
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>) -> SimulatorArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            sim: SimulatorArgs,
        }
        let mut cli = Cli::parse_from(["simulator", "--users", "12", "--seed", "9"]);
        cli.sim.config = config;
        cli.sim
    }

    #[test]
    fn command_line_and_config_file_build_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        std::fs::write(&path, r#"{"apps":[{"client_id":"abc","client_secret":"s","redirect_uris":["http://127.0.0.1:8080/m365/consent/callback"]}]}"#).unwrap();
        let options = SimulatorOptions::from_args(&args(Some(path))).unwrap();
        assert_eq!(options.port, 8081);
        assert_eq!(options.tenants[0].users, 12);
        assert_eq!(options.tenants[0].seed, 9);
        assert_eq!(options.apps[0].client_id, "abc");
        assert_eq!(options.apps[0].display_name, "Skyvault");
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        std::fs::write(&path, r#"{"applications":[]}"#).unwrap();
        assert!(matches!(
            SimulatorOptions::from_args(&args(Some(path))),
            Err(SimulatorError::ConfigInvalid { .. })
        ));
    }
}
