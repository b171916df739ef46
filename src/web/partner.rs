//! The partner's console: customers (create, rename, disable, add administrators, manage) and
//! sub-partners. Only partner administrators reach these pages; ids outside their subtree are
//! answered with "not found".

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;

use super::flash;
use super::forms::{self, FormState};
use super::sorting::{self, Column, TableSort};
use super::{AppState, Chrome, SignedIn, WebError, ok, see_other};
use crate::accounts::entities::{console_user, customer, partner};
use crate::accounts::users;
use crate::accounts::{AccountError, Role, tenancy};
use crate::ids::PartnerId;
use crate::inventory::organizations::CustomerSyncHealth;
use crate::reports::fleet::{self, CustomerHealth, HealthState};

pub struct CustomerRow {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub disabled: bool,
    pub created: String,
    /// Console users (people who sign in to Skyvault), not Microsoft 365 users.
    pub console_users: usize,
    pub sync: CustomerSyncHealth,
    /// Seats, storage, last night's runs, open alerts (`reports::fleet`).
    pub health: CustomerHealth,
    pub state: HealthState,
    /// Bytes stored; read for the rows shown (or all, to sort by it).
    pub stored_bytes: u64,
}

impl CustomerRow {
    pub fn storage(&self) -> String {
        bytesize::ByteSize::b(self.stored_bytes).to_string()
    }
}

/// Customers shown on one page of the list.
const CUSTOMERS_PAGE_SIZE: u64 = 50;

/// The Customers list's search, filter, sort, page and sub-partner, kept in the URL (a plain
/// GET form), so Back and reload show the same rows.
#[derive(Deserialize, Default)]
pub struct CustomersQuery {
    #[serde(default)]
    q: String,
    /// `active`, `disabled` or `sync_failed`; anything else lists all.
    #[serde(default)]
    status: String,
    /// A worst state (`HealthState::code`); anything else lists all.
    #[serde(default)]
    state: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    page: u64,
    /// A sub-partner the partner is working inside: only its customers are listed, and new
    /// customers are created under it.
    #[serde(default)]
    partner: String,
}

const CUSTOMER_COLUMNS: &[Column] = &[
    sorting::column("name"),
    // Worst first.
    sorting::column("state"),
    sorting::column_desc("orgs"),
    sorting::column_desc("seats"),
    sorting::column_desc("storage"),
    // Worst first.
    sorting::column("result"),
    sorting::column_desc("alerts"),
    sorting::column("partner"),
    sorting::column_desc("users"),
    sorting::column("status"),
    sorting::column_desc("created"),
];

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    chrome: Chrome,
    customers: Vec<CustomerRow>,
    form: FormState,
    search: String,
    status: &'static str,
    state: &'static str,
    /// Customers in each worst state (before filtering), in `states` order.
    state_counts: Vec<(&'static str, &'static str, usize)>,
    sort: TableSort,
    /// The sub-partner worked inside, if any.
    context: Option<PartnerRef>,
    /// Customers in all before filtering, to tell "none yet" from "none match".
    all: usize,
    matching: usize,
    page: u64,
    pages: u64,
    notice: Option<(&'static str, &'static str)>,
}

/// A sub-partner a link points at.
#[derive(Debug, Clone)]
pub struct PartnerRef {
    pub id: String,
    pub name: String,
}

/// The sub-partner named by a `partner` parameter: one below the signed-in partner, else not
/// found; none when the parameter is empty.
async fn partner_context(
    state: &AppState,
    signed_in: &SignedIn,
    id: &str,
) -> Result<Option<partner::Model>, WebError> {
    if id.is_empty() {
        return Ok(None);
    }
    let id: PartnerId = id.parse().map_err(|_| WebError::NotFound)?;
    Ok(Some(
        tenancy::sub_partner(&state.db, &signed_in.access, id).await?,
    ))
}

pub(super) fn partner_admin(signed_in: &SignedIn) -> Result<PartnerId, WebError> {
    signed_in
        .access
        .require_partner_admin()
        .map_err(WebError::from)
}

