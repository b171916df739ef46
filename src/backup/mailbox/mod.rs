//! The mailbox runners: a user's or shared mailbox and an archive mailbox, through Microsoft's
//! mailbox import/export API, plus a Microsoft 365 group's conversations (`group`).
//!
//! One backup of a mailbox:
//! 1. finds the mailbox (`settings/exchange`), its folders (folder delta, resumed from the
//!    parent's link) and each folder's items (item delta per folder, resumed likewise);
//! 2. offers storage every item: unchanged ones with the parent's metadata (storage carries them
//!    over by Graph id and change key without a request), new and changed ones with a way to
//!    fetch them. Each item is kept as its full-fidelity export stream (`<id>.item`); a message
//!    also as its MIME (`<id>.eml`, readable with `restic dump`), a calendar item or contact also
//!    as its Graph JSON (`<id>.json`, lossless for what Graph shows: recurrence, attendees,
//!    addresses — an `.ics`/`.vcf` would be our own lossy rendering of it);
//! 3. stores the delta links with the point, a folder with a failed item keeping its old link.
//!
//! A folder whose items cannot be listed keeps its previous items (storage's `Unlisted`); an
//! expired delta link makes Graph enumerate the folder in full, and storage still reuses every
//! unchanged item.

mod export;
pub mod group;
pub(crate) mod paths;
mod state;

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use futures::future::BoxFuture;
use tokio_util::io::StreamReader;

use crate::m365::delta::{DeltaChange, DeltaRound, DeltaStart, DeltaStream};
use crate::m365::{
    ErrorKind, GraphError, MailboxApi, MailboxFolder, MailboxItem, MailboxRef, Resource,
    TenantClient,
};
use crate::storage::catalog::{CatalogEntry, ItemKind, Workload};
use crate::storage::{
    FailedItem, ItemContent, ItemMetadata, SourceEvent, SourceItem, SourceState, ingest,
};

use self::export::ExportLoader;
use self::paths::{FolderNode, folder_paths, item_stem};
use self::state::{FolderState, MailboxState};
use super::{
    BackupError, BackupReport, BackupServices, BackupTarget, Progress, ProgressSink,
    RequestCounter, Runner,
};

/// Items per delta page (`Prefer: odata.maxpagesize`); fewer pages, fewer requests.
const DELTA_PAGE: u32 = 500;

/// Backs up a user's (or shared) mailbox, or their archive mailbox.
pub struct MailboxRunner {
    workload: Workload,
}

impl MailboxRunner {
    pub fn primary() -> Self {
        Self {
            workload: Workload::Mailbox,
        }
    }

    pub fn archive() -> Self {
        Self {
            workload: Workload::ArchiveMailbox,
        }
    }
}

impl Runner for MailboxRunner {
    fn workload(&self) -> Workload {
        self.workload
    }

    fn run<'a>(
        &'a self,
        services: &'a BackupServices,
        target: &'a BackupTarget,
        progress: &'a dyn ProgressSink,
    ) -> BoxFuture<'a, Result<BackupReport, BackupError>> {
        Box::pin(back_up_mailbox(self.workload, services, target, progress))
    }
}

