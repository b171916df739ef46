//! The administrator's OpenID Connect sign-in that proves who finished admin consent, against a
//! small identity platform that answers the way Microsoft's documents and captures show
//! (tenant-specific metadata with Entra's extra fields, several keys with `x5t` and `x5c`, a
//! token answer with `ext_expires_in`), not the simulator's. Every way an ID token can be wrong
//! must be refused: signature, algorithm, issuer, audience, nonce, expiry, tenant and role.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use serde_json::{Value, json};
use skyvault::m365::{AdminSignInError, GraphClient, M365Settings, TenantId};
use url::Url;

use super::{CLIENT_ID, REDIRECT, SECRET, fast_retry};

const TENANT: &str = "aaaabbbb-0000-cccc-1111-dddd2222eeee";
const OTHER_TENANT: &str = "9999bbbb-0000-cccc-1111-dddd2222ffff";
const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
const PRIVILEGED_ROLE_ADMIN: &str = "e8611ab8-c189-46e8-94e1-60213ab1f814";
const APPLICATION_ADMIN: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";
const MEMBER: &str = "b79fbf4d-3ef9-4689-8143-76b194e85509";

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

struct Key {
    pair: KeyPair,
    kid: String,
}

impl Key {
    fn new(kid: &str) -> Self {
        Self {
            pair: KeyPair::generate(KeySize::Rsa2048).unwrap(),
            kid: kid.into(),
        }
    }

    fn jwk(&self, base: &str) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
            "n": b64url(public.modulus().big_endian_without_leading_zero()),
            "e": b64url(public.exponent().big_endian_without_leading_zero()),
            // Entra publishes the certificate too (standard base64, with + and /).
            "x5c": ["MIIC/TCCAeWgAwIBAgIIUd7j/OIahkYwDQYJKoZIhvcNAQELBQAw+A=="],
            "issuer": format!("{base}/{{tenantid}}/v2.0"),
        })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{input}.{}", b64url(&signature))
    }
}

/// What the fake identity platform hands out next from its token endpoint.
#[derive(Clone)]
enum TokenAnswer {
    IdToken(String),
    Error(u16, Value),
}

struct Idp {
    base: String,
    keys: Vec<Key>,
    answer: Arc<Mutex<TokenAnswer>>,
    forms: Arc<Mutex<Vec<String>>>,
}

