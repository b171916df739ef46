//! The simulated identity platform's OpenID Connect side: per-tenant discovery metadata
//! (`/{tenant}/v2.0/.well-known/openid-configuration`), the signing keys (`/{tenant}/discovery/
//! v2.0/keys`) and ID tokens signed RS256 with a real RSA key, carrying Entra's `tid` and `wids`
//! claims. A client can validate these tokens exactly as it validates Microsoft's.
//! It owns the key and the token format; it never decides who may sign in (identity.rs does).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::state::{Simulator, Tenant};

/// Entra's built-in role template id of Global Administrator.
pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
/// The role every member user holds ("User"), which Entra also lists in `wids`.
pub const MEMBER_USER: &str = "b79fbf4d-3ef9-4689-8143-76b194e85509";

/// The simulator's token-signing key, made on first use (a 2048-bit key takes a moment, and most
/// simulators never sign an ID token).
pub struct SigningKey {
    pair: OnceLock<Option<KeyPair>>,
}

impl Default for SigningKey {
    fn default() -> Self {
        Self {
            pair: OnceLock::new(),
        }
    }
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

impl SigningKey {
    fn pair(&self) -> Option<&KeyPair> {
        self.pair
            .get_or_init(|| KeyPair::generate(KeySize::Rsa2048).ok())
            .as_ref()
    }

    /// Key id: like Entra's `kid`/`x5t`, a base64url thumbprint (here of the modulus).
    fn kid(pair: &KeyPair) -> String {
        let modulus = pair.public_key().modulus();
        b64url(&Sha256::digest(modulus.big_endian_without_leading_zero())[..20])
    }

    /// The JSON Web Key Set, shaped like Entra's (`kty`, `use`, `kid`, `x5t`, `n`, `e`, `issuer`).
    pub fn jwks(&self, issuer: &str) -> Value {
        let Some(pair) = self.pair() else {
            return json!({"keys": []});
        };
        let public = pair.public_key();
        let kid = Self::kid(pair);
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "x5t": kid,
            "n": b64url(public.modulus().big_endian_without_leading_zero()),
            "e": b64url(public.exponent().big_endian_without_leading_zero()),
            "issuer": issuer,
        }]})
    }

    /// A compact JWS (RS256) over `claims`.
    pub fn sign(&self, claims: &Value) -> Option<String> {
        let pair = self.pair()?;
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": Self::kid(pair)});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .ok()?;
        Some(format!("{input}.{}", b64url(&signature)))
    }
}

/// The issuer of a tenant's v2.0 tokens: `{base}/{tenant id}/v2.0`, as Entra's
/// `https://login.microsoftonline.com/{tid}/v2.0`.
pub fn issuer(sim: &Simulator, tenant: &Tenant) -> String {
    format!("{}/{}/v2.0", sim.base_url.trim_end_matches('/'), tenant.id)
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`. `organizations` and `common` answer
/// with the `{tenantid}` placeholder in the issuer, as Entra's multi-tenant documents do.
pub fn metadata(sim: &Simulator, path_tenant: &str) -> HttpResponse {
    let base = sim.base_url.trim_end_matches('/');
    let issuer = match sim.find_tenant(path_tenant) {
        Some(tenant) => issuer(sim, tenant),
        None if matches!(path_tenant, "organizations" | "common") => {
            format!("{base}/{{tenantid}}/v2.0")
        }
        None => return not_found(path_tenant),
    };
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/{path_tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{path_tenant}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/{path_tenant}/discovery/v2.0/keys"),
        "end_session_endpoint": format!("{base}/{path_tenant}/oauth2/v2.0/logout"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "request_uri_parameter_supported": false,
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": "graph.microsoft.com",
    });
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub fn keys(sim: &Simulator, path_tenant: &str) -> HttpResponse {
    let issuer = match sim.find_tenant(path_tenant) {
        Some(tenant) => issuer(sim, tenant),
        None if matches!(path_tenant, "organizations" | "common") => {
            format!("{}/{{tenantid}}/v2.0", sim.base_url.trim_end_matches('/'))
        }
        None => return not_found(path_tenant),
    };
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(sim.oidc_key.jwks(&issuer).to_string())
}

fn not_found(tenant: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("application/json; charset=utf-8")
        .body(
            json!({"error": "invalid_tenant", "error_description": format!("AADSTS90002: Tenant '{tenant}' not found.")})
                .to_string(),
        )
}
