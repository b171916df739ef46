//! The simulated Microsoft identity platform (Entra ID v2.0 endpoints, graph-protocol.md §1):
//! admin consent with its sign-in and consent pages, the authorization-code flow with PKCE, the
//! token endpoint (client credentials, authorization code, refresh token) and the access tokens
//! Graph later validates. Errors carry AADSTS codes and the documented JSON fields.
//! It must never touch tenant content (mail, files); only who may call, as whom, until when.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::AppRegistration;
use super::state::{Found, Simulator, Tenant, lock, read};

pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

#[derive(Debug, Clone)]
enum FlowKind {
    AdminConsent {
        scope: String,
        legacy: bool,
    },
    Authorize {
        scope: String,
        code_challenge: Option<String>,
        challenge_method: String,
        nonce: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Flow {
    kind: FlowKind,
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    /// The tenant in the URL (`organizations`, a GUID or a domain).
    path_tenant: String,
    created: DateTime<Utc>,
    signed_in: Option<(usize, u32)>,
}

#[derive(Debug, Clone)]
struct AuthCode {
    tenant: usize,
    user: u32,
    client_id: String,
    redirect_uri: String,
    scope: String,
    code_challenge: Option<String>,
    challenge_method: String,
    nonce: Option<String>,
    issued: DateTime<Utc>,
    redeemed: bool,
}

#[derive(Default)]
struct Inner {
    apps: HashMap<String, AppRegistration>,
    consents: HashSet<(usize, String)>,
    flows: HashMap<String, Flow>,
    codes: HashMap<String, AuthCode>,
    /// Browser sign-in sessions (the `ESTSAUTH` cookie): who signed in, and when.
    sessions: HashMap<String, (usize, u32, DateTime<Utc>)>,
}

/// The cookie that keeps a browser signed in to the identity platform between flows, so an
/// administrator who just consented is not asked for the password again by the sign-in that
/// follows (Entra's single sign-on does the same).
const SESSION_COOKIE: &str = "ESTSAUTH";
const SESSION_HOURS: i64 = 1;

/// Registered applications, consents and the short-lived state of sign-in flows.
#[derive(Default)]
pub struct IdentityState {
    inner: Mutex<Inner>,
}

impl IdentityState {
    pub fn register(&self, app: AppRegistration) {
        lock(&self.inner)
            .apps
            .insert(app.client_id.to_ascii_lowercase(), app);
    }

    pub fn app(&self, client_id: &str) -> Option<AppRegistration> {
        lock(&self.inner)
            .apps
            .get(&client_id.to_ascii_lowercase())
            .cloned()
    }

    pub fn apps(&self) -> Vec<AppRegistration> {
        lock(&self.inner).apps.values().cloned().collect()
    }

    pub fn has_consent(&self, tenant: usize, client_id: &str) -> bool {
        lock(&self.inner)
            .consents
            .contains(&(tenant, client_id.to_ascii_lowercase()))
    }

    /// Records an admin's consent (also used by the control API to pre-consent apps).
    pub fn grant_consent(&self, tenant: usize, client_id: &str) {
        lock(&self.inner)
            .consents
            .insert((tenant, client_id.to_ascii_lowercase()));
    }

    pub fn revoke_consent(&self, tenant: usize, client_id: &str) {
        lock(&self.inner)
            .consents
            .remove(&(tenant, client_id.to_ascii_lowercase()));
    }
}

/// Claims of a simulated access token; Graph reads them after validation.
#[derive(Debug, Clone)]
pub struct Claims {
    pub tenant: usize,
    pub app_id: String,
    pub roles: Vec<String>,
    /// Delegated tokens: the signed-in user.
    pub user: Option<u32>,
}

/// Why Graph refuses a token (rendered as 401 InvalidAuthenticationToken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Access token is empty.")]
    Missing,
    #[error("Access token has expired or is not yet valid.")]
    Expired,
    #[error("Access token validation failure.")]
    Invalid,
    #[error("CompactToken parsing failed with error code: 80049217")]
    Malformed,
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn sign(key: &[u8; 32], data: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key);
    hasher.update(data.as_bytes());
    b64url(&hasher.finalize())
}

/// Issues a JWT-shaped token with Microsoft's claim set (§1.5). The signature is a keyed hash
/// only this simulator can check; clients must treat tokens as opaque, as with the real ones.
fn issue_token(
    sim: &Simulator,
    tenant: &Tenant,
    app: &AppRegistration,
    user: Option<(Uuid, String)>,
    scope: &str,
) -> String {
    let now = sim.now();
    let kid = &sign(&sim.signing_key, "kid")[..27];
    let header = json!({"typ": "JWT", "nonce": sign(&sim.signing_key, &now.to_rfc3339())[..20].to_owned(), "alg": "RS256", "x5t": kid, "kid": kid});
    let mut claims = json!({
        "aud": GRAPH_RESOURCE,
        "iss": format!("https://sts.windows.net/{}/", tenant.id),
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": (now + sim.token_lifetime).timestamp(),
        "aio": b64url(Uuid::new_v4().as_bytes()),
        "app_displayname": app.display_name,
        "appid": app.client_id,
        "appidacr": "1",
        "idp": format!("https://sts.windows.net/{}/", tenant.id),
        "rh": "0.AAAA.",
        "tid": tenant.id.to_string(),
        "uti": b64url(&Uuid::new_v4().as_bytes()[..12]),
        "ver": "1.0",
    });
    match user {
        Some((oid, upn)) => {
            claims["idtyp"] = json!("user");
            claims["oid"] = json!(oid.to_string());
            claims["sub"] = json!(oid.to_string());
            claims["upn"] = json!(upn);
            claims["scp"] = json!(
                scope
                    .split(' ')
                    .filter_map(|s| s.rsplit('/').next())
                    .filter(|s| !matches!(*s, "openid" | "profile" | "offline_access" | "email"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        None => {
            let sp =
                super::generate::Stream::new(&[tenant.spec.seed, 200, app.client_id.len() as u64])
                    .uuid();
            claims["idtyp"] = json!("app");
            claims["oid"] = json!(sp.to_string());
            claims["sub"] = json!(sp.to_string());
            claims["roles"] = json!(app_roles(app));
        }
    }
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = sign(&sim.signing_key, &signing_input);
    format!("{signing_input}.{signature}")
}

fn app_roles(app: &AppRegistration) -> Vec<String> {
    if app.permissions.is_empty() {
        super::BACKUP_PERMISSIONS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        app.permissions.clone()
    }
}

/// Validates a bearer token presented to Graph.
pub fn validate(sim: &Simulator, token: &str) -> Result<Claims, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if sign(&sim.signing_key, &format!("{header}.{payload}")) != signature {
        return Err(TokenError::Invalid);
    }
    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed)?;
    let now = sim.now().timestamp();
    let expires = claims["exp"].as_i64().ok_or(TokenError::Invalid)?;
    let not_before = claims["nbf"].as_i64().ok_or(TokenError::Invalid)?;
    if now >= expires || now < not_before - 300 {
        return Err(TokenError::Expired);
    }
    if claims["aud"] != GRAPH_RESOURCE {
        return Err(TokenError::Invalid);
    }
    let tenant = claims["tid"]
        .as_str()
        .and_then(|tid| sim.find_tenant(tid))
        .ok_or(TokenError::Invalid)?;
    let user = match claims["idtyp"].as_str() {
        Some("user") => match claims["oid"]
            .as_str()
            .map(|oid| read(&tenant.state).find_user(oid))
        {
            Some(Found::Active(index)) => Some(index),
            _ => return Err(TokenError::Invalid),
        },
        _ => None,
    };
    let roles = claims["roles"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Claims {
        tenant: tenant.index,
        app_id: claims["appid"].as_str().unwrap_or_default().to_owned(),
        roles,
        user,
    })
}

// ---------------------------------------------------------------------------------------------
// Errors

struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
}

impl AadError {
    fn new(status: u16, error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            error,
            code,
            message: message.into(),
        }
    }

    fn missing(parameter: &str) -> Self {
        Self::new(
            400,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    /// `AADSTSnnn: message\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: …` (§1.2).
    fn description(&self, now: DateTime<Utc>, trace: Uuid, correlation: Uuid) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {}",
            self.code,
            self.message,
            timestamp(now)
        )
    }

    fn into_response(self, now: DateTime<Utc>) -> HttpResponse {
        let (trace, correlation) = (Uuid::new_v4(), Uuid::new_v4());
        let body = json!({
            "error": self.error,
            "error_description": self.description(now, trace, correlation),
            "error_codes": [self.code],
            "timestamp": timestamp(now),
            "trace_id": trace.to_string(),
            "correlation_id": correlation.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        HttpResponse::build(self.status)
            .insert_header(("Cache-Control", "no-store, no-cache"))
            .insert_header(("Pragma", "no-cache"))
            .content_type("application/json; charset=utf-8")
            .body(body.to_string())
    }
}

fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

// ---------------------------------------------------------------------------------------------
// Routing

/// Handles `/{tenant}/...` identity paths; `None` when the path is not an identity path.
pub fn handle(
    sim: &Simulator,
    req: &HttpRequest,
    segments: &[String],
    body: &[u8],
) -> Option<HttpResponse> {
    let method = req.method().as_str();
    let rest: Vec<&str> = segments.iter().skip(1).map(String::as_str).collect();
    let tenant = segments.first()?.as_str();
    Some(match (method, rest.as_slice()) {
        ("GET", ["v2.0", "adminconsent"]) => admin_consent(sim, req, tenant, false),
        ("GET", ["adminconsent"]) => admin_consent(sim, req, tenant, true),
        ("GET", ["oauth2", "v2.0", "authorize"]) => authorize(sim, req, tenant),
        ("GET", ["v2.0", ".well-known", "openid-configuration"]) => {
            super::oidc::metadata(sim, tenant)
        }
        ("GET", ["discovery", "v2.0", "keys"]) => super::oidc::keys(sim, tenant),
        ("POST", ["oauth2", "v2.0", "token"]) => token(sim, req, tenant, body),
        ("POST", ["login"]) => login(sim, body),
        ("POST", ["consent"]) => consent(sim, body),
        (_, ["oauth2", "v2.0", "token"]) => AadError::new(
            405,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        )
        .into_response(sim.now()),
        _ => return None,
    })
}

fn query_map(req: &HttpRequest) -> HashMap<String, String> {
    serde_urlencoded::from_str(req.query_string()).unwrap_or_default()
}

fn form_map(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// Redirects to the client with query parameters, form-encoded as Entra does (`+` for spaces).
fn redirect(uri: &str, params: &[(&str, &str)]) -> HttpResponse {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in params {
        serializer.append_pair(key, value);
    }
    let separator = if uri.contains('?') { '&' } else { '?' };
    HttpResponse::Found()
        .insert_header((
            "Location",
            format!("{uri}{separator}{}", serializer.finish()),
        ))
        .insert_header(("Cache-Control", "no-store, no-cache"))
        .finish()
}

fn redirect_error(sim: &Simulator, flow: &Flow, error: &str, aad: AadError) -> HttpResponse {
    let description = aad.description(sim.now(), Uuid::new_v4(), Uuid::new_v4());
    let mut params = Vec::new();
    if matches!(flow.kind, FlowKind::AdminConsent { .. }) {
        params.push(("admin_consent", "True"));
    }
    params.push(("error", error));
    params.push(("error_description", description.as_str()));
    if let Some(state) = &flow.state {
        params.push(("state", state.as_str()));
    }
    redirect(&flow.redirect_uri, &params)
}

/// Checks the client and redirect URI. Like Entra, an unknown client or an unregistered redirect
/// URI gets an error page, never a redirect: the URI cannot be trusted with the answer.
#[allow(clippy::result_large_err)] // The error is the page to show; it is built once per sign-in.
fn check_client(
    sim: &Simulator,
    query: &HashMap<String, String>,
    tenant: &str,
) -> Result<(AppRegistration, String), HttpResponse> {
    let now = sim.now();
    if !matches!(tenant, "organizations" | "common") && sim.find_tenant(tenant).is_none() {
        return Err(error_page(400, &AadError::new(400, "invalid_request", 90002, format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."))
            .description(now, Uuid::new_v4(), Uuid::new_v4())));
    }
    let Some(client_id) = query.get("client_id").filter(|c| !c.is_empty()) else {
        return Err(error_page(
            400,
            &AadError::missing("client_id").description(now, Uuid::new_v4(), Uuid::new_v4()),
        ));
    };
    let Some(app) = sim.identity.app(client_id) else {
        return Err(error_page(400, &AadError::new(400, "unauthorized_client", 700016, format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."))
            .description(now, Uuid::new_v4(), Uuid::new_v4())));
    };
    let Some(redirect_uri) = query.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return Err(error_page(
            400,
            &AadError::missing("redirect_uri").description(now, Uuid::new_v4(), Uuid::new_v4()),
        ));
    };
    if !app
        .redirect_uris
        .iter()
        .any(|registered| registered == redirect_uri)
    {
        return Err(error_page(400, &AadError::new(400, "invalid_request", 50011, format!("The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.", app.client_id))
            .description(now, Uuid::new_v4(), Uuid::new_v4())));
    }
    Ok((app, redirect_uri.clone()))
}

fn new_flow(sim: &Simulator, flow: Flow) -> String {
    let id = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let mut inner = lock(&sim.identity.inner);
    let cutoff = sim.now() - Duration::hours(1);
    inner.flows.retain(|_, f| f.created > cutoff);
    inner.flows.insert(id.clone(), flow);
    id
}

fn admin_consent(sim: &Simulator, req: &HttpRequest, tenant: &str, legacy: bool) -> HttpResponse {
    if tenant == "common" && !legacy || tenant == "consumers" {
        return error_page(400, &AadError::new(400, "invalid_request", 90130, "Application is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.").description(sim.now(), Uuid::new_v4(), Uuid::new_v4()));
    }
    let query = query_map(req);
    let (app, redirect_uri) = match check_client(sim, &query, tenant) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let scope = query
        .get("scope")
        .cloned()
        .unwrap_or_else(|| format!("{GRAPH_RESOURCE}/.default"));
    let flow = Flow {
        kind: FlowKind::AdminConsent { scope, legacy },
        client_id: app.client_id.clone(),
        redirect_uri,
        state: query.get("state").cloned(),
        path_tenant: tenant.to_owned(),
        created: sim.now(),
        signed_in: None,
    };
    let id = new_flow(sim, flow);
    sign_in_page(
        tenant,
        &id,
        &app,
        None,
        query.get("login_hint").map(String::as_str),
    )
}

fn authorize(sim: &Simulator, req: &HttpRequest, tenant: &str) -> HttpResponse {
    let query = query_map(req);
    let (app, redirect_uri) = match check_client(sim, &query, tenant) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let mut flow = Flow {
        kind: FlowKind::Authorize {
            scope: query.get("scope").cloned().unwrap_or_default(),
            code_challenge: query.get("code_challenge").cloned(),
            challenge_method: query
                .get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".to_owned()),
            nonce: query.get("nonce").cloned(),
        },
        client_id: app.client_id.clone(),
        redirect_uri,
        state: query.get("state").cloned(),
        path_tenant: tenant.to_owned(),
        created: sim.now(),
        signed_in: None,
    };
    if query.get("response_type").map(String::as_str) != Some("code") {
        return redirect_error(
            sim,
            &flow,
            "unsupported_response_type",
            AadError::new(
                400,
                "unsupported_response_type",
                700054,
                "response_type 'id_token' is not enabled for the application.",
            ),
        );
    }
    if let FlowKind::Authorize {
        code_challenge: Some(challenge),
        challenge_method,
        ..
    } = &flow.kind
    {
        if !(43..=128).contains(&challenge.len()) {
            return redirect_error(
                sim,
                &flow,
                "invalid_request",
                AadError::new(
                    400,
                    "invalid_request",
                    501491,
                    "Invalid size of Code_Challenge parameter.",
                ),
            );
        }
        if !matches!(challenge_method.as_str(), "S256" | "plain") {
            return redirect_error(
                sim,
                &flow,
                "invalid_request",
                AadError::new(
                    400,
                    "invalid_request",
                    50147,
                    "Invalid code_challenge_method.",
                ),
            );
        }
    }
    flow.created = sim.now();
    let prompt_login = query.get("prompt").is_some_and(|p| p == "login");
    let session = signed_in_session(sim, req, tenant);
    let id = new_flow(sim, flow.clone());
    if let (Some((tenant_index, user)), false) = (session, prompt_login) {
        return issue_code(sim, &id, &flow, tenant_index, user);
    }
    sign_in_page(
        tenant,
        &id,
        &app,
        None,
        query.get("login_hint").map(String::as_str),
    )
}

fn login(sim: &Simulator, body: &[u8]) -> HttpResponse {
    let form = form_map(body);
    let flow_id = form.get("flow").cloned().unwrap_or_default();
    let Some(flow) = lock(&sim.identity.inner).flows.get(&flow_id).cloned() else {
        return error_page(
            400,
            "AADSTS90014: The sign-in session has expired or is unknown. Start again from the application.",
        );
    };
    let Some(app) = sim.identity.app(&flow.client_id) else {
        return error_page(
            400,
            "AADSTS700016: The application is no longer registered.",
        );
    };
    let username = form
        .get("login")
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let password = form.get("passwd").cloned().unwrap_or_default();
    let domain = username
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_default();
    // The user's domain picks the tenant on `/organizations`; a tenant-specific URL must match it.
    let tenant = match sim.find_tenant(&domain) {
        Some(t)
            if flow.path_tenant == "organizations"
                || flow.path_tenant == "common"
                || sim
                    .find_tenant(&flow.path_tenant)
                    .is_some_and(|p| p.index == t.index) =>
        {
            t.clone()
        }
        _ => {
            return sign_in_page(
                &flow.path_tenant,
                &flow_id,
                &app,
                Some(
                    "AADSTS50034: We couldn't find an account with that username. Try another, or get a new account.",
                ),
                Some(&username),
            );
        }
    };
    let found = read(&tenant.state).find_user(&username);
    let Found::Active(user_index) = found else {
        return sign_in_page(
            &flow.path_tenant,
            &flow_id,
            &app,
            Some(
                "AADSTS50034: We couldn't find an account with that username. Try another, or get a new account.",
            ),
            Some(&username),
        );
    };
    let (is_admin, enabled) = {
        let state = read(&tenant.state);
        let user = &state.users[user_index as usize];
        (user.is_admin, user.account_enabled)
    };
    let expected = if is_admin {
        &tenant.admin_password
    } else {
        &tenant.member_password
    };
    if &password != expected {
        return sign_in_page(
            &flow.path_tenant,
            &flow_id,
            &app,
            Some(
                "AADSTS50126: Your account or password is incorrect. If you don't remember your password, reset it now.",
            ),
            Some(&username),
        );
    }
    if !enabled {
        return sign_in_page(
            &flow.path_tenant,
            &flow_id,
            &app,
            Some(
                "AADSTS50057: Your account has been locked. Contact your support person to unlock it, then try again.",
            ),
            Some(&username),
        );
    }
    if let Some(stored) = lock(&sim.identity.inner).flows.get_mut(&flow_id) {
        stored.signed_in = Some((tenant.index, user_index));
    }
    let session = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    {
        let mut inner = lock(&sim.identity.inner);
        // Sessions past their hour are dropped here, as flows are in `new_flow`.
        let cutoff = sim.now() - Duration::hours(SESSION_HOURS);
        inner.sessions.retain(|_, (_, _, at)| *at > cutoff);
        inner
            .sessions
            .insert(session.clone(), (tenant.index, user_index, sim.now()));
    }
    let mut response = match &flow.kind {
        FlowKind::AdminConsent { .. } if !is_admin => {
            lock(&sim.identity.inner).flows.remove(&flow_id);
            redirect_error(
                sim,
                &flow,
                "access_denied",
                AadError::new(
                    403,
                    "access_denied",
                    90094,
                    "Admin consent is required for the permissions requested by this application. An administrator must sign in to grant them.",
                ),
            )
        }
        FlowKind::AdminConsent { .. } => consent_page(&flow.path_tenant, &flow_id, &app, &tenant),
        FlowKind::Authorize { .. } => issue_code(sim, &flow_id, &flow, tenant.index, user_index),
    };
    let cookie = actix_web::cookie::Cookie::build(SESSION_COOKIE, session)
        .path("/")
        .http_only(true)
        .finish();
    if let Err(err) = response.add_cookie(&cookie) {
        tracing::warn!("simulator could not set its sign-in cookie: {err}");
    }
    response
}

/// The user a browser is still signed in as for `path_tenant` (single sign-on), if any.
fn signed_in_session(
    sim: &Simulator,
    req: &HttpRequest,
    path_tenant: &str,
) -> Option<(usize, u32)> {
    let cookie = req.cookie(SESSION_COOKIE)?;
    let (tenant, user, at) = *lock(&sim.identity.inner).sessions.get(cookie.value())?;
    if sim.now() - at > Duration::hours(SESSION_HOURS) {
        return None;
    }
    let fits = matches!(path_tenant, "organizations" | "common")
        || sim
            .find_tenant(path_tenant)
            .is_some_and(|t| t.index == tenant);
    let active = {
        let state = read(&sim.tenants[tenant].state);
        state
            .users
            .get(user as usize)
            .is_some_and(|u| u.account_enabled && matches!(u.life, super::state::Life::Active))
    };
    (fits && active).then_some((tenant, user))
}

fn consent(sim: &Simulator, body: &[u8]) -> HttpResponse {
    let form = form_map(body);
    let flow_id = form.get("flow").cloned().unwrap_or_default();
    let Some(flow) = lock(&sim.identity.inner).flows.remove(&flow_id) else {
        return error_page(
            400,
            "AADSTS90014: The sign-in session has expired or is unknown. Start again from the application.",
        );
    };
    let (Some((tenant_index, _)), FlowKind::AdminConsent { scope, legacy }) =
        (flow.signed_in, &flow.kind)
    else {
        return error_page(400, "AADSTS90014: Sign in before consenting.");
    };
    if form.get("decision").map(String::as_str) != Some("accept") {
        return redirect_error(
            sim,
            &flow,
            "consent_required",
            AadError::new(
                400,
                "consent_required",
                65004,
                "The resource owner or authorization server denied the request.",
            ),
        );
    }
    sim.identity.grant_consent(tenant_index, &flow.client_id);
    let tenant_id = sim.tenants[tenant_index].id.to_string();
    let mut params = vec![("admin_consent", "True"), ("tenant", tenant_id.as_str())];
    if let Some(state) = &flow.state {
        params.push(("state", state.as_str()));
    }
    let granted = granted_scope(sim, &flow.client_id, scope);
    if !legacy {
        params.push(("scope", granted.as_str()));
    }
    redirect(&flow.redirect_uri, &params)
}

/// `/.default` expands to every application permission of the registration (§1.1).
fn granted_scope(sim: &Simulator, client_id: &str, requested: &str) -> String {
    if requested.split(' ').any(|s| s.ends_with("/.default")) {
        let app = sim.identity.app(client_id);
        app.map(|a| {
            app_roles(&a)
                .iter()
                .map(|r| format!("{GRAPH_RESOURCE}/{r}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
    } else {
        requested.to_owned()
    }
}

fn issue_code(
    sim: &Simulator,
    flow_id: &str,
    flow: &Flow,
    tenant: usize,
    user: u32,
) -> HttpResponse {
    let FlowKind::Authorize {
        scope,
        code_challenge,
        challenge_method,
        nonce,
    } = &flow.kind
    else {
        return error_page(400, "AADSTS90014: Unexpected flow.");
    };
    let code = format!(
        "1.AXEA{}",
        b64url(
            &[
                Uuid::new_v4().as_bytes().as_slice(),
                Uuid::new_v4().as_bytes().as_slice()
            ]
            .concat()
        )
    );
    let mut inner = lock(&sim.identity.inner);
    inner.flows.remove(flow_id);
    let cutoff = sim.now() - Duration::minutes(30);
    inner.codes.retain(|_, c| c.issued > cutoff);
    inner.codes.insert(
        code.clone(),
        AuthCode {
            tenant,
            user,
            client_id: flow.client_id.clone(),
            redirect_uri: flow.redirect_uri.clone(),
            scope: scope.clone(),
            code_challenge: code_challenge.clone(),
            challenge_method: challenge_method.clone(),
            nonce: nonce.clone(),
            issued: sim.now(),
            redeemed: false,
        },
    );
    drop(inner);
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = &flow.state {
        params.push(("state", state.as_str()));
    }
    redirect(&flow.redirect_uri, &params)
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

fn token(sim: &Simulator, req: &HttpRequest, path_tenant: &str, body: &[u8]) -> HttpResponse {
    let now = sim.now();
    match token_response(sim, req, path_tenant, body) {
        Ok(value) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store, no-cache"))
            .insert_header(("Pragma", "no-cache"))
            .content_type("application/json; charset=utf-8")
            .body(value.to_string()),
        Err(error) => error.into_response(now),
    }
}

fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    )
    .ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

fn token_response(
    sim: &Simulator,
    req: &HttpRequest,
    path_tenant: &str,
    body: &[u8],
) -> Result<Value, AadError> {
    let form = form_map(body);
    let basic = basic_credentials(req);
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| AadError::missing("grant_type"))?
        .clone();
    let client_id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()))
        .ok_or_else(|| AadError::missing("client_id"))?;
    let secret = form
        .get("client_secret")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.1.clone()));
    match grant_type.as_str() {
        "client_credentials" => {
            if matches!(path_tenant, "common" | "consumers" | "organizations") {
                return Err(AadError::new(
                    400,
                    "invalid_request",
                    9001023,
                    "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
                ));
            }
            let tenant = find_tenant(sim, path_tenant)?;
            let app = sim
                .identity
                .app(&client_id)
                .ok_or_else(|| app_not_found(&client_id, tenant))?;
            check_secret(&app, secret.as_deref())?;
            let scope = form
                .get("scope")
                .ok_or_else(|| AadError::missing("scope"))?;
            check_default_scope(scope, tenant)?;
            if !sim.identity.has_consent(tenant.index, &app.client_id) {
                return Err(app_not_found(&client_id, tenant));
            }
            let token = issue_token(sim, tenant, &app, None, scope);
            let expires = sim.token_lifetime.num_seconds();
            Ok(
                json!({"token_type": "Bearer", "expires_in": expires, "ext_expires_in": expires, "access_token": token}),
            )
        }
        "authorization_code" => {
            let code = form.get("code").ok_or_else(|| AadError::missing("code"))?;
            let app = sim.identity.app(&client_id).ok_or_else(|| {
                AadError::new(
                    400,
                    "unauthorized_client",
                    700016,
                    format!(
                        "Application with identifier '{client_id}' was not found in the directory."
                    ),
                )
            })?;
            let grant = {
                let mut inner = lock(&sim.identity.inner);
                let grant = inner.codes.get_mut(code).ok_or_else(|| {
                    AadError::new(
                        400,
                        "invalid_grant",
                        9002313,
                        "Invalid request. Request is malformed or invalid.",
                    )
                })?;
                if grant.redeemed {
                    return Err(AadError::new(
                        400,
                        "invalid_grant",
                        54005,
                        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                    ));
                }
                grant.redeemed = true;
                grant.clone()
            };
            if !grant.client_id.eq_ignore_ascii_case(&client_id) {
                return Err(AadError::new(
                    400,
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed.",
                ));
            }
            if sim.now() - grant.issued > Duration::minutes(10) {
                return Err(AadError::new(
                    400,
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
                ));
            }
            if form.get("redirect_uri") != Some(&grant.redirect_uri) {
                return Err(AadError::new(
                    400,
                    "invalid_grant",
                    50148,
                    "The redirect_uri specified in the token request does not match the redirect_uri used in the authorization request.",
                ));
            }
            match (&grant.code_challenge, form.get("code_verifier")) {
                (Some(challenge), Some(verifier)) => {
                    let computed = if grant.challenge_method == "S256" {
                        b64url(&Sha256::digest(verifier.as_bytes()))
                    } else {
                        verifier.clone()
                    };
                    if &computed != challenge {
                        return Err(AadError::new(
                            400,
                            "invalid_grant",
                            501481,
                            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                        ));
                    }
                }
                (Some(_), None) => return Err(AadError::missing("code_verifier")),
                (None, _) => check_secret(&app, secret.as_deref())?,
            }
            if secret.is_some() {
                check_secret(&app, secret.as_deref())?;
            }
            delegated_tokens(
                sim,
                &app,
                grant.tenant,
                grant.user,
                &grant.scope,
                grant.nonce.as_deref(),
            )
        }
        "refresh_token" => {
            let refresh = form
                .get("refresh_token")
                .ok_or_else(|| AadError::missing("refresh_token"))?;
            let app = sim.identity.app(&client_id).ok_or_else(|| {
                AadError::new(
                    400,
                    "unauthorized_client",
                    700016,
                    format!(
                        "Application with identifier '{client_id}' was not found in the directory."
                    ),
                )
            })?;
            let (tenant, user, scope) =
                parse_refresh(sim, refresh, &app.client_id).ok_or_else(|| {
                    AadError::new(
                        400,
                        "invalid_grant",
                        9002313,
                        "Invalid request. Request is malformed or invalid.",
                    )
                })?;
            delegated_tokens(sim, &app, tenant, user, &scope, None)
        }
        other => Err(AadError::new(
            400,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn find_tenant<'a>(sim: &'a Simulator, key: &str) -> Result<&'a Tenant, AadError> {
    sim.find_tenant(key).map(|t| t.as_ref()).ok_or_else(|| AadError::new(400, "invalid_request", 90002, format!("Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.")))
}

fn app_not_found(client_id: &str, tenant: &Tenant) -> AadError {
    AadError::new(
        400,
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            tenant.display_name
        ),
    )
}

fn check_secret(app: &AppRegistration, secret: Option<&str>) -> Result<(), AadError> {
    match secret {
        None => Err(AadError::new(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
        Some(secret) if secret == app.client_secret => Ok(()),
        Some(_) => Err(AadError::new(
            401,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
        )),
    }
}

fn check_default_scope(scope: &str, tenant: &Tenant) -> Result<(), AadError> {
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    for s in &scopes {
        if !s.ends_with("/.default") {
            return Err(AadError::new(
                400,
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {s} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
    }
    let resources: HashSet<&str> = scopes
        .iter()
        .map(|s| s.trim_end_matches("/.default").trim_end_matches('/'))
        .collect();
    if resources.len() > 1 {
        return Err(AadError::new(
            400,
            "invalid_scope",
            700022,
            "The provided value for the input parameter scope is not valid because it contains more than one resource.",
        ));
    }
    match resources.into_iter().next() {
        Some(GRAPH_RESOURCE) | Some(GRAPH_APP_ID) => Ok(()),
        Some(other) => Err(AadError::new(
            400,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {other} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                tenant.display_name
            ),
        )),
        None => Err(AadError::missing("scope")),
    }
}

fn delegated_tokens(
    sim: &Simulator,
    app: &AppRegistration,
    tenant_index: usize,
    user: u32,
    scope: &str,
    nonce: Option<&str>,
) -> Result<Value, AadError> {
    let tenant = &sim.tenants[tenant_index];
    let (oid, upn, name, is_admin) = {
        let state = read(&tenant.state);
        let u = state.users.get(user as usize).ok_or_else(|| {
            AadError::new(
                400,
                "invalid_grant",
                50034,
                "The user account does not exist in the directory.",
            )
        })?;
        (
            u.id,
            u.user_principal_name.clone(),
            u.display_name.clone(),
            u.is_admin,
        )
    };
    let access = issue_token(sim, tenant, app, Some((oid, upn.clone())), scope);
    let expires = sim.token_lifetime.num_seconds();
    let granted: Vec<&str> = scope
        .split(' ')
        .filter(|s| !matches!(*s, "openid" | "profile" | "offline_access" | "email" | ""))
        .collect();
    let mut response = json!({"token_type": "Bearer", "scope": granted.join(" "), "expires_in": expires, "ext_expires_in": expires, "access_token": access});
    if scope.split(' ').any(|s| s == "offline_access") {
        let payload = format!(
            "{tenant_index}|{user}|{}|{scope}",
            app.client_id.to_ascii_lowercase()
        );
        response["refresh_token"] = json!(format!(
            "{}.{}",
            b64url(payload.as_bytes()),
            sign(&sim.signing_key, &payload)
        ));
    }
    if scope.split(' ').any(|s| s == "openid") {
        let now = sim.now().timestamp();
        // `wids`: the user's directory roles by template id, as Entra emits them when the app's
        // groupMembershipClaims include directory roles.
        let mut wids = vec![super::oidc::MEMBER_USER];
        if is_admin {
            wids.insert(0, super::oidc::GLOBAL_ADMINISTRATOR);
        }
        let mut claims = json!({"aud": app.client_id, "iss": super::oidc::issuer(sim, tenant), "iat": now, "nbf": now, "exp": now + 3600, "name": name, "oid": oid.to_string(), "preferred_username": upn, "sub": b64url(oid.as_bytes()), "tid": tenant.id.to_string(), "ver": "2.0", "wids": wids});
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let id_token = sim.oidc_key.sign(&claims).ok_or_else(|| {
            AadError::new(
                500,
                "server_error",
                90033,
                "A transient error has occurred. Please try again.",
            )
        })?;
        response["id_token"] = json!(id_token);
    }
    Ok(response)
}

fn parse_refresh(sim: &Simulator, token: &str, client_id: &str) -> Option<(usize, u32, String)> {
    let (payload, signature) = token.split_once('.')?;
    let payload = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?,
    )
    .ok()?;
    if sign(&sim.signing_key, &payload) != signature {
        return None;
    }
    let mut parts = payload.splitn(4, '|');
    let tenant = parts.next()?.parse().ok()?;
    let user = parts.next()?.parse().ok()?;
    if parts.next()? != client_id.to_ascii_lowercase() {
        return None;
    }
    Some((tenant, user, parts.next()?.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Pages (server-rendered, no script)

const PAGE_STYLE: &str = "body{margin:0;background:#f2f2f2;font-family:'Segoe UI','Helvetica Neue',Arial,sans-serif;color:#1b1b1b}\
.card{width:440px;max-width:calc(100% - 40px);margin:80px auto;background:#fff;box-shadow:0 2px 6px rgba(0,0,0,.2);padding:44px;box-sizing:border-box}\
.logo{display:grid;grid-template-columns:10px 10px;gap:2px;margin-bottom:16px}.logo span{width:10px;height:10px}\
.r{background:#f25022}.g{background:#7fba00}.b{background:#00a4ef}.y{background:#ffb900}\
.brand{font-size:15px;color:#5e5e5e;font-weight:600;margin-left:6px;vertical-align:top}\
h1{font-size:24px;font-weight:600;margin:16px 0 12px}p{font-size:15px;line-height:20px}\
input[type=email],input[type=password]{width:100%;border:none;border-bottom:1px solid #666;padding:6px 0;font-size:15px;margin:8px 0 16px;outline:none}\
input:focus{border-bottom-color:#0067b8}.actions{text-align:right;margin-top:24px}\
button{min-width:108px;padding:6px 12px;font-size:15px;border:1px solid #0067b8;background:#0067b8;color:#fff;cursor:pointer;margin-left:8px}\
button.secondary{background:#ccc;border-color:#ccc;color:#1b1b1b}.error{color:#e81123;font-size:14px}\
ul.perms{padding-left:18px;font-size:14px}ul.perms li{margin:6px 0}.muted{color:#5e5e5e;font-size:13px}\
footer{text-align:center;font-size:12px;color:#5e5e5e}";

fn page(title: &str, inner: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title><style>{PAGE_STYLE}</style></head><body><div class=\"card\"><div><span class=\"logo\" style=\"display:inline-grid\"><span class=\"r\"></span><span class=\"g\"></span><span class=\"b\"></span><span class=\"y\"></span></span><span class=\"brand\">Microsoft</span></div>{inner}</div><footer>Microsoft 365 tenant simulator — not a Microsoft service</footer></body></html>"
    )
}

fn esc(text: &str) -> String {
    super::generate::html_escape(text)
}

fn html(status: u16, body: String) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store, no-cache"))
        // No `form-action`: the consent form's answer is a redirect to the client's redirect URI
        // on another origin, and browsers apply `form-action` to redirects after a form post.
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .insert_header(("X-Frame-Options", "DENY"))
        .body(body)
}

fn sign_in_page(
    tenant: &str,
    flow: &str,
    app: &AppRegistration,
    error: Option<&str>,
    login_hint: Option<&str>,
) -> HttpResponse {
    let error_html = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let inner = format!(
        "<h1>Sign in</h1><p class=\"muted\">to continue to {app}</p>{error_html}<form method=\"post\" action=\"/{tenant}/login\"><input type=\"hidden\" name=\"flow\" value=\"{flow}\"><label for=\"login\" class=\"muted\">Email, phone, or Skype</label><input type=\"email\" id=\"login\" name=\"login\" value=\"{hint}\" required autofocus><label for=\"passwd\" class=\"muted\">Password</label><input type=\"password\" id=\"passwd\" name=\"passwd\" required><div class=\"actions\"><button type=\"submit\">Sign in</button></div></form>",
        app = esc(&app.display_name),
        tenant = esc(tenant),
        hint = esc(login_hint.unwrap_or_default()),
    );
    // Entra re-renders the form with 200 after a failed sign-in.
    html(200, page("Sign in to your account", &inner))
}

fn consent_page(
    path_tenant: &str,
    flow: &str,
    app: &AppRegistration,
    tenant: &Tenant,
) -> HttpResponse {
    let permissions: String = app_roles(app)
        .iter()
        .map(|p| format!("<li>{}</li>", esc(&permission_label(p))))
        .collect();
    let inner = format!(
        "<h1>Permissions requested</h1><p><strong>{app}</strong><br><span class=\"muted\">App ID {client}</span></p><p>This app would like to:</p><ul class=\"perms\">{permissions}</ul><p class=\"muted\">Accepting grants these permissions for all users in <strong>{org}</strong>. No one else will be prompted.</p><form method=\"post\" action=\"/{tenant}/consent\"><input type=\"hidden\" name=\"flow\" value=\"{flow}\"><div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"cancel\" class=\"secondary\">Cancel</button><button type=\"submit\" name=\"decision\" value=\"accept\">Accept</button></div></form>",
        app = esc(&app.display_name),
        client = esc(&app.client_id),
        org = esc(&tenant.display_name),
        tenant = esc(path_tenant),
    );
    html(200, page("Permissions requested", &inner))
}

fn permission_label(permission: &str) -> String {
    let label = match permission {
        "User.Read.All" => "Read all users' full profiles",
        "Group.Read.All" => "Read all groups",
        "Organization.Read.All" => "Read organization information",
        "Mail.Read" => "Read mail in all mailboxes",
        "Mail.ReadWrite" => "Read and write mail in all mailboxes",
        "MailboxSettings.Read" => "Read all user mailbox settings",
        "Files.Read.All" => "Read files in all site collections",
        "Files.ReadWrite.All" => "Read and write files in all site collections",
        "Sites.Read.All" => "Read items in all site collections",
        "Sites.ReadWrite.All" => "Read and write items in all site collections",
        "Directory.Read.All" => "Read directory data",
        "Channel.ReadBasic.All" => "Read the names and descriptions of all channels",
        "ChannelMessage.Read.All" => "Read all channel messages",
        _ => "",
    };
    if label.is_empty() {
        permission.to_owned()
    } else {
        format!("{label} ({permission})")
    }
}

fn error_page(status: u16, description: &str) -> HttpResponse {
    let first_line = description.lines().next().unwrap_or(description);
    let inner = format!(
        "<h1>Sorry, but we're having trouble signing you in.</h1><p class=\"error\">{}</p><p class=\"muted\">{}</p>",
        esc(first_line),
        esc(&description.lines().skip(1).collect::<Vec<_>>().join(" · "))
    );
    html(status, page("Sign in to your account", &inner))
}
