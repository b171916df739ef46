//! Discovery sync: brings an organization's protected items in line with Microsoft 365.
//! Users and groups come from delta queries resumed from the stored link (a re-sync with no
//! changes costs only the delta requests); sites from one whole `sites/delta` enumeration, which
//! also returns deleted sites. Soft-deleted users and groups are read from deleted items: an
//! item deleted in Microsoft 365 but still returned there becomes *inactive* (with Microsoft's
//! deletion date), also when it was already deleted before the organization was added; one no
//! longer returned anywhere is *gone*: its row stays, marked gone, so plans and archives keep their
//! reference (its backups, kept by storage, are
//! not touched here).
//!
//! The lists are saved (and counted) first; the per-user workload checks — has the user a
//! mailbox, a OneDrive — fill in afterwards. A check Microsoft answers oddly is recorded on that
//! user ("could not check: …") and sent again at the next sync; it never fails the sync. Unknown
//! users are checked at every sync, known ones again after `RECHECK_AFTER`, and at once when the
//! directory says their licences changed.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect, TransactionTrait,
};

use super::entities::{directory_cursor, organization, protected_item};
use super::{InventoryError, ItemKind, ItemState};
use crate::clock::Clock;
use crate::ids::ItemId;
use crate::m365::throttle::files_resource_units_for_licences;
use crate::m365::{
    DeltaChange, DeltaLink, DeltaStart, GraphClient, GraphError, MailboxStatus, TenantClient,
    TenantId, collect_round,
};

/// How long a user's known workloads are trusted before they are checked again (a licence
/// assigned without any directory change Skyvault tracks is noticed within this time).
pub const RECHECK_AFTER: Duration = Duration::days(7);
/// Checks in flight at once. Each goes to its own mailbox, or spends one resource unit of the
/// tenant's OneDrive/SharePoint bucket, which the governor paces; this only bounds open requests.
const CHECK_CONCURRENCY: usize = 32;
/// Where the users delta link is kept. A delta link carries the `$select` of the round that made
/// it; links from before `assignedPlans` was selected were kept under `users`, so organizations
/// synced before start over once with a full round that reads it.
const USERS_CURSOR: &str = "users+assignedPlans";
/// Check results written per transaction.
const CHECK_BATCH: usize = 200;

/// What one sync changed, for Activities and the organization's page.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncSummary {
    pub added: u64,
    pub changed: u64,
    pub inactive: u64,
    pub reactivated: u64,
    pub gone: u64,
    /// Users whose mailbox and OneDrive were checked in this sync.
    pub checked: u64,
    /// Users whose check Microsoft did not answer usably; checked again at the next sync.
    pub unchecked: u64,
}

impl SyncSummary {
    pub fn sentence(&self) -> String {
        let mut sentence = format!(
            "{} added, {} changed, {} became inactive, {} active again, {} gone",
            self.added, self.changed, self.inactive, self.reactivated, self.gone
        );
        if self.unchecked > 0 {
            sentence.push_str(&format!(
                "; warning: the mailbox or OneDrive of {} {} could not be checked (checked again at the next sync)",
                self.unchecked,
                if self.unchecked == 1 { "user" } else { "users" }
            ));
        }
        sentence
    }
}

/// What the directory says about a user's workloads, so checks it already answers are not sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryHints {
    /// The user has a mail address (Exchange sets it with the mailbox; no address, no mailbox).
    pub mail: bool,
    /// A guest: their mailbox and OneDrive live in their home tenant.
    pub guest: bool,
    /// An enabled Exchange Online plan is assigned.
    pub exchange: bool,
    /// An enabled SharePoint Online plan is assigned (OneDrive comes with it).
    pub sharepoint: bool,
}

impl DirectoryHints {
    fn of(user: &crate::m365::types::User) -> Self {
        Self {
            mail: user.mail.as_deref().is_some_and(|m| !m.trim().is_empty()),
            guest: user.is_guest(),
            exchange: user.has_enabled_plan("exchange"),
            sharepoint: user.has_enabled_plan("SharePoint"),
        }
    }

