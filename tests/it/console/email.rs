//! Alert e-mail against a local SMTP server (`tests/smtp_sink.py`, Python's aiosmtpd): an
//! injected backup failure mailed once to its recipients and its resolution after a good run; a
//! mail server that is down (the outbox retries with backoff, the failure shows on the alert and
//! the operator's page, the mail goes once the server is back); the settings form's messages,
//! the sealed password and the test e-mail button; the daily summary; the app secret's expiry;
//! who may reach which settings.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use skyvault::jobs::alerts::{self, entities::alert};
use skyvault::notify::entities::{mail_outbox, smtp_settings};
use skyvault::notify::mailer::{self, Mailer, Pass};

use super::activities::{mailbox_plan, run_now, user_fault};
use super::organizations::{added_and_synced, customer_admin, run_jobs};
use crate::support::app::{PARTNER_EMAIL, PASSWORD, TestApp, Visitor};

/// The test's SMTP server: `python3 tests/smtp_sink.py`, stopped when dropped.
struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
}

#[derive(Debug, serde::Deserialize)]
struct Received {
    to: Vec<String>,
    subject: String,
    sender: String,
    body: String,
}

impl SmtpSink {
    /// Starts it on `port`; `None` (the test skips) when aiosmtpd is not installed here.
    async fn start(port: u16) -> Option<SmtpSink> {
        if !aiosmtpd_installed() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        // Owned at once, so a failed start still stops the process.
        let sink = SmtpSink { child, dir };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(sink);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the test SMTP server did not start on port {port}");
    }

    /// Every message received so far, in order.
    fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn aiosmtpd_installed() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("SKYVAULT_REQUIRE_TOOLS").is_none(),
            "aiosmtpd is required here: python3 -m pip install aiosmtpd"
        );
        eprintln!("skipped: this test needs aiosmtpd (python3 -m pip install aiosmtpd)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn operator(app: &TestApp) -> Visitor {
    let pat = app.visitor();
    pat.sign_in(PARTNER_EMAIL, PASSWORD)
        .await
        .expect_redirect("/customers");
    pat
}

/// The operator points Skyvault at the test server on `port` and switches e-mail on.
async fn configure_smtp(pat: &Visitor, port: u16) {
    pat.get("/email").await.expect_status(StatusCode::OK);
    pat.post(
        "/email/server",
        &[
            ("enabled", "on"),
            ("host", "127.0.0.1"),
            ("port", &port.to_string()),
            ("security", "none"),
            ("username", ""),
            ("password", ""),
            ("sender", "backup@northwind.example"),
        ],
    )
    .await
    .expect_redirect("/email?notice=smtp_saved");
}

async fn mail_pass(app: &TestApp) -> Pass {
    mailer::run_once(&Mailer::of(&app.state)).await.unwrap()
}

