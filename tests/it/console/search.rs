//! Backup storage > Search: full text across a customer's backups, through a real plan run
//! against the simulator, its fields and their messages, another customer's isolation, and an
//! index rebuilt from the repository after it was lost.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use skyvault::inventory::entities::protected_item;

use super::organizations::{added_and_synced, control, customer_admin, run_jobs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_body_is_found_across_backups_and_the_index_rebuilds_when_lost() {
    let (app, admin, org_page, tenant) = added_and_synced().await;
    let mut parts = org_page.trim_start_matches("/c/").split('/');
    let customer = parts.next().unwrap().to_string();
    let org = parts.nth(1).unwrap().to_string();
    let user = protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq("user"))
        .filter(protected_item::Column::HasMailbox.eq(true))
        .filter(protected_item::Column::State.eq("active"))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a user with a mailbox");
    // A message whose words appear nowhere else: one in the subject, one only in the body.
    control(
        &app,
        reqwest::Method::POST,
        &format!(
            "tenants/{}/users/{}/mailbox/items",
            tenant.tenant_id, user.graph_id
        ),
        Some(json!({
            "type": "message",
            "subject": "Zanzibar shipment",
            "body": "The marmalade invoice is overdue"
        })),
    )
    .await;

    // Search before any backup: nothing, said plainly.
    let search = format!("/c/{customer}/storage/search");
    let none = admin
        .get(&format!("{search}?q=marmalade"))
        .await
        .expect_status(StatusCode::OK);
    assert!(none.body.contains("Nothing found"), "{}", none.body);

    // Protect the user's mailbox and run the plan now.
    let user_id = user.id.to_string();
    admin.get(&format!("/c/{customer}/plans/new")).await;
    let created = admin
        .post(
            &format!("/c/{customer}/plans"),
            &[
                ("name", "Mailboxes"),
                ("org", &org),
                ("retention_kind", "points"),
                ("retention_value", "5"),
                ("workload", "mailbox"),
                ("item", &user_id),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let plan = created.location().replace("?notice=created", "");
    admin.get(&plan).await;
    admin.post(&format!("{plan}/run"), &[]).await;
    run_jobs(&app).await;

    // A word of the body finds the message, with its subject, its mailbox and its backup.
    let found = admin
        .get(&format!("{search}?q=marmalade"))
        .await
        .expect_status(StatusCode::OK);
    assert!(found.body.contains("Zanzibar shipment"), "{}", found.body);
    assert!(found.body.contains("1 found"), "{}", found.body);
    assert!(found.body.contains(&user.display_name), "{}", found.body);
    assert!(!found.body.contains("still being indexed"));
    // Fields narrow: the subject field matches the subject's word, not the body's.
    let by_subject = admin.get(&format!("{search}?subject=zanzibar")).await;
    assert!(by_subject.body.contains("Zanzibar shipment"));
    let body_word_in_subject = admin.get(&format!("{search}?subject=marmalade")).await;
    assert!(body_word_in_subject.body.contains("Nothing found"));
    let files_only = admin.get(&format!("{search}?q=marmalade&kind=file")).await;
    assert!(files_only.body.contains("Nothing found"));
    let messages = admin
        .get(&format!(
            "{search}?q=marmalade&kind=message&after=2000-01-01"
        ))
        .await;
    assert!(
        messages.body.contains("Zanzibar shipment"),
        "{}",
        messages.body
    );
    let long_ago = admin
        .get(&format!("{search}?q=marmalade&before=2001-01-01"))
        .await;
    assert!(long_ago.body.contains("Nothing found"));

    // Bad input is a message in the page, never a 500.
    for (query, message) in [
        ("after=yesterday", "From date must be a date"),
        (
            "after=2026-11-02&before=2026-11-01",
            "The from date is after the to date.",
        ),
        ("kind=%3Cscript%3E", "Choose an item type from the list."),
        ("archive=not-an-id", "Choose a backup from the list."),
    ] {
        let page = admin
            .get(&format!("{search}?{query}"))
            .await
            .expect_status(StatusCode::OK);
        assert!(page.body.contains(message), "{query}: {}", page.body);
    }
    admin
        .get(&format!("{search}?q={}", "x".repeat(5000)))
        .await
        .expect_status(StatusCode::OK);

    // Another customer finds nothing of this one, and cannot open this one's search.
    let partner = app.visitor();
    partner
        .sign_in(
            crate::support::app::PARTNER_EMAIL,
            crate::support::app::PASSWORD,
        )
        .await;
    let (other, other_admin) =
        customer_admin(&app, &partner, "Fabrikam Ltd", "fiona@fabrikam.example").await;
    let theirs = other_admin
        .get(&format!("/c/{other}/storage/search?q=marmalade"))
        .await
        .expect_status(StatusCode::OK);
    assert!(theirs.body.contains("Nothing found"));
    other_admin
        .get(&format!("{search}?q=marmalade"))
        .await
        .expect_status(StatusCode::NOT_FOUND);

    // The index is lost: the page says it is catching up, rebuilds it from the repository in
    // the background, and finds the message again.
    let index_dir = std::path::Path::new(&app.state.settings.data_dir)
        .join("search")
        .join(&customer);
    std::fs::remove_dir_all(&index_dir).unwrap();
    let catching_up = admin.get(&format!("{search}?q=marmalade")).await;
    assert!(
        catching_up.body.contains("still being indexed"),
        "{}",
        catching_up.body
    );
    let mut rebuilt = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let page = admin.get(&format!("{search}?q=marmalade")).await;
        if page.body.contains("Zanzibar shipment") && !page.body.contains("still being indexed") {
            rebuilt = true;
            break;
        }
    }
    assert!(rebuilt, "the lost index was rebuilt from the repository");
}
