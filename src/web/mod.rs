//! The browser console: routes, handlers, forms and htmx fragments. Handlers are thin: parse the
//! request, turn ids into scopes through `accounts::Access`, call one domain function, render.

pub mod activities;
pub mod alerts;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod console;
pub mod csrf;
pub mod email;
pub mod error;
pub mod explain;
pub mod flash;
pub mod forms;
pub mod m365;
pub mod middleware;
pub mod overview;
pub mod partner;
pub mod people;
pub mod plans;
pub mod restore;
pub mod search;
pub mod sorting;
pub mod storage;
pub mod sub_partners;
pub mod unlock;

use std::future::Future;
use std::pin::Pin;

use actix_session::config::{
    BrowserSession, CookieContentSecurity, SessionLifecycle, TtlExtensionPolicy,
};
use actix_session::{Session, SessionExt, SessionMiddleware};
use actix_web::cookie::{Key, SameSite};
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use askama::Template;
use sea_orm::{DatabaseConnection, EntityTrait};

use crate::accounts::access::{CustomerScope, Home};
use crate::accounts::entities::partner as partner_entity;
use crate::accounts::session_store::{DatabaseSessionStore, USER_KEY};
use crate::accounts::{Access, Role};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::ids::{CustomerId, UserId};
pub use error::WebError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Settings,
    pub clock: SharedClock,
    pub master_key: MasterKey,
    pub graph: crate::m365::GraphClient,
    /// The one backup storage of this process (repositories are opened once and cached in it).
    pub storage: crate::storage::BackupStorage,
    /// The Graph client talks to the built-in simulator (no Microsoft app configured).
    pub demo: bool,
    /// In demo mode, the address of the simulated tenant's own control page (on the
    /// simulator's port, with its secret path).
    pub demo_page: Option<String>,
}

impl AppState {
    pub fn sync_interval(&self) -> chrono::Duration {
        chrono::Duration::hours(self.settings.sync_interval_hours.max(1) as i64)
    }
}

