//! Starting Skyvault: settings → master key → database and backup storage → web server and
//! ticks. `main` and the integration tests both start the application through here, so tests run
//! the real thing.

use std::net::TcpListener;

use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};

use crate::accounts::setup;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::m365::{GraphClient, M365Settings};
use crate::simulator::RunningSimulator;
use crate::storage::{BackupStorage, StorageLocation};
use crate::web::{self as console, AppState, middleware};
use crate::{db, key_custody};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] crate::key_custody::KeyCustodyError),
    #[error("cannot make the data folder {path} private to Skyvault's user: {source}")]
    DataFolder {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] db::DbOpenError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("first-run setup: {0}")]
    Setup(#[from] crate::accounts::AccountError),
    #[error("Microsoft 365 settings: {0}")]
    Graph(#[from] crate::m365::GraphError),
    #[error("Microsoft 365 settings: {0}")]
    M365Settings(String),
    #[error("backup storage settings: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("demo mode: {0}")]
    Demo(#[from] crate::simulator::SimulatorError),
    #[error("demo mode: {0}")]
    DemoConsent(#[from] crate::inventory::InventoryError),
}

/// Opens the database (migrating it) and the master key it was sealed with, and builds the
/// shared state. The data folder holds the key and (by default) the database: only Skyvault's
/// user may read it.
pub async fn prepare(settings: Settings, clock: SharedClock) -> Result<AppState, StartError> {
    let data_dir = settings.data_dir();
    crate::private_files::secure_dir(&data_dir).map_err(|source| StartError::DataFolder {
        path: data_dir.display().to_string(),
        source,
    })?;
    settings
        .client_secret_expires()
        .map_err(|err| StartError::M365Settings(err.to_string()))?;
    let db = db::connect_and_migrate(&settings.database_url()).await?;
    let master_key =
        key_custody::open_master_key(&db, clock.as_ref(), &settings.master_key_file()).await?;
    let graph = graph_client(&settings, clock.clone())?;
    let storage = BackupStorage::new(
        db.clone(),
        storage_location(&settings)?,
        master_key.clone(),
        clock.clone(),
    );
    Ok(AppState {
        db,
        settings,
        clock,
        master_key,
        graph,
        storage,
        demo: false,
        demo_page: None,
    })
}

/// `prepare` for `skyvault serve`: in demo mode (no Microsoft app configured) the built-in
/// simulator starts first and the console is pointed at it; its tenant is regenerated the same
/// at every start, and gets back the consent of organizations the database already has.
pub async fn prepare_serving(
    mut settings: Settings,
    clock: SharedClock,
) -> Result<(AppState, Option<RunningSimulator>), StartError> {
    let simulator = if settings.demo_mode() {
        Some(crate::demo::start_demo_simulator(&mut settings, clock.clone()).await?)
    } else {
        None
    };
    let mut state = prepare(settings, clock).await?;
    if let Some(simulator) = &simulator {
        state.demo = true;
        state.demo_page = Some(simulator.demo_page_url());
        let restored = crate::demo::restore_consent(&state.db, simulator).await?;
        if restored > 0 {
            tracing::info!("demo mode: consent restored for {restored} organization(s)");
        }
    }
    Ok((state, simulator))
}

/// Where backups are written: the `storage` setting with the S3 settings beside it.
pub fn storage_location(settings: &Settings) -> Result<StorageLocation, StartError> {
    let given = |value: &str| (!value.is_empty()).then(|| value.to_string());
    Ok(
        StorageLocation::parse(&settings.storage())?.with_s3_settings(
            given(&settings.s3_endpoint),
            given(&settings.s3_region),
            given(&settings.s3_access_key_id),
            given(&settings.s3_secret_access_key),
        ),
    )
}

/// The Graph client for the configured Microsoft app (or the demo simulator's).
pub fn graph_client(settings: &Settings, clock: SharedClock) -> Result<GraphClient, StartError> {
    let redirect =
        url::Url::parse(&crate::demo::consent_redirect_uri(settings)).map_err(|err| {
            StartError::M365Settings(format!(
                "public_url does not make a valid redirect URI: {err}"
            ))
        })?;
    let mut m365 = M365Settings::new(
        &settings.m365_client_id,
        &settings.m365_client_secret,
        redirect,
    );
    m365.authority_url = settings.m365_authority_url.clone();
    m365.graph_url = settings.m365_graph_url.clone();
    Ok(GraphClient::new(m365, clock)?)
}

/// The worker context for this process.
pub fn worker_context(state: &AppState) -> crate::jobs::worker::WorkerContext {
    crate::jobs::worker::WorkerContext {
        db: state.db.clone(),
        clock: state.clock.clone(),
        graph: state.graph.clone(),
        storage: state.storage.clone(),
        check_scope: crate::jobs::backup_check::scope_for(state.settings.check_read_percent),
        concurrency: state.settings.worker_concurrency.clamp(1, 64) as usize,
        search: crate::restore::search::SearchIndexes::new(state.settings.data_dir()),
    }
}

/// The one-time setup link, when the instance has no user yet.
pub async fn setup_link(state: &AppState) -> Result<Option<String>, StartError> {
    Ok(setup::open_setup_if_unclaimed(&state.db)
        .await?
        .map(|token| format!("{}/setup/{token}", state.settings.public_url())))
}

/// The HTTP server for the console on an already bound listener.
pub fn web_server(
    state: AppState,
    listener: TcpListener,
) -> Result<actix_web::dev::Server, StartError> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        // Registered innermost first: the session wraps everything, CSRF runs inside it.
        App::new()
            .app_data(data.clone())
            .app_data(
                web::FormConfig::default()
                    .limit(256 * 1024)
                    .error_handler(|err, _| {
                        console::WebError::BadRequest(format!("The form could not be read: {err}"))
                            .into()
                    }),
            )
            .app_data(web::QueryConfig::default().error_handler(|_, _| {
                console::WebError::BadRequest("The address has a malformed parameter.".into())
                    .into()
            }))
            .app_data(
                web::PathConfig::default().error_handler(|_, _| console::WebError::NotFound.into()),
            )
            .configure(console::routes)
            // Must stay innermost: it lets routing have the request to itself again.
            .wrap(from_fn(middleware::release_request_for_routing))
            .wrap(from_fn(middleware::require_csrf_token))
            .wrap(console::session_middleware(&data))
            .wrap(from_fn(middleware::render_errors_for_htmx))
            .wrap(Compress::default())
            // Outermost, so that every answer carries the headers, Compress's own 406 included.
            .wrap(from_fn(middleware::security_headers))
    })
    .listen(listener)
    .map_err(|source| StartError::Listen { address, source })?
    .shutdown_timeout(10)
    .run();
    Ok(server)
}

pub fn bind(address: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(address).map_err(|source| StartError::Listen {
        address: address.to_string(),
        source,
    })
}
