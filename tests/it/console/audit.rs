//! The audit log pages: a customer's log (read-only users read it too) and a partner's, with
//! who, what, when and from where; filters by actor and action and paging that live in the URL,
//! bad parameters answered with a 400 or ignored; another customer's events are never shown.

use reqwest::StatusCode;
use skyvault::accounts::audit::{self, Actor, Event, Owner};

use crate::support::app::{PARTNER_EMAIL, PASSWORD, TestApp};

/// How a customer's creation reads in the log's table (the action filter lists the words too).
const CREATED_ROW: &str = "<span class=\"strong\">Customer created</span>";

/// Records `count` role changes by `actor` in the customer's log, a minute apart.
async fn role_changes(app: &TestApp, customer: &str, actor: &str, count: usize) {
    for n in 0..count {
        app.clock.advance(chrono::Duration::minutes(1));
        audit::record(
            &app.state.db,
            &app.clock,
            Actor {
                id: uuid::Uuid::new_v4(),
                email: actor,
                address: Some("192.0.2.7"),
            },
            Event {
                owner: Owner::Customer(customer.parse().unwrap()),
                action: "user_role_changed",
                subject: &format!("worker{n:02}@contoso.example"),
                detail: "new role: Read-only user".into(),
            },
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_read_their_own_audit_log_filtered_sorted_and_paged_from_the_url() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let contoso = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;
    let fabrikam = app
        .customer_with_admin(&partner, "Fabrikam", "fran@fabrikam.example")
        .await;
    let casey = app.visitor();
    casey.sign_in("casey@contoso.example", PASSWORD).await;
    let robin = app.read_only_user(&casey, &contoso).await;
    role_changes(&app, &contoso, "casey@contoso.example", 55).await;
    role_changes(&app, &fabrikam, "fran@fabrikam.example", 3).await;

    // A read-only user reads the log: newest first, 50 to a page, with who and from where.
    let log = format!("/c/{contoso}/audit");
    let first = robin.get(&log).await.expect_status(StatusCode::OK);
    assert!(
        first.body.contains("58 events"),
        "55 role changes, two users added and the creation"
    );
    assert!(first.body.contains("Page 1 of 2"));
    assert!(first.body.contains("worker54@contoso.example"));
    assert!(!first.body.contains("worker04@contoso.example"));
    assert!(first.body.contains("192.0.2.7") && first.body.contains("UTC"));
    assert!(first.body.contains("aria-sort=\"descending\""));
    assert!(
        !first.body.contains("fran@fabrikam.example"),
        "another customer's events"
    );
    let next = format!("href=\"{log}?page=1\"");
    assert!(first.body.contains(&next), "the next page is a link");
    let second = robin
        .get(&format!("{log}?page=1"))
        .await
        .expect_status(StatusCode::OK);
    assert!(second.body.contains("Page 2 of 2"));
    assert!(second.body.contains("worker00@contoso.example"));
    assert!(second.body.contains(CREATED_ROW));
    assert!(
        second
            .body
            .contains("<span class=\"strong\">Console user added</span>: robin@contoso.example")
    );

    // Oldest first, and filtered by action and actor; the filters stay in the links.
    let oldest = robin.get(&format!("{log}?dir=asc")).await;
    let created = oldest.body.find(CREATED_ROW).unwrap();
    assert!(created < oldest.body.find("worker00@").unwrap());
    let created_only = robin
        .get(&format!("{log}?action=customer_created"))
        .await
        .expect_status(StatusCode::OK);
    assert!(created_only.body.contains("1 event"));
    let by_casey = robin
        .get(&format!("{log}?actor=casey%40contoso.example&sort=who"))
        .await
        .expect_status(StatusCode::OK);
    assert!(by_casey.body.contains("56 events"));
    let links = by_casey.body.replace("&#38;", "&");
    assert!(
        links.contains(&format!(
            "{log}?actor=casey%40contoso.example&sort=who&page=1"
        )),
        "the filter and sort stay in the pager's link"
    );
    let nobody = robin
        .get(&format!("{log}?actor=fran%40fabrikam.example"))
        .await
        .expect_status(StatusCode::OK);
    assert!(nobody.body.contains("No event matches these filters."));
    assert!(!nobody.body.contains("worker00@"));

    // Bad parameters: a malformed page is a 400 with a message; unknown values are ignored.
    let bad = robin.get(&format!("{log}?page=-1")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("malformed"));
    let nul = robin.get(&format!("{log}?actor=%00x")).await;
    assert_eq!(nul.status, StatusCode::OK);
    let odd = robin
        .get(&format!(
            "{log}?action=%3Cscript%3E&sort=%3Cb%3E&dir=up&page=999"
        ))
        .await
        .expect_status(StatusCode::OK);
    assert!(odd.body.contains("Page 2 of 2") && !odd.body.contains("<script>"));

    // Another customer's log is not found; the partner reads both in its own log.
    robin
        .get(&format!("/c/{fabrikam}/audit"))
        .await
        .expect_status(StatusCode::NOT_FOUND);
    robin
        .get("/audit")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    let all = partner.get("/audit").await.expect_status(StatusCode::OK);
    assert!(all.body.contains("fran@fabrikam.example") && all.body.contains("Fabrikam"));
    assert!(all.body.contains(PARTNER_EMAIL));
}
