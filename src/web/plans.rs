//! Protection plans in the console: the list, the plan form (create and edit, with a message
//! beside each field and the later of two saves told), enable/disable, Run now, delete (keeping
//! the backups unless asked otherwise), and Protect from the Microsoft 365 page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::m365::when;
use super::sorting::{self, Column, TableSort};
use super::{AppState, Chrome, SignedIn, WebError, flash, forms, ok, render, see_other};
use crate::accounts::access::CustomerScope;
use crate::accounts::audit;
use crate::ids::{OrgId, PlanId};
use crate::inventory::{ItemKind, organizations};
use crate::jobs::backup_check::workload_label;
use crate::jobs::plan_run;
use crate::jobs::queue;
use crate::plans::{self, FieldError, Plan, PlanDraft, PlanError, all_label};
use crate::storage::RepositoryRef;
use crate::storage::catalog::Workload;

impl From<PlanError> for WebError {
    fn from(err: PlanError) -> Self {
        match err {
            PlanError::NotFound => WebError::NotFound,
            PlanError::Forbidden => WebError::Forbidden,
            PlanError::Invalid(_) | PlanError::Stale => WebError::BadRequest(err.to_string()),
            PlanError::Database(_) | PlanError::Storage(_) => WebError::internal(err),
        }
    }
}

/// A plans-page message, by stable code (never reflected text).
fn plan_message(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "created" => (
            "success",
            "The plan was created. Skyvault chose its daily start time; Run now backs it up at once.",
        ),
        "saved" => ("success", "The plan was saved."),
        "deleted" => (
            "success",
            "The plan was deleted. Its backups stay in Backup storage.",
        ),
        "deleted_backups" => ("success", "The plan and its backups were deleted."),
        "run_queued" => (
            "success",
            "The plan's backup was started. Its progress and outcome are in Activities.",
        ),
        "run_pending" => (
            "info",
            "This plan's backup is already queued or running; it is not started twice.",
        ),
        "enabled" => (
            "success",
            "The plan was enabled; it runs at its daily time.",
        ),
        "disabled" => (
            "info",
            "The plan was disabled: it does not run until enabled again. Its backups are kept.",
        ),
        "protected" => ("success", "The items were added to the plan."),
        _ => return None,
    })
}

fn plan_id(text: &str) -> Result<PlanId, WebError> {
    text.parse().map_err(|_| WebError::NotFound)
}

fn plans_url(scope: &CustomerScope) -> String {
    format!("/c/{}/plans", scope.id())
}

pub struct PlanRow {
    pub url: String,
    pub name: String,
    pub org: String,
    pub items: String,
    pub workloads: String,
    pub schedule: String,
    pub retention: String,
    pub last_run: String,
    pub enabled: bool,
    pub pending: bool,
    /// The plan has a customer encryption password.
    pub encrypted: bool,
    /// What the table sorts by (the strings above are for reading).
    start_minute: i32,
    last_run_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl PlanRow {
    /// Running first, then enabled, then disabled.
    fn status_rank(&self) -> u8 {
        match (self.pending, self.enabled) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        }
    }
}

const PLAN_COLUMNS: &[Column] = &[
    sorting::column("name"),
    sorting::column("schedule"),
    sorting::column_desc("last"),
    sorting::column("status"),
];

#[derive(Template)]
#[template(path = "plans.html")]
struct PlansPage {
    chrome: Chrome,
    rows: Vec<PlanRow>,
    sort: TableSort,
    new_url: String,
    has_orgs: bool,
    can_change: bool,
    notice: Option<(&'static str, &'static str)>,
}

