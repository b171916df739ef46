//! Organizations of a customer: adding one after a proven consent, listing, removing, and the
//! sync schedule — every `interval` counted from the moment it was added, never shifted by a
//! Refresh.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::InventoryError;
use super::entities::organization;
use crate::accounts::access::CustomerScope;
use crate::clock::Clock;
use crate::ids::OrgId;
use crate::m365::{GraphClient, TenantId};

/// An organization reached through a customer scope: proof the user may see it.
#[derive(Debug, Clone)]
pub struct OrgScope {
    org: organization::Model,
    customer: CustomerScope,
}

impl OrgScope {
    pub fn id(&self) -> OrgId {
        OrgId(self.org.id)
    }

    pub fn org(&self) -> &organization::Model {
        &self.org
    }

    pub fn customer(&self) -> &CustomerScope {
        &self.customer
    }

    /// For the workers, which act for the system rather than a signed-in user.
    pub fn for_worker(org: organization::Model, customer: CustomerScope) -> Self {
        Self { org, customer }
    }
}

pub async fn organizations(
    db: &DatabaseConnection,
    scope: &CustomerScope,
) -> Result<Vec<organization::Model>, InventoryError> {
    Ok(organization::Entity::find()
        .filter(organization::Column::CustomerId.eq(scope.id().0))
        .order_by_asc(organization::Column::DisplayName)
        .all(db)
        .await?)
}

/// How a customer's organizations stand, for a partner's Customers list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CustomerSyncHealth {
    pub organizations: usize,
    /// Organizations whose last sync failed.
    pub failed: usize,
}

/// The sync health of each of `customers` (ids a caller got from `Access::customers`).
pub async fn sync_health(
    db: &DatabaseConnection,
    customers: &[uuid::Uuid],
) -> Result<std::collections::HashMap<uuid::Uuid, CustomerSyncHealth>, InventoryError> {
    let mut health = std::collections::HashMap::<uuid::Uuid, CustomerSyncHealth>::new();
    for org in organization::Entity::find()
        .filter(organization::Column::CustomerId.is_in(customers.iter().copied()))
        .all(db)
        .await?
    {
        let entry = health.entry(org.customer_id).or_default();
        entry.organizations += 1;
        if org.last_sync_failed() {
            entry.failed += 1;
        }
    }
    Ok(health)
}

/// The organization `id` of this customer, else `NotFound` (also for other customers' ids).
pub async fn organization(
    db: &DatabaseConnection,
    scope: &CustomerScope,
    id: OrgId,
) -> Result<OrgScope, InventoryError> {
    let org = organization::Entity::find_by_id(id.0)
        .filter(organization::Column::CustomerId.eq(scope.id().0))
        .one(db)
        .await?
        .ok_or(InventoryError::NotFound)?;
    Ok(OrgScope {
        org,
        customer: scope.clone(),
    })
}

#[derive(Debug)]
pub enum Added {
    New(organization::Model),
    /// Consent was given again for an organization this customer already has.
    AlreadyAdded(organization::Model),
}

/// Adds the organization of `tenant`, whose administrator has just been proven, to the customer.
/// A tenant belongs to one customer. Its names and domains are not known yet: the first sync
/// reads them (`refresh_organization`), so the browser is not held while Microsoft answers.
pub async fn add_organization(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    scope: &CustomerScope,
    tenant: TenantId,
    interval: Duration,
) -> Result<Added, InventoryError> {
    scope.require_change()?;
    let tenant = tenant.to_string();
    if let Some(existing) = organization::Entity::find()
        .filter(organization::Column::TenantId.eq(&tenant))
        .one(db)
        .await?
    {
        return if existing.customer_id == scope.id().0 {
            Ok(Added::AlreadyAdded(existing))
        } else {
            Err(InventoryError::TenantTakenByAnotherCustomer)
        };
    }
    let now = clock.now();
    let model = organization::ActiveModel {
        id: Set(OrgId::new().0),
        customer_id: Set(scope.id().0),
        display_name: Set(tenant.clone()),
        tenant_id: Set(tenant),
        default_domain: Set(String::new()),
        initial_domain: Set(String::new()),
        added_at: Set(now),
        last_sync_at: Set(None),
        last_sync_outcome: Set(None),
        next_sync_at: Set(now + interval),
        item_counts: Set("{}".into()),
    };
    Ok(Added::New(model.insert(db).await?))
}

