//! Administrators managing console users: disable, re-enable, change role, password-reset link,
//! remove; the user is signed out at once when access is taken away, every change is in the audit
//! log, and none of it reaches another customer's users or one's own account.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use skyvault::accounts::entities::{audit_event, console_user, session};

use crate::support::app::{PASSWORD, TestApp, Visitor};

async fn user_id(app: &TestApp, email: &str) -> String {
    console_user::Entity::find()
        .filter(console_user::Column::Email.eq(email))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string()
}

async fn sessions_of(app: &TestApp, id: &str) -> u64 {
    session::Entity::find()
        .filter(session::Column::UserId.eq(uuid::Uuid::parse_str(id).unwrap()))
        .count(&app.state.db)
        .await
        .unwrap()
}

async fn signed_in(app: &TestApp, email: &str, password: &str, customer: &str) -> Visitor {
    let visitor = app.visitor();
    visitor
        .sign_in(email, password)
        .await
        .expect_redirect(&format!("/c/{customer}/overview"));
    visitor
}

/// A signed-out browser asking for a console page is sent to sign in.
async fn assert_signed_out(visitor: &Visitor, customer: &str) {
    visitor
        .get(&format!("/c/{customer}/devices"))
        .await
        .expect_redirect("/signin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_disables_re_roles_resets_and_removes_a_console_user() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;
    let casey = signed_in(&app, "casey@contoso.example", PASSWORD, &customer).await;
    casey.get(&format!("/c/{customer}/settings")).await;
    casey
        .post(
            &format!("/c/{customer}/settings/users"),
            &[
                ("display_name", "Rory Reader"),
                ("email", "rory@contoso.example"),
                ("password", PASSWORD),
                ("role", "read_only"),
            ],
        )
        .await
        .expect_redirect(&format!("/c/{customer}/settings"));
    let rory_id = user_id(&app, "rory@contoso.example").await;
    let rory = signed_in(&app, "rory@contoso.example", PASSWORD, &customer).await;
    let base = format!("/c/{customer}/users/{rory_id}");

    // Disabled: Rory's session is deleted at once, and he cannot sign in again.
    casey.get(&format!("/c/{customer}/settings")).await;
    casey
        .post(&format!("{base}/disable"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/settings?notice=user_disabled"));
    assert_eq!(sessions_of(&app, &rory_id).await, 0);
    assert_signed_out(&rory, &customer).await;
    let refused = app
        .visitor()
        .sign_in("rory@contoso.example", PASSWORD)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let settings = casey
        .open(&format!("/c/{customer}/settings?notice=user_disabled"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        settings
            .body
            .contains("The user was disabled and signed out.")
    );
    let row = crate::console::storage::row_with(&settings.body, "rory@contoso.example");
    assert!(
        row.contains("Disabled") && row.contains(">Enable</button>"),
        "{row}"
    );

    // Enabled again, then made a customer administrator: the role applies on his next click.
    casey
        .post(&format!("{base}/enable"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/settings?notice=user_enabled"));
    let rory = signed_in(&app, "rory@contoso.example", PASSWORD, &customer).await;
    let before = rory.get(&format!("/c/{customer}/settings")).await;
    assert!(!before.body.contains("Add user"));
    casey.get(&format!("/c/{customer}/settings")).await;
    casey
        .post(&format!("{base}/role"), &[("role", "customer_admin")])
        .await
        .expect_redirect(&format!("/c/{customer}/settings?notice=user_role_changed"));
    let after = rory.get(&format!("/c/{customer}/settings")).await;
    assert!(
        after.body.contains("Add user"),
        "the new role applies at once"
    );
    // A role that is not a customer's is refused with a message, not a 500.
    casey.get(&format!("/c/{customer}/settings")).await;
    let bad = casey
        .post(&format!("{base}/role"), &[("role", "partner_admin")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("Choose a role"));
    // Nobody changes their own account here (no locking oneself out by a slip).
    let casey_id = user_id(&app, "casey@contoso.example").await;
    casey.get(&format!("/c/{customer}/settings")).await;
    let own = casey
        .post(&format!("/c/{customer}/users/{casey_id}/disable"), &[])
        .await;
    assert_eq!(own.status, StatusCode::BAD_REQUEST);
    assert!(own.body.contains("You cannot change your own account"));
    // An unknown action or a malformed user id is a page that does not exist.
    casey.get(&format!("/c/{customer}/settings")).await;
    assert_eq!(
        casey.post(&format!("{base}/promote"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    casey.get(&format!("/c/{customer}/settings")).await;
    assert_eq!(
        casey
            .post(&format!("/c/{customer}/users/not-an-id/disable"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A password-reset link, shown to the administrator (no mail server), works once and ends
    // Rory's sessions.
    casey.get(&format!("/c/{customer}/settings")).await;
    let issued = casey
        .post(&format!("{base}/reset"), &[])
        .await
        .expect_status(StatusCode::OK);
    let marker = format!("{}/reset/", app.state.settings.public_url());
    let start = issued.body.find(&marker).expect("the link is shown") + marker.len();
    let token: String = issued.body[start..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    assert!(
        issued
            .body
            .contains("Password-reset link for rory@contoso.example")
    );
    let stranger = app.visitor();
    let form = stranger
        .get(&format!("/reset/{token}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(form.body.contains("For rory@contoso.example"));
    let short = stranger
        .post(
            &format!("/reset/{token}"),
            &[("new_password", "short"), ("confirm_password", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.body.contains("Use at least 12 characters."));
    let new_password = "a brand new passphrase here";
    stranger
        .post(
            &format!("/reset/{token}"),
            &[
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        )
        .await
        .expect_status(StatusCode::OK);
    assert_signed_out(&rory, &customer).await;
    assert_eq!(
        app.visitor()
            .sign_in("rory@contoso.example", PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let rory = signed_in(&app, "rory@contoso.example", new_password, &customer).await;
    let spent = app.visitor().get(&format!("/reset/{token}")).await;
    assert_eq!(spent.status, StatusCode::GONE);
    assert!(spent.body.contains("no longer works"));

    // Removed: signed out at once, gone from the list, cannot sign in.
    casey.get(&format!("/c/{customer}/settings")).await;
    casey
        .post(&format!("{base}/remove"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/settings?notice=user_removed"));
    assert_signed_out(&rory, &customer).await;
    assert_eq!(sessions_of(&app, &rory_id).await, 0);
    let list = casey.get(&format!("/c/{customer}/settings")).await;
    assert!(!list.body.contains("rory@contoso.example"));

    // Every change is in the audit log, with who did it.
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::Subject.eq("rory@contoso.example"))
        .all(&app.state.db)
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "user_disabled",
        "user_enabled",
        "user_role_changed",
        "user_password_reset_issued",
        "user_password_reset_used",
        "user_removed",
    ] {
        assert!(actions.contains(&action), "{action} recorded: {actions:?}");
    }
    assert!(
        events
            .iter()
            .filter(|e| e.action != "user_password_reset_used")
            .all(|e| e.actor_email == "casey@contoso.example")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_users_of_another_customer_and_read_only_users_cannot_manage() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let contoso = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;
    let fabrikam = app
        .customer_with_admin(&partner, "Fabrikam", "fay@fabrikam.example")
        .await;
    let casey_id = user_id(&app, "casey@contoso.example").await;
    let fay = signed_in(&app, "fay@fabrikam.example", PASSWORD, &fabrikam).await;
    // Fabrikam's administrator names Contoso's user under either customer: not found.
    for path in [
        format!("/c/{contoso}/users/{casey_id}/disable"),
        format!("/c/{fabrikam}/users/{casey_id}/disable"),
        format!("/c/{fabrikam}/users/{casey_id}/reset"),
    ] {
        fay.get(&format!("/c/{fabrikam}/settings")).await;
        let page = fay.post(&path, &[]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    let casey = signed_in(&app, "casey@contoso.example", PASSWORD, &contoso).await;
    casey
        .get(&format!("/c/{contoso}/devices"))
        .await
        .expect_status(StatusCode::OK);

    // A read-only user sees the list without actions and is refused if they post anyway.
    casey.get(&format!("/c/{contoso}/settings")).await;
    casey
        .post(
            &format!("/c/{contoso}/settings/users"),
            &[
                ("display_name", "Rory Reader"),
                ("email", "rory@contoso.example"),
                ("password", PASSWORD),
                ("role", "read_only"),
            ],
        )
        .await
        .expect_redirect(&format!("/c/{contoso}/settings"));
    let rory = signed_in(&app, "rory@contoso.example", PASSWORD, &contoso).await;
    let page = rory.get(&format!("/c/{contoso}/settings")).await;
    assert!(!page.body.contains("/disable\""));
    let refused = rory
        .post(&format!("/c/{contoso}/users/{casey_id}/disable"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // The partner manages them from the customer's page, and returns there.
    partner.get(&format!("/customers/{contoso}")).await;
    let rory_id = user_id(&app, "rory@contoso.example").await;
    partner
        .post(
            &format!("/c/{contoso}/users/{rory_id}/disable"),
            &[("from", "partner")],
        )
        .await
        .expect_redirect(&format!("/customers/{contoso}?notice=user_disabled"));
    assert_eq!(sessions_of(&app, &rory_id).await, 0);

    // A partner's My account keeps the customer it was opened from; another id is not found.
    let account = partner
        .get(&format!("/account/password?customer={contoso}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        account
            .body
            .contains(&format!("href=\"/c/{contoso}/storage\""))
    );
    assert!(
        account
            .body
            .contains(&format!("action=\"/account/password?customer={contoso}\""))
    );
    partner
        .get("/account/password?customer=not-a-customer")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    // A consent answer that matched no request lands on Customers with its message, once.
    let landed = partner
        .open("/customers?notice=state")
        .await
        .expect_status(StatusCode::OK);
    assert!(
        landed
            .body
            .contains("does not belong to a request started here")
    );
    let again = partner.get("/customers").await;
    assert!(
        !again
            .body
            .contains("does not belong to a request started here")
    );
}
