//! Writing recovery points. `back_up_source` takes a stream of source events (items with path,
//! metadata and a way to get the bytes; folders that could not be listed) and the archive's newest
//! recovery point as parent, and writes one new restic snapshot through rustic_core's archiver:
//!
//! - an item is matched to the parent's entry by Graph id (and the kind of copy, `.eml` or the
//!   export stream), or by path when it has no Graph id; when the change key (or, without one, the
//!   modification time and size) is the same, it is *reused*: its node gets the parent's size,
//!   mtime and change-key-derived ctime, so rustic's parent matching takes the parent's blobs, and
//!   an item that moved is read back from the parent snapshot, never from the source;
//! - a folder the source could not list keeps the parent's entries under it, and an item whose
//!   new bytes fail to arrive keeps its previous version; both make the point partial;
//! - any other item is fetched into a spool (memory, or a temporary file above a few MiB) so its
//!   exact length is known before rustic sees it; restic requires a file node's size to equal its
//!   content;
//! - a new item whose bytes fail to arrive is left out and recorded as failed, and the recovery
//!   point is marked partial, in the catalog and with a `partial` tag on the snapshot;
//! - the runner's source state (delta links) is stored on the point in the same transaction.
//! - when nothing changed at all, the new snapshot is written directly on the parent's tree,
//!   without reading the index or running the archiver.
//!
//! A backup holds restic's shared repository lock from before the archiver starts until its
//! snapshot is saved, so a prune (exclusive) in any process never removes packs it relies on.
//!
//! The snapshot is saved before the catalog records the point, so the catalog never lists a point
//! the repository does not hold; a crash in between leaves an unlisted snapshot that retention's
//! orphan sweep forgets. This module never writes outside the archive's repository (the
//! customer's, or its encrypted plan's) and the storage tables.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::repofile::{SnapshotFile, SnapshotSummary};
use rustic_core::vfs::OpenFile;
use rustic_core::{
    BackupOptions, FileType, ParentOptions, ReadSource, ReadSourceEntry, ReadSourceOpen,
    RusticResult, SnapshotOptions, StringList,
};
use rustic_core::{IndexedFullStatus, Repository, TreeId};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::ids::{CustomerId, ItemId, OrgId};

use super::BackupStorage;
use super::catalog::entity::{archive, catalog_entry, failed_item, recovery_point};
use super::catalog::{
    self, Archive, ArchiveId, ItemKind, RecoveryPoint, RecoveryPointStatus, Workload,
};
use super::error::{StorageError, StorageResult};
use super::lock::LockKind;
use super::repository::{CustomerRepository, RepositoryOpener, run_blocking};

/// Items up to this size are spooled in memory, larger ones in a temporary file.
const SPOOL_IN_MEMORY_LIMIT: usize = 4 << 20;
/// How many items are fetched from the source at once, ahead of the archiver. More than the
/// four requests Microsoft allows per mailbox: the Graph client's governor keeps it at four in
/// flight, and the extra ones keep those four busy while the archiver takes items in path order
/// (one slow item would otherwise hold the others back). Memory stays bounded: each holds one
/// item, in memory up to `SPOOL_IN_MEMORY_LIMIT` and in a temporary file beyond.
const FETCH_CONCURRENCY: usize = 16;
/// Entries waiting for the archiver; bounds memory together with the fetch concurrency.
const ENTRY_QUEUE: usize = 16;
/// The snapshot tag restic users see on a recovery point with failed items.
pub const PARTIAL_TAG: &str = "partial";

/// Which protected item's backup this is.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub customer: CustomerId,
    pub org: OrgId,
    pub item: ItemId,
    pub workload: Workload,
    /// Shown in the console; kept after the item is gone from Microsoft 365.
    pub display_name: String,
    /// The encrypted plan's repository the backup goes into; `None`: the customer's own.
    pub encrypted_repository: Option<catalog::EncryptedRepositoryId>,
}

impl BackupRequest {
    /// The repository the archive of this backup lives in.
    pub fn repository(&self) -> catalog::RepositoryRef {
        catalog::RepositoryRef::of(self.customer, self.encrypted_repository)
    }
}

/// One item offered for backup.
pub struct SourceItem {
    /// Path inside the archive, `/`-separated, relative to the workload root:
    /// `Inbox/<immutable id>.eml`, `Documents/report.docx`.
    pub path: String,
    pub metadata: ItemMetadata,
    pub content: ItemContent,
}

/// What a source reports while it enumerates.
pub enum SourceEvent {
    /// An item present in the source now.
    Item(SourceItem),
    /// Everything under `prefix` (a folder path, as item paths are written) could not be listed:
    /// the parent's entries under it are carried over unchanged, and the point is partial.
    Unlisted { prefix: String, reason: String },
}

/// Computes the source state to store with the new point, given the items that failed (a runner
/// keeps the old delta link of a folder with failures, so the next run sees them again).
pub type SourceState = Box<dyn FnOnce(&[FailedItem]) -> Option<String> + Send>;

/// The newest recovery point of an archive, what an incremental runner starts from.
#[derive(Debug, Clone)]
pub struct ParentPoint {
    pub point: RecoveryPoint,
    /// The state the runner stored with it.
    pub source_state: Option<String>,
    /// Every item of the point.
    pub entries: Vec<catalog::CatalogEntry>,
}

/// What the source says about an item, without its bytes.
#[derive(Debug, Clone, Default)]
pub struct ItemMetadata {
    pub kind: Option<ItemKind>,
    pub graph_id: Option<String>,
    pub change_key: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    /// Size as the source reports it (Graph's message size is not the MIME length); used only to
    /// decide whether an item changed.
    pub source_size: Option<u64>,
    /// Message headers; parsed from the MIME bytes when absent.
    pub subject: Option<String>,
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub has_attachments: Option<bool>,
    /// A mailbox item's Exchange message class (`IPM.Note`, `IPM.Appointment`, …).
    pub item_class: Option<String>,
}

impl ItemMetadata {
    /// The metadata of an item as the catalog recorded it, for runners that carry an unchanged
    /// item over without asking the source again.
    pub fn from_entry(entry: &catalog::CatalogEntry) -> Self {
        Self {
            kind: Some(entry.kind),
            graph_id: entry.graph_id.clone(),
            change_key: entry.change_key.clone(),
            last_modified: entry.last_modified,
            source_size: entry.source_size,
            subject: entry.subject.clone(),
            sender: entry.sender.clone(),
            recipients: entry.recipients.clone(),
            sent_at: entry.sent_at,
            has_attachments: entry.has_attachments,
            item_class: entry.item_class.clone(),
        }
    }
}

