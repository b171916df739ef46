//! Reading and saving plans: validation with a message per field, the rule that one item's
//! workload is in at most one plan, optimistic concurrency through the plan's version, and what a
//! run backs up.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use super::entities::{plan, plan_item};
use super::{
    DEFAULT_SECONDS_PER_ITEM, FieldError, MAX_NAME_CHARS, MAX_RETENTION_DAYS, MAX_RETENTION_POINTS,
    Plan, PlanDraft, PlanError, all_label, schedule, workloads_of,
};
use crate::accounts::access::CustomerScope;
use crate::clock::Clock;
use crate::ids::{ItemId, OrgId, PlanId};
use crate::inventory::entities::protected_item;
use crate::inventory::{ItemKind, ItemState, OrgScope, organizations};
use crate::jobs::backup_check::workload_label;
use crate::storage::catalog::{self, Workload};
use crate::storage::{BackupStorage, NewEncryptedRepository, RetentionRule, retention};

/// Conflicts listed beside the items field; the rest are counted.
const CONFLICTS_SHOWN: usize = 5;

async fn items_of(
    db: &impl ConnectionTrait,
    plans: &[Uuid],
) -> Result<HashMap<Uuid, Vec<ItemId>>, sea_orm::DbErr> {
    let mut by_plan: HashMap<Uuid, Vec<ItemId>> = HashMap::new();
    if plans.is_empty() {
        return Ok(by_plan);
    }
    for row in plan_item::Entity::find()
        .filter(plan_item::Column::PlanId.is_in(plans.iter().copied()))
        .all(db)
        .await?
    {
        by_plan
            .entry(row.plan_id)
            .or_default()
            .push(ItemId(row.item_id));
    }
    Ok(by_plan)
}

async fn with_items(
    db: &impl ConnectionTrait,
    rows: Vec<plan::Model>,
) -> Result<Vec<Plan>, sea_orm::DbErr> {
    let mut items = items_of(db, &rows.iter().map(|p| p.id).collect::<Vec<_>>()).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let chosen = items.remove(&row.id).unwrap_or_default();
            Plan::from_row(row, chosen)
        })
        .collect())
}

/// The customer's plans, by name.
pub async fn list_plans(
    db: &DatabaseConnection,
    scope: &CustomerScope,
) -> Result<Vec<Plan>, PlanError> {
    let rows = plan::Entity::find()
        .filter(plan::Column::CustomerId.eq(scope.id().as_uuid()))
        .order_by_asc(plan::Column::Name)
        .all(db)
        .await?;
    Ok(with_items(db, rows).await?)
}

/// One of the customer's plans; another customer's plan is not found.
pub async fn find_plan(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    id: PlanId,
) -> Result<Plan, PlanError> {
    let row = plan::Entity::find_by_id(id.0)
        .filter(plan::Column::CustomerId.eq(scope.id().as_uuid()))
        .one(db)
        .await?
        .ok_or(PlanError::NotFound)?;
    with_items(db, vec![row])
        .await?
        .pop()
        .ok_or(PlanError::NotFound)
}

/// A plan read by the job system, which runs plans of every customer (its system scope).
pub async fn plan_for_run(
    db: &impl ConnectionTrait,
    id: PlanId,
) -> Result<Option<Plan>, sea_orm::DbErr> {
    let Some(row) = plan::Entity::find_by_id(id.0).one(db).await? else {
        return Ok(None);
    };
    Ok(with_items(db, vec![row]).await?.pop())
}

/// A validated draft.
struct Valid {
    name: String,
    org: OrgScope,
    workloads: Vec<Workload>,
    all_kinds: Vec<ItemKind>,
    items: Vec<protected_item::Model>,
    retention: RetentionRule,
    /// A new plan's customer encryption password (an existing plan's never changes).
    encryption_password: Option<String>,
}

fn message(field: &'static str, text: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: text.into(),
    }
}