async fn evaluate(app: &TestApp) -> alerts::Evaluation {
    alerts::evaluate(&app.state.db, app.state.clock.as_ref())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_is_mailed_once_and_a_good_run_mails_its_resolution() {
    let port = free_port();
    let Some(sink) = SmtpSink::start(port).await else {
        return;
    };
    let (app, casey, org_page, tenant) = added_and_synced().await;
    let (customer, plan, item) = mailbox_plan(&app, &casey, &org_page).await;
    let pat = operator(&app).await;
    configure_smtp(&pat, port).await;

    user_fault(
        &app,
        tenant.tenant_id,
        &item,
        Some(serde_json::json!({"mail": 403})),
    )
    .await;
    run_now(&casey, &customer, &plan).await;
    run_jobs(&app).await;
    assert_eq!(evaluate(&app).await.opened, 1);
    let pass = mail_pass(&app).await;
    assert_eq!((pass.queued, pass.sent, pass.failed), (2, 2, 0), "{pass:?}");

    // Nobody chose yet: the customer's administrator and the partner's receive it.
    let mails = sink.received();
    let mut to: Vec<&str> = mails.iter().map(|m| m.to[0].as_str()).collect();
    to.sort();
    assert_eq!(to, ["casey@contoso.example", PARTNER_EMAIL]);
    let mail = &mails[0];
    assert_eq!(
        mail.subject,
        "[Skyvault] Backup failed: Plan “Mailboxes” (Contoso Ltd)"
    );
    assert!(mail.sender.contains("backup@northwind.example"));
    assert!(
        mail.body
            .contains("Microsoft 365 refused to let Skyvault read this item"),
        "{}",
        mail.body
    );
    assert!(mail.body.contains("Will Skyvault try again?\nYes"));
    assert!(mail.body.contains("Run now tries at once"));
    assert!(
        mail.body
            .contains(&format!("{}/c/{customer}/activities/", app.base)),
        "{}",
        mail.body
    );
    let page = casey
        .get(&format!("/c/{customer}/alerts"))
        .await
        .expect_status(StatusCode::OK);
    assert!(page.body.contains("E-mailed"), "{}", page.body);

    // The same failure again updates the alert and mails nobody.
    app.clock.advance(chrono::Duration::minutes(10));
    run_now(&casey, &customer, &plan).await;
    run_jobs(&app).await;
    assert_eq!(evaluate(&app).await.repeated, 1);
    assert_eq!(mail_pass(&app).await, Pass::default());
    assert_eq!(sink.received().len(), 2);

    // A good run resolves it: a short "resolved" mail to the same people.
    user_fault(&app, tenant.tenant_id, &item, None).await;
    app.clock.advance(chrono::Duration::minutes(10));
    run_now(&casey, &customer, &plan).await;
    run_jobs(&app).await;
    assert_eq!(evaluate(&app).await.resolved, 1);
    let pass = mail_pass(&app).await;
    assert_eq!((pass.queued, pass.sent), (2, 2), "{pass:?}");
    let mails = sink.received();
    assert_eq!(mails.len(), 4);
    for resolved in &mails[2..] {
        assert_eq!(
            resolved.subject,
            "[Skyvault] Resolved: Backup failed: Plan “Mailboxes” (Contoso Ltd)"
        );
        assert!(resolved.body.contains("The cause is gone"));
    }
    assert_eq!(
        mail_pass(&app).await,
        Pass::default(),
        "nothing is sent twice"
    );
}

/// An open alert of `customer`, as `alerts::evaluate` opens one.
async fn open_alert(app: &TestApp, customer: &str) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    let now = now(app);
    alert::Entity::insert(alert::ActiveModel {
        id: Set(id),
        customer_id: Set(customer.parse().unwrap()),
        cause: Set("storage_unreachable".into()),
        subject_key: Set("repository".into()),
        subject: Set("Backup storage".into()),
        message: Set("The storage did not answer.".into()),
        link: Set(None),
        open_key: Set(Some(format!("{customer}:storage_unreachable:repository"))),
        first_seen: Set(now),
        last_seen: Set(now),
        occurrences: Set(1),
        acknowledged_by: Set(None),
        acknowledged_at: Set(None),
        resolved_at: Set(None),
        mail_state: Set("pending".into()),
        mail_attempts: Set(0),
        mail_next_at: Set(None),
        mail_error: Set(None),
        resolution_mailed: Set(false),
    })
    .exec(&app.state.db)
    .await
    .unwrap();
    id
}