/// A reader of an item's bytes.
pub type ContentReader = Pin<Box<dyn AsyncRead + Send>>;

/// How to get an item's bytes, asked only when the item is new or changed.
pub struct ItemContent {
    open: Box<dyn FnOnce() -> BoxFuture<'static, io::Result<ContentReader>> + Send>,
}

impl ItemContent {
    /// Bytes already in memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::from_fn(move || async move { Ok(io::Cursor::new(bytes)) })
    }

    /// Bytes fetched on demand, e.g. a Graph `$value` request.
    pub fn from_fn<F, Fut, R>(open: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<R>> + Send + 'static,
        R: AsyncRead + Send + 'static,
    {
        Self {
            open: Box::new(move || {
                async move { open().await.map(|reader| Box::pin(reader) as ContentReader) }.boxed()
            }),
        }
    }

    async fn open(self) -> io::Result<ContentReader> {
        (self.open)().await
    }
}

/// An item left out of a recovery point because its bytes did not arrive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedItem {
    pub path: String,
    pub graph_id: Option<String>,
    pub reason: String,
}

/// What a backup wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BackupOutcome {
    pub archive: Archive,
    pub recovery_point: RecoveryPoint,
    /// Items whose bytes were read from the source.
    pub fetched: u64,
    /// Items taken over from the parent without being read.
    pub reused: u64,
    pub failed: Vec<FailedItem>,
}

/// Backs up one archive from a plain list of items (no unlisted folders, no source state).
pub async fn back_up_archive<S>(
    storage: &BackupStorage,
    request: &BackupRequest,
    items: S,
) -> StorageResult<BackupOutcome>
where
    S: Stream<Item = SourceItem> + Send,
{
    back_up_source(storage, request, items.map(SourceEvent::Item), None).await
}

/// The archive's newest recovery point with its entries and source state; `None` before the
/// first backup.
pub async fn parent_point(
    storage: &BackupStorage,
    request: &BackupRequest,
) -> StorageResult<Option<ParentPoint>> {
    let db = storage.db();
    let Some(archive) = find_archive_row(storage, request).await? else {
        return Ok(None);
    };
    let Some(point) = catalog::latest_recovery_point(db, ArchiveId(archive.id)).await? else {
        return Ok(None);
    };
    let source_state = recovery_point::Entity::find_by_id(point.id.0)
        .one(db)
        .await?
        .and_then(|row| row.source_state);
    let entries = catalog::entry_rows_at(db, point.archive, point.seq)
        .await?
        .iter()
        .map(catalog::entry_from_row)
        .collect();
    Ok(Some(ParentPoint {
        point,
        source_state,
        entries,
    }))
}

