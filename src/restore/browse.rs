//! Browsing backups: an archive's recovery points by date, "the state on a day", and one point
//! as a folder tree beside a paged, sorted list of the items in the open folder. Everything is
//! read from the catalog (never the repository), through the user's scope; this module shows
//! metadata only, so read-only users may use all of it.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::DatabaseConnection;

use crate::storage::TenantScope;
use crate::storage::catalog::{
    self, Archive, ArchiveId, FolderPage, FolderPageQuery, ItemOrder, RecoveryPoint,
    RecoveryPointId, Workload,
};
use crate::storage::{StorageError, StorageResult};

/// Items per page of a folder's list.
pub const PAGE_SIZE: u64 = 50;

/// An archive with its recovery points, newest first.
#[derive(Debug, Clone)]
pub struct ArchiveHistory {
    pub archive: Archive,
    pub points: Vec<RecoveryPoint>,
}

pub async fn archive_history(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    archive: ArchiveId,
) -> StorageResult<ArchiveHistory> {
    let archive = catalog::find_archive(db, scope, archive).await?;
    let mut points = catalog::list_recovery_points(db, scope, archive.id).await?;
    points.reverse();
    Ok(ArchiveHistory { archive, points })
}

/// "The state on Tuesday": the newest point taken on or before `day` (UTC), if any.
pub async fn point_on_day(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    archive: ArchiveId,
    day: NaiveDate,
) -> StorageResult<Option<RecoveryPoint>> {
    let end_of_day = day
        .succ_opt()
        .and_then(|next| next.and_hms_opt(0, 0, 0))
        .map(|t| DateTime::<Utc>::from_naive_utc_and_offset(t, Utc))
        .ok_or_else(|| StorageError::Invalid(format!("no day after {day}")))?;
    catalog::point_before(db, scope, archive, end_of_day).await
}

/// One folder in the tree beside the item list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderNode {
    pub path: String,
    pub name: String,
    pub depth: usize,
}

/// What the browse page asks for.
#[derive(Debug, Clone)]
pub struct BrowseRequest {
    pub folder: String,
    pub order: ItemOrder,
    pub descending: bool,
    /// 0 for the first page.
    pub page: u64,
}

/// A recovery point opened at a folder.
#[derive(Debug, Clone)]
pub struct PointView {
    pub archive: Archive,
    pub point: RecoveryPoint,
    /// Every folder of the point, in tree order.
    pub folders: Vec<FolderNode>,
    /// The open folder (`""` for the top), known to exist in the point.
    pub folder: String,
    pub page: FolderPage,
    pub page_index: u64,
    pub pages: u64,
}

/// Opens a recovery point of an archive at a folder. A point of another archive, or a folder the
/// point does not have, is *not found*.
pub async fn open_point(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    archive: ArchiveId,
    point: RecoveryPointId,
    request: &BrowseRequest,
) -> StorageResult<PointView> {
    let archive = catalog::find_archive(db, scope, archive).await?;
    let point = catalog::find_recovery_point(db, scope, point).await?;
    if point.archive != archive.id {
        return Err(StorageError::not_found(format!(
            "recovery point {} of archive {}",
            point.id, archive.id
        )));
    }
    let folder = request.folder.trim_matches('/').to_string();
    let paths = catalog::list_folders(db, scope, point.id).await?;
    if !folder.is_empty() && !paths.contains(&folder) {
        return Err(StorageError::not_found(format!("folder `{folder}`")));
    }
    let offset = request.page.saturating_mul(PAGE_SIZE);
    let page = catalog::folder_page(
        db,
        scope,
        point.id,
        &FolderPageQuery {
            folder: folder.clone(),
            order: request.order,
            descending: request.descending,
            offset,
            limit: PAGE_SIZE,
            collapse_exports: archive.workload == Workload::Mailbox,
        },
    )
    .await?;
    let pages = page.total.div_ceil(PAGE_SIZE).max(1);
    Ok(PointView {
        folders: paths.iter().map(|path| folder_node(path)).collect(),
        archive,
        point,
        folder,
        page,
        page_index: request.page,
        pages,
    })
}

fn folder_node(path: &str) -> FolderNode {
    let depth = path.matches('/').count();
    let name = path.rsplit('/').next().unwrap_or(path).to_string();
    FolderNode {
        path: path.to_string(),
        name,
        depth,
    }
}

/// How a workload's points are browsed: the words for its folders and items.
pub fn is_mail(workload: Workload) -> bool {
    matches!(
        workload,
        Workload::Mailbox | Workload::ArchiveMailbox | Workload::GroupMailbox
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_nodes_know_their_depth_and_name() {
        assert_eq!(
            folder_node("Inbox/Projects/2026"),
            FolderNode {
                path: "Inbox/Projects/2026".into(),
                name: "2026".into(),
                depth: 2
            }
        );
        assert_eq!(folder_node("Inbox").depth, 0);
    }
}
