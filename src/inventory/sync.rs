//! Discovery sync: brings an organization's protected items in line with Microsoft 365.
//! Users and groups come from delta queries resumed from the stored link (a re-sync with no
//! changes costs only the delta requests); sites from the full site listing (Graph has no site
//! delta for app-only discovery). Soft-deleted users and groups are read from deleted items:
//! an item removed in Microsoft 365 but still listed there becomes *inactive*; one no longer
//! returned anywhere is *gone* and its row is removed (its backups, kept by storage, are not
//! touched here).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};

use super::entities::{directory_cursor, organization, protected_item};
use super::{InventoryError, ItemKind, ItemState};
use crate::clock::Clock;
use crate::ids::ItemId;
use crate::m365::{
    DeltaChange, DeltaLink, DeltaStart, GraphClient, MailboxStatus, TenantClient, TenantId,
    collect_round,
};

/// What one sync changed, for Activities and the organization's page.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncSummary {
    pub added: u64,
    pub changed: u64,
    pub inactive: u64,
    pub reactivated: u64,
    pub gone: u64,
}

impl SyncSummary {
    pub fn sentence(&self) -> String {
        format!(
            "{} added, {} changed, {} became inactive, {} active again, {} gone",
            self.added, self.changed, self.inactive, self.reactivated, self.gone
        )
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

pub async fn sync_directory(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    graph: &GraphClient,
    org: &organization::Model,
    progress: &dyn Progress,
) -> Result<SyncSummary, InventoryError> {
    let tenant_id: TenantId = org
        .tenant_id
        .parse()
        .map_err(|_| InventoryError::NotFound)?;
    let tenant = graph.tenant(tenant_id);
    let mut summary = SyncSummary::default();

    progress.report("Reading users");
    let new_users = sync_users(db, clock, &tenant, org, &mut summary).await?;
    progress.report("Reading groups and teams");
    sync_groups(db, clock, &tenant, org, &mut summary).await?;
    progress.report("Reading sites");
    sync_sites(db, clock, &tenant, org, &mut summary).await?;
    if !new_users.is_empty() {
        progress.report(&format!(
            "Checking mailboxes and OneDrive of {} new users",
            new_users.len()
        ));
        probe_workloads(db, &tenant, new_users).await?;
    }
    Ok(summary)
}

async fn sync_users(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    tenant: &TenantClient,
    org: &organization::Model,
    summary: &mut SyncSummary,
) -> Result<Vec<(uuid::Uuid, String)>, InventoryError> {
    let start = stored_cursor(db, org.id, "users").await?;
    let round = collect_round(tenant.users_delta(start)).await?;
    let mut upserts = Vec::new();
    let mut removed = HashSet::new();
    for change in round.changes {
        match change {
            DeltaChange::Upsert(user) => upserts.push(Observed {
                address: user.mail.clone().or(user.user_principal_name.clone()),
                detail: user.user_type.clone(),
                display_name: user.display_name,
                graph_id: user.id,
            }),
            DeltaChange::Removed { id, .. } => {
                removed.insert(id);
            }
        }
    }
    let deleted: HashSet<String> = tenant
        .deleted_users()
        .map_ok(|u| u.id)
        .try_collect()
        .await?;
    let added = reconcile(
        db,
        clock,
        org.id,
        ItemKind::User,
        upserts,
        removed,
        round.full_sync,
        &deleted,
        summary,
    )
    .await?;
    save_cursor(db, org.id, "users", &round.delta_link).await?;
    Ok(added)
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
                let detail = if group.is_microsoft365() {
                    "Microsoft 365 group"
                } else if group.security_enabled == Some(true) && group.mail_enabled != Some(true) {
                    "Security group"
                } else if group.security_enabled == Some(true) {
                    "Mail-enabled security group"
                } else {
                    "Distribution list"
                };
                let observed = Observed {
                    graph_id: group.id.clone(),
                    display_name: group.display_name.clone(),
                    address: group.mail.clone(),
                    // A delta update without `groupTypes` keeps the stored description.
                    detail: (!group.group_types.is_empty() || group.security_enabled.is_some())
                        .then(|| detail.to_string()),
                };
                if group.is_team() {
                    teams.push(Observed {
                        detail: Some("Team".into()),
                        ..observed.clone()
                    });
                }
                groups.push(observed);
            }
            DeltaChange::Removed { id, .. } => {
                removed.insert(id);
            }
        }
    }
    let deleted: HashSet<String> = tenant
        .deleted_groups()
        .map_ok(|g| g.id)
        .try_collect()
        .await?;
    reconcile(
        db,
        clock,
        org.id,
        ItemKind::Group,
        groups,
        removed.clone(),
        round.full_sync,
        &deleted,
        summary,
    )
    .await?;
    // A team is a group: it leaves with its group. Teams seen only in a full round are complete.
    reconcile(
        db,
        clock,
        org.id,
        ItemKind::Team,
        teams,
        removed,
        round.full_sync,
        &deleted,
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
    let sites = tenant.sites().await?;
    let observed = sites
        .into_iter()
        // OneDrive sites are backed up with their users, not as sites.
        .filter(|site| site.is_personal_site != Some(true))
        .map(|site| Observed {
            display_name: site.display_name.clone().or(site.name.clone()),
            address: site.web_url.clone(),
            detail: Some("SharePoint site".into()),
            graph_id: site.id,
        })
        .collect();
    reconcile(
        db,
        clock,
        org.id,
        ItemKind::Site,
        observed,
        HashSet::new(),
        true,
        &HashSet::new(),
        summary,
    )
    .await?;
    Ok(())
}

