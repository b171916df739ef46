//! Microsoft 365 organizations in the console: Devices (list, Add > Microsoft 365 Business,
//! remove), the admin-consent round trip, the organization's page with its Users, Groups, Sites
//! and Teams tabs, and the Refresh button with its live sync status.

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use sea_orm::EntityTrait;
use serde::Deserialize;

use super::explain::FailureView;
use super::flash;
use super::sorting::{self, Column, TableSort};
use super::{AppState, Chrome, SignedIn, WebError, forms, ok, see_other};
use crate::accounts::access::CustomerScope;
use crate::ids::OrgId;
use crate::inventory::consent::ConsentOutcome;
use crate::inventory::entities::{organization, protected_item};
use crate::inventory::items::{self, ItemPage, ItemQuery, ItemSort, KindCount};
use crate::inventory::organizations;
use crate::inventory::{InventoryError, ItemKind, ItemState, OrgScope, consent};
use crate::jobs::entities::job;
use crate::jobs::queue::{self, JobStatus};
use crate::m365::ConsentTenant;

/// The session entry naming the consent request this browser started.
const CONSENT_STATE_KEY: &str = "m365_consent_state";

impl From<InventoryError> for WebError {
    fn from(err: InventoryError) -> Self {
        match err {
            InventoryError::NotFound => WebError::NotFound,
            InventoryError::Forbidden => WebError::Forbidden,
            InventoryError::TenantTakenByAnotherCustomer => WebError::BadRequest(err.to_string()),
            InventoryError::Database(_) | InventoryError::Graph(_) => WebError::internal(err),
        }
    }
}

/// A Devices-page message after the consent round trip, by stable code (never reflected text).
pub(super) fn consent_message(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "added" => (
            "success",
            "The organization was added. Its users, groups, sites and teams are being discovered.",
        ),
        "already_added" => (
            "info",
            "This organization was already added; consent was renewed and a directory sync was started.",
        ),
        "declined" => (
            "error",
            "Consent was declined at Microsoft, so the organization was not added. Try again and choose Accept.",
        ),
        "not_admin" => (
            "error",
            "Microsoft refused consent: sign in as a global administrator of the organization you want to protect.",
        ),
        "wrong_tenant" => (
            "error",
            "You signed in to a different Microsoft 365 organization than the one that gave consent, so nothing was added. Start again and sign in as a global administrator of the organization you want to protect.",
        ),
        "sign_in_unproven" => (
            "error",
            "Skyvault could not confirm your administrator sign-in with Microsoft, so the organization was not added. Try again in a few minutes; if it keeps failing, check the app registration's redirect URI and secret.",
        ),
        "no_role_claim" => (
            "error",
            "Microsoft did not tell Skyvault your administrator role, so the organization was not added. The app registration must emit directory roles: set groupMembershipClaims to \"DirectoryRole\" in its manifest.",
        ),
        "cancelled" => (
            "error",
            "Sign-in at Microsoft was cancelled, so the organization was not added.",
        ),
        "state" => (
            "error",
            "This consent answer does not belong to a request started here, or it was already used. Start again with Add > Microsoft 365 Business.",
        ),
        "expired" => (
            "error",
            "The consent request expired (after 15 minutes). Start again with Add > Microsoft 365 Business.",
        ),
        "taken" => (
            "error",
            "This Microsoft 365 organization is already protected by another customer. Ask your service provider.",
        ),
        "failed" => (
            "error",
            "Microsoft reported an error during consent, so the organization was not added. Try again in a few minutes.",
        ),
        "removed" => (
            "success",
            "The organization was removed. Its backups stay in Backup storage.",
        ),
        _ => return None,
    })
}

/// What the organization's own page shows about it above the tabs.
pub struct OrgHeader {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub added: String,
}

impl OrgHeader {
    fn of(org: &organization::Model) -> Self {
        Self {
            id: org.id.to_string(),
            name: shown_name(org),
            domain: shown_domain(org),
            added: when(Some(org.added_at)),
        }
    }
}

/// The organization's name; Microsoft tells it in the first sync.
fn shown_name(org: &organization::Model) -> String {
    if org.is_verifying() {
        "New Microsoft 365 organization".into()
    } else {
        org.display_name.clone()
    }
}

