//! The reusable core: backs up ONE drive (a OneDrive, a document library) under a path prefix
//! of an archive. Used by the OneDrive and site runners here, and by the team runner for a
//! team's channel files.
//!
//! One run of a drive:
//! 1. reads the item manifest the previous point stored for this drive (ids, names, parents,
//!    hashes: the tree the stored delta link continues) and runs `root/delta` from that link,
//!    page by page, applying each change to the tree; without a manifest or link, or when
//!    Graph answers 410 and a resync, the round enumerates the drive and the tree is rebuilt
//!    from it alone;
//! 2. works out every item's path from the tree (delta never says where an item is, and a
//!    renamed folder's children are not reported);
//! 3. offers storage every file with a content key (quickXorHash and size, else cTag, else eTag)
//!    and a lazy download: storage reuses a file whose key is unchanged by id, even when it was
//!    renamed or moved, and fetches only new and changed content, streamed from the
//!    pre-authenticated URL (Range-resumed on a broken connection) and checked against
//!    quickXorHash, or against the listed size where Microsoft gives no hash;
//! 4. writes the new manifest (`drive-items.jsonl`, one driveItem per line without its
//!    download URL) next to the files: names exactly as SharePoint has them, authors, dates,
//!    eTag/cTag, so a restore or a person can tell which version every file is.
//!
//! A file that fails to arrive (deleted since it was listed, changed mid-download, cut off too
//! often) is reported by storage per item and keeps its previous version; it stays in the
//! manifest with its new key, so the next run, which resumes after it, fetches it again. A
//! delta round that fails after the client's retries keeps the drive's previous items
//! (`SourceEvent::Unlisted` over its prefix) and its previous state: the point is Partial and
//! nothing is lost.

use std::collections::HashMap;
use std::io;

use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio_util::io::StreamReader;

use crate::backup::{BackupServices, RequestCounter};
use crate::m365::delta::{DeltaChange, DeltaStart};
use crate::m365::types::DriveItem;
use crate::m365::{ByteStream, ErrorKind, GraphError, TenantClient, verify_quick_xor};
use crate::storage::catalog::ItemKind;
use crate::storage::scope::TenantScope;
use crate::storage::{ItemContent, ItemMetadata, RecoveryPointId, SourceEvent, SourceItem, read};

use super::paths::{item_paths, join};
use super::state::DriveState;

/// Items per delta page (`$top`); Graph serves up to 1,000 at a time on drives.
const DELTA_PAGE: u32 = 999;
/// The manifest's name, next to the drive's `files` folder.
pub(crate) const MANIFEST: &str = "drive-items.jsonl";
/// The folder holding the drive's files, under the prefix.
pub(crate) const FILES: &str = "files";

/// One drive to back up and where it goes in the archive.
#[derive(Debug, Clone)]
pub(crate) struct DriveSource {
    pub drive_id: String,
    /// The drive's folder in the archive (`""` for the archive root): files go under
    /// `<prefix>/files/`, the manifest is `<prefix>/drive-items.jsonl`. Two drives of one
    /// archive need distinct prefixes.
    pub prefix: String,
    /// The drive as people know it ("OneDrive", "Documents"), for notes.
    pub label: String,
}

/// What one drive contributes to a recovery point.
pub(crate) struct DriveCollected {
    /// The drive's files and manifest, or an `Unlisted` over its prefix when it could not be
    /// read (its previous items are then kept and the point is Partial).
    pub events: Vec<SourceEvent>,
    /// The state to store for this drive with the point.
    pub state: DriveState,
    /// Files offered to storage (each is fetched or reused).
    pub files: u64,
    /// Plain-language remarks for the job's page.
    pub notes: Vec<String>,
}