async fn start_idp() -> Idp {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Entra publishes several keys; the token names one by `kid`.
    let keys = vec![
        Key::new("older-key"),
        Key::new("nOo3ZDrODXEK1jKWhXslHR_KXEg"),
    ];
    let jwks = json!({"keys": keys.iter().map(|k| k.jwk(&base)).collect::<Vec<_>>()});
    let answer = Arc::new(Mutex::new(TokenAnswer::Error(500, json!({}))));
    let forms = Arc::new(Mutex::new(Vec::new()));
    let (meta_base, served_answer, seen) = (base.clone(), answer.clone(), forms.clone());
    let server = HttpServer::new(move || {
        let base = meta_base.clone();
        let jwks = jwks.clone();
        let answer = served_answer.clone();
        let seen = seen.clone();
        App::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                web::get().to(move |tenant: web::Path<String>| {
                    let base = base.clone();
                    async move {
                        let t = tenant.into_inner();
                        // A tenant-specific document as Entra serves it, extra fields included.
                        HttpResponse::Ok().json(json!({
                            "token_endpoint": format!("{base}/{t}/oauth2/v2.0/token"),
                            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                            "jwks_uri": format!("{base}/{t}/discovery/v2.0/keys"),
                            "response_modes_supported": ["query", "fragment", "form_post"],
                            "subject_types_supported": ["pairwise"],
                            "id_token_signing_alg_values_supported": ["RS256"],
                            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                            "scopes_supported": ["openid", "profile", "email", "offline_access"],
                            "issuer": format!("{base}/{t}/v2.0"),
                            "request_uri_parameter_supported": false,
                            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                            "authorization_endpoint": format!("{base}/{t}/oauth2/v2.0/authorize"),
                            "device_authorization_endpoint": format!("{base}/{t}/oauth2/v2.0/devicecode"),
                            "http_logout_supported": true,
                            "frontchannel_logout_supported": true,
                            "end_session_endpoint": format!("{base}/{t}/oauth2/v2.0/logout"),
                            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
                            "kerberos_endpoint": format!("{base}/{t}/kerberos"),
                            "tenant_region_scope": "EU",
                            "cloud_instance_name": "microsoftonline.com",
                            "cloud_graph_host_name": "graph.windows.net",
                            "msgraph_host": "graph.microsoft.com",
                            "rbac_url": "https://pas.windows.net"
                        }))
                    }
                }),
            )
            .route(
                "/{tenant}/discovery/v2.0/keys",
                web::get().to(move || {
                    let jwks = jwks.clone();
                    async move { HttpResponse::Ok().json(jwks) }
                }),
            )
            .route(
                "/{tenant}/oauth2/v2.0/token",
                web::post().to(move |body: String| {
                    let answer = answer.clone();
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(body);
                        match answer.lock().unwrap().clone() {
                            TokenAnswer::IdToken(id_token) => HttpResponse::Ok().json(json!({
                                "token_type": "Bearer", "scope": "openid profile email",
                                "expires_in": 4420, "ext_expires_in": 4420,
                                "access_token": "eyJ0eXAiOiJKV1QiLCJub25jZSI6Im9wYXF1ZSJ9.e30.c2ln",
                                "id_token": id_token,
                            })),
                            TokenAnswer::Error(status, body) => {
                                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                                    .json(body)
                            }
                        }
                    }
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Idp {
        base,
        keys,
        answer,
        forms,
    }
}

fn client(idp: &Idp) -> GraphClient {
    let base = Url::parse(&idp.base).unwrap();
    let mut settings =
        M365Settings::new(CLIENT_ID, SECRET, Url::parse(REDIRECT).unwrap()).with_base_url(&base);
    settings.retry = fast_retry();
    GraphClient::new(settings, skyvault::clock::system()).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims as Entra's v2.0 ID token carries them for an administrator of TENANT.
fn admin_claims(base: &str, nonce: &str) -> Value {
    json!({
        "aud": CLIENT_ID,
        "iss": format!("{base}/{TENANT}/v2.0"),
        "iat": now() - 10, "nbf": now() - 10, "exp": now() + 3600,
        "name": "Megan Bowen", "nonce": nonce,
        "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        "preferred_username": "admin@contoso.onmicrosoft.com",
        "rh": "0.AAAA.", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": TENANT, "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0",
        "wids": [GLOBAL_ADMIN, MEMBER],
    })
}

fn rs256(kid: &str) -> Value {
    json!({"typ": "JWT", "alg": "RS256", "kid": kid})
}

#[tokio::test]
async fn an_administrator_is_proven_and_every_forged_id_token_is_refused() {
    skyvault::install_crypto_provider();
    let idp = start_idp().await;
    let client = client(&idp);
    let tenant: TenantId = TENANT.parse().unwrap();

    let start = client.start_admin_sign_in(tenant, "state-2").await.unwrap();
    assert_eq!(
        start.url.path(),
        format!("/{TENANT}/oauth2/v2.0/authorize"),
        "the consented tenant's own endpoint"
    );
    let query: std::collections::HashMap<String, String> =
        start.url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert_eq!(query["state"], "state-2");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    assert_eq!(query["nonce"], start.nonce);
    assert!(query["scope"].split(' ').any(|s| s == "openid"));
    assert!(start.nonce.len() >= 22 && start.pkce_verifier.len() >= 43);

    let key = &idp.keys[1];
    let finish = |id_token: String| {
        *idp.answer.lock().unwrap() = TokenAnswer::IdToken(id_token);
        let client = client.clone();
        let (verifier, nonce) = (start.pkce_verifier.clone(), start.nonce.clone());
        async move {
            client
                .finish_admin_sign_in(tenant, "1.AXEA-code", &verifier, &nonce)
                .await
        }
    };
    let claims = admin_claims(&idp.base, &start.nonce);

    // A Global Administrator of the consented tenant.
    let proven = finish(key.sign(&rs256(&key.kid), &claims)).await.unwrap();
    assert_eq!(proven.tenant, tenant);
    assert_eq!(proven.role, "Global Administrator");
    assert_eq!(
        proven.username.as_deref(),
        Some("admin@contoso.onmicrosoft.com")
    );
    // The code was redeemed with the PKCE verifier, the secret and the same redirect URI.
    let form = idp.forms.lock().unwrap().last().cloned().unwrap();
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "1.AXEA-code");
    assert_eq!(form["code_verifier"], start.pkce_verifier);
    assert_eq!(form["client_secret"], SECRET);
    assert_eq!(form["redirect_uri"], REDIRECT);

    // A Privileged Role Administrator can grant consent too.
    let mut privileged = claims.clone();
    privileged["wids"] = json!([PRIVILEGED_ROLE_ADMIN, MEMBER]);
    assert_eq!(
        finish(key.sign(&rs256(&key.kid), &privileged))
            .await
            .unwrap()
            .role,
        "Privileged Role Administrator"
    );

    // Roles that cannot grant consent to Graph application permissions, and no role claim.
    for wids in [
        json!([MEMBER]),
        json!([APPLICATION_ADMIN, MEMBER]),
        json!([]),
    ] {
        let mut member = claims.clone();
        member["wids"] = wids;
        assert_eq!(
            finish(key.sign(&rs256(&key.kid), &member)).await,
            Err(AdminSignInError::NotAdministrator)
        );
    }
    let mut no_roles = claims.clone();
    no_roles.as_object_mut().unwrap().remove("wids");
    assert_eq!(
        finish(key.sign(&rs256(&key.kid), &no_roles)).await,
        Err(AdminSignInError::NoRoleClaim)
    );

    // Signed in to another tenant: its issuer differs, and so does `tid`.
    let mut other = claims.clone();
    other["iss"] = json!(format!("{}/{OTHER_TENANT}/v2.0", idp.base));
    other["tid"] = json!(OTHER_TENANT);
    assert!(matches!(
        finish(key.sign(&rs256(&key.kid), &other)).await,
        Err(AdminSignInError::InvalidIdToken(_))
    ));
    let mut tid_only = claims.clone();
    tid_only["tid"] = json!(OTHER_TENANT);
    assert!(matches!(
        finish(key.sign(&rs256(&key.kid), &tid_only)).await,
        Err(AdminSignInError::WrongTenant { .. })
    ));

    // Every other way the token can be wrong.
    let invalid = |what: &str, token: String| {
        let what = what.to_string();
        let fut = finish(token);
        async move {
            let result = fut.await;
            assert!(
                matches!(result, Err(AdminSignInError::InvalidIdToken(_))),
                "{what}: {result:?}"
            );
        }
    };
    let mut wrong_nonce = claims.clone();
    wrong_nonce["nonce"] = json!("replayed-nonce");
    invalid("nonce", key.sign(&rs256(&key.kid), &wrong_nonce)).await;
    let mut expired = claims.clone();
    expired["exp"] = json!(now() - 600);
    invalid("expired", key.sign(&rs256(&key.kid), &expired)).await;
    let mut audience = claims.clone();
    audience["aud"] = json!("00000003-0000-0000-c000-000000000000");
    invalid("audience", key.sign(&rs256(&key.kid), &audience)).await;
    // Signed by a key that is not the tenant's, under a published key id.
    let stranger = Key::new(&key.kid);
    invalid("foreign key", stranger.sign(&rs256(&key.kid), &claims)).await;
    // Signed by the other published key but naming this one.
    invalid("kid mismatch", idp.keys[0].sign(&rs256(&key.kid), &claims)).await;
    // Unsigned (`alg: none`).
    let unsigned = format!(
        "{}.{}.",
        b64url(br#"{"typ":"JWT","alg":"none"}"#),
        b64url(claims.to_string().as_bytes())
    );
    invalid("alg none", unsigned).await;
    // HS256 with the client secret as the key: a confidential client could be fooled by this.
    let hs_input = format!(
        "{}.{}",
        b64url(br#"{"typ":"JWT","alg":"HS256"}"#),
        b64url(claims.to_string().as_bytes())
    );
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET.as_bytes()),
        hs_input.as_bytes(),
    );
    invalid("HS256", format!("{hs_input}.{}", b64url(mac.as_ref()))).await;
    // A tampered payload under a valid signature.
    let valid = key.sign(&rs256(&key.kid), &claims);
    let mut parts: Vec<&str> = valid.split('.').collect();
    let mut elevated = no_roles.clone();
    elevated["wids"] = json!([GLOBAL_ADMIN]);
    let forged_payload = b64url(elevated.to_string().as_bytes());
    parts[1] = &forged_payload;
    invalid("tampered", parts.join(".")).await;

    // Microsoft refuses the code (replayed or verifier mismatch).
    *idp.answer.lock().unwrap() = TokenAnswer::Error(
        400,
        json!({"error": "invalid_grant", "error_description": "AADSTS54005: OAuth2 Authorization code was already redeemed.", "error_codes": [54005]}),
    );
    let refused = client
        .finish_admin_sign_in(tenant, "used", &start.pkce_verifier, &start.nonce)
        .await;
    assert!(
        matches!(refused, Err(AdminSignInError::CodeRefused(_))),
        "{refused:?}"
    );
}