/// Mounts the console on an actix `App`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{path:.*}", web::get().to(assets::asset))
        .route("/", web::get().to(auth::home))
        .route("/healthz", web::get().to(health))
        .route("/healthz", web::head().to(health))
        .route("/signin", web::get().to(auth::signin_page))
        .route("/signin", web::post().to(auth::signin))
        .route("/signout", web::post().to(auth::signout))
        .route("/setup/{token}", web::get().to(auth::setup_page))
        .route("/setup/{token}", web::post().to(auth::setup))
        .route("/account/password", web::get().to(auth::password_page))
        .route("/account/password", web::post().to(auth::change_password))
        .route("/customers", web::get().to(partner::customers_page))
        .route("/customers", web::post().to(partner::create_customer))
        .route(
            "/customers/{customer}",
            web::get().to(partner::customer_page),
        )
        .route(
            "/customers/{customer}/rename",
            web::post().to(partner::rename_customer),
        )
        .route(
            "/customers/{customer}/disable",
            web::post().to(partner::disable_customer),
        )
        .route(
            "/customers/{customer}/enable",
            web::post().to(partner::enable_customer),
        )
        .route(
            "/customers/{customer}/users",
            web::post().to(partner::add_customer_user),
        )
        .route(
            "/c/{customer}/users/{user}/{action}",
            web::post().to(people::user_action),
        )
        .route("/reset/{token}", web::get().to(people::reset_page))
        .route("/reset/{token}", web::post().to(people::reset))
        .route("/partners", web::get().to(sub_partners::partners_page))
        .route(
            "/partners",
            web::post().to(sub_partners::create_sub_partner),
        )
        .route(
            "/partners/{partner}",
            web::get().to(sub_partners::sub_partner_page),
        )
        .route(
            "/partners/{partner}/rename",
            web::post().to(sub_partners::rename_sub_partner),
        )
        .route(
            "/partners/{partner}/disable",
            web::post().to(sub_partners::disable_sub_partner),
        )
        .route(
            "/partners/{partner}/enable",
            web::post().to(sub_partners::enable_sub_partner),
        )
        .route("/audit", web::get().to(audit::partner_audit_page))
        .route("/email", web::get().to(email::email_page))
        .route(
            "/email/recipients",
            web::post().to(email::save_partner_recipients),
        )
        .route("/email/server", web::post().to(email::save_server))
        .route("/email/server/test", web::post().to(email::send_test))
        .route(
            "/c/{customer}/settings/email",
            web::get().to(email::customer_page),
        )
        .route(
            "/c/{customer}/settings/email",
            web::post().to(email::save_customer_recipients),
        )
        .route("/alerts", web::get().to(overview::partner_alerts_page))
        .route("/usage", web::get().to(overview::usage_page))
        .route("/usage/csv", web::get().to(overview::usage_csv))
        .route(
            "/c/{customer}/usage/csv",
            web::get().to(overview::customer_usage_csv),
        )
        .route(
            "/c/{customer}/settings/users",
            web::post().to(console::add_user),
        )
        .route(
            "/c/{customer}/devices/add/m365",
            web::get().to(m365::add_organization),
        )
        .route(
            "/c/{customer}/devices/{org}/remove",
            web::get().to(m365::remove_page),
        )
        .route(
            "/c/{customer}/devices/{org}/remove",
            web::post().to(m365::remove),
        )
        .route(
            "/c/{customer}/m365/{org}",
            web::get().to(m365::organization_page),
        )
        .route(
            "/c/{customer}/m365/{org}/sync",
            web::get().to(m365::sync_status_fragment),
        )
        .route(
            "/c/{customer}/m365/{org}/refresh",
            web::post().to(m365::refresh),
        )
        .route(
            "/c/{customer}/storage/check",
            web::post().to(storage::check_now),
        )
        .route(
            "/c/{customer}/storage/search",
            web::get().to(search::search_page),
        )
        .route("/c/{customer}/plans/new", web::get().to(plans::new_plan))
        .route("/c/{customer}/plans", web::post().to(plans::create))
        .route(
            "/c/{customer}/plans/{plan}",
            web::get().to(plans::plan_page),
        )
        .route("/c/{customer}/plans/{plan}", web::post().to(plans::update))
        .route(
            "/c/{customer}/plans/{plan}/enable",
            web::post().to(plans::enable),
        )
        .route(
            "/c/{customer}/plans/{plan}/disable",
            web::post().to(plans::disable),
        )
        .route(
            "/c/{customer}/plans/{plan}/run",
            web::post().to(plans::run_now),
        )
        .route(
            "/c/{customer}/plans/{plan}/delete",
            web::get().to(plans::delete_page),
        )
        .route(
            "/c/{customer}/plans/{plan}/delete",
            web::post().to(plans::delete),
        )
        .route(
            "/c/{customer}/m365/{org}/protect",
            web::post().to(plans::protect),
        )
        .route(
            "/c/{customer}/activities/{job}",
            web::get().to(activities::job_page),
        )
        .route(
            "/c/{customer}/activities/{job}/events",
            web::get().to(activities::progress_events),
        )
        .route("/c/{customer}/alerts/badge", web::get().to(alerts::badge))
        .route(
            "/c/{customer}/alerts/{alert}/acknowledge",
            web::post().to(alerts::acknowledge),
        )
        .route(
            "/c/{customer}/backups/repository-password",
            web::get().to(backups::password_page),
        )
        .route(
            "/c/{customer}/backups/repository-password",
            web::post().to(backups::reveal_password),
        )
        .route(
            "/c/{customer}/backups/{archive}",
            web::get().to(backups::archive_page),
        )
        .route(
            "/c/{customer}/backups/{archive}/unlock",
            web::post().to(unlock::unlock),
        )
        .route(
            "/c/{customer}/backups/{archive}/points/{point}",
            web::get().to(backups::point_page),
        )
        .route(
            "/c/{customer}/backups/{archive}/points/{point}/preview",
            web::get().to(backups::preview_page),
        )
        .route(
            "/c/{customer}/backups/{archive}/points/{point}/body",
            web::get().to(backups::body),
        )
        .route(
            "/c/{customer}/backups/{archive}/points/{point}/download",
            web::get().to(backups::download_item),
        )
        .route(
            "/c/{customer}/backups/{archive}/points/{point}/zip",
            web::get().to(backups::download_zip),
        )
        .route(
            "/c/{customer}/backups/{archive}/points/{point}/mbox",
            web::get().to(backups::download_mbox),
        )
        .route(
            "/m365/consent/callback",
            web::get().to(m365::consent_callback),
        )
        .route(
            "/c/{customer}/backups/{archive}/points/{point}/restore",
            web::get().to(restore::restore_form),
        )
        .route(
            "/c/{customer}/backups/{archive}/points/{point}/restore",
            web::post().to(restore::start_restore),
        )
        .route("/c/{customer}/{section}", web::get().to(console::section))
        .default_service(web::to(not_found));
}

/// `/healthz` for load balancers and monitors (GET or HEAD, no session): 200 while the database
/// answers, 503 naming what is down otherwise. The cause goes to the log, not to the caller.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    match crate::db::check_health(&state.db, &state.settings.database_url()).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": "ok"})),
        Err(down) => {
            tracing::warn!("health check: {down}");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "database": down.summary()}))
        }
    }
}

async fn not_found() -> Result<HttpResponse, WebError> {
    Err(WebError::NotFound)
}

/// The session middleware: a cookie holding only a random key, state in our database.
pub fn session_middleware(state: &AppState) -> SessionMiddleware<DatabaseSessionStore> {
    let minutes = state.settings.session_idle_minutes.max(5) as i64;
    SessionMiddleware::builder(
        DatabaseSessionStore::new(state.db.clone(), state.clock.clone()),
        session_cookie_key(&state.master_key),
    )
    .cookie_name("skyvault_session".into())
    .cookie_http_only(true)
    .cookie_same_site(SameSite::Lax)
    .cookie_secure(state.settings.secure_cookies())
    .cookie_content_security(CookieContentSecurity::Signed)
    .session_lifecycle(SessionLifecycle::BrowserSession(
        BrowserSession::default()
            .state_ttl(actix_web::cookie::time::Duration::minutes(minutes))
            .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
    ))
    .build()
}