    pub fn to_text(self) -> String {
        [
            (self.mail, "mail"),
            (self.guest, "guest"),
            (self.exchange, "exchange"),
            (self.sharepoint, "sharepoint"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",")
    }

    pub fn parse(text: &str) -> Self {
        let has = |name: &str| text.split(',').any(|t| t.trim() == name);
        Self {
            mail: has("mail"),
            guest: has("guest"),
            exchange: has("exchange"),
            sharepoint: has("sharepoint"),
        }
    }

    /// Whether asking Exchange can find a mailbox. Shared and resource mailboxes need no
    /// licence, so only a missing address or a guest rules one out.
    fn mailbox_possible(self) -> bool {
        self.mail && !self.guest
    }

    /// Whether asking for a OneDrive can find one: a SharePoint plan, or a OneDrive seen before
    /// (it outlives a removed licence for a while).
    fn drive_possible(self, had_drive: bool) -> bool {
        !self.guest && (self.sharepoint || had_drive)
    }
}

/// One directory object as seen in this sync. `None` fields were not returned (a delta round
/// returns only changed properties) and keep their stored value.
#[derive(Debug, Clone)]
struct Observed {
    graph_id: String,
    display_name: Option<String>,
    address: Option<String>,
    detail: Option<String>,
    hints: Option<DirectoryHints>,
}

impl Observed {
    fn user(user: &crate::m365::types::User) -> Self {
        Self {
            address: user.mail.clone().or(user.user_principal_name.clone()),
            detail: user.user_type.clone(),
            display_name: user.display_name.clone(),
            graph_id: user.id.clone(),
            hints: Some(DirectoryHints::of(user)),
        }
    }

    fn group(group: &crate::m365::types::Group) -> Self {
        let detail = if group.is_microsoft365() {
            "Microsoft 365 group"
        } else if group.security_enabled == Some(true) && group.mail_enabled != Some(true) {
            "Security group"
        } else if group.security_enabled == Some(true) {
            "Mail-enabled security group"
        } else {
            "Distribution list"
        };
        Self {
            graph_id: group.id.clone(),
            display_name: group.display_name.clone(),
            address: group.mail.clone(),
            // A delta update without `groupTypes` keeps the stored description.
            detail: (!group.group_types.is_empty() || group.security_enabled.is_some())
                .then(|| detail.to_string()),
            hints: None,
        }
    }