async fn back_up_mailbox(
    workload: Workload,
    services: &BackupServices,
    target: &BackupTarget,
    progress: &dyn ProgressSink,
) -> Result<BackupReport, BackupError> {
    let tenant = services.graph.tenant(target.tenant);
    let requests = RequestCounter::default();
    let mailbox = find_mailbox(&tenant, workload, target, &requests).await?;
    let request = super::storage_request(target);
    let parent = ingest::parent_point(&services.storage, &request).await?;
    let (stored_state, parent_entries) = match parent {
        Some(parent) => (parent.source_state, parent.entries),
        None => (None, Vec::new()),
    };
    let mut state = MailboxState::restore(stored_state.as_deref(), &mailbox.id);
    let mut report = Progress::default();

    // Folders: the hierarchy as last stored, changed by the folder delta.
    let folder_start = start_from(state.folders_link.as_deref());
    let round = collect_counted(
        tenant.mailbox_folders_delta(&mailbox, folder_start),
        &requests,
    )
    .await?;
    let previous_folders = state.folders.clone();
    apply_folder_changes(&mut state, &round);
    state.folders_link = Some(round.delta_link.as_str().to_string());

    let parent_items = ParentItems::new(parent_entries);

    let plan = ItemPlan::new(&tenant, &mailbox, workload, &requests);
    let mut events: Vec<SourceEvent> = Vec::new();
    let mut to_export: Vec<(String, String)> = Vec::new();
    let folder_ids: Vec<String> = state.folders.keys().cloned().collect();
    for folder_id in folder_ids {
        let Some(folder) = state.folders.get(&folder_id).cloned() else {
            continue;
        };
        report.current = Some(folder.path.clone());
        report.throttled_until = services.graph.paused_until(&Resource::Mailbox {
            tenant: target.tenant,
            user: mailbox.owner.clone(),
        });
        progress.report(&report);
        let before = previous_folders.get(&folder_id);
        let previous_items = before.map_or_else(HashMap::new, |f| parent_items.in_folder(&f.path));
        let start = start_from(folder.items_link.as_deref());
        let listed = collect_counted(
            tenant.mailbox_items_delta(&mailbox, &folder_id, start, DELTA_PAGE),
            &requests,
        )
        .await;
        let round = match listed {
            Ok(round) => round,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                // Deleted after the folder delta was read: its items leave the point.
                state.folders.remove(&folder_id);
                continue;
            }
            Err(err) => {
                // The point is partial; the folder's previous items (under its previous path)
                // are kept.
                events.push(SourceEvent::Unlisted {
                    prefix: before.map_or_else(|| folder.path.clone(), |b| b.path.clone()),
                    reason: plain_graph_error(&err),
                });
                if let Some(kept) = state.folders.get_mut(&folder_id) {
                    kept.items_link = before.and_then(|b| b.items_link.clone());
                    kept.started_from = kept.items_link.clone();
                }
                continue;
            }
        };
        if let Some(kept) = state.folders.get_mut(&folder_id) {
            kept.started_from = folder.items_link.clone();
            kept.items_link = Some(round.delta_link.as_str().to_string());
        }
        let items = current_items(round, previous_items, &parent_items);
        report.items_seen += items.len() as u64;
        for item in items {
            match item {
                Current::Unchanged(entries) => {
                    for entry in entries {
                        events.push(SourceEvent::Item(plan.carried(&folder.path, &entry)));
                    }
                }
                Current::Changed(item) => {
                    let stem = item_stem(&item.id);
                    to_export.push((format!("{}/{stem}.item", folder.path), item.id.clone()));
                    events.extend(
                        plan.fetched(&folder.path, &stem, &item)
                            .map(SourceEvent::Item),
                    );
                }
                Current::Moved(item, entries) => {
                    let stem = item_stem(&item.id);
                    to_export.push((format!("{}/{stem}.item", folder.path), item.id.clone()));
                    events.extend(
                        plan.fetched(&folder.path, &stem, &item)
                            .filter(|fresh| fresh.metadata.kind == Some(ItemKind::MailboxItem))
                            .map(SourceEvent::Item),
                    );
                    for entry in entries.iter().filter(|e| e.kind != ItemKind::MailboxItem) {
                        events.push(SourceEvent::Item(plan.carried(&folder.path, entry)));
                    }
                }
            }
        }
    }
    report.items_total = Some(report.items_seen);
    report.current = None;
    progress.report(&report);

    // Export batches in the order storage will ask for the items.
    to_export.sort_by(|a, b| std::path::Path::new(&a.0).cmp(std::path::Path::new(&b.0)));
    plan.set_export_order(to_export.into_iter().map(|(_, id)| id).collect());

    let finish_state = state;
    let source_state: SourceState =
        Box::new(move |failed: &[FailedItem]| Some(finish_state.finish(failed)));
    let mut written = super::write_point(
        services,
        target,
        events,
        source_state,
        report,
        progress,
        &requests,
    )
    .await?;
    if mailbox.api == MailboxApi::Beta {
        written.notes.push(
            "Archive mailboxes are reached through Microsoft's beta API; their messages are kept \
             at full fidelity but without a readable .eml copy, which Microsoft's message API \
             cannot read from an archive."
                .to_string(),
        );
    }
    Ok(written)
}

