//! Shared test fixtures: a fresh database per test (SQLite in a temporary folder by default,
//! a new PostgreSQL database when `SKYVAULT_TEST_DATABASE_URL` is set).

pub mod app;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tempfile::TempDir;

pub struct TestDb {
    #[allow(dead_code)]
    pub conn: DatabaseConnection,
    pub url: String,
    /// Keeps the SQLite folder alive as long as the test holds the database.
    pub dir: TempDir,
    /// The PostgreSQL server and database name to drop when the test ends.
    postgres: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime; a separate thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = Database::connect(&server).await.ok()?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A migrated, empty database that no other test shares.
pub async fn fresh_database() -> TestDb {
    skyvault::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temporary folder");
    let (url, postgres) = match std::env::var("SKYVAULT_TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => {
            let (url, name) = create_postgres_database(&server).await;
            (url, Some((server, name)))
        }
        _ => (
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("skyvault.sqlite").display()
            ),
            None,
        ),
    };
    let conn = skyvault::db::connect_and_migrate(&url)
        .await
        .expect("migrated test database");
    TestDb {
        conn,
        url,
        dir,
        postgres,
    }
}

async fn create_postgres_database(server_url: &str) -> (String, String) {
    let admin = Database::connect(server_url)
        .await
        .expect("PostgreSQL test server");
    let name = format!("skyvault_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let mut url = url::Url::parse(server_url).expect("SKYVAULT_TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    (url.to_string(), name)
}

/// Whether an external program a test needs (chromedriver, restic, moto_server) is installed.
/// On a developer's machine a missing tool skips the part of the test that needs it, with a
/// notice; `.ci/run` installs them all and sets `SKYVAULT_REQUIRE_TOOLS=1`, so there a missing
/// tool fails the test instead of skipping it.
pub fn tool_available(program: &str, install: &str) -> bool {
    let found = if program.contains('/') {
        std::path::Path::new(program).exists()
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    };
    if !found {
        assert!(
            std::env::var_os("SKYVAULT_REQUIRE_TOOLS").is_none(),
            "{program} is required here: {install}"
        );
        eprintln!("skipped the part of this test that needs {program} ({install})");
    }
    found
}
