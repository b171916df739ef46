//! Protected and unprotected items per workload, and seats (protected items) per customer.
//!
//! An item's workload is *eligible* when the item is active and has it (a user with a mailbox, a
//! user with a OneDrive; unknown counts as having it until a check says otherwise). It is
//! *protected* when an enabled plan of its organization backs up that workload for it, by name
//! or through "All users"-style kinds. A *seat* is an item with at least one protected workload.
//!
//! Everything comes from three aggregate queries over any number of customers: active items
//! counted by organization, kind and workload flags; the enabled plans; and the items chosen one
//! by one in those plans.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use super::{CHUNK, ReportResult};
use crate::inventory::entities::{organization, protected_item};
use crate::inventory::{ItemKind, ItemState};
use crate::plans::entities::{plan, plan_item};
use crate::plans::workloads_of;
use crate::storage::catalog::Workload;

/// Items that look alike for coverage: same organization, kind and workload flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Group {
    org: Uuid,
    kind: ItemKind,
    has_mailbox: Option<bool>,
    has_drive: Option<bool>,
}

impl Group {
    fn eligible(&self, workload: Workload) -> bool {
        if !workloads_of(self.kind).contains(&workload) {
            return false;
        }
        match workload {
            Workload::Mailbox | Workload::ArchiveMailbox | Workload::GroupMailbox => {
                self.has_mailbox != Some(false)
            }
            Workload::OneDrive => self.has_drive != Some(false),
            Workload::Site | Workload::Team => true,
        }
    }
}

/// (organization, kind, has mailbox, has drive, active items) as the database counts them.
type GroupCount = (Uuid, String, Option<bool>, Option<bool>, i64);

#[derive(Debug, Clone)]
struct EnabledPlan {
    customer: Uuid,
    org: Uuid,
    workloads: Vec<Workload>,
    all_kinds: Vec<ItemKind>,
}

/// One workload's line on the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadCoverage {
    pub workload: Workload,
    pub label: &'static str,
    pub protected: u64,
    pub unprotected: u64,
}

impl WorkloadCoverage {
    pub fn eligible(&self) -> u64 {
        self.protected + self.unprotected
    }

    /// Share protected, 0–100 (100 when there is nothing to protect).
    pub fn percent(&self) -> u64 {
        match self.eligible() {
            0 => 100,
            all => self.protected * 100 / all,
        }
    }
}

/// The overview's name for each workload.
pub fn workload_label(workload: Workload) -> &'static str {
    match workload {
        Workload::Mailbox => "Mailboxes",
        Workload::ArchiveMailbox => "Archive mailboxes",
        Workload::OneDrive => "OneDrives",
        Workload::Site => "Sites (incl. group sites)",
        Workload::GroupMailbox => "Group mailboxes",
        Workload::Team => "Teams",
    }
}

/// What coverage is computed from, for a set of customers.
#[derive(Debug, Default)]
pub struct CoverageFacts {
    customer_of_org: HashMap<Uuid, Uuid>,
    groups: HashMap<Group, u64>,
    plans: HashMap<Uuid, EnabledPlan>,
    /// (plan, item, the item's group) for items chosen one by one.
    chosen: Vec<(Uuid, Uuid, Group)>,
}

