//! `TestApp`: the real Skyvault server on a free port against a fresh database, and `Visitor`, a
//! cookie-keeping HTTP client that posts forms with the page's CSRF token like a browser does.

use std::sync::Arc;

use chrono::TimeZone;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use skyvault::clock::ManualClock;
use skyvault::config::Settings;
use skyvault::web::AppState;

use super::{TestDb, fresh_database};

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub clock: ManualClock,
    /// The setup token printed at start, while the instance has no user.
    pub setup_token: Option<String>,
    server: StopOnDrop,
    /// The Microsoft 365 simulator the app's Graph client talks to (same clock as the app). In
    /// demo mode it is the app's own built-in one.
    pub simulator: skyvault::simulator::RunningSimulator,
    /// The settings the app was started with, before demo mode rewrote them: a restart starts
    /// from these, as `skyvault serve` would from the same settings file.
    pub launch: Settings,
    /// Keeps the temporary database alive while the app runs.
    #[allow(dead_code)]
    pub db: TestDb,
}

/// Stops the console's server when the test lets go of its app.
struct StopOnDrop(actix_web::dev::ServerHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let handle = self.0.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(|_| {}).await
    }

    /// Starts the app after `customize` has changed its settings (the simulator's URLs are
    /// already in them).
    pub async fn start_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
        let db = fresh_database().await;
        let (mut settings, listener) = test_settings(&db);
        let clock = test_clock();
        let simulator = skyvault::simulator::start(skyvault::simulator::SimulatorOptions {
            port: 0,
            tenants: vec![
                skyvault::simulator::TenantSpec::small("Contoso", 7),
                skyvault::simulator::TenantSpec::small("Fabrikam", 8),
            ],
            clock: Arc::new(clock.clone()),
            deleted_retention: chrono::Duration::days(30),
            workers: 1,
            ..skyvault::simulator::SimulatorOptions::default()
        })
        .await
        .expect("simulator");
        let redirect = skyvault::demo::consent_redirect_uri(&settings);
        simulator.register_app(TEST_CLIENT_ID, TEST_CLIENT_SECRET, &[redirect.as_str()]);
        settings.m365_client_id = TEST_CLIENT_ID.into();
        settings.m365_client_secret = TEST_CLIENT_SECRET.into();
        settings.m365_authority_url = simulator.base_url().trim_end_matches('/').to_string();
        settings.m365_graph_url = simulator.base_url().trim_end_matches('/').to_string();
        customize(&mut settings);
        Self::launch(db, settings, listener, clock, Some(simulator)).await
    }

    /// The app in demo mode, as `skyvault serve` runs with no Microsoft app configured: its own
    /// built-in simulator with the demo tenant.
    pub async fn start_demo() -> TestApp {
        let db = fresh_database().await;
        let (mut settings, listener) = test_settings(&db);
        settings.demo_simulator_port = 0;
        Self::launch(db, settings, listener, test_clock(), None).await
    }

    /// Stops the app and starts it again from the same settings on the same database, data
    /// folder, address and clock, as restarting the process does. The test's Microsoft (the
    /// simulator) keeps running; in demo mode the built-in one restarts with the app.
    pub async fn restart(self) -> TestApp {
        let TestApp {
            state,
            clock,
            server,
            simulator,
            mut launch,
            db,
            ..
        } = self;
        server.0.stop(true).await;
        drop(server);
        state.db.clone().close().await.expect("database closed");
        drop(state);
        let microsoft = if launch.demo_mode() {
            let port = url::Url::parse(simulator.base_url())
                .expect("simulator URL")
                .port()
                .expect("simulator port");
            simulator.stop().await;
            // The same port, as with the default setting: stored delta links name it.
            launch.demo_simulator_port = port;
            None
        } else {
            Some(simulator)
        };
        // The same address as before: std binds with SO_REUSEADDR, so the old socket's TIME_WAIT
        // does not stand in the way.
        let listener = std::net::TcpListener::bind(&launch.bind).expect("the app's address again");
        Self::launch(db, launch, listener, clock, microsoft).await
    }

    async fn launch(
        db: TestDb,
        launch: Settings,
        listener: std::net::TcpListener,
        clock: ManualClock,
        microsoft: Option<skyvault::simulator::RunningSimulator>,
    ) -> TestApp {
        let address = listener.local_addr().expect("address");
        let (state, demo) = skyvault::app::prepare_serving(launch.clone(), Arc::new(clock.clone()))
            .await
            .expect("app state");
        let simulator = microsoft
            .or(demo)
            .expect("a simulator: the test's or demo mode's");
        let setup_token = skyvault::app::setup_link(&state)
            .await
            .expect("setup link")
            .map(|link| link.rsplit('/').next().unwrap().to_string());
        let server = skyvault::app::web_server(state.clone(), listener).expect("server");
        let handle = server.handle();
        tokio::spawn(server);
        TestApp {
            base: format!("http://{address}"),
            state,
            clock,
            setup_token,
            server: StopOnDrop(handle),
            simulator,
            launch,
            db,
        }
    }

    /// A started app whose first partner administrator exists and is signed in.
    pub async fn with_partner_admin() -> (TestApp, Visitor) {
        let app = TestApp::start().await;
        let admin = app.first_partner_admin().await;
        (app, admin)
    }

    /// Claims the setup link as the first partner administrator, who stays signed in.
    pub async fn first_partner_admin(&self) -> Visitor {
        let admin = self.visitor();
        let token = self
            .setup_token
            .clone()
            .expect("fresh instance has a setup token");
        admin
            .get(&format!("/setup/{token}"))
            .await
            .expect_status(StatusCode::OK);
        admin
            .post(
                &format!("/setup/{token}"),
                &[
                    ("organisation", "Northwind Partners"),
                    ("display_name", "Pat Partner"),
                    ("email", PARTNER_EMAIL),
                    ("password", PASSWORD),
                    ("confirm", PASSWORD),
                ],
            )
            .await
            .expect_redirect("/customers");
        admin
    }

    /// The folder of a customer's backup repository (none until its first backup).
    pub fn repository_folder(&self, customer: &str) -> std::path::PathBuf {
        std::path::Path::new(&self.state.settings.data_dir)
            .join("storage")
            .join(customer)
    }

    pub fn visitor(&self) -> Visitor {
        Visitor {
            base: self.base.clone(),
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            csrf: std::sync::Mutex::new(None),
        }
    }

    /// Has `partner` create the sub-partner "Reseller East" with its administrator Sam Sub, and
    /// returns Sam's browser, signed in.
    pub async fn sub_partner_with_admin(&self, partner: &Visitor) -> Visitor {
        partner.get("/partners").await.expect_status(StatusCode::OK);
        partner
            .post(
                "/partners",
                &[
                    ("name", "Reseller East"),
                    ("display_name", "Sam Sub"),
                    ("email", "sam@east.example"),
                    ("password", PASSWORD),
                ],
            )
            .await
            .expect_redirect("/partners");
        let sub = self.visitor();
        sub.sign_in("sam@east.example", PASSWORD)
            .await
            .expect_redirect("/customers");
        sub
    }

    /// Has the customer's administrator `admin` (signed in) add Robin Reader, a read-only user
    /// of `customer`, and returns Robin's browser, signed in.
    pub async fn read_only_user(&self, admin: &Visitor, customer: &str) -> Visitor {
        admin
            .get(&format!("/c/{customer}/settings"))
            .await
            .expect_status(StatusCode::OK);
        admin
            .post(
                &format!("/c/{customer}/settings/users"),
                &[
                    ("display_name", "Robin Reader"),
                    ("email", "robin@contoso.example"),
                    ("password", PASSWORD),
                    ("role", "read_only"),
                ],
            )
            .await
            .expect_redirect(&format!("/c/{customer}/settings"));
        let robin = self.visitor();
        robin
            .sign_in("robin@contoso.example", PASSWORD)
            .await
            .expect_redirect(&format!("/c/{customer}/overview"));
        robin
    }

    /// Creates a customer with one administrator as the partner `admin`; returns the customer id.
    pub async fn customer_with_admin(
        &self,
        partner: &Visitor,
        name: &str,
        admin_email: &str,
    ) -> String {
        partner
            .get("/customers")
            .await
            .expect_status(StatusCode::OK);
        let created = partner.post("/customers", &[("name", name)]).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
        let id = created
            .location()
            .trim_start_matches("/customers/")
            .to_string();
        partner
            .get(&format!("/customers/{id}"))
            .await
            .expect_status(StatusCode::OK);
        partner
            .post(
                &format!("/customers/{id}/users"),
                &[
                    ("display_name", "Casey Admin"),
                    ("email", admin_email),
                    ("password", PASSWORD),
                    ("role", "customer_admin"),
                ],
            )
            .await
            .expect_redirect(&format!("/customers/{id}"));
        id
    }
}

