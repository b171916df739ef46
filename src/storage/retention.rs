//! Retention and deletion: which recovery points a plan keeps, deleting points and whole
//! archives, and prune, which reclaims the space of deleted points.
//!
//! Deletion removes a point from the catalog first and then forgets its snapshot: a crash in
//! between leaves a snapshot no one lists (prune's orphan sweep forgets it later), never a listed
//! point without data. Prune never removes a blob that a remaining snapshot references (rustic's
//! prune plan is computed from every snapshot in the repository, not from the catalog), and it
//! holds restic's exclusive lock, so no backup, restore or check of the customer runs beside it in
//! any process. That makes deleting unused packs at once safe; rustic's two-phase delete (mark
//! now, remove in a later prune) stays available for repositories that writers without locks
//! share.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rustic_core::{FileType, PruneOptions};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::ids::CustomerId;

use super::BackupStorage;
use super::catalog::entity::{archive, recovery_point};
use super::catalog::{self, Archive, ArchiveId, RecoveryPoint, RecoveryPointId, RepositoryRef};
use super::error::{StorageError, StorageResult};
use super::lock::LockKind;
use super::repository::run_blocking;
use super::scope::TenantScope;

/// A plan's retention rule for each archive it protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionRule {
    /// Keep the newest `n` recovery points.
    KeepLast(u32),
    /// Keep the recovery points taken less than `days` days ago.
    KeepYoungerThanDays(u32),
}

/// What `apply_retention` did to one archive.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionReport {
    pub archive: ArchiveId,
    pub kept: Vec<RecoveryPointId>,
    pub removed: Vec<RecoveryPoint>,
}

/// What `delete_archive` removed.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveDeletion {
    pub archive: Archive,
    pub removed: Vec<RecoveryPoint>,
}

/// How prune may delete packs.
#[derive(Debug, Clone, Copy)]
pub struct PruneSettings {
    /// Delete unused packs at once (restic's behaviour) instead of marking them and deleting
    /// them in a later prune. Safe whenever every writer honours restic's locks, as Skyvault and
    /// restic do.
    pub instant_delete: bool,
    /// Snapshots carrying Skyvault's tag but unknown to the catalog (left by a crash between
    /// saving a snapshot and recording it) are forgotten once older than this.
    pub orphan_grace: Duration,
}

impl Default for PruneSettings {
    fn default() -> Self {
        Self {
            instant_delete: true,
            orphan_grace: Duration::days(1),
        }
    }
}

/// What prune did, for the job's activity record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub orphan_snapshots_forgotten: Vec<String>,
    pub packs_before: u64,
    pub packs_after: u64,
    /// Packs no kept snapshot needs, removed (instant) or marked for removal.
    pub unused_packs: u64,
    /// Partly used packs whose live blobs were copied to new packs.
    pub repacked_packs: u64,
    pub pack_bytes_before: u64,
    pub pack_bytes_after: u64,
    /// `pack_bytes_before - pack_bytes_after`.
    pub bytes_reclaimed: u64,
}

/// The recovery points `rule` removes, given the archive's points oldest first.
pub fn points_to_remove(
    points: &[RecoveryPoint],
    rule: RetentionRule,
    now: DateTime<Utc>,
) -> StorageResult<Vec<RecoveryPointId>> {
    match rule {
        RetentionRule::KeepLast(0) | RetentionRule::KeepYoungerThanDays(0) => {
            Err(StorageError::Invalid(
                "a retention rule must keep at least one point or one day".into(),
            ))
        }
        RetentionRule::KeepLast(n) => {
            let keep = usize::try_from(n).unwrap_or(usize::MAX);
            let mut newest_first: Vec<&RecoveryPoint> = points.iter().collect();
            newest_first.sort_by_key(|p| std::cmp::Reverse(p.seq));
            Ok(newest_first.into_iter().skip(keep).map(|p| p.id).collect())
        }
        RetentionRule::KeepYoungerThanDays(days) => {
            let cutoff = now - Duration::days(i64::from(days));
            Ok(points
                .iter()
                .filter(|p| p.taken_at <= cutoff)
                .map(|p| p.id)
                .collect())
        }
    }
}