/// Backs up one drive: runs its delta from `previous` (the state the parent point stored for
/// it, read together with the manifest in `parent`), and returns the source events with the
/// drive's new state. Content is not read here: each file's download runs when storage asks
/// for it, streamed, never whole in memory.
///
/// Errors only when the drive itself is gone (`ErrorKind::NotFound`), so the caller can drop
/// it or say the item has no drive; any other failure to list it becomes a Partial point that
/// keeps its previous items.
pub(crate) async fn collect_drive(
    services: &BackupServices,
    scope: &dyn TenantScope,
    tenant: &TenantClient,
    source: &DriveSource,
    previous: Option<&DriveState>,
    parent: Option<RecoveryPointId>,
    requests: &RequestCounter,
) -> Result<DriveCollected, GraphError> {
    let manifest_path = join(&source.prefix, MANIFEST);
    let mut notes = Vec::new();
    // The tree the stored link continues; without it the link is useless and the drive is
    // enumerated again (storage still reuses every unchanged file by id and key).
    let mut tree: Option<HashMap<String, DriveItem>> = None;
    if let (Some(state), Some(point)) = (previous, parent)
        && state.delta_link.is_some()
    {
        match read::read_item_to_vec(&services.storage, scope, point, &state.manifest).await {
            Ok(bytes) => tree = parse_manifest(&bytes),
            Err(err) => {
                tracing::warn!(drive = %source.drive_id, %err, "the drive's manifest could not be read; enumerating the drive")
            }
        }
    }
    let start = match (&tree, previous.and_then(|s| s.delta_link.as_deref())) {
        (Some(_), Some(link)) => DeltaStart::Resume(crate::m365::DeltaLink::from_stored(link)),
        _ => DeltaStart::Initial,
    };
    let mut items = tree.unwrap_or_default();

    let link = match run_delta(tenant, source, start, &mut items, requests).await {
        Ok(link) => link,
        Err(err) if err.kind() == ErrorKind::NotFound => return Err(err),
        Err(err) => {
            let reason = plain_drive_error(&err);
            notes.push(format!(
                "{} could not be read ({reason}); its files were kept from the previous backup.",
                source.label
            ));
            return Ok(DriveCollected {
                events: vec![SourceEvent::Unlisted {
                    prefix: source.prefix.clone(),
                    reason,
                }],
                state: previous.cloned().unwrap_or(DriveState {
                    delta_link: None,
                    manifest: manifest_path,
                }),
                files: 0,
                notes,
            });
        }
    };

    let paths = item_paths(&items);
    let files_root = join(&source.prefix, FILES);
    let mut events = Vec::new();
    let mut files = 0u64;
    let (mut notebooks, mut skipped) = (0u64, 0u64);
    let mut manifest = Vec::new();
    let mut ids: Vec<&String> = items.keys().collect();
    ids.sort();
    for id in ids {
        let item = &items[id];
        let Some(path) = paths.get(id) else {
            // Under a folder that is gone: deleted with it.
            continue;
        };
        write_manifest_line(&mut manifest, item);
        if item.is_onenote_notebook() {
            notebooks += 1;
        }
        if !item.is_file() {
            if !(item.is_folder() || item.is_package() || item.root.is_some()) {
                // Shortcuts to other drives and other remote items: their content is elsewhere.
                skipped += 1;
            }
            continue;
        }
        files += 1;
        events.push(SourceEvent::Item(SourceItem {
            path: join(&files_root, path),
            metadata: file_metadata(item),
            content: file_content(tenant, &source.drive_id, item, requests),
        }));
    }
    let digest = hex::encode(Sha256::digest(&manifest));
    events.push(SourceEvent::Item(SourceItem {
        path: manifest_path.clone(),
        metadata: ItemMetadata {
            kind: Some(ItemKind::Other),
            change_key: Some(format!("sha256:{digest}")),
            source_size: Some(manifest.len() as u64),
            ..ItemMetadata::default()
        },
        content: ItemContent::from_bytes(manifest),
    }));
    if notebooks > 0 {
        notes.push(format!(
            "{}: {notebooks} OneNote notebook(s) kept as their section files (.one, .onetoc2).",
            source.label
        ));
    }
    if skipped > 0 {
        notes.push(format!(
            "{}: {skipped} shortcut(s) to other drives were not followed; their content is backed up with the drive that holds it.",
            source.label
        ));
    }
    Ok(DriveCollected {
        events,
        state: DriveState {
            delta_link: Some(link),
            manifest: manifest_path,
        },
        files,
        notes,
    })
}