async fn customers_view(
    state: &AppState,
    signed_in: &SignedIn,
    form: FormState,
    query: &CustomersQuery,
) -> Result<CustomersPage, WebError> {
    let context = partner_context(state, signed_in, &query.partner).await?;
    let customers: Vec<_> = signed_in
        .access
        .customers(&state.db)
        .await?
        .into_iter()
        .filter(|c| context.as_ref().is_none_or(|p| p.id == c.partner_id))
        .collect();
    let partner_ids: Vec<_> = customers.iter().map(|c| c.partner_id).collect();
    let owners: HashMap<_, _> = partner::Entity::find()
        .filter(partner::Column::Id.is_in(partner_ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let customer_ids: Vec<_> = customers.iter().map(|c| c.id).collect();
    let user_counts = users::console_user_counts(&state.db, &customer_ids).await?;
    // Every figure of every customer in a few aggregate queries (`reports::fleet`).
    let health = fleet::customer_health(&state.db, &customer_ids, state.clock.now()).await?;
    let all = customers.len();
    let needle = query.q.trim().to_lowercase();
    let status = match query.status.as_str() {
        "active" => "active",
        "disabled" => "disabled",
        "sync_failed" => "sync_failed",
        _ => "",
    };
    let wanted_state = HealthState::parse(&query.state);
    let rows: Vec<(CustomerRow, chrono::DateTime<chrono::Utc>)> = customers
        .into_iter()
        .map(|c| {
            let figures = health.get(&c.id).copied().unwrap_or_default();
            let row = CustomerRow {
                id: c.id.to_string(),
                owner: owners.get(&c.partner_id).cloned().unwrap_or_default(),
                console_users: user_counts.get(&c.id).copied().unwrap_or(0),
                sync: figures.sync,
                health: figures,
                state: figures.state(),
                stored_bytes: 0,
                created: c.created_at.format("%Y-%m-%d").to_string(),
                disabled: c.disabled,
                name: c.name,
            };
            (row, c.created_at)
        })
        .collect();
    let state_counts = HealthState::ALL
        .into_iter()
        .map(|s| {
            let n = rows.iter().filter(|(row, _)| row.state == s).count();
            (s.code(), s.label(), n)
        })
        .collect();
    let rows: Vec<(CustomerRow, chrono::DateTime<chrono::Utc>)> = rows
        .into_iter()
        .filter(|(row, _)| needle.is_empty() || row.name.to_lowercase().contains(&needle))
        .filter(|(row, _)| wanted_state.is_none_or(|s| row.state == s))
        .filter(|(row, _)| match status {
            "active" => !row.disabled,
            "disabled" => row.disabled,
            "sync_failed" => row.sync.failed > 0,
            _ => true,
        })
        .collect();
    let partner_param = context
        .as_ref()
        .map(|p| p.id.to_string())
        .unwrap_or_default();
    let sort = TableSort::new("/customers", CUSTOMER_COLUMNS, &query.sort, &query.dir)
        .keep("partner", &partner_param)
        .keep("q", query.q.trim())
        .keep("status", status)
        .keep("state", wanted_state.map_or("", HealthState::code));
    // Storage sums every recovery point: read for all only to sort by it, else for the page.
    let mut rows = rows;
    if sort.column == "storage" {
        add_storage(state, &mut rows).await?;
    }
    sort.apply(&mut rows, |column, (a, at), (b, bt)| match column {
        "state" => a.state.cmp(&b.state),
        "orgs" => a.sync.organizations.cmp(&b.sync.organizations),
        "seats" => a.health.seats.cmp(&b.health.seats),
        "storage" => a.stored_bytes.cmp(&b.stored_bytes),
        "result" => a.health.last_night.rank().cmp(&b.health.last_night.rank()),
        "alerts" => a.health.open_alerts.cmp(&b.health.open_alerts),
        "partner" => sorting::text(&a.owner, &b.owner),
        "users" => a.console_users.cmp(&b.console_users),
        "status" => a.disabled.cmp(&b.disabled),
        "created" => at.cmp(bt),
        _ => sorting::text(&a.name, &b.name),
    });
    let matching = rows.len();
    let pages = (matching as u64).div_ceil(CUSTOMERS_PAGE_SIZE).max(1);
    let page = query.page.min(pages - 1);
    let mut shown: Vec<(CustomerRow, chrono::DateTime<chrono::Utc>)> = rows
        .into_iter()
        .skip((page * CUSTOMERS_PAGE_SIZE) as usize)
        .take(CUSTOMERS_PAGE_SIZE as usize)
        .collect();
    if sort.column != "storage" {
        add_storage(state, &mut shown).await?;
    }
    let customers = shown.into_iter().map(|(row, _)| row).collect();
    let context = context.map(|p| PartnerRef {
        id: p.id.to_string(),
        name: p.name,
    });
    let mut chrome = Chrome::new(signed_in, None, "customers");
    chrome.sub_partner = context.clone();
    Ok(CustomersPage {
        chrome,
        customers,
        form,
        search: query.q.trim().to_string(),
        status,
        state: wanted_state.map_or("", HealthState::code),
        state_counts,
        sort,
        context,
        all,
        matching,
        page,
        pages,
        notice: None,
    })
}

/// Fills in the storage used of `rows`.
async fn add_storage<T>(state: &AppState, rows: &mut [(CustomerRow, T)]) -> Result<(), WebError> {
    let ids: Vec<uuid::Uuid> = rows
        .iter()
        .filter_map(|(row, _)| row.id.parse().ok())
        .collect();
    let bytes = fleet::stored_bytes(&state.db, &ids).await?;
    for (row, _) in rows.iter_mut() {
        if let Ok(id) = row.id.parse::<uuid::Uuid>() {
            row.stored_bytes = bytes.get(&id).copied().unwrap_or(0);
        }
    }
    Ok(())
}

pub async fn customers_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    query: web::Query<CustomersQuery>,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    if let Some(redirect) = flash::lift_notice(&request, &signed_in.session) {
        return Ok(redirect);
    }
    let mut page = customers_view(&state, &signed_in, FormState::default(), &query).await?;
    // A consent answer that could not be matched to a customer lands here with its message.
    page.notice = super::m365::consent_message(&flash::take_notice(&signed_in.session));
    ok(&page)
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
pub struct NewCustomerForm {
    #[serde(default)]
    name: String,
    /// The sub-partner the list was showing: the new customer is created under it.
    #[serde(default)]
    partner: String,
}

pub async fn create_customer(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<NewCustomerForm>,
) -> Result<HttpResponse, WebError> {
    let own = partner_admin(&signed_in)?;
    let owner = partner_context(&state, &signed_in, &form.partner)
        .await?
        .map_or(own, |p| PartnerId(p.id));
    match tenancy::create_customer(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        owner,
        &form.name,
    )
    .await
    {
        Ok(created) => Ok(see_other(&format!("/customers/{}", created.id))),
        Err(err) => {
            let form_partner = form.partner.clone();
            let form = FormState::with_values([("name", form.name.as_str())]).absorb(err)?;
            let code = form.error_code();
            let query = CustomersQuery {
                partner: form_partner,
                ..CustomersQuery::default()
            };
            forms::unprocessable(
                &code,
                &customers_view(&state, &signed_in, form, &query).await?,
            )
        }
    }
}

pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub role: &'static str,
    /// The role's stored code, to preselect it in the change-role menu.
    pub role_code: String,
    pub disabled: bool,
    /// The signed-in user's own row: no actions on it.
    pub is_self: bool,
    pub created: String,
    added_at: chrono::DateTime<chrono::Utc>,
}

/// What the console-users table needs besides its rows.
pub struct UsersTable {
    pub rows: Vec<UserRow>,
    /// Whether the viewer may disable, remove, change role, reset passwords.
    pub can_manage: bool,
    /// `/c/{customer}/users`: each action posts to `{base}/{user}/{action}`.
    pub action_base: String,
    /// `partner` on a partner's customer page, so actions return there.
    pub from: &'static str,
    /// A password-reset link just made, shown once.
    pub reset: Option<super::people::ResetLink>,
    pub sort: TableSort,
}

const USER_COLUMNS: &[Column] = &[
    sorting::column("name"),
    sorting::column("email"),
    sorting::column("role"),
    sorting::column("status"),
    sorting::column_desc("added"),
];

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    chrome: Chrome,
    customer: customer::Model,
    users: UsersTable,
    rename: FormState,
    user_form: FormState,
    user_form_action: String,
    notice: Option<(&'static str, &'static str)>,
}