/// The domain, or what is happening while the first sync has not read it yet.
fn shown_domain(org: &organization::Model) -> String {
    if org.is_verifying() {
        "Verifying consent with Microsoft…".into()
    } else {
        org.default_domain.clone()
    }
}

pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub added: String,
    pub last_sync: String,
    pub next_sync: String,
    pub failure: Option<FailureView>,
    pub never_synced: bool,
    pub syncing: bool,
    pub users: u64,
    pub groups: u64,
    pub sites: u64,
    pub teams: u64,
    /// The raw times and state the Devices table sorts by (the strings above are for reading).
    last_sync_at: Option<chrono::DateTime<chrono::Utc>>,
    next_sync_at: chrono::DateTime<chrono::Utc>,
}

impl OrgRow {
    /// Worst first when sorted by status: a failed sync needs a person, a running one will end.
    fn status_rank(&self) -> u8 {
        if self.failure.is_some() && !self.syncing {
            0
        } else if self.syncing {
            1
        } else if self.never_synced {
            2
        } else {
            3
        }
    }
}

const ORG_COLUMNS: &[Column] = &[
    sorting::column("name"),
    sorting::column_desc("items"),
    sorting::column_desc("last"),
    sorting::column("next"),
    sorting::column("status"),
];

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    chrome: Chrome,
    customer_id: String,
    orgs: Vec<OrgRow>,
    sort: TableSort,
    can_change: bool,
    notice: Option<(&'static str, &'static str)>,
    demo: bool,
}

/// A moment as pages show it: always with its time zone (the server keeps UTC).
pub(super) fn when(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "Never".into())
}

async fn org_row(state: &AppState, org: organization::Model) -> Result<OrgRow, WebError> {
    let counts = items::stored_counts(&org);
    let count = |kind: ItemKind| counts.get(kind.as_str()).copied().unwrap_or_default().total;
    let syncing = queue::pending_sync(&state.db, org.id).await?.is_some();
    Ok(OrgRow {
        id: org.id.to_string(),
        domain: shown_domain(&org),
        added: when(Some(org.added_at)),
        last_sync: when(org.last_sync_at),
        next_sync: when(Some(org.next_sync_at)),
        failure: org.last_sync_failure().map(FailureView::of_sync),
        never_synced: org.last_sync_outcome.is_none(),
        syncing,
        users: count(ItemKind::User),
        groups: count(ItemKind::Group),
        sites: count(ItemKind::Site),
        teams: count(ItemKind::Team),
        name: shown_name(&org),
        last_sync_at: org.last_sync_at,
        next_sync_at: org.next_sync_at,
    })
}

pub async fn devices(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    notice: &str,
    query: &str,
) -> Result<HttpResponse, WebError> {
    let mut orgs = Vec::new();
    for org in organizations::organizations(&state.db, scope).await? {
        orgs.push(org_row(state, org).await?);
    }
    let sort = TableSort::from_query(format!("/c/{}/devices", scope.id()), ORG_COLUMNS, query);
    sort.apply(&mut orgs, |column, a, b| match column {
        "items" => {
            let items = |o: &OrgRow| o.users + o.groups + o.sites + o.teams;
            items(a).cmp(&items(b))
        }
        "last" => a.last_sync_at.cmp(&b.last_sync_at),
        "next" => a.next_sync_at.cmp(&b.next_sync_at),
        "status" => a.status_rank().cmp(&b.status_rank()),
        _ => sorting::text(&a.name, &b.name),
    });
    ok(&DevicesPage {
        chrome: Chrome::new(signed_in, Some(scope), "devices"),
        customer_id: scope.id().to_string(),
        orgs,
        sort,
        can_change: scope.can_change(),
        notice: consent_message(notice),
        demo: state.demo,
    })
}

/// Devices > Add > Microsoft 365 Business: send the browser to Microsoft's admin-consent page.
/// A plain link (GET) rather than a form, because the page's CSP allows forms to post only to
/// Skyvault itself.
pub async fn add_organization(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let scope = signed_in.customer(&state, &id).await?;
    let consent_state = consent::begin_consent(
        &state.db,
        state.clock.as_ref(),
        &scope,
        signed_in.access.user_id,
    )
    .await?;
    signed_in
        .session
        .insert(CONSENT_STATE_KEY, &consent_state)
        .map_err(WebError::internal)?;
    let url = state
        .graph
        .admin_consent_url(&ConsentTenant::Organizations, &consent_state)
        .map_err(WebError::internal)?;
    Ok(see_other(url.as_str()))
}