/// The Protection plans section.
pub async fn plans_page(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    notice: &str,
    query: &str,
) -> Result<HttpResponse, WebError> {
    let orgs = organizations::organizations(&state.db, scope).await?;
    let mut rows = Vec::new();
    for plan in plans::list_plans(&state.db, scope).await? {
        let pending = queue::pending(&state.db, &format!("plan:{}", plan.id))
            .await?
            .is_some();
        rows.push(PlanRow {
            url: format!("{}/{}", plans_url(scope), plan.id),
            org: orgs
                .iter()
                .find(|o| o.id == plan.org.0)
                .map(|o| o.display_name.clone())
                .unwrap_or_default(),
            items: plan.items_sentence(),
            workloads: plan.workloads_sentence(),
            schedule: plan.schedule_sentence(),
            retention: plan.retention_sentence(),
            last_run: when(plan.last_run_at),
            enabled: plan.enabled,
            pending,
            encrypted: plan.encrypted_repository.is_some(),
            start_minute: plan.start_minute,
            last_run_at: plan.last_run_at,
            name: plan.name,
        });
    }
    let sort = TableSort::from_query(plans_url(scope), PLAN_COLUMNS, query);
    sort.apply(&mut rows, |column, a, b| match column {
        "schedule" => a.start_minute.cmp(&b.start_minute),
        "last" => a.last_run_at.cmp(&b.last_run_at),
        "status" => a.status_rank().cmp(&b.status_rank()),
        _ => sorting::text(&a.name, &b.name),
    });
    ok(&PlansPage {
        chrome: Chrome::new(signed_in, Some(scope), "plans"),
        rows,
        sort,
        new_url: format!("{}/new", plans_url(scope)),
        has_orgs: !orgs.is_empty(),
        can_change: scope.can_change(),
        notice: plan_message(notice),
    })
}

pub struct ItemChoice {
    pub id: String,
    pub name: String,
    pub address: String,
    pub kind: &'static str,
    pub inactive: bool,
    /// Plans already protecting it.
    pub plans: String,
}

/// What the plan's own page shows above its form.
pub struct PlanHeader {
    pub schedule: String,
    pub enabled: bool,
    pub next_run: String,
    pub last_run: String,
    pub run_url: String,
    pub toggle_url: String,
    pub delete_url: String,
    pub activities_url: String,
    pub pending: bool,
    /// The plan has a customer encryption password (its own repository).
    pub encrypted: bool,
    /// Where that repository lives, for `restic -r`: partners only, as on Backup storage (it
    /// names the server's folders).
    pub encrypted_location: Option<String>,
}

#[derive(Template)]
#[template(path = "plan_form.html")]
struct PlanFormPage {
    chrome: Chrome,
    title: String,
    action: String,
    cancel: String,
    orgs: Vec<(String, String)>,
    draft: PlanDraft,
    errors: Vec<FieldError>,
    summary: Option<String>,
    items: Vec<ItemChoice>,
    header: Option<PlanHeader>,
    can_change: bool,
    notice: Option<(&'static str, &'static str)>,
    min_password: usize,
}

impl PlanFormPage {
    fn errors_of(&self, field: &str) -> Vec<&str> {
        self.errors
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect()
    }

    fn workload_choices(&self) -> Vec<(&'static str, &'static str, bool)> {
        Workload::ALL
            .into_iter()
            .map(|w| {
                (
                    w.as_str(),
                    workload_label(w),
                    self.draft.workloads.iter().any(|d| d == w.as_str()),
                )
            })
            .collect()
    }

    fn kind_choices(&self) -> Vec<(&'static str, &'static str, bool)> {
        ItemKind::ALL
            .into_iter()
            .map(|k| {
                (
                    k.as_str(),
                    all_label(k),
                    self.draft.all_kinds.iter().any(|d| d == k.as_str()),
                )
            })
            .collect()
    }

    fn chosen(&self, id: &str) -> bool {
        self.draft.items.iter().any(|i| i == id)
    }

    fn keeps_points(&self) -> bool {
        self.draft.retention_kind != "days"
    }

    fn error_code(&self) -> String {
        self.errors
            .first()
            .map_or("invalid_form".into(), |e| format!("invalid_{}", e.field))
    }
}

fn kind_label(kind: &str) -> &'static str {
    match ItemKind::parse(kind) {
        Some(ItemKind::User) => "User",
        Some(ItemKind::Group) => "Group",
        Some(ItemKind::Site) => "Site",
        Some(ItemKind::Team) => "Team",
        None => "",
    }
}