/// Settings of a test app: a free address, the test's own data folder and database. Backup
/// storage stays at its default, `<data_dir>/storage`: a folder of this test's own. Checks read
/// all data, so a damaged pack is always found.
/// Settings for a test app, with the listener it will serve on. The listener is kept open from
/// here on: the settings name its address (the consent redirect URI is built from it), and a port
/// let go of in between could be taken by the simulator or another test.
fn test_settings(db: &TestDb) -> (Settings, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let address = listener.local_addr().expect("address");
    let settings = Settings {
        bind: address.to_string(),
        data_dir: db.dir.path().display().to_string(),
        database_url: db.url.clone(),
        check_read_percent: 100,
        ..Settings::default()
    };
    (settings, listener)
}

fn test_clock() -> ManualClock {
    ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap())
}

pub const TEST_CLIENT_ID: &str = "3f1a6c2e-7d4b-4f8e-9a51-0c2d8e6b7a90";
pub const TEST_CLIENT_SECRET: &str = "test-client-secret-value";

pub const PARTNER_EMAIL: &str = "pat@northwind.example";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Visitor {
    base: String,
    client: reqwest::Client,
    csrf: std::sync::Mutex<Option<String>>,
}

#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn expect_status(self, status: StatusCode) -> Page {
        assert_eq!(
            self.status, status,
            "unexpected status; body:\n{}",
            self.body
        );
        self
    }

    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn expect_redirect(self, to: &str) -> Page {
        assert_eq!(
            self.status,
            StatusCode::SEE_OTHER,
            "expected a redirect to {to}; body:\n{}",
            self.body
        );
        assert_eq!(self.location(), to);
        self
    }

    pub fn error_code(&self) -> Option<String> {
        self.headers
            .get("x-skyvault-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl Visitor {
    pub async fn get(&self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        self.read(response).await
    }

    /// A GET whose body is read as it arrives (server-sent events).
    pub async fn stream(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    /// A GET that follows the redirect a page answers when it moves a one-time `?notice=` into
    /// the session (to its own address without it), as a browser does.
    pub async fn open(&self, path: &str) -> Page {
        let page = self.get(path).await;
        let own = path.split('?').next().unwrap_or(path);
        if page.status == StatusCode::SEE_OTHER
            && page.location().split('?').next() == Some(own)
            && path.contains("notice=")
        {
            return self.get(&page.location()).await;
        }
        page
    }

    /// Posts a form with the CSRF token of the last page seen, as a browser form would.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf.lock().unwrap().clone().unwrap_or_default();
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .form(&form)
            .send()
            .await
            .expect("POST");
        self.read(response).await
    }

    pub async fn head(&self, path: &str) -> Page {
        let response = self
            .client
            .head(format!("{}{path}", self.base))
            .send()
            .await
            .expect("HEAD");
        self.read(response).await
    }

    /// A GET with extra request headers (e.g. the ones htmx sends).
    pub async fn get_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("GET");
        self.read(response).await
    }

    /// Posts a form body that is already percent-encoded (hostile encodings such as `%FF` kept as
    /// they are), with the CSRF token of the last page seen.
    pub async fn post_encoded(&self, path: &str, body: &str) -> Page {
        let token = self.csrf.lock().unwrap().clone().unwrap_or_default();
        let separator = if body.is_empty() { "" } else { "&" };
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("{body}{separator}csrf_token={token}"))
            .send()
            .await
            .expect("POST");
        self.read(response).await
    }

    /// Posts without any CSRF token.
    pub async fn post_without_token(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .form(fields)
            .send()
            .await
            .expect("POST");
        self.read(response).await
    }

    /// A GET of an absolute URL (e.g. Microsoft's sign-in page), keeping cookies.
    pub async fn get_url(&self, url: &str) -> Page {
        let response = self.client.get(url).send().await.expect("GET");
        self.read(response).await
    }

    /// A form post to an absolute URL, as a browser submits Microsoft's sign-in form.
    pub async fn post_url(&self, url: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(url)
            .form(fields)
            .send()
            .await
            .expect("POST");
        self.read(response).await
    }

    /// Posts as htmx does: the token in the `X-CSRF-Token` header.
    pub async fn htmx_post(&self, path: &str, token: &str) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", token)
            .send()
            .await
            .expect("POST");
        self.read(response).await
    }

    pub fn csrf_token(&self) -> String {
        self.csrf.lock().unwrap().clone().unwrap_or_default()
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Page {
        self.get("/signin").await;
        self.post("/signin", &[("email", email), ("password", password)])
            .await
    }

    /// A GET whose body is kept as bytes (downloads), read chunk by chunk as it streams;
    /// returns the status, headers, body and the number of chunks it arrived in.
    pub async fn get_bytes(&self, path: &str) -> (StatusCode, HeaderMap, Vec<u8>, usize) {
        let mut response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = response.chunk().await.expect("body chunk") {
            chunks += 1;
            body.extend_from_slice(&chunk);
        }
        (status, headers, body, chunks)
    }

    async fn read(&self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        if let Some(token) = find_csrf(&body) {
            *self.csrf.lock().unwrap() = Some(token);
        }
        Page {
            status,
            headers,
            body,
        }
    }
}

fn find_csrf(body: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_string())
}