/// Microsoft's redirect back after admin consent.
pub async fn consent_callback(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    session: Session,
    request: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let query = request.query_string();
    let returned_state = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let expected = session.get::<String>(CONSENT_STATE_KEY).ok().flatten();
    session.remove(CONSENT_STATE_KEY);
    let taken = if expected.as_deref() == Some(returned_state.as_str()) {
        consent::take_consent_request(
            &state.db,
            state.clock.as_ref(),
            &returned_state,
            signed_in.access.user_id,
        )
        .await?
    } else {
        Err(consent::StateProblem::Unknown)
    };
    let request = match taken {
        Ok(request) => request,
        Err(problem) => {
            // Without a valid state we do not know which customer asked; go to the start page.
            let code = if problem == consent::StateProblem::Expired {
                "expired"
            } else {
                "state"
            };
            return Ok(see_other(&format!(
                "{}?notice={code}",
                home_devices(&signed_in)
            )));
        }
    };
    let scope = signed_in
        .access
        .customer(&state.db, request.customer)
        .await?;
    let outcome = consent::complete_consent(
        &state.db,
        state.clock.as_ref(),
        &state.graph,
        &scope,
        request,
        query,
        state.sync_interval(),
    )
    .await?;
    let code = match outcome {
        ConsentOutcome::SignIn { url, state } => {
            session
                .insert(CONSENT_STATE_KEY, &state)
                .map_err(WebError::internal)?;
            return Ok(see_other(url.as_str()));
        }
        ConsentOutcome::Added(org) => {
            queue::enqueue_sync(&state.db, state.clock.as_ref(), &org).await?;
            return Ok(see_other(&format!(
                "/c/{}/m365/{}?notice=added",
                scope.id(),
                org.id
            )));
        }
        ConsentOutcome::AlreadyAdded(org) => {
            // Renewed consent is often the cure for a failing sync: run one now.
            queue::enqueue_sync(&state.db, state.clock.as_ref(), &org).await?;
            "already_added"
        }
        ConsentOutcome::Declined => "declined",
        ConsentOutcome::NotAdmin => "not_admin",
        ConsentOutcome::Cancelled => "cancelled",
        ConsentOutcome::Failed => "failed",
        ConsentOutcome::StateMismatch => "state",
        ConsentOutcome::WrongTenant => "wrong_tenant",
        ConsentOutcome::SignInUnproven => "sign_in_unproven",
        ConsentOutcome::NoRoleClaim => "no_role_claim",
        ConsentOutcome::TakenByAnotherCustomer => "taken",
    };
    let devices = format!("/c/{}/devices", scope.id());
    Ok(see_other(&format!("{devices}?notice={code}")))
}

fn home_devices(signed_in: &SignedIn) -> String {
    match signed_in.access.home {
        crate::accounts::access::Home::Customer(id) => format!("/c/{id}/devices"),
        crate::accounts::access::Home::Partner(_) => "/customers".into(),
    }
}

/// The Microsoft 365 section: the organization's page; with several, Devices lists them to choose.
pub async fn m365_section(
    state: &AppState,
    scope: &CustomerScope,
) -> Result<Option<HttpResponse>, WebError> {
    let orgs = organizations::organizations(&state.db, scope).await?;
    match orgs.as_slice() {
        [] => Ok(None),
        [only] => Ok(Some(see_other(&format!(
            "/c/{}/m365/{}",
            scope.id(),
            only.id
        )))),
        _ => Ok(Some(see_other(&format!("/c/{}/devices", scope.id())))),
    }
}

/// The item list's state, all in the URL so Back, reload and a shared link show the same rows.
#[derive(Deserialize, Default)]
pub struct OrgQuery {
    #[serde(default)]
    tab: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: u64,
    /// `active` or `inactive`; anything else lists both.
    #[serde(default)]
    state: String,
    /// An item type as listed in the type filter ("Member", "Guest", "Security group"…).
    #[serde(default, rename = "type")]
    item_type: String,
    /// A column (`items::ItemSort`); unknown values sort by name.
    #[serde(default)]
    sort: String,
    /// `desc` for descending.
    #[serde(default)]
    dir: String,
}

