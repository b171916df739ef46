//! A Microsoft 365 group's mailbox: its conversations, each thread's posts kept as their Graph
//! JSON (Microsoft's import/export API does not serve group mailboxes). Graph offers no delta for
//! conversations, so each run lists the threads; a thread whose last delivery time is what the
//! parent point saw is carried over without listing its posts.

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::m365::{ConversationThread, ErrorKind, Post, TenantClient};
use crate::storage::catalog::{CatalogEntry, ItemKind, Workload};
use crate::storage::{
    FailedItem, ItemContent, ItemMetadata, SourceEvent, SourceItem, SourceState, ingest,
};

use super::paths::{folder_component, item_stem, short_hash};
use super::plain_graph_error;
use crate::backup::{
    BackupError, BackupReport, BackupServices, BackupTarget, Progress, ProgressSink,
    RequestCounter, Runner, storage_request, write_point,
};

/// The folder of the archive that holds the conversations.
const ROOT: &str = "Conversations";

pub struct GroupMailboxRunner;

impl Runner for GroupMailboxRunner {
    fn workload(&self) -> Workload {
        Workload::GroupMailbox
    }

    fn run<'a>(
        &'a self,
        services: &'a BackupServices,
        target: &'a BackupTarget,
        progress: &'a dyn ProgressSink,
    ) -> BoxFuture<'a, Result<BackupReport, BackupError>> {
        Box::pin(back_up_group(services, target, progress))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct GroupState {
    /// By thread id.
    threads: BTreeMap<String, ThreadState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ThreadState {
    last_delivered: Option<String>,
    path: String,
}

async fn back_up_group(
    services: &BackupServices,
    target: &BackupTarget,
    progress: &dyn ProgressSink,
) -> Result<BackupReport, BackupError> {
    let tenant = services.graph.tenant(target.tenant);
    let requests = RequestCounter::default();
    let request = storage_request(target);
    let parent = ingest::parent_point(&services.storage, &request).await?;
    let (stored, entries) = match parent {
        Some(parent) => (parent.source_state, parent.entries),
        None => (None, Vec::new()),
    };
    let previous: GroupState = stored
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let mut by_dir: HashMap<String, Vec<CatalogEntry>> = HashMap::new();
    for entry in entries {
        let dir = entry.path.rsplit_once('/').map_or("", |(dir, _)| dir);
        by_dir.entry(dir.to_string()).or_default().push(entry);
    }

    requests.add(1);
    let threads: Vec<ConversationThread> =
        match tenant.group_threads(&target.graph_id).try_collect().await {
            Ok(threads) => threads,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                return Err(BackupError::Unavailable(
                    "This group has no mailbox (only Microsoft 365 groups have conversations)."
                        .into(),
                ));
            }
            Err(err) => return Err(err.into()),
        };

    let mut state = GroupState::default();
    let mut events = Vec::new();
    let mut report = Progress::default();
    for thread in &threads {
        let path = thread_path(thread);
        let last_delivered = thread.last_delivered.map(|time| time.to_rfc3339());
        let before = previous.threads.get(&thread.id);
        state.threads.insert(
            thread.id.clone(),
            ThreadState {
                last_delivered: last_delivered.clone(),
                path: path.clone(),
            },
        );
        if let Some(before) = before
            && before.last_delivered.is_some()
            && before.last_delivered == last_delivered
            && let Some(kept) = by_dir.get(&before.path)
        {
            for entry in kept {
                report.items_seen += 1;
                events.push(SourceEvent::Item(carried(&path, entry)));
            }
            continue;
        }
        report.current = Some(thread.topic.clone().unwrap_or_default());
        progress.report(&report);
        requests.add(1);
        match posts_of(&tenant, &target.graph_id, thread).await {
            Ok(posts) => {
                for post in posts {
                    report.items_seen += 1;
                    events.push(SourceEvent::Item(post_item(&path, thread, post)));
                }
            }
            Err(err) => {
                // Keep the thread's previous posts and look at it again next time.
                if let Some(thread_state) = state.threads.get_mut(&thread.id) {
                    thread_state.last_delivered = None;
                }
                events.push(SourceEvent::Unlisted {
                    prefix: before.map_or_else(|| path.clone(), |b| b.path.clone()),
                    reason: plain_graph_error(&err),
                });
            }
        }
    }
    report.items_total = Some(report.items_seen);
    report.current = None;
    progress.report(&report);

    let source_state: SourceState = Box::new(move |failed: &[FailedItem]| {
        // A thread with a failed post is listed again next time.
        let mut state = state;
        for thread in state.threads.values_mut() {
            let prefix = format!("{}/", thread.path);
            if failed
                .iter()
                .any(|f| f.path == thread.path || f.path.starts_with(&prefix))
            {
                thread.last_delivered = None;
            }
        }
        serde_json::to_string(&state).ok()
    });
    write_point(
        services,
        target,
        events,
        source_state,
        report,
        progress,
        &requests,
    )
    .await
}

async fn posts_of(
    tenant: &TenantClient,
    group: &str,
    thread: &ConversationThread,
) -> Result<Vec<Post>, crate::m365::GraphError> {
    tenant.thread_posts(group, &thread.id).try_collect().await
}

/// `Conversations/<topic> (<hash of the thread id>)`: topics repeat, thread ids do not.
fn thread_path(thread: &ConversationThread) -> String {
    let topic = thread.topic.as_deref().unwrap_or("(no subject)");
    format!(
        "{ROOT}/{} ({})",
        folder_component(topic),
        short_hash(&thread.id)
    )
}

fn post_item(dir: &str, thread: &ConversationThread, post: Post) -> SourceItem {
    SourceItem {
        path: format!("{dir}/{}.json", item_stem(&post.id)),
        metadata: ItemMetadata {
            kind: Some(ItemKind::Post),
            graph_id: Some(post.id.clone()),
            change_key: post.change_key.clone(),
            last_modified: post.last_modified.or(post.received),
            subject: thread.topic.clone(),
            sender: sender_of(&post.raw),
            sent_at: post.received,
            has_attachments: post.has_attachments,
            item_class: Some("IPM.Post".into()),
            ..ItemMetadata::default()
        },
        content: ItemContent::from_bytes(serde_json::to_vec(&post.raw).unwrap_or_default()),
    }
}

/// `from` of a post's Graph JSON as `Name <address>`.
fn sender_of(raw: &serde_json::Value) -> Option<String> {
    let address = &raw["from"]["emailAddress"];
    let mail = address["address"].as_str()?;
    Some(match address["name"].as_str() {
        Some(name) if !name.is_empty() => format!("{name} <{mail}>"),
        _ => mail.to_string(),
    })
}

/// A post the parent point has, at its thread's path now.
fn carried(dir: &str, entry: &CatalogEntry) -> SourceItem {
    SourceItem {
        path: format!("{dir}/{}", entry.name),
        metadata: ItemMetadata::from_entry(entry),
        // Never asked: the entry is reused by its Graph id and change key.
        content: ItemContent::from_fn(|| async {
            Err::<std::io::Cursor<Vec<u8>>, _>(std::io::Error::other(
                "the post is no longer in the previous backup; the next run lists its thread again",
            ))
        }),
    }
}
