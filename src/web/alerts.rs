//! Alerts in the console: the customer's open alerts (with what to do, acknowledge for those who
//! may change the customer) and the recently resolved ones, and the navigation's count badge.

use actix_web::{HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::m365::when;
use super::{AppState, Chrome, SignedIn, WebError, ok, see_other};
use crate::accounts::access::CustomerScope;
use crate::jobs::alerts::{self, AlertCause, AlertError, entities::alert};

impl From<AlertError> for WebError {
    fn from(err: AlertError) -> Self {
        match err {
            AlertError::NotFound => WebError::NotFound,
            AlertError::Access(err) => err.into(),
            AlertError::Database(err) => WebError::internal(err),
        }
    }
}

/// Resolved alerts the page shows below the open ones.
const RESOLVED_SHOWN: u64 = 20;

pub struct AlertRow {
    pub title: &'static str,
    pub subject: String,
    pub message: String,
    pub action: &'static str,
    pub link: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub occurrences: i32,
    pub acknowledged: Option<String>,
    pub resolved: Option<String>,
    pub acknowledge_url: String,
    pub mail: String,
}

impl AlertRow {
    fn of(scope: &CustomerScope, row: alert::Model) -> Self {
        let cause = AlertCause::parse(&row.cause);
        AlertRow {
            title: cause.map_or("Alert", AlertCause::title),
            action: cause.map_or("", AlertCause::action),
            subject: row.subject,
            message: row.message,
            link: row.link,
            first_seen: when(Some(row.first_seen)),
            last_seen: when(Some(row.last_seen)),
            occurrences: row.occurrences,
            acknowledged: row.acknowledged_at.map(|at| {
                format!(
                    "{} at {}",
                    row.acknowledged_by.unwrap_or_default(),
                    when(Some(at))
                )
            }),
            resolved: row.resolved_at.map(|at| when(Some(at))),
            acknowledge_url: format!("/c/{}/alerts/{}/acknowledge", scope.id(), row.id),
            mail: match (row.mail_state.as_str(), row.mail_error) {
                ("sent", _) => "E-mailed".into(),
                ("queued", Some(error)) => format!(
                    "E-mail not sent yet (attempt {}): {error} Skyvault tries again{}.",
                    row.mail_attempts,
                    row.mail_next_at
                        .map(|at| format!(" at {}", when(Some(at))))
                        .unwrap_or_default()
                ),
                ("queued", None) => "E-mail waiting to be sent".into(),
                ("failed", error) => format!(
                    "E-mail could not be sent after {} attempts: {} The alert stays here.",
                    row.mail_attempts,
                    error.unwrap_or_default()
                ),
                _ => String::new(),
            },
        }
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    open: Vec<AlertRow>,
    resolved: Vec<AlertRow>,
    can_change: bool,
    notice: bool,
}

pub async fn alerts_page(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    notice: &str,
) -> Result<HttpResponse, WebError> {
    let (open, resolved) = alerts::alerts_of(&state.db, scope, RESOLVED_SHOWN).await?;
    ok(&AlertsPage {
        chrome: Chrome::new(signed_in, Some(scope), "alerts"),
        open: open.into_iter().map(|a| AlertRow::of(scope, a)).collect(),
        resolved: resolved
            .into_iter()
            .map(|a| AlertRow::of(scope, a))
            .collect(),
        can_change: scope.can_change(),
        notice: notice == "acknowledged",
    })
}

/// `POST /c/{customer}/alerts/{alert}/acknowledge`: administrators only; read-only users get 403.
pub async fn acknowledge(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (customer, id) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let id: Uuid = id.parse().map_err(|_| WebError::NotFound)?;
    alerts::acknowledge(
        &state.db,
        state.clock.as_ref(),
        &scope,
        id,
        &signed_in.access.email,
    )
    .await?;
    Ok(see_other(&format!(
        "/c/{}/alerts?notice=acknowledged",
        scope.id()
    )))
}

#[derive(Template)]
#[template(
    source = "{% if count > 0 %}<span class=\"nav-badge\" aria-label=\"{{ count }} open alerts\">{{ count }}</span>{% endif %}",
    ext = "html"
)]
struct Badge {
    count: u64,
}

/// `GET /c/{customer}/alerts/badge`: the navigation's count of open, unacknowledged alerts, as
/// a fragment the navigation loads (so no page waits on it).
pub async fn badge(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    customer: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let scope = signed_in.customer(&state, &customer).await?;
    let count = alerts::unacknowledged_count(&state.db, &scope).await?;
    ok(&Badge { count })
}
