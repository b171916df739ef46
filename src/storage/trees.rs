//! Parsed repository trees, kept for every read of this process. A restic tree is one folder's
//! listing, named by the hash of its content, so a kept tree is never stale. Without it, every
//! item read walks from the snapshot's root and parses its whole folder again: reading the
//! messages of a folder of 100,000 one by one (a restore, the search index, a zip) would parse
//! that folder's tree 100,000 times.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path};
use std::sync::{Arc, OnceLock};

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use rustic_core::repofile::Node;
use rustic_core::{IndexedFullStatus, Repository, TreeId};

use super::error::{StorageError, StorageResult};

/// Nodes kept in all (a node is a few hundred bytes: tens of MB at most).
const KEPT_NODES: u64 = 200_000;

/// One folder's children, findable by name.
struct Folder {
    nodes: Vec<Node>,
    by_name: HashMap<OsString, usize>,
}

#[derive(Clone)]
struct ByNodes;

impl Weighter<(String, TreeId), Arc<Folder>> for ByNodes {
    fn weight(&self, _: &(String, TreeId), folder: &Arc<Folder>) -> u64 {
        folder.nodes.len() as u64 + 1
    }
}

/// Keyed by the repository's id as well as the tree's: one customer's reads only ever see trees
/// parsed from that customer's repository.
fn folders() -> &'static Cache<(String, TreeId), Arc<Folder>, ByNodes> {
    static FOLDERS: OnceLock<Cache<(String, TreeId), Arc<Folder>, ByNodes>> = OnceLock::new();
    FOLDERS.get_or_init(|| Cache::with_weighter(1_000, KEPT_NODES, ByNodes))
}

fn folder(repo: &Repository<IndexedFullStatus>, tree: TreeId) -> StorageResult<Arc<Folder>> {
    let key = (repo.config().id.to_string(), tree);
    if let Some(folder) = folders().get(&key) {
        return Ok(folder);
    }
    let nodes = repo.get_tree(&tree)?.nodes;
    let by_name = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.name().into_owned(), i))
        .collect();
    let folder = Arc::new(Folder { nodes, by_name });
    folders().insert(key, folder.clone());
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
