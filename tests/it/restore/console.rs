//! Backups in the console: an archive's points and the day picker, browsing with server-side
//! paging and sorting, previews that render hostile HTML inert under a strict CSP, downloads
//! (.eml as stored, zip, mbox), the repository password, the audit log, read-only users, and
//! another customer's ids answering 404 on every new route.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use skyvault::accounts::entities::audit_event;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::storage::{BackupOutcome, BackupRequest, ItemKind, Workload, ingest};

use crate::console::access::organization_fixture;
use crate::console::routes::ROUTES;
use crate::storage::fixture::{TestItem, mime_message};
use crate::support::app::{TestApp, Visitor};

const HOSTILE_HTML: &str = r#"<p onclick="steal()" style="color:#c00;width:expression(alert(1));background:url(http://evil.example/bg)">Quarterly numbers</p>
<script>document.title='pwned'</script><img src="http://evil.example/track.gif" onerror="alert(2)" alt="logo">
<a href="javascript:alert(3)">open</a><svg onload="alert(4)"><circle r="5"/></svg>
<style>body{background:url(http://evil.example/css)}</style><iframe src="http://evil.example/frame"></iframe>"#;

fn hostile_message() -> Vec<u8> {
    format!(
        "From: Mallory <mallory@evil.example>\r\nTo: alice@contoso.example\r\n\
         Subject: Hostile numbers\r\nDate: Tue, 3 Nov 2026 09:00:00 +0000\r\n\
         Message-ID: <hostile@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n{HOSTILE_HTML}\r\n"
    )
    .into_bytes()
}

pub(crate) struct Backed {
    pub customer: String,
    pub outcome: BackupOutcome,
    pub items: Vec<TestItem>,
}

impl Backed {
    pub fn point_url(&self) -> String {
        format!(
            "/c/{}/backups/{}/points/{}",
            self.customer, self.outcome.archive.id, self.outcome.recovery_point.id
        )
    }
}

/// A mailbox backup of `customer` written straight into the console's storage.
pub(crate) async fn back_up_mailbox(app: &TestApp, customer: &str, org: &str) -> Backed {
    let mut items = vec![
        TestItem::new("Inbox/hostile.eml", hostile_message(), ItemKind::Message),
        TestItem::new("Inbox/hostile.item", b"export".to_vec(), ItemKind::MailboxItem),
        TestItem::new(
            "Inbox/report.eml",
            mime_message(7, "Budget report", "bob@contoso.example", "alice@contoso.example", Some(b"pdf")),
            ItemKind::Message,
        ),
        TestItem::new(
            "Inbox/Projects/plan.eml",
            mime_message(8, "From the plan", "carol@contoso.example", "alice@contoso.example", None),
            ItemKind::Message,
        ),
        TestItem::new(
            "Calendar/standup.json",
            br#"{"subject":"Stand-up","start":{"dateTime":"2026-11-03T09:00:00","timeZone":"UTC"},"end":{"dateTime":"2026-11-03T09:15:00","timeZone":"UTC"},"location":{"displayName":"Room 4"},"body":{"contentType":"html","content":"<p onmouseover=alert(1)>Agenda</p>"}}"#.to_vec(),
            ItemKind::Event,
        ),
    ];
    for n in 0..60 {
        items.push(TestItem::new(
            &format!("Archive/m{n:03}.eml"),
            mime_message(
                100 + n,
                &format!("Old message {n:03}"),
                "dave@contoso.example",
                "alice@contoso.example",
                None,
            ),
            ItemKind::Message,
        ));
    }
    let request = BackupRequest {
        customer: customer.parse::<CustomerId>().unwrap(),
        org: org.parse::<OrgId>().unwrap(),
        item: ItemId::new(),
        workload: Workload::Mailbox,
        display_name: "Alice Example".into(),
        encrypted_repository: None,
    };
    let fetches = Arc::new(AtomicUsize::new(0));
    let sources: Vec<_> = items.iter().map(|i| i.source(&fetches)).collect();
    let outcome =
        ingest::back_up_archive(&app.state.storage, &request, futures::stream::iter(sources))
            .await
            .unwrap();
    Backed {
        customer: customer.to_string(),
        outcome,
        items,
    }
}

async fn two_customers_with_backups() -> (TestApp, Visitor, Backed, Visitor, Backed) {
    let (app, partner) = TestApp::with_partner_admin().await;
    let contoso = app
        .customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let fabrikam = app
        .customer_with_admin(&partner, "Fabrikam", "fran@fabrikam.example")
        .await;
    let contoso_org = organization_fixture(&app, &contoso, "ContosoOrg").await;
    let fabrikam_org = organization_fixture(&app, &fabrikam, "FabrikamOrg").await;
    let ours = back_up_mailbox(&app, &contoso, &contoso_org).await;
    let theirs = back_up_mailbox(&app, &fabrikam, &fabrikam_org).await;
    let casey = app.visitor();
    casey
        .sign_in("casey@contoso.example", crate::support::app::PASSWORD)
        .await;
    let fran = app.visitor();
    fran.sign_in("fran@fabrikam.example", crate::support::app::PASSWORD)
        .await;
    (app, casey, ours, fran, theirs)
}

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_browses_previews_and_downloads_and_each_is_audited() {
    let (app, casey, ours, _fran, _theirs) = two_customers_with_backups().await;
    let c = &ours.customer;
    let archive_url = format!("/c/{c}/backups/{}", ours.outcome.archive.id);

    // Backup storage lists the archive and links to it; the archive lists its point.
    let storage = casey
        .get(&format!("/c/{c}/storage"))
        .await
        .expect_status(StatusCode::OK);
    assert!(storage.body.contains(&archive_url), "{}", storage.body);
    let archive = casey.get(&archive_url).await.expect_status(StatusCode::OK);
    assert!(archive.body.contains(&ours.point_url()));
    assert!(archive.body.contains("type=\"date\""));
    // The state on a day: the point taken that day; nothing before the first backup.
    let today = ours
        .outcome
        .recovery_point
        .taken_at
        .format("%Y-%m-%d")
        .to_string();
    casey
        .get(&format!("{archive_url}?day={today}"))
        .await
        .expect_redirect(&ours.point_url());
    let before = casey
        .get(&format!("{archive_url}?day=1999-01-01"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        before
            .body
            .contains("No backup had been taken by the end of 1999-01-01")
    );
    let bad = casey
        .get(&format!("{archive_url}?day=%3Cscript%3E"))
        .await
        .expect_status(StatusCode::OK);
    assert!(bad.body.contains("Enter the day as a date"));
    assert!(!bad.body.contains("<script>"));

    // Browsing: the folder tree, and the Inbox's messages, each once (the export is folded).
    let top = casey
        .get(&ours.point_url())
        .await
        .expect_status(StatusCode::OK);
    for folder in ["Inbox", "Projects", "Calendar", "Archive"] {
        assert!(
            top.body.contains(&format!(">{folder}</a>")),
            "{folder}: {}",
            top.body
        );
    }
    let inbox = casey
        .get(&format!(
            "{}?folder=Inbox&sort=subject&dir=asc",
            ours.point_url()
        ))
        .await
        .expect_status(StatusCode::OK);
    assert!(inbox.body.contains("2 items"), "{}", inbox.body);
    let (budget, hostile) = (
        inbox.body.find("Budget report").unwrap(),
        inbox.body.find("Hostile numbers").unwrap(),
    );
    assert!(budget < hostile, "sorted by subject");
    assert!(inbox.body.contains(&format!(
        "/c/{c}/backups/{}/points/{}/restore",
        ours.outcome.archive.id, ours.outcome.recovery_point.id
    )));
    assert!(
        inbox
            .body
            .contains("name=\"path\" value=\"Inbox/report.eml\"")
    );
    // Paging happens in the database: 60 messages are 2 pages of 50, newest first by default.
    let archive_folder = casey
        .get(&format!(
            "{}?folder=Archive&sort=subject&dir=desc&page=1",
            ours.point_url()
        ))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        archive_folder.body.contains("Page 2 of 2"),
        "{}",
        archive_folder.body
    );
    assert!(archive_folder.body.contains("Old message 009"));
    assert!(!archive_folder.body.contains("Old message 010"));
    // A folder the point does not have is not found.
    casey
        .get(&format!("{}?folder=Nope", ours.point_url()))
        .await
        .expect_status(StatusCode::NOT_FOUND);

    // Preview: headers in the page, the body only in a sandboxed frame without scripts.
    let preview = casey
        .get(&format!(
            "{}/preview?path={}",
            ours.point_url(),
            encoded("Inbox/hostile.eml")
        ))
        .await
        .expect_status(StatusCode::OK);
    assert!(preview.body.contains("mallory@evil.example"));
    assert!(
        preview
            .body
            .contains("<iframe class=\"message-body\" sandbox "),
        "{}",
        preview.body
    );
    assert!(!preview.body.contains("allow-scripts"));
    assert!(!preview.body.contains("onclick"));
    let body = casey
        .get(&format!(
            "{}/body?path={}",
            ours.point_url(),
            encoded("Inbox/hostile.eml")
        ))
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(
        body.headers["content-security-policy"],
        skyvault::web::backups::BODY_CSP
    );
    assert!(
        body.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none';")
    );
    assert_eq!(body.headers["x-frame-options"], "SAMEORIGIN");
    assert!(body.body.contains("Quarterly numbers"));
    let lower = body.body.to_lowercase();
    for inert in [
        "<script",
        "onclick",
        "onerror",
        "onload",
        "javascript:",
        "<svg",
        "evil.example",
        "expression",
        "<iframe",
        "url(",
    ] {
        assert!(!lower.contains(inert), "{inert} survived: {}", body.body);
    }
    // A calendar item reads as fields; its HTML body goes through the same frame.
    let event = casey
        .get(&format!(
            "{}/preview?path={}",
            ours.point_url(),
            encoded("Calendar/standup.json")
        ))
        .await
        .expect_status(StatusCode::OK);
    assert!(event.body.contains("Stand-up") && event.body.contains("Room 4"));
    let event_body = casey
        .get(&format!(
            "{}/body?path={}",
            ours.point_url(),
            encoded("Calendar/standup.json")
        ))
        .await;
    assert!(event_body.body.contains("Agenda") && !event_body.body.contains("onmouseover"));

    // Download: the .eml exactly as stored.
    let (status, headers, eml, _) = casey
        .get_bytes(&format!(
            "{}/download?path={}",
            ours.point_url(),
            encoded("Inbox/report.eml")
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "message/rfc822");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let stored = ours
        .items
        .iter()
        .find(|i| i.path == "Inbox/report.eml")
        .unwrap();
    assert!(eml == *stored.bytes);

    // A selection and a folder as a zip, streamed; the Inbox as mbox.
    let (status, headers, zipped, _) = casey
        .get_bytes(&format!(
            "{}/zip?path={}&path={}",
            ours.point_url(),
            encoded("Inbox/report.eml"),
            encoded("Archive")
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/zip");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
    assert_eq!(zip.len(), 61);
    let mut inside = Vec::new();
    zip.by_name("Inbox/report.eml")
        .unwrap()
        .read_to_end(&mut inside)
        .unwrap();
    assert!(inside == *stored.bytes);
    let (status, _, mbox_zip, _) = casey
        .get_bytes(&format!("{}/mbox?folder=Inbox", ours.point_url()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(mbox_zip)).unwrap();
    let mut mbox = String::new();
    zip.by_name("Inbox.mbox")
        .unwrap()
        .read_to_string(&mut mbox)
        .unwrap();
    assert_eq!(mbox.matches("From MAILER-DAEMON").count(), 2);
    assert!(mbox.contains("Subject: Budget report"));

    // The repository password, with restic commands; revealing it is audited.
    casey
        .get(&format!("/c/{c}/backups/repository-password"))
        .await
        .expect_status(StatusCode::OK);
    let revealed = casey
        .post(&format!("/c/{c}/backups/repository-password"), &[])
        .await
        .expect_status(StatusCode::OK);
    let password = app
        .state
        .storage
        .reveal_repository_password(c.parse().unwrap())
        .await
        .unwrap();
    assert!(revealed.body.contains(&password));
    assert!(revealed.body.contains("snapshots"));

    let events = audit_event::Entity::find()
        .filter(audit_event::Column::CustomerId.eq(c.parse::<uuid::Uuid>().unwrap()))
        .all(&app.state.db)
        .await
        .unwrap();
    let count = |action: &str| events.iter().filter(|e| e.action == action).count();
    assert_eq!(count("backup_previewed"), 2);
    assert_eq!(count("backup_downloaded"), 3);
    assert_eq!(count("repository_password_revealed"), 1);
    assert!(
        events
            .iter()
            .filter(|e| e.action.starts_with("backup_") || e.action.starts_with("repository_"))
            .all(|e| e.actor_email == "casey@contoso.example" && e.address.is_some())
    );
    // The customer's audit page filters by these actions.
    let audit = casey
        .get(&format!("/c/{c}/audit?action=backup_downloaded"))
        .await
        .expect_status(StatusCode::OK);
    assert!(audit.body.contains("Backup downloaded"), "{}", audit.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_users_see_metadata_but_no_content() {
    let (app, casey, ours, _fran, _theirs) = two_customers_with_backups().await;
    let robin = app.read_only_user(&casey, &ours.customer).await;
    let browse = robin
        .get(&format!("{}?folder=Inbox", ours.point_url()))
        .await
        .expect_status(StatusCode::OK);
    assert!(browse.body.contains("Budget report"));
    assert!(!browse.body.contains("/preview?"));
    assert!(!browse.body.contains("name=\"path\""));
    let path = encoded("Inbox/report.eml");
    for tail in [
        format!("/preview?path={path}"),
        format!("/body?path={path}"),
        format!("/download?path={path}"),
        format!("/zip?path={path}"),
        "/mbox?folder=Inbox".to_string(),
    ] {
        let (status, _, body, _) = robin
            .get_bytes(&format!("{}{tail}", ours.point_url()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{tail}");
        assert!(!String::from_utf8_lossy(&body).contains("Budget"), "{tail}");
    }
    robin
        .get(&format!("/c/{}/backups/repository-password", ours.customer))
        .await
        .expect_status(StatusCode::FORBIDDEN);
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::Action.is_in(["backup_previewed", "backup_downloaded"]))
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_customers_real_ids_answer_404_on_every_backup_route() {
    let (app, casey, ours, fran, theirs) = two_customers_with_backups().await;
    let backup_routes: Vec<_> = ROUTES
        .iter()
        // The restore form's two routes have their own walk (`console::restore`).
        .filter(|r| r.path.starts_with("/c/{customer}/backups/") && !r.path.ends_with("/restore"))
        .collect();
    assert_eq!(backup_routes.len(), 10);
    let path = encoded("Inbox/report.eml");
    let query = format!("?path={path}&folder=Inbox");
    // (visitor, their own customer, the other customer's backup)
    for (visitor, own, foreign) in [(&casey, &ours, &theirs), (&fran, &theirs, &ours)] {
        for route in &backup_routes {
            let mut paths = Vec::new();
            for customer in [&foreign.customer, &own.customer] {
                paths.push(
                    route
                        .path
                        .replace("{customer}", customer)
                        .replace("{archive}", &foreign.outcome.archive.id.to_string())
                        .replace("{point}", &foreign.outcome.recovery_point.id.to_string()),
                );
            }
            // Our archive with their point.
            if route.path.contains("{point}") {
                paths.push(
                    route
                        .path
                        .replace("{customer}", &own.customer)
                        .replace("{archive}", &own.outcome.archive.id.to_string())
                        .replace("{point}", &foreign.outcome.recovery_point.id.to_string()),
                );
            }
            for url in paths {
                if route.path.ends_with("repository-password") && url.contains(&own.customer) {
                    continue; // their own password page is theirs to see
                }
                visitor.get(&format!("/c/{}/storage", own.customer)).await;
                let (status, _, body) = if route.method == "POST" {
                    let page = visitor.post(&url, &[]).await;
                    (page.status, page.headers, page.body.into_bytes())
                } else {
                    let (s, h, b, _) = visitor.get_bytes(&format!("{url}{query}")).await;
                    (s, h, b)
                };
                assert_eq!(status, StatusCode::NOT_FOUND, "{} {url}", route.method);
                let body = String::from_utf8_lossy(&body);
                assert!(
                    !body.contains("Budget report") && !body.contains("Alice Example"),
                    "{url} leaked"
                );
            }
        }
    }
    let downloads = audit_event::Entity::find()
        .filter(audit_event::Column::Action.is_in([
            "backup_previewed",
            "backup_downloaded",
            "repository_password_revealed",
        ]))
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(
        downloads.is_empty(),
        "nothing was read, so nothing was audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_zip_download_streams_in_many_chunks() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let contoso = app
        .customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let org = organization_fixture(&app, &contoso, "ContosoOrg").await;
    // 24 MiB of incompressible files: more than the zip stream's chunks in flight hold.
    let items: Vec<TestItem> = (0..6)
        .map(|n| {
            TestItem::new(
                &format!("Documents/f{n}.bin"),
                crate::storage::fixture::random_bytes(n, 4 << 20),
                ItemKind::File,
            )
        })
        .collect();
    let request = BackupRequest {
        customer: contoso.parse().unwrap(),
        org: org.parse().unwrap(),
        item: ItemId::new(),
        workload: Workload::OneDrive,
        display_name: "Alice's OneDrive".into(),
        encrypted_repository: None,
    };
    let fetches = Arc::new(AtomicUsize::new(0));
    let sources: Vec<_> = items.iter().map(|i| i.source(&fetches)).collect();
    let outcome =
        ingest::back_up_archive(&app.state.storage, &request, futures::stream::iter(sources))
            .await
            .unwrap();
    let casey = app.visitor();
    casey
        .sign_in("casey@contoso.example", crate::support::app::PASSWORD)
        .await;
    let (status, _, zipped, chunks) = casey
        .get_bytes(&format!(
            "/c/{contoso}/backups/{}/points/{}/zip?path=Documents",
            outcome.archive.id, outcome.recovery_point.id
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(chunks > 4, "the zip arrived in {chunks} chunks");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
    assert_eq!(zip.len(), 6);
    for item in &items {
        let mut inside = Vec::new();
        zip.by_name(&item.path)
            .unwrap()
            .read_to_end(&mut inside)
            .unwrap();
        assert!(inside == *item.bytes, "{}", item.path);
    }
}