/// The cookie-signing key is derived from the master key, so every node of a cluster agrees
/// on it and it survives restarts without being stored anywhere.
fn session_cookie_key(master: &MasterKey) -> Key {
    Key::derive_from(&master.derive_subkey("skyvault session cookie signing"))
}

/// The address a request came from, as the audit log and sign-in throttling record it: the
/// peer's, since a forwarded-for header is whatever the client wrote.
pub fn client_address(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|addr| addr.ip().to_string())
}

/// A signed-in user, loaded from the session for every handler that asks for it.
pub struct SignedIn {
    pub access: Access,
    pub csrf: String,
    pub partner_name: Option<String>,
    pub session: Session,
    /// The demo tenant's control page, when this is demo mode and the user a partner
    /// administrator (it changes the tenant, so customers' users are not shown it).
    pub demo_page: Option<String>,
}

impl FromRequest for SignedIn {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let session = req.get_session();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let address = client_address(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| WebError::internal("application state missing"))?;
            let user_id = session
                .get::<String>(USER_KEY)
                .ok()
                .flatten()
                .and_then(|id| id.parse::<UserId>().ok())
                .ok_or(WebError::SignInRequired)?;
            let Some(mut access) = Access::load(&state.db, user_id).await? else {
                session.purge();
                return Err(WebError::SignInRequired);
            };
            access.address = address;
            let partner_name = match access.home {
                Home::Partner(id) => partner_entity::Entity::find_by_id(id.0)
                    .one(&state.db)
                    .await?
                    .map(|p| p.name),
                Home::Customer(_) => None,
            };
            let csrf = csrf::ensure_token(&session);
            let demo_page = state
                .demo_page
                .clone()
                .filter(|_| access.role == Role::PartnerAdmin);
            Ok(SignedIn {
                access,
                csrf,
                partner_name,
                session,
                demo_page,
            })
        })
    }
}

impl SignedIn {
    /// The scoping function applied to a customer id taken from a URL.
    pub async fn customer(&self, state: &AppState, id: &str) -> Result<CustomerScope, WebError> {
        let id: CustomerId = id.parse().map_err(|_| WebError::NotFound)?;
        Ok(self.access.customer(&state.db, id).await?)
    }
}

/// The customer a console link points at.
#[derive(Debug, Clone)]
pub struct CustomerRef {
    pub id: String,
    pub name: String,
}

/// Top bar and navigation: the same on every console page.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub user_name: String,
    pub user_email: String,
    pub role_label: &'static str,
    pub partner_name: Option<String>,
    pub customer: Option<CustomerRef>,
    pub csrf: String,
    pub active: &'static str,
    /// A sub-partner the partner is working inside (its customers, its details).
    pub sub_partner: Option<partner::PartnerRef>,
    /// The demo tenant's control page, for partner administrators in demo mode.
    pub demo_page: Option<String>,
}

impl Chrome {
    pub fn new(
        signed_in: &SignedIn,
        customer: Option<&CustomerScope>,
        active: &'static str,
    ) -> Self {
        Chrome {
            user_name: signed_in.access.display_name.clone(),
            user_email: signed_in.access.email.clone(),
            role_label: signed_in.access.role.label(),
            partner_name: signed_in.partner_name.clone(),
            customer: customer.map(|scope| CustomerRef {
                id: scope.id().to_string(),
                name: scope.customer().name.clone(),
            }),
            csrf: signed_in.csrf.clone(),
            active,
            sub_partner: None,
            demo_page: signed_in.demo_page.clone(),
        }
    }

    pub fn is_partner(&self) -> bool {
        self.partner_name.is_some()
    }

    pub fn sections(&self) -> &'static [(&'static str, &'static str)] {
        console::SECTIONS
    }

    pub fn is(&self, section: &str) -> bool {
        self.active == section
    }

    /// My account, keeping the customer a partner was managing (a customer's own users are
    /// always in their customer's console).
    pub fn account_url(&self) -> String {
        match &self.customer {
            Some(customer) if self.is_partner() => {
                format!("/account/password?customer={}", customer.id)
            }
            _ => "/account/password".into(),
        }
    }
}

pub fn can_manage_tenancy(access: &Access) -> bool {
    access.role == Role::PartnerAdmin
}

/// Renders a page with a status.
pub fn render(
    status: actix_web::http::StatusCode,
    page: &impl Template,
) -> Result<HttpResponse, WebError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

pub fn ok(page: &impl Template) -> Result<HttpResponse, WebError> {
    render(actix_web::http::StatusCode::OK, page)
}

/// Post/redirect/get: after a successful form post the browser loads the result page.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .finish()
}
