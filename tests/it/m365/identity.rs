//! Admin consent, proving a tenant, and the app-only token cache against the simulated identity
//! platform.

use chrono::{TimeZone, Utc};
use futures::future::join_all;
use skyvault::clock::ManualClock;
use skyvault::m365::{
    ConsentRefusal, ConsentTenant, ErrorKind, GraphClient, GraphError, TokenErrorKind,
    parse_consent_callback,
};
use url::Url;

use super::{Harness, Setup, harness, harness_with, settings_for, shared};

fn hidden_flow(html: &str) -> String {
    let marker = "name=\"flow\" value=\"";
    let start = html.find(marker).expect("a sign-in form") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Plays the admin's browser: open the consent URL, sign in, accept or cancel. Returns the
/// query string Microsoft redirects back with.
async fn consent_in_browser(h: &Harness, accept: bool, state: &str) -> String {
    let url = h
        .client
        .admin_consent_url(&ConsentTenant::Organizations, state)
        .unwrap();
    let page = h
        .http
        .get(url.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let flow = hidden_flow(&page);
    let tenant = h.sim.tenant();
    let login = format!("{}/organizations/login", h.sim.base_url());
    let consent_page = h
        .http
        .post(login)
        .form(&[
            ("flow", flow.as_str()),
            ("login", &tenant.admin_user_principal_name),
            ("passwd", &tenant.admin_password),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let flow = hidden_flow(&consent_page);
    let decision = if accept { "accept" } else { "cancel" };
    let answer = h
        .http
        .post(format!("{}/organizations/consent", h.sim.base_url()))
        .form(&[("flow", flow.as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(super::REDIRECT), "{location}");
    location.query().unwrap_or_default().to_string()
}

#[tokio::test]
async fn consent_round_trip_proves_the_tenant() {
    let h = harness_with(Setup {
        consent: false,
        ..Setup::default()
    })
    .await;
    let query = consent_in_browser(&h, true, "st-42").await;
    let grant = parse_consent_callback(&query, "st-42").unwrap();
    assert_eq!(grant.tenant, h.tenant);
    assert!(
        !grant.scopes.is_empty(),
        "granted scopes are listed: {query}"
    );

    let proof = h.client.prove_tenant(grant.tenant).await.unwrap();
    assert_eq!(proof.tenant, h.tenant);
    assert_eq!(proof.organization.display_name.as_deref(), Some("Contoso"));
    assert_eq!(
        proof.organization.initial_domain(),
        Some(h.sim.tenant().domain.as_str())
    );
    assert!(proof.organization.default_domain().is_some());
}

#[tokio::test]
async fn cancelled_consent_is_a_typed_refusal_with_microsofts_text() {
    let h = harness_with(Setup {
        consent: false,
        ..Setup::default()
    })
    .await;
    let query = consent_in_browser(&h, false, "st-1").await;
    let error = parse_consent_callback(&query, "st-1").unwrap_err();
    assert_eq!(error.refusal(), Some(ConsentRefusal::Declined), "{error}");
    assert!(error.to_string().contains("AADSTS65004"), "{error}");
    // A forged callback with another state is refused before anything else.
    assert!(parse_consent_callback(&query, "other").is_err());
}

#[tokio::test]
async fn a_tenant_without_consent_cannot_be_proven() {
    let h = harness_with(Setup {
        consent: false,
        ..Setup::default()
    })
    .await;
    let error = h.client.prove_tenant(h.tenant).await.unwrap_err();
    match &error {
        GraphError::Token(e) => assert_eq!(e.kind(), TokenErrorKind::AppNotConsented, "{e}"),
        other => panic!("expected a token refusal, got {other:?}"),
    }
    assert_eq!(error.kind(), ErrorKind::AppNotAuthorized);
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_wrong_secret_is_reported_as_invalid_client() {
    let h = harness().await;
    let mut settings = settings_for(&h.sim);
    settings.client_secret = "not-the-secret".into();
    let client = GraphClient::new(settings, skyvault::clock::system()).unwrap();
    let error = client.prove_tenant(h.tenant).await.unwrap_err();
    match &error {
        GraphError::Token(e) => {
            assert_eq!(e.kind(), TokenErrorKind::InvalidClient, "{e}");
            assert!(e.trace_id.is_some(), "trace id kept for support");
        }
        other => panic!("expected a token refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_are_cached_until_shortly_before_expiry() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap());
    let h = harness_with(Setup {
        sim_clock: shared(clock.clone()),
        client_clock: shared(clock.clone()),
        ..Setup::default()
    })
    .await;
    let graph = h.graph();
    graph.organization().await.unwrap();
    graph.organization().await.unwrap();
    assert_eq!(h.client.token_requests(), 1, "second call reuses the token");

    clock.advance(chrono::Duration::minutes(50));
    graph.organization().await.unwrap();
    assert_eq!(h.client.token_requests(), 1, "still fresh after 50 minutes");

    clock.advance(chrono::Duration::minutes(6));
    graph.organization().await.unwrap();
    assert_eq!(
        h.client.token_requests(),
        2,
        "refreshed within five minutes of expiry"
    );
}

#[tokio::test]
async fn a_token_graph_calls_expired_is_replaced_once() {
    // Only the simulator's clock moves: the client still thinks its token is fresh, Graph answers
    // 401 InvalidAuthenticationToken, and the client fetches a new one and succeeds.
    let sim_clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap());
    let h = harness_with(Setup {
        sim_clock: shared(sim_clock.clone()),
        ..Setup::default()
    })
    .await;
    let graph = h.graph();
    graph.organization().await.unwrap();
    sim_clock.advance(chrono::Duration::hours(2));
    let org = graph.organization().await.unwrap();
    assert_eq!(org.id, h.tenant.to_string());
    assert_eq!(h.client.token_requests(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_token_fetch() {
    let h = harness().await;
    let graph = h.graph();
    let results = join_all((0..12).map(|_| graph.organization())).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(h.client.token_requests(), 1);
}
