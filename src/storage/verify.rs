//! Verify: rustic's check of a customer's repositories (structure: index, packs listed, trees and
//! blobs referenced; optionally the data itself, all of it or a sample), with damaged packs traced
//! to the archives and recovery points whose items use them. The job queue records the returned
//! report in Activities. This module reads the repository and the catalog, never writes either.

use std::collections::{HashMap, HashSet};

use rustic_core::repofile::{IndexFile, PackId};
use rustic_core::{BlobId, CheckOptions, ReadSubsetOption, TreeId};
use serde::{Deserialize, Serialize};

use crate::ids::CustomerId;

use super::BackupStorage;
use super::catalog::entity::recovery_point;
use super::catalog::{ArchiveId, RecoveryPointId, RepositoryRef};
use super::error::StorageResult;
use super::lock::LockKind;
use super::repository::run_blocking;

/// How much a verify reads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum VerifyScope {
    /// Index, pack list, snapshots and trees; no pack is downloaded.
    Structure,
    /// Structure, plus this percentage of the packs read and checked.
    SampledData { percent: f64 },
    /// Structure, plus every pack read and checked (`restic check --read-data`).
    AllData,
}

#[derive(Debug, Clone, Serialize)]
pub struct DamagedPack {
    pub pack_id: String,
    pub affected_archives: Vec<ArchiveId>,
    pub affected_recovery_points: Vec<RecoveryPointId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub customer: CustomerId,
    pub scope: VerifyScope,
    pub snapshots_checked: usize,
    /// No error (warnings, such as packs left by an interrupted backup, are allowed).
    pub ok: bool,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub damaged_packs: Vec<DamagedPack>,
}

/// Checks every repository of a customer: its own and each encrypted plan's (the worker holds
/// their sealed passwords), as one report. A customer with no repository yet gets an empty one.
pub async fn verify(
    storage: &BackupStorage,
    customer: CustomerId,
    scope: VerifyScope,
) -> StorageResult<VerifyReport> {
    let mut total = VerifyReport {
        customer,
        scope,
        snapshots_checked: 0,
        ok: true,
        errors: Vec::new(),
        warnings: Vec::new(),
        damaged_packs: Vec::new(),
    };
    for repository in storage.repositories(customer).await? {
        let report = verify_repository(storage, repository, scope).await?;
        // Findings in an encrypted plan's repository say where they were found.
        let label = |text: String| match repository {
            RepositoryRef::Customer(_) => text,
            RepositoryRef::Encrypted { id, .. } => {
                format!("encrypted plan repository {id}: {text}")
            }
        };
        total.snapshots_checked += report.snapshots_checked;
        total.ok &= report.ok;
        total.errors.extend(report.errors.into_iter().map(label));
        total
            .warnings
            .extend(report.warnings.into_iter().map(label));
        total.damaged_packs.extend(report.damaged_packs);
    }
    Ok(total)
}

/// Checks one repository of a customer.
async fn verify_repository(
    storage: &BackupStorage,
    repository: RepositoryRef,
    scope: VerifyScope,
) -> StorageResult<VerifyReport> {
    let customer = repository.customer();
    let repo = storage.open_repository(repository).await?;
    let points: Vec<(String, RecoveryPointId, ArchiveId)> = {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        recovery_point::Entity::find()
            .filter(recovery_point::Column::CustomerId.eq(customer.as_uuid()))
            .filter(recovery_point::Column::RepositoryId.eq(repository.column()))
            .all(storage.db())
            .await?
            .into_iter()
            .map(|p| {
                (
                    p.snapshot_id,
                    RecoveryPointId(p.id),
                    ArchiveId(p.archive_id),
                )
            })
            .collect()
    };
    // Shared, as `restic check` locks: backups may run beside it, a prune may not.
    let lock = repo.lock(LockKind::Shared, storage.lock_wait()).await?;
    let opener = repo.opener();
    let report = run_blocking(move || {
        let repo = opener.open()?;
        let snapshots_checked = repo.get_all_snapshots()?.len();
        let options = match scope {
            VerifyScope::Structure => CheckOptions::default(),
            VerifyScope::SampledData { percent } => CheckOptions::default()
                .read_data(true)
                .read_data_subset(ReadSubsetOption::Percentage(percent)),
            VerifyScope::AllData => CheckOptions::default()
                .read_data(true)
                .read_data_subset(ReadSubsetOption::All),
        };
        let results = repo.check(options)?;
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut damaged: Vec<PackId> = Vec::new();
        for (level, finding) in &results.0 {
            // rustic_core 0.13 does not export the finding types, only their Debug and Display.
            if format!("{level:?}") == "Error" {
                errors.push(finding.to_string());
            } else {
                warnings.push(finding.to_string());
            }
            if let Some(pack) = damaged_pack(finding)
                && !damaged.contains(&pack)
            {
                damaged.push(pack);
            }
        }
        let damaged_packs = if damaged.is_empty() {
            Vec::new()
        } else {
            trace_damaged_packs(repo, &damaged, &points)?
        };
        Ok(VerifyReport {
            customer,
            scope,
            snapshots_checked,
            ok: errors.is_empty(),
            errors,
            warnings,
            damaged_packs,
        })
    })
    .await;
    lock.release().await;
    report
}