/// The plan form for `draft`, listing the items of the draft's organization.
async fn form_page(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    plan: Option<&Plan>,
    mut draft: PlanDraft,
) -> Result<PlanFormPage, WebError> {
    let orgs = organizations::organizations(&state.db, scope).await?;
    let org = match draft.org.parse::<OrgId>() {
        Ok(id) if orgs.iter().any(|o| o.id == id.0) => Some(id),
        _ => orgs.first().map(|o| OrgId(o.id)),
    };
    let mut items = Vec::new();
    if let Some(org) = org {
        draft.org = org.to_string();
        let org = organizations::organization(&state.db, scope, org).await?;
        let coverage = plans::coverage(&state.db, &org).await?;
        let chosen: Vec<Uuid> = draft.items.iter().filter_map(|i| i.parse().ok()).collect();
        let own = plan.map(|p| p.name.as_str()).unwrap_or_default();
        for item in plans::choosable_items(&state.db, &org, &chosen).await? {
            let others = coverage.plans_of(&item);
            items.push(ItemChoice {
                id: item.id.to_string(),
                kind: kind_label(&item.kind),
                inactive: item.state != "active",
                plans: others
                    .into_iter()
                    .filter(|name| *name != own)
                    .collect::<Vec<_>>()
                    .join(", "),
                name: item.display_name,
                address: item.address,
            });
        }
    }
    let header = match plan {
        Some(plan) => {
            let base = format!("{}/{}", plans_url(scope), plan.id);
            Some(PlanHeader {
                schedule: plan.schedule_sentence(),
                enabled: plan.enabled,
                next_run: when(Some(plan.next_run_at)),
                last_run: when(plan.last_run_at),
                run_url: format!("{base}/run"),
                toggle_url: format!("{base}/{}", if plan.enabled { "disable" } else { "enable" }),
                delete_url: format!("{base}/delete"),
                activities_url: format!("/c/{}/activities?kind=plan_run", scope.id()),
                pending: queue::pending(&state.db, &format!("plan:{}", plan.id))
                    .await?
                    .is_some(),
                encrypted: plan.encrypted_repository.is_some(),
                encrypted_location: plan
                    .encrypted_repository
                    .filter(|_| signed_in.access.is_partner())
                    .map(|id| {
                        state.storage.location_of(RepositoryRef::Encrypted {
                            customer: scope.id(),
                            id,
                        })
                    }),
            })
        }
        None => None,
    };
    Ok(PlanFormPage {
        chrome: Chrome::new(signed_in, Some(scope), "plans"),
        title: plan.map_or("New protection plan".into(), |p| p.name.clone()),
        action: match plan {
            Some(plan) => format!("{}/{}", plans_url(scope), plan.id),
            None => plans_url(scope),
        },
        cancel: plans_url(scope),
        orgs: orgs
            .into_iter()
            .map(|o| (o.id.to_string(), o.display_name))
            .collect(),
        draft,
        errors: Vec::new(),
        summary: None,
        items,
        header,
        can_change: scope.can_change(),
        notice: None,
        min_password: plans::MIN_ENCRYPTION_PASSWORD_CHARS,
    })
}

/// A form's fields, repeated ones (workloads, items) included.
type Fields = web::Form<Vec<(String, String)>>;

