//! Reading backups back: one item's bytes as a stream, a folder or a whole archive as a zip
//! stream. Data is read from the repository in bounded chunks on a blocking thread and handed to
//! the async side through a small channel, so neither a 10 GB file nor a 100 000-item mailbox is
//! ever held in memory or on disk: a zip is written as its items are read, so its first bytes
//! leave before its last item is read. A shared repository lock is held until the last byte is
//! read, so a prune in another process never removes a pack under a reader. This module never
//! writes to the repository (beyond its lock file) or the catalog.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use rustic_core::{IndexedFullStatus, Repository};
use tokio::sync::mpsc;

use super::BackupStorage;
use super::catalog::{self, RecoveryPoint, RecoveryPointId};
use super::error::{StorageError, StorageResult};
use super::lock::LockKind;
use super::repository::run_blocking;
use super::scope::TenantScope;
use super::trees;
use super::zip_stream::ZipStream;

/// Bytes read from the repository per step.
const READ_CHUNK: usize = 1 << 20;
/// Chunks in flight between the blocking reader and the consumer.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Zip bytes gathered into one chunk, so deflate's small writes do not each cross the channel.
const ZIP_CHUNK: usize = 256 << 10;

/// A stream of bytes read back from a repository.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Streams one item of a recovery point (`path` relative to the archive root, as in the catalog).
pub async fn read_item(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    path: &str,
) -> StorageResult<ByteStream> {
    let point = catalog::find_recovery_point(storage.db(), scope, point).await?;
    let archive = catalog::find_archive(storage.db(), scope, point.archive).await?;
    // Only catalogued paths are served: the catalog is what the user browsed.
    catalog::find_item(storage.db(), scope, point.id, path).await?;
    let full_path = PathBuf::from(archive.workload.root()).join(path);
    // Held until the last byte is read: a prune elsewhere must not remove packs mid-stream.
    let lock = storage.lock(point.repository, LockKind::Shared).await?;
    let repo = indexed_for(storage, &point, &full_path).await?;
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let snapshot = point.snapshot_id.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let result = stream_file(&repo, &snapshot, &full_path, &mut |chunk| {
            sender
                .blocking_send(Ok(chunk))
                .map_err(|_| io::Error::other("reader went away"))
        });
        if let Err(err) = result {
            let _ = sender.blocking_send(Err(io::Error::other(err.to_string())));
        }
        // The lock is gone before the reader sees the end of the stream.
        runtime.block_on(lock.release());
        drop(sender);
    });
    Ok(receiver_stream(receiver))
}

/// Reads one item entirely into memory; for tests and small items only.
pub async fn read_item_to_vec(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    path: &str,
) -> StorageResult<Vec<u8>> {
    use futures::StreamExt;
    let mut stream = read_item(storage, scope, point, path).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Streams a zip of every item under `folder` ("" for the whole recovery point), paths inside
/// the zip relative to the archive root.
pub async fn read_folder_as_zip(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    folder: &str,
) -> StorageResult<ByteStream> {
    let point = catalog::find_recovery_point(storage.db(), scope, point).await?;
    let archive = catalog::find_archive(storage.db(), scope, point.archive).await?;
    let folder = folder.trim_matches('/').to_string();
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    // The catalog answers whether the folder exists and gives an item to probe the index with.
    let first_item = catalog::list_items(storage.db(), scope, point.id)
        .await?
        .into_iter()
        .map(|entry| entry.path)
        .find(|path| path.starts_with(&prefix));
    if first_item.is_none() && !folder.is_empty() {
        return Err(StorageError::not_found(format!(
            "folder `{folder}` in recovery point {}",
            point.id
        )));
    }
    let root = PathBuf::from(archive.workload.root());
    let lock = storage.lock(point.repository, LockKind::Shared).await?;
    let repo = indexed_for(storage, &point, &root.join(first_item.unwrap_or_default())).await?;
    let start = if folder.is_empty() {
        root.clone()
    } else {
        root.join(&folder)
    };
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let snapshot = point.snapshot_id.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let error_sender = sender.clone();
        let result = write_folder_zip(&repo, &snapshot, &start, &folder, zip_writer(sender));
        if let Err(err) = result {
            let _ = error_sender.blocking_send(Err(io::Error::other(err.to_string())));
        }
        // The lock is gone before the reader sees the end of the stream.
        runtime.block_on(lock.release());
        drop(error_sender);
    });
    Ok(receiver_stream(receiver))
}