/// Applies one kind's observations: upserts become active rows; ids removed (or, after a full
/// round, not seen) become inactive while Microsoft 365 still lists them as deleted, else gone.
/// Returns the new rows, whose workloads are probed afterwards.
#[allow(clippy::too_many_arguments)]
async fn reconcile(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    org_id: uuid::Uuid,
    kind: ItemKind,
    upserts: Vec<Observed>,
    mut removed: HashSet<String>,
    full_round: bool,
    deleted: &HashSet<String>,
    summary: &mut SyncSummary,
) -> Result<Vec<(uuid::Uuid, String)>, InventoryError> {
    let now = clock.now();
    let existing: HashMap<String, protected_item::Model> = protected_item::Entity::find()
        .filter(protected_item::Column::OrgId.eq(org_id))
        .filter(protected_item::Column::Kind.eq(kind.as_str()))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.graph_id.clone(), row))
        .collect();
    let seen: HashSet<&str> = upserts.iter().map(|o| o.graph_id.as_str()).collect();
    if full_round {
        removed.extend(
            existing
                .keys()
                .filter(|id| !seen.contains(id.as_str()))
                .cloned(),
        );
    }
    // Items already inactive are looked at again: restored ones come back as upserts, purged
    // ones have left deleted items.
    removed.extend(
        existing
            .values()
            .filter(|r| r.state == ItemState::Inactive.as_str())
            .map(|r| r.graph_id.clone()),
    );

    let mut new_rows = Vec::new();
    let mut inserts = Vec::new();
    for observed in upserts {
        removed.remove(&observed.graph_id);
        match existing.get(&observed.graph_id) {
            Some(row) => update_row(db, row, &observed, now, summary).await?,
            None => {
                let id = ItemId::new().0;
                new_rows.push((id, observed.graph_id.clone()));
                inserts.push(protected_item::ActiveModel {
                    id: Set(id),
                    org_id: Set(org_id),
                    kind: Set(kind.as_str().to_string()),
                    display_name: Set(observed
                        .display_name
                        .unwrap_or_else(|| observed.graph_id.clone())),
                    address: Set(observed.address.unwrap_or_default()),
                    detail: Set(observed.detail.unwrap_or_default()),
                    graph_id: Set(observed.graph_id),
                    state: Set(ItemState::Active.as_str().into()),
                    has_mailbox: Set(None),
                    has_drive: Set(None),
                    first_seen_at: Set(now),
                    changed_at: Set(now),
                    inactive_since: Set(None),
                });
            }
        }
    }
    summary.added += inserts.len() as u64;
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
        if deleted.contains(&graph_id) {
            if row.state != ItemState::Inactive.as_str() {
                let mut model: protected_item::ActiveModel = row.clone().into();
                model.state = Set(ItemState::Inactive.as_str().into());
                model.inactive_since = Set(Some(now));
                model.changed_at = Set(now);
                model.update(db).await?;
                summary.inactive += 1;
            }
        } else {
            gone.push(row.id);
        }
    }
    summary.gone += gone.len() as u64;
    for chunk in gone.chunks(400) {
        protected_item::Entity::delete_many()
            .filter(protected_item::Column::Id.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
    }
    Ok(new_rows)
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
    let reactivated = row.state == ItemState::Inactive.as_str();
    let changed =
        display_name != row.display_name || address != row.address || detail != row.detail;
    if !changed && !reactivated {
        return Ok(());
    }
    let mut model: protected_item::ActiveModel = row.clone().into();
    model.display_name = Set(display_name);
    model.address = Set(address);
    model.detail = Set(detail);
    model.state = Set(ItemState::Active.as_str().into());
    model.inactive_since = Set(None);
    model.changed_at = Set(now);
    model.update(db).await?;
    if reactivated {
        summary.reactivated += 1;
    } else {
        summary.changed += 1;
    }
    Ok(())
}

/// Whether each new user has a mailbox and a OneDrive; a few at a time, within the governor.
async fn probe_workloads(
    db: &DatabaseConnection,
    tenant: &TenantClient,
    users: Vec<(uuid::Uuid, String)>,
) -> Result<(), InventoryError> {
    let mut probes = futures::stream::iter(users)
        .map(|(row, graph_id)| async move { (row, tenant.user_workloads(&graph_id).await) })
        .buffer_unordered(8);
    while let Some((row, result)) = probes.next().await {
        let workloads = result?;
        protected_item::Entity::update_many()
            .col_expr(
                protected_item::Column::HasMailbox,
                Some(workloads.mailbox == MailboxStatus::Present).into(),
            )
            .col_expr(
                protected_item::Column::HasDrive,
                Some(workloads.onedrive.is_some()).into(),
            )
            .filter(protected_item::Column::Id.eq(row))
            .exec(db)
            .await?;
    }
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