    fn team(self) -> Self {
        Self {
            detail: Some("Team".into()),
            ..self
        }
    }
}

/// An object Microsoft 365 still returns as deleted, and when it was deleted where it says.
#[derive(Debug, Clone)]
struct Deleted {
    observed: Observed,
    at: Option<DateTime<Utc>>,
}

/// Reports progress as a short line (Activities shows it while the sync runs).
pub trait Progress: Send + Sync {
    fn report(&self, line: &str);
}

impl<F: Fn(&str) + Send + Sync> Progress for F {
    fn report(&self, line: &str) {
        self(line)
    }
}

/// A whole sync: the lists, then the workload checks.
pub async fn sync_directory(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    graph: &GraphClient,
    org: &organization::Model,
    progress: &dyn Progress,
) -> Result<SyncSummary, InventoryError> {
    let mut summary = list_directory(db, clock, graph, org, progress).await?;
    let checks = check_workloads(db, clock, graph, org, progress).await?;
    summary.checked = checks.checked;
    summary.unchecked = checks.unchecked;
    Ok(summary)
}

fn tenant_of(
    graph: &GraphClient,
    org: &organization::Model,
) -> Result<TenantClient, InventoryError> {
    let tenant_id: TenantId = org
        .tenant_id
        .parse()
        .map_err(|_| InventoryError::NotFound)?;
    Ok(graph.tenant(tenant_id))
}

/// Users, groups, teams and sites, saved and counted: when this returns, every tab of the
/// organization's page is complete (workloads may still say "Checking…").
pub async fn list_directory(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    graph: &GraphClient,
    org: &organization::Model,
    progress: &dyn Progress,
) -> Result<SyncSummary, InventoryError> {
    let tenant = tenant_of(graph, org)?;
    let mut summary = SyncSummary::default();
    progress.report("Reading users");
    sync_users(db, clock, &tenant, org, &mut summary).await?;
    progress.report("Reading groups and teams");
    sync_groups(db, clock, &tenant, org, &mut summary).await?;
    progress.report("Reading sites");
    sync_sites(db, clock, &tenant, org, &mut summary).await?;
    super::items::refresh_counts(db, org.id).await?;
    Ok(summary)
}

async fn sync_users(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    tenant: &TenantClient,
    org: &organization::Model,
    summary: &mut SyncSummary,
) -> Result<(), InventoryError> {
    let start = stored_cursor(db, org.id, USERS_CURSOR).await?;
    let round = collect_round(tenant.users_delta(start)).await?;
    let mut upserts = Vec::new();
    let mut removed = HashSet::new();
    for change in round.changes {
        match change {
            DeltaChange::Upsert(user) => upserts.push(Observed::user(&user)),
            DeltaChange::Removed { id, .. } => {
                removed.insert(id);
            }
        }
    }
    let deleted: HashMap<String, Deleted> = tenant
        .deleted_users()
        .map_ok(|u| {
            (
                u.id.clone(),
                Deleted {
                    observed: Observed::user(&u),
                    at: u.deleted_date_time,
                },
            )
        })
        .try_collect()
        .await?;
    let apply = Apply {
        org_id: org.id,
        kind: ItemKind::User,
        full_round: round.full_sync,
        now: clock.now(),
    };
    reconcile(db, &apply, upserts, removed, &deleted, summary).await?;
    save_cursor(db, org.id, USERS_CURSOR, &round.delta_link).await?;
    // The cursor from before `assignedPlans` was selected is replaced by this one.
    directory_cursor::Entity::delete_by_id((org.id, "users".to_string()))
        .exec(db)
        .await?;
    Ok(())
}

async fn sync_groups(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    tenant: &TenantClient,
    org: &organization::Model,
    summary: &mut SyncSummary,
) -> Result<(), InventoryError> {
    let start = stored_cursor(db, org.id, "groups").await?;
    let round = collect_round(tenant.groups_delta(start)).await?;
    let mut groups = Vec::new();
    let mut teams = Vec::new();
    let mut removed = HashSet::new();
    for change in round.changes {
        match change {
            DeltaChange::Upsert(group) => {
                let observed = Observed::group(&group);
                if group.is_team() {
                    teams.push(observed.clone().team());
                }
                groups.push(observed);
            }
            DeltaChange::Removed { id, .. } => {
                removed.insert(id);
            }
        }
    }
    let mut deleted_groups = HashMap::new();
    let mut deleted_teams = HashMap::new();
    let mut stream = tenant.deleted_groups();
    while let Some(group) = stream.try_next().await? {
        let deleted = Deleted {
            observed: Observed::group(&group),
            at: group.deleted_date_time,
        };
        if group.is_team() {
            deleted_teams.insert(
                group.id.clone(),
                Deleted {
                    observed: deleted.observed.clone().team(),
                    at: deleted.at,
                },
            );
        }
        deleted_groups.insert(group.id.clone(), deleted);
    }
    let now = clock.now();
    let apply = |kind| Apply {
        org_id: org.id,
        kind,
        full_round: round.full_sync,
        now,
    };
    reconcile(
        db,
        &apply(ItemKind::Group),
        groups,
        removed.clone(),
        &deleted_groups,
        summary,
    )
    .await?;
    // A team is a group: it leaves with its group. Teams seen only in a full round are complete.
    reconcile(
        db,
        &apply(ItemKind::Team),
        teams,
        removed,
        &deleted_teams,
        summary,
    )
    .await?;
    save_cursor(db, org.id, "groups", &round.delta_link).await?;
    Ok(())
}

async fn sync_sites(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    tenant: &TenantClient,
    org: &organization::Model,
    summary: &mut SyncSummary,
) -> Result<(), InventoryError> {
    let (sites, _with_deleted) = tenant.sites_with_deleted().await?;
    let mut live = Vec::new();
    let mut deleted = HashMap::new();
    // OneDrive sites are backed up with their users, not as sites.
    for site in sites
        .into_iter()
        .filter(|site| site.is_personal_site != Some(true))
    {
        let observed = Observed {
            display_name: site.display_name.clone().or(site.name.clone()),
            address: site.web_url.clone(),
            detail: Some("SharePoint site".into()),
            graph_id: site.id.clone(),
            hints: None,
        };
        if site.deleted.is_some() {
            // Microsoft does not say when a site was deleted: the first sync that sees it
            // deleted records its own time.
            deleted.insert(site.id, Deleted { observed, at: None });
        } else {
            live.push(observed);
        }
    }
    let apply = Apply {
        org_id: org.id,
        kind: ItemKind::Site,
        full_round: true,
        now: clock.now(),
    };
    reconcile(db, &apply, live, HashSet::new(), &deleted, summary).await?;
    Ok(())
}

/// Where one kind's observations go.
struct Apply {
    org_id: uuid::Uuid,
    kind: ItemKind,
    /// The round listed everything, so rows it did not return are removed.
    full_round: bool,
    now: DateTime<Utc>,
}

fn new_row(
    apply: &Apply,
    observed: Observed,
    deleted_at: Option<DateTime<Utc>>,
) -> protected_item::ActiveModel {
    let state = match deleted_at {
        Some(_) => ItemState::Inactive,
        None => ItemState::Active,
    };
    protected_item::ActiveModel {
        id: Set(ItemId::new().0),
        org_id: Set(apply.org_id),
        kind: Set(apply.kind.as_str().to_string()),
        display_name: Set(observed
            .display_name
            .unwrap_or_else(|| observed.graph_id.clone())),
        address: Set(observed.address.unwrap_or_default()),
        detail: Set(observed.detail.unwrap_or_default()),
        graph_id: Set(observed.graph_id),
        state: Set(state.as_str().into()),
        has_mailbox: Set(None),
        has_drive: Set(None),
        first_seen_at: Set(apply.now),
        changed_at: Set(apply.now),
        inactive_since: Set(deleted_at),
        checked_at: Set(None),
        check_error: Set(None),
        directory_hints: Set(observed.hints.map(DirectoryHints::to_text)),
    }
}

/// Applies one kind's observations: upserts become active rows; ids removed (or, after a full
/// round, not seen) become inactive while Microsoft 365 still lists them as deleted, else gone.
/// Deleted objects without a row — deleted before the organization was added, or between two
/// syncs — get an inactive row at once.
async fn reconcile(
    db: &DatabaseConnection,
    apply: &Apply,
    upserts: Vec<Observed>,
    mut removed: HashSet<String>,
    deleted: &HashMap<String, Deleted>,
    summary: &mut SyncSummary,
) -> Result<(), InventoryError> {
    let now = apply.now;
    let existing: HashMap<String, protected_item::Model> = protected_item::Entity::find()
        .filter(protected_item::Column::OrgId.eq(apply.org_id))
        .filter(protected_item::Column::Kind.eq(apply.kind.as_str()))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.graph_id.clone(), row))
        .collect();
    let seen: HashSet<String> = upserts.iter().map(|o| o.graph_id.clone()).collect();
    if apply.full_round {
        removed.extend(existing.keys().filter(|id| !seen.contains(*id)).cloned());
    }
    // Items already inactive are looked at again: restored ones come back as upserts, purged
    // ones have left deleted items. Gone items Microsoft 365 lists as deleted again become
    // inactive.
    removed.extend(
        existing
            .values()
            .filter(|r| {
                r.state == ItemState::Inactive.as_str()
                    || (r.state == ItemState::Gone.as_str() && deleted.contains_key(&r.graph_id))
            })
            .map(|r| r.graph_id.clone()),
    );

    let mut inserts = Vec::new();
    for observed in upserts {
        removed.remove(&observed.graph_id);
        match existing.get(&observed.graph_id) {
            Some(row) => update_row(db, row, &observed, now, summary).await?,
            None => {
                summary.added += 1;
                inserts.push(new_row(apply, observed, None));
            }
        }
    }
    for (graph_id, gone) in deleted {
        if !existing.contains_key(graph_id) && !seen.contains(graph_id) {
            summary.inactive += 1;
            inserts.push(new_row(
                apply,
                gone.observed.clone(),
                Some(gone.at.unwrap_or(now)),
            ));
        }
    }
    for chunk in inserts.chunks(400) {
        protected_item::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }

    let mut gone = Vec::new();
    for graph_id in removed {
        let Some(row) = existing.get(&graph_id) else {
            continue;
        };
        match deleted.get(&graph_id) {
            Some(deletion) if row.state != ItemState::Inactive.as_str() => {
                let mut model: protected_item::ActiveModel = row.clone().into();
                model.state = Set(ItemState::Inactive.as_str().into());
                model.inactive_since = Set(Some(deletion.at.unwrap_or(now)));
                model.changed_at = Set(now);
                model.update(db).await?;
                summary.inactive += 1;
            }
            Some(_) => {}
            None if row.state != ItemState::Gone.as_str() => gone.push(row.id),
            None => {}
        }
    }
    summary.gone += gone.len() as u64;
    // Kept, marked gone: plans that chose the item and archives of its backups still name it.
    for chunk in gone.chunks(400) {
        protected_item::Entity::update_many()
            .col_expr(
                protected_item::Column::State,
                Expr::value(ItemState::Gone.as_str()),
            )
            .col_expr(protected_item::Column::ChangedAt, Expr::value(now))
            .filter(protected_item::Column::Id.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
    }
    Ok(())
}