fn now(app: &TestApp) -> chrono::DateTime<chrono::Utc> {
    app.state.clock.now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_that_is_down_is_retried_with_backoff_and_shown_until_it_delivers() {
    if !aiosmtpd_installed() {
        return;
    }
    let (app, pat) = TestApp::with_partner_admin().await;
    let (customer, casey) = customer_admin(&app, &pat, "Contoso", "casey@contoso.example").await;
    // Only the customer's administrator, so one message to follow.
    pat.get("/email").await;
    pat.post("/email/recipients", &[])
        .await
        .expect_redirect("/email?notice=recipients_saved");
    let port = free_port();
    configure_smtp(&pat, port).await;
    let alert = open_alert(&app, &customer).await;

    let pass = mail_pass(&app).await;
    assert_eq!((pass.queued, pass.sent, pass.failed), (1, 0, 1), "{pass:?}");
    let row = mail_outbox::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 1));
    let error = row.last_error.clone().unwrap();
    assert!(
        error.starts_with(&format!(
            "Skyvault could not reach the mail server 127.0.0.1:{port}"
        )),
        "{error}"
    );
    assert_eq!(
        row.next_attempt_at - now(&app),
        chrono::Duration::minutes(1)
    );
    // On the alert, for the customer; and on the operator's page.
    let page = casey
        .get(&format!("/c/{customer}/alerts"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        page.body.contains("E-mail not sent yet (attempt 1)")
            && page.body.contains("could not reach the mail server"),
        "{}",
        page.body
    );
    let page = pat.get("/email").await.expect_status(StatusCode::OK);
    assert!(page.body.contains("1 waiting to be sent"), "{}", page.body);
    assert!(page.body.contains("could not reach the mail server"));

    // Not due again before its backoff; the second failure waits twice as long.
    assert_eq!(mail_pass(&app).await, Pass::default());
    app.clock.advance(chrono::Duration::minutes(1));
    assert_eq!(mail_pass(&app).await.failed, 1);
    let row = mail_outbox::Entity::find_by_id(row.id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.attempts, 2);
    assert_eq!(
        row.next_attempt_at - now(&app),
        chrono::Duration::minutes(2)
    );

    // The server comes back: the message goes, once.
    let sink = SmtpSink::start(port).await.unwrap();
    app.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(mail_pass(&app).await.sent, 1);
    let mails = sink.received();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["casey@contoso.example"]);
    assert_eq!(
        mails[0].subject,
        "[Skyvault] Backup storage unreachable: Backup storage (Contoso)"
    );
    let state = alert::Entity::find_by_id(alert)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (state.mail_state.as_str(), state.mail_error),
        ("sent", None)
    );
    let page = casey.get(&format!("/c/{customer}/alerts")).await;
    assert!(page.body.contains("E-mailed"));
    let page = pat.get("/email").await;
    assert!(page.body.contains("0 waiting to be sent"), "{}", page.body);
    app.clock.advance(chrono::Duration::hours(2));
    assert_eq!(mail_pass(&app).await.sent, 0);
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_form_checks_each_field_seals_the_password_and_sends_a_test_email() {
    let port = free_port();
    let Some(sink) = SmtpSink::start(port).await else {
        return;
    };
    let (app, pat) = TestApp::with_partner_admin().await;
    let page = pat.get("/email").await.expect_status(StatusCode::OK);
    assert!(page.body.contains("E-mail off"), "off by default");

    let refused = pat
        .post(
            "/email/server",
            &[
                ("enabled", "on"),
                ("host", "smtp.example.com"),
                ("port", "0"),
                ("security", "none"),
                ("sender", "nobody"),
            ],
        )
        .await
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.error_code().as_deref(), Some("invalid_port"));
    assert!(refused.body.contains("Enter a port from 1 to 65535"));
    assert!(
        refused
            .body
            .contains("only for a mail server on this machine (localhost)")
    );
    assert!(
        refused
            .body
            .contains("Enter an email address like name@example.com.")
    );
    assert!(
        refused.body.contains("value=\"smtp.example.com\""),
        "typed values stay"
    );
    assert!(
        smtp_settings::Entity::find()
            .one(&app.state.db)
            .await
            .unwrap()
            .is_none()
    );

    let secret = "hunter2-is-not-a-password";
    pat.post(
        "/email/server",
        &[
            ("host", "127.0.0.1"),
            ("port", &port.to_string()),
            ("security", "none"),
            ("username", "mailer"),
            ("password", secret),
            ("sender", "backup@northwind.example"),
        ],
    )
    .await
    .expect_redirect("/email?notice=smtp_saved");
    let row = smtp_settings::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let sealed = row.sealed_password.clone().unwrap();
    assert!(sealed.starts_with("sv1:") && !sealed.contains(secret));
    assert!(!row.enabled);
    let page = pat.open("/email?notice=smtp_saved").await;
    assert!(!page.body.contains(secret));
    assert!(page.body.contains("Stored: leave blank to keep it"));

    // A blank password keeps the stored one (the test server asks for no user, so none is set).
    pat.post(
        "/email/server",
        &[
            ("host", "127.0.0.1"),
            ("port", &port.to_string()),
            ("security", "none"),
            ("password", ""),
            ("sender", "backup@northwind.example"),
        ],
    )
    .await
    .expect_redirect("/email?notice=smtp_saved");
    let kept = smtp_settings::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.sealed_password.as_deref(), Some(sealed.as_str()));

    // The test button works while e-mail is off, and says what the server answered.
    pat.get("/email").await;
    let sent = pat
        .post("/email/server/test", &[("to", "ops@northwind.example")])
        .await
        .expect_status(StatusCode::OK);
    assert!(
        sent.body
            .contains("The mail server accepted the test e-mail to ops@northwind.example"),
        "{}",
        sent.body
    );
    let mails = sink.received();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "[Skyvault] Test e-mail");
    assert_eq!(mails[0].to, ["ops@northwind.example"]);
    let refused = pat
        .post("/email/server/test", &[("to", "refuse@northwind.example")])
        .await
        .expect_status(StatusCode::OK);
    assert!(
        refused.body.contains(&format!(
            "The test e-mail was not sent: The mail server 127.0.0.1:{port} refused the message"
        )) && refused.body.contains("mailbox unavailable"),
        "{}",
        refused.body
    );
    let bad = pat
        .post("/email/server/test", &[("to", "not an address")])
        .await
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.error_code().as_deref(), Some("invalid_to"));
    assert_eq!(sink.received().len(), 1);

    let audit = pat.get("/audit").await.expect_status(StatusCode::OK);
    assert!(audit.body.contains("Mail server settings changed"));
    assert!(audit.body.contains("Test e-mail sent"));
    assert!(!audit.body.contains(secret));

    // Rotating the master key re-seals the password with the rest of the secrets.
    let key = app.state.settings.master_key_file();
    skyvault::key_custody::rotate_master_key(&app.state.db, &app.clock, &key)
        .await
        .unwrap();
    let new_key = skyvault::crypto::MasterKey::load(&key).unwrap().unwrap();
    let config = skyvault::notify::smtp::load(&app.state.db, &new_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(config.password.as_deref(), Some(secret));
    assert!(
        skyvault::notify::smtp::load(&app.state.db, &app.state.master_key)
            .await
            .is_err(),
        "the old key no longer opens it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_operator_reaches_the_mail_server_and_each_customer_only_its_recipients() {
    let (app, pat) = TestApp::with_partner_admin().await;
    let (contoso, casey) = customer_admin(&app, &pat, "Contoso", "casey@contoso.example").await;
    let (fabrikam, fiona) = customer_admin(&app, &pat, "Fabrikam", "fiona@fabrikam.example").await;
    let sam = app.sub_partner_with_admin(&pat).await;

    // Customers' users: no partner page, no mail server.
    casey
        .get("/email")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    casey.get(&format!("/c/{contoso}/settings/email")).await;
    for path in ["/email/server", "/email/server/test", "/email/recipients"] {
        casey
            .post(path, &[("host", "evil.example"), ("to", "x@evil.example")])
            .await
            .expect_status(StatusCode::NOT_FOUND);
    }
    // A sub-partner's administrator chooses its own recipients but not the mail server.
    let page = sam.get("/email").await.expect_status(StatusCode::OK);
    assert!(!page.body.contains("Mail server (SMTP)"));
    assert!(page.body.contains("sam@east.example"));
    sam.post("/email/server", &[("host", "evil.example")])
        .await
        .expect_status(StatusCode::NOT_FOUND);
    sam.post("/email/server/test", &[("to", "sam@east.example")])
        .await
        .expect_status(StatusCode::NOT_FOUND);
    assert!(
        smtp_settings::Entity::find()
            .one(&app.state.db)
            .await
            .unwrap()
            .is_none()
    );

    // Another customer's recipients answer 404, as a customer that does not exist.
    fiona.get(&format!("/c/{fabrikam}/settings")).await;
    fiona
        .get(&format!("/c/{contoso}/settings/email"))
        .await
        .expect_status(StatusCode::NOT_FOUND);
    fiona
        .post(
            &format!("/c/{contoso}/settings/email"),
            &[("alert_addresses", "fiona@fabrikam.example")],
        )
        .await
        .expect_status(StatusCode::NOT_FOUND);

    // The customer's own form: defaults, a refused address beside its field, then a choice.
    let page = casey
        .get(&format!("/c/{contoso}/settings/email"))
        .await
        .expect_status(StatusCode::OK);
    assert!(page.body.contains("Nobody has chosen yet"));
    let casey_id = skyvault::accounts::entities::console_user::Entity::find()
        .filter(
            skyvault::accounts::entities::console_user::Column::Email.eq("casey@contoso.example"),
        )
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    let refused = casey
        .post(
            &format!("/c/{contoso}/settings/email"),
            &[
                ("alert_user", casey_id.as_str()),
                ("alert_addresses", "oncall@contoso.example\nnot-an-address"),
            ],
        )
        .await
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.error_code().as_deref(),
        Some("invalid_alert_addresses")
    );
    assert!(
        refused
            .body
            .contains("Not an e-mail address: not-an-address")
    );
    assert!(
        refused
            .body
            .contains("oncall@contoso.example\nnot-an-address")
    );
    casey
        .post(
            &format!("/c/{contoso}/settings/email"),
            &[
                ("summary_user", casey_id.as_str()),
                ("alert_addresses", "OnCall@Contoso.example"),
                // An id that is not one of Contoso's users is ignored.
                ("alert_user", &fabrikam),
            ],
        )
        .await
        .expect_redirect(&format!(
            "/c/{contoso}/settings/email?notice=recipients_saved"
        ));
    let addresses = skyvault::notify::recipients::alert_addresses(
        &app.state.db,
        Some(skyvault::ids::CustomerId(contoso.parse().unwrap())),
    )
    .await
    .unwrap();
    assert_eq!(addresses, ["oncall@contoso.example", PARTNER_EMAIL]);

    // Read-only users see the choice but cannot change it.
    let robin = app.read_only_user(&casey, &contoso).await;
    let page = robin
        .get(&format!("/c/{contoso}/settings/email"))
        .await
        .expect_status(StatusCode::OK);
    assert!(page.body.contains("oncall@contoso.example"));
    robin
        .post(&format!("/c/{contoso}/settings/email"), &[])
        .await
        .expect_status(StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_summary_goes_once_a_day_and_an_expiring_app_secret_warns_the_operator() {
    let port = free_port();
    let Some(sink) = SmtpSink::start(port).await else {
        return;
    };
    let (app, pat) = TestApp::with_partner_admin().await;
    let (contoso, casey) = customer_admin(&app, &pat, "Contoso", "casey@contoso.example").await;
    configure_smtp(&pat, port).await;
    casey.get(&format!("/c/{contoso}/settings/email")).await;
    casey
        .post(
            &format!("/c/{contoso}/settings/email"),
            &[("summary_addresses", "it@contoso.example")],
        )
        .await
        .expect_redirect(&format!(
            "/c/{contoso}/settings/email?notice=recipients_saved"
        ));
    open_alert(&app, &contoso).await;

    // The test clock stands at 09:00 UTC, past the summary hour.
    let pass = mail_pass(&app).await;
    // The alert goes to the partner (Contoso chose nobody for alerts), the summary to IT.
    assert_eq!((pass.queued, pass.sent), (2, 2), "{pass:?}");
    let summary = sink
        .received()
        .into_iter()
        .find(|m| m.to == ["it@contoso.example"])
        .expect("the summary");
    assert_eq!(
        summary.subject,
        "[Skyvault] Daily summary for Contoso: Something needs attention"
    );
    assert!(summary.body.contains("Nothing ran."), "{}", summary.body);
    assert!(
        summary
            .body
            .contains("Backup storage unreachable: Backup storage")
    );
    assert_eq!(mail_pass(&app).await.sent, 0, "once a day");
    app.clock.advance(chrono::Duration::days(1));
    assert_eq!(mail_pass(&app).await.sent, 1, "and again the next day");

    // The app's client secret expires in 20 days: the operator is told, on the page and by mail.
    let expires = (now(&app) + chrono::Duration::days(20)).date_naive();
    let opened =
        alerts::evaluate_installation(&app.state.db, app.state.clock.as_ref(), Some(expires))
            .await
            .unwrap();
    assert_eq!(opened.opened, 1);
    // A day later the console session has ended: sign in again.
    let pat = operator(&app).await;
    // The customers' evaluation leaves it alone (it resolves the storage alert made up above).
    evaluate(&app).await;
    assert_eq!(
        mailer::installation_alerts(&app.state.db)
            .await
            .unwrap()
            .len(),
        1
    );
    let page = pat.get("/email").await.expect_status(StatusCode::OK);
    assert!(page.body.contains("Microsoft app secret about to expire"));
    assert!(page.body.contains(&format!("expires on {expires}")));
    let before = sink.received().len();
    // The warning, and the storage alert's resolution.
    assert_eq!(mail_pass(&app).await.sent, 2);
    let mails = sink.received();
    assert_eq!(mails.len(), before + 2);
    let warning = mails
        .iter()
        .find(|m| m.subject.contains("Microsoft app secret about to expire"))
        .expect("the warning");
    assert_eq!(warning.to, [PARTNER_EMAIL]);
    assert!(
        warning.body.contains("Will Skyvault try again?\nNo"),
        "{}",
        warning.body
    );
    // Not known any more (or renewed far ahead): it resolves.
    let later = (now(&app) + chrono::Duration::days(400)).date_naive();
    let resolved =
        alerts::evaluate_installation(&app.state.db, app.state.clock.as_ref(), Some(later))
            .await
            .unwrap();
    assert_eq!(resolved.resolved, 1);
}