fn draft_of(fields: &[(String, String)]) -> PlanDraft {
    let mut draft = PlanDraft::default();
    for (key, value) in fields {
        match key.as_str() {
            "name" => draft.name = value.clone(),
            "org" => draft.org = value.clone(),
            "workload" => draft.workloads.push(value.clone()),
            "all" => draft.all_kinds.push(value.clone()),
            "item" => draft.items.push(value.clone()),
            "retention_kind" => draft.retention_kind = value.clone(),
            "retention_value" => draft.retention_value = value.clone(),
            "version" => draft.version = value.clone(),
            "encrypt" => draft.encrypt = value.clone(),
            "encryption_password" => draft.encryption_password = value.clone(),
            "encryption_password_again" => draft.encryption_password_again = value.clone(),
            _ => {}
        }
    }
    draft
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// A new plan's defaults: mailboxes and OneDrive of all users, the last 30 recovery points.
fn new_draft() -> PlanDraft {
    PlanDraft {
        name: String::new(),
        org: String::new(),
        workloads: vec![
            Workload::Mailbox.as_str().into(),
            Workload::OneDrive.as_str().into(),
        ],
        all_kinds: Vec::new(),
        items: Vec::new(),
        retention_kind: "points".into(),
        retention_value: "30".into(),
        version: String::new(),
        encrypt: String::new(),
        encryption_password: String::new(),
        encryption_password_again: String::new(),
    }
}

/// The form for a new plan; `?org=` and `?item=` (repeated) preselect, as Protect does.
pub async fn new_plan(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    customer: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let scope = signed_in.customer(&state, &customer).await?;
    scope.require_change()?;
    let mut draft = new_draft();
    for (key, value) in url::form_urlencoded::parse(request.query_string().as_bytes()) {
        match key.as_ref() {
            "org" => draft.org = value.into_owned(),
            "item" => draft.items.push(value.into_owned()),
            _ => {}
        }
    }
    if draft.items.is_empty() {
        draft.all_kinds.push(ItemKind::User.as_str().into());
    }
    ok(&form_page(&state, &signed_in, &scope, None, draft).await?)
}

/// The form again with the plan's mistakes beside their fields (422), or the later of two
/// saves told that the plan changed (409).
async fn refused(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    plan: Option<&Plan>,
    draft: PlanDraft,
    err: PlanError,
) -> Result<HttpResponse, WebError> {
    match err {
        PlanError::Invalid(errors) => {
            let mut page = form_page(state, signed_in, scope, plan, draft).await?;
            page.errors = errors;
            let code = page.error_code();
            forms::unprocessable(&code, &page)
        }
        PlanError::Stale => {
            // Shows the plan as it is now, with the message; the refused values are not kept.
            let current = plan.map(Plan::draft).unwrap_or(draft);
            let mut page = form_page(state, signed_in, scope, plan, current).await?;
            page.summary = Some(PlanError::Stale.to_string());
            let mut response = render(StatusCode::CONFLICT, &page)?;
            response.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("x-skyvault-error"),
                actix_web::http::header::HeaderValue::from_static("plan_changed"),
            );
            Ok(response)
        }
        other => Err(other.into()),
    }
}

pub async fn create(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    customer: web::Path<String>,
    fields: Fields,
) -> Result<HttpResponse, WebError> {
    let scope = signed_in.customer(&state, &customer).await?;
    scope.require_change()?;
    let draft = draft_of(&fields);
    match plans::create_plan(
        &state.db,
        &state.storage,
        state.clock.as_ref(),
        &scope,
        &draft,
    )
    .await
    {
        Ok(plan) => Ok(see_other(&format!(
            "{}/{}?notice=created",
            plans_url(&scope),
            plan.id
        ))),
        Err(err) => refused(&state, &signed_in, &scope, None, draft, err).await,
    }
}

pub async fn plan_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    if let Some(redirect) = flash::lift_notice(&request, &signed_in.session) {
        return Ok(redirect);
    }
    let (customer, id) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let plan = plans::find_plan(&state.db, &scope, plan_id(&id)?).await?;
    let mut page = form_page(&state, &signed_in, &scope, Some(&plan), plan.draft()).await?;
    page.notice = plan_message(&flash::take_notice(&signed_in.session));
    ok(&page)
}

pub async fn update(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    fields: Fields,
) -> Result<HttpResponse, WebError> {
    let (customer, id) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let plan = plans::find_plan(&state.db, &scope, plan_id(&id)?).await?;
    scope.require_change()?;
    let draft = draft_of(&fields);
    match plans::update_plan(&state.db, &scope, plan.id, &draft).await {
        Ok(plan) => Ok(see_other(&format!(
            "{}/{}?notice=saved",
            plans_url(&scope),
            plan.id
        ))),
        Err(err) => {
            // A stale form shows the plan as it is now.
            let current = plans::find_plan(&state.db, &scope, plan.id).await?;
            refused(&state, &signed_in, &scope, Some(&current), draft, err).await
        }
    }
}