async fn update_row(
    db: &DatabaseConnection,
    row: &protected_item::Model,
    observed: &Observed,
    now: DateTime<Utc>,
    summary: &mut SyncSummary,
) -> Result<(), InventoryError> {
    let display_name = observed
        .display_name
        .clone()
        .unwrap_or_else(|| row.display_name.clone());
    let address = observed
        .address
        .clone()
        .unwrap_or_else(|| row.address.clone());
    let detail = observed
        .detail
        .clone()
        .unwrap_or_else(|| row.detail.clone());
    let hints = observed
        .hints
        .map(DirectoryHints::to_text)
        .or_else(|| row.directory_hints.clone());
    let reactivated = row.state != ItemState::Active.as_str();
    let changed =
        display_name != row.display_name || address != row.address || detail != row.detail;
    // New licences (or a restored user) may have brought a mailbox or a OneDrive: check again
    // in this sync rather than at the weekly recheck.
    let recheck = hints != row.directory_hints || reactivated;
    if !changed && !reactivated && !recheck {
        return Ok(());
    }
    let mut model: protected_item::ActiveModel = row.clone().into();
    model.display_name = Set(display_name);
    model.address = Set(address);
    model.detail = Set(detail);
    model.state = Set(ItemState::Active.as_str().into());
    model.inactive_since = Set(None);
    model.directory_hints = Set(hints);
    if recheck {
        model.checked_at = Set(None);
    }
    if changed || reactivated {
        model.changed_at = Set(now);
    }
    model.update(db).await?;
    if reactivated {
        summary.reactivated += 1;
    } else if changed {
        summary.changed += 1;
    }
    Ok(())
}