/// What `restore_to_folder` wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub bytes: u64,
}

/// Threads writing restored files; restoring is bound by decryption and decompression.
const RESTORE_THREADS: usize = 4;

/// Writes every item under `folder` ("" for all) of a recovery point into `target`, keeping the
/// paths relative to the archive root. The snapshot's trees are walked once; files are written by a
/// few threads, each streaming one file at a time in chunks.
pub async fn restore_to_folder(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    folder: &str,
    target: &Path,
) -> StorageResult<RestoreReport> {
    let point = catalog::find_recovery_point(storage.db(), scope, point).await?;
    let archive = catalog::find_archive(storage.db(), scope, point.archive).await?;
    let folder = folder.trim_matches('/').to_string();
    let root = PathBuf::from(archive.workload.root());
    let start = if folder.is_empty() {
        root.clone()
    } else {
        root.join(&folder)
    };
    let customer_repo = storage.open_repository(point.repository).await?;
    let snapshot = point.snapshot_id.clone();
    let target = target.to_path_buf();
    let restore = |repo: Arc<Repository<IndexedFullStatus>>| {
        let (snapshot, start, folder, target) = (
            snapshot.clone(),
            start.clone(),
            folder.clone(),
            target.clone(),
        );
        run_blocking(move || {
            let files = list_files(&repo, &snapshot, &start)?;
            let prefix = PathBuf::from(&folder);
            write_files(&repo, &files, &prefix, &target)
        })
    };
    let lock = customer_repo
        .lock(LockKind::Shared, storage.lock_wait())
        .await?;
    // A cached index can lack blobs another process wrote since: retry once with a fresh one.
    let restored = match restore(customer_repo.indexed(false).await?).await {
        Ok(report) => Ok(report),
        Err(_) => restore(customer_repo.indexed(true).await?).await,
    };
    lock.release().await;
    restored
}

