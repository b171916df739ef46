//! Starting Skyvault: settings → master key → database → web server and ticks. `main` and the
//! integration tests both start the application through here, so tests run the real thing.

use std::net::TcpListener;

use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};

use crate::accounts::setup;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::db;
use crate::web::{self as console, AppState, middleware};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] crate::crypto::CryptoError),
    #[error(transparent)]
    Database(#[from] db::DbOpenError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("first-run setup: {0}")]
    Setup(#[from] crate::accounts::AccountError),
}

/// Opens the master key and the database (migrating it) and builds the shared state.
pub async fn prepare(settings: Settings, clock: SharedClock) -> Result<AppState, StartError> {
    let master_key = MasterKey::load_or_create(&settings.master_key_file())?;
    let db = db::connect_and_migrate(&settings.database_url()).await?;
    Ok(AppState {
        db,
        settings,
        clock,
        master_key,
    })
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
            .app_data(
                web::PathConfig::default().error_handler(|_, _| console::WebError::NotFound.into()),
            )
            .configure(console::routes)
            .wrap(from_fn(middleware::require_csrf_token))
            .wrap(console::session_middleware(&data))
            .wrap(from_fn(middleware::render_errors_for_htmx))
            .wrap(from_fn(middleware::security_headers))
            .wrap(Compress::default())
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
