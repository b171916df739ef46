//! The catalog as a feed for indexes built beside it (full-text search): every entry row has an
//! increasing id and never changes its content once written (a changed item gets a new row), so
//! an index can follow the catalog by remembering the last row id it took. Rows are read per
//! customer only, through the customer's archives, under a tenant scope.
//!
//! Archives of an encrypted plan never feed an index: their content is for whoever enters the
//! plan's password, and an index on the node's disk would keep their words readable without it.

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entity::{archive, catalog_entry, recovery_point};
use super::{ArchiveId, CatalogEntry, RecoveryPoint, entry_from_row, point_from_row};
use crate::ids::CustomerId;
use crate::storage::error::StorageResult;
use crate::storage::scope::TenantScope;

/// One catalog row as an index sees it: its id, its archive and the range of recovery points
/// (by sequence number) it is present in.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub row_id: i64,
    pub archive: ArchiveId,
    pub valid_from_seq: i64,
    /// Exclusive; `None` while present in the archive's newest point.
    pub valid_to_seq: Option<i64>,
    pub entry: CatalogEntry,
}

impl FeedEntry {
    fn of(row: &catalog_entry::Model) -> Self {
        Self {
            row_id: row.id,
            archive: ArchiveId(row.archive_id),
            valid_from_seq: row.valid_from_seq,
            valid_to_seq: row.valid_to_seq,
            entry: entry_from_row(row),
        }
    }
}

/// Entry rows of the customer's archives in its own repository only (archive ids looked up
/// first: a customer has archives in the thousands at most, its entries in the millions).
async fn of_customer(
    db: &DatabaseConnection,
    customer: CustomerId,
) -> StorageResult<sea_orm::Select<catalog_entry::Entity>> {
    let archives: Vec<uuid::Uuid> = archive::Entity::find()
        .select_only()
        .column(archive::Column::Id)
        .filter(archive::Column::CustomerId.eq(customer.0))
        .filter(archive::Column::RepositoryId.eq(super::RepositoryRef::Customer(customer).column()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(catalog_entry::Entity::find().filter(catalog_entry::Column::ArchiveId.is_in(archives)))
}

/// Up to `limit` rows of the customer's archives with an id above `after`, oldest first.
pub async fn entries_after(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    after: i64,
    limit: u64,
) -> StorageResult<Vec<FeedEntry>> {
    let rows = of_customer(db, scope.tenant())
        .await?
        .filter(catalog_entry::Column::Id.gt(after))
        .order_by_asc(catalog_entry::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.iter().map(FeedEntry::of).collect())
}

/// The newest row id of the customer's archives (0 when there is none).
pub async fn last_entry_id(db: &DatabaseConnection, scope: &dyn TenantScope) -> StorageResult<i64> {
    let newest = of_customer(db, scope.tenant())
        .await?
        .order_by_desc(catalog_entry::Column::Id)
        .one(db)
        .await?;
    Ok(newest.map_or(0, |row| row.id))
}

/// The rows with these ids that belong to the customer's archives; another customer's ids (or
/// rows removed by retention since) are simply absent.
pub async fn entries_by_ids(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    ids: &[i64],
) -> StorageResult<Vec<FeedEntry>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = of_customer(db, scope.tenant())
        .await?
        .filter(catalog_entry::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(rows.iter().map(FeedEntry::of).collect())
}

/// The customer's recovery points of one archive, oldest first.
pub async fn points_of(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    archive_id: ArchiveId,
) -> StorageResult<Vec<RecoveryPoint>> {
    let rows = recovery_point::Entity::find()
        .filter(recovery_point::Column::ArchiveId.eq(archive_id.0))
        .filter(recovery_point::Column::CustomerId.eq(scope.tenant().0))
        .order_by_asc(recovery_point::Column::Seq)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(point_from_row).collect())
}