/// What the workload checks of one sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckSummary {
    pub checked: u64,
    pub unchecked: u64,
}

/// One user to check, with what the directory already told.
struct CheckTarget {
    row: uuid::Uuid,
    graph_id: String,
    hints: Option<DirectoryHints>,
    had_drive: bool,
}

/// The outcome of one user's check: a value per workload that was settled, and why the rest
/// could not be.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CheckOutcome {
    mailbox: Option<bool>,
    drive: Option<bool>,
    error: Option<String>,
}

/// Checks the mailbox and OneDrive of every user that needs it: never checked, last check
/// failed, or checked longer ago than `RECHECK_AFTER`. Sets the tenant's OneDrive/SharePoint
/// ceiling from its licence count first (§5.3), since OneDrive checks spend that bucket.
pub async fn check_workloads(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    graph: &GraphClient,
    org: &organization::Model,
    progress: &dyn Progress,
) -> Result<CheckSummary, InventoryError> {
    let tenant = tenant_of(graph, org)?;
    let now = clock.now();
    let due: Vec<(uuid::Uuid, String, Option<String>, Option<bool>)> =
        protected_item::Entity::find()
            .select_only()
            .column(protected_item::Column::Id)
            .column(protected_item::Column::GraphId)
            .column(protected_item::Column::DirectoryHints)
            .column(protected_item::Column::HasDrive)
            .filter(protected_item::Column::OrgId.eq(org.id))
            .filter(protected_item::Column::Kind.eq(ItemKind::User.as_str()))
            .filter(protected_item::Column::State.eq(ItemState::Active.as_str()))
            .filter(
                Condition::any()
                    .add(protected_item::Column::CheckedAt.is_null())
                    .add(protected_item::Column::CheckError.is_not_null())
                    .add(protected_item::Column::CheckedAt.lt(now - RECHECK_AFTER)),
            )
            .into_tuple()
            .all(db)
            .await?;
    let mut summary = CheckSummary::default();
    if due.is_empty() {
        return Ok(summary);
    }
    let licences = licence_count(db, &tenant, org.id).await?;
    graph.set_tenant_files_limit(
        tenant.tenant_id(),
        files_resource_units_for_licences(licences),
    );
    let total = due.len();
    progress.report(&format!("Checking mailboxes and OneDrive of {total} users"));
    let targets = due
        .into_iter()
        .map(|(row, graph_id, hints, had_drive)| CheckTarget {
            row,
            graph_id,
            hints: hints.as_deref().map(DirectoryHints::parse),
            had_drive: had_drive == Some(true),
        });
    let tenant = &tenant;
    let mut checks = futures::stream::iter(targets)
        .map(|target| async move { (target.row, check_user(tenant, &target).await) })
        .buffer_unordered(CHECK_CONCURRENCY);
    let mut batch: Vec<(uuid::Uuid, CheckOutcome)> = Vec::with_capacity(CHECK_BATCH);
    let mut done = 0usize;
    while let Some((row, outcome)) = checks.next().await {
        if outcome.error.is_some() {
            summary.unchecked += 1;
        } else {
            summary.checked += 1;
        }
        batch.push((row, outcome));
        done += 1;
        if batch.len() >= CHECK_BATCH {
            save_checks(db, clock.now(), std::mem::take(&mut batch)).await?;
            progress.report(&format!("Checked {done} of {total} users"));
        }
    }
    save_checks(db, clock.now(), batch).await?;
    Ok(summary)
}

