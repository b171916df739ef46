//! Opening the database (embedded SQLite by default, PostgreSQL at scale) and bringing its schema
//! up to date. The rest of Skyvault only ever sees a `DatabaseConnection`.

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

#[derive(Debug, thiserror::Error)]
pub enum DbOpenError {
    #[error("cannot connect to the database at {url}: {source}")]
    Connect { url: String, source: DbErr },
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(DbErr),
    #[error("cannot create the folder for the SQLite database {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
}

/// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`). Passwords in the URL never
/// reach an error message.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbOpenError> {
    if let Some(path) = sqlite_path(url)
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| DbOpenError::Folder {
            path: path.to_string(),
            source,
        })?;
    }
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(if url.starts_with("sqlite") { 8 } else { 16 })
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // WAL lets the web and the workers read while a backup writes; the busy timeout turns a
        // brief write-lock collision into a short wait instead of an error.
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(15))
                .foreign_keys(true)
        });
    Database::connect(options)
        .await
        .map_err(|source| DbOpenError::Connect {
            url: redact(url),
            source,
        })
}

/// Connects and applies every pending migration.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection, DbOpenError> {
    let db = connect(url).await?;
    migrate(&db).await?;
    Ok(db)
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbOpenError> {
    Migrator::up(db, None).await.map_err(DbOpenError::Migrate)
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}
