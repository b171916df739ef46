//! Where a mailbox's folders and items live inside its archive. Folder names come from the
//! mailbox's owner and are hostile input: a `/` would invent folders, `..` would climb out,
//! control characters and 255-byte names break tools that read the repository. Names are made
//! safe, and two folders that end up with the same name under one parent are told apart by a
//! short hash of their id, so paths stay stable from one backup to the next.

use std::collections::HashMap;

/// A file name is at most 255 bytes on common file systems; leave room for a disambiguating
/// suffix and for the item file names inside.
const MAX_NAME_BYTES: usize = 120;

/// A folder's display name made safe as one path component.
pub fn folder_component(name: &str) -> String {
    let mut safe: String = name
        .chars()
        .map(|c| match c {
            // The division slash looks like `/` to a person and is no separator to a tool.
            '/' => '\u{2215}',
            '\\' => '\u{2216}',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    safe = safe.trim().to_string();
    if safe.is_empty() || safe == "." || safe == ".." {
        safe = format!("(folder {})", safe.replace('.', "dot"));
        if safe == "(folder )" {
            safe = "(unnamed folder)".into();
        }
    }
    truncate_bytes(&safe, MAX_NAME_BYTES)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end().to_string()
}

/// A short, stable tag of an id.
pub fn short_hash(id: &str) -> String {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:08x}", hash & 0xffff_ffff)
}

/// An item's file name stem: its Graph id with the characters base64 ids use that are awkward
/// in paths replaced (`/` `+` `=`), which keeps it unique and reversible.
pub fn item_stem(id: &str) -> String {
    let stem: String = id
        .chars()
        .map(|c| match c {
            '/' => '_',
            '+' => '-',
            '=' => '~',
            c if c.is_control() || c == '\\' => '_',
            c => c,
        })
        .collect();
    if stem.len() > 200 {
        // Longer than any Exchange id; keep it unique anyway.
        format!("{}-{}", truncate_bytes(&stem, 180), short_hash(id))
    } else {
        stem
    }
}

/// A folder as the mailbox reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderNode {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
}

/// The archive path of every folder, parents resolved; a folder whose parent is not in the set
/// (the root of the mailbox, or a parent Graph did not list) sits at the top.
pub fn folder_paths(folders: &[FolderNode]) -> HashMap<String, String> {
    let by_id: HashMap<&str, &FolderNode> = folders.iter().map(|f| (f.id.as_str(), f)).collect();
    // Siblings with the same safe name: all but the first by id get a hash of their id.
    let mut siblings: HashMap<(Option<&str>, String), Vec<&str>> = HashMap::new();
    for folder in folders {
        let parent = folder
            .parent
            .as_deref()
            .filter(|parent| by_id.contains_key(parent));
        siblings
            .entry((parent, folder_component(&folder.name).to_lowercase()))
            .or_default()
            .push(&folder.id);
    }
    let mut component: HashMap<&str, String> = HashMap::new();
    for ((_, _), mut ids) in siblings {
        ids.sort_unstable();
        for (index, id) in ids.iter().enumerate() {
            let base = folder_component(&by_id[id].name);
            let name = if index == 0 {
                base
            } else {
                format!("{base} ({})", short_hash(id))
            };
            component.insert(id, name);
        }
    }
    let mut paths = HashMap::new();
    for folder in folders {
        let mut parts = vec![component[folder.id.as_str()].clone()];
        let mut seen = vec![folder.id.as_str()];
        let mut parent = folder.parent.as_deref();
        while let Some(id) = parent {
            let Some(node) = by_id.get(id) else { break };
            if seen.contains(&id) {
                // A cycle in what Graph reported: stop rather than loop.
                break;
            }
            seen.push(id);
            parts.push(component[id].clone());
            parent = node.parent.as_deref();
        }
        parts.reverse();
        paths.insert(folder.id.clone(), parts.join("/"));
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, name: &str, parent: Option<&str>) -> FolderNode {
        FolderNode {
            id: id.into(),
            name: name.into(),
            parent: parent.map(str::to_string),
        }
    }

    #[test]
    fn hostile_names_stay_one_safe_component() {
        assert_eq!(folder_component("a/b"), "a\u{2215}b");
        assert_eq!(folder_component(".."), "(folder dotdot)");
        assert_eq!(folder_component("."), "(folder dot)");
        assert_eq!(folder_component("  "), "(unnamed folder)");
        assert_eq!(folder_component("bell\u{7}tab\tend"), "bell tab end");
        let long = "é".repeat(200);
        let safe = folder_component(&long);
        assert!(safe.len() <= MAX_NAME_BYTES);
        assert!(safe.chars().all(|c| c == 'é'));
    }

    #[test]
    fn nested_folders_get_their_parents_path_and_duplicates_are_told_apart() {
        let folders = vec![
            node("root", "Top of Information Store", None),
            node("in", "Inbox", Some("root")),
            node("p1", "Projects", Some("in")),
            node("p2", "projects", Some("in")),
            node("x", "Orphan", Some("missing")),
        ];
        let paths = folder_paths(&folders);
        assert_eq!(paths["in"], "Top of Information Store/Inbox");
        assert_eq!(paths["p1"], "Top of Information Store/Inbox/Projects");
        assert_eq!(
            paths["p2"],
            format!(
                "Top of Information Store/Inbox/projects ({})",
                short_hash("p2")
            )
        );
        assert_eq!(paths["x"], "Orphan");
        // Stable: the same folders give the same paths in any order.
        let mut reversed = folders.clone();
        reversed.reverse();
        assert_eq!(folder_paths(&reversed), paths);
    }

    #[test]
    fn item_stems_are_path_safe_and_distinct() {
        assert_eq!(item_stem("AAMkAD/x+y=="), "AAMkAD_x-y~~");
        // Base64 ids never contain `_`, `-` or `~`, so distinct ids stay distinct.
        let ids = ["AAMk/a", "AAMk+a", "AAMk=a", "AAMkxa"];
        let stems: std::collections::HashSet<String> = ids.iter().map(|id| item_stem(id)).collect();
        assert_eq!(stems.len(), ids.len());
    }
}
