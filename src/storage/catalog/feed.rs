//! The catalog as a feed for indexes built beside it (full-text search): every entry row has an
//! increasing id and never changes its content once written (a changed item gets a new row), so
//! an index can follow the catalog by remembering the last row id it took. Rows are read per
//! customer only, through the customer's archives, under a tenant scope.
//!
//! Archives of an encrypted plan never feed an index: their content is for whoever enters the
//! plan's password, and an index on the node's disk would keep their words readable without it.

use std::collections::HashSet;

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

/// The customer's archives in its own repository (a customer has archives in the thousands at
/// most, its entries in the millions).
///
/// Rows are read by their id and kept when their archive is in this set, rather than filtered
/// by `archive_id IN (…)` in SQL: given that list, both databases' planners walk the archive
/// index through every one of the customer's rows and sort them by id, which took hundreds of
/// milliseconds per call at a million rows, on each search and each 500-row indexing step.
async fn customer_archives(
    db: &DatabaseConnection,
    customer: CustomerId,
) -> StorageResult<HashSet<uuid::Uuid>> {
    let archives: Vec<uuid::Uuid> = archive::Entity::find()
        .select_only()
        .column(archive::Column::Id)
        .filter(archive::Column::CustomerId.eq(customer.0))
        .filter(archive::Column::RepositoryId.eq(super::RepositoryRef::Customer(customer).column()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(archives.into_iter().collect())
}

/// Catalog rows read per step while scanning by id.
const SCAN: u64 = 2_000;

/// A step of the feed: the customer's rows found, and the last row id looked at (the
/// customer's or not), from which the next step goes on.
#[derive(Debug, Clone, Default)]
pub struct FeedBatch {
    pub entries: Vec<FeedEntry>,
    /// `None` when there was no row above `after` at all.
    pub scanned_to: Option<i64>,
}

/// Up to `limit` rows of the customer's archives with an id above `after`, oldest first. Other
/// customers' rows are stepped over, and `scanned_to` moves past them, so an index that keeps it
/// as its watermark never reads them again.
pub async fn entries_after(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    after: i64,
    limit: u64,
) -> StorageResult<FeedBatch> {
    let archives = customer_archives(db, scope.tenant()).await?;
    let mut batch = FeedBatch::default();
    let mut after = after;
    loop {
        let rows = catalog_entry::Entity::find()
            .filter(catalog_entry::Column::Id.gt(after))
            .order_by_asc(catalog_entry::Column::Id)
            .limit(SCAN)
            .all(db)
            .await?;
        for row in &rows {
            batch.scanned_to = Some(row.id);
            if archives.contains(&row.archive_id) {
                batch.entries.push(FeedEntry::of(row));
                if batch.entries.len() as u64 >= limit {
                    return Ok(batch);
                }
            }
        }
        match rows.last() {
            Some(last) if rows.len() as u64 == SCAN => after = last.id,
            _ => return Ok(batch),
        }
    }
}

/// How many of the customer's rows have an id above `after`: what an index whose watermark is
/// `after` has still to take. Reads only ids and archives of the rows above `after`, none when
/// the index is up to date.
pub async fn pending_after(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    after: i64,
) -> StorageResult<u64> {
    let archives = customer_archives(db, scope.tenant()).await?;
    let mut pending = 0;
    let mut after = after;
    loop {
        let rows: Vec<(i64, uuid::Uuid)> = catalog_entry::Entity::find()
            .select_only()
            .column(catalog_entry::Column::Id)
            .column(catalog_entry::Column::ArchiveId)
            .filter(catalog_entry::Column::Id.gt(after))
            .order_by_asc(catalog_entry::Column::Id)
            .limit(SCAN * 10)
            .into_tuple()
            .all(db)
            .await?;
        pending += rows
            .iter()
            .filter(|(_, archive)| archives.contains(archive))
            .count() as u64;
        match rows.last() {
            Some((last, _)) if rows.len() as u64 == SCAN * 10 => after = *last,
            _ => return Ok(pending),
        }
    }
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
    let archives = customer_archives(db, scope.tenant()).await?;
    let rows = catalog_entry::Entity::find()
        .filter(catalog_entry::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(rows
        .iter()
        .filter(|row| archives.contains(&row.archive_id))
        .map(FeedEntry::of)
        .collect())
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
