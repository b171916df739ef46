//! Opening the database (embedded SQLite by default, PostgreSQL at scale), bringing its schema
//! up to date, and telling whether it still answers. The rest of Skyvault only ever sees a
//! `DatabaseConnection`.

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};

#[derive(Debug, thiserror::Error)]
pub enum DbOpenError {
    #[error("cannot connect to the database at {url}: {source}")]
    Connect { url: String, source: DbErr },
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(DbErr),
    #[error("cannot create the SQLite database {path} readable only by Skyvault's user: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
}

/// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`). Passwords in the URL never
/// reach an error message.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbOpenError> {
    if let Some(path) = sqlite_path(url) {
        let create = url.contains("mode=rwc");
        secure_sqlite_files(std::path::Path::new(path), create).map_err(|source| {
            DbOpenError::Folder {
                path: path.to_string(),
                source,
            }
        })?;
    }
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(if url.starts_with("sqlite") { 8 } else { 16 })
        // A database that went away and came back is used again without a restart: every pooled
        // connection is checked before use, so one the server dropped is replaced instead of
        // failing a request, and a request waits at most this long for a connection while the
        // database is down (sqlx keeps retrying a refused connection until then).
        .test_before_acquire(true)
        .acquire_timeout(Duration::from_secs(10))
        .max_lifetime(Duration::from_secs(30 * 60))
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

/// The SQLite database holds every sealed secret and every customer's catalog: its folder is
/// created 0700 and the file 0600 before SQLite opens it (SQLite would make it 0644), and files
/// left readable by older versions are narrowed. The `-wal` and `-shm` files SQLite makes take
/// the database file's mode.
fn secure_sqlite_files(path: &std::path::Path, create: bool) -> std::io::Result<()> {
    if create {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            crate::private_files::create_private_dir(parent)?;
        }
        crate::private_files::secure_file(path)?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        crate::private_files::restrict_to_owner(std::path::Path::new(&companion));
    }
    Ok(())
}

/// What `/healthz` reports when the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseDown {
    #[error("the database does not answer a trivial query: {0}")]
    NotAnswering(DbErr),
    #[error("the database did not answer within {} seconds", HEALTH_TIMEOUT.as_secs())]
    TimedOut,
    #[error("the SQLite database file {path} cannot be read: {reason}")]
    SqliteFile { path: String, reason: String },
}

impl DatabaseDown {
    /// A few words for an anonymous caller of `/healthz`; the details go to the log only.
    pub fn summary(&self) -> &'static str {
        match self {
            DatabaseDown::NotAnswering(_) => "not answering",
            DatabaseDown::TimedOut => "timed out",
            DatabaseDown::SqliteFile { .. } => "file unreadable",
        }
    }
}

/// How long a health check waits for the database; shorter than a monitor's usual timeout.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the database answers a trivial query. For SQLite the file must also still be at its
/// path and be a database: connections already open keep working on a file that was removed or
/// replaced, so the query alone would say all is well until the next restart.
pub async fn check_health(db: &DatabaseConnection, url: &str) -> Result<(), DatabaseDown> {
    if let Some(path) = sqlite_path(url) {
        check_sqlite_file(path).map_err(|reason| DatabaseDown::SqliteFile {
            path: path.to_string(),
            reason,
        })?;
    }
    match tokio::time::timeout(HEALTH_TIMEOUT, db.execute_unprepared("SELECT 1")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(DatabaseDown::NotAnswering(err)),
        Err(_) => Err(DatabaseDown::TimedOut),
    }
}

fn check_sqlite_file(path: &str) -> Result<(), String> {
    use std::io::Read;
    const HEADER: &[u8; 16] = b"SQLite format 3\0";
    let mut file = std::fs::File::open(path).map_err(|err| err.to_string())?;
    let mut header = [0u8; 16];
    let read = file.read(&mut header).map_err(|err| err.to_string())?;
    // An empty file is a valid database that has not written its first page yet.
    if read == 0 || header == *HEADER {
        Ok(())
    } else {
        Err("it is not an SQLite database".into())
    }
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