pub struct ItemRow {
    pub id: String,
    /// The plans protecting it ("" when none) and when it was last backed up.
    pub plan: String,
    pub last_backup: String,
    /// Its archives' pages in Backup storage: (workload, address), where recovery starts.
    pub recovery: Vec<(&'static str, String)>,
    pub name: String,
    pub address: String,
    pub detail: String,
    pub inactive: bool,
    pub inactive_since: String,
    pub workloads: String,
}

pub struct Tab {
    pub slug: &'static str,
    pub label: &'static str,
    pub count: KindCount,
}

#[derive(Template)]
#[template(path = "org_items.html")]
struct ItemsFragment {
    tabs: Vec<Tab>,
    base: String,
    tab: &'static str,
    search: String,
    /// Why the search was not run (too long), shown instead of the list.
    search_error: Option<String>,
    /// The filters and order as they go back into links ("" when not set).
    state: &'static str,
    item_type: String,
    types: Vec<String>,
    sort: &'static str,
    descending: bool,
    filtered: bool,
    rows: Vec<ItemRow>,
    page: u64,
    pages: u64,
    total: u64,
    /// Protect: where the selected rows are posted, with the organization's plans to choose.
    protect_url: String,
    plans: Vec<(String, String)>,
    csrf: String,
    can_change: bool,
}

impl ItemsFragment {
    /// This list's address as shown.
    fn current_href(&self) -> String {
        self.href(self.page)
    }

    /// This list's address with everything kept but the page.
    fn href(&self, page: u64) -> String {
        self.link(self.sort, self.descending, page)
    }

    fn link(&self, sort: &str, descending: bool, page: u64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("tab", self.tab);
        for (key, value) in [
            ("q", self.search.as_str()),
            ("state", self.state),
            ("type", self.item_type.as_str()),
            ("sort", sort),
        ] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if descending {
            query.append_pair("dir", "desc");
        }
        if page > 0 {
            query.append_pair("page", &page.to_string());
        }
        format!("{}?{}", self.base, query.finish())
    }

    fn sorted_by(&self, column: &str) -> bool {
        self.sort == column || (self.sort.is_empty() && column == ItemSort::Name.as_str())
    }

    /// A column heading's link: by that column, or the other way round when already by it.
    fn sort_href(&self, column: &str) -> String {
        let descending = self.sorted_by(column) && !self.descending;
        let sort = if column == ItemSort::Name.as_str() {
            ""
        } else {
            column
        };
        self.link(sort, descending, 0)
    }

    fn sort_mark(&self, column: &str) -> &'static str {
        match (self.sorted_by(column), self.descending) {
            (false, _) => "",
            (true, false) => "▲",
            (true, true) => "▼",
        }
    }
}

#[derive(Template)]
#[template(path = "organization.html")]
struct OrganizationPage {
    chrome: Chrome,
    customer_id: String,
    org: OrgHeader,
    tenant_id: String,
    items: ItemsFragment,
    status: SyncStatus,
    throttling: super::overview::ThrottlingCard,
    notice: Option<(&'static str, &'static str)>,
}

fn tab_kind(tab: &str) -> ItemKind {
    match tab {
        "groups" => ItemKind::Group,
        "sites" => ItemKind::Site,
        "teams" => ItemKind::Team,
        _ => ItemKind::User,
    }
}

fn tab_slug(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::User => "users",
        ItemKind::Group => "groups",
        ItemKind::Site => "sites",
        ItemKind::Team => "teams",
    }
}