/// Backs up one archive: writes one new recovery point from the source's events, reusing what is
/// unchanged since the archive's newest recovery point, and stores `state` with it.
pub async fn back_up_source<S>(
    storage: &BackupStorage,
    request: &BackupRequest,
    events: S,
    mut state: Option<SourceState>,
) -> StorageResult<BackupOutcome>
where
    S: Stream<Item = SourceEvent> + Send,
{
    let db = storage.db();
    let archive = ensure_archive(storage, request).await?;
    let repo = storage.open_repository(archive.repository()).await?;

    let collected = collect_events(events).await?;
    let mut parent = catalog::latest_recovery_point(db, archive.id).await?;
    if let Some(point) = &parent
        && !snapshot_present(&repo, point).await?
    {
        // Forgotten with restic by hand: nothing can be taken from it, every item is read again.
        tracing::warn!(archive = %archive.id, "the parent recovery point's snapshot is missing; backing up in full");
        parent = None;
    }
    let parent_rows = match &parent {
        Some(point) => catalog::entry_rows_at(db, archive.id, point.seq).await?,
        None => Vec::new(),
    };
    let parent_count = parent_rows.len();

    let root = PathBuf::from(request.workload.root());
    let failures = Arc::new(Mutex::new(Vec::new()));
    let Plan {
        planned,
        failed: mut early_failures,
    } = plan_items(collected, parent_rows);

    let taken_at = storage.clock().now();
    let snapshot_options = SnapshotOptions::default()
        .host("skyvault".to_string())
        .label(archive.id.to_string())
        .time(to_zoned(taken_at)?)
        .add_tags(&snapshot_tags(&archive))?;

    if let Some(point) = &parent
        && early_failures.is_empty()
        && planned.len() == parent_count
        && planned
            .iter()
            .all(|p| p.reuse.as_ref().is_some_and(|row| row.path == p.item.path))
    {
        // `None`: the parent's snapshot is gone from the repository (e.g. forgotten with restic
        // by hand); the full backup below then reads every item again, without a parent.
        let unchanged: Vec<StoredItem> = planned
            .iter()
            .filter_map(|planned| {
                let row = planned.reuse.clone()?;
                Some(StoredItem {
                    path: planned.item.path.clone(),
                    kind: ItemKind::parse(&row.kind),
                    size: u64::try_from(row.size).unwrap_or(0),
                    metadata: planned.item.metadata.clone(),
                    reused_row: Some(row),
                })
            })
            .collect();
        if let Some(outcome) = carry_over(
            storage,
            &repo,
            &archive,
            point,
            unchanged,
            (snapshot_options.clone(), taken_at),
            &mut state,
        )
        .await?
        {
            return Ok(outcome);
        }
    }

    let (sender, receiver) = mpsc::channel(ENTRY_QUEUE);
    let source = ChannelSource {
        receiver: Mutex::new(Some(receiver)),
    };
    let backup_options = match &parent {
        Some(point) => BackupOptions::default()
            .no_scan(true)
            .parent_opts(ParentOptions::default().parents(vec![point.snapshot_id.clone()])),
        None => BackupOptions::default()
            .no_scan(true)
            .parent_opts(ParentOptions::default().force(true)),
    };

    // Backups share the repository; prune waits for them, in this process and in others.
    let _shared = repo.write_guard.read().await;
    let lock = repo.lock(LockKind::Shared, storage.lock_wait()).await?;
    let opener = repo.opener();
    let previous = Arc::new(PreviousVersions::new(
        repo.opener(),
        parent.as_ref().map(|point| point.snapshot_id.clone()),
    ));
    let backup_root = root.clone();
    let archiver = run_blocking(move || {
        let indexed = opener.open()?.to_indexed_ids()?;
        let snap = snapshot_options.to_snapshot()?;
        let snap = indexed.archive(&backup_options, &source, snap, &[backup_root])?;
        Ok((indexed, snap))
    });
    let producer = produce_entries(planned, &root, sender, failures.clone(), previous);
    let (archived, produced) = tokio::join!(archiver, producer);
    repo.mark_changed();
    let (indexed, mut snap) = archived?;
    let produced = produced?;

    let failed_while_archiving: Vec<FailedItem> = failures
        .lock()
        .map(|f| f.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
    let mut failed = std::mem::take(&mut early_failures);
    failed.extend(produced.kept_previous.iter().cloned());
    failed.extend(failed_while_archiving.iter().cloned());
    if !failed.is_empty() {
        // Re-save the snapshot with a `partial` tag before anything lists it; the untagged one is
        // deleted only after the tagged one is safely written.
        let untagged = snap.id;
        let partial = PARTIAL_TAG
            .parse::<StringList>()
            .map_err(|err| StorageError::Invalid(format!("snapshot tag: {err}")))?;
        snap.add_tags(vec![partial]);
        let files = repo.files.clone();
        snap = run_blocking(move || {
            let mut tagged = snap;
            tagged.id = files.save(FileType::Snapshot, &tagged)?.into();
            indexed.delete_snapshots(&[untagged])?;
            Ok(tagged)
        })
        .await?;
    }
    lock.release().await;

    let summary = snap.summary.clone().unwrap_or_default();
    let status = if failed.is_empty() {
        RecoveryPointStatus::Complete
    } else {
        RecoveryPointStatus::Partial
    };
    let source_state = state.and_then(|state| state(&failed));
    let point = record_recovery_point(
        storage,
        &archive,
        RecordedBackup {
            snapshot_id: snap.id.to_hex().as_str().to_string(),
            taken_at,
            status,
            stored: &produced.stored,
            failed: &failed,
            failed_while_archiving: &failed_while_archiving,
            bytes_added: summary.data_added_packed,
            source_state,
        },
    )
    .await?;
    Ok(BackupOutcome {
        archive,
        recovery_point: point,
        fetched: produced.fetched,
        reused: produced.reused,
        failed,
    })
}

/// A backup in which nothing changed since the parent: the new snapshot points at the parent's
/// tree, which is exactly the tree the archiver would build again, so neither the index nor the
/// archiver is needed (for a repository with many archives, reading its index is most of an
/// unchanged backup's cost).
async fn carry_over(
    storage: &BackupStorage,
    repo: &CustomerRepository,
    archive: &Archive,
    parent: &RecoveryPoint,
    stored: Vec<StoredItem>,
    (snapshot_options, taken_at): (SnapshotOptions, DateTime<Utc>),
    state: &mut Option<SourceState>,
) -> StorageResult<Option<BackupOutcome>> {
    let files = stored.len() as u64;
    let bytes = stored.iter().map(|item| item.size).sum();
    let parent_id = parent.snapshot_id.clone();
    let _shared = repo.write_guard.read().await;
    let lock = repo.lock(LockKind::Shared, storage.lock_wait()).await?;
    let sealed = repo.files.clone();
    let saved = run_blocking(move || {
        let parent_id: rustic_core::Id = parent_id
            .parse()
            .map_err(|_| StorageError::Invalid(format!("snapshot id {parent_id}")))?;
        let Ok(Some(parent)) = sealed.load::<SnapshotFile>(FileType::Snapshot, &parent_id) else {
            return Ok(None);
        };
        let mut snap: SnapshotFile = snapshot_options.to_snapshot()?;
        snap.tree = parent.tree;
        snap.paths = parent.paths.clone();
        snap.parent = Some(parent_id.into());
        snap.parents = vec![parent_id.into()];
        // SnapshotSummary is non-exhaustive: fill a default one.
        let mut summary = SnapshotSummary::default();
        summary.files_unmodified = files;
        summary.total_files_processed = files;
        summary.total_bytes_processed = bytes;
        summary.command = "skyvault backup (unchanged)".into();
        summary.backup_start = snap.time.clone();
        summary.backup_end = snap.time.clone();
        snap.summary = Some(summary);
        snap.id = sealed.save(FileType::Snapshot, &snap)?.into();
        Ok(Some(snap))
    })
    .await;
    lock.release().await;
    let Some(snap) = saved? else {
        tracing::warn!(archive = %archive.id, "the parent recovery point's snapshot is missing; backing up in full");
        return Ok(None);
    };
    let point = record_recovery_point(
        storage,
        archive,
        RecordedBackup {
            snapshot_id: snap.id.to_hex().as_str().to_string(),
            taken_at,
            status: RecoveryPointStatus::Complete,
            stored: &stored,
            failed: &[],
            failed_while_archiving: &[],
            bytes_added: 0,
            source_state: state.take().and_then(|state| state(&[])),
        },
    )
    .await?;
    Ok(Some(BackupOutcome {
        archive: archive.clone(),
        recovery_point: point,
        fetched: 0,
        reused: files,
        failed: Vec::new(),
    }))
}

/// Whether the repository still holds the point's snapshot.
async fn snapshot_present(repo: &CustomerRepository, point: &RecoveryPoint) -> StorageResult<bool> {
    let files = repo.files.clone();
    let id = point.snapshot_id.clone();
    run_blocking(move || {
        let Ok(id) = id.parse::<rustic_core::Id>() else {
            return Ok(false);
        };
        Ok(matches!(
            files.load::<SnapshotFile>(FileType::Snapshot, &id),
            Ok(Some(_))
        ))
    })
    .await
}

/// The snapshot tags that let a restic user find a recovery point without the catalog.
fn snapshot_tags(archive: &Archive) -> String {
    format!(
        "skyvault,customer:{},org:{},item:{},workload:{},archive:{}",
        archive.customer,
        archive.org,
        archive.item,
        archive.workload.as_str(),
        archive.id
    )
}

/// The archive row of (customer, item, workload, repository), if a backup made one. An item whose
/// plan changed between encrypted and plain has one archive in each repository.
async fn find_archive_row(
    storage: &BackupStorage,
    request: &BackupRequest,
) -> StorageResult<Option<archive::Model>> {
    Ok(archive::Entity::find()
        .filter(archive::Column::CustomerId.eq(request.customer.as_uuid()))
        .filter(archive::Column::ItemId.eq(request.item.as_uuid()))
        .filter(archive::Column::Workload.eq(request.workload.as_str()))
        .filter(archive::Column::RepositoryId.eq(request.repository().column()))
        .one(storage.db())
        .await?)
}

/// Finds the archive of (customer, item, workload), creating it on the first backup.
async fn ensure_archive(
    storage: &BackupStorage,
    request: &BackupRequest,
) -> StorageResult<Archive> {
    let db = storage.db();
    if let Some(row) = find_archive_row(storage, request).await? {
        if row.display_name != request.display_name {
            let mut active: archive::ActiveModel = row.clone().into();
            active.display_name = Set(request.display_name.clone());
            active.update(db).await?;
        }
        return catalog::archive_from_row(row);
    }
    let row = archive::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(request.customer.as_uuid()),
        org_id: Set(request.org.as_uuid()),
        item_id: Set(request.item.as_uuid()),
        workload: Set(request.workload.as_str().to_string()),
        display_name: Set(request.display_name.clone()),
        created_at: Set(storage.clock().now()),
        last_seq: Set(0),
        repository_id: Set(Some(request.repository().column())),
    };
    match row.insert(db).await {
        Ok(row) => catalog::archive_from_row(row),
        // A concurrent backup of the same item created it: the unique index makes that safe.
        Err(_) => catalog::archive_from_row(
            find_archive_row(storage, request)
                .await?
                .ok_or_else(|| StorageError::not_found("archive"))?,
        ),
    }
}