/// Applies a plan's rule to one archive: removes the points it does not keep.
pub async fn apply_retention(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    archive: ArchiveId,
    rule: RetentionRule,
) -> StorageResult<RetentionReport> {
    // Another customer's archive is not found, rather than an archive with nothing to remove.
    catalog::find_archive(storage.db(), scope, archive).await?;
    let points = catalog::list_recovery_points(storage.db(), scope, archive).await?;
    let remove = points_to_remove(&points, rule, storage.clock().now())?;
    let removed = delete_recovery_points(storage, scope, archive, &remove).await?;
    let removed_ids: HashSet<RecoveryPointId> = removed.iter().map(|p| p.id).collect();
    Ok(RetentionReport {
        archive,
        kept: points
            .iter()
            .map(|p| p.id)
            .filter(|id| !removed_ids.contains(id))
            .collect(),
        removed,
    })
}

/// Deletes recovery points of one archive: from the catalog, then their snapshots. Space is
/// reclaimed by the next `prune`.
pub async fn delete_recovery_points(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    archive_id: ArchiveId,
    ids: &[RecoveryPointId],
) -> StorageResult<Vec<RecoveryPoint>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let archive = catalog::find_archive(storage.db(), scope, archive_id).await?;
    let wanted: HashSet<RecoveryPointId> = ids.iter().copied().collect();
    let points: Vec<RecoveryPoint> = catalog::list_recovery_points(storage.db(), scope, archive_id)
        .await?
        .into_iter()
        .filter(|p| wanted.contains(&p.id))
        .collect();
    if points.len() != wanted.len() {
        return Err(StorageError::not_found("recovery point of this archive"));
    }
    let txn = storage.db().begin().await?;
    delete_folder_summaries(&txn, &points).await?;
    recovery_point::Entity::delete_many()
        .filter(recovery_point::Column::Id.is_in(points.iter().map(|p| p.id.0)))
        .exec(&txn)
        .await?;
    delete_unreferenced_entries(&txn, archive_id).await?;
    txn.commit().await?;
    forget_snapshots(
        storage,
        archive.repository(),
        points.iter().map(|p| p.snapshot_id.clone()).collect(),
    )
    .await?;
    Ok(points)
}

