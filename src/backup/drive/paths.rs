//! Where a drive's items live inside an archive. Delta gives no paths (graph-protocol.md §4.2),
//! only each item's parent id, so paths are worked out from the drive's item tree every run: a
//! renamed or moved folder moves everything under it without the children being reported.
//!
//! Names are kept exactly as SharePoint has them wherever a restic path can hold them (spaces,
//! `#`, `%`, `~`, any Unicode, very long paths); only what would change the tree itself is
//! replaced: a `/` (it would invent a folder), `.` and `..`, an empty name and control
//! characters. The exact name is always in the drive's item manifest.

use std::collections::HashMap;

use crate::m365::types::DriveItem;

/// How deep a folder tree is followed. SharePoint's 400-character path limit allows far fewer
/// levels; a parent loop in what the service answers must not keep a backup walking forever.
const MAX_DEPTH: usize = 512;

/// A drive item's name made safe as one path component.
pub fn name_component(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| match c {
            // The division slash looks like `/` to a person and is no separator to a tool.
            '/' => '\u{2215}',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    match safe.as_str() {
        "" => "(unnamed)".to_string(),
        "." => "(dot)".to_string(),
        ".." => "(dot dot)".to_string(),
        _ => safe,
    }
}

/// Every item's path below the drive's root (`""` for the root itself), by item id. Items whose
/// chain of parents does not reach the root (their folder was deleted, or the service answered
/// a loop) have no path and are left out.
pub fn item_paths(items: &HashMap<String, DriveItem>) -> HashMap<String, String> {
    let mut paths: HashMap<String, String> = HashMap::with_capacity(items.len());
    for item in items.values() {
        if item.root.is_some() {
            paths.insert(item.id.clone(), String::new());
        }
    }
    for id in items.keys() {
        if paths.contains_key(id) {
            continue;
        }
        // Walk up to the first ancestor whose path is known, then fill the chain in downwards.
        let mut chain: Vec<&DriveItem> = Vec::new();
        let mut current = items.get(id);
        let mut base: Option<String> = None;
        while let Some(item) = current {
            if let Some(known) = paths.get(&item.id) {
                base = Some(known.clone());
                break;
            }
            if chain.len() >= MAX_DEPTH || item.root.is_some() {
                break;
            }
            chain.push(item);
            current = item
                .parent_reference
                .as_ref()
                .and_then(|p| p.id.as_ref())
                .and_then(|parent| items.get(parent));
        }
        let Some(mut path) = base else {
            continue;
        };
        for item in chain.into_iter().rev() {
            let name = name_component(item.name.as_deref().unwrap_or_default());
            path = if path.is_empty() {
                name
            } else {
                format!("{path}/{name}")
            };
            paths.insert(item.id.clone(), path.clone());
        }
    }
    paths
}

/// `prefix/rest`, or `rest` alone for the archive root.
pub fn join(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, parent: Option<&str>, name: &str) -> DriveItem {
        let mut value = serde_json::json!({"id": id, "name": name});
        match parent {
            Some(parent) => value["parentReference"] = serde_json::json!({"id": parent}),
            None => value["root"] = serde_json::json!({}),
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn paths_follow_parents_and_leave_orphans_out() {
        let items: HashMap<String, DriveItem> = [
            item("r", None, "root"),
            item("a", Some("r"), "Reports"),
            item("b", Some("a"), "2026 #1 / final"),
            item("f", Some("b"), "q4.xlsx"),
            item("o", Some("gone"), "orphan.txt"),
            item("x", Some("y"), "loop"),
            item("y", Some("x"), "loop"),
            item("d", Some("r"), ".."),
        ]
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
        let paths = item_paths(&items);
        assert_eq!(paths["r"], "");
        assert_eq!(paths["f"], "Reports/2026 #1 \u{2215} final/q4.xlsx");
        assert_eq!(paths["d"], "(dot dot)");
        assert!(!paths.contains_key("o"));
        assert!(!paths.contains_key("x") && !paths.contains_key("y"));
    }

    #[test]
    fn awkward_but_legal_names_are_kept() {
        for name in [
            "  lead space",
            "trail.",
            "~$lock.docx",
            "CON",
            "日本語 ファイル.txt",
            "%20",
        ] {
            assert_eq!(name_component(name), name);
        }
        assert_eq!(name_component("a\u{1}b"), "a_b");
    }
}
