//! The audit log pages: a customer's (its Audit log section, which read-only users can read
//! too) and a partner's (`/audit`: its own, its sub-partners' and all their customers' events).
//! Who, what, when and from where, filtered by actor and action, sorted and paged from the URL.
//! Reading goes through `accounts::audit`, which scopes every query; this module only parses
//! and renders.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::forms;
use super::sorting::{self, Column, TableSort};
use super::{AppState, Chrome, SignedIn, WebError, ok};
use crate::accounts::access::CustomerScope;
use crate::accounts::audit::{self, AuditOrder, AuditPage, AuditQuery};

/// The log's filters, sort and page as the URL carries them.
#[derive(Deserialize, Default)]
pub struct AuditParams {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    page: u64,
}

impl AuditParams {
    /// From a query string: a malformed page number is a 400 with a message.
    pub fn parse(query: &str) -> Result<Self, WebError> {
        web::Query::<Self>::from_query(query)
            .map(web::Query::into_inner)
            .map_err(|_| WebError::BadRequest("A filter or page number is malformed.".into()))
    }
}

const AUDIT_COLUMNS: &[Column] = &[
    sorting::column_desc("when"),
    sorting::column("who"),
    sorting::column("what"),
];

pub struct EventRow {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    /// The customer the event belongs to, on a partner's log.
    pub customer: Option<String>,
    pub address: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditLogPage {
    chrome: Chrome,
    path: String,
    rows: Vec<EventRow>,
    actors: Vec<String>,
    actions: &'static [(&'static str, &'static str)],
    actor: String,
    action: String,
    sort: TableSort,
    /// Events in the log before filtering, to tell "none yet" from "none match".
    any: bool,
    total: u64,
    page: u64,
    pages: u64,
    partner_log: bool,
}

/// Turns the URL's parameters into a query: an unknown action or sort is ignored, an actor is
/// cleaned like search text (control characters never reach the database).
fn query_of(path: &str, params: &AuditParams) -> Result<(AuditQuery, TableSort), WebError> {
    let actor = forms::search_text(&params.actor).map_err(WebError::BadRequest)?;
    let action = audit::ACTIONS
        .iter()
        .find(|(code, _)| *code == params.action)
        .map_or("", |(code, _)| code);
    let sort = TableSort::new(path, AUDIT_COLUMNS, &params.sort, &params.dir)
        .keep("actor", &actor)
        .keep("action", action);
    let order = match sort.column {
        "who" => AuditOrder::Who,
        "what" => AuditOrder::What,
        _ => AuditOrder::When,
    };
    let query = AuditQuery {
        actor,
        action: action.to_owned(),
        order,
        descending: sort.descending,
        page: params.page,
    };
    Ok((query, sort))
}

fn row(event: crate::accounts::entities::audit_event::Model, customer: Option<String>) -> EventRow {
    EventRow {
        when: super::m365::when(Some(event.at)),
        action: audit::action_label(&event.action).to_owned(),
        actor: event.actor_email,
        subject: event.subject,
        detail: event.detail,
        customer,
        address: event.address.unwrap_or_default(),
    }
}

fn render_log(
    chrome: Chrome,
    path: String,
    query: AuditQuery,
    sort: TableSort,
    log: AuditPage,
    rows: Vec<EventRow>,
    partner_log: bool,
) -> Result<HttpResponse, WebError> {
    ok(&AuditLogPage {
        chrome,
        sort,
        path,
        rows,
        any: !log.actors.is_empty(),
        actors: log.actors,
        actions: audit::ACTIONS,
        actor: query.actor,
        action: query.action,
        total: log.total,
        page: log.page,
        pages: log.pages,
        partner_log,
    })
}

/// The customer's Audit log section.
pub async fn customer_audit(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    request: &HttpRequest,
) -> Result<HttpResponse, WebError> {
    let path = format!("/c/{}/audit", scope.id());
    let (query, sort) = query_of(&path, &AuditParams::parse(request.query_string())?)?;
    let log = audit::customer_log(&state.db, scope, &query).await?;
    let rows = log.events.iter().cloned().map(|e| row(e, None)).collect();
    render_log(
        Chrome::new(signed_in, Some(scope), "audit"),
        path,
        query,
        sort,
        log,
        rows,
        false,
    )
}

/// `/audit`: the partner's log, its customers' events named by customer.
pub async fn partner_audit_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
) -> Result<HttpResponse, WebError> {
    super::partner::partner_admin(&signed_in)?;
    let (query, sort) = query_of("/audit", &AuditParams::parse(request.query_string())?)?;
    let log = audit::partner_log(&state.db, &signed_in.access, &query).await?;
    let names: std::collections::HashMap<_, _> = signed_in
        .access
        .customers(&state.db)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let rows = log
        .events
        .iter()
        .cloned()
        .map(|e| {
            let customer = e.customer_id.and_then(|id| names.get(&id).cloned());
            row(e, customer)
        })
        .collect();
    render_log(
        Chrome::new(&signed_in, None, "audit"),
        "/audit".into(),
        query,
        sort,
        log,
        rows,
        true,
    )
}