fn unique<T: PartialEq>(mut list: Vec<T>) -> Vec<T> {
    let mut seen = Vec::with_capacity(list.len());
    for value in list.drain(..) {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    seen
}

async fn validate(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    draft: &PlanDraft,
    editing: Option<PlanId>,
) -> Result<Valid, PlanError> {
    let mut errors = Vec::new();
    let name = draft.name.trim().to_string();
    if name.is_empty() {
        errors.push(message("name", "Give the plan a name."));
    } else if name.chars().count() > MAX_NAME_CHARS {
        errors.push(message(
            "name",
            format!("Keep the name to {MAX_NAME_CHARS} characters."),
        ));
    } else if name.chars().any(char::is_control) {
        errors.push(message(
            "name",
            "The name cannot contain control characters.",
        ));
    } else {
        let same_name = plan::Entity::find()
            .filter(plan::Column::CustomerId.eq(scope.id().as_uuid()))
            .all(db)
            .await?
            .into_iter()
            .any(|p| Some(PlanId(p.id)) != editing && p.name.to_lowercase() == name.to_lowercase());
        if same_name {
            errors.push(message("name", "A plan with this name already exists."));
        }
    }
    let org = match draft.org.trim().parse::<OrgId>() {
        Ok(id) => organizations::organization(db, scope, id).await.ok(),
        Err(_) => None,
    };
    if org.is_none() {
        errors.push(message(
            "org",
            "Choose one of this customer's Microsoft 365 organizations.",
        ));
    }
    let mut workloads = Vec::new();
    for text in &draft.workloads {
        match text.parse::<Workload>() {
            Ok(workload) => workloads.push(workload),
            Err(_) => {
                errors.push(message("workloads", "Choose workloads from the list."));
                break;
            }
        }
    }
    let workloads = unique(workloads);
    if workloads.is_empty() && draft.workloads.is_empty() {
        errors.push(message(
            "workloads",
            "Choose at least one workload to back up.",
        ));
    }
    let mut all_kinds = Vec::new();
    for text in &draft.all_kinds {
        match ItemKind::parse(text) {
            Some(kind) => all_kinds.push(kind),
            None => {
                errors.push(message(
                    "items",
                    "Choose All users, groups, sites or teams from the list.",
                ));
                break;
            }
        }
    }
    let all_kinds = unique(all_kinds);
    let mut item_ids = Vec::new();
    for text in &draft.items {
        match text.trim().parse::<Uuid>() {
            Ok(id) => item_ids.push(id),
            Err(_) => {
                item_ids.clear();
                errors.push(message(
                    "items",
                    "Some chosen items are not items of this organization.",
                ));
                break;
            }
        }
    }
    let item_ids = unique(item_ids);
    let mut items = Vec::new();
    if let Some(org) = &org
        && !item_ids.is_empty()
    {
        // An item of another organization or customer is not found here, as an unknown id.
        items = protected_item::Entity::find()
            .filter(protected_item::Column::Id.is_in(item_ids.iter().copied()))
            .filter(protected_item::Column::OrgId.eq(org.id().as_uuid()))
            .all(db)
            .await?;
        if items.len() != item_ids.len() {
            errors.push(message(
                "items",
                "Some chosen items are not items of this organization.",
            ));
        }
    }
    if all_kinds.is_empty() && draft.items.is_empty() {
        errors.push(message(
            "items",
            "Choose what to protect: All users, All groups, All sites, All teams, or items one by one.",
        ));
    }
    let retention = match (
        draft.retention_kind.as_str(),
        draft.retention_value.trim().parse::<u32>(),
    ) {
        ("points", Ok(n)) if (1..=MAX_RETENTION_POINTS).contains(&n) => {
            Some(RetentionRule::KeepLast(n))
        }
        ("days", Ok(n)) if (1..=MAX_RETENTION_DAYS).contains(&n) => {
            Some(RetentionRule::KeepYoungerThanDays(n))
        }
        ("points", _) => {
            errors.push(message(
                "retention",
                format!("Keep between 1 and {MAX_RETENTION_POINTS} recovery points."),
            ));
            None
        }
        ("days", _) => {
            errors.push(message(
                "retention",
                format!("Keep recovery points between 1 and {MAX_RETENTION_DAYS} days."),
            ));
            None
        }
        _ => {
            errors.push(message(
                "retention",
                "Choose whether to keep a number of recovery points or a number of days.",
            ));
            None
        }
    };
    // Encryption is chosen once, when the plan is created; an edit never changes or removes it,
    // whatever the form sends.
    let encryption_password = if editing.is_none() && draft.encrypt == "on" {
        if let Some(problem) = super::encryption_password_problem(
            &draft.encryption_password,
            &draft.encryption_password_again,
        ) {
            errors.push(problem);
        }
        Some(draft.encryption_password.clone())
    } else {
        None
    };
    if errors.is_empty() {
        let kinds: HashSet<ItemKind> = all_kinds
            .iter()
            .copied()
            .chain(items.iter().filter_map(|i| ItemKind::parse(&i.kind)))
            .collect();
        let applies = kinds
            .iter()
            .any(|k| workloads_of(*k).iter().any(|w| workloads.contains(w)));
        if !applies {
            errors.push(message(
                "workloads",
                "None of the chosen workloads applies to the chosen items (mailboxes and OneDrive are users', sites are sites' and groups').",
            ));
        }
    }
    match (errors.is_empty(), org, retention) {
        (true, Some(org), Some(retention)) => {
            let valid = Valid {
                name,
                org,
                workloads,
                all_kinds,
                items,
                retention,
                encryption_password,
            };
            let conflicts = conflicts(db, &valid, editing).await?;
            if conflicts.is_empty() {
                Ok(valid)
            } else {
                Err(PlanError::Invalid(conflicts))
            }
        }
        _ => Err(PlanError::Invalid(errors)),
    }
}

fn kind_plural(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::User => "users",
        ItemKind::Group => "groups",
        ItemKind::Site => "sites",
        ItemKind::Team => "teams",
    }
}