/// The tenant's licence count: from its subscriptions, or, where those cannot be read, the
/// users the directory shows with a SharePoint plan.
async fn licence_count(
    db: &DatabaseConnection,
    tenant: &TenantClient,
    org_id: uuid::Uuid,
) -> Result<u32, InventoryError> {
    match tenant.sharepoint_licence_count().await {
        Ok(count) if count > 0 => return Ok(count),
        Ok(_) => {}
        Err(e) => {
            tracing::info!(tenant = %tenant.tenant_id(), error = %e, "cannot read subscribedSkus; counting licensed users");
        }
    }
    let licensed = protected_item::Entity::find()
        .filter(protected_item::Column::OrgId.eq(org_id))
        .filter(protected_item::Column::Kind.eq(ItemKind::User.as_str()))
        .filter(protected_item::Column::State.eq(ItemState::Active.as_str()))
        .filter(protected_item::Column::DirectoryHints.like("%sharepoint%"))
        .count(db)
        .await?;
    Ok(u32::try_from(licensed).unwrap_or(u32::MAX))
}

async fn check_user(tenant: &TenantClient, target: &CheckTarget) -> CheckOutcome {
    let hints = target.hints;
    let ask_mailbox = hints.is_none_or(DirectoryHints::mailbox_possible);
    let ask_drive = hints.is_none_or(|h| h.drive_possible(target.had_drive));
    let mailbox = async {
        if ask_mailbox {
            tenant
                .probe_mailbox(&target.graph_id)
                .await
                .map(|status| status == MailboxStatus::Present)
        } else {
            Ok(false)
        }
    };
    let drive = async {
        if ask_drive {
            tenant
                .user_drive(&target.graph_id)
                .await
                .map(|drive| drive.is_some())
        } else {
            Ok(false)
        }
    };
    let (mailbox, drive) = futures::join!(mailbox, drive);
    let mut reasons = Vec::new();
    let mut settle = |result: Result<bool, GraphError>, what: &str| match result {
        Ok(found) => Some(found),
        Err(e) => {
            tracing::info!(tenant = %tenant.tenant_id(), user = %target.graph_id, error = %e, "could not check the {what}");
            reasons.push(format!("{what}: {}", describe(&e)));
            None
        }
    };
    let mailbox = settle(mailbox, "mailbox");
    let drive = settle(drive, "OneDrive");
    CheckOutcome {
        mailbox,
        drive,
        error: (!reasons.is_empty()).then(|| format!("could not check {}", reasons.join("; "))),
    }
}

