//! Turns a protected item of the inventory into a backup target, for workers and the command
//! line; an item of an encrypted plan is backed up into that plan's repository. System scope: the caller decided this item is to be backed up.

use sea_orm::{DatabaseConnection, EntityTrait};

use crate::ids::{CustomerId, ItemId, OrgId};
use crate::inventory::entities::{organization, protected_item};
use crate::m365::TenantId;
use crate::storage::catalog::Workload;

use super::{BackupError, BackupTarget};

/// The target of backing up `item`'s `workload`.
pub async fn target_for_item(
    db: &DatabaseConnection,
    item: ItemId,
    workload: Workload,
) -> Result<BackupTarget, BackupError> {
    let row = protected_item::Entity::find_by_id(item.as_uuid())
        .one(db)
        .await
        .map_err(|err| BackupError::Unavailable(format!("the inventory could not be read: {err}")))?
        .ok_or_else(|| BackupError::Unavailable("no such protected item".into()))?;
    let org = organization::Entity::find_by_id(row.org_id)
        .one(db)
        .await
        .map_err(|err| BackupError::Unavailable(format!("the inventory could not be read: {err}")))?
        .ok_or_else(|| BackupError::Unavailable("the item's organization is gone".into()))?;
    let tenant: TenantId = org
        .tenant_id
        .parse()
        .map_err(|_| BackupError::Unavailable("the organization's tenant id is invalid".into()))?;
    let encrypted_repository =
        crate::plans::encrypted_repository_for(db, OrgId(org.id), item, workload)
            .await
            .map_err(|err| {
                BackupError::Unavailable(format!("the plans could not be read: {err}"))
            })?;
    Ok(BackupTarget {
        customer: CustomerId(org.customer_id),
        org: OrgId(org.id),
        tenant,
        item,
        graph_id: row.graph_id,
        workload,
        display_name: row.display_name,
        encrypted_repository,
    })
}