/// Proves the tenant with an app-only token and reads its `organization`, recording its name
/// and domains (the first sync verifies a new organization this way; later ones notice a
/// rename). A refusal keeps its Graph error, so the page can explain it (`inventory::failure`).
pub async fn refresh_organization(
    db: &DatabaseConnection,
    graph: &GraphClient,
    org: &organization::Model,
) -> Result<organization::Model, InventoryError> {
    let tenant: TenantId = org
        .tenant_id
        .parse()
        .map_err(|_| InventoryError::NotFound)?;
    // A refused sign-in (consent revoked) and an unavailable service are told apart by the
    // error's kind when the failure is explained (`inventory::failure`).
    let proof = graph.prove_tenant(tenant).await?;
    let organization = &proof.organization;
    let initial = organization
        .initial_domain()
        .unwrap_or_default()
        .to_string();
    let mut active: organization::ActiveModel = org.clone().into();
    active.display_name = Set(organization
        .display_name
        .clone()
        .unwrap_or_else(|| initial.clone()));
    active.default_domain = Set(organization
        .default_domain()
        .map(str::to_string)
        .unwrap_or_else(|| initial.clone()));
    active.initial_domain = Set(initial);
    Ok(active.update(db).await?)
}

/// The tenant ids of every organization on this instance, whichever customer holds it. System
/// scope, for demo mode's start only: the built-in tenant gets back the consent Microsoft would
/// have kept across a restart. Never for showing to a user.
pub async fn tenant_ids_on_instance(
    db: &DatabaseConnection,
) -> Result<Vec<uuid::Uuid>, InventoryError> {
    let tenants: Vec<String> = organization::Entity::find()
        .select_only()
        .column(organization::Column::TenantId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(tenants
        .iter()
        .filter_map(|tenant| tenant.parse().ok())
        .collect())
}

/// Removes the organization and its item list. Its backups stay in Backup storage.
pub async fn remove_organization(
    db: &DatabaseConnection,
    org: &OrgScope,
) -> Result<(), InventoryError> {
    org.customer().require_change()?;
    organization::Entity::delete_by_id(org.id().0)
        .exec(db)
        .await?;
    Ok(())
}

/// The first scheduled sync strictly after `now`: `added_at + k × interval`, k ≥ 1.
pub fn next_sync_after(
    added_at: DateTime<Utc>,
    interval: Duration,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let interval_secs = interval.num_seconds().max(1);
    let elapsed = (now - added_at).num_seconds().max(0);
    let k = elapsed / interval_secs + 1;
    added_at + Duration::seconds(k * interval_secs)
}

/// Records how a sync ended: its summary, or why it failed.
pub async fn record_sync_outcome(
    db: &DatabaseConnection,
    org: OrgId,
    at: DateTime<Utc>,
    outcome: Result<&str, &str>,
) -> Result<(), InventoryError> {
    let text = match outcome {
        Ok(summary) => format!("{}{summary}", organization::SUCCEEDED),
        Err(reason) => format!("{}{reason}", organization::FAILED),
    };
    organization::Entity::update_many()
        .col_expr(organization::Column::LastSyncAt, Some(at).into())
        .col_expr(organization::Column::LastSyncOutcome, Some(text).into())
        .filter(organization::Column::Id.eq(org.0))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedule_counts_from_the_moment_added() {
        let added = Utc.with_ymd_and_hms(2026, 11, 1, 9, 30, 0).unwrap();
        let day = Duration::hours(24);
        assert_eq!(next_sync_after(added, day, added), added + day);
        assert_eq!(
            next_sync_after(added, day, added + Duration::hours(23)),
            added + day
        );
        assert_eq!(next_sync_after(added, day, added + day), added + day * 2);
        // Down for three days: the next slot keeps the time of day it was added at.
        assert_eq!(
            next_sync_after(added, day, added + Duration::hours(75)),
            added + day * 4
        );
    }
}
