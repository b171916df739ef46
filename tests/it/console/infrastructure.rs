//! What a visitor and a monitor see when the database fails under a running console, and that
//! it recovers without a restart; HSTS behind HTTPS.

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;

use crate::support::app::{Page, TestApp, Visitor};

/// The answer of a request that fails on our side: the console's error page with the security
/// headers, never an empty 500.
fn assert_error_page(page: &Page) {
    assert_eq!(
        page.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        page.body
    );
    assert_eq!(page.error_code().as_deref(), Some("internal"));
    assert!(
        page.body
            .contains("Something went wrong on our side (incident "),
        "{}",
        page.body
    );
    assert!(page.body.contains("Go to the start page"), "{}", page.body);
    for header in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(page.headers.contains_key(header), "{header} missing");
    }
}

async fn health(visitor: &Visitor) -> (StatusCode, Value) {
    let page = visitor.get("/healthz").await;
    assert_eq!(
        page.headers.get("content-type").unwrap(),
        "application/json",
        "{}",
        page.body
    );
    (page.status, serde_json::from_str(&page.body).unwrap())
}

async fn health_head(app: &TestApp) -> StatusCode {
    reqwest::Client::new()
        .head(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_the_database_and_answers_head() {
    let app = TestApp::start().await;
    let monitor = app.visitor();
    let (status, body) = health(&monitor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(health_head(&app).await, StatusCode::OK);
}

/// A failing session store (its table gone) fails a request before any handler runs; the
/// visitor still gets the console's page and headers, for htmx a fragment, and the console works
/// again as soon as the table is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_session_store_gets_the_error_page_with_headers() {
    let (app, partner) = TestApp::with_partner_admin().await;
    partner
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
    let db = &app.state.db;
    db.execute_unprepared("ALTER TABLE sessions RENAME TO sessions_away")
        .await
        .unwrap();

    assert_error_page(&partner.get("/customers").await);
    let token = partner.csrf_token();
    let fragment = partner.htmx_post("/customers", &token).await;
    assert_eq!(fragment.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fragment.headers.get("hx-retarget").unwrap(), "#messages");
    assert!(fragment.headers.contains_key("content-security-policy"));
    assert!(
        fragment.body.contains("The request failed (500)."),
        "{}",
        fragment.body
    );

    db.execute_unprepared("ALTER TABLE sessions_away RENAME TO sessions")
        .await
        .unwrap();
    partner
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
}

/// The database server drops every connection, then the database disappears (renamed, as an
/// operator's mistake or a failover would leave it), then comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_postgresql_database_gone_pages_explain_and_health_says_so_until_it_is_back() {
    let Some(server) = std::env::var("SKYVAULT_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!("PostgreSQL only: set SKYVAULT_TEST_DATABASE_URL");
        return;
    };
    let (app, partner) = TestApp::with_partner_admin().await;
    let name = url::Url::parse(&app.db.url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let admin = Database::connect(&server).await.unwrap();
    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );

    // Every connection dropped: the pool replaces them and nobody notices.
    admin.execute_unprepared(&terminate).await.unwrap();
    partner
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);

    // The database gone. Renaming needs it unused, and the pool may reconnect in between.
    let gone = format!("{name}_gone");
    let mut attempts = 0;
    loop {
        admin.execute_unprepared(&terminate).await.unwrap();
        let renamed = admin
            .execute_unprepared(&format!("ALTER DATABASE {name} RENAME TO {gone}"))
            .await;
        match renamed {
            Ok(_) => break,
            Err(err) => {
                attempts += 1;
                assert!(attempts < 50, "cannot rename the test database: {err}");
            }
        }
    }
    assert_error_page(&partner.get("/customers").await);
    let (status, body) = health(&app.visitor()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"], "not answering");
    assert!(
        !body.to_string().contains(&name),
        "no detail for anonymous callers: {body}"
    );
    assert_eq!(health_head(&app).await, StatusCode::SERVICE_UNAVAILABLE);

    // Back under its name: used again without a restart.
    admin
        .execute_unprepared(&format!("ALTER DATABASE {gone} RENAME TO {name}"))
        .await
        .unwrap();
    partner
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
    let (status, body) = health(&app.visitor()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(health_head(&app).await, StatusCode::OK);
}

/// SQLite: connections already open keep working on a file moved away or replaced, so only a
/// look at the file tells a monitor before the next restart finds no database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_sqlite_file_gone_health_says_so_until_it_is_back() {
    let app = TestApp::start().await;
    if !app.db.url.starts_with("sqlite") {
        eprintln!("SQLite only");
        return;
    }
    let file = app.db.dir.path().join("skyvault.sqlite");
    let away = app.db.dir.path().join("moved-away.sqlite");
    std::fs::rename(&file, &away).unwrap();
    let (status, body) = health(&app.visitor()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["database"], "file unreadable");
    assert_eq!(health_head(&app).await, StatusCode::SERVICE_UNAVAILABLE);

    // Something else in its place is no better.
    std::fs::write(&file, b"not a database at all").unwrap();
    let (status, _) = health(&app.visitor()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    std::fs::rename(&away, &file).unwrap();
    let (status, body) = health(&app.visitor()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_only_when_the_console_is_served_over_https() {
    let plain = TestApp::start().await;
    let page = plain
        .visitor()
        .get("/signin")
        .await
        .expect_status(StatusCode::OK);
    assert!(!page.headers.contains_key("strict-transport-security"));

    let secure =
        TestApp::start_with(|settings| settings.public_url = "https://backup.example.com".into())
            .await;
    for (path, status) in [
        ("/signin", StatusCode::OK),
        ("/no/such/page", StatusCode::NOT_FOUND),
        ("/healthz", StatusCode::OK),
    ] {
        let page = secure.visitor().get(path).await.expect_status(status);
        assert_eq!(
            page.headers.get("strict-transport-security").unwrap(),
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
}

/// Every layer's answer carries the security headers, down to the compression layer's refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_encoding_still_gets_the_security_headers() {
    let app = TestApp::start().await;
    let refused = reqwest::Client::new()
        .get(format!("{}/signin", app.base))
        .header("accept-encoding", "identity;q=0")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE);
    assert!(refused.headers().contains_key("content-security-policy"));
    assert_eq!(refused.headers().get("x-frame-options").unwrap(), "DENY");
}
