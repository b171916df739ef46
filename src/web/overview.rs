//! The overview pages: the customer's Overview (the first page of its console), the partner's
//! Alerts across its customers, the monthly usage report (page and CSV, for the partner and per
//! customer), and the throttling card shown on an organization's page and a job's page.
//! Handlers scope, call one report, render.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use bytesize::ByteSize;
use serde::Deserialize;
use uuid::Uuid;

use super::activities::duration_words;
use super::partner::partner_admin;
use super::{AppState, Chrome, SignedIn, WebError, ok};
use crate::accounts::access::CustomerScope;
use crate::ids::OrgId;
use crate::jobs::alerts::AlertCause;
use crate::jobs::alerts::entities::alert;
use crate::jobs::throttling::{self, Throttling};
use crate::reports::coverage::WorkloadCoverage;
use crate::reports::overview::{CustomerOverview, customer_overview};
use crate::reports::runs::last_night;
use crate::reports::usage::{self, Month, UsageRow};
use crate::reports::{ReportError, alerts as report_alerts};

impl From<ReportError> for WebError {
    fn from(err: ReportError) -> Self {
        WebError::internal(err)
    }
}

fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "+1.2 GiB", "−300 KiB", "no change".
fn growth_words(delta: i64) -> String {
    match delta {
        0 => "no change".into(),
        d if d > 0 => format!("+{}", ByteSize::b(d as u64)),
        d => format!("−{}", ByteSize::b(d.unsigned_abs())),
    }
}

// ---- the customer overview -------------------------------------------------------------------

pub struct AlertRow {
    pub title: String,
    pub subject: String,
    pub message: String,
    pub since: String,
    pub link: String,
    /// The customer's name, on the partner's page.
    pub customer: String,
}

impl AlertRow {
    fn of(row: &alert::Model, customer: String) -> Self {
        AlertRow {
            title: AlertCause::parse(&row.cause)
                .map_or("Alert", AlertCause::title)
                .to_string(),
            subject: row.subject.clone(),
            message: row.message.clone(),
            since: when(row.first_seen),
            link: row
                .link
                .clone()
                .unwrap_or_else(|| format!("/c/{}/alerts", row.customer_id)),
            customer,
        }
    }
}

pub struct ProblemRow {
    pub name: String,
    pub workload: &'static str,
    pub reason: String,
    pub when: String,
    pub history_url: String,
    pub job_url: String,
}

pub struct NextRunRow {
    pub name: String,
    pub at: String,
    pub url: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    customer_id: String,
    can_change: bool,
    overview: CustomerOverview,
    workloads: Vec<WorkloadCoverage>,
    storage_now: String,
    storage_week: String,
    storage_month: String,
    problems: Vec<ProblemRow>,
    alerts: Vec<AlertRow>,
    next_runs: Vec<NextRunRow>,
    activities_url: String,
    since: String,
}

impl OverviewPage {
    /// Workloads worth a row: those with something to protect.
    fn shown_workloads(&self) -> Vec<&WorkloadCoverage> {
        self.workloads.iter().filter(|w| w.eligible() > 0).collect()
    }
}

/// `/c/{customer}/overview`.
pub async fn overview_page(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
) -> Result<HttpResponse, WebError> {
    let now = state.clock.now();
    let overview = customer_overview(&state.db, scope, now).await?;
    let c = scope.id();
    let page = OverviewPage {
        chrome: Chrome::new(signed_in, Some(scope), "overview"),
        customer_id: c.to_string(),
        can_change: scope.can_change(),
        workloads: overview.workloads.clone(),
        storage_now: ByteSize::b(overview.storage.now).to_string(),
        storage_week: growth_words(overview.storage.last_week()),
        storage_month: growth_words(overview.storage.last_month()),
        problems: overview
            .problems
            .iter()
            .map(|p| ProblemRow {
                name: p.name.clone(),
                workload: p.workload,
                reason: p.reason.clone(),
                when: when(p.failed_at),
                history_url: format!("/c/{c}/activities?item={}", p.item),
                job_url: format!("/c/{c}/activities/{}", p.job),
            })
            .collect(),
        alerts: overview
            .alerts
            .iter()
            .map(|a| AlertRow::of(a, String::new()))
            .collect(),
        next_runs: overview
            .next_runs
            .iter()
            .map(|r| NextRunRow {
                name: r.name.clone(),
                at: when(r.at),
                url: format!("/c/{c}/plans/{}", r.plan),
            })
            .collect(),
        activities_url: format!("/c/{c}/activities?kind=plan_run"),
        since: when(last_night(now)),
        overview,
    };
    ok(&page)
}

// ---- the partner's alerts ------------------------------------------------------------------

/// The most alerts the partner's page lists.
const PARTNER_ALERTS_SHOWN: u64 = 200;

#[derive(Template)]
#[template(path = "partner_alerts.html")]
struct PartnerAlertsPage {
    chrome: Chrome,
    alerts: Vec<AlertRow>,
    total: u64,
}

/// `/alerts`: the open alerts of every customer in the partner's subtree.
pub async fn partner_alerts_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    let customers = signed_in.access.customers(&state.db).await?;
    let ids: Vec<Uuid> = customers.iter().map(|c| c.id).collect();
    let names: std::collections::HashMap<Uuid, String> =
        customers.into_iter().map(|c| (c.id, c.name)).collect();
    let (open, total) = report_alerts::open_alerts(&state.db, &ids, PARTNER_ALERTS_SHOWN).await?;
    ok(&PartnerAlertsPage {
        chrome: Chrome::new(&signed_in, None, "partner_alerts"),
        alerts: open
            .iter()
            .map(|a| {
                let name = names.get(&a.customer_id).cloned().unwrap_or_default();
                AlertRow::of(a, name)
            })
            .collect(),
        total,
    })
}

