//! Parsed repository trees, kept for every read of this process. A restic tree is one folder's
//! listing, named by the hash of its content, so a kept tree is never stale. Without it, every
//! item read walks from the snapshot's root and parses its whole folder again: reading the
//! messages of a folder of 100,000 one by one (a restore, the search index, a zip) would parse
//! that folder's tree 100,000 times.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, OnceLock};

use rustic_core::repofile::Node;
use rustic_core::{IndexedFullStatus, Repository, TreeId};

use super::error::{StorageError, StorageResult};

/// Nodes kept in all (a node is a few hundred bytes: tens of MB at most). The folder read last
/// is always kept, however large, so reading a folder's items one by one parses it once.
const KEPT_NODES: usize = 200_000;

/// One folder's children, findable by name.
struct Folder {
    nodes: Vec<Node>,
    by_name: HashMap<OsString, usize>,
}

/// Keyed by the repository's id as well as the tree's: one customer's reads only ever see trees
/// parsed from that customer's repository.
type Key = (String, TreeId);

/// The kept folders, most recently read last.
type Kept = Mutex<VecDeque<(Key, Arc<Folder>)>>;

/// The folders read most recently, newest last. A plain bounded list rather than a sharded
/// cache: a sharded cache splits its capacity, and a folder of 70,000 messages would fit no
/// shard and be parsed again for every item.
fn folders() -> &'static Kept {
    static FOLDERS: OnceLock<Kept> = OnceLock::new();
    FOLDERS.get_or_init(Default::default)
}

fn folder(repo: &Repository<IndexedFullStatus>, tree: TreeId) -> StorageResult<Arc<Folder>> {
    let key = (repo.config().id.to_string(), tree);
    {
        let mut kept = folders().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = kept
            .iter()
            .position(|(k, _)| *k == key)
            .and_then(|at| kept.remove(at))
        {
            let folder = entry.1.clone();
            kept.push_back(entry);
            return Ok(folder);
        }
    }
    let nodes = repo.get_tree(&tree)?.nodes;
    let by_name = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.name().into_owned(), i))
        .collect();
    let folder = Arc::new(Folder { nodes, by_name });
    let mut kept = folders().lock().unwrap_or_else(|p| p.into_inner());
    // Another reader may have parsed the same folder meanwhile: keep one copy.
    kept.retain(|(k, _)| *k != key);
    kept.push_back((key, folder.clone()));
    let mut total: usize = kept.iter().map(|(_, f)| f.nodes.len() + 1).sum();
    while total > KEPT_NODES && kept.len() > 1 {
        if let Some((_, oldest)) = kept.pop_front() {
            total -= oldest.nodes.len() + 1;
        }
    }
    Ok(folder)
}

/// The node at `path` under the snapshot tree `root`, as `Repository::node_from_path` finds it.
pub fn node_at(
    repo: &Repository<IndexedFullStatus>,
    root: TreeId,
    path: &Path,
) -> StorageResult<Node> {
    let missing = || StorageError::not_found(format!("{} in the snapshot", path.display()));
    let mut tree = root;
    let mut found: Option<Node> = None;
    for component in path.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        if let Some(node) = &found {
            tree = node.subtree.ok_or_else(missing)?;
        }
        let folder = folder(repo, tree)?;
        let index = *folder.by_name.get(name).ok_or_else(missing)?;
        found = Some(folder.nodes[index].clone());
    }
    found.ok_or_else(missing)
}
