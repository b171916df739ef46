use reqwest::StatusCode;

use crate::support::app::{PARTNER_EMAIL, PASSWORD, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_page_needs_the_printed_token_and_closes_after_use() {
    let app = TestApp::start().await;
    let token = app
        .setup_token
        .clone()
        .expect("a fresh instance prints a setup link");
    let visitor = app.visitor();

    let bad = visitor
        .get("/setup/not-the-token")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    assert_eq!(bad.error_code().as_deref(), Some("setup_link_invalid"));
    assert!(
        bad.body.contains("This setup link is not valid"),
        "{}",
        bad.body
    );
    let signin = visitor.get("/signin").await.expect_status(StatusCode::OK);
    assert!(signin.body.contains("has not been set up yet"));

    // Wrong token on post: nobody can claim the instance without the printed link.
    visitor
        .get(&format!("/setup/{token}"))
        .await
        .expect_status(StatusCode::OK);
    let fields = [
        ("organisation", "Northwind Partners"),
        ("display_name", "Pat Partner"),
        ("email", PARTNER_EMAIL),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let stolen = visitor.post("/setup/0000", &fields).await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND, "{}", stolen.body);

    visitor
        .post(&format!("/setup/{token}"), &fields)
        .await
        .expect_redirect("/customers");
    let customers = visitor
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
    assert!(customers.body.contains("Northwind Partners"));
    assert!(customers.body.contains("No customers yet"));

    // The link is spent, and says so (not a bare 404); a restart does not print a new one.
    let latecomer = app.visitor();
    latecomer.get("/signin").await;
    let spent = latecomer
        .get(&format!("/setup/{token}"))
        .await
        .expect_status(StatusCode::GONE);
    assert_eq!(spent.error_code().as_deref(), Some("setup_link_used"));
    assert!(spent.body.contains("This setup link was already used"));
    assert!(spent.body.contains("href=\"/signin\""));
    let late = latecomer.post(&format!("/setup/{token}"), &fields).await;
    assert_eq!(late.status, StatusCode::GONE, "{}", late.body);
    assert!(
        skyvault::app::setup_link(&app.state)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_form_shows_messages_next_to_fields_and_keeps_the_token() {
    let app = TestApp::start().await;
    let token = app.setup_token.clone().unwrap();
    let visitor = app.visitor();
    visitor.get(&format!("/setup/{token}")).await;
    let page = visitor
        .post(
            &format!("/setup/{token}"),
            &[
                ("organisation", " "),
                ("display_name", "Pat"),
                ("email", "not-an-email"),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Enter a name."), "{}", page.body);
    // Every field is checked at once; with the organisation fixed the account errors remain.
    let page = visitor
        .post(
            &format!("/setup/{token}"),
            &[
                ("organisation", "Northwind"),
                ("display_name", "Pat"),
                ("email", "not-an-email"),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body
            .contains("Enter an email address like name@example.com."),
        "{}",
        page.body
    );
    assert!(page.body.contains("Use at least 12 characters."));
    assert!(
        page.body.contains("value=\"not-an-email\""),
        "typed values are kept"
    );
    assert!(
        !page.body.contains("value=\"short\""),
        "passwords are never echoed back"
    );
    // The failed attempt did not use up the link.
    visitor
        .get(&format!("/setup/{token}"))
        .await
        .expect_status(StatusCode::OK);
}