struct CollectedItems {
    accepted: Vec<SourceItem>,
    rejected: Vec<FailedItem>,
    /// Folder prefixes the source could not list, with the reason.
    unlisted: Vec<(String, String)>,
}

/// Reads the whole event stream (metadata only; bytes are fetched later) and normalises paths.
async fn collect_events<S: Stream<Item = SourceEvent>>(events: S) -> StorageResult<CollectedItems> {
    let mut events = std::pin::pin!(events);
    let mut collected = CollectedItems {
        accepted: Vec::new(),
        rejected: Vec::new(),
        unlisted: Vec::new(),
    };
    let mut seen = HashSet::new();
    while let Some(event) = events.next().await {
        let mut item = match event {
            SourceEvent::Item(item) => item,
            SourceEvent::Unlisted { prefix, reason } => {
                // An empty prefix means the whole archive could not be listed.
                let prefix = normalise_path(&prefix).unwrap_or_default();
                collected.unlisted.push((prefix, reason));
                continue;
            }
        };
        match normalise_path(&item.path) {
            Some(path) if seen.insert(path.clone()) => {
                item.path = path;
                collected.accepted.push(item);
            }
            Some(_) => collected.rejected.push(FailedItem {
                path: item.path.clone(),
                graph_id: item.metadata.graph_id.clone(),
                reason: "another item has the same path".into(),
            }),
            None => collected.rejected.push(FailedItem {
                path: item.path.clone(),
                graph_id: item.metadata.graph_id.clone(),
                reason: "the path is empty or not allowed".into(),
            }),
        }
    }
    Ok(collected)
}

/// How an item is matched to its previous version: by Graph id and the kind of copy (the `.eml`
/// and the export stream of one message share a Graph id), or by path without a Graph id. A
/// file has one copy per Graph id, so its extension is not part of the key: a file renamed from
/// `report.doc` to `report.docx` is still the same file, reused when its content key is
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ReuseKey {
    Graph { id: String, extension: String },
    Path(String),
}

impl ReuseKey {
    fn of(path: &str, graph_id: Option<&str>, kind: Option<&str>) -> Self {
        match graph_id {
            Some(id) => Self::Graph {
                id: id.to_string(),
                extension: if kind == Some(ItemKind::File.as_str()) {
                    String::new()
                } else {
                    extension(path).to_string()
                },
            },
            None => Self::Path(path.to_string()),
        }
    }
}

fn extension(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.')
        .map(|(_, ext)| ext)
        .unwrap_or_default()
}

struct Plan {
    /// In tree order, as rustic's archiver and parent matching need them.
    planned: Vec<PlannedItem>,
    /// Items refused before any byte was read, and folders that could not be listed.
    failed: Vec<FailedItem>,
}