fn labels(workloads: &[Workload]) -> String {
    workloads
        .iter()
        .map(|w| workload_label(*w))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the draft would put an item's workload in a second plan of its organization.
async fn conflicts(
    db: &DatabaseConnection,
    valid: &Valid,
    editing: Option<PlanId>,
) -> Result<Vec<FieldError>, sea_orm::DbErr> {
    let mut others = plan::Entity::find().filter(plan::Column::OrgId.eq(valid.org.id().as_uuid()));
    if let Some(id) = editing {
        others = others.filter(plan::Column::Id.ne(id.0));
    }
    let others = with_items(db, others.all(db).await?).await?;
    let explicit: Vec<Uuid> = others
        .iter()
        .flat_map(|p| p.items.iter().map(|i| i.0))
        .collect();
    let kinds: HashMap<Uuid, (ItemKind, String)> = if explicit.is_empty() {
        HashMap::new()
    } else {
        protected_item::Entity::find()
            .filter(protected_item::Column::Id.is_in(explicit))
            .all(db)
            .await?
            .into_iter()
            .filter_map(|i| Some((i.id, (ItemKind::parse(&i.kind)?, i.display_name))))
            .collect()
    };
    let mut found = Vec::new();
    for other in &others {
        let shared: Vec<Workload> = other
            .workloads
            .iter()
            .copied()
            .filter(|w| valid.workloads.contains(w))
            .collect();
        if shared.is_empty() {
            continue;
        }
        let shared_for = |kind: ItemKind| -> Vec<Workload> {
            shared
                .iter()
                .copied()
                .filter(|w| workloads_of(kind).contains(w))
                .collect()
        };
        for kind in &valid.all_kinds {
            let overlap = shared_for(*kind);
            if overlap.is_empty() {
                continue;
            }
            if other.all_kinds.contains(kind) {
                found.push(format!(
                    "{} are already protected ({}) by the plan “{}”.",
                    all_label(*kind),
                    labels(&overlap),
                    other.name
                ));
                continue;
            }
            let names: Vec<&str> = other
                .items
                .iter()
                .filter_map(|i| kinds.get(&i.0))
                .filter(|(k, _)| k == kind)
                .map(|(_, name)| name.as_str())
                .collect();
            if !names.is_empty() {
                found.push(format!(
                    "The plan “{}” already protects some {} ({}): {}. Remove them from that plan first, or choose them one by one here.",
                    other.name,
                    kind_plural(*kind),
                    labels(&overlap),
                    names.iter().take(3).copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        for item in &valid.items {
            let Some(kind) = ItemKind::parse(&item.kind) else {
                continue;
            };
            let overlap = shared_for(kind);
            if overlap.is_empty() {
                continue;
            }
            if other.all_kinds.contains(&kind) || other.items.contains(&ItemId(item.id)) {
                found.push(format!(
                    "{}: {} already protected by the plan “{}”.",
                    item.display_name,
                    if overlap.len() == 1 {
                        format!("{} is", labels(&overlap))
                    } else {
                        format!("{} are", labels(&overlap))
                    },
                    other.name
                ));
            }
        }
    }
    let more = found.len().saturating_sub(CONFLICTS_SHOWN);
    let mut errors: Vec<FieldError> = found
        .into_iter()
        .take(CONFLICTS_SHOWN)
        .map(|text| message("items", text))
        .collect();
    if more > 0 {
        errors.push(message(
            "items",
            format!("… and {more} more already in other plans."),
        ));
    }
    Ok(errors)
}

/// Items a run would back up now, for the load estimate.
async fn item_count(
    db: &impl ConnectionTrait,
    org: OrgId,
    all_kinds: &[ItemKind],
    chosen: usize,
) -> Result<i64, sea_orm::DbErr> {
    let mut count = chosen as i64;
    if !all_kinds.is_empty() {
        count += protected_item::Entity::find()
            .filter(protected_item::Column::OrgId.eq(org.as_uuid()))
            .filter(protected_item::Column::Kind.is_in(all_kinds.iter().map(|k| k.as_str())))
            .filter(protected_item::Column::State.eq(ItemState::Active.as_str()))
            .count(db)
            .await? as i64;
    }
    Ok(count)
}

fn joined<T>(list: &[T], text: impl Fn(&T) -> &'static str) -> String {
    list.iter().map(text).collect::<Vec<_>>().join(",")
}

async fn estimated_load(
    db: &impl ConnectionTrait,
    valid: &Valid,
    seconds_per_item: i32,
) -> Result<i64, sea_orm::DbErr> {
    let items = item_count(db, valid.org.id(), &valid.all_kinds, valid.items.len()).await?;
    Ok(items.max(1) * valid.workloads.len().max(1) as i64 * i64::from(seconds_per_item.max(1)))
}

async fn replace_items(
    db: &impl ConnectionTrait,
    plan: Uuid,
    items: &[protected_item::Model],
) -> Result<(), sea_orm::DbErr> {
    plan_item::Entity::delete_many()
        .filter(plan_item::Column::PlanId.eq(plan))
        .exec(db)
        .await?;
    for chunk in items.chunks(500) {
        plan_item::Entity::insert_many(chunk.iter().map(|item| plan_item::ActiveModel {
            plan_id: Set(plan),
            item_id: Set(item.id),
        }))
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

fn retention_columns(rule: RetentionRule) -> (&'static str, i32) {
    match rule {
        RetentionRule::KeepLast(n) => ("points", i32::try_from(n).unwrap_or(i32::MAX)),
        RetentionRule::KeepYoungerThanDays(n) => ("days", i32::try_from(n).unwrap_or(i32::MAX)),
    }
}

/// Creates a plan, enabled, with the daily start time Skyvault assigns. A plan with a customer
/// encryption password gets its own repository, registered in the same transaction.
pub async fn create_plan(
    db: &DatabaseConnection,
    storage: &BackupStorage,
    clock: &dyn Clock,
    scope: &CustomerScope,
    draft: &PlanDraft,
) -> Result<Plan, PlanError> {
    scope.require_change()?;
    let valid = validate(db, scope, draft, None).await?;
    let now = clock.now();
    let id = PlanId::new();
    let txn = db.begin().await?;
    let load = estimated_load(&txn, &valid, DEFAULT_SECONDS_PER_ITEM).await?;
    let start_minute = schedule::assign_start_minute(&txn).await?;
    let (retention_kind, retention_value) = retention_columns(valid.retention);
    let encrypted_repository = match &valid.encryption_password {
        Some(password) => Some(
            storage
                .register_encrypted_repository(
                    &txn,
                    &NewEncryptedRepository {
                        customer: scope.id(),
                        plan: id.0,
                        plan_name: &valid.name,
                        password,
                    },
                )
                .await?,
        ),
        None => None,
    };
    plan::Entity::insert(plan::ActiveModel {
        id: Set(id.0),
        customer_id: Set(scope.id().as_uuid()),
        org_id: Set(valid.org.id().as_uuid()),
        name: Set(valid.name.clone()),
        enabled: Set(true),
        workloads: Set(joined(&valid.workloads, |w| w.as_str())),
        all_kinds: Set(joined(&valid.all_kinds, |k| k.as_str())),
        retention_kind: Set(retention_kind.into()),
        retention_value: Set(retention_value),
        start_minute: Set(start_minute),
        estimated_load: Set(load),
        seconds_per_item: Set(DEFAULT_SECONDS_PER_ITEM),
        next_run_at: Set(schedule::next_run_after(start_minute, now)),
        last_run_at: Set(None),
        version: Set(1),
        created_at: Set(now),
        encrypted_repository_id: Set(encrypted_repository.map(|id| id.0)),
    })
    .exec_without_returning(&txn)
    .await?;
    replace_items(&txn, id.0, &valid.items).await?;
    txn.commit().await?;
    find_plan(db, scope, id).await
}

/// Saves an edited plan. A form opened at an older version than the plan's is refused with
/// `Stale`, so a second browser's save is never silently lost. The start time stays.
pub async fn update_plan(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    id: PlanId,
    draft: &PlanDraft,
) -> Result<Plan, PlanError> {
    scope.require_change()?;
    let current = find_plan(db, scope, id).await?;
    let Ok(version) = draft.version.trim().parse::<i32>() else {
        return Err(PlanError::Stale);
    };
    if version != current.version {
        return Err(PlanError::Stale);
    }
    let valid = validate(db, scope, draft, Some(id)).await?;
    let txn = db.begin().await?;
    let load = estimated_load(&txn, &valid, current.seconds_per_item).await?;
    let (retention_kind, retention_value) = retention_columns(valid.retention);
    let saved = plan::Entity::update_many()
        .col_expr(plan::Column::Name, Expr::value(valid.name.clone()))
        .col_expr(plan::Column::OrgId, Expr::value(valid.org.id().as_uuid()))
        .col_expr(
            plan::Column::Workloads,
            Expr::value(joined(&valid.workloads, |w| w.as_str())),
        )
        .col_expr(
            plan::Column::AllKinds,
            Expr::value(joined(&valid.all_kinds, |k| k.as_str())),
        )
        .col_expr(plan::Column::RetentionKind, Expr::value(retention_kind))
        .col_expr(plan::Column::RetentionValue, Expr::value(retention_value))
        .col_expr(plan::Column::EstimatedLoad, Expr::value(load))
        .col_expr(plan::Column::Version, Expr::value(version + 1))
        .filter(plan::Column::Id.eq(id.0))
        .filter(plan::Column::CustomerId.eq(scope.id().as_uuid()))
        .filter(plan::Column::Version.eq(version))
        .exec(&txn)
        .await?;
    if saved.rows_affected != 1 {
        // Another save won between our read and this write.
        return Err(PlanError::Stale);
    }
    replace_items(&txn, id.0, &valid.items).await?;
    txn.commit().await?;
    find_plan(db, scope, id).await
}

/// Adds items to a plan (Protect on the Microsoft 365 page), with the same checks as an edit.
pub async fn protect_items(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    id: PlanId,
    items: &[String],
) -> Result<Plan, PlanError> {
    let plan = find_plan(db, scope, id).await?;
    let mut draft = plan.draft();
    draft.items.extend(items.iter().cloned());
    update_plan(db, scope, id, &draft).await
}

/// Enables or disables a plan; a disabled plan keeps its start time and runs again once enabled.
pub async fn set_enabled(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    scope: &CustomerScope,
    id: PlanId,
    enabled: bool,
) -> Result<Plan, PlanError> {
    scope.require_change()?;
    let plan = find_plan(db, scope, id).await?;
    plan::Entity::update_many()
        .col_expr(plan::Column::Enabled, Expr::value(enabled))
        .col_expr(
            plan::Column::NextRunAt,
            Expr::value(schedule::next_run_after(plan.start_minute, clock.now())),
        )
        .col_expr(plan::Column::Version, Expr::value(plan.version + 1))
        .filter(plan::Column::Id.eq(id.0))
        .filter(plan::Column::CustomerId.eq(scope.id().as_uuid()))
        .exec(db)
        .await?;
    find_plan(db, scope, id).await
}

/// Deletes a plan. Its backups stay unless `keep_backups` is false: then the archives of its
/// items' workloads are deleted too (space comes back at the next prune). Returns how many
/// archives were deleted.
pub async fn delete_plan(
    db: &DatabaseConnection,
    storage: &BackupStorage,
    scope: &CustomerScope,
    id: PlanId,
    keep_backups: bool,
) -> Result<usize, PlanError> {
    scope.require_change()?;
    let plan = find_plan(db, scope, id).await?;
    let mut deleted = 0;
    if !keep_backups {
        let targets = plan_targets(db, &plan, true).await?;
        let wanted: HashSet<(Uuid, Workload)> =
            targets.iter().map(|t| (t.item.id, t.workload)).collect();
        for archive in catalog::list_archives(db, scope).await? {
            // The plan's backups are those in its repository (an encrypted plan's own, or the
            // customer's for a plain plan).
            if archive.org == plan.org
                && archive.encrypted_repository == plan.encrypted_repository
                && wanted.contains(&(archive.item.0, archive.workload))
            {
                retention::delete_archive(storage, scope, archive.id).await?;
                deleted += 1;
            }
        }
    }
    plan::Entity::delete_many()
        .filter(plan::Column::Id.eq(id.0))
        .filter(plan::Column::CustomerId.eq(scope.id().as_uuid()))
        .exec(db)
        .await?;
    plan_item::Entity::delete_many()
        .filter(plan_item::Column::PlanId.eq(id.0))
        .exec(db)
        .await?;
    Ok(deleted)
}

/// The encrypted repository of the plan that protects `item`'s `workload`, if that plan has a
/// customer encryption password: a backup made outside a plan run (`skyvault admin back-up`)
/// must land where the plan's own backups do. System scope, for the command line.
pub async fn encrypted_repository_for(
    db: &impl ConnectionTrait,
    org: OrgId,
    item: ItemId,
    workload: Workload,
) -> Result<Option<crate::storage::EncryptedRepositoryId>, sea_orm::DbErr> {
    let rows = plan::Entity::find()
        .filter(plan::Column::OrgId.eq(org.as_uuid()))
        .filter(plan::Column::EncryptedRepositoryId.is_not_null())
        .all(db)
        .await?;
    for plan in with_items(db, rows).await? {
        let covers = plan_targets(db, &plan, true)
            .await?
            .iter()
            .any(|t| t.item.id == item.0 && t.workload == workload);
        if covers {
            return Ok(plan.encrypted_repository);
        }
    }
    Ok(None)
}

/// One workload of one item that a plan run backs up.
#[derive(Debug, Clone)]
pub struct PlanTarget {
    pub item: protected_item::Model,
    pub workload: Workload,
}

/// What a run of `plan` backs up: its chosen items and every item of its "All" kinds, each
/// with the plan's workloads that apply to it. Inactive items, and items gone from Microsoft 365,
/// are skipped unless `include_inactive` (retention, which still applies to their archives);
/// a gone item keeps its row, so a plan that chose it still names it.
pub async fn plan_targets(
    db: &impl ConnectionTrait,
    plan: &Plan,
    include_inactive: bool,
) -> Result<Vec<PlanTarget>, sea_orm::DbErr> {
    let mut rows = Vec::new();
    if !plan.items.is_empty() {
        for chunk in plan.items.chunks(500) {
            rows.extend(
                protected_item::Entity::find()
                    .filter(protected_item::Column::OrgId.eq(plan.org.as_uuid()))
                    .filter(protected_item::Column::Id.is_in(chunk.iter().map(|i| i.0)))
                    .all(db)
                    .await?,
            );
        }
    }
    if !plan.all_kinds.is_empty() {
        rows.extend(
            protected_item::Entity::find()
                .filter(protected_item::Column::OrgId.eq(plan.org.as_uuid()))
                .filter(
                    protected_item::Column::Kind.is_in(plan.all_kinds.iter().map(|k| k.as_str())),
                )
                .all(db)
                .await?,
        );
    }
    let mut seen = HashSet::new();
    rows.retain(|row| seen.insert(row.id));
    rows.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.id.cmp(&b.id)));
    let mut targets = Vec::new();
    for item in rows {
        if !include_inactive && item.state != ItemState::Active.as_str() {
            continue;
        }
        let Some(kind) = ItemKind::parse(&item.kind) else {
            continue;
        };
        for workload in &plan.workloads {
            if workloads_of(kind).contains(workload) {
                targets.push(PlanTarget {
                    item: item.clone(),
                    workload: *workload,
                });
            }
        }
    }
    Ok(targets)
}

/// Records a finished run: when it ran and, learned from it, how long an item takes, which
/// the load estimate of the plan (and of a rebalance) uses from now on.
pub async fn record_run(
    db: &impl ConnectionTrait,
    id: PlanId,
    finished_at: DateTime<Utc>,
    items: u64,
    seconds: i64,
) -> Result<(), sea_orm::DbErr> {
    let mut update = plan::Entity::update_many()
        .col_expr(plan::Column::LastRunAt, Expr::value(Some(finished_at)))
        .filter(plan::Column::Id.eq(id.0));
    if items > 0 {
        let per_item = (seconds.max(1) / items as i64).clamp(1, 24 * 3600) as i32;
        update = update
            .col_expr(plan::Column::SecondsPerItem, Expr::value(per_item))
            .col_expr(
                plan::Column::EstimatedLoad,
                Expr::value((items as i64).max(1) * i64::from(per_item)),
            );
    }
    update.exec(db).await?;
    Ok(())
}

/// Which plans protect the items of one organization, for its page.
#[derive(Debug, Default)]
pub struct Coverage {
    by_kind: HashMap<&'static str, Vec<String>>,
    by_item: HashMap<Uuid, Vec<String>>,
    /// The organization's plans (id, name), for Protect.
    pub plans: Vec<(PlanId, String)>,
}

impl Coverage {
    /// The names of the plans protecting this item.
    pub fn plans_of(&self, item: &protected_item::Model) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .by_kind
            .get(item.kind.as_str())
            .into_iter()
            .flatten()
            .chain(self.by_item.get(&item.id).into_iter().flatten())
            .map(String::as_str)
            .collect();
        names.dedup();
        names
    }
}

pub async fn coverage(db: &DatabaseConnection, org: &OrgScope) -> Result<Coverage, PlanError> {
    let plans = list_plans(db, org.customer())
        .await?
        .into_iter()
        .filter(|p| p.org == org.id());
    let mut coverage = Coverage::default();
    for plan in plans {
        for kind in &plan.all_kinds {
            coverage
                .by_kind
                .entry(kind.as_str())
                .or_default()
                .push(plan.name.clone());
        }
        for item in &plan.items {
            coverage
                .by_item
                .entry(item.0)
                .or_default()
                .push(plan.name.clone());
        }
        coverage.plans.push((plan.id, plan.name));
    }
    Ok(coverage)
}

/// The most items the plan form lists to choose from; larger organizations use All users (or
/// Protect on the Microsoft 365 page, which searches and pages).
pub const CHOOSABLE_ITEMS: u64 = 500;

/// Items of an organization to choose from in the plan form, by kind and name, with the ones
/// already chosen (`chosen`) always included.
pub async fn choosable_items(
    db: &DatabaseConnection,
    org: &OrgScope,
    chosen: &[Uuid],
) -> Result<Vec<protected_item::Model>, PlanError> {
    use sea_orm::QuerySelect;
    let mut items = protected_item::Entity::find()
        .filter(protected_item::Column::OrgId.eq(org.id().as_uuid()))
        .filter(protected_item::Column::State.ne(ItemState::Gone.as_str()))
        .order_by_asc(protected_item::Column::Kind)
        .order_by_asc(protected_item::Column::DisplayName)
        .limit(CHOOSABLE_ITEMS)
        .all(db)
        .await?;
    let listed: HashSet<Uuid> = items.iter().map(|i| i.id).collect();
    let missing: Vec<Uuid> = chosen
        .iter()
        .copied()
        .filter(|id| !listed.contains(id))
        .collect();
    for chunk in missing.chunks(500) {
        items.extend(
            protected_item::Entity::find()
                .filter(protected_item::Column::OrgId.eq(org.id().as_uuid()))
                .filter(protected_item::Column::Id.is_in(chunk.iter().copied()))
                .all(db)
                .await?,
        );
    }
    Ok(items)
}

/// The names of the customer's items a job's outcomes name (items of other customers are never
/// looked up: the job was found through the same scope).
pub async fn item_names(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    items: &[Uuid],
) -> Result<HashMap<Uuid, String>, PlanError> {
    let orgs: Vec<Uuid> = organizations::organizations(db, scope)
        .await?
        .into_iter()
        .map(|o| o.id)
        .collect();
    let mut names = HashMap::new();
    for chunk in items.chunks(500) {
        for item in protected_item::Entity::find()
            .filter(protected_item::Column::Id.is_in(chunk.iter().copied()))
            .filter(protected_item::Column::OrgId.is_in(orgs.iter().copied()))
            .all(db)
            .await?
        {
            names.insert(item.id, item.display_name);
        }
    }
    Ok(names)
}
