//! The console in a real browser: Debian's Chromium driven through chromedriver. A person's first
//! visit — setup link, first customer, Manage, every navigation item, Check backups now — clicked
//! as they would, with a screenshot of each page written to `target/screenshots/` for people to
//! look at.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use skyvault::ids::ItemId;
use skyvault::storage::Workload;

use crate::console::storage::{back_up, damage, pack_files};
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

/// `None` when chromedriver is missing on a developer's machine (see `support::tool_available`).
async fn start_driver() -> Option<Driver> {
    let path = chromedriver_path().unwrap_or_else(|| "/usr/bin/chromedriver".into());
    if !crate::support::tool_available(
        &path,
        "apt-get install chromium chromium-driver (or set CHROMEDRIVER)",
    ) {
        return None;
    }
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

/// Waits until the page shows `text`: a form submit returns before the next page has loaded.
async fn wait_for_text(client: &Client, text: &str) {
    for _ in 0..50 {
        if client
            .source()
            .await
            .is_ok_and(|source| source.contains(text))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{text:?} never appeared on {:?}",
        client.current_url().await
    );
}

/// The page's heading, once the page has settled (a navigation may still be under way).
/// Clicks the element an XPath finds.
async fn click(client: &Client, xpath: &str) {
    client
        .find(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|err| panic!("{xpath} not found: {err}"))
        .click()
        .await
        .unwrap();
}

/// Ticks the checkbox an XPath finds, leaving it ticked when it already is.
async fn check(client: &Client, xpath: &str) {
    let checkbox = client
        .find(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|err| panic!("{xpath} not found: {err}"));
    if !checkbox.is_selected().await.unwrap() {
        checkbox.click().await.unwrap();
    }
}

async fn heading(client: &Client) -> String {
    for _ in 0..30 {
        if let Ok(element) = client.find(Locator::Css("main h1, .card h1")).await
            && let Ok(text) = element.text().await
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no heading on {:?}", client.current_url().await);
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
    wait_for_text(&client, "has not been set up yet").await;

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
    wait_for_text(&client, "No customers yet").await;
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
    wait_for_text(&client, "Enter a name.").await;

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
    wait_for_text(&client, "casey@contoso.example").await;
    screenshot(&client, "04-customer-detail").await;

    client
        .find(Locator::LinkText("Customers"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    screenshot(&client, "05-customers").await;
    click(&client, "//nav//a[normalize-space()='Sub-partners']").await;
    assert_eq!(heading(&client).await, "Sub-partners");
    screenshot(&client, "05b-sub-partners").await;
    click(&client, "//nav//a[normalize-space()='Customers']").await;
    wait_for_text(&client, "Contoso Ltd").await;
    client
        .find(Locator::LinkText("Manage"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "Nothing is protected yet").await;
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/overview")
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
    screenshot(&client, "06-overview-empty").await;

    for (label, title) in [
        ("Overview", "Overview"),
        ("Microsoft 365", "Microsoft 365"),
        ("Protection plans", "Protection plans"),
        ("Backup storage", "Backup storage"),
        ("Activities", "Activities"),
        ("Alerts", "Alerts"),
        ("Audit log", "Audit log"),
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

    // Devices > Add > Microsoft 365 Business: Microsoft's sign-in and consent (the simulator's).
    client
        .find(Locator::Css("details.menu > summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    screenshot(&client, "08-devices-add-menu").await;
    client
        .find(Locator::Css("a.menu-item[href$='/devices/add/m365']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let tenant = app.simulator.tenants()[0].clone();
    let form = client.form(Locator::Css("form")).await.unwrap();
    form.set_by_name("login", &tenant.admin_user_principal_name)
        .await
        .unwrap();
    form.set_by_name("passwd", &tenant.admin_password)
        .await
        .unwrap();
    form.submit().await.unwrap();
    wait_for_text(&client, "Permissions requested").await;
    client
        .find(Locator::Css("button[value='accept']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mut landed = client.current_url().await.unwrap();
    for _ in 0..50 {
        if landed.path().contains("/m365/") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        landed = client.current_url().await.unwrap();
    }
    assert!(landed.path().contains("/m365/"), "{landed}");
    // The browser is answered at once; the first sync reads the organization's name.
    assert_eq!(heading(&client).await, "New Microsoft 365 organization");
    screenshot(&client, "09-organization-syncing").await;

    // The worker runs the first sync; the page's status poll notices and reloads the list.
    skyvault::jobs::worker::run_until_idle(&skyvault::app::worker_context(&app.state))
        .await
        .unwrap();
    for _ in 0..50 {
        if client.source().await.unwrap().contains("Last sync:") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = client
        .find_all(Locator::Css("#items tbody tr"))
        .await
        .unwrap();
    assert!(
        rows.len() >= 8,
        "users listed without a page reload: {}",
        rows.len()
    );
    screenshot(&client, "10-organization-users").await;
    client
        .find(Locator::Css("a.tab[href$='tab=groups']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Tabs swap the list in place (htmx): wait for the new list before using it.
    wait_for_text(&client, "Microsoft 365 group").await;
    for _ in 0..50 {
        if client
            .current_url()
            .await
            .unwrap()
            .query()
            .is_some_and(|q| q.contains("tab=groups"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    screenshot(&client, "11-organization-groups").await;

    // A user is deleted in Microsoft 365; Refresh (an htmx POST with the CSRF header) syncs, and
    // the list shows the user grayed out as inactive, without a page reload.
    let users_tab = client
        .find(Locator::Css("a.tab[href$='tab=users']"))
        .await
        .unwrap();
    users_tab.click().await.unwrap();
    wait_for_text(&client, "Can back up").await;
    let leaving = skyvault::inventory::entities::protected_item::Entity::find()
        .filter(skyvault::inventory::entities::protected_item::Column::Kind.eq("user"))
        .filter(skyvault::inventory::entities::protected_item::Column::Address.not_like("admin%"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let sim = app.simulator.base_url().trim_end_matches('/').to_string();
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{sim}/_sim/tenants/{}/users/{}",
            tenant.tenant_id, leaving.graph_id
        ))
        .bearer_auth(app.simulator.admin_token())
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    client
        .find(Locator::Css("#sync-status button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "Syncing the directory").await;
    skyvault::jobs::worker::run_until_idle(&skyvault::app::worker_context(&app.state))
        .await
        .unwrap();
    wait_for_text(&client, "1 inactive").await;
    let inactive = client
        .find(Locator::Css("#items tr.row-inactive"))
        .await
        .unwrap();
    assert!(
        inactive
            .text()
            .await
            .unwrap()
            .contains(&leaving.display_name)
    );
    screenshot(&client, "11b-organization-inactive-user").await;
    click(&client, "//nav//a[normalize-space()='Devices']").await;
    wait_for_text(&client, &tenant.display_name).await;
    screenshot(&client, "12-devices-with-organization").await;
    client
        .find(Locator::Css("a.button-danger[href$='/remove']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "Its backups are kept").await;
    screenshot(&client, "12b-remove-organization").await;
    client
        .find(Locator::LinkText("Cancel"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(
        &client,
        "Microsoft 365 organizations this customer protects.",
    )
    .await;
    click(&client, "//nav//a[normalize-space()='Activities']").await;
    screenshot(&client, "13-activities").await;

    // Backup storage with backups in it (made through the storage API: plans do not run yet),
    // Check backups now, and the check's outcome on the page and in Activities.
    let customer = client
        .current_url()
        .await
        .unwrap()
        .path()
        .split('/')
        .nth(2)
        .unwrap()
        .to_string();
    let alice = ItemId::new();
    for seeds in [[1, 2], [1, 3]] {
        back_up(
            &app,
            &customer,
            alice,
            Workload::Mailbox,
            "Alice Wilber",
            &seeds,
        )
        .await;
    }
    let before_bob = pack_files(&app.repository_folder(&customer));
    back_up(
        &app,
        &customer,
        ItemId::new(),
        Workload::OneDrive,
        "Bob Kelly",
        &[4],
    )
    .await;
    let bob_pack = pack_files(&app.repository_folder(&customer))
        .difference(&before_bob)
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .cloned()
        .unwrap();
    click(&client, "//nav//a[normalize-space()='Backup storage']").await;
    wait_for_text(&client, "Alice Wilber").await;
    screenshot(&client, "14-backup-storage").await;
    click(&client, "//button[normalize-space()='Check backups now']").await;
    wait_for_text(&client, "A backup check was queued.").await;
    screenshot(&client, "15-backup-storage-check-queued").await;
    skyvault::jobs::worker::run_until_idle(&skyvault::app::worker_context(&app.state))
        .await
        .unwrap();
    wait_for_text(&client, "no damage found").await;
    screenshot(&client, "16-backup-storage-checked").await;
    click(&client, "//nav//a[normalize-space()='Activities']").await;
    wait_for_text(&client, "Backup check").await;
    screenshot(&client, "17-activities-with-check").await;

    // A damaged pack: the next check fails, naming the archive, on both pages.
    damage(&bob_pack);
    app.clock.advance(chrono::Duration::minutes(30));
    click(&client, "//nav//a[normalize-space()='Backup storage']").await;
    wait_for_text(&client, "Alice Wilber").await;
    click(&client, "//button[normalize-space()='Check backups now']").await;
    wait_for_text(&client, "A backup check was queued.").await;
    skyvault::jobs::worker::run_until_idle(&skyvault::app::worker_context(&app.state))
        .await
        .unwrap();
    wait_for_text(&client, "Bob Kelly (OneDrive)").await;
    screenshot(&client, "18-backup-storage-damage-found").await;
    click(&client, "//nav//a[normalize-space()='Activities']").await;
    wait_for_text(&client, "Damage found").await;
    screenshot(&client, "19-activities-damage-found").await;

    client
        .find(Locator::Css("button.topbar-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Signing out lands on the sign-in page (wait: the click returns before the navigation ends).
    wait_for_text(&client, "action=\"/signin\"").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/signin");
    client.close().await.unwrap();
}

/// The widths every page must fit: a wide screen, a 1280-pixel laptop, a phone.
const WIDTHS: [u32; 3] = [1440, 1280, 390];

/// How much wider than the window the document is (0 when it fits: no sideways scrolling).
async fn overflow(client: &Client) -> i64 {
    client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap()
        .as_i64()
        .unwrap()
}

/// axe-core's source when installed (`.ci/run` installs it from npm into `target/axe`).
fn axe_source() -> Option<String> {
    let path = std::env::var("AXE_CORE_JS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/axe/node_modules/axe-core/axe.min.js"
        )
        .into()
    });
    if !crate::support::tool_available(
        &path,
        "npm install --no-save --prefix target/axe axe-core@4 (or set AXE_CORE_JS)",
    ) {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// Runs axe-core on the page; returns its serious and critical findings, one line each.
async fn accessibility_findings(client: &Client, axe: &str) -> Vec<String> {
    // WebDriver scripts are not subject to the page's Content-Security-Policy.
    client
        .execute(&format!("{axe}\n;return true;"), vec![])
        .await
        .expect("axe-core loads");
    let found = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(result => done(
               result.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' +
                   v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))
             ), error => done(['axe failed: ' + error]));",
            vec![],
        )
        .await
        .expect("axe-core runs");
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Signs the browser in through the sign-in form.
async fn sign_in(client: &Client, app: &TestApp, email: &str) {
    client.goto(&format!("{}/signin", app.base)).await.unwrap();
    let form = client.form(Locator::Css("form")).await.unwrap();
    form.set_by_name("email", email).await.unwrap();
    form.set_by_name("password", PASSWORD).await.unwrap();
    form.submit().await.unwrap();
    for _ in 0..50 {
        if client
            .current_url()
            .await
            .is_ok_and(|u| u.path() != "/signin")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sign-in as {email} did not leave the sign-in page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_from_phone_to_wide_screen_and_paging_survives_back() {
    use crate::console::organizations::{consent, control, run_jobs};
    use crate::support::app::PARTNER_EMAIL;

    let Some(driver) = start_driver().await else {
        return;
    };
    let axe = axe_source();
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;
    let tenant = app.simulator.tenants()[0].clone();
    // Enough users for two pages of the Users tab.
    for n in 0..55 {
        control(
            &app,
            reqwest::Method::POST,
            &format!("tenants/{}/users", tenant.tenant_id),
            Some(serde_json::json!({
                "displayName": format!("Temp Worker {n:02}"),
                "mailNickname": format!("temp{n:02}"),
            })),
        )
        .await;
    }
    let casey = app.visitor();
    casey.sign_in("casey@contoso.example", PASSWORD).await;
    let landed = consent(
        &app,
        &casey,
        &customer,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    let org_page = landed.location().replace("?notice=added", "");
    assert_eq!(run_jobs(&app).await, 1);
    // One user deleted in Microsoft 365 (inactive), then a sync that fails: Microsoft 365
    // answers every directory request with 503.
    let leaving = skyvault::inventory::entities::protected_item::Entity::find()
        .filter(skyvault::inventory::entities::protected_item::Column::Kind.eq("user"))
        .filter(skyvault::inventory::entities::protected_item::Column::Address.like("temp0%"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    control(
        &app,
        reqwest::Method::DELETE,
        &format!("tenants/{}/users/{}", tenant.tenant_id, leaving.graph_id),
        None,
    )
    .await;
    casey.get(&org_page).await;
    casey.post(&format!("{org_page}/refresh"), &[]).await;
    assert_eq!(run_jobs(&app).await, 1);
    control(
        &app,
        reqwest::Method::PUT,
        "faults/directory",
        Some(serde_json::json!({"rate_503": 100.0, "retry_after_seconds": 0.01})),
    )
    .await;
    casey.get(&org_page).await;
    casey.post(&format!("{org_page}/refresh"), &[]).await;
    assert_eq!(run_jobs(&app).await, 1);
    let org_id = org_page.rsplit('/').next().unwrap().to_string();
    // A protection plan, so the plan pages have one to show.
    casey.get(&format!("/c/{customer}/plans/new")).await;
    let created = casey
        .post(
            &format!("/c/{customer}/plans"),
            &[
                ("name", "Everyone's mail and files"),
                ("org", org_id.as_str()),
                ("retention_kind", "days"),
                ("retention_value", "30"),
                ("workload", "mailbox"),
                ("workload", "drive"),
                ("all", "user"),
            ],
        )
        .await;
    assert_eq!(
        created.status,
        reqwest::StatusCode::SEE_OTHER,
        "{}",
        created.body
    );
    let plan_page = created.location().replace("?notice=created", "");
    let someone = skyvault::inventory::entities::protected_item::Entity::find()
        .filter(skyvault::inventory::entities::protected_item::Column::Kind.eq("user"))
        .filter(skyvault::inventory::entities::protected_item::Column::State.eq("active"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let protect_form = format!("/c/{customer}/plans/new?org={org_id}&item={}", someone.id);

    // A sub-partner, renamed so the partner's audit log has its own events beside the customer's.
    let (_, sub) = crate::console::partners::sub_partner(&app, &partner).await;
    partner.get(&format!("/partners/{sub}")).await;
    partner
        .post(
            &format!("/partners/{sub}/rename"),
            &[("name", "Reseller East and West")],
        )
        .await;

    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    sign_in(&client, &app, PARTNER_EMAIL).await;
    let pages = [
        ("sub-partner", format!("/partners/{sub}")),
        ("sub-partner-customers", format!("/customers?partner={sub}")),
        ("customers-sorted", "/customers?sort=created".to_string()),
        ("audit", format!("/c/{customer}/audit")),
        ("partner-audit", "/audit".to_string()),
        // The demo tenant's page is the simulator's, on its own port.
        ("demo-tenant", app.simulator.demo_page_url()),
        ("customers", "/customers".to_string()),
        ("customer", format!("/customers/{customer}")),
        ("sub-partners", "/partners".to_string()),
        ("account", "/account/password".to_string()),
        ("devices", format!("/c/{customer}/devices")),
        ("overview", format!("/c/{customer}/overview")),
        ("partner-alerts", "/alerts".to_string()),
        ("usage", "/usage".to_string()),
        ("organization", org_page.clone()),
        (
            "organization-inactive",
            format!("{org_page}?tab=users&state=inactive"),
        ),
        ("organization-sites", format!("{org_page}?tab=sites")),
        ("plans", format!("/c/{customer}/plans")),
        ("plan", plan_page.clone()),
        ("plan-new", format!("/c/{customer}/plans/new")),
        ("plan-new-from-protect", protect_form.clone()),
        ("plan-delete", format!("{plan_page}/delete")),
        ("organization-protect", format!("{org_page}?tab=users")),
        ("storage", format!("/c/{customer}/storage")),
        ("activities", format!("/c/{customer}/activities")),
        ("alerts", format!("/c/{customer}/alerts")),
        ("settings", format!("/c/{customer}/settings")),
        ("customer-email", format!("/c/{customer}/settings/email")),
        ("email", "/email".to_string()),
        (
            "account-in-customer",
            format!("/account/password?customer={customer}"),
        ),
        (
            "remove-organization",
            format!("/c/{customer}/devices/{org_id}/remove"),
        ),
        ("setup-link-used", "/setup/0123".to_string()),
        ("reset-link-closed", "/reset/0123".to_string()),
    ];
    let mut findings = Vec::new();
    for width in WIDTHS {
        client.set_window_size(width, 900).await.unwrap();
        for (name, path) in &pages {
            let url = if path.starts_with("http") {
                path.clone()
            } else {
                format!("{}{path}", app.base)
            };
            client.goto(&url).await.unwrap();
            heading(&client).await;
            let over = overflow(&client).await;
            screenshot(&client, &format!("fit-{width}-{name}")).await;
            assert!(
                over <= 0,
                "{path} is {over} px wider than a {width}-pixel window"
            );
            if let Some(axe) = &axe {
                for finding in accessibility_findings(&client, axe).await {
                    findings.push(format!("{path} at {width} px: {finding}"));
                }
            }
        }
    }
    assert!(
        findings.is_empty(),
        "axe-core found serious or critical problems:\n{}",
        findings.join("\n")
    );

    // The failed sync is explained in words on Devices and on the partner's Customers list,
    // with Microsoft's code behind Details.
    client.set_window_size(1280, 900).await.unwrap();
    client
        .goto(&format!("{}/c/{customer}/devices", app.base))
        .await
        .unwrap();
    wait_for_text(&client, "Sync failed").await;
    wait_for_text(&client, "Microsoft 365 could not be reached").await;
    client
        .goto(&format!("{}{org_page}", app.base))
        .await
        .unwrap();
    let details = client
        .find(Locator::Css("#sync-status .failure details"))
        .await
        .unwrap();
    assert!(!details.text().await.unwrap().contains("Request id"));
    client
        .find(Locator::Css("#sync-status .failure summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let facts = details.text().await.unwrap();
    assert!(
        facts.contains("Request id") && facts.contains("503"),
        "{facts}"
    );
    screenshot(&client, "fit-1280-organization-failure-details").await;
    client
        .goto(&format!("{}/customers", app.base))
        .await
        .unwrap();
    let row = client
        .find(Locator::XPath(
            "//tr[.//a[normalize-space()='Contoso Ltd']]",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("Sync failed"), "{row}");

    // On a phone the navigation is behind the menu button.
    client.set_window_size(390, 844).await.unwrap();
    client
        .goto(&format!("{}/c/{customer}/devices", app.base))
        .await
        .unwrap();
    let nav = client.find(Locator::Css("nav.sidenav")).await.unwrap();
    assert!(!nav.is_displayed().await.unwrap(), "navigation folded away");
    click(&client, "//label[@for='nav-toggle']").await;
    assert!(
        nav.is_displayed().await.unwrap(),
        "the menu button opens it"
    );
    screenshot(&client, "fit-390-menu-open").await;
    click(&client, "//nav//a[normalize-space()='Activities']").await;
    assert_eq!(heading(&client).await, "Activities");

    // Paging lives in the URL: Next, leave, Back returns to page 2; reload keeps it too.
    client.set_window_size(1280, 900).await.unwrap();
    client
        .goto(&format!("{}{org_page}?tab=users", app.base))
        .await
        .unwrap();
    wait_for_text(&client, "Page 1 of 2").await;
    click(&client, "(//a[@rel='next'])[1]").await;
    wait_for_text(&client, "Page 2 of 2").await;
    for _ in 0..50 {
        if client
            .current_url()
            .await
            .unwrap()
            .query()
            .is_some_and(|q| q.contains("page=1"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .query()
            .unwrap()
            .contains("page=1"),
        "the page is in the address"
    );
    click(&client, "//nav//a[normalize-space()='Devices']").await;
    assert_eq!(heading(&client).await, "Devices");
    client.back().await.unwrap();
    wait_for_text(&client, "Page 2 of 2").await;
    client.refresh().await.unwrap();
    wait_for_text(&client, "Page 2 of 2").await;
    screenshot(&client, "fit-1280-organization-page-2").await;

    // The partner disables Casey from the customer's page: Casey's open session ends at once.
    casey
        .get(&format!("/c/{customer}/devices"))
        .await
        .expect_status(reqwest::StatusCode::OK);
    client
        .goto(&format!("{}/customers/{customer}", app.base))
        .await
        .unwrap();
    let row = "//tr[@data-user='casey@contoso.example']";
    click(&client, &format!("{row}//summary[contains(., 'Manage')]")).await;
    screenshot(&client, "fit-1280-user-actions").await;
    click(
        &client,
        &format!("{row}//button[normalize-space()='Disable and sign out']"),
    )
    .await;
    wait_for_text(&client, "The user was disabled and signed out.").await;
    casey
        .get(&format!("/c/{customer}/devices"))
        .await
        .expect_redirect("/signin");
    // Then removes Casey, after confirming.
    click(&client, &format!("{row}//summary[contains(., 'Manage')]")).await;
    click(&client, &format!("{row}//summary[contains(., 'Remove')]")).await;
    click(
        &client,
        &format!("{row}//button[starts-with(normalize-space(), 'Remove ')]"),
    )
    .await;
    wait_for_text(&client, "The user was removed and signed out.").await;
    assert!(
        !client
            .source()
            .await
            .unwrap()
            .contains("casey@contoso.example")
    );
    let gone = app
        .visitor()
        .sign_in("casey@contoso.example", PASSWORD)
        .await;
    assert_eq!(gone.status, reqwest::StatusCode::UNAUTHORIZED);
    client.close().await.unwrap();
}

/// The backup pages (an archive's points, a point's folders and items, a message preview) fit a
/// laptop and a phone, and a hostile message's preview runs nothing and loads nothing from its
/// sender's server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_pages_fit_and_a_hostile_preview_stays_inert_in_chromium() {
    use crate::console::access::organization_fixture;
    use crate::restore::console::back_up_mailbox;
    use crate::support::app::PARTNER_EMAIL;

    let Some(driver) = start_driver().await else {
        return;
    };
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let org = organization_fixture(&app, &customer, "ContosoOrg").await;
    let backed = back_up_mailbox(&app, &customer, &org).await;
    let point = backed.point_url();
    let pages = [
        (
            "backup-archive",
            format!("/c/{customer}/backups/{}", backed.outcome.archive.id),
        ),
        ("backup-browse", format!("{point}?folder=Inbox")),
        ("backup-browse-archive", format!("{point}?folder=Archive")),
        (
            "backup-preview",
            format!("{point}/preview?path=Inbox%2Fhostile.eml"),
        ),
        (
            "backup-preview-event",
            format!("{point}/preview?path=Calendar%2Fstandup.json"),
        ),
    ];
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    sign_in(&client, &app, PARTNER_EMAIL).await;
    for width in [1280, 390] {
        client.set_window_size(width, 900).await.unwrap();
        for (name, path) in &pages {
            client.goto(&format!("{}{path}", app.base)).await.unwrap();
            heading(&client).await;
            // Give the framed body time to load (and anything in it time to try to run).
            tokio::time::sleep(Duration::from_millis(300)).await;
            let over = overflow(&client).await;
            screenshot(&client, &format!("fit-{width}-{name}")).await;
            assert!(over <= 0, "{path} is {over} px wider than {width} px");
        }
    }
    // Nothing in the preview ran or reached the sender's server.
    client
        .goto(&format!(
            "{}{point}/preview?path=Inbox%2Fhostile.eml",
            app.base
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requested = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).join(' ');",
            vec![],
        )
        .await
        .unwrap();
    assert!(!requested.as_str().unwrap().contains("evil.example"));
    let title = client.title().await.unwrap();
    assert_ne!(title, "pwned");
    let frame = client
        .find(Locator::Css("iframe.message-body"))
        .await
        .unwrap();
    assert_eq!(frame.attr("sandbox").await.unwrap().as_deref(), Some(""));
    client.enter_frame(0).await.unwrap();
    let inside = client.source().await.unwrap();
    assert!(inside.contains("Quarterly numbers"));
    assert!(!inside.contains("<script") && !inside.contains("evil.example"));
    drop(driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_created_in_the_browser_runs_now_and_the_run_finishes() {
    use crate::console::organizations::added_and_synced;

    let Some(driver) = start_driver().await else {
        return;
    };
    let (app, _casey, org_page, _) = added_and_synced().await;
    let customer = org_page
        .trim_start_matches("/c/")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // The process's workers, as `skyvault serve` runs them: the run happens in the background.
    let worker = tokio::spawn(skyvault::jobs::worker::run_worker(std::sync::Arc::new(
        skyvault::app::worker_context(&app.state),
    )));
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    client.set_window_size(1280, 900).await.unwrap();
    sign_in(&client, &app, "casey@contoso.example").await;
    client
        .goto(&format!("{}/c/{customer}/plans", app.base))
        .await
        .unwrap();
    click(&client, "//a[normalize-space()='New plan']").await;
    assert_eq!(heading(&client).await, "New protection plan");
    let form = client.form(Locator::Css("form.form-grid")).await.unwrap();
    form.set_by_name("name", "Mail of everyone").await.unwrap();
    // The form starts with common choices ticked: tick these whatever their starting state.
    check(&client, "//input[@name='workload'][@value='mailbox']").await;
    check(&client, "//input[@name='all'][@value='user']").await;
    screenshot(&client, "plan-run-1-form").await;
    click(
        &client,
        "//form[contains(@class,'form-grid')]//button[@type='submit']",
    )
    .await;
    wait_for_text(&client, "Run now").await;
    assert_eq!(heading(&client).await, "Mail of everyone");
    wait_for_text(&client, "chosen by Skyvault").await;
    screenshot(&client, "plan-run-2-created").await;
    click(&client, "//button[normalize-space()='Run now']").await;
    // Queued, then run by the worker; the page shows the finished run once reloaded.
    let mut finished = false;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.refresh().await.unwrap();
        let source = client.source().await.unwrap();
        if source.contains(">Run now<") && !source.contains("<dt>Last run</dt><dd>Never") {
            finished = true;
            break;
        }
    }
    screenshot(&client, "plan-run-3-finished").await;
    assert!(finished, "the run never finished in the browser's view");
    let runs = skyvault::jobs::entities::job::Entity::find()
        .filter(skyvault::jobs::entities::job::Column::Kind.eq("plan_run"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "one run");
    assert_eq!(runs[0].status, "succeeded", "{:?}", runs[0].error);
    // Its outcome is one click away, in Activities.
    click(&client, "//a[normalize-space()='Backups in Activities']").await;
    wait_for_text(&client, "Backup").await;
    screenshot(&client, "plan-run-4-activities").await;
    worker.abort();
    client.close().await.unwrap();
}

/// Waits, reloading, until the job's page says it finished, with `text`.
async fn wait_for_job(client: &Client, text: &str) -> String {
    for _ in 0..300 {
        let source = client.source().await.unwrap_or_default();
        if source.contains(text) && !source.contains(">Not yet</span>") {
            return source;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.refresh().await.unwrap();
    }
    panic!(
        "{text:?} never appeared on {:?}",
        client.current_url().await
    );
}

/// Restores one message and one file end to end: ticked in the recovery point's page, sent
/// through the restore form to another user, run by the worker, and found in Microsoft 365
/// (the simulator) as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_and_a_file_are_restored_end_to_end_in_chromium() {
    use futures::TryStreamExt;
    use skyvault::inventory::entities::{organization, protected_item};
    use skyvault::m365::TenantId;
    use skyvault::m365::delta::{DeltaChange, DeltaStart, collect_round};
    use skyvault::storage::{BackupRequest, ItemKind, ingest};

    use crate::console::organizations::added_and_synced;
    use crate::storage::fixture::{TestItem, mime_message};

    let Some(driver) = start_driver().await else {
        return;
    };
    let (app, _casey, _org_page, tenant) = added_and_synced().await;
    let org = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let customer = org.customer_id.to_string();
    let graph = app
        .state
        .graph
        .tenant(org.tenant_id.parse::<TenantId>().unwrap());
    // Two users with a mailbox and a OneDrive: the first backed up, the second receiving.
    let mut users = Vec::new();
    for user in protected_item::Entity::find()
        .filter(protected_item::Column::OrgId.eq(org.id))
        .filter(protected_item::Column::Kind.eq("user"))
        .filter(protected_item::Column::State.eq("active"))
        .all(&app.state.db)
        .await
        .unwrap()
    {
        if graph
            .user_drive(&user.graph_id)
            .await
            .ok()
            .flatten()
            .is_some()
            && graph.mail_folders(&user.graph_id).await.is_ok()
        {
            users.push(user);
        }
    }
    assert!(users.len() >= 2, "two users with mail and a OneDrive");
    let (source, receiver) = (&users[0], &users[1]);
    let back_up = |workload: Workload, name: &str, items: Vec<TestItem>| {
        let request = BackupRequest {
            customer: customer.parse().unwrap(),
            org: skyvault::ids::OrgId(org.id),
            item: ItemId(source.id),
            workload,
            display_name: name.to_string(),
            encrypted_repository: None,
        };
        let storage = app.state.storage.clone();
        async move {
            let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let sources: Vec<_> = items.iter().map(|i| i.source(&counter)).collect();
            ingest::back_up_archive(&storage, &request, futures::stream::iter(sources))
                .await
                .unwrap()
        }
    };
    let subject = "Signed contract for the browser restore";
    let mail = back_up(
        Workload::Mailbox,
        &source.display_name,
        vec![TestItem::new(
            "Inbox/contract.eml",
            mime_message(
                41,
                subject,
                "legal@contoso.example",
                "alice@contoso.example",
                Some(b"%PDF-1.7 contract"),
            ),
            ItemKind::Message,
        )],
    )
    .await;
    let brief = b"The brief, as it was on Tuesday.\n".to_vec();
    let files = back_up(
        Workload::OneDrive,
        &format!("{}'s OneDrive", source.display_name),
        vec![TestItem::new(
            "files/Docs/brief.txt",
            brief.clone(),
            ItemKind::File,
        )],
    )
    .await;
    let worker = tokio::spawn(skyvault::jobs::worker::run_worker(std::sync::Arc::new(
        skyvault::app::worker_context(&app.state),
    )));
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    client.set_window_size(1280, 900).await.unwrap();
    sign_in(&client, &app, "casey@contoso.example").await;

    let restore = |outcome: skyvault::storage::BackupOutcome, folder: &str, path: &str| {
        let url = format!(
            "{}/c/{customer}/backups/{}/points/{}?folder={folder}",
            app.base, outcome.archive.id, outcome.recovery_point.id
        );
        let (client, path, receiver) = (client.clone(), path.to_string(), receiver.id);
        async move {
            client.goto(&url).await.unwrap();
            check(&client, &format!("//input[@name='path'][@value='{path}']")).await;
            click(&client, "//button[normalize-space()='Restore…']").await;
            wait_for_text(&client, "Start restore").await;
            click(
                &client,
                &format!("//select[@name='target']/option[@value='{receiver}']"),
            )
            .await;
            check(&client, "//input[@name='folders'][@value='original']").await;
            click(&client, "//button[normalize-space()='Start restore']").await;
        }
    };

    restore(mail, "Inbox", "Inbox/contract.eml").await;
    let page = wait_for_job(&client, "restored into").await;
    screenshot(&client, "restore-message-done").await;
    assert!(
        page.contains(&format!("1 item restored into {}", receiver.display_name)),
        "{page}"
    );
    let round =
        collect_round(graph.message_delta(&receiver.graph_id, "inbox", DeltaStart::Initial, 500))
            .await
            .unwrap();
    let restored: Vec<_> = round
        .changes
        .into_iter()
        .filter_map(|c| match c {
            DeltaChange::Upsert(m) => Some(m),
            DeltaChange::Removed { .. } => None,
        })
        .filter(|m| m.subject.as_deref() == Some(subject))
        .collect();
    assert_eq!(restored.len(), 1, "the message is in the receiver's inbox");
    assert_eq!(restored[0].is_draft, Some(false));

    restore(files, "files/Docs", "files/Docs/brief.txt").await;
    let page = wait_for_job(&client, "restored into").await;
    screenshot(&client, "restore-file-done").await;
    assert!(page.contains("1 file"), "{page}");
    let drive = graph
        .user_drive(&receiver.graph_id)
        .await
        .unwrap()
        .unwrap()
        .id;
    let docs = graph
        .drive_child(&drive, "root", "Docs")
        .await
        .unwrap()
        .unwrap();
    let file = graph
        .drive_child(&drive, &docs.id, "brief.txt")
        .await
        .unwrap()
        .expect("brief.txt in the receiver's OneDrive");
    let bytes: Vec<u8> = graph
        .download(&drive, &file.id)
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .concat();
    assert_eq!(bytes, brief);

    // A team's restore form says why its conversations are downloaded, at both widths.
    let team = back_up(
        Workload::Team,
        "Marketing",
        vec![
            TestItem::new(
                "channels/General (1a2b)/2026-11-01 (3c4d)/thread.json",
                br#"{"message":{"id":"1"},"replies":[]}"#.to_vec(),
                ItemKind::Post,
            ),
            TestItem::new(
                "files/General/agenda.txt",
                b"agenda".to_vec(),
                ItemKind::File,
            ),
        ],
    )
    .await;
    let form = format!(
        "{}/c/{customer}/backups/{}/points/{}/restore?path=channels&path=files",
        app.base, team.archive.id, team.recovery_point.id
    );
    for width in [1280, 390] {
        client.set_window_size(width, 900).await.unwrap();
        client.goto(&form).await.unwrap();
        wait_for_text(&client, "Download the conversations").await;
        let over = overflow(&client).await;
        screenshot(&client, &format!("restore-team-form-{width}")).await;
        assert!(
            over <= 0,
            "the team's restore form is {over} px wider than {width} px"
        );
    }
    let _ = tenant;
    worker.abort();
    client.close().await.unwrap();
}
