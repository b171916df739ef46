//! Reading backups back: one item's bytes as a stream, a folder or a whole archive as a zip
//! stream. Data is read from the repository in bounded chunks on a blocking thread and handed to
//! the async side through a small channel, so neither a 10 GB file nor a 100 000-item mailbox is
//! ever held in memory. This module never writes to the repository or the catalog.

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
use super::repository::run_blocking;

/// Bytes read from the repository per step.
const READ_CHUNK: usize = 1 << 20;
/// Chunks in flight between the blocking reader and the consumer.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A stream of bytes read back from a repository.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Streams one item of a recovery point (`path` relative to the archive root, as in the catalog).
pub async fn read_item(
    storage: &BackupStorage,
    point: RecoveryPointId,
    path: &str,
) -> StorageResult<ByteStream> {
    let point = catalog::find_recovery_point(storage.db(), point).await?;
    let archive = catalog::find_archive(storage.db(), point.archive).await?;
    // Only catalogued paths are served: the catalog is what the user browsed.
    catalog::find_item(storage.db(), point.id, path).await?;
    let full_path = PathBuf::from(archive.workload.root()).join(path);
    let repo = indexed_for(storage, &point, &full_path).await?;
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let snapshot = point.snapshot_id.clone();
    tokio::task::spawn_blocking(move || {
        let result = stream_file(&repo, &snapshot, &full_path, &mut |chunk| {
            sender
                .blocking_send(Ok(chunk))
                .map_err(|_| io::Error::other("reader went away"))
        });
        if let Err(err) = result {
            let _ = sender.blocking_send(Err(io::Error::other(err.to_string())));
        }
    });
    Ok(receiver_stream(receiver))
}

/// Reads one item entirely into memory; for tests and small items only.
pub async fn read_item_to_vec(
    storage: &BackupStorage,
    point: RecoveryPointId,
    path: &str,
) -> StorageResult<Vec<u8>> {
    use futures::StreamExt;
    let mut stream = read_item(storage, point, path).await?;
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
    point: RecoveryPointId,
    folder: &str,
) -> StorageResult<ByteStream> {
    let point = catalog::find_recovery_point(storage.db(), point).await?;
    let archive = catalog::find_archive(storage.db(), point.archive).await?;
    let folder = folder.trim_matches('/').to_string();
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    let items: Vec<String> = catalog::list_items(storage.db(), point.id)
        .await?
        .into_iter()
        .map(|entry| entry.path)
        .filter(|path| path.starts_with(&prefix))
        .collect();
    if items.is_empty() && !folder.is_empty() {
        return Err(StorageError::not_found(format!(
            "folder `{folder}` in recovery point {}",
            point.id
        )));
    }
    let root = PathBuf::from(archive.workload.root());
    let repo = indexed_for(
        storage,
        &point,
        &root.join(items.first().map_or("", String::as_str)),
    )
    .await?;
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let snapshot = point.snapshot_id.clone();
    tokio::task::spawn_blocking(move || {
        let error_sender = sender.clone();
        let result = write_zip(&repo, &snapshot, &root, &items, ChannelWriter { sender });
        if let Err(err) = result {
            let _ = error_sender.blocking_send(Err(io::Error::other(err.to_string())));
        }
    });
    Ok(receiver_stream(receiver))
}

/// Streams a zip of the whole newest recovery point of an archive.
pub async fn read_archive_as_zip(
    storage: &BackupStorage,
    archive: catalog::ArchiveId,
) -> StorageResult<ByteStream> {
    let point = catalog::latest_recovery_point(storage.db(), archive)
        .await?
        .ok_or_else(|| StorageError::not_found(format!("recovery point of archive {archive}")))?;
    read_folder_as_zip(storage, point.id, "").await
}

/// An indexed repository whose index knows the snapshot's blobs: the cached one when it does,
/// a fresh one when another writer added them after we indexed.
async fn indexed_for(
    storage: &BackupStorage,
    point: &RecoveryPoint,
    probe: &Path,
) -> StorageResult<Arc<Repository<IndexedFullStatus>>> {
    let customer_repo = storage.repository(point.customer).await?;
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
        Ok(match check.node_from_path(snap.tree, &probe) {
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
    let node = repo.node_from_path(snap.tree, path)?;
    let file = repo.open_file(&node)?;
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

/// Writes the zip into an anonymous temporary file (the zip format needs to seek back to each
/// entry's header), then streams that file: memory stays at one chunk whatever the size.
fn write_zip(
    repo: &Repository<IndexedFullStatus>,
    snapshot: &str,
    root: &Path,
    items: &[String],
    out: ChannelWriter,
) -> StorageResult<()> {
    use std::io::{Read, Seek};
    let spool_path = std::env::temp_dir().join(format!("skyvault-zip-{}", uuid::Uuid::new_v4()));
    let mut spool = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&spool_path)?;
    // Unlinked at once: the open handle keeps it, and nothing is left behind after a crash.
    let _ = std::fs::remove_file(&spool_path);
    write_zip_into(repo, snapshot, root, items, &mut spool)?;
    spool.seek(io::SeekFrom::Start(0))?;
    let mut out = out;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = spool.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
    }
}

fn write_zip_into(
    repo: &Repository<IndexedFullStatus>,
    snapshot: &str,
    root: &Path,
    items: &[String],
    file: &mut std::fs::File,
) -> StorageResult<()> {
    let zip_error =
        |err: zip::result::ZipError| StorageError::Io(io::Error::other(err.to_string()));
    let mut zip = zip::ZipWriter::new(io::BufWriter::with_capacity(256 << 10, file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for path in items {
        zip.start_file(path.as_str(), options).map_err(zip_error)?;
        stream_file(repo, snapshot, &root.join(path), &mut |chunk| {
            zip.write_all(&chunk)
        })?;
    }
    let mut out = zip.finish().map_err(zip_error)?;
    out.flush()?;
    Ok(())
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