/// Matches the source's items to the parent's entries and adds the parent's entries under
/// folders the source could not list.
fn plan_items(collected: CollectedItems, parent_rows: Vec<catalog_entry::Model>) -> Plan {
    let CollectedItems {
        accepted,
        rejected,
        unlisted,
    } = collected;
    let mut previous: HashMap<ReuseKey, catalog_entry::Model> = parent_rows
        .into_iter()
        .map(|row| {
            let key = ReuseKey::of(&row.path, row.graph_id.as_deref(), Some(&row.kind));
            (key, row)
        })
        .collect();
    let taken: HashSet<String> = accepted.iter().map(|item| item.path.clone()).collect();
    let mut planned: Vec<PlannedItem> = accepted
        .into_iter()
        .map(|item| {
            let key = ReuseKey::of(
                &item.path,
                item.metadata.graph_id.as_deref(),
                item.metadata.kind.map(ItemKind::as_str),
            );
            let previous = previous.remove(&key);
            let reuse = previous
                .as_ref()
                .filter(|row| unchanged(row, &item.metadata))
                .cloned();
            PlannedItem {
                item,
                reuse,
                previous,
            }
        })
        .collect();
    let mut failed = rejected;
    for (prefix, reason) in unlisted {
        let under = |path: &str| {
            prefix.is_empty()
                || path == prefix
                || path
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        let kept: Vec<ReuseKey> = previous
            .iter()
            .filter(|(_, row)| under(&row.path) && !taken.contains(&row.path))
            .map(|(key, _)| key.clone())
            .collect();
        for key in kept {
            if let Some(row) = previous.remove(&key) {
                planned.push(PlannedItem {
                    item: SourceItem {
                        path: row.path.clone(),
                        metadata: ItemMetadata::from_entry(&catalog::entry_from_row(&row)),
                        content: ItemContent::from_bytes(Bytes::new()),
                    },
                    reuse: Some(row.clone()),
                    previous: Some(row),
                });
            }
        }
        failed.push(FailedItem {
            path: if prefix.is_empty() {
                "/".into()
            } else {
                prefix
            },
            graph_id: None,
            reason: format!(
                "could not be listed ({reason}); its items were kept from the previous backup"
            ),
        });
    }
    planned.sort_by(|a, b| Path::new(&a.item.path).cmp(Path::new(&b.item.path)));
    Plan { planned, failed }
}

/// `a//b/./c` → `a/b/c`; `None` for empty paths and any `..`.
fn normalise_path(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_string()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether the source's metadata says the item is the one already in the parent: the same change
/// key when the source has one (Graph changes it with every edit), otherwise the same
/// modification time and size.
fn unchanged(parent: &catalog_entry::Model, metadata: &ItemMetadata) -> bool {
    if let (Some(before), Some(now)) = (&parent.change_key, &metadata.change_key) {
        return before == now && parent.graph_id == metadata.graph_id;
    }
    let Some(last_modified) = metadata.last_modified else {
        return false;
    };
    parent.last_modified == Some(last_modified)
        && parent.graph_id == metadata.graph_id
        && parent.change_key == metadata.change_key
        && parent.source_size == metadata.source_size.and_then(|s| i64::try_from(s).ok())
}

struct PlannedItem {
    item: SourceItem,
    /// The parent's entry when the item is unchanged: its bytes are not fetched.
    reuse: Option<catalog_entry::Model>,
    /// The parent's entry of the same item, changed or not: kept when new bytes fail to arrive.
    previous: Option<catalog_entry::Model>,
}

/// An item as it ended up in the snapshot, for the catalog.
pub(crate) struct StoredItem {
    path: String,
    metadata: ItemMetadata,
    kind: ItemKind,
    size: u64,
    reused_row: Option<catalog_entry::Model>,
}

struct Produced {
    stored: Vec<StoredItem>,
    fetched: u64,
    reused: u64,
    /// Changed items whose new bytes failed: their previous version is in the point instead.
    kept_previous: Vec<FailedItem>,
}

/// Feeds the archiver: reused items immediately, others once spooled, in path order.
async fn produce_entries(
    planned: Vec<PlannedItem>,
    root: &Path,
    sender: mpsc::Sender<SourceMessage>,
    failures: Arc<Mutex<Vec<FailedItem>>>,
    versions: Arc<PreviousVersions>,
) -> StorageResult<Produced> {
    let mut stream = futures::stream::iter(planned)
        .map(|planned| async move {
            let PlannedItem {
                item,
                reuse,
                previous,
            } = planned;
            match reuse {
                Some(row) => (item, None, Ok(Prepared::Reused(Box::new(row)))),
                None => {
                    let SourceItem {
                        path,
                        metadata,
                        content,
                    } = item;
                    let spooled = spool(content, metadata.source_size).await;
                    let item = SourceItem {
                        path,
                        metadata,
                        content: ItemContent::from_bytes(Bytes::new()),
                    };
                    (item, previous, spooled.map(Prepared::Fetched))
                }
            }
        })
        .buffered(FETCH_CONCURRENCY);

    let mut produced = Produced {
        stored: Vec::new(),
        fetched: 0,
        reused: 0,
        kept_previous: Vec::new(),
    };
    while let Some((item, previous, prepared)) = stream.next().await {
        let SourceItem {
            path, mut metadata, ..
        } = item;
        let full_path = root.join(&path);
        let prepared = match (prepared, previous) {
            (Err(err), Some(row)) => {
                produced.kept_previous.push(FailedItem {
                    path: path.clone(),
                    graph_id: metadata.graph_id.clone(),
                    reason: format!("{err}; the previous version was kept"),
                });
                Ok(Prepared::Reused(Box::new(row)))
            }
            (prepared, _) => prepared,
        };
        let (node, size, open, reused_row) = match prepared {
            Ok(Prepared::Reused(row)) => {
                let size = u64::try_from(row.size).unwrap_or(0);
                // The parent's node exactly, so rustic's parent matching takes its blobs; an item
                // that moved is read back from the parent snapshot.
                let before = ItemMetadata::from_entry(&catalog::entry_from_row(&row));
                let open = EntryOpen::Previous {
                    path: root.join(&row.path),
                    expected: size,
                    versions: versions.clone(),
                    failure: FailureRecorder::new(&failures, &path, &metadata),
                };
                (node_metadata(&before, size)?, size, open, Some(*row))
            }
            Ok(Prepared::Fetched(spooled)) => {
                let kind = metadata.kind.unwrap_or_else(|| guess_kind(&path));
                if kind == ItemKind::Message && metadata.subject.is_none() {
                    fill_message_headers(&mut metadata, spooled.head());
                }
                let size = spooled.len();
                let open = EntryOpen::Spooled {
                    spooled,
                    failure: FailureRecorder::new(&failures, &path, &metadata),
                };
                (node_metadata(&metadata, size)?, size, open, None)
            }
            Err(err) => {
                record_failure(
                    &failures,
                    FailedItem {
                        path,
                        graph_id: metadata.graph_id.clone(),
                        reason: err.to_string(),
                    },
                );
                continue;
            }
        };
        let name = full_path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let node = Node::new_node(&name, NodeType::File, node);
        if reused_row.is_some() {
            produced.reused += 1;
        } else {
            produced.fetched += 1;
        }
        let kind = match &reused_row {
            Some(row) => ItemKind::parse(&row.kind),
            None => metadata.kind.unwrap_or_else(|| guess_kind(&path)),
        };
        produced.stored.push(StoredItem {
            path,
            metadata,
            kind,
            size,
            reused_row,
        });
        let entry = ReadSourceEntry {
            path: full_path,
            node,
            open: Some(open),
        };
        if sender
            .send(SourceMessage::Entry(Box::new(entry)))
            .await
            .is_err()
        {
            // The archiver stopped (it failed); its error is what the caller sees.
            return Ok(produced);
        }
    }
    // Only this marker lets the archiver finish and save the snapshot.
    let _ = sender.send(SourceMessage::End).await;
    Ok(produced)
}

enum Prepared {
    Reused(Box<catalog_entry::Model>),
    Fetched(Spooled),
}

fn guess_kind(path: &str) -> ItemKind {
    if path.ends_with(".eml") {
        ItemKind::Message
    } else {
        ItemKind::File
    }
}

/// Node metadata from stable source metadata: the same item always yields the same node, so
/// rustic's parent matching (size, mtime, ctime) agrees with `unchanged`.
fn node_metadata(metadata: &ItemMetadata, size: u64) -> StorageResult<Metadata> {
    let mtime = metadata.last_modified.map(to_timestamp).transpose()?;
    // The change key has no place in a restic node; folded into the ctime's nanoseconds it makes
    // a changed key a changed node even when Graph leaves the modification time alone.
    let ctime = match (metadata.last_modified, &metadata.change_key) {
        (Some(modified), Some(key)) => {
            let seconds = modified.timestamp();
            let nanos = i32::try_from(fnv1a(key.as_bytes()) % 1_000_000_000).unwrap_or(0);
            Some(
                rustic_core::jiff::Timestamp::new(seconds, nanos)
                    .map_err(|err| StorageError::Invalid(err.to_string()))?,
            )
        }
        _ => mtime,
    };
    Ok(Metadata {
        mode: Some(0o644),
        mtime,
        ctime,
        size,
        ..Metadata::default()
    })
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn to_timestamp(time: DateTime<Utc>) -> StorageResult<rustic_core::jiff::Timestamp> {
    let nanos = i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0);
    rustic_core::jiff::Timestamp::new(time.timestamp(), nanos)
        .map_err(|err| StorageError::Invalid(format!("time out of range: {err}")))
}

pub(crate) fn to_zoned(time: DateTime<Utc>) -> StorageResult<rustic_core::jiff::Zoned> {
    Ok(to_timestamp(time)?.to_zoned(rustic_core::jiff::tz::TimeZone::UTC))
}

/// Subject, sender, recipients and date from the head of a MIME message.
fn fill_message_headers(metadata: &mut ItemMetadata, head: &[u8]) {
    let Some(message) = mail_parser::MessageParser::new().parse_headers(head) else {
        return;
    };
    metadata.subject = message.subject().map(str::to_string);
    let addresses = |list: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        list.map(|a| {
            a.iter()
                .filter_map(|addr| match (&addr.name, &addr.address) {
                    (Some(name), Some(address)) => Some(format!("{name} <{address}>")),
                    (None, Some(address)) => Some(address.to_string()),
                    (Some(name), None) => Some(name.to_string()),
                    (None, None) => None,
                })
                .collect()
        })
        .unwrap_or_default()
    };
    metadata.sender = addresses(message.from()).into_iter().next();
    let mut recipients = addresses(message.to());
    recipients.extend(addresses(message.cc()));
    recipients.extend(addresses(message.bcc()));
    metadata.recipients = recipients;
    metadata.sent_at = message
        .date()
        .and_then(|d| DateTime::<Utc>::from_timestamp(d.to_timestamp(), 0));
}

// ---- spooling -------------------------------------------------------------------------------

enum Spooled {
    Memory(Bytes),
    File {
        file: SpoolFile,
        len: u64,
        head: Bytes,
    },
}

impl Spooled {
    fn len(&self) -> u64 {
        match self {
            Self::Memory(bytes) => bytes.len() as u64,
            Self::File { len, .. } => *len,
        }
    }

    /// The first bytes, enough for message headers.
    fn head(&self) -> &[u8] {
        match self {
            Self::Memory(bytes) => bytes,
            Self::File { head, .. } => head,
        }
    }
}

/// A temporary file removed when dropped.
struct SpoolFile {
    path: PathBuf,
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads an item into memory, or into a temporary file once it outgrows the memory limit.
/// `size_hint` (the source's size, which need not be exact) sizes the buffer so that a typical
/// item is read straight into it, without regrowing or copying.
async fn spool(content: ItemContent, size_hint: Option<u64>) -> io::Result<Spooled> {
    let mut reader = content.open().await?;
    let hint = size_hint
        .and_then(|size| usize::try_from(size).ok())
        .unwrap_or(64 << 10);
    let mut memory = Vec::with_capacity(hint.clamp(4 << 10, SPOOL_IN_MEMORY_LIMIT) + 1);
    loop {
        if memory.len() == memory.capacity() {
            memory.reserve(memory.len().max(64 << 10));
        }
        let n = reader.read_buf(&mut memory).await?;
        if n == 0 {
            return Ok(Spooled::Memory(Bytes::from(memory)));
        }
        if memory.len() > SPOOL_IN_MEMORY_LIMIT {
            break;
        }
    }
    let mut buf = vec![0u8; 64 << 10];
    let file = SpoolFile {
        path: std::env::temp_dir().join(format!("skyvault-spool-{}", Uuid::new_v4())),
    };
    let mut out = tokio::fs::File::create(&file.path).await?;
    out.write_all(&memory).await?;
    let head = Bytes::copy_from_slice(&memory[..memory.len().min(256 << 10)]);
    let mut len = memory.len() as u64;
    drop(memory);
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).await?;
        len += n as u64;
    }
    // No fsync: the spool is thrown away after the backup, and a crash loses nothing stored.
    out.flush().await?;
    Ok(Spooled::File { file, len, head })
}