impl UsersTable {
    pub fn new(
        users: Vec<console_user::Model>,
        signed_in: &SignedIn,
        scope: &crate::accounts::access::CustomerScope,
        from: &'static str,
    ) -> Self {
        let me = signed_in.access.user_id.0;
        Self {
            rows: users
                .into_iter()
                .map(|u| UserRow {
                    id: u.id.to_string(),
                    role: Role::parse(&u.role).map(Role::label).unwrap_or("Unknown"),
                    role_code: u.role.clone(),
                    disabled: u.disabled,
                    is_self: u.id == me,
                    created: u.created_at.format("%Y-%m-%d").to_string(),
                    added_at: u.created_at,
                    email: u.email,
                    display_name: u.display_name,
                })
                .collect(),
            can_manage: signed_in.access.role == Role::PartnerAdmin
                || (signed_in.access.role == Role::CustomerAdmin && scope.can_change()),
            action_base: format!("/c/{}/users", scope.id()),
            from,
            reset: None,
            sort: TableSort::new(Self::page_path(scope, from), USER_COLUMNS, "", ""),
        }
    }

    /// The page the table is on: the partner's customer page or the customer's Settings.
    fn page_path(scope: &crate::accounts::access::CustomerScope, from: &str) -> String {
        if from == "partner" {
            format!("/customers/{}", scope.id())
        } else {
            format!("/c/{}/settings", scope.id())
        }
    }