/// Runs one delta round to its end, page by page, applying each change to `items`; a page that
/// starts a full enumeration (the first round, or a resync after 410) clears what came before.
/// Returns the new delta link.
async fn run_delta(
    tenant: &TenantClient,
    source: &DriveSource,
    start: DeltaStart,
    items: &mut HashMap<String, DriveItem>,
    requests: &RequestCounter,
) -> Result<String, GraphError> {
    let mut pages = tenant.drive_delta(&source.drive_id, start, DELTA_PAGE);
    while let Some(page) = pages.try_next().await? {
        requests.add(1);
        if page.starts_full_sync {
            items.clear();
        }
        for change in page.changes {
            match change {
                DeltaChange::Upsert(item) => {
                    items.insert(item.id.clone(), item);
                }
                DeltaChange::Removed { id, .. } => {
                    items.remove(&id);
                }
            }
        }
        if let Some(link) = page.delta_link {
            return Ok(link.as_str().to_string());
        }
    }
    Err(GraphError::Decode {
        url: format!("drives/{}/root/delta", source.drive_id),
        message: "the delta round ended without @odata.deltaLink".into(),
    })
}

/// What identifies a file's content: its quickXorHash with its size, else its cTag, else its
/// eTag (which also changes with a rename, so it only costs a needless download).
fn content_key(item: &DriveItem) -> Option<String> {
    if let Some(hash) = item.quick_xor_hash() {
        return Some(format!("qxh:{hash}:{}", item.size.unwrap_or(-1)));
    }
    if let Some(tag) = &item.c_tag {
        return Some(format!("ctag:{tag}"));
    }
    item.e_tag.as_ref().map(|tag| format!("etag:{tag}"))
}

fn file_metadata(item: &DriveItem) -> ItemMetadata {
    let modified = item
        .file_system_info
        .as_ref()
        .and_then(|f| f.last_modified_date_time)
        .or(item.last_modified_date_time);
    ItemMetadata {
        kind: Some(ItemKind::File),
        graph_id: Some(item.id.clone()),
        change_key: content_key(item),
        last_modified: modified,
        source_size: item.size.and_then(|s| u64::try_from(s).ok()),
        sender: item
            .last_modified_by
            .as_ref()
            .and_then(|by| by.user.as_ref().or(by.application.as_ref()))
            .and_then(|who| who.display_name.clone()),
        ..ItemMetadata::default()
    }
}

/// The file's bytes, downloaded when storage asks: from the delta's pre-authenticated URL
/// while it lasts (a fresh one otherwise), checked against quickXorHash or the listed size.
fn file_content(
    tenant: &TenantClient,
    drive_id: &str,
    item: &DriveItem,
    requests: &RequestCounter,
) -> ItemContent {
    let size = item.size.and_then(|s| u64::try_from(s).ok());
    if size == Some(0) {
        // Nothing to download; `/content` of an empty file is a wasted request.
        return ItemContent::from_bytes(bytes::Bytes::new());
    }
    let tenant = tenant.clone();
    let drive = drive_id.to_string();
    let id = item.id.clone();
    let url = item.download_url.clone();
    let hash = item.quick_xor_hash().map(str::to_string);
    let requests = requests.clone();
    ItemContent::from_fn(move || async move {
        requests.add(1);
        let stream = tenant
            .download_from(&drive, &id, 0, url.as_deref())
            .await
            .map_err(|err| io::Error::other(plain_drive_error(&err)))?;
        let stream = match (hash, size) {
            (Some(hash), _) => verify_quick_xor(stream, hash),
            (None, Some(size)) => expect_length(stream, size),
            (None, None) => stream,
        };
        Ok(StreamReader::new(
            stream.map_err(|err| io::Error::other(plain_drive_error(&err))),
        ))
    })
}