// ---- the rustic side ------------------------------------------------------------------------

/// Records an item as failed when rustic cannot read it (the archiver drops such items with a
/// warning, so without this the point would silently lack them).
struct FailureRecorder {
    failures: Arc<Mutex<Vec<FailedItem>>>,
    path: String,
    graph_id: Option<String>,
}

impl FailureRecorder {
    fn new(failures: &Arc<Mutex<Vec<FailedItem>>>, path: &str, metadata: &ItemMetadata) -> Self {
        Self {
            failures: failures.clone(),
            path: path.to_string(),
            graph_id: metadata.graph_id.clone(),
        }
    }

    fn record(&self, reason: String) {
        record_failure(
            &self.failures,
            FailedItem {
                path: self.path.clone(),
                graph_id: self.graph_id.clone(),
                reason,
            },
        );
    }
}

fn record_failure(failures: &Mutex<Vec<FailedItem>>, failed: FailedItem) {
    failures
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(failed);
}

/// How rustic opens an entry's bytes.
enum EntryOpen {
    Spooled {
        spooled: Spooled,
        failure: FailureRecorder,
    },
    /// A reused item: rustic opens it only when the parent tree does not hold it at this path
    /// (it moved, or its previous version is kept after a failure); then its bytes are read back
    /// from the parent snapshot, never from the source.
    Previous {
        /// Where the parent snapshot has it.
        path: PathBuf,
        expected: u64,
        versions: Arc<PreviousVersions>,
        failure: FailureRecorder,
    },
}

impl ReadSourceOpen for EntryOpen {
    type Reader = Box<dyn Read + Send>;