/// A short reason for the console: Microsoft's status and code, never a URL or a token.
fn describe(error: &GraphError) -> String {
    match (error.status(), error.code()) {
        (Some(status), Some(code)) => format!("Microsoft answered {status} {code}"),
        (Some(status), None) => format!("Microsoft answered {status}"),
        _ => match error.kind() {
            crate::m365::ErrorKind::Unavailable => "Microsoft could not be reached".into(),
            _ => "unexpected answer from Microsoft".into(),
        },
    }
}

/// Writes check outcomes in one transaction, one statement per distinct outcome.
async fn save_checks(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    outcomes: Vec<(uuid::Uuid, CheckOutcome)>,
) -> Result<(), InventoryError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut groups: HashMap<CheckOutcome, Vec<uuid::Uuid>> = HashMap::new();
    for (row, outcome) in outcomes {
        groups.entry(outcome).or_default().push(row);
    }
    let txn = db.begin().await?;
    for (outcome, rows) in groups {
        let mut update = protected_item::Entity::update_many()
            .col_expr(protected_item::Column::CheckedAt, Expr::value(Some(now)))
            .col_expr(
                protected_item::Column::CheckError,
                Expr::value(outcome.error.clone()),
            );
        if let Some(mailbox) = outcome.mailbox {
            update = update.col_expr(
                protected_item::Column::HasMailbox,
                Expr::value(Some(mailbox)),
            );
        }
        if let Some(drive) = outcome.drive {
            update = update.col_expr(protected_item::Column::HasDrive, Expr::value(Some(drive)));
        }
        update
            .filter(protected_item::Column::Id.is_in(rows))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Asks the next sync to check a user's workloads again, e.g. when a backup found the mailbox
/// or OneDrive missing.
pub async fn request_recheck(
    db: &DatabaseConnection,
    org_id: uuid::Uuid,
    graph_id: &str,
) -> Result<(), InventoryError> {
    protected_item::Entity::update_many()
        .col_expr(
            protected_item::Column::CheckedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(protected_item::Column::OrgId.eq(org_id))
        .filter(protected_item::Column::Kind.eq(ItemKind::User.as_str()))
        .filter(protected_item::Column::GraphId.eq(graph_id))
        .exec(db)
        .await?;
    Ok(())
}

async fn stored_cursor(
    db: &DatabaseConnection,
    org_id: uuid::Uuid,
    resource: &str,
) -> Result<DeltaStart, InventoryError> {
    let row = directory_cursor::Entity::find_by_id((org_id, resource.to_string()))
        .one(db)
        .await?;
    Ok(match row {
        Some(row) => DeltaStart::Resume(DeltaLink::from_stored(row.delta_link)),
        None => DeltaStart::Initial,
    })
}

async fn save_cursor(
    db: &DatabaseConnection,
    org_id: uuid::Uuid,
    resource: &str,
    link: &DeltaLink,
) -> Result<(), InventoryError> {
    directory_cursor::Entity::delete_by_id((org_id, resource.to_string()))
        .exec(db)
        .await?;
    directory_cursor::ActiveModel {
        org_id: Set(org_id),
        resource: Set(resource.to_string()),
        delta_link: Set(link.as_str().to_string()),
    }
    .insert(db)
    .await?;
    Ok(())
}
