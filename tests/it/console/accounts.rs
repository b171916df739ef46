use reqwest::StatusCode;
use sea_orm::{EntityTrait, PaginatorTrait};
use skyvault::accounts::entities::session;

use crate::support::app::{PARTNER_EMAIL, PASSWORD, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_wrong_password_and_sign_out() {
    let (app, _) = TestApp::with_partner_admin().await;
    let visitor = app.visitor();

    visitor.get("/customers").await.expect_redirect("/signin");
    let wrong = visitor.sign_in(PARTNER_EMAIL, "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("The email or password is not correct"));
    assert!(
        wrong.body.contains(PARTNER_EMAIL),
        "the email stays in the form"
    );
    let unknown = visitor.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(
        unknown.status,
        StatusCode::UNAUTHORIZED,
        "unknown accounts look like wrong passwords"
    );

    visitor
        .sign_in(&PARTNER_EMAIL.to_uppercase(), PASSWORD)
        .await
        .expect_redirect("/customers");
    let page = visitor
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
    assert!(page.body.contains("Pat Partner"));
    let cookie = page
        .headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    if let Some(cookie) = cookie {
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
    }

    visitor
        .post("/signout", &[])
        .await
        .expect_redirect("/signin");
    visitor.get("/customers").await.expect_redirect("/signin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_is_http_only_and_lax_and_state_lives_in_the_database() {
    let (app, _) = TestApp::with_partner_admin().await;
    let visitor = app.visitor();
    visitor.get("/signin").await;
    let response = visitor
        .post(
            "/signin",
            &[("email", PARTNER_EMAIL), ("password", PASSWORD)],
        )
        .await;
    let cookie = response
        .headers
        .get("set-cookie")
        .expect("session cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("skyvault_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http in tests: no Secure flag"
    );
    assert!(session::Entity::find().count(&app.state.db).await.unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_account_then_it_unlocks() {
    let (app, _) = TestApp::with_partner_admin().await;
    let visitor = app.visitor();
    for _ in 0..skyvault::accounts::throttle::ACCOUNT_LIMIT {
        let page = visitor.sign_in(PARTNER_EMAIL, "guess").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is refused, with a clear message.
    let locked = visitor.sign_in(PARTNER_EMAIL, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        locked.body.contains("Too many failed sign-ins"),
        "{}",
        locked.body
    );

    app.clock.advance(chrono::Duration::minutes(
        skyvault::accounts::throttle::WINDOW_MINUTES + 1,
    ));
    visitor
        .sign_in(PARTNER_EMAIL, PASSWORD)
        .await
        .expect_redirect("/customers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_accounts_from_one_address_are_throttled_too() {
    let (app, _) = TestApp::with_partner_admin().await;
    let visitor = app.visitor();
    for n in 0..skyvault::accounts::throttle::ADDRESS_LIMIT {
        let page = visitor
            .sign_in(&format!("user{n}@example.com"), "guess")
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let locked = visitor.sign_in(PARTNER_EMAIL, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_requests_without_the_csrf_token_are_refused() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let refused = partner
        .post_without_token("/customers", &[("name", "Contoso")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.error_code().as_deref(), Some("csrf_failed"));
    let forged = partner
        .post_without_token(
            "/customers",
            &[("name", "Contoso"), ("csrf_token", "forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Sign-out is state-changing too.
    partner
        .post_without_token("/signout", &[])
        .await
        .expect_status(StatusCode::FORBIDDEN);
    partner
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
    let page = partner.get("/customers").await;
    assert!(
        page.body.contains("No customers yet"),
        "nothing was created"
    );

    // htmx requests carry the token in a header; a wrong one gets an error fragment, not a page.
    let fragment = partner
        .htmx_post(
            "/customers/00000000-0000-0000-0000-000000000000/disable",
            "wrong",
        )
        .await;
    assert_eq!(fragment.status, StatusCode::FORBIDDEN);
    assert!(fragment.body.contains("data-error-code=\"csrf_failed\""));
    assert!(!fragment.body.contains("<html"), "htmx gets a fragment");
    assert_eq!(fragment.headers.get("hx-retarget").unwrap(), "#messages");
    let token = partner.csrf_token();
    let missing = partner
        .htmx_post(
            "/customers/00000000-0000-0000-0000-000000000000/disable",
            &token,
        )
        .await;
    assert_eq!(
        missing.status,
        StatusCode::NOT_FOUND,
        "a valid header token passes the CSRF check"
    );
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_security_headers_without_inline_script() {
    let app = TestApp::start().await;
    let page = app
        .visitor()
        .get("/signin")
        .await
        .expect_status(StatusCode::OK);
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(
        page.headers.get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert_eq!(page.headers.get("x-frame-options").unwrap(), "DENY");
    assert!(!page.body.contains("<script>"), "no inline script in pages");
    assert!(!page.body.contains(" onclick="));
    let css = app
        .visitor()
        .get("/static/app.css")
        .await
        .expect_status(StatusCode::OK);
    assert!(css.body.contains(".topbar"));
    app.visitor()
        .get("/static/../Cargo.toml")
        .await
        .expect_status(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_and_malformed_forms_get_clear_errors_not_500() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let missing = app
        .visitor()
        .get("/no/such/page")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    assert!(missing.body.contains("was not found"));
    assert_eq!(missing.error_code().as_deref(), Some("not_found"));
    partner
        .get("/c/not-a-uuid/devices")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    partner
        .get("/customers/not-a-uuid")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    // A form post missing every field re-renders with messages.
    partner.get("/customers").await;
    let page = partner
        .post("/customers", &[])
        .await
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Enter a name."));
    let long = "x".repeat(300);
    let page = partner
        .post("/customers", &[("name", &long)])
        .await
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Use at most 120 characters."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_ends_other_sessions() {
    let (app, first) = TestApp::with_partner_admin().await;
    let second = app.visitor();
    second
        .sign_in(PARTNER_EMAIL, PASSWORD)
        .await
        .expect_redirect("/customers");

    first
        .get("/account/password")
        .await
        .expect_status(StatusCode::OK);
    let bad = first
        .post(
            "/account/password",
            &[
                ("current_password", "wrong"),
                ("new_password", "short"),
                ("confirm_password", "other"),
            ],
        )
        .await
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("This is not your current password."));
    assert!(bad.body.contains("Use at least 12 characters."));
    assert!(bad.body.contains("The two new passwords differ."));

    let new_password = "a much better passphrase";
    let done = first
        .post(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        )
        .await
        .expect_status(StatusCode::OK);
    assert!(done.body.contains("Your password was changed"));
    first.get("/customers").await.expect_status(StatusCode::OK);
    second.get("/customers").await.expect_redirect("/signin");
    let old = app.visitor().sign_in(PARTNER_EMAIL, PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    app.visitor()
        .sign_in(PARTNER_EMAIL, new_password)
        .await
        .expect_redirect("/customers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_end_and_are_cleaned_up() {
    let (app, partner) = TestApp::with_partner_admin().await;
    partner
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
    let idle = app.state.settings.session_idle_minutes as i64;
    app.clock.advance(chrono::Duration::minutes(idle + 1));
    partner.get("/customers").await.expect_redirect("/signin");
    skyvault::jobs::ticks::tidy_accounts(&app.state.db, &app.state.clock).await;
    let left = session::Entity::find().all(&app.state.db).await.unwrap();
    assert!(
        left.iter().all(|s| s.expires_at > app.clock_now()),
        "expired sessions were deleted"
    );
}

trait ClockNow {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc>;
}

impl ClockNow for TestApp {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use skyvault::clock::Clock;
        self.clock.now()
    }
}
