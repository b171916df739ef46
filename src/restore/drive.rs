//! Restoring files into a drive (a OneDrive or a document library): the original place or
//! another drive, under the original folder path or a new folder. Each file goes through an
//! upload session, streamed from the repository in chunks that are multiples of 320 KiB, so
//! memory stays bounded whatever the file's size; the original modified time travels as the
//! session's `fileSystemInfo`. When the name is taken the collision policy decides: skip, keep
//! both (Microsoft renames the new one) or overwrite. It never deletes anything in the drive.
//! Which drive and folder each file goes to (a site's libraries, a team's channel folders) is
//! worked out beforehand (`restore::place`); a file that has no place fails with the reason.

use std::collections::HashMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::job::{ItemResult, RestoreSink};
use crate::m365::upload::{ChunkAnswer, ConflictBehavior, UPLOAD_UNIT};
use crate::m365::{ErrorKind, GraphError, TenantClient};
use crate::storage::catalog::{CatalogEntry, ItemKind, RecoveryPointId};
use crate::storage::scope::TenantScope;
use crate::storage::{BackupStorage, read};

/// Bytes per chunk: 32 × 320 KiB = 10 MiB, well under the 60 MiB a request may carry. At most
/// one chunk and one read step are held at a time.
pub const CHUNK: usize = 32 * UPLOAD_UNIT;

/// What happens when a file of the same name is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collision {
    Skip,
    /// Both stay: the restored file gets a new name (`report 1.docx`).
    KeepBoth,
    Overwrite,
}

impl Collision {
    pub fn label(self) -> &'static str {
        match self {
            Self::Skip => "Skip files that exist",
            Self::KeepBoth => "Keep both (rename the restored file)",
            Self::Overwrite => "Overwrite existing files",
        }
    }
}

/// The drive to restore into.
#[derive(Debug, Clone)]
pub struct DriveTarget {
    pub drive_id: String,
    /// A folder (at the top of the drive) to restore under, or `None` for the original paths.
    pub under: Option<String>,
    pub collision: Collision,
}

/// Where one file goes: a folder of a drive (`root` for the top) and the file's path below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub drive_id: String,
    pub folder: String,
    pub relative: String,
}