/// Every file node below `start` in a snapshot, with its path relative to `start`.
fn list_files(
    repo: &Repository<IndexedFullStatus>,
    snapshot: &str,
    start: &Path,
) -> StorageResult<Vec<(PathBuf, rustic_core::repofile::Node)>> {
    let snaps = repo.get_snapshots(&[snapshot])?;
    let snap = snaps
        .first()
        .ok_or_else(|| StorageError::not_found(format!("snapshot {snapshot}")))?;
    let top = trees::node_at(repo, snap.tree, start)?;
    let mut files = Vec::new();
    let mut pending = vec![(PathBuf::new(), top)];
    while let Some((path, node)) = pending.pop() {
        if let Some(subtree) = node.subtree {
            for child in repo.get_tree(&subtree)?.nodes {
                let child_path = path.join(child.name());
                pending.push((child_path, child));
            }
        } else if node.is_file() {
            files.push((path, node));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn write_files(
    repo: &Repository<IndexedFullStatus>,
    files: &[(PathBuf, rustic_core::repofile::Node)],
    prefix: &Path,
    target: &Path,
) -> StorageResult<RestoreReport> {
    let totals = std::sync::Mutex::new(RestoreReport::default());
    let first_error = std::sync::Mutex::new(None::<StorageError>);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..RESTORE_THREADS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((path, node)) = files.get(i) else {
                        return;
                    };
                    let out = target.join(prefix).join(path);
                    let written = write_one_file(repo, node, &out);
                    match written {
                        Ok(bytes) => {
                            let mut totals = totals.lock().unwrap_or_else(|p| p.into_inner());
                            totals.files += 1;
                            totals.bytes += bytes;
                        }
                        Err(err) => {
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(err);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(err) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(err);
    }
    Ok(totals.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn write_one_file(
    repo: &Repository<IndexedFullStatus>,
    node: &rustic_core::repofile::Node,
    out: &Path,
) -> StorageResult<u64> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = io::BufWriter::new(std::fs::File::create(out)?);
    let mut written = 0u64;
    read_node(repo, node, &mut |chunk| {
        written += chunk.len() as u64;
        file.write_all(&chunk)
    })?;
    file.flush()?;
    Ok(written)
}

/// Streams one file node's content in chunks.
fn read_node(
    repo: &Repository<IndexedFullStatus>,
    node: &rustic_core::repofile::Node,
    emit: &mut dyn FnMut(Bytes) -> io::Result<()>,
) -> StorageResult<()> {
    let file = repo.open_file(node)?;
    let size = usize::try_from(node.meta.size).unwrap_or(usize::MAX);
    let mut offset = 0;
    while offset < size {
        let chunk = repo.read_file_at(&file, offset, READ_CHUNK.min(size - offset))?;
        if chunk.is_empty() {
            break;
        }
        offset += chunk.len();
        emit(chunk)?;
    }
    Ok(())
}

/// Streams a zip of the whole newest recovery point of an archive.
pub async fn read_archive_as_zip(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    archive: catalog::ArchiveId,
) -> StorageResult<ByteStream> {
    let archive = catalog::find_archive(storage.db(), scope, archive)
        .await?
        .id;
    let point = catalog::latest_recovery_point(storage.db(), archive)
        .await?
        .ok_or_else(|| StorageError::not_found(format!("recovery point of archive {archive}")))?;
    read_folder_as_zip(storage, scope, point.id, "").await
}

/// An indexed repository whose index knows the snapshot's blobs: the cached one when it does,
/// a fresh one when another writer added them after we indexed.
async fn indexed_for(
    storage: &BackupStorage,
    point: &RecoveryPoint,
    probe: &Path,
) -> StorageResult<Arc<Repository<IndexedFullStatus>>> {
    let customer_repo = storage.open_repository(point.repository).await?;
    let cached = customer_repo.indexed(false).await?;
    let snapshot = point.snapshot_id.clone();
    let probe = probe.to_path_buf();
    let check = cached.clone();
    let known = run_blocking(move || {
        let Ok(snaps) = check.get_snapshots(&[snapshot]) else {
            return Ok(false);
        };
        let Some(snap) = snaps.first() else {
            return Ok(false);
        };
        Ok(match trees::node_at(&check, snap.tree, &probe) {
            Ok(node) => check.open_file(&node).is_ok(),
            Err(_) => false,
        })
    })
    .await?;
    if known {
        Ok(cached)
    } else {
        customer_repo.indexed(true).await
    }
}

fn stream_file(
    repo: &Repository<IndexedFullStatus>,
    snapshot: &str,
    path: &Path,
    emit: &mut dyn FnMut(Bytes) -> io::Result<()>,
) -> StorageResult<()> {
    let snaps = repo.get_snapshots(&[snapshot])?;
    let snap = snaps
        .first()
        .ok_or_else(|| StorageError::not_found(format!("snapshot {snapshot}")))?;
    let node = trees::node_at(repo, snap.tree, path)?;
    read_node(repo, &node, emit)
}

/// Writes a zip of every file below `start`, named `prefix/<path below start>`.
fn write_folder_zip(
    repo: &Repository<IndexedFullStatus>,
    snapshot: &str,
    start: &Path,
    prefix: &str,
    mut zip: ZipStream<impl Write>,
) -> StorageResult<()> {
    for (path, node) in list_files(repo, snapshot, start)? {
        let name = Path::new(prefix).join(path);
        zip.add_entry(&name.to_string_lossy(), modified(&node), |entry| {
            read_node(repo, &node, &mut |chunk| entry.write_all(&chunk))
        })?;
    }
    zip.finish()?;
    Ok(())
}

/// A zip written into the channel in chunks of up to `ZIP_CHUNK` (each entry is flushed whole).
fn zip_writer(sender: mpsc::Sender<io::Result<Bytes>>) -> ZipStream<impl Write> {
    ZipStream::new(io::BufWriter::with_capacity(
        ZIP_CHUNK,
        ChannelWriter { sender },
    ))
}

/// When an item was last modified, as its node says.
fn modified(node: &rustic_core::repofile::Node) -> Option<chrono::DateTime<chrono::Utc>> {
    node.meta
        .mtime
        .and_then(|time| chrono::DateTime::from_timestamp(time.as_second(), 0))
}

/// A `Write` that hands bytes to the async side in chunks, blocking while the consumer is behind.
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sender
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::other("reader went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn receiver_stream(receiver: mpsc::Receiver<io::Result<Bytes>>) -> ByteStream {
    Box::pin(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    ))
}

/// How a selection is laid out in a zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZipLayout {
    /// Each item as a file, at its path relative to the archive root.
    Files,
    /// Every message (`.eml`) of the selection in one mbox file of this name (mboxrd quoting).
    Mbox(String),
}

/// Streams a zip of the given catalogued items of a recovery point (from
/// `catalog::expand_selection`), written on a blocking thread as the items are read, so memory
/// stays bounded whatever the size.
pub async fn read_items_as_zip(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    paths: Vec<String>,
    layout: ZipLayout,
) -> StorageResult<ByteStream> {
    let point = catalog::find_recovery_point(storage.db(), scope, point).await?;
    let archive = catalog::find_archive(storage.db(), scope, point.archive).await?;
    // Only catalogued paths are served: the catalog is what the user browsed.
    for path in &paths {
        catalog::find_item(storage.db(), scope, point.id, path).await?;
    }
    let root = PathBuf::from(archive.workload.root());
    let lock = storage.lock(point.repository, LockKind::Shared).await?;
    let probe = root.join(paths.first().cloned().unwrap_or_default());
    let repo = indexed_for(storage, &point, &probe).await?;
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let snapshot = point.snapshot_id.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let error_sender = sender.clone();
        let result = write_selection(&repo, &snapshot, &root, &paths, &layout, zip_writer(sender));
        if let Err(err) = result {
            let _ = error_sender.blocking_send(Err(io::Error::other(err.to_string())));
        }
        runtime.block_on(lock.release());
        drop(error_sender);
    });
    Ok(receiver_stream(receiver))
}

fn write_selection(
    repo: &Repository<IndexedFullStatus>,
    snapshot: &str,
    root: &Path,
    paths: &[String],
    layout: &ZipLayout,
    mut zip: ZipStream<impl Write>,
) -> StorageResult<()> {
    let snaps = repo.get_snapshots(&[snapshot])?;
    let snap = snaps
        .first()
        .ok_or_else(|| StorageError::not_found(format!("snapshot {snapshot}")))?;
    match layout {
        ZipLayout::Files => {
            for path in paths {
                let node = trees::node_at(repo, snap.tree, &root.join(path))?;
                zip.add_entry(path, modified(&node), |entry| {
                    read_node(repo, &node, &mut |chunk| entry.write_all(&chunk))
                })?;
            }
        }
        ZipLayout::Mbox(name) => {
            zip.add_entry(name, None, |mbox| {
                for path in paths.iter().filter(|p| p.ends_with(".eml")) {
                    let node = trees::node_at(repo, snap.tree, &root.join(path))?;
                    mbox.write_all(b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n")?;
                    let mut quote = MboxQuoting::default();
                    read_node(repo, &node, &mut |chunk| {
                        let quoted = quote.feed(&chunk);
                        mbox.write_all(&quoted)
                    })?;
                    let mut tail = quote.finish();
                    if !quote.ended_with_newline() {
                        tail.push(b'\n');
                    }
                    tail.push(b'\n');
                    mbox.write_all(&tail)?;
                }
                Ok::<_, StorageError>(())
            })?;
        }
    }
    zip.finish()?;
    Ok(())
}

/// mboxrd quoting, streamed: a line that starts with zero or more `>` and then `From ` gets one
/// more `>`, so the separator lines stay unambiguous and unquoting gives the message back.
#[derive(Debug)]
pub struct MboxQuoting {
    /// Bytes at the start of the current line that may still become a `>*From ` prefix.
    pending: Vec<u8>,
    at_line_start: bool,
    last: Option<u8>,
}

impl Default for MboxQuoting {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
            at_line_start: true,
            last: None,
        }
    }
}