/// An item's backups as its row shows them.
#[derive(Default)]
struct ItemBackups {
    newest: Option<chrono::DateTime<chrono::Utc>>,
    /// (workload, archive page) of each of its archives with a recovery point.
    archives: Vec<(&'static str, String)>,
}

/// When each of the customer's items was last backed up (its newest recovery point of any
/// workload), and where its archives are browsed.
async fn last_backups(
    state: &AppState,
    org: &OrgScope,
) -> Result<std::collections::HashMap<uuid::Uuid, ItemBackups>, WebError> {
    let mut items: std::collections::HashMap<uuid::Uuid, ItemBackups> =
        std::collections::HashMap::new();
    for summary in
        crate::storage::catalog::list_archive_summaries(&state.db, org.customer()).await?
    {
        if summary.archive.org != org.id() {
            continue;
        }
        if let Some(point) = summary.newest {
            let backups = items.entry(summary.archive.item.0).or_default();
            backups.newest = backups.newest.max(Some(point.taken_at));
            backups.archives.push((
                crate::jobs::backup_check::workload_label(summary.archive.workload),
                super::backups::archive_url(org.customer().id(), summary.archive.id),
            ));
        }
    }
    Ok(items)
}

fn item_row(item: protected_item::Model) -> ItemRow {
    let inactive = item.state == ItemState::Inactive.as_str();
    let workloads = match (item.kind.as_str(), item.has_mailbox, item.has_drive) {
        _ if inactive => "Not backed up while deleted".to_string(),
        ("user", _, _) if item.check_error.is_some() => {
            let error = item.check_error.as_deref().unwrap_or_default();
            let mut chars = error.chars();
            let capitalised: String = chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
            format!("{capitalised} (checked again at the next sync)")
        }
        ("user", Some(mailbox), Some(drive)) => match (mailbox, drive) {
            (true, true) => "Mailbox, OneDrive",
            (true, false) => "Mailbox",
            (false, true) => "OneDrive",
            (false, false) => "Nothing to back up",
        }
        .to_string(),
        ("user", _, _) => "Checking…".to_string(),
        ("group", _, _) if item.detail == "Microsoft 365 group" => "Mailbox, site".to_string(),
        ("group", _, _) => "Membership only".to_string(),
        ("team", _, _) => "Channels, mailbox, site".to_string(),
        _ => "Site".to_string(),
    };
    ItemRow {
        id: item.id.to_string(),
        plan: String::new(),
        last_backup: String::new(),
        recovery: Vec::new(),
        inactive,
        inactive_since: when(item.inactive_since),
        name: item.display_name,
        address: item.address,
        detail: item.detail,
        workloads,
    }
}

async fn org_scope(
    state: &AppState,
    signed_in: &SignedIn,
    customer: &str,
    org: &str,
) -> Result<OrgScope, WebError> {
    let scope = signed_in.customer(state, customer).await?;
    let org_id: OrgId = org.parse().map_err(|_| WebError::NotFound)?;
    Ok(organizations::organization(&state.db, &scope, org_id).await?)
}

async fn items_fragment(
    state: &AppState,
    org: &OrgScope,
    query: &OrgQuery,
    csrf: &str,
) -> Result<ItemsFragment, WebError> {
    let coverage = crate::plans::coverage(&state.db, org).await?;
    let mut backed_up = last_backups(state, org).await?;
    let kind = tab_kind(&query.tab);
    let (search, search_error) = match forms::search_text(&query.q) {
        Ok(search) => (search, None),
        Err(message) => (
            query
                .q
                .chars()
                .filter(|c| !c.is_control())
                .take(forms::MAX_SEARCH_CHARS)
                .collect(),
            Some(message),
        ),
    };
    let item_state = ItemState::parse(&query.state);
    let sort = ItemSort::parse(&query.sort).unwrap_or_default();
    // A type is matched exactly against the listed ones; one that cannot be (control
    // characters, too long) matches nothing rather than reaching the database.
    let item_type = forms::search_text(&query.item_type).unwrap_or_default();
    let ItemPage {
        items,
        total,
        page,
        pages,
    } = match search_error {
        None => {
            items::list_items(
                &state.db,
                org,
                kind,
                &ItemQuery {
                    search: search.clone(),
                    state: item_state,
                    detail: (!item_type.is_empty()).then(|| item_type.clone()),
                    sort,
                    descending: query.dir == "desc",
                    page: query.page,
                },
            )
            .await?
        }
        Some(_) => ItemPage {
            items: Vec::new(),
            total: 0,
            page: 0,
            pages: 1,
        },
    };
    let types = items::item_types(&state.db, org, kind).await?;
    let counts = items::stored_counts(org.org());
    let tabs = [
        ItemKind::User,
        ItemKind::Group,
        ItemKind::Site,
        ItemKind::Team,
    ]
    .into_iter()
    .map(|kind| Tab {
        slug: tab_slug(kind),
        label: match kind {
            ItemKind::User => "Users",
            ItemKind::Group => "Groups",
            ItemKind::Site => "Sites",
            ItemKind::Team => "Teams",
        },
        count: counts.get(kind.as_str()).copied().unwrap_or_default(),
    })
    .collect();
    Ok(ItemsFragment {
        tabs,
        base: format!("/c/{}/m365/{}", org.customer().id(), org.id()),
        tab: tab_slug(kind),
        filtered: !search.is_empty() || item_state.is_some() || !item_type.is_empty(),
        search,
        search_error,
        state: item_state.map(ItemState::as_str).unwrap_or(""),
        item_type,
        types,
        sort: if sort == ItemSort::Name {
            ""
        } else {
            sort.as_str()
        },
        descending: query.dir == "desc",
        rows: items
            .into_iter()
            .map(|item| {
                let plan = coverage.plans_of(&item).join(", ");
                let backups = backed_up.remove(&item.id).unwrap_or_default();
                ItemRow {
                    plan,
                    last_backup: backups.newest.map(|at| when(Some(at))).unwrap_or_default(),
                    recovery: backups.archives,
                    ..item_row(item)
                }
            })
            .collect(),
        page,
        pages,
        total,
        protect_url: format!("/c/{}/m365/{}/protect", org.customer().id(), org.id()),
        plans: coverage
            .plans
            .iter()
            .map(|(id, name)| (id.to_string(), name.clone()))
            .collect(),
        csrf: csrf.to_string(),
        can_change: org.customer().can_change(),
    })
}

pub async fn organization_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<OrgQuery>,
) -> Result<HttpResponse, WebError> {
    if let Some(redirect) = flash::lift_notice(&request, &signed_in.session) {
        return Ok(redirect);
    }
    let (customer, org) = path.into_inner();
    let org = org_scope(&state, &signed_in, &customer, &org).await?;
    let items = items_fragment(&state, &org, &query, &signed_in.csrf).await?;
    // htmx asks for the list only when searching, paging or after a sync.
    if request
        .headers()
        .get("HX-Target")
        .is_some_and(|t| t == "items")
    {
        return ok(&items);
    }
    let status = sync_status(&state, &org).await?;
    let throttling = super::overview::org_throttling_card(&state, org.customer(), org.id()).await?;
    ok(&OrganizationPage {
        throttling,
        chrome: Chrome::new(&signed_in, Some(org.customer()), "m365"),
        customer_id: org.customer().id().to_string(),
        tenant_id: org.org().tenant_id.clone(),
        org: OrgHeader::of(org.org()),
        items,
        status,
        // The sync status says the items are being discovered, for as long as they are.
        notice: match flash::take_notice(&signed_in.session).as_str() {
            "added" => Some(("success", "The organization was added.")),
            "protected" => Some(("success", "The selected items were added to the plan.")),
            other => consent_message(other),
        },
    })
}