/// The Exchange mailbox of the target's workload, or why there is none to back up.
async fn find_mailbox(
    tenant: &TenantClient,
    workload: Workload,
    target: &BackupTarget,
    requests: &RequestCounter,
) -> Result<MailboxRef, BackupError> {
    // `settings/exchange` on v1.0 for the primary mailbox and on beta for the archive.
    requests.add(2);
    let mailboxes = match tenant.exchange_mailboxes(&target.graph_id).await {
        Ok(found) => found,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Err(BackupError::Unavailable(
                "This user has no Exchange Online mailbox (unlicensed, inactive or deleted)."
                    .into(),
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let (id, api) = match workload {
        Workload::ArchiveMailbox => (
            mailboxes.archive.ok_or_else(|| {
                BackupError::Unavailable(
                    "This user has no archive mailbox that Microsoft's API can reach.".into(),
                )
            })?,
            MailboxApi::Beta,
        ),
        _ => (
            mailboxes.primary.ok_or_else(|| {
                BackupError::Unavailable("This user has no Exchange Online mailbox.".into())
            })?,
            MailboxApi::V1,
        ),
    };
    Ok(MailboxRef {
        id,
        owner: target.graph_id.clone(),
        api,
    })
}

fn start_from(link: Option<&str>) -> DeltaStart {
    match link {
        Some(link) => DeltaStart::Resume(crate::m365::DeltaLink::from_stored(link)),
        None => DeltaStart::Initial,
    }
}

/// Runs a delta round to its end, counting its pages as requests.
async fn collect_counted<T>(
    pages: DeltaStream<T>,
    requests: &RequestCounter,
) -> Result<DeltaRound<T>, GraphError> {
    crate::m365::delta::collect_round_with(pages, || requests.add(1)).await
}

/// Applies a folder delta round to the stored hierarchy and recomputes every folder's path.
fn apply_folder_changes(state: &mut MailboxState, round: &DeltaRound<MailboxFolder>) {
    if round.full_sync {
        // A full enumeration lists every folder: what it does not list is gone. Links of folders
        // still there stay usable.
        let listed: std::collections::HashSet<&str> =
            round.changes.iter().map(|change| change.id()).collect();
        state.folders.retain(|id, _| listed.contains(id.as_str()));
    }
    for change in &round.changes {
        match change {
            DeltaChange::Upsert(folder) => {
                let entry = state
                    .folders
                    .entry(folder.id.clone())
                    .or_insert_with(|| FolderState {
                        name: folder.display_name.clone(),
                        parent: None,
                        path: String::new(),
                        items_link: None,
                        started_from: None,
                    });
                entry.name = folder.display_name.clone();
                entry.parent = folder.parent_folder_id.clone();
            }
            DeltaChange::Removed { id, .. } => {
                state.folders.remove(id);
            }
        }
    }
    let nodes: Vec<FolderNode> = state
        .folders
        .iter()
        .map(|(id, folder)| FolderNode {
            id: id.clone(),
            name: folder.name.clone(),
            parent: folder.parent.clone(),
        })
        .collect();
    let paths = folder_paths(&nodes);
    for (id, folder) in &mut state.folders {
        if let Some(path) = paths.get(id) {
            folder.path = path.clone();
        }
    }
}

/// An item of a folder now.
enum Current {
    /// Not in the delta: the parent's entries of it, carried over as they are.
    Unchanged(Vec<CatalogEntry>),
    /// New or changed: fetched.
    Changed(MailboxItem),
    /// Moved here from another folder, with a new change key (Exchange gives a moved item one).
    /// Its MIME and JSON copies cannot change with a move and are carried over by Graph id; its
    /// export stream is taken again, in batches of 20, because only it holds what may have
    /// changed with the move (flags, categories).
    Moved(MailboxItem, Vec<CatalogEntry>),
}

/// The parent point's mailbox items: every entry (`.item`, `.eml`, `.json`) by Graph id, and
/// which ids each folder held.
struct ParentItems {
    by_id: HashMap<String, Vec<CatalogEntry>>,
    by_dir: HashMap<String, Vec<String>>,
}

impl ParentItems {
    fn new(entries: Vec<CatalogEntry>) -> Self {
        let mut by_id: HashMap<String, Vec<CatalogEntry>> = HashMap::new();
        let mut by_dir: HashMap<String, Vec<String>> = HashMap::new();
        for entry in entries {
            let Some(id) = entry.graph_id.clone() else {
                continue;
            };
            let dir = entry.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            let ids = by_dir.entry(dir.to_string()).or_default();
            if !ids.contains(&id) {
                ids.push(id.clone());
            }
            by_id.entry(id).or_default().push(entry);
        }
        Self { by_id, by_dir }
    }

    /// The items the folder at `path` held, by Graph id.
    fn in_folder(&self, path: &str) -> HashMap<String, Vec<CatalogEntry>> {
        self.by_dir
            .get(path)
            .into_iter()
            .flatten()
            .filter_map(|id| Some((id.clone(), self.by_id.get(id)?.clone())))
            .collect()
    }

    /// The parent's entries of a listed item with the same change key.
    fn unchanged(&self, item: &MailboxItem) -> Option<Vec<CatalogEntry>> {
        let entries = self.by_id.get(&item.id)?;
        let export = entries.iter().find(|e| e.kind == ItemKind::MailboxItem)?;
        (export.change_key.is_some() && export.change_key == item.change_key)
            .then(|| entries.clone())
    }

    /// The parent's entries of an item it held in another folder.
    fn moved(&self, item: &MailboxItem) -> Option<Vec<CatalogEntry>> {
        self.by_id.get(&item.id).cloned()
    }
}

/// The folder's items now: after a full enumeration, exactly what it listed; after an
/// incremental round, the parent's items of the folder with the round's changes applied. A
/// listed item the parent already has (unchanged, or moved here from another folder) is carried
/// over with the parent's entries, so it is never fetched again.
fn current_items(
    round: DeltaRound<MailboxItem>,
    mut previous: HashMap<String, Vec<CatalogEntry>>,
    parent: &ParentItems,
) -> Vec<Current> {
    let mut changed: Vec<MailboxItem> = Vec::new();
    let mut removed = std::collections::HashSet::new();
    for change in round.changes {
        match change {
            DeltaChange::Upsert(item) => {
                changed.retain(|c| c.id != item.id);
                changed.push(item);
            }
            DeltaChange::Removed { id, .. } => {
                changed.retain(|c| c.id != id);
                removed.insert(id);
            }
        }
    }
    let mut current = Vec::new();
    for item in changed {
        let here_before = previous.remove(&item.id).is_some();
        if let Some(entries) = parent.unchanged(&item) {
            current.push(Current::Unchanged(entries));
        } else if let Some(entries) = parent.moved(&item).filter(|_| !here_before) {
            current.push(Current::Moved(item, entries));
        } else {
            current.push(Current::Changed(item));
        }
    }
    if !round.full_sync {
        for (id, entries) in previous {
            if !removed.contains(&id) {
                current.push(Current::Unchanged(entries));
            }
        }
    }
    current
}

/// Builds the source items of a mailbox: what to fetch for each item type, and how.
struct ItemPlan {
    tenant: TenantClient,
    mailbox: MailboxRef,
    workload: Workload,
    requests: RequestCounter,
    export: std::sync::OnceLock<Arc<ExportLoader>>,
}

impl ItemPlan {
    fn new(
        tenant: &TenantClient,
        mailbox: &MailboxRef,
        workload: Workload,
        requests: &RequestCounter,
    ) -> Arc<Self> {
        Arc::new(Self {
            tenant: tenant.clone(),
            mailbox: mailbox.clone(),
            workload,
            requests: requests.clone(),
            export: std::sync::OnceLock::new(),
        })
    }

    fn set_export_order(self: &Arc<Self>, ids: Vec<String>) {
        let loader = ExportLoader::new(
            self.tenant.clone(),
            self.mailbox.clone(),
            self.requests.clone(),
            ids,
        );
        let _ = self.export.set(loader);
    }

    /// The readable copy Graph offers for an item of this message class, if any.
    fn readable(&self, class: Option<&str>) -> Option<Readable> {
        // Microsoft's message, event and contact APIs do not reach an archive mailbox.
        if self.workload == Workload::ArchiveMailbox {
            return None;
        }
        let class = class.unwrap_or("IPM.Note");
        let is = |prefix: &str| {
            class == prefix
                || class
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
        };
        if is("IPM.Note") || is("IPM.Schedule.Meeting") || is("REPORT") {
            Some(Readable::Mime)
        } else if is("IPM.Appointment") {
            Some(Readable::Event)
        } else if is("IPM.Contact") {
            Some(Readable::Contact)
        } else {
            None
        }
    }

    /// The entries of a new or changed item.
    fn fetched(
        self: &Arc<Self>,
        folder: &str,
        stem: &str,
        item: &MailboxItem,
    ) -> impl Iterator<Item = SourceItem> + use<> {
        let base = ItemMetadata {
            graph_id: Some(item.id.clone()),
            change_key: item.change_key.clone(),
            last_modified: item.last_modified,
            source_size: item.size,
            item_class: item.item_type.clone(),
            ..ItemMetadata::default()
        };
        let mut items = vec![SourceItem {
            path: format!("{folder}/{stem}.item"),
            metadata: ItemMetadata {
                kind: Some(ItemKind::MailboxItem),
                ..base.clone()
            },
            content: self.content(Readable::Export, &item.id),
        }];
        if let Some(readable) = self.readable(item.item_type.as_deref()) {
            items.push(SourceItem {
                path: format!("{folder}/{stem}.{}", readable.extension()),
                metadata: ItemMetadata {
                    kind: Some(readable.kind()),
                    ..base
                },
                content: self.content(readable, &item.id),
            });
        }
        items.into_iter()
    }

    /// An unchanged entry at its folder's path now; storage reuses it without fetching, and
    /// fetches it like a new one only if the repository no longer has it.
    fn carried(self: &Arc<Self>, folder: &str, entry: &CatalogEntry) -> SourceItem {
        let how = match entry.kind {
            ItemKind::Message => Readable::Mime,
            ItemKind::Event => Readable::Event,
            ItemKind::Contact => Readable::Contact,
            _ => Readable::Export,
        };
        SourceItem {
            path: format!("{folder}/{}", entry.name),
            metadata: ItemMetadata::from_entry(entry),
            content: self.content(how, entry.graph_id.as_deref().unwrap_or_default()),
        }
    }

    fn content(self: &Arc<Self>, how: Readable, id: &str) -> ItemContent {
        let plan = self.clone();
        let id = id.to_string();
        ItemContent::from_fn(move || async move {
            let tenant = &plan.tenant;
            let owner = &plan.mailbox.owner;
            let to_io = |err: GraphError| std::io::Error::other(plain_graph_error(&err));
            plan.requests
                .add(if how == Readable::Export { 0 } else { 1 });
            let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match how {
                Readable::Export => {
                    let loader =
                        plan.export.get().cloned().ok_or_else(|| {
                            std::io::Error::other("export batches were not planned")
                        })?;
                    Box::new(std::io::Cursor::new(loader.fetch(id).await?))
                }
                Readable::Mime => {
                    let stream = tenant.message_mime(owner, &id).await.map_err(to_io)?;
                    Box::new(StreamReader::new(
                        stream.map_err(|err| std::io::Error::other(plain_graph_error(&err))),
                    ))
                }
                Readable::Event => Box::new(std::io::Cursor::new(
                    tenant.event_json(owner, &id).await.map_err(to_io)?,
                )),
                Readable::Contact => Box::new(std::io::Cursor::new(
                    tenant.contact_json(owner, &id).await.map_err(to_io)?,
                )),
            };
            Ok(reader)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readable {
    Export,
    Mime,
    Event,
    Contact,
}

impl Readable {
    fn extension(self) -> &'static str {
        match self {
            Self::Export => "item",
            Self::Mime => "eml",
            Self::Event | Self::Contact => "json",
        }
    }

    fn kind(self) -> ItemKind {
        match self {
            Self::Export => ItemKind::MailboxItem,
            Self::Mime => ItemKind::Message,
            Self::Event => ItemKind::Event,
            Self::Contact => ItemKind::Contact,
        }
    }
}

/// What Graph's error means for one item or folder, in words for the job's page.
pub(super) fn plain_graph_error(err: &GraphError) -> String {
    let what = match err.kind() {
        ErrorKind::NotFound => "it was deleted in Microsoft 365 during the backup",
        ErrorKind::Throttled => "Microsoft kept throttling this mailbox; the next run takes it",
        ErrorKind::Unavailable => "Microsoft 365 was unavailable; the next run takes it",
        ErrorKind::Forbidden => "the app lacks the permission to read it",
        ErrorKind::SyncStateLost => "Microsoft asked for a full resynchronisation",
        _ => "Microsoft 365 refused the request",
    };
    format!("{what} ({err})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn item(id: &str, key: &str) -> MailboxItem {
        MailboxItem {
            id: id.into(),
            change_key: Some(key.into()),
            created: None,
            last_modified: Some(Utc::now()),
            size: Some(10),
            item_type: Some("IPM.Note".into()),
            categories: Vec::new(),
        }
    }

    fn entry(id: &str, key: &str, name: &str) -> CatalogEntry {
        CatalogEntry {
            path: format!("Inbox/{name}"),
            name: name.into(),
            kind: ItemKind::MailboxItem,
            graph_id: Some(id.into()),
            change_key: Some(key.into()),
            last_modified: None,
            source_size: None,
            size: 1,
            subject: None,
            sender: None,
            recipients: Vec::new(),
            sent_at: None,
            has_attachments: None,
            item_class: None,
        }
    }

    fn round(changes: Vec<DeltaChange<MailboxItem>>, full_sync: bool) -> DeltaRound<MailboxItem> {
        DeltaRound {
            changes,
            delta_link: crate::m365::DeltaLink::from_stored("next"),
            full_sync,
        }
    }

    #[test]
    fn an_incremental_round_applies_its_changes_to_the_parents_items() {
        let previous = HashMap::from([
            ("a".to_string(), vec![entry("a", "1", "a.item")]),
            ("b".to_string(), vec![entry("b", "1", "b.item")]),
            ("c".to_string(), vec![entry("c", "1", "c.item")]),
        ]);
        let changes = vec![
            DeltaChange::Upsert(item("b", "2")),
            DeltaChange::Removed {
                id: "c".into(),
                reason: crate::m365::delta::RemovedReason::Deleted,
            },
            DeltaChange::Upsert(item("d", "1")),
        ];
        let parent = ParentItems::new(previous.values().flatten().cloned().collect());
        let current = current_items(round(changes, false), previous, &parent);
        let mut unchanged: Vec<String> = Vec::new();
        let mut changed: Vec<String> = Vec::new();
        for c in current {
            match c {
                Current::Unchanged(entries) => unchanged.push(entries[0].graph_id.clone().unwrap()),
                Current::Changed(item) => changed.push(item.id),
                Current::Moved(item, _) => panic!("{} did not move", item.id),
            }
        }
        changed.sort();
        assert_eq!(unchanged, vec!["a".to_string()]);
        assert_eq!(changed, vec!["b".to_string(), "d".to_string()]);
    }

    #[test]
    fn an_item_the_parent_had_in_another_folder_is_a_move() {
        let elsewhere = ParentItems::new(vec![entry("m", "1", "m.item")]);
        let current = current_items(
            round(vec![DeltaChange::Upsert(item("m", "2"))], false),
            HashMap::new(),
            &elsewhere,
        );
        assert!(matches!(&current[0], Current::Moved(item, entries)
            if item.id == "m" && entries.len() == 1));
    }

    #[test]
    fn a_full_enumeration_keeps_only_what_it_listed_and_reuses_unchanged_keys() {
        let previous = HashMap::from([
            ("a".to_string(), vec![entry("a", "1", "a.item")]),
            ("gone".to_string(), vec![entry("gone", "1", "gone.item")]),
        ]);
        let parent = ParentItems::new(previous.values().flatten().cloned().collect());
        let current = current_items(
            round(vec![DeltaChange::Upsert(item("a", "1"))], true),
            previous,
            &parent,
        );
        assert_eq!(current.len(), 1);
        assert!(matches!(&current[0], Current::Unchanged(entries) if entries[0].name == "a.item"));
    }
}