async fn switch(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    enabled: bool,
) -> Result<HttpResponse, WebError> {
    let (customer, id) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let plan = plans::set_enabled(
        &state.db,
        state.clock.as_ref(),
        &scope,
        plan_id(&id)?,
        enabled,
    )
    .await?;
    Ok(see_other(&format!(
        "{}/{}?notice={}",
        plans_url(&scope),
        plan.id,
        if enabled { "enabled" } else { "disabled" }
    )))
}

pub async fn enable(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    switch(state, signed_in, path, true).await
}

pub async fn disable(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    switch(state, signed_in, path, false).await
}

/// Run now: the plan's backup starts at once (or the pending one is pointed at).
pub async fn run_now(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (customer, id) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let plan = plans::find_plan(&state.db, &scope, plan_id(&id)?).await?;
    scope.require_change()?;
    let (job, queued) = plan_run::run_now(&state.db, state.clock.as_ref(), &plan).await?;
    if queued {
        // Activities names who started the run from this record.
        audit::record(
            &state.db,
            state.clock.as_ref(),
            audit::Actor::from(&signed_in.access),
            audit::Event {
                owner: audit::Owner::Customer(scope.id()),
                action: crate::jobs::activities::RUN_NOW_ACTION,
                subject: &plan.name,
                detail: job.id.to_string(),
            },
        )
        .await?;
    }
    Ok(see_other(&format!(
        "{}/{}?notice={}",
        plans_url(&scope),
        plan.id,
        if queued { "run_queued" } else { "run_pending" }
    )))
}

#[derive(Template)]
#[template(path = "plan_delete.html")]
struct DeletePage {
    chrome: Chrome,
    name: String,
    action: String,
    cancel: String,
}

pub async fn delete_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (customer, id) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let plan = plans::find_plan(&state.db, &scope, plan_id(&id)?).await?;
    scope.require_change()?;
    let base = format!("{}/{}", plans_url(&scope), plan.id);
    ok(&DeletePage {
        chrome: Chrome::new(&signed_in, Some(&scope), "plans"),
        name: plan.name,
        action: format!("{base}/delete"),
        cancel: base,
    })
}

/// Deletes the plan; its backups stay unless the form says `backups=delete`.
pub async fn delete(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    fields: Fields,
) -> Result<HttpResponse, WebError> {
    let (customer, id) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let keep = field(&fields, "backups") != "delete";
    plans::delete_plan(&state.db, &state.storage, &scope, plan_id(&id)?, keep).await?;
    Ok(see_other(&format!(
        "{}?notice={}",
        plans_url(&scope),
        if keep { "deleted" } else { "deleted_backups" }
    )))
}

/// Protect on the Microsoft 365 page: the selected rows go into the chosen plan, or into the
/// form of a new plan. Refused items are shown on the plan's form with the reason.
pub async fn protect(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    fields: Fields,
) -> Result<HttpResponse, WebError> {
    let (customer, org) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let org_id: OrgId = org.parse().map_err(|_| WebError::NotFound)?;
    let org = organizations::organization(&state.db, &scope, org_id).await?;
    scope.require_change()?;
    let items: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "item")
        .map(|(_, v)| v.clone())
        .collect();
    let back = format!("/c/{}/m365/{}", scope.id(), org.id());
    if items.is_empty() {
        return Err(WebError::BadRequest(
            "Select the rows to protect first, then choose Protect.".into(),
        ));
    }
    match field(&fields, "plan") {
        "" | "new" => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("org", &org.id().to_string());
            for item in &items {
                query.append_pair("item", item);
            }
            Ok(see_other(&format!(
                "{}/new?{}",
                plans_url(&scope),
                query.finish()
            )))
        }
        id => {
            let plan = plans::find_plan(&state.db, &scope, plan_id(id)?).await?;
            match plans::protect_items(&state.db, &scope, plan.id, &items).await {
                Ok(_) => Ok(see_other(&format!("{back}?notice=protected"))),
                Err(err) => {
                    let mut draft = plan.draft();
                    draft.items.extend(items);
                    refused(&state, &signed_in, &scope, Some(&plan), draft, err).await
                }
            }
        }
    }
}