#[derive(Template)]
#[template(path = "sync_status.html")]
pub struct SyncStatus {
    url: String,
    refresh_url: String,
    pending: bool,
    /// What the pending sync is doing, in plain words.
    stage: String,
    /// How long it has been waiting or running ("" when not pending).
    elapsed: String,
    /// Items read so far, per kind, while a sync runs.
    counts: Vec<(&'static str, u64)>,
    /// The organization has never been synced: its items are being discovered.
    first_sync: bool,
    last_sync: String,
    next_sync: String,
    result: String,
    failure: Option<FailureView>,
    can_change: bool,
}

/// "45 seconds", "3 minutes", "2 hours 5 minutes".
fn elapsed_words(duration: chrono::Duration) -> String {
    let seconds = duration.num_seconds().max(0);
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match seconds {
        0..=59 => plural(seconds, "second"),
        60..=3599 => plural(seconds / 60, "minute"),
        _ => format!(
            "{} {}",
            plural(seconds / 3600, "hour"),
            plural(seconds % 3600 / 60, "minute")
        ),
    }
}

async fn sync_status(state: &AppState, org: &OrgScope) -> Result<SyncStatus, WebError> {
    let fresh = organization::Entity::find_by_id(org.id().0)
        .one(&state.db)
        .await?
        .ok_or(WebError::NotFound)?;
    let pending_job: Option<job::Model> = queue::pending_sync(&state.db, org.id().0).await?;
    let now = state.clock.now();
    let (stage, elapsed) = match &pending_job {
        Some(j) if j.status == JobStatus::Running.as_str() => (
            j.progress.clone().unwrap_or_else(|| "Starting".into()),
            format!(
                "running for {}",
                elapsed_words(now - j.started_at.unwrap_or(j.queued_at))
            ),
        ),
        Some(j) => (
            "Queued: starts as soon as a worker is free".to_string(),
            format!("waiting for {}", elapsed_words(now - j.queued_at)),
        ),
        None => (String::new(), String::new()),
    };
    let counts = match &pending_job {
        Some(j) if j.status == JobStatus::Running.as_str() => {
            let live = items::count_items(&state.db, org.id().0).await?;
            [
                ("users", ItemKind::User),
                ("groups", ItemKind::Group),
                ("sites", ItemKind::Site),
                ("teams", ItemKind::Team),
            ]
            .into_iter()
            .map(|(label, kind)| {
                (
                    label,
                    live.get(kind.as_str()).map(|c| c.total).unwrap_or_default(),
                )
            })
            .collect()
        }
        _ => Vec::new(),
    };
    let base = format!("/c/{}/m365/{}", org.customer().id(), org.id());
    Ok(SyncStatus {
        url: format!("{base}/sync"),
        refresh_url: format!("{base}/refresh"),
        pending: pending_job.is_some(),
        stage,
        elapsed,
        counts,
        first_sync: fresh.last_sync_at.is_none(),
        last_sync: when(fresh.last_sync_at),
        next_sync: when(Some(fresh.next_sync_at)),
        result: fresh
            .last_sync_success()
            .map(|summary| format!("The last sync finished: {summary}."))
            .unwrap_or_default(),
        failure: fresh.last_sync_failure().map(FailureView::of_sync),
        can_change: org.customer().can_change(),
    })
}

#[derive(Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    was: String,
}

