//! The folders of a recovery point with their item counts (`storage_point_folder`). Opening a
//! point needs its folder tree and the count of the folder shown; reducing every catalog row
//! live at the point to its folder costs a scan of all of them (200,000 rows for a
//! 100,000-item mailbox) on every open. A point's catalog view never changes once recorded
//! (later points only end entries after it), so the summary is made once: when the point is
//! recorded, or on its first open for points recorded before the table existed.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use super::entity::{catalog_entry, point_folder};
use super::{RecoveryPoint, export_with_readable_copy, live_at};
use crate::storage::error::StorageResult;

/// Rows per insert: well under both databases' bound-parameter limits.
const INSERT_CHUNK: usize = 500;

/// One folder of a recovery point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointFolder {
    /// `""` for the top of the archive, else `Inbox`, `Inbox/Projects`, …
    pub path: String,
    /// Catalog entries directly in the folder.
    pub entries: u64,
    /// What a browse list shows directly in the folder: a mailbox item's full-fidelity export
    /// is left out where its readable copy is beside it.
    pub listed: u64,
}

/// The folders of `point`, sorted by path (`""` first), ancestors included; summarised on the
/// first call and read back after.
pub(crate) async fn of_point(
    db: &impl ConnectionTrait,
    point: &RecoveryPoint,
) -> StorageResult<Vec<PointFolder>> {
    let stored = point_folder::Entity::find()
        .filter(point_folder::Column::PointId.eq(point.id.0))
        .all(db)
        .await?;
    if !stored.is_empty() {
        let mut folders: Vec<PointFolder> = stored
            .into_iter()
            .map(|row| PointFolder {
                path: row.path,
                entries: u64::try_from(row.entries).unwrap_or(0),
                listed: u64::try_from(row.listed).unwrap_or(0),
            })
            .collect();
        // Sorted here, byte by byte, as `summarise` sorts: a database's locale collation may
        // ignore `/` and put a folder's children away from it.
        folders.sort_by(|a, b| a.path.cmp(&b.path));
        return Ok(folders);
    }
    let folders = summarise(db, point).await?;
    store(db, point, &folders).await?;
    Ok(folders)
}

/// Makes and keeps the summary of a point just recorded, so even its first open is quick.
pub(crate) async fn record(db: &impl ConnectionTrait, point: &RecoveryPoint) -> StorageResult<()> {
    of_point(db, point).await.map(|_| ())
}

/// One pass over the point's live entries: per folder, its entries and listed items.
async fn summarise(
    db: &impl ConnectionTrait,
    point: &RecoveryPoint,
) -> StorageResult<Vec<PointFolder>> {
    // `rtrim(path, <path without slashes>)` strips the name after the last `/`, on SQLite and
    // PostgreSQL alike.
    let folder_of = Expr::cust("rtrim(path, replace(path, '/', ''))");
    let listed = Func::sum(Expr::case(export_with_readable_copy(), 0).finally(1));
    let rows: Vec<(String, i64, i64)> = catalog_entry::Entity::find()
        .select_only()
        .column_as(folder_of.clone(), "folder")
        .column_as(Expr::col(catalog_entry::Column::Id).count(), "entries")
        .column_as(Expr::expr(listed).cast_as("bigint"), "listed")
        .filter(live_at(point.archive, point.seq))
        .group_by(folder_of)
        .into_tuple()
        .all(db)
        .await?;
    let mut folders: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // The top is always there, so an empty point still has a summary.
    folders.insert(String::new(), (0, 0));
    for (folder, entries, listed) in rows {
        let folder = folder.trim_end_matches('/').to_string();
        let mut ancestor = folder.as_str();
        while !ancestor.is_empty() {
            ancestor = ancestor.rsplit_once('/').map_or("", |(parent, _)| parent);
            folders.entry(ancestor.to_string()).or_default();
        }
        let counts = folders.entry(folder).or_default();
        counts.0 += u64::try_from(entries).unwrap_or(0);
        counts.1 += u64::try_from(listed).unwrap_or(0);
    }
    Ok(folders
        .into_iter()
        .map(|(path, (entries, listed))| PointFolder {
            path,
            entries,
            listed,
        })
        .collect())
}

async fn store(
    db: &impl ConnectionTrait,
    point: &RecoveryPoint,
    folders: &[PointFolder],
) -> StorageResult<()> {
    for chunk in folders.chunks(INSERT_CHUNK) {
        let rows = chunk.iter().map(|folder| point_folder::ActiveModel {
            point_id: Set(point.id.0),
            path: Set(folder.path.clone()),
            entries: Set(folder.entries as i64),
            listed: Set(folder.listed as i64),
        });
        // Two first opens at once both summarise; the second's rows are the same and dropped.
        point_folder::Entity::insert_many(rows)
            .on_conflict(
                sea_orm::sea_query::OnConflict::new()
                    .do_nothing()
                    .to_owned(),
            )
            .try_insert()
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}