    fn open(self) -> RusticResult<Self::Reader> {
        let io_error = |err: io::Error| {
            rustic_core::RusticError::with_source(
                rustic_core::ErrorKind::InputOutput,
                "reading an item to back up failed",
                err,
            )
        };
        match self {
            Self::Spooled {
                spooled: Spooled::Memory(bytes),
                ..
            } => Ok(Box::new(io::Cursor::new(bytes))),
            Self::Spooled {
                spooled: Spooled::File { file, .. },
                failure,
            } => match std::fs::File::open(&file.path) {
                Ok(reader) => Ok(Box::new(RecordingReader {
                    reader,
                    failure,
                    _file: file,
                })),
                Err(err) => {
                    failure.record(format!("spool file unreadable: {err}"));
                    Err(io_error(err))
                }
            },
            Self::Previous {
                path,
                expected,
                versions,
                failure,
            } => match versions.open(&path, expected) {
                Ok(reader) => Ok(Box::new(reader)),
                Err(err) => {
                    failure.record(format!("the previous version could not be read: {err}"));
                    Err(io_error(err))
                }
            },
        }
    }
}

/// The parent's repository, fully indexed, and its snapshot's tree; or why it cannot be read.
type OpenedParent = Result<(Arc<Repository<IndexedFullStatus>>, TreeId), String>;

/// The parent snapshot's files, opened on the first item that needs one (most backups need none:
/// rustic's parent matching takes unchanged items' blobs without reading them).
pub(crate) struct PreviousVersions {
    opener: RepositoryOpener,
    snapshot: Option<String>,
    opened: std::sync::OnceLock<OpenedParent>,
}

impl PreviousVersions {
    fn new(opener: RepositoryOpener, snapshot: Option<String>) -> Self {
        Self {
            opener,
            snapshot,
            opened: std::sync::OnceLock::new(),
        }
    }

    /// Runs on the archiver's blocking thread.
    fn open(&self, path: &Path, expected: u64) -> io::Result<PreviousReader> {
        let opened = self.opened.get_or_init(|| {
            let snapshot = self.snapshot.clone().ok_or("there is no previous backup")?;
            let repo = self
                .opener
                .open()
                .and_then(|repo| Ok(repo.to_indexed()?))
                .map_err(|err| err.to_string())?;
            let snap = repo
                .get_snapshots(&[snapshot.as_str()])
                .map_err(|err| err.to_string())?
                .into_iter()
                .next()
                .ok_or("the previous snapshot is missing")?;
            Ok((Arc::new(repo), snap.tree))
        });
        let (repo, tree) = opened
            .as_ref()
            .map_err(|err| io::Error::other(err.clone()))?;
        let node = super::trees::node_at(repo, *tree, path)
            .map_err(|err| io::Error::other(err.to_string()))?;
        if node.meta.size != expected {
            return Err(io::Error::other(
                "the previous version's size differs from the catalog",
            ));
        }
        let file = repo
            .open_file(&node)
            .map_err(|err| io::Error::other(err.to_string()))?;
        Ok(PreviousReader {
            repo: repo.clone(),
            file,
            offset: 0,
            size: usize::try_from(expected).unwrap_or(usize::MAX),
            pending: Bytes::new(),
        })
    }
}

/// Reads a file of the parent snapshot in bounded chunks.
struct PreviousReader {
    repo: Arc<Repository<IndexedFullStatus>>,
    file: OpenFile,
    offset: usize,
    size: usize,
    pending: Bytes,
}

impl Read for PreviousReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() && self.offset < self.size {
            let length = (self.size - self.offset).min(1 << 20);
            self.pending = self
                .repo
                .read_file_at(&self.file, self.offset, length)
                .map_err(|err| io::Error::other(err.to_string()))?;
            self.offset += self.pending.len();
            if self.pending.is_empty() {
                self.offset = self.size;
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

struct RecordingReader {
    reader: std::fs::File,
    failure: FailureRecorder,
    /// Keeps the spool file until rustic has read it.
    _file: SpoolFile,
}

impl Read for RecordingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader
            .read(buf)
            .inspect_err(|err| self.failure.record(err.to_string()))
    }
}

enum SourceMessage {
    Entry(Box<ReadSourceEntry<EntryOpen>>),
    /// Every item was offered.
    End,
}

/// Hands rustic's archiver the entries the async producer sends, in order.
struct ChannelSource {
    receiver: Mutex<Option<mpsc::Receiver<SourceMessage>>>,
}

struct ChannelEntries(Option<mpsc::Receiver<SourceMessage>>);

/// Unwinds the archiver when the producer went away before the end (the backup was cancelled or
/// failed): rustic_core skips iterator errors and would otherwise save a snapshot of whatever
/// arrived so far, a half-made recovery point that looks whole. Unwinding happens before the
/// snapshot is written, so the repository keeps only unreferenced packs, which prune removes.
struct BackupAborted;

impl Iterator for ChannelEntries {
    type Item = RusticResult<ReadSourceEntry<EntryOpen>>;

    fn next(&mut self) -> Option<Self::Item> {
        // Runs on the archiver's blocking thread, never on an async worker.
        match self.0.as_mut()?.blocking_recv() {
            Some(SourceMessage::Entry(entry)) => Some(Ok(*entry)),
            Some(SourceMessage::End) => {
                self.0 = None;
                None
            }
            None => std::panic::resume_unwind(Box::new(BackupAborted)),
        }
    }
}

impl ReadSource for ChannelSource {
    type Open = EntryOpen;
    type Iter = ChannelEntries;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        ChannelEntries(
            self.receiver
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        )
    }
}

// ---- catalog --------------------------------------------------------------------------------

struct RecordedBackup<'a> {
    snapshot_id: String,
    taken_at: DateTime<Utc>,
    status: RecoveryPointStatus,
    stored: &'a [StoredItem],
    failed: &'a [FailedItem],
    /// Items that were offered to the archiver but did not make it into the snapshot.
    failed_while_archiving: &'a [FailedItem],
    bytes_added: u64,
    source_state: Option<String>,
}

/// Makes catalog rows become visible in the order of their ids: the search index follows the
/// catalog by the last row id it has looked at, so a row committed after a higher id was already
/// visible would never be indexed. On PostgreSQL ids come from a sequence at insert time and two
/// recording transactions could commit out of order, so recording takes a transaction-scoped
/// advisory lock first (before any row lock, so it cannot deadlock with them); SQLite already
/// lets one writer at a time.
async fn commit_in_id_order(txn: &sea_orm::DatabaseTransaction) -> StorageResult<()> {
    use sea_orm::ConnectionTrait;
    /// The lock's key: "skycat" in ASCII, unique to catalog recording.
    const CATALOG_RECORDING: i64 = 0x736b_7963_6174;
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({CATALOG_RECORDING})"
        ))
        .await?;
    }
    Ok(())
}