/// The folder summaries of `points` (their rows would also go by cascade where foreign keys
/// are enforced).
async fn delete_folder_summaries(
    txn: &impl sea_orm::ConnectionTrait,
    points: &[RecoveryPoint],
) -> StorageResult<()> {
    use super::catalog::entity::point_folder;
    for chunk in points.chunks(500) {
        point_folder::Entity::delete_many()
            .filter(point_folder::Column::PointId.is_in(chunk.iter().map(|p| p.id.0)))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Deletes an archive with all its recovery points (e.g. an item gone from Microsoft 365 whose
/// backups an admin no longer wants).
pub async fn delete_archive(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    archive_id: ArchiveId,
) -> StorageResult<ArchiveDeletion> {
    let archive = catalog::find_archive(storage.db(), scope, archive_id).await?;
    let points = catalog::list_recovery_points(storage.db(), scope, archive_id).await?;
    // Catalog entries, points and failed items go with the archive row (foreign keys cascade);
    // deleted explicitly as well, for databases where cascades are off.
    let txn = storage.db().begin().await?;
    delete_folder_summaries(&txn, &points).await?;
    recovery_point::Entity::delete_many()
        .filter(recovery_point::Column::ArchiveId.eq(archive_id.0))
        .exec(&txn)
        .await?;
    super::catalog::entity::catalog_entry::Entity::delete_many()
        .filter(super::catalog::entity::catalog_entry::Column::ArchiveId.eq(archive_id.0))
        .exec(&txn)
        .await?;
    archive::Entity::delete_by_id(archive_id.0)
        .exec(&txn)
        .await?;
    txn.commit().await?;
    forget_snapshots(
        storage,
        archive.repository(),
        points.iter().map(|p| p.snapshot_id.clone()).collect(),
    )
    .await?;
    Ok(ArchiveDeletion {
        archive,
        removed: points,
    })
}

/// Removes catalog rows whose validity range no longer covers any remaining point.
async fn delete_unreferenced_entries(
    db: &impl ConnectionTrait,
    archive_id: ArchiveId,
) -> StorageResult<()> {
    let placeholder = match db.get_database_backend() {
        DbBackend::Postgres => "$1",
        _ => "?",
    };
    let sql = format!(
        "DELETE FROM storage_catalog_entry WHERE archive_id = {placeholder} AND NOT EXISTS (\
           SELECT 1 FROM storage_recovery_point p \
           WHERE p.archive_id = storage_catalog_entry.archive_id \
             AND p.seq >= storage_catalog_entry.valid_from_seq \
             AND (storage_catalog_entry.valid_to_seq IS NULL \
                  OR p.seq < storage_catalog_entry.valid_to_seq))"
    );
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [archive_id.0.into()],
    ))
    .await?;
    Ok(())
}

async fn forget_snapshots(
    storage: &BackupStorage,
    repository: RepositoryRef,
    snapshot_ids: Vec<String>,
) -> StorageResult<()> {
    if snapshot_ids.is_empty() {
        return Ok(());
    }
    let repo = storage.open_repository(repository).await?;
    // Shared, unlike restic's `forget`: removing snapshot files removes no data, so backups may
    // go on beside it; only prune, which removes packs, needs the repository alone.
    let lock = repo.lock(LockKind::Shared, storage.lock_wait()).await?;
    let opener = repo.opener();
    let forgotten = run_blocking(move || {
        let repo = opener.open()?;
        // Only those still present: a retried deletion must not fail on what the first removed.
        let ids: Vec<_> = repo
            .get_all_snapshots()?
            .into_iter()
            .filter(|s| {
                snapshot_ids
                    .iter()
                    .any(|id| id.as_str() == s.id.to_hex().as_str())
            })
            .map(|s| s.id)
            .collect();
        repo.delete_snapshots(&ids)?;
        Ok(())
    })
    .await;
    lock.release().await;
    forgotten
}

/// Reclaims the space of deleted recovery points: forgets orphan snapshots, then runs rustic's
/// prune (restic forget + prune semantics) on every repository of the customer (its own and its
/// encrypted plans'), adding up what each reclaimed.
pub async fn prune(
    storage: &BackupStorage,
    customer: CustomerId,
    settings: PruneSettings,
) -> StorageResult<PruneReport> {
    let mut total = PruneReport::default();
    for repository in storage.repositories(customer).await? {
        let report = prune_repository(storage, repository, settings).await?;
        total
            .orphan_snapshots_forgotten
            .extend(report.orphan_snapshots_forgotten);
        total.packs_before += report.packs_before;
        total.packs_after += report.packs_after;
        total.unused_packs += report.unused_packs;
        total.repacked_packs += report.repacked_packs;
        total.pack_bytes_before += report.pack_bytes_before;
        total.pack_bytes_after += report.pack_bytes_after;
        total.bytes_reclaimed += report.bytes_reclaimed;
    }
    Ok(total)
}

/// Prune of one repository.
async fn prune_repository(
    storage: &BackupStorage,
    repository: RepositoryRef,
    settings: PruneSettings,
) -> StorageResult<PruneReport> {
    let customer = repository.customer();
    let repo = storage.open_repository(repository).await?;
    // Exclusive: no backup, restore or check of this customer runs while packs are removed, in
    // this process (the guard) or any other (restic's lock).
    let _exclusive = repo.write_guard.write().await;
    let lock = repo.lock(LockKind::Exclusive, storage.lock_wait()).await?;
    let listed: HashSet<String> = recovery_point::Entity::find()
        .filter(recovery_point::Column::CustomerId.eq(customer.as_uuid()))
        .all(storage.db())
        .await?
        .into_iter()
        .map(|p| p.snapshot_id)
        .collect();
    let orphan_cutoff = storage.clock().now() - settings.orphan_grace;
    let opener = repo.opener();
    let report = run_blocking(move || {
        let repo = opener.open()?;
        let mut report = PruneReport::default();
        let orphans: Vec<_> = repo
            .get_all_snapshots()?
            .into_iter()
            .filter(|s| s.tags.contains("skyvault"))
            .filter(|s| !listed.contains(s.id.to_hex().as_str()))
            .filter(|s| s.time.timestamp().as_second() < orphan_cutoff.timestamp())
            .collect();
        report.orphan_snapshots_forgotten = orphans
            .iter()
            .map(|s| s.id.to_hex().as_str().to_string())
            .collect();
        repo.delete_snapshots(&orphans.iter().map(|s| s.id).collect::<Vec<_>>())?;

        (report.packs_before, report.pack_bytes_before) = pack_totals(&repo)?;
        let options = PruneOptions::default().instant_delete(settings.instant_delete);
        let plan = repo.prune_plan(&options)?;
        report.unused_packs = plan.stats.packs.unused;
        report.repacked_packs = plan.stats.packs.repack;
        repo.prune(&options, plan)?;
        (report.packs_after, report.pack_bytes_after) = pack_totals(&repo)?;
        report.bytes_reclaimed = report
            .pack_bytes_before
            .saturating_sub(report.pack_bytes_after);
        Ok(report)
    })
    .await;
    repo.mark_changed();
    lock.release().await;
    report
}

fn pack_totals(
    repo: &rustic_core::Repository<rustic_core::OpenStatus>,
) -> StorageResult<(u64, u64)> {
    let infos = repo.infos_files()?;
    Ok(infos
        .repo
        .iter()
        .filter(|info| info.tpe == FileType::Pack)
        .map(|info| (info.count, info.size))
        .fold((0, 0), |(c, s), (count, size)| (c + count, s + size)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CustomerId;
    use crate::storage::RecoveryPointStatus;
    use uuid::Uuid;

    fn point(seq: i64, taken_at: DateTime<Utc>) -> RecoveryPoint {
        RecoveryPoint {
            id: RecoveryPointId(Uuid::new_v4()),
            archive: ArchiveId(Uuid::nil()),
            customer: CustomerId(Uuid::nil()),
            repository: RepositoryRef::Customer(CustomerId(Uuid::nil())),
            seq,
            snapshot_id: String::new(),
            taken_at,
            status: RecoveryPointStatus::Complete,
            item_count: 0,
            failed_count: 0,
            reused_count: 0,
            bytes_added: 0,
            bytes_total: 0,
        }
    }

    #[test]
    fn keep_last_and_keep_younger_than_remove_exactly_the_rest() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let points: Vec<RecoveryPoint> = (1..=10)
            .map(|i| point(i, now - Duration::days(10 - i)))
            .collect();
        let removed = points_to_remove(&points, RetentionRule::KeepLast(3), now).unwrap();
        let expected: Vec<_> = points[..7].iter().map(|p| p.id).collect();
        assert_eq!(removed.len(), 7);
        assert!(expected.iter().all(|id| removed.contains(id)));

        // Ages are 9..0 days; "younger than 4 days" keeps ages 3, 2, 1, 0.
        let removed =
            points_to_remove(&points, RetentionRule::KeepYoungerThanDays(4), now).unwrap();
        assert_eq!(
            removed,
            points[..6].iter().map(|p| p.id).collect::<Vec<_>>()
        );
        assert!(points_to_remove(&points, RetentionRule::KeepLast(0), now).is_err());
        assert!(
            points_to_remove(&points, RetentionRule::KeepLast(20), now)
                .unwrap()
                .is_empty()
        );
    }
}