/// A file to restore and where it goes, or why it has nowhere to go.
#[derive(Debug, Clone)]
pub struct PlacedFile {
    pub entry: CatalogEntry,
    pub place: Result<Placement, String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DriveSummary {
    pub restored: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes: u64,
}

/// A file's path inside its drive: drive backups keep a drive's files under `files/` (a
/// OneDrive's `files/…`, a site library's `libraries/<library>/files/…`, a team's `files/…`),
/// beside the drive's manifest, so that prefix is not recreated in the target drive.
pub fn drive_relative(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("files/") {
        return rest;
    }
    match path.find("/files/") {
        Some(at) => &path[at + "/files/".len()..],
        None => path,
    }
}

/// The files among `entries`.
pub fn plan_files(entries: &[CatalogEntry]) -> Vec<CatalogEntry> {
    entries
        .iter()
        .filter(|e| e.kind == ItemKind::File)
        .cloned()
        .collect()
}

/// Restores `files` of recovery point `point` into one drive at their paths below its root:
/// see [`restore_placed`].
pub async fn restore_files(
    client: &TenantClient,
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    files: Vec<CatalogEntry>,
    target: &DriveTarget,
    sink: &dyn RestoreSink,
) -> DriveSummary {
    let placed = files
        .into_iter()
        .map(|entry| PlacedFile {
            place: Ok(Placement {
                drive_id: target.drive_id.clone(),
                folder: "root".into(),
                relative: drive_relative(&entry.path).to_string(),
            }),
            entry,
        })
        .collect();
    restore_placed(
        client,
        storage,
        scope,
        point,
        placed,
        target.under.as_deref(),
        target.collision,
        sink,
    )
    .await
}

/// Files restored at once. Each file pays several round trips (lookup, upload session, one per
/// chunk) before and between its bytes; with a few files going, one's waits are hidden behind
/// another's transfer. The governor's resource-unit budget, not this, bounds the rate.
const FILES_AT_ONCE: usize = 3;

/// What a restore of several files shares while they go at once.
struct Progress {
    /// Why the restore stopped, once it has.
    stopped: Option<String>,
    /// When a file last got through (or the restore started).
    last_progress: Instant,
}

/// Restores placed files of recovery point `point`, a few at a time, each under `under` (a new
/// folder made in its placement's folder) when given, recording each with `sink` in the order
/// given.
#[allow(clippy::too_many_arguments)]
pub async fn restore_placed(
    client: &TenantClient,
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    files: Vec<PlacedFile>,
    under: Option<&str>,
    collision: Collision,
    sink: &dyn RestoreSink,
) -> DriveSummary {
    let mut summary = DriveSummary::default();
    // One folder lookup at a time: two files of a new folder must not both create it.
    let folders: tokio::sync::Mutex<HashMap<String, String>> =
        tokio::sync::Mutex::new(HashMap::new());
    let total = files.len() as u64;
    // Throttling only slows a restore: a file throttled past its requests' retries is tried
    // again (nothing of it was committed) until no file has got through for twice as long as a
    // request may wait.
    let patience = client.executor().policy.max_total_wait.saturating_mul(2);
    let progress = std::sync::Mutex::new(Progress {
        stopped: None,
        last_progress: Instant::now(),
    });
    let progress = &progress;
    let folders = &folders;
    let lock = || progress.lock().unwrap_or_else(|p| p.into_inner());
    let files = &files;
    // By index: a closure taking `&PlacedFile` would make the future's type depend on that
    // borrow's lifetime, which the worker's `Send` bound cannot name.
    let mut results = futures::stream::iter(0..files.len())
        .map(|index| async move {
            let placed = &files[index];
            let file = &placed.entry;
            let stopped = lock().stopped.clone();
            let (result, bytes, detail) = match (&stopped, &placed.place) {
                (_, Err(reason)) => (ItemResult::Failed, 0, reason.clone()),
                (Some(reason), _) => (ItemResult::Failed, 0, format!("Not restored: {reason}")),
                (None, Ok(place)) => match loop {
                    let attempt = restore_file(
                        client, storage, scope, point, file, place, under, collision, folders,
                    )
                    .await;
                    match attempt {
                        Err(RestoreFileError::Graph(e))
                            if e.kind() == ErrorKind::Throttled && {
                                let progress = lock();
                                progress.stopped.is_none()
                                    && progress.last_progress.elapsed() < patience
                            } => {}
                        attempt => break attempt,
                    }
                } {
                    Ok((result, bytes)) => {
                        lock().last_progress = Instant::now();
                        (result, bytes, String::new())
                    }
                    Err(RestoreFileError::Graph(e)) => match stop_reason(&e) {
                        Some(reason) => {
                            lock().stopped.get_or_insert(reason.clone());
                            (ItemResult::Failed, 0, format!("Not restored: {reason}"))
                        }
                        None => (ItemResult::Failed, 0, e.to_string()),
                    },
                    Err(RestoreFileError::Read(message)) => (
                        ItemResult::Failed,
                        0,
                        format!("Could not read the backup: {message}"),
                    ),
                },
            };
            let detail = if result == ItemResult::Skipped {
                "A file with that name is already there; skipped as asked".to_string()
            } else {
                detail
            };
            (file, result, bytes, detail)
        })
        .buffered(FILES_AT_ONCE);
    let mut done = 0;
    while let Some((file, result, bytes, detail)) = results.next().await {
        summary.bytes += bytes;
        match result {
            ItemResult::Restored | ItemResult::RestoredWithLoss => summary.restored += 1,
            ItemResult::Skipped => summary.skipped += 1,
            ItemResult::Failed => summary.failed += 1,
        }
        sink.record(&file.path, result, &detail).await;
        done += 1;
        sink.progress(done, total);
    }
    summary
}

fn stop_reason(error: &GraphError) -> Option<String> {
    if error.status() == Some(507) || error.code().is_some_and(|c| c.contains("quota")) {
        return Some("The target drive is out of space.".into());
    }
    if error.kind() == ErrorKind::Throttled {
        return Some(
            "Microsoft throttled the drive without letting any file through for longer than the \
             restore waits; try the restore again later."
                .into(),
        );
    }
    None
}

enum RestoreFileError {
    Graph(GraphError),
    Read(String),
}

impl From<GraphError> for RestoreFileError {
    fn from(e: GraphError) -> Self {
        Self::Graph(e)
    }
}

#[allow(clippy::too_many_arguments)]
async fn restore_file(
    client: &TenantClient,
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    file: &CatalogEntry,
    place: &Placement,
    under: Option<&str>,
    collision: Collision,
    folders: &tokio::sync::Mutex<HashMap<String, String>>,
) -> Result<(ItemResult, u64), RestoreFileError> {
    let relative = place.relative.as_str();
    let (dir, name) = relative.rsplit_once('/').unwrap_or(("", relative));
    let mut components: Vec<&str> = Vec::new();
    if let Some(under) = under {
        components.push(under);
    }
    components.extend(dir.split('/').filter(|c| !c.is_empty()));
    let drive_id = place.drive_id.as_str();
    let parent = {
        let mut known = folders.lock().await;
        ensure_folder(client, drive_id, &place.folder, &components, &mut known).await?
    };
    let conflict = match collision {
        Collision::Skip => {
            if client.drive_child(drive_id, &parent, name).await?.is_some() {
                return Ok((ItemResult::Skipped, 0));
            }
            // Someone may add it meanwhile: still never overwrite.
            ConflictBehavior::Fail
        }
        Collision::KeepBoth => ConflictBehavior::Rename,
        Collision::Overwrite => ConflictBehavior::Replace,
    };
    let size = file.size;
    if size == 0 {
        client
            .put_empty_file(drive_id, &parent, name, conflict)
            .await?;
        return Ok((ItemResult::Restored, 0));
    }
    let session = client
        .create_upload_session(drive_id, &parent, name, conflict, size, file.last_modified)
        .await?;
    let mut stream = read::read_item(storage, scope, point, &file.path)
        .await
        .map_err(|e| RestoreFileError::Read(e.to_string()))?;
    let mut buffer = BytesMut::with_capacity(CHUNK);
    let mut sent: u64 = 0;
    let mut done = false;
    loop {
        let next = stream.next().await;
        if let Some(chunk) = &next {
            let chunk = chunk
                .as_ref()
                .map_err(|e| RestoreFileError::Read(e.to_string()))?;
            buffer.extend_from_slice(chunk);
        }
        let last = next.is_none();
        while buffer.len() >= CHUNK || (last && !buffer.is_empty()) {
            let take = buffer.len().min(CHUNK);
            let piece: Bytes = buffer.split_to(take).freeze();
            if sent + piece.len() as u64 > size {
                return Err(RestoreFileError::Read(
                    "the backup holds more bytes than its catalog entry says".into(),
                ));
            }
            match client
                .upload_chunk(&session, sent, size, piece.clone())
                .await?
            {
                ChunkAnswer::Continue { next } => sent = next,
                ChunkAnswer::Done(_) => {
                    sent += piece.len() as u64;
                    done = true;
                }
            }
        }
        if last {
            break;
        }
    }
    if !done || sent != size {
        return Err(RestoreFileError::Read(format!(
            "the upload ended at {sent} of {size} bytes"
        )));
    }
    Ok((ItemResult::Restored, size))
}

/// The id of the folder at `components` under folder `base` of the drive, made where missing.
async fn ensure_folder(
    client: &TenantClient,
    drive_id: &str,
    base: &str,
    components: &[&str],
    known: &mut HashMap<String, String>,
) -> Result<String, GraphError> {
    let mut parent = base.to_string();
    // Drives and base folders differ between files of one restore (a site's libraries).
    let mut key = format!("{drive_id}|{base}|");
    for name in components {
        key.push('/');
        key.push_str(&name.to_lowercase());
        if let Some(id) = known.get(&key) {
            parent = id.clone();
            continue;
        }
        let id = match client.drive_child(drive_id, &parent, name).await? {
            Some(item) if item.is_folder() => item.id,
            Some(_) => {
                // A file holds the name: the folder goes beside it under a new name.
                client
                    .create_drive_folder(drive_id, &parent, name, ConflictBehavior::Rename)
                    .await?
                    .id
            }
            None => match client
                .create_drive_folder(drive_id, &parent, name, ConflictBehavior::Fail)
                .await
            {
                Ok(item) => item.id,
                // Made meanwhile by someone else: use it.
                Err(e) if e.status() == Some(409) => client
                    .drive_child(drive_id, &parent, name)
                    .await?
                    .map(|item| item.id)
                    .ok_or(e)?,
                Err(e) => return Err(e),
            },
        };
        known.insert(key.clone(), id.clone());
        parent = id;
    }
    Ok(parent)
}

#[cfg(test)]
mod path_tests {
    use super::drive_relative;

    #[test]
    fn the_backup_layout_is_not_recreated_in_the_target_drive() {
        assert_eq!(drive_relative("files/Documents/a.docx"), "Documents/a.docx");
        assert_eq!(
            drive_relative("libraries/Shared Documents/files/x/y.txt"),
            "x/y.txt"
        );
        assert_eq!(drive_relative("Documents/a.docx"), "Documents/a.docx");
    }
}