/// Records the new recovery point and its items in one transaction.
async fn record_recovery_point(
    storage: &BackupStorage,
    archive: &Archive,
    backup: RecordedBackup<'_>,
) -> StorageResult<RecoveryPoint> {
    let failed_paths: HashSet<&str> = backup
        .failed_while_archiving
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    let stored: Vec<&StoredItem> = backup
        .stored
        .iter()
        .filter(|item| !failed_paths.contains(item.path.as_str()))
        .collect();
    let txn = storage.db().begin().await?;
    commit_in_id_order(&txn).await?;
    // Writing first takes the write lock at once: on SQLite a transaction that reads and then
    // writes fails when another backup committed in between, and on PostgreSQL the row lock
    // serialises two backups of the same archive so they never share a sequence number.
    archive::Entity::update_many()
        .col_expr(
            archive::Column::LastSeq,
            sea_orm::sea_query::ExprTrait::add(
                sea_orm::sea_query::Expr::col(archive::Column::LastSeq),
                1,
            ),
        )
        .filter(archive::Column::Id.eq(archive.id.0))
        .exec(&txn)
        .await?;
    let seq = archive::Entity::find_by_id(archive.id.0)
        .one(&txn)
        .await?
        .ok_or_else(|| StorageError::not_found(format!("archive {}", archive.id)))?
        .last_seq;

    let point_id = Uuid::new_v4();
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let point = recovery_point::ActiveModel {
        id: Set(point_id),
        archive_id: Set(archive.id.0),
        customer_id: Set(archive.customer.as_uuid()),
        seq: Set(seq),
        snapshot_id: Set(backup.snapshot_id),
        taken_at: Set(backup.taken_at),
        status: Set(backup.status.as_str().to_string()),
        item_count: Set(to_i64(stored.len() as u64)),
        failed_count: Set(to_i64(backup.failed.len() as u64)),
        reused_count: Set(to_i64(
            stored.iter().filter(|s| s.reused_row.is_some()).count() as u64,
        )),
        bytes_added: Set(to_i64(backup.bytes_added)),
        bytes_total: Set(to_i64(stored.iter().map(|s| s.size).sum())),
        source_state: Set(backup.source_state),
        repository_id: Set(Some(archive.repository().column())),
    }
    .insert(&txn)
    .await?;

    // Rows still open (valid_to NULL) that this point carries on at the same path stay open; the
    // rest are closed at `seq` (a moved item gets a new row at its new path).
    let kept_open: HashSet<i64> = stored
        .iter()
        .filter_map(|s| s.reused_row.as_ref().filter(|row| row.path == s.path))
        .filter(|row| row.valid_to_seq.is_none())
        .map(|row| row.id)
        .collect();
    let open_rows = catalog_entry::Entity::find()
        .filter(catalog_entry::Column::ArchiveId.eq(archive.id.0))
        .filter(catalog_entry::Column::ValidToSeq.is_null())
        .all(&txn)
        .await?;
    let to_close: Vec<i64> = open_rows
        .iter()
        .map(|r| r.id)
        .filter(|id| !kept_open.contains(id))
        .collect();
    for chunk in to_close.chunks(500) {
        catalog_entry::Entity::update_many()
            .col_expr(
                catalog_entry::Column::ValidToSeq,
                sea_orm::sea_query::Expr::value(seq),
            )
            .filter(catalog_entry::Column::Id.is_in(chunk.to_vec()))
            .exec(&txn)
            .await?;
    }

    let new_rows: Vec<catalog_entry::ActiveModel> = stored
        .iter()
        .filter(|s| {
            !s.reused_row
                .as_ref()
                .is_some_and(|row| kept_open.contains(&row.id))
        })
        .map(|s| new_entry_row(archive.id, seq, s))
        .collect();
    for chunk in new_rows.chunks(200) {
        catalog_entry::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    for failed in backup.failed {
        failed_item::ActiveModel {
            recovery_point_id: Set(point_id),
            path: Set(failed.path.clone()),
            graph_id: Set(failed.graph_id.clone()),
            reason: Set(failed.reason.clone()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    let point = catalog::point_from_row(point);
    // The folder summary makes the point's first open quick. It is a cache of the catalog: a
    // failure here loses nothing, the first open makes it instead.
    if let Err(err) = catalog::folders::record(storage.db(), &point).await {
        tracing::warn!(point = %point.id, error = %err, "folder summary not recorded");
    }
    Ok(point)
}

fn new_entry_row(archive_id: ArchiveId, seq: i64, item: &StoredItem) -> catalog_entry::ActiveModel {
    let name = item
        .path
        .rsplit('/')
        .next()
        .unwrap_or(&item.path)
        .to_string();
    // A reused item whose row was closed (it was absent from a deleted point) or that moved gets
    // a fresh row at its path now, carrying the parent's descriptive fields.
    if let Some(row) = &item.reused_row {
        return catalog_entry::ActiveModel {
            archive_id: Set(archive_id.0),
            valid_from_seq: Set(seq),
            valid_to_seq: Set(None),
            path: Set(item.path.clone()),
            name: Set(name),
            kind: Set(row.kind.clone()),
            graph_id: Set(row.graph_id.clone()),
            change_key: Set(row.change_key.clone()),
            last_modified: Set(row.last_modified),
            source_size: Set(row.source_size),
            size: Set(row.size),
            subject: Set(row.subject.clone()),
            sender: Set(row.sender.clone()),
            recipients: Set(row.recipients.clone()),
            sent_at: Set(row.sent_at),
            has_attachments: Set(row.has_attachments),
            item_class: Set(row.item_class.clone()),
            ..Default::default()
        };
    }
    let metadata = &item.metadata;
    catalog_entry::ActiveModel {
        archive_id: Set(archive_id.0),
        valid_from_seq: Set(seq),
        valid_to_seq: Set(None),
        path: Set(item.path.clone()),
        name: Set(name),
        kind: Set(item.kind.as_str().to_string()),
        graph_id: Set(metadata.graph_id.clone()),
        change_key: Set(metadata.change_key.clone()),
        last_modified: Set(metadata.last_modified),
        source_size: Set(metadata.source_size.and_then(|s| i64::try_from(s).ok())),
        size: Set(i64::try_from(item.size).unwrap_or(i64::MAX)),
        subject: Set(metadata.subject.clone()),
        sender: Set(metadata.sender.clone()),
        recipients: Set((!metadata.recipients.is_empty()).then(|| metadata.recipients.join("\n"))),
        sent_at: Set(metadata.sent_at),
        has_attachments: Set(metadata.has_attachments),
        item_class: Set(metadata.item_class.clone()),
        ..Default::default()
    }
}
