//! What the benchmarks share: a database of their own.

use std::path::Path;

use sea_orm::{ConnectionTrait, Database};

/// A fresh database for one benchmark run: a new database on the PostgreSQL server that
/// `SKYVAULT_BENCH_DATABASE_URL` names (dropped when this is dropped, so a run leaves nothing in
/// the server's own databases), else SQLite in `dir`.
pub struct BenchDatabase {
    pub url: String,
    /// The server's URL and the database made on it.
    made: Option<(String, String)>,
}

impl BenchDatabase {
    pub async fn create(dir: &Path) -> Self {
        match std::env::var("SKYVAULT_BENCH_DATABASE_URL") {
            Ok(server) if !server.is_empty() => {
                let admin = Database::connect(&server).await.unwrap();
                let name = format!("skyvault_bench_{}", uuid::Uuid::new_v4().simple());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&server).unwrap();
                url.set_path(&name);
                BenchDatabase {
                    url: url.to_string(),
                    made: Some((server, name)),
                }
            }
            _ => BenchDatabase {
                url: format!("sqlite://{}?mode=rwc", dir.join("bench.sqlite").display()),
                made: None,
            },
        }
    }

    /// "PostgreSQL" or "SQLite", for the figures' heading.
    // Each benchmark compiles this module on its own, and not every one prints the label.
    #[allow(dead_code)]
    pub fn label(&self) -> &'static str {
        if self.made.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.made.take() else {
            return;
        };
        // Dropped inside the benchmark's runtime: the database is removed from a thread of its
        // own, with connections still open to it closed by FORCE.
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&server).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = removed.join();
    }
}
