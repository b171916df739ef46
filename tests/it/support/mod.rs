//! Shared test fixtures: a fresh database per test (SQLite in a temporary folder by default,
//! a new PostgreSQL database when `SKYVAULT_TEST_DATABASE_URL` is set).

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tempfile::TempDir;

pub struct TestDb {
    pub conn: DatabaseConnection,
    pub url: String,
    /// Keeps the SQLite folder alive as long as the test holds the database.
    pub dir: TempDir,
}

/// A migrated, empty database that no other test shares.
pub async fn fresh_database() -> TestDb {
    skyvault::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = match std::env::var("SKYVAULT_TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => create_postgres_database(&server).await,
        _ => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("skyvault.sqlite").display()
        ),
    };
    let conn = skyvault::db::connect_and_migrate(&url)
        .await
        .expect("migrated test database");
    TestDb { conn, url, dir }
}

async fn create_postgres_database(server_url: &str) -> String {
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
    url.to_string()
}
