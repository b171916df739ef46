//! What a mailbox backup stores with its recovery point to continue incrementally: the folder
//! hierarchy as last seen (ids, names, parents, archive paths) with the folder delta link, and
//! each folder's item delta link. A folder with an item that failed keeps the link it started
//! from, so the next run is told about that item again.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::storage::FailedItem;

const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MailboxState {
    pub version: u32,
    /// The Exchange mailbox these links belong to; another mailbox starts afresh.
    pub mailbox_id: String,
    pub folders_link: Option<String>,
    /// By folder id.
    pub folders: BTreeMap<String, FolderState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderState {
    pub name: String,
    pub parent: Option<String>,
    /// Where the folder's items are in the archive.
    pub path: String,
    pub items_link: Option<String>,
    /// The link this run started from, kept when an item of the folder fails.
    #[serde(skip)]
    pub started_from: Option<String>,
}

impl MailboxState {
    /// The state stored with the parent point, if it belongs to `mailbox_id` and can be read.
    pub fn restore(stored: Option<&str>, mailbox_id: &str) -> Self {
        stored
            .and_then(|text| serde_json::from_str::<MailboxState>(text).ok())
            .filter(|state| state.version == VERSION && state.mailbox_id == mailbox_id)
            .unwrap_or_else(|| Self {
                version: VERSION,
                mailbox_id: mailbox_id.to_string(),
                ..Self::default()
            })
    }

    /// The text to store with the new point, given the items that failed: a folder holding a
    /// failed item goes back to the link it started from.
    pub fn finish(mut self, failed: &[FailedItem]) -> String {
        let failed_dirs: HashSet<&str> = failed
            .iter()
            .map(|f| f.path.rsplit_once('/').map_or("", |(dir, _)| dir))
            .collect();
        let failed_paths: HashSet<&str> = failed.iter().map(|f| f.path.as_str()).collect();
        for folder in self.folders.values_mut() {
            if failed_dirs.contains(folder.path.as_str())
                || failed_paths.contains(folder.path.as_str())
            {
                folder.items_link = folder.started_from.clone();
            }
        }
        serde_json::to_string(&self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(path: &str, link: &str, started: Option<&str>) -> FolderState {
        FolderState {
            name: path.into(),
            parent: None,
            path: path.into(),
            items_link: Some(link.into()),
            started_from: started.map(str::to_string),
        }
    }

    #[test]
    fn a_folder_with_a_failed_item_keeps_its_old_link() {
        let mut state = MailboxState::restore(None, "MBX:1");
        state
            .folders
            .insert("a".into(), folder("Inbox", "new-a", Some("old-a")));
        state
            .folders
            .insert("b".into(), folder("Sent Items", "new-b", Some("old-b")));
        let failed = vec![FailedItem {
            path: "Inbox/x.item".into(),
            graph_id: Some("x".into()),
            reason: "ErrorItemCorrupt".into(),
        }];
        let text = state.finish(&failed);
        let back = MailboxState::restore(Some(&text), "MBX:1");
        assert_eq!(back.folders["a"].items_link.as_deref(), Some("old-a"));
        assert_eq!(back.folders["b"].items_link.as_deref(), Some("new-b"));
        // Another mailbox's state is not used.
        assert!(
            MailboxState::restore(Some(&text), "MBX:2")
                .folders
                .is_empty()
        );
    }
}
