//! The `skyvault` command: `serve` (default), `migrate`, `admin`, `simulator`, `settings-table`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use skyvault::accounts::access::Home;
use skyvault::accounts::users::{NewUser, create_user};
use skyvault::accounts::{Role, tenancy};
use skyvault::config::Settings;
use skyvault::ids::CustomerId;
use skyvault::{app, clock, db, jobs, key_custody};

#[derive(Parser)]
#[command(
    name = "skyvault",
    version,
    about = "Backup for Microsoft 365 into storage you own"
)]
struct Cli {
    /// Settings file (TOML); `SKYVAULT_*` environment variables override it. Given before the
    /// command (`skyvault --config skyvault.toml serve`): not global, so `skyvault simulator
    /// --config apps.json` reaches the simulator's own `--config`.
    #[arg(long, env = "SKYVAULT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web console, the scheduler and the workers (the default).
    Serve {
        /// Which parts this process runs; several processes can share one PostgreSQL database.
        #[arg(long, value_enum, default_value_t = ServeRole::All)]
        role: ServeRole,
    },
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Administrative tasks from the terminal.
    Admin {
        #[command(subcommand)]
        task: AdminTask,
    },
    /// Run the Microsoft 365 simulator on its own (identity platform, Graph v1.0, control API).
    Simulator(skyvault::simulator::SimulatorArgs),
    /// Print the settings table (the README's is checked against it).
    SettingsTable,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ServeRole {
    All,
    Web,
    Worker,
}

#[derive(Subcommand)]
enum AdminTask {
    /// Create a console user. The password is read from SKYVAULT_NEW_PASSWORD or standard input.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// partner_admin (with --partner-name for a new top-level partner) or customer_admin/read_only (with --customer).
        #[arg(long, default_value = "partner_admin")]
        role: String,
        /// Create a new top-level partner with this name for a partner administrator.
        #[arg(long)]
        partner_name: Option<String>,
        /// The customer id for a customer user.
        #[arg(long)]
        customer: Option<String>,
    },
    /// Replace the master key: re-seal every secret under a new key in one transaction and write
    /// the new key file (the old one is kept beside it as `<name>.old`). Stop every Skyvault
    /// process using this database first; console sessions end (their cookies are signed with a
    /// key derived from the master key).
    RotateMasterKey,
    /// Back up one protected item's workload now, in this process, and print what was written.
    BackUp {
        /// The protected item's id (as in the console's URLs).
        #[arg(long)]
        item: String,
        /// mailbox, archive-mailbox, group-mailbox, drive (or onedrive), site or team.
        #[arg(long, default_value = "mailbox")]
        workload: String,
    },
    /// Reassign every protection plan's daily start time so the day's load is as even as
    /// possible (new plans are placed as they come; this evens out what changed since).
    RebalanceSchedule,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("skyvault: {err}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&settings.log).unwrap_or_else(|_| "info".into()),
        )
        .init();
    skyvault::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("skyvault: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve {
            role: ServeRole::All,
        }) {
            Command::Serve { role } => serve(settings, role).await,
            Command::Migrate => {
                db::connect_and_migrate(&settings.database_url()).await?;
                println!("database is up to date");
                Ok(())
            }
            Command::Admin { task } => admin(settings, task).await,
            Command::Simulator(args) => skyvault::simulator::run(args).await,
            Command::SettingsTable => {
                print!("{}", Settings::markdown_table());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("skyvault: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, role: ServeRole) -> anyhow::Result<()> {
    let (state, simulator) = app::prepare_serving(settings, clock::system()).await?;
    if let Some(simulator) = &simulator {
        let tenant = simulator.tenant();
        println!();
        println!(
            "  Demo mode: no Microsoft app is configured, so Skyvault uses its built-in Microsoft 365"
        );
        println!(
            "  simulator at {}. To add its organization ({}), sign in at Microsoft's",
            simulator.base_url(),
            tenant.display_name
        );
        println!(
            "  (simulated) page as {} with password {}",
            tenant.admin_user_principal_name, tenant.admin_password
        );
    }
    let _ticks =
        jobs::ticks::start_ticks(state.db.clone(), state.clock.clone(), state.sync_interval())
            .await?;
    if role != ServeRole::Web {
        tokio::spawn(jobs::worker::run_worker(std::sync::Arc::new(
            app::worker_context(&state),
        )));
        // Alert e-mail is sent from the worker side; the outbox's claims keep several workers
        // from sending one message twice.
        tokio::spawn(skyvault::notify::mailer::run_notifier(
            skyvault::notify::mailer::Mailer::of(&state),
        ));
    }
    if role == ServeRole::Worker {
        tracing::info!("worker started");
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }
    let listener = app::bind(&state.settings.bind)?;
    if let Some(link) = app::setup_link(&state).await? {
        println!();
        println!("  Skyvault has no administrator yet. Open this one-time link to create one:");
        println!();
        println!("      {link}");
        println!();
    }
    tracing::info!("console listening on {}", state.settings.public_url());
    app::web_server(state, listener)?.await?;
    Ok(())
}

async fn admin(settings: Settings, task: AdminTask) -> anyhow::Result<()> {
    match task {
        AdminTask::RotateMasterKey => rotate_master_key(&settings).await,
        AdminTask::BackUp { item, workload } => back_up_item(settings, &item, &workload).await,
        AdminTask::RebalanceSchedule => {
            let db = db::connect_and_migrate(&settings.database_url()).await?;
            let moved =
                skyvault::plans::schedule::rebalance(&db, clock::system().as_ref().now()).await?;
            println!("{moved} plan(s) got a new daily start time");
            Ok(())
        }
        AdminTask::CreateUser {
            email,
            name,
            role,
            partner_name,
            customer,
        } => {
            let state = app::prepare(settings, clock::system()).await?;
            let password = match std::env::var("SKYVAULT_NEW_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    eprintln!("Password for {email} (then Enter):");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let role = Role::parse(&role).ok_or_else(|| anyhow::anyhow!("unknown role {role}"))?;
            let home = match role {
                Role::PartnerAdmin => {
                    let name = partner_name.ok_or_else(|| {
                        anyhow::anyhow!("--partner-name is required for a partner administrator")
                    })?;
                    let partner =
                        tenancy::create_partner(&state.db, state.clock.as_ref(), &name, None)
                            .await?;
                    Home::Partner(partner.id.into())
                }
                Role::CustomerAdmin | Role::ReadOnly => {
                    let id: CustomerId = customer
                        .ok_or_else(|| {
                            anyhow::anyhow!("--customer is required for a customer user")
                        })?
                        .parse()?;
                    Home::Customer(id)
                }
            };
            let new = NewUser {
                email: &email,
                display_name: &name,
                password: &password,
                role,
                home,
            };
            let user = create_user(&state.db, state.clock.as_ref(), new).await?;
            println!("created {} ({})", user.email, role.label());
            Ok(())
        }
    }
}

async fn back_up_item(settings: Settings, item: &str, workload: &str) -> anyhow::Result<()> {
    use skyvault::backup;
    let state = app::prepare(settings, clock::system()).await?;
    let item: skyvault::ids::ItemId = item.parse()?;
    // "onedrive" is what people type; the archive's workload is called "drive".
    let workload = if workload == "onedrive" {
        "drive"
    } else {
        workload
    };
    let workload: skyvault::storage::Workload = workload.parse()?;
    let target = backup::target::target_for_item(&state.db, item, workload).await?;
    let services = backup::BackupServices {
        graph: state.graph.clone(),
        storage: state.storage.clone(),
        clock: state.clock.clone(),
    };
    let report = backup::back_up(&services, &target, &()).await?;
    let point = &report.outcome.recovery_point;
    println!(
        "recovery point {} ({}): {} items, {} fetched, {} carried over, {} failed, {} Graph requests",
        point.seq,
        point.status.as_str(),
        point.item_count,
        report.outcome.fetched,
        report.outcome.reused,
        report.outcome.failed.len(),
        report.requests
    );
    for failed in &report.outcome.failed {
        println!("  failed: {} — {}", failed.path, failed.reason);
    }
    Ok(())
}

async fn rotate_master_key(settings: &Settings) -> anyhow::Result<()> {
    let db = db::connect_and_migrate(&settings.database_url()).await?;
    let path = settings.master_key_file();
    let rotation = key_custody::rotate_master_key(&db, clock::system().as_ref(), &path).await?;
    println!(
        "re-sealed {} secret(s) under a new master key (fingerprint {}), now in {}",
        rotation.resealed,
        rotation.fingerprint,
        path.display()
    );
    println!("Back up {} now.", path.display());
    println!(
        "The previous key is kept in {}: database backups taken before now need it. \
         Store it with your key backups, then delete it from this machine.",
        rotation.previous.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulator_takes_its_own_config_option() {
        let cli = Cli::try_parse_from(["skyvault", "simulator", "--config", "apps.json"])
            .expect("parses");
        assert!(cli.config.is_none());
        let Some(Command::Simulator(args)) = cli.command else {
            panic!("not the simulator command");
        };
        assert_eq!(args.config, Some(PathBuf::from("apps.json")));
        let cli = Cli::try_parse_from(["skyvault", "--config", "skyvault.toml", "serve"])
            .expect("parses");
        assert_eq!(cli.config, Some(PathBuf::from("skyvault.toml")));
    }
}