impl CoverageFacts {
    /// Reads the facts of `customers` (ids from the caller's access).
    pub async fn load(db: &DatabaseConnection, customers: &[Uuid]) -> ReportResult<Self> {
        let mut facts = CoverageFacts::default();
        for chunk in customers.chunks(CHUNK) {
            let orgs: Vec<(Uuid, Uuid)> = organization::Entity::find()
                .select_only()
                .column(organization::Column::Id)
                .column(organization::Column::CustomerId)
                .filter(organization::Column::CustomerId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(db)
                .await?;
            facts.customer_of_org.extend(orgs);
            for row in plan::Entity::find()
                .filter(plan::Column::CustomerId.is_in(chunk.iter().copied()))
                .filter(plan::Column::Enabled.eq(true))
                .all(db)
                .await?
            {
                let split = |text: &str| {
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                };
                facts.plans.insert(
                    row.id,
                    EnabledPlan {
                        customer: row.customer_id,
                        org: row.org_id,
                        workloads: split(&row.workloads)
                            .iter()
                            .filter_map(|w| w.parse().ok())
                            .collect(),
                        all_kinds: split(&row.all_kinds)
                            .iter()
                            .filter_map(|k| ItemKind::parse(k))
                            .collect(),
                    },
                );
            }
        }
        let orgs: Vec<Uuid> = facts.customer_of_org.keys().copied().collect();
        for chunk in orgs.chunks(CHUNK) {
            let rows: Vec<GroupCount> = protected_item::Entity::find()
                .select_only()
                .column(protected_item::Column::OrgId)
                .column(protected_item::Column::Kind)
                .column(protected_item::Column::HasMailbox)
                .column(protected_item::Column::HasDrive)
                .column_as(protected_item::Column::Id.count(), "n")
                .filter(protected_item::Column::OrgId.is_in(chunk.iter().copied()))
                .filter(protected_item::Column::State.eq(ItemState::Active.as_str()))
                .group_by(protected_item::Column::OrgId)
                .group_by(protected_item::Column::Kind)
                .group_by(protected_item::Column::HasMailbox)
                .group_by(protected_item::Column::HasDrive)
                .into_tuple()
                .all(db)
                .await?;
            for (org, kind, has_mailbox, has_drive, n) in rows {
                let Some(kind) = ItemKind::parse(&kind) else {
                    continue;
                };
                let group = Group {
                    org,
                    kind,
                    has_mailbox,
                    has_drive,
                };
                *facts.groups.entry(group).or_default() += u64::try_from(n).unwrap_or(0);
            }
        }
        let plan_ids: Vec<Uuid> = facts.plans.keys().copied().collect();
        for chunk in plan_ids.chunks(CHUNK) {
            let query = Query::select()
                .column((plan_item::Entity, plan_item::Column::PlanId))
                .column((plan_item::Entity, plan_item::Column::ItemId))
                .column((protected_item::Entity, protected_item::Column::OrgId))
                .column((protected_item::Entity, protected_item::Column::Kind))
                .column((protected_item::Entity, protected_item::Column::HasMailbox))
                .column((protected_item::Entity, protected_item::Column::HasDrive))
                .from(plan_item::Entity)
                .inner_join(
                    protected_item::Entity,
                    Expr::col((protected_item::Entity, protected_item::Column::Id))
                        .equals((plan_item::Entity, plan_item::Column::ItemId)),
                )
                .and_where(
                    Expr::col((plan_item::Entity, plan_item::Column::PlanId))
                        .is_in(chunk.iter().copied()),
                )
                .and_where(
                    Expr::col((protected_item::Entity, protected_item::Column::State))
                        .eq(ItemState::Active.as_str()),
                )
                .to_owned();
            for row in db.query_all(&query).await? {
                let plan: Uuid = row.try_get("", "plan_id")?;
                let item: Uuid = row.try_get("", "item_id")?;
                let org: Uuid = row.try_get("", "org_id")?;
                let kind: String = row.try_get("", "kind")?;
                let has_mailbox: Option<bool> = row.try_get("", "has_mailbox")?;
                let has_drive: Option<bool> = row.try_get("", "has_drive")?;
                let Some(kind) = ItemKind::parse(&kind) else {
                    continue;
                };
                // An item chosen in a plan of another organization is never backed up by it.
                if facts.plans.get(&plan).is_none_or(|p| p.org != org) {
                    continue;
                }
                facts.chosen.push((
                    plan,
                    item,
                    Group {
                        org,
                        kind,
                        has_mailbox,
                        has_drive,
                    },
                ));
            }
        }
        Ok(facts)
    }

    fn customer_groups(&self, customer: Uuid) -> impl Iterator<Item = (&Group, &u64)> {
        self.groups
            .iter()
            .filter(move |(g, _)| self.customer_of_org.get(&g.org) == Some(&customer))
    }

    /// Whether a plan of the group's organization covers all of the group's kind for `workload`.
    fn covered_by_kind(&self, group: &Group, workload: Workload) -> bool {
        self.plans.values().any(|p| {
            p.org == group.org
                && p.all_kinds.contains(&group.kind)
                && p.workloads.contains(&workload)
        })
    }

    /// Protected and unprotected items of each workload of one customer.
    pub fn workloads(&self, customer: Uuid) -> Vec<WorkloadCoverage> {
        Workload::ALL
            .into_iter()
            .map(|workload| {
                let mut eligible = 0;
                let mut protected = 0;
                let mut whole_groups = HashSet::new();
                for (group, n) in self.customer_groups(customer) {
                    if !group.eligible(workload) {
                        continue;
                    }
                    eligible += n;
                    if self.covered_by_kind(group, workload) {
                        protected += n;
                        whole_groups.insert(*group);
                    }
                }
                let chosen: HashSet<Uuid> = self
                    .chosen
                    .iter()
                    .filter(|(plan, _, group)| {
                        self.customer_of_org.get(&group.org) == Some(&customer)
                            && group.eligible(workload)
                            && !whole_groups.contains(group)
                            && self
                                .plans
                                .get(plan)
                                .is_some_and(|p| p.workloads.contains(&workload))
                    })
                    .map(|(_, item, _)| *item)
                    .collect();
                protected += chosen.len() as u64;
                WorkloadCoverage {
                    workload,
                    label: workload_label(workload),
                    protected,
                    unprotected: eligible.saturating_sub(protected),
                }
            })
            .collect()
    }

    /// Items of each customer with at least one protected workload.
    pub fn seats(&self) -> HashMap<Uuid, u64> {
        let mut seats: HashMap<Uuid, u64> = HashMap::new();
        let mut whole_groups = HashSet::new();
        for (group, n) in &self.groups {
            let covered = self.plans.values().any(|p| {
                p.org == group.org
                    && p.all_kinds.contains(&group.kind)
                    && p.workloads.iter().any(|w| group.eligible(*w))
            });
            if covered && let Some(customer) = self.customer_of_org.get(&group.org) {
                *seats.entry(*customer).or_default() += n;
                whole_groups.insert(*group);
            }
        }
        let mut chosen: HashSet<(Uuid, Uuid)> = HashSet::new();
        for (plan, item, group) in &self.chosen {
            if whole_groups.contains(group) {
                continue;
            }
            let Some(plan) = self.plans.get(plan) else {
                continue;
            };
            if plan.workloads.iter().any(|w| group.eligible(*w)) {
                chosen.insert((plan.customer, *item));
            }
        }
        for (customer, _) in chosen {
            *seats.entry(customer).or_default() += 1;
        }
        seats
    }
}