/// The live sync status; polled by htmx while a sync is pending. When a pending sync has just
/// finished, the response tells the page to reload its item list.
pub async fn sync_status_fragment(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, WebError> {
    let (customer, org) = path.into_inner();
    let org = org_scope(&state, &signed_in, &customer, &org).await?;
    let status = sync_status(&state, &org).await?;
    let mut response = HttpResponse::Ok();
    if query.was == "pending" && !status.pending {
        response.insert_header(("HX-Trigger", "inventory-synced"));
    }
    Ok(response
        .content_type("text/html; charset=utf-8")
        .body(status.render()?))
}

/// Refresh: queue a sync now (or show the one already running). The schedule is not shifted.
pub async fn refresh(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (customer, org) = path.into_inner();
    let org = org_scope(&state, &signed_in, &customer, &org).await?;
    org.customer().require_change()?;
    queue::enqueue_sync(&state.db, state.clock.as_ref(), org.org()).await?;
    if request.headers().contains_key("HX-Request") {
        let status = sync_status(&state, &org).await?;
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(status.render()?));
    }
    Ok(see_other(&format!(
        "/c/{}/m365/{}",
        org.customer().id(),
        org.id()
    )))
}

#[derive(Template)]
#[template(path = "remove_org.html")]
struct RemovePage {
    chrome: Chrome,
    org: OrgHeader,
    action: String,
    cancel: String,
}

pub async fn remove_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (customer, org) = path.into_inner();
    let org = org_scope(&state, &signed_in, &customer, &org).await?;
    org.customer().require_change()?;
    ok(&RemovePage {
        chrome: Chrome::new(&signed_in, Some(org.customer()), "devices"),
        action: format!("/c/{}/devices/{}/remove", org.customer().id(), org.id()),
        cancel: format!("/c/{}/devices", org.customer().id()),
        org: OrgHeader::of(org.org()),
    })
}

pub async fn remove(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (customer, org) = path.into_inner();
    let org = org_scope(&state, &signed_in, &customer, &org).await?;
    organizations::remove_organization(&state.db, &org).await?;
    Ok(see_other(&format!(
        "/c/{}/devices?notice=removed",
        org.customer().id()
    )))
}