/// Passes `stream` through and ends it with an error when it did not carry exactly `expected`
/// bytes (a file that changed while it was read).
fn expect_length(stream: ByteStream, expected: u64) -> ByteStream {
    Box::pin(futures::stream::unfold(
        (stream, 0u64, false),
        move |(mut inner, seen, done)| async move {
            if done {
                return None;
            }
            match inner.next().await {
                Some(Ok(chunk)) => {
                    let seen = seen + chunk.len() as u64;
                    Some((Ok(chunk), (inner, seen, false)))
                }
                Some(Err(err)) => Some((Err(err), (inner, seen, true))),
                None if seen == expected => None,
                None => Some((
                    Err(GraphError::Decode {
                        url: "drive item content".into(),
                        message: format!(
                            "the file had {seen} bytes instead of the {expected} listed; it changed while it was read"
                        ),
                    }),
                    (inner, seen, true),
                )),
            }
        },
    ))
}

/// One manifest line: the driveItem as Graph gave it, without its pre-authenticated URL (a
/// credential for a few minutes, and no part of the file's identity).
fn write_manifest_line(out: &mut Vec<u8>, item: &DriveItem) {
    let mut value = serde_json::to_value(item).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("@microsoft.graph.downloadUrl");
        map.retain(|_, v| !v.is_null());
    }
    if serde_json::to_writer(&mut *out, &value).is_ok() {
        out.push(b'\n');
    }
}

/// The tree a manifest holds, or `None` when it cannot be read as one (the drive is then
/// enumerated again).
fn parse_manifest(bytes: &[u8]) -> Option<HashMap<String, DriveItem>> {
    let mut items = HashMap::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let item: DriveItem = serde_json::from_slice(line).ok()?;
        items.insert(item.id.clone(), item);
    }
    Some(items)
}

/// What Graph's error means for one drive or file, in words for the job's page.
pub(crate) fn plain_drive_error(err: &GraphError) -> String {
    let what = match err.kind() {
        ErrorKind::NotFound => "it was deleted in Microsoft 365 during the backup",
        ErrorKind::Throttled => "SharePoint kept throttling the tenant; the next run takes it",
        ErrorKind::Unavailable => "Microsoft 365 was unavailable; the next run takes it",
        ErrorKind::Forbidden => "the app lacks the permission to read it",
        ErrorKind::SyncStateLost => "Microsoft asked for a full resynchronisation",
        _ => "Microsoft 365 refused the request or the transfer failed",
    };
    format!("{what} ({err})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: serde_json::Value) -> DriveItem {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn content_keys_prefer_the_hash_and_ignore_renames() {
        let a = file(
            serde_json::json!({"id":"1","name":"a.txt","size":3,"eTag":"e1",
            "file":{"hashes":{"quickXorHash":"h"}}}),
        );
        let b = file(
            serde_json::json!({"id":"1","name":"b.txt","size":3,"eTag":"e2",
            "file":{"hashes":{"quickXorHash":"h"}}}),
        );
        assert_eq!(content_key(&a), content_key(&b));
        let c = file(serde_json::json!({"id":"1","cTag":"c1","eTag":"e1","file":{}}));
        assert_eq!(content_key(&c).as_deref(), Some("ctag:c1"));
    }

    #[test]
    fn the_manifest_round_trips_without_download_urls() {
        let item = file(serde_json::json!({"id":"1","name":"a.txt","size":3,
            "@microsoft.graph.downloadUrl":"https://secret","parentReference":{"id":"r"},
            "createdBy":{"user":{"displayName":"Ann"}},"file":{"hashes":{"quickXorHash":"h"}}}));
        let mut out = Vec::new();
        write_manifest_line(&mut out, &item);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("secret") && text.contains("Ann"), "{text}");
        let back = parse_manifest(&out).unwrap();
        assert_eq!(back["1"].quick_xor_hash(), Some("h"));
        assert!(parse_manifest(b"{not json").is_none());
    }

    #[tokio::test]
    async fn a_short_stream_is_refused() {
        let chunks = || -> ByteStream {
            Box::pin(futures::stream::iter(vec![Ok(bytes::Bytes::from_static(
                b"ab",
            ))]))
        };
        let got: Vec<_> = expect_length(chunks(), 3).collect().await;
        assert!(got.last().unwrap().is_err());
        let exact = expect_length(chunks(), 2);
        assert!(exact.try_collect::<Vec<_>>().await.is_ok());
    }
}