/// The pack a finding is about, for the findings that mean a pack is missing or damaged.
fn damaged_pack(finding: &impl std::fmt::Debug) -> Option<PackId> {
    const PACK_FINDINGS: [&str; 11] = [
        "ErrorReadingPack",
        "ErrorCheckingPack",
        "PackSizeMismatch",
        "PackHashMismatch",
        "PackHeaderLengthMismatch",
        "PackHeaderMismatchIndex",
        "PackBlobLengthMismatch",
        "PackBlobHashMismatch",
        "PackBlobTypesMismatch",
        "PackBlobOffsetMismatch",
        "NoPack",
    ];
    let debug = format!("{finding:?}");
    let variant = debug.split([' ', '{', '(']).next()?;
    if !PACK_FINDINGS.contains(&variant) {
        return None;
    }
    // `Variant { id: PackId(<64 hex digits>), … }`: the first run of 64 hex digits after `id: `.
    let after = &debug[debug.find("id: ")? + 4..];
    let is_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    let candidate = after
        .split(|c: char| !is_hex(c))
        .find(|run| run.len() == 64)?;
    candidate.parse::<rustic_core::Id>().ok().map(PackId::from)
}

/// Which recovery points reference a blob stored in one of the damaged packs.
fn trace_damaged_packs(
    repo: rustic_core::Repository<rustic_core::OpenStatus>,
    damaged: &[PackId],
    points: &[(String, RecoveryPointId, ArchiveId)],
) -> StorageResult<Vec<DamagedPack>> {
    let mut blobs_of_pack: HashMap<PackId, HashSet<BlobId>> = HashMap::new();
    for index in repo.stream_files::<IndexFile>()? {
        let (_, index) = index?;
        for pack in index.packs.into_iter().chain(index.packs_to_delete) {
            if damaged.contains(&pack.id) {
                blobs_of_pack
                    .entry(pack.id)
                    .or_default()
                    .extend(pack.blobs.iter().map(|b| b.id));
            }
        }
    }
    let repo = repo.to_indexed()?;
    let snapshots = repo.get_all_snapshots()?;
    let mut hit: HashMap<PackId, Vec<(RecoveryPointId, ArchiveId)>> = HashMap::new();
    for (snapshot_id, point, archive) in points {
        let Some(snap) = snapshots
            .iter()
            .find(|s| s.id.to_hex().as_str() == snapshot_id)
        else {
            continue;
        };
        let used = blobs_of_tree(&repo, snap.tree)?;
        for (pack, blobs) in &blobs_of_pack {
            if blobs.iter().any(|b| used.contains(b)) {
                hit.entry(*pack).or_default().push((*point, *archive));
            }
        }
    }
    Ok(damaged
        .iter()
        .map(|pack| {
            let users = hit.remove(pack).unwrap_or_default();
            let mut archives: Vec<ArchiveId> = users.iter().map(|(_, a)| *a).collect();
            archives.sort();
            archives.dedup();
            DamagedPack {
                pack_id: pack.to_hex().as_str().to_string(),
                affected_archives: archives,
                affected_recovery_points: users.into_iter().map(|(p, _)| p).collect(),
            }
        })
        .collect())
}

/// Every tree and data blob reachable from `root`.
fn blobs_of_tree(
    repo: &rustic_core::Repository<rustic_core::IndexedFullStatus>,
    root: TreeId,
) -> StorageResult<HashSet<BlobId>> {
    let mut seen = HashSet::new();
    let mut pending = vec![root];
    while let Some(tree_id) = pending.pop() {
        if !seen.insert(BlobId::from(*tree_id)) {
            continue;
        }
        // A damaged tree pack makes the tree unreadable: it is then itself the reference found.
        let Ok(tree) = repo.get_tree(&tree_id) else {
            continue;
        };
        for node in tree.nodes {
            if let Some(subtree) = node.subtree {
                pending.push(subtree);
            }
            for data in node.content.unwrap_or_default() {
                seen.insert(BlobId::from(*data));
            }
        }
    }
    Ok(seen)
}
