//! The console in a real browser: Debian's Chromium driven through chromedriver. A person's first
//! visit — setup link, first customer, Manage, every navigation item — clicked as they would, with
//! a screenshot of each page written to `target/screenshots/` for people to look at.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::app::{PASSWORD, TestApp};

struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver_path() -> Option<String> {
    let candidate =
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    std::path::Path::new(&candidate)
        .exists()
        .then_some(candidate)
}

/// `None` when chromedriver is missing on a developer's machine; CI sets
/// `SKYVAULT_REQUIRE_BROWSER=1` (in `.ci/run`, which installs it) so there it must run.
async fn start_driver() -> Option<Driver> {
    let Some(path) = chromedriver_path() else {
        assert!(
            std::env::var_os("SKYVAULT_REQUIRE_BROWSER").is_none(),
            "chromedriver is needed for the browser test: apt-get install chromium chromium-driver \
             (or set CHROMEDRIVER to its path)"
        );
        eprintln!(
            "browser test skipped: chromedriver not installed (apt-get install chromium chromium-driver)"
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(Driver { child, port });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chromedriver did not start listening on port {port}");
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--no-first-run", "--window-size=1366,860",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::rustls()
        .expect("tls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

async fn screenshot(client: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn heading(client: &Client) -> String {
    client
        .find(Locator::Css("main h1, .card h1"))
        .await
        .expect("a heading")
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_visit_setup_customer_and_navigation_in_chromium() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let app = TestApp::start().await;
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    let token = app.setup_token.clone().unwrap();

    client.goto(&format!("{}/signin", app.base)).await.unwrap();
    screenshot(&client, "01-signin-before-setup").await;
    assert!(
        client
            .source()
            .await
            .unwrap()
            .contains("has not been set up yet")
    );

    client
        .goto(&format!("{}/setup/{token}", app.base))
        .await
        .unwrap();
    screenshot(&client, "02-setup").await;
    let form = client.form(Locator::Css("form")).await.unwrap();
    form.set_by_name("organisation", "Northwind Partners")
        .await
        .unwrap();
    form.set_by_name("display_name", "Pat Partner")
        .await
        .unwrap();
    form.set_by_name("email", "pat@northwind.example")
        .await
        .unwrap();
    form.set_by_name("password", PASSWORD).await.unwrap();
    form.set_by_name("confirm", PASSWORD).await.unwrap();
    form.submit().await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/customers");
    assert_eq!(heading(&client).await, "Customers");
    screenshot(&client, "03-customers-empty").await;

    // A blank name is refused with a message next to the field.
    let form = client
        .form(Locator::Css("form[action='/customers']"))
        .await
        .unwrap();
    form.set_by_name("name", "   ").await.unwrap();
    form.submit().await.unwrap();
    assert!(client.source().await.unwrap().contains("Enter a name."));

    let form = client
        .form(Locator::Css("form[action='/customers']"))
        .await
        .unwrap();
    form.set_by_name("name", "Contoso Ltd").await.unwrap();
    form.submit().await.unwrap();
    assert_eq!(heading(&client).await.trim(), "Contoso Ltd");
    let form = client
        .form(Locator::Css("form[action$='/users']"))
        .await
        .unwrap();
    form.set_by_name("display_name", "Casey Admin")
        .await
        .unwrap();
    form.set_by_name("email", "casey@contoso.example")
        .await
        .unwrap();
    form.set_by_name("password", PASSWORD).await.unwrap();
    form.submit().await.unwrap();
    assert!(
        client
            .source()
            .await
            .unwrap()
            .contains("casey@contoso.example")
    );
    screenshot(&client, "04-customer-detail").await;

    client
        .find(Locator::LinkText("Customers"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    screenshot(&client, "05-customers").await;
    client
        .find(Locator::LinkText("Manage"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/devices")
    );
    let top = client
        .find(Locator::Css(".topbar"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        top.contains("Northwind Partners")
            && top.contains("Contoso Ltd")
            && top.contains("Managing"),
        "{top}"
    );
    screenshot(&client, "06-devices-empty").await;

    for (label, title) in [
        ("Microsoft 365", "Microsoft 365"),
        ("Protection plans", "Protection plans"),
        ("Backup storage", "Backup storage"),
        ("Activities", "Activities"),
        ("Alerts", "Alerts"),
        ("Settings", "Settings"),
        ("Devices", "Devices"),
    ] {
        client
            .find(Locator::XPath(&format!(
                "//nav//a[normalize-space()='{label}']"
            )))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(heading(&client).await, title, "navigation to {label}");
        let active = client
            .find(Locator::Css("nav a.active"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(active.trim(), label);
        screenshot(
            &client,
            &format!("07-{}", label.to_lowercase().replace(' ', "-")),
        )
        .await;
    }

    client
        .find(Locator::Css("button.topbar-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/signin");
    client.close().await.unwrap();
}
