//! What the benchmarks share: a database of their own, the simulator's control API.

// Not every benchmark calls the simulator or restores.
#[allow(dead_code)]
pub mod sim;
#[allow(dead_code)]
pub mod sink;

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

/// The partner administrator every console benchmark signs in as.
pub const ADMIN_EMAIL: &str = "bench@example.com";
pub const ADMIN_PASSWORD: &str = "benchmark password";

/// A top-level partner and its administrator ([`ADMIN_EMAIL`]), made through the console's own
/// functions, with the administrator's access.
#[allow(dead_code)]
pub async fn partner_admin(
    db: &sea_orm::DatabaseConnection,
    clock: &dyn skyvault::clock::Clock,
) -> (
    skyvault::accounts::entities::partner::Model,
    skyvault::accounts::Access,
) {
    use skyvault::accounts::access::Home;
    use skyvault::accounts::users::{NewUser, create_user};
    use skyvault::accounts::{Access, Role, tenancy};
    let partner = tenancy::create_partner(db, clock, "Bench Partner", None)
        .await
        .unwrap();
    let admin = create_user(
        db,
        clock,
        NewUser {
            email: ADMIN_EMAIL,
            display_name: "Bench",
            password: ADMIN_PASSWORD,
            role: Role::PartnerAdmin,
            home: Home::Partner(partner.id.into()),
        },
    )
    .await
    .unwrap();
    let access = Access::from_user(db, admin).await.unwrap().unwrap();
    (partner, access)
}

/// Signs `http` (a client keeping cookies) in to the console at `address` as the partner
/// administrator, through the sign-in form and its CSRF token.
#[allow(dead_code)]
pub async fn sign_in(http: &reqwest::Client, address: &str) {
    let page = http
        .get(format!("http://{address}/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let token = &page[start..start + page[start..].find('"').unwrap()];
    let response = http
        .post(format!("http://{address}/signin"))
        .form(&[
            ("email", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "signed in");
}

/// A line of `/proc/self/status` in MiB: `VmRSS` (resident now) or `VmHWM` (peak).
#[allow(dead_code)]
pub fn memory_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| {
                    l.strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with(':'))
                })
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