    /// Sorts the rows as the page's URL asks.
    pub fn sorted(mut self, scope: &crate::accounts::access::CustomerScope, query: &str) -> Self {
        let path = Self::page_path(scope, self.from);
        self.sort = TableSort::from_query(path, USER_COLUMNS, query);
        self.sort
            .apply(&mut self.rows, |column, a, b| match column {
                "email" => sorting::text(&a.email, &b.email),
                "role" => a.role.cmp(b.role),
                "status" => a.disabled.cmp(&b.disabled),
                "added" => a.added_at.cmp(&b.added_at),
                _ => sorting::text(&a.display_name, &b.display_name),
            });
        self
    }
}

async fn customer_view(
    state: &AppState,
    signed_in: &SignedIn,
    id: &str,
    rename: FormState,
    user_form: FormState,
) -> Result<CustomerPage, WebError> {
    partner_admin(signed_in)?;
    let scope = signed_in.customer(state, id).await?;
    let users = UsersTable::new(
        users::customer_users(&state.db, &scope).await?,
        signed_in,
        &scope,
        "partner",
    );
    Ok(CustomerPage {
        chrome: Chrome::new(signed_in, None, "customers"),
        customer: scope.customer().clone(),
        users,
        rename,
        user_form,
        user_form_action: format!("/customers/{}/users", scope.id()),
        notice: None,
    })
}

pub async fn customer_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    if let Some(redirect) = flash::lift_notice(&request, &signed_in.session) {
        return Ok(redirect);
    }
    let mut page = customer_view(
        &state,
        &signed_in,
        &id,
        FormState::default(),
        FormState::default(),
    )
    .await?;
    let scope = signed_in.customer(&state, &id).await?;
    page.users = page.users.sorted(&scope, request.query_string());
    page.notice = super::people::user_message(&flash::take_notice(&signed_in.session));
    ok(&page)
}

/// The customer page showing a password-reset link just made for one of its users.
pub async fn customer_page_with_reset(
    state: &AppState,
    signed_in: &SignedIn,
    id: &str,
    reset: super::people::ResetLink,
) -> Result<HttpResponse, WebError> {
    let mut page = customer_view(
        state,
        signed_in,
        id,
        FormState::default(),
        FormState::default(),
    )
    .await?;
    page.users.reset = Some(reset);
    ok(&page)
}

pub async fn rename_customer(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
    form: web::Form<NameForm>,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    let scope = signed_in.customer(&state, &id).await?;
    match tenancy::rename_customer(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        &scope,
        &form.name,
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!("/customers/{id}"))),
        Err(err) => {
            let rename = FormState::with_values([("name", form.name.as_str())]).absorb(err)?;
            let code = rename.error_code();
            let page = customer_view(&state, &signed_in, &id, rename, FormState::default()).await?;
            forms::unprocessable(&code, &page)
        }
    }
}

async fn set_disabled(
    state: &AppState,
    signed_in: &SignedIn,
    id: &str,
    disabled: bool,
) -> Result<HttpResponse, WebError> {
    partner_admin(signed_in)?;
    let scope = signed_in.customer(state, id).await?;
    tenancy::set_customer_disabled(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        &scope,
        disabled,
    )
    .await?;
    Ok(see_other(&format!("/customers/{id}")))
}

pub async fn disable_customer(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    set_disabled(&state, &signed_in, &id, true).await
}

pub async fn enable_customer(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    set_disabled(&state, &signed_in, &id, false).await
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub role: String,
}

impl UserForm {
    /// The user as typed, with the role parsed: an unknown role is refused, never guessed.
    pub fn user(&self) -> Result<users::CustomerUser<'_>, AccountError> {
        Ok(users::CustomerUser {
            email: &self.email,
            display_name: &self.display_name,
            password: &self.password,
            role: Role::parse_customer_role(&self.role)?,
        })
    }

    pub fn retained(&self) -> FormState {
        FormState::with_values([
            ("email", self.email.as_str()),
            ("display_name", self.display_name.as_str()),
            ("role", self.role.as_str()),
        ])
    }
}

pub async fn add_customer_user(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
    form: web::Form<UserForm>,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    let scope = signed_in.customer(&state, &id).await?;
    let created = match form.user() {
        Ok(user) => {
            users::create_customer_user(
                &state.db,
                state.clock.as_ref(),
                &signed_in.access,
                &scope,
                user,
            )
            .await
        }
        Err(err) => Err(err),
    };
    match created {
        Ok(_) => Ok(see_other(&format!("/customers/{id}"))),
        Err(err) => {
            let user_form = form.retained().absorb(err)?;
            let code = user_form.error_code();
            let page =
                customer_view(&state, &signed_in, &id, FormState::default(), user_form).await?;
            forms::unprocessable(&code, &page)
        }
    }
}
