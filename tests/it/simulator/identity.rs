//! Identity platform: admin consent pages and redirects, token endpoint errors, token expiry,
//! authorization code with PKCE.

use base64::Engine;
use chrono::Duration;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{CLIENT_ID, CLIENT_SECRET, GRAPH_SCOPE, REDIRECT_URI, start_sim};

/// The hidden `flow` field of a sign-in or consent form.
fn flow_of(html: &str) -> String {
    let start =
        html.find("name=\"flow\" value=\"").expect("flow field") + "name=\"flow\" value=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn query_of(location: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn begin_consent(
    sim: &super::Sim,
    tenant: &str,
    client: &str,
    redirect: &str,
) -> reqwest::Response {
    let url = format!(
        "{}/{tenant}/v2.0/adminconsent?client_id={client}&scope={}&redirect_uri={}&state=st-42",
        sim.base(),
        url::form_urlencoded::byte_serialize(GRAPH_SCOPE.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    sim.http.get(url).send().await.unwrap()
}

async fn sign_in(
    sim: &super::Sim,
    tenant: &str,
    flow: &str,
    login: &str,
    password: &str,
) -> reqwest::Response {
    sim.http
        .post(format!("{}/{tenant}/login", sim.base()))
        .form(&[("flow", flow), ("login", login), ("passwd", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_consent_signs_in_the_admin_and_redirects_with_the_tenant() {
    let sim = start_sim(|_| {}).await;
    let other_client = "0b1d8e3c-2222-4d4d-9e9e-abcdefabcdef";
    sim.running
        .register_app(other_client, "other-secret", &[REDIRECT_URI]);
    // Not consented yet: client credentials fail as for an app unknown to the tenant.
    let tenant = sim.tenant_id();
    let refused = sim
        .token_request(
            &tenant,
            &[
                ("client_id", other_client),
                ("client_secret", "other-secret"),
                ("scope", GRAPH_SCOPE),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(body["error_codes"][0], 700016);

    let page = begin_consent(&sim, "organizations", other_client, REDIRECT_URI).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Sign in") && html.contains("type=\"password\"") && !html.contains("<script")
    );
    let info = sim.running.tenant().clone();
    let consent = sign_in(
        &sim,
        "organizations",
        &flow_of(&html),
        &info.admin_user_principal_name,
        &info.admin_password,
    )
    .await;
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.unwrap();
    assert!(html.contains("Permissions requested") && html.contains("Mail.ReadWrite"));
    let done = sim
        .http
        .post(format!("{}/organizations/consent", sim.base()))
        .form(&[("flow", flow_of(&html).as_str()), ("decision", "accept")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 302);
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT_URI));
    let pairs = query_of(&location);
    assert_eq!(param(&pairs, "admin_consent"), Some("True"));
    assert_eq!(param(&pairs, "tenant"), Some(tenant.as_str()));
    assert_eq!(param(&pairs, "state"), Some("st-42"));
    assert!(
        param(&pairs, "scope")
            .unwrap()
            .contains("https://graph.microsoft.com/Mail.ReadWrite")
    );

    let granted = sim
        .token_request(
            &tenant,
            &[
                ("client_id", other_client),
                ("client_secret", "other-secret"),
                ("scope", GRAPH_SCOPE),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(granted.status(), 200);
    let body: Value = granted.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn admin_consent_failures_redirect_or_stop_as_entra_does() {
    let sim = start_sim(|_| {}).await;
    let info = sim.running.tenant().clone();
    let tenant = sim.tenant_id();

    // Declined: redirect with error=consent_required and an AADSTS65004 description.
    let html = begin_consent(&sim, &tenant, CLIENT_ID, REDIRECT_URI)
        .await
        .text()
        .await
        .unwrap();
    let html = sign_in(
        &sim,
        &tenant,
        &flow_of(&html),
        &info.admin_user_principal_name,
        &info.admin_password,
    )
    .await
    .text()
    .await
    .unwrap();
    let declined = sim
        .http
        .post(format!("{}/{tenant}/consent", sim.base()))
        .form(&[("flow", flow_of(&html).as_str()), ("decision", "cancel")])
        .send()
        .await
        .unwrap();
    assert_eq!(declined.status(), 302);
    let pairs = query_of(declined.headers()["location"].to_str().unwrap());
    assert_eq!(param(&pairs, "error"), Some("consent_required"));
    let description = param(&pairs, "error_description").unwrap();
    assert!(
        description.starts_with("AADSTS65004:")
            && description.contains("\r\nTrace ID: ")
            && description.contains("\r\nCorrelation ID: ")
            && description.contains("\r\nTimestamp: ")
    );
    assert_eq!(param(&pairs, "state"), Some("st-42"));

    // A user who is not an administrator.
    let (_, tenants) = sim.control(reqwest::Method::GET, "tenants", None).await;
    let member_password = tenants[0]["member_password"].as_str().unwrap().to_owned();
    let (_, users) = (0, sim.json("users?$top=5").await);
    let member = users["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userPrincipalName"] != info.admin_user_principal_name.as_str())
        .unwrap()["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_owned();
    let html = begin_consent(&sim, &tenant, CLIENT_ID, REDIRECT_URI)
        .await
        .text()
        .await
        .unwrap();
    let not_admin = sign_in(&sim, &tenant, &flow_of(&html), &member, &member_password).await;
    assert_eq!(not_admin.status(), 302);
    let pairs = query_of(not_admin.headers()["location"].to_str().unwrap());
    assert_eq!(param(&pairs, "error"), Some("access_denied"));
    assert!(
        param(&pairs, "error_description")
            .unwrap()
            .starts_with("AADSTS90094:")
    );

    // Wrong password: the form again with AADSTS50126, no redirect.
    let html = begin_consent(&sim, &tenant, CLIENT_ID, REDIRECT_URI)
        .await
        .text()
        .await
        .unwrap();
    let wrong = sign_in(
        &sim,
        &tenant,
        &flow_of(&html),
        &info.admin_user_principal_name,
        "nope",
    )
    .await;
    assert_eq!(wrong.status(), 200);
    assert!(wrong.text().await.unwrap().contains("AADSTS50126"));

    // Unknown client and unregistered redirect URI: an error page, never a redirect.
    let unknown = begin_consent(
        &sim,
        &tenant,
        "9e9e9e9e-0000-0000-0000-000000000000",
        REDIRECT_URI,
    )
    .await;
    assert_eq!(unknown.status(), 400);
    assert!(unknown.text().await.unwrap().contains("AADSTS700016"));
    let bad_redirect =
        begin_consent(&sim, &tenant, CLIENT_ID, "https://evil.example/callback").await;
    assert_eq!(bad_redirect.status(), 400);
    assert!(bad_redirect.text().await.unwrap().contains("AADSTS50011"));
}

fn assert_aad_error(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], code, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}:")),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
}

#[tokio::test]
async fn token_endpoint_errors_have_the_documented_shape() {
    let sim = start_sim(|_| {}).await;
    let tenant = sim.tenant_id();
    let base = [
        ("client_id", CLIENT_ID),
        ("scope", GRAPH_SCOPE),
        ("grant_type", "client_credentials"),
    ];

    let bad_secret = sim
        .token_request(
            &tenant,
            &[base[0], base[1], base[2], ("client_secret", "wrong")],
        )
        .await;
    assert_eq!(bad_secret.status(), 401);
    assert_aad_error(&bad_secret.json().await.unwrap(), "invalid_client", 7000215);

    let bad_scope = sim
        .token_request(
            &tenant,
            &[
                base[0],
                ("scope", "User.Read.All"),
                base[2],
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(bad_scope.status(), 400);
    assert_aad_error(&bad_scope.json().await.unwrap(), "invalid_scope", 1002012);

    let unknown_tenant = sim
        .token_request(
            "00000000-1111-2222-3333-444444444444",
            &[base[0], base[1], base[2], ("client_secret", CLIENT_SECRET)],
        )
        .await;
    assert_eq!(unknown_tenant.status(), 400);
    assert_aad_error(
        &unknown_tenant.json().await.unwrap(),
        "invalid_request",
        90002,
    );

    let common = sim
        .token_request(
            "common",
            &[base[0], base[1], base[2], ("client_secret", CLIENT_SECRET)],
        )
        .await;
    assert_aad_error(&common.json().await.unwrap(), "invalid_request", 9001023);

    let grant = sim
        .token_request(
            &tenant,
            &[
                base[0],
                base[1],
                ("grant_type", "password"),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_aad_error(
        &grant.json().await.unwrap(),
        "unsupported_grant_type",
        70003,
    );

    let missing = sim
        .token_request(
            &tenant,
            &[base[0], base[1], ("client_secret", CLIENT_SECRET)],
        )
        .await;
    assert_aad_error(&missing.json().await.unwrap(), "invalid_request", 900144);

    // HTTP Basic client authentication is accepted too; the tenant may be given as its domain.
    let domain = sim.running.tenant().domain.clone();
    let basic = sim
        .http
        .post(format!("{}/{domain}/oauth2/v2.0/token", sim.base()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[base[1], base[2]])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
}

#[tokio::test]
async fn expired_or_foreign_tokens_get_401_invalid_authentication_token() {
    let sim = start_sim(|_| {}).await;
    assert_eq!(sim.get("organization").await.status(), 200);

    let forged = sim
        .http
        .get(format!("{}/v1.0/users", sim.base()))
        .bearer_auth("eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2ln")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert!(
        forged.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"\"")
    );
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());

    let missing = sim
        .http
        .get(format!("{}/v1.0/users", sim.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);

    sim.clock.advance(Duration::seconds(3600));
    let expired = sim.get("users").await;
    assert_eq!(expired.status(), 401);
    assert!(expired.headers().contains_key("www-authenticate"));
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        body["error"]["message"],
        "Access token has expired or is not yet valid."
    );

    // A token from another simulator (another signing key) is foreign.
    let other = start_sim(|_| {}).await;
    let foreign = sim
        .http
        .get(format!("{}/v1.0/users", sim.base()))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 401);
}

#[tokio::test]
async fn authorization_code_with_pkce_signs_a_user_in() {
    let sim = start_sim(|_| {}).await;
    let info = sim.running.tenant().clone();
    let verifier = "a-verifier-that-is-long-enough-to-be-valid-for-pkce-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let authorize = |challenge: String| {
        format!(
            "{}/organizations/oauth2/v2.0/authorize?client_id={CLIENT_ID}&response_type=code&redirect_uri={}&scope=openid%20offline_access%20https%3A%2F%2Fgraph.microsoft.com%2FUser.Read&state=abc&code_challenge={challenge}&code_challenge_method=S256",
            sim.base(),
            url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
        )
    };
    let html = sim
        .http
        .get(authorize(challenge.clone()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed = sign_in(
        &sim,
        "organizations",
        &flow_of(&html),
        &info.admin_user_principal_name,
        &info.admin_password,
    )
    .await;
    assert_eq!(signed.status(), 302);
    let pairs = query_of(signed.headers()["location"].to_str().unwrap());
    let code = param(&pairs, "code").unwrap().to_owned();
    assert_eq!(param(&pairs, "state"), Some("abc"));

    let wrong = sim
        .token_request(
            "organizations",
            &[
                ("client_id", CLIENT_ID),
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                (
                    "code_verifier",
                    "wrong-verifier-wrong-verifier-wrong-verifier-00",
                ),
            ],
        )
        .await;
    assert_aad_error(&wrong.json().await.unwrap(), "invalid_grant", 501481);

    // A code is single-use: get a new one.
    let html = sim
        .http
        .get(authorize(challenge))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed = sign_in(
        &sim,
        "organizations",
        &flow_of(&html),
        &info.admin_user_principal_name,
        &info.admin_password,
    )
    .await;
    let code = param(
        &query_of(signed.headers()["location"].to_str().unwrap()),
        "code",
    )
    .unwrap()
    .to_owned();
    let ok = sim
        .token_request(
            "organizations",
            &[
                ("client_id", CLIENT_ID),
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
        )
        .await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.unwrap();
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());
    let again = sim
        .token_request(
            "organizations",
            &[
                ("client_id", CLIENT_ID),
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
        )
        .await;
    assert_aad_error(&again.json().await.unwrap(), "invalid_grant", 54005);

    let me = sim
        .http
        .get(format!("{}/v1.0/me", sim.base()))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(
        me["userPrincipalName"],
        info.admin_user_principal_name.as_str()
    );
}
