//! Downloads from a recovery point: one item exactly as stored (a message's `.eml` is the MIME
//! Microsoft returned, byte for byte), a selection or folder as a zip, a mailbox folder as an
//! mbox file in a zip, and the customer's repository password with the `restic` commands that
//! read the backups without Skyvault. Bytes are streamed, never held. The caller checks that
//! the user is an administrator and writes the audit log.

use crate::accounts::access::CustomerScope;
use crate::storage::catalog::{self, CatalogEntry, ItemKind, RecoveryPointId};
use crate::storage::read::{self, ByteStream, ZipLayout};
use crate::storage::{BackupStorage, StorageError, StorageResult, TenantScope};

/// A download ready to stream.
pub struct Download {
    pub file_name: String,
    pub content_type: &'static str,
    pub stream: ByteStream,
    /// What the audit log says was taken.
    pub description: String,
}

/// One item, as stored.
pub async fn item(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    path: &str,
) -> StorageResult<Download> {
    let entry = catalog::find_item(storage.db(), scope, point, path).await?;
    let stream = read::read_item(storage, scope, point, path).await?;
    Ok(Download {
        content_type: content_type(&entry),
        file_name: entry.name.clone(),
        description: entry.path,
        stream,
    })
}

fn content_type(entry: &CatalogEntry) -> &'static str {
    match entry.kind {
        ItemKind::Message => "message/rfc822",
        ItemKind::Event | ItemKind::Contact | ItemKind::Post => "application/json",
        _ => "application/octet-stream",
    }
}

/// The selected items and folders (every item below each) as one zip. `archive_name` names the
/// file.
pub async fn selection_zip(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    paths: &[String],
    archive_name: &str,
) -> StorageResult<Download> {
    if paths.is_empty() {
        return Err(StorageError::Invalid("nothing was selected".into()));
    }
    let items = catalog::expand_selection(storage.db(), scope, point, paths).await?;
    let count = items.len();
    let stream = read::read_items_as_zip(
        storage,
        scope,
        point,
        items.into_iter().map(|e| e.path).collect(),
        ZipLayout::Files,
    )
    .await?;
    Ok(Download {
        file_name: format!("{}.zip", file_stem(archive_name)),
        content_type: "application/zip",
        stream,
        description: format!("{count} items: {}", paths.join(", ")),
    })
}

/// The messages directly in a mailbox folder as `<folder>.mbox` in a zip.
pub async fn folder_mbox(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    folder: &str,
) -> StorageResult<Download> {
    let folder = folder.trim_matches('/');
    let prefix = format!("{folder}/");
    let messages: Vec<String> =
        catalog::expand_selection(storage.db(), scope, point, &[folder.to_string()])
            .await?
            .into_iter()
            .filter(|e| e.kind == ItemKind::Message)
            .map(|e| e.path)
            .filter(|p| {
                p.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.contains('/'))
            })
            .collect();
    if messages.is_empty() {
        return Err(StorageError::Invalid(format!(
            "the folder `{folder}` has no messages of its own"
        )));
    }
    let name = file_stem(folder.rsplit('/').next().unwrap_or(folder));
    let count = messages.len();
    let stream = read::read_items_as_zip(
        storage,
        scope,
        point,
        messages,
        ZipLayout::Mbox(format!("{name}.mbox")),
    )
    .await?;
    Ok(Download {
        file_name: format!("{name}.mbox.zip"),
        content_type: "application/zip",
        stream,
        description: format!("{count} messages of {folder} as mbox"),
    })
}

/// A name safe in a `Content-Disposition` header and on every file system.
pub fn file_stem(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_matches('.').to_string();
    if cleaned.is_empty() {
        "backup".into()
    } else {
        cleaned
    }
}

/// What an administrator needs to read the customer's backups with `restic` alone.
pub struct RepositoryAccess {
    pub password: String,
    /// The repository's location, or `None` when the user may not see the server's paths (then
    /// the commands name `<repository>` and the page says who knows it).
    pub location: Option<String>,
    pub commands: Vec<(&'static str, String)>,
}

/// Reveals the repository password. `show_location` is for partner administrators only (the
/// location names the server's folders and the customer's internal id).
pub async fn repository_access(
    storage: &BackupStorage,
    scope: &CustomerScope,
    show_location: bool,
) -> StorageResult<RepositoryAccess> {
    crate::restore::require_content_access(scope)
        .map_err(|_| StorageError::not_found("repository"))?;
    let password = storage.reveal_repository_password(scope.id()).await?;
    let location = show_location.then(|| storage.repository_location(scope.id()));
    let repo = location.clone().unwrap_or_else(|| "<repository>".into());
    let commands = vec![
        (
            "List the recovery points (snapshots)",
            format!("restic -r {repo} snapshots"),
        ),
        (
            "List what one point holds",
            format!("restic -r {repo} ls <snapshot-id>"),
        ),
        (
            "Write one message to a file",
            format!("restic -r {repo} dump <snapshot-id> /mailbox/Inbox/<item>.eml > message.eml"),
        ),
        (
            "Restore a whole point into a folder",
            format!("restic -r {repo} restore <snapshot-id> --target ./restored"),
        ),
        (
            "Check the repository and read all its data",
            format!("restic -r {repo} check --read-data"),
        ),
    ];
    Ok(RepositoryAccess {
        password,
        location,
        commands,
    })
}

#[cfg(test)]
mod tests {
    use super::file_stem;

    #[test]
    fn file_names_are_safe_in_headers() {
        assert_eq!(file_stem("Alice \"Boss\"\r\n/..\\x"), "Alice _Boss____.._x");
        assert_eq!(file_stem("../.."), "_");
        assert_eq!(file_stem(""), "backup");
    }
}