// ---- usage ---------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct UsageQuery {
    #[serde(default)]
    month: String,
}

impl UsageQuery {
    /// The month asked for; this month when none; a clear 400 for anything else.
    fn month(&self, state: &AppState) -> Result<Month, WebError> {
        if self.month.trim().is_empty() {
            return Ok(Month::of(state.clock.now()));
        }
        Month::parse(&self.month).ok_or_else(|| {
            WebError::BadRequest("The month must be written as YYYY-MM, e.g. 2026-11.".into())
        })
    }
}

pub struct UsageLine {
    pub row: UsageRow,
    pub storage: String,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    chrome: Chrome,
    month: String,
    title: String,
    previous: String,
    next: Option<String>,
    rows: Vec<UsageLine>,
    totals: UsageLine,
}

async fn partner_usage(
    state: &AppState,
    signed_in: &SignedIn,
    month: Month,
) -> Result<Vec<UsageRow>, WebError> {
    partner_admin(signed_in)?;
    let customers: Vec<(Uuid, String)> = signed_in
        .access
        .customers(&state.db)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    Ok(usage::monthly_usage(&state.db, &customers, month, state.clock.now()).await?)
}

/// `/usage?month=YYYY-MM`: the partner's customers' usage in a month.
pub async fn usage_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    let month = query.month(&state)?;
    let rows = partner_usage(&state, &signed_in, month).await?;
    let mut total = UsageRow::default();
    for row in &rows {
        total.protected_users += row.protected_users;
        total.mailboxes += row.mailboxes;
        total.archive_mailboxes += row.archive_mailboxes;
        total.onedrives += row.onedrives;
        total.group_mailboxes += row.group_mailboxes;
        total.sites += row.sites;
        total.teams += row.teams;
        total.stored_bytes += row.stored_bytes;
    }
    let line = |row: UsageRow| UsageLine {
        storage: ByteSize::b(row.stored_bytes).to_string(),
        row,
    };
    let this_month = Month::of(state.clock.now());
    ok(&UsagePage {
        chrome: Chrome::new(&signed_in, None, "usage"),
        month: month.to_string(),
        title: month.title(),
        previous: month.previous().to_string(),
        next: (month < this_month).then(|| month.next().to_string()),
        rows: rows.into_iter().map(line).collect(),
        totals: line(total),
    })
}

fn csv_response(filename: &str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// `/usage/csv?month=YYYY-MM`: the same as CSV.
pub async fn usage_csv(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    let month = query.month(&state)?;
    let rows = partner_usage(&state, &signed_in, month).await?;
    Ok(csv_response(
        &format!("skyvault-usage-{month}.csv"),
        usage::to_csv_months(&[(month, rows)]),
    ))
}

/// Months in a customer's own usage file.
const CUSTOMER_USAGE_MONTHS: usize = 12;

/// `/c/{customer}/usage/csv`: one customer's usage, month by month over the last twelve.
pub async fn customer_usage_csv(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let scope = signed_in.customer(&state, &id).await?;
    let now = state.clock.now();
    let customer = [(scope.id().as_uuid(), scope.customer().name.clone())];
    let mut month = Month::of(now);
    let mut months = Vec::new();
    for _ in 0..CUSTOMER_USAGE_MONTHS {
        months.push((
            month,
            usage::monthly_usage(&state.db, &customer, month, now).await?,
        ));
        month = month.previous();
    }
    months.reverse();
    Ok(csv_response(
        &format!("skyvault-usage-{}.csv", scope.id()),
        usage::to_csv_months(&months),
    ))
}

// ---- throttling ----------------------------------------------------------------------------

pub struct ThrottledRow {
    pub label: String,
    pub duration: String,
    pub events: u64,
    pub last: String,
}

/// The throttling card of an organization's page or a job's page.
#[derive(Template)]
#[template(path = "throttling.html")]
pub struct ThrottlingCard {
    heading: &'static str,
    /// What the card covers, in words.
    scope: String,
    total: String,
    events: u64,
    jobs: u64,
    /// An organization's card counts jobs; a job's does not.
    per_job: bool,
    rows: Vec<ThrottledRow>,
}

impl ThrottlingCard {
    fn of(throttling: Throttling, heading: &'static str, scope: String, per_job: bool) -> Self {
        ThrottlingCard {
            heading,
            scope,
            total: duration_words(throttling.total()),
            events: throttling.events(),
            jobs: throttling.jobs,
            per_job,
            rows: throttling
                .resources
                .into_iter()
                .map(|r| ThrottledRow {
                    label: r.label,
                    duration: duration_words(r.throttled),
                    events: r.events,
                    last: when(r.last_at),
                })
                .collect(),
        }
    }
}

/// Microsoft's throttling of an organization's backups in the last 24 hours.
pub async fn org_throttling_card(
    state: &AppState,
    scope: &CustomerScope,
    org: OrgId,
) -> Result<ThrottlingCard, WebError> {
    let since = last_night(state.clock.now());
    let throttling = throttling::org_throttling(&state.db, scope, org, since).await?;
    Ok(ThrottlingCard::of(
        throttling,
        "Throttling by Microsoft, last 24 hours",
        format!("Backups that ran since {}", when(since)),
        true,
    ))
}

/// Microsoft's throttling of one job.
pub async fn job_throttling_card(
    state: &AppState,
    scope: &CustomerScope,
    job: Uuid,
) -> Result<ThrottlingCard, WebError> {
    let throttling = throttling::job_throttling(&state.db, scope, job).await?;
    Ok(ThrottlingCard::of(
        throttling,
        "Throttling by Microsoft",
        "This run".into(),
        false,
    ))
}