impl MboxQuoting {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 8);
        for &byte in chunk {
            self.last = Some(byte);
            if !self.at_line_start {
                out.push(byte);
                if byte == b'\n' {
                    self.at_line_start = true;
                }
                continue;
            }
            self.pending.push(byte);
            let quotes = self.pending.iter().take_while(|&&b| b == b'>').count();
            let rest = &self.pending[quotes..];
            if rest == b"From " {
                out.push(b'>');
                out.append(&mut self.pending);
                self.at_line_start = false;
            } else if !b"From ".starts_with(rest) {
                let newline = byte == b'\n';
                out.append(&mut self.pending);
                self.at_line_start = newline;
            }
        }
        out
    }

    /// What is still held back at the end of the message.
    pub fn finish(&mut self) -> Vec<u8> {
        self.at_line_start = true;
        std::mem::take(&mut self.pending)
    }

    pub fn ended_with_newline(&self) -> bool {
        self.last.is_none_or(|b| b == b'\n')
    }
}

/// Reads several small items of one recovery point with a single repository open, for work that
/// looks inside many items (the search index): `paths` as in the catalog; items larger than
/// `max_size` or missing from the snapshot are left out rather than failing the batch. The caller
/// has resolved `point` under a customer or system scope.
pub async fn read_small_items(
    storage: &BackupStorage,
    point: &RecoveryPoint,
    root: &str,
    paths: Vec<String>,
    max_size: u64,
) -> StorageResult<Vec<(String, Vec<u8>)>> {
    let Some(first) = paths.first() else {
        return Ok(Vec::new());
    };
    let root = PathBuf::from(root);
    let lock = storage.lock(point.repository, LockKind::Shared).await?;
    let repo = indexed_for(storage, point, &root.join(first)).await;
    let snapshot = point.snapshot_id.clone();
    let read = match repo {
        Ok(repo) => {
            run_blocking(move || {
                let snaps = repo.get_snapshots(std::slice::from_ref(&snapshot))?;
                let snap = snaps
                    .first()
                    .ok_or_else(|| StorageError::not_found(format!("snapshot {snapshot}")))?;
                let mut out = Vec::new();
                for path in paths {
                    let Ok(node) = trees::node_at(&repo, snap.tree, &root.join(&path)) else {
                        continue;
                    };
                    if !node.is_file() || node.meta.size > max_size {
                        continue;
                    }
                    let mut bytes = Vec::with_capacity(node.meta.size as usize);
                    read_node(&repo, &node, &mut |chunk| {
                        bytes.extend_from_slice(&chunk);
                        Ok(())
                    })?;
                    out.push((path, bytes));
                }
                Ok(out)
            })
            .await
        }
        Err(err) => Err(err),
    };
    lock.release().await;
    read
}

#[cfg(test)]
mod tests {
    use super::MboxQuoting;

    #[test]
    fn mboxrd_quotes_from_lines_across_chunks() {
        let mut quote = MboxQuoting::default();
        let mut out = Vec::new();
        for chunk in [
            &b"Subject: x\n\nFr"[..],
            b"om here\n>From there\nFrog\n",
            b"From",
        ] {
            out.extend(quote.feed(chunk));
        }
        out.extend(quote.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Subject: x\n\n>From here\n>>From there\nFrog\nFrom"
        );
    }
}
