//! A team's channel conversations as a source of items under a path prefix: every channel
//! (standard, private and shared) and, per thread (a post and its replies), the Graph JSON
//! exactly as Microsoft sent it (`thread.json`), a readable page (`thread.html`) and the inline
//! images the messages host (`hosted/…`), all in the thread's folder:
//!
//! ```text
//! {prefix}/{channel name} ({hash of its id})/channel.json
//! {prefix}/{channel name} ({hash})/{post date} ({hash of the post id})/thread.json
//!                                                                     /thread.html
//!                                                                     /hosted/{…}
//! ```
//!
//! Only changed threads are fetched again. Each channel keeps the link of its message delta
//! (`messages/delta`, which Microsoft offers for channels): a run asks for the posts created or
//! changed since, fetches their replies, and carries every other thread over from the parent
//! point without a request. The first run of a channel, and a run after Microsoft forced a
//! resynchronisation, list the channel's posts (the delta only reaches eight months back) and
//! take a thread again only when its `lastModifiedDateTime`/`etag` moved.
//!
//! Reading messages is a protected API: on Microsoft's refusal the collector stops asking,
//! keeps what the parent point has, and says why. It never writes storage itself.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::io::StreamReader;

use super::render::{HostedFiles, thread_html};
use crate::backup::mailbox::paths::{folder_component, short_hash};
use crate::backup::{BackupError, Progress, ProgressSink, RequestCounter};
use crate::m365::delta::{DeltaChange, DeltaLink, DeltaStart, collect_round_with};
use crate::m365::{
    Channel, ChatMessage, ErrorKind, GraphError, MessageRef, ProtectedApiRefusal, TenantClient,
};
use crate::storage::catalog::{CatalogEntry, ItemKind};
use crate::storage::{FailedItem, ItemContent, ItemMetadata, SourceEvent, SourceItem};

/// Graph's page size for channel messages (`$top` ≤ 50): what one listing request returns.
const PAGE: u64 = 50;
/// Raised when `render` changes what a thread's page looks like.
const PAGE_VERSION: u32 = 1;

/// What the collector remembers between runs; stored inside the runner's source state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChannelsState {
    /// By channel id.
    channels: BTreeMap<String, ChannelState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ChannelState {
    /// The channel's folder, prefix included.
    path: String,
    /// Where the channel's message delta resumes; `None` makes the next run list the channel.
    delta_link: Option<DeltaLink>,
    /// By post id.
    threads: BTreeMap<String, ThreadState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ThreadState {
    /// The thread's folder, prefix included.
    path: String,
    /// The post's `lastModifiedDateTime|etag` when it was stored; `None` when something of
    /// the thread is missing from the point, so the next run fetches it again whatever the
    /// delta says.
    seen: Option<String>,
}

impl ChannelsState {
    /// Marks the threads with an item the point lacks, so the next run takes them again (the
    /// delta has moved past them).
    pub(crate) fn forget_failed(&mut self, failed: &[FailedItem]) {
        for channel in self.channels.values_mut() {
            for thread in channel.threads.values_mut() {
                let inside = format!("{}/", thread.path);
                if failed
                    .iter()
                    .any(|f| f.path == thread.path || f.path.starts_with(&inside))
                {
                    thread.seen = None;
                }
            }
        }
    }
}

/// What [`collect_channels`] needs.
pub(crate) struct ChannelsSource<'a> {
    pub tenant: &'a TenantClient,
    /// The team's id (its group's id) and name.
    pub team_id: &'a str,
    pub team_name: &'a str,
    /// The folder of the archive the conversations go under, e.g. `channels`.
    pub prefix: &'a str,
    /// The collector's state stored with the parent point.
    pub previous: ChannelsState,
    /// The parent point's entries (all of them; only those under `prefix` are used).
    pub parent_entries: &'a [CatalogEntry],
    pub requests: &'a RequestCounter,
}

/// What the collector found.
pub(crate) struct ChannelsCollection {
    pub events: Vec<SourceEvent>,
    /// To store with the point (after [`ChannelsState::forget_failed`]).
    pub state: ChannelsState,
    /// Plain-language remarks for the job's page.
    pub notes: Vec<String>,
    /// Set when Microsoft refused the protected API: no channel's messages were read after it.
    pub refusal: Option<ProtectedApiRefusal>,
    /// The team's channels as listed; `None` when they could not be listed.
    pub channels: Option<Vec<Channel>>,
}

/// Collects the team's channel conversations as source events under `prefix`. Fails only
/// when the team is gone (`NotFound`); any other failure becomes an unlisted folder (the
/// parent's items are kept and the point is partial).
pub(crate) async fn collect_channels(
    source: ChannelsSource<'_>,
    report: &mut Progress,
    progress: &dyn ProgressSink,
) -> Result<ChannelsCollection, BackupError> {
    let mut run = Run {
        tenant: source.tenant,
        team_id: source.team_id,
        team_name: source.team_name,
        requests: source.requests,
        parent: ParentThreads::new(source.parent_entries),
        events: Vec::new(),
        refusal: None,
    };
    let mut previous = source.previous;
    let prefix = source.prefix.trim_matches('/');

    source.requests.add(1);
    let channels: Vec<Channel> = match source
        .tenant
        .team_channels(source.team_id)
        .try_collect()
        .await
    {
        Ok(channels) => channels,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Err(BackupError::Unavailable(
                "This team no longer exists in Microsoft 365; its earlier backups are kept.".into(),
            ));
        }
        Err(err) => {
            // Nothing can be read: keep everything the parent point has, and the state with it.
            run.events.push(SourceEvent::Unlisted {
                prefix: prefix.to_string(),
                reason: format!("the team's channels could not be listed: {}", plain(&err)),
            });
            return Ok(ChannelsCollection {
                events: run.events,
                state: previous,
                notes: Vec::new(),
                refusal: None,
                channels: None,
            });
        }
    };

    let mut state = ChannelsState::default();
    let mut notes = Vec::new();
    for channel in &channels {
        let before = previous.channels.remove(&channel.id).unwrap_or_default();
        let path = format!("{prefix}/{}", channel_folder(channel));
        run.events
            .push(SourceEvent::Item(channel_item(&path, channel)));
        report.items_seen += 1;
        if let Some(reason) = run.refusal.as_ref().map(ToString::to_string) {
            // Microsoft refused already: asking again for this channel cannot succeed.
            run.keep(&before, &path, &reason);
            state.channels.insert(channel.id.clone(), before);
            continue;
        }
        if hosted_elsewhere(channel, source.tenant) {
            // Microsoft serves a channel's messages to apps of the organization that owns it
            // (`channel-list-messages`): a channel shared into this team by another
            // organization is that organization's to back up.
            notes.push(format!(
                "The shared channel \"{}\" belongs to another organization; Microsoft serves its \
                 messages only to that organization, so its messages are not in this backup.",
                channel.display_name.as_deref().unwrap_or_default()
            ));
            state.channels.insert(
                channel.id.clone(),
                ChannelState {
                    path,
                    ..ChannelState::default()
                },
            );
            continue;
        }
        report.current = channel.display_name.clone();
        progress.report(report);
        let collected = run.channel(channel, &path, &before, report).await;
        let kept = match collected {
            Ok(now) => now,
            Err(ChannelFailure::Refused(refusal)) => {
                run.keep(&before, &path, &refusal.to_string());
                run.refusal = Some(*refusal);
                before
            }
            Err(ChannelFailure::Other(err)) => {
                run.keep(&before, &path, &plain(&err));
                before
            }
        };
        state.channels.insert(channel.id.clone(), kept);
    }
    // Channels deleted since the parent point are not offered: the new point leaves them out
    // (earlier points keep them).
    report.current = None;
    Ok(ChannelsCollection {
        events: run.events,
        state,
        notes,
        refusal: run.refusal,
        channels: Some(channels),
    })
}

/// Whether the channel is owned by another organization (a shared channel from outside).
pub(crate) fn hosted_elsewhere(channel: &Channel, tenant: &TenantClient) -> bool {
    channel
        .tenant_id
        .as_deref()
        .filter(|owner| !owner.is_empty())
        .is_some_and(|owner| !owner.eq_ignore_ascii_case(&tenant.tenant_id().to_string()))
}

/// Why Microsoft refused, in the words a customer needs.
pub(crate) fn refusal_sentence(refusal: &ProtectedApiRefusal) -> String {
    match refusal.reason {
        crate::m365::ProtectedApiReason::NotApproved => format!(
            "Microsoft requires this app to be approved for its protected Teams APIs, and it has \
             not been (request access at aka.ms/teamsgraph/requestaccess; Microsoft said: {}).",
            refusal.message
        ),
        crate::m365::ProtectedApiReason::LicenceRequired => format!(
            "Microsoft requires a licence or billing setup for its protected Teams APIs that the \
             organization lacks (Microsoft said: {}).",
            refusal.message
        ),
    }
}

enum ChannelFailure {
    Refused(Box<ProtectedApiRefusal>),
    Other(GraphError),
}

impl From<GraphError> for ChannelFailure {
    fn from(err: GraphError) -> Self {
        match err {
            GraphError::ProtectedApi(refusal) => Self::Refused(refusal),
            other => Self::Other(other),
        }
    }
}

struct Run<'a> {
    tenant: &'a TenantClient,
    team_id: &'a str,
    team_name: &'a str,
    requests: &'a RequestCounter,
    parent: ParentThreads,
    events: Vec<SourceEvent>,
    refusal: Option<ProtectedApiRefusal>,
}

/// How the posts to look at were found.
struct Posts {
    /// Posts to take again, with the post as Graph sent it when known.
    fetch: Vec<(String, Option<ChatMessage>)>,
    /// Posts to carry over from the parent point.
    carry: Vec<String>,
    delta_link: Option<DeltaLink>,
}

impl Run<'_> {
    /// Keeps what the parent point has of a channel that could not be read, and says why.
    fn keep(&mut self, before: &ChannelState, path: &str, reason: &str) {
        let prefix = if before.path.is_empty() {
            path
        } else {
            before.path.as_str()
        };
        self.events.push(SourceEvent::Unlisted {
            prefix: prefix.to_string(),
            reason: reason.to_string(),
        });
    }

    async fn channel(
        &mut self,
        channel: &Channel,
        path: &str,
        before: &ChannelState,
        report: &mut Progress,
    ) -> Result<ChannelState, ChannelFailure> {
        let posts = self.posts(channel, before).await?;
        let mut now = ChannelState {
            path: path.to_string(),
            delta_link: posts.delta_link,
            threads: BTreeMap::new(),
        };
        for id in posts.carry {
            let Some(thread) = before.threads.get(&id) else {
                continue;
            };
            let new_path = format!("{path}/{}", leaf(&thread.path));
            for item in self.parent.carried(&thread.path, &new_path) {
                report.items_seen += 1;
                self.events.push(SourceEvent::Item(item));
            }
            now.threads.insert(
                id,
                ThreadState {
                    path: new_path,
                    seen: thread.seen.clone(),
                },
            );
        }
        for (id, known) in posts.fetch {
            let root = match known {
                Some(root) => Some(root),
                None => {
                    self.requests.add(1);
                    let at = MessageRef {
                        team_id: self.team_id,
                        channel_id: &channel.id,
                        message_id: &id,
                        reply_id: None,
                    };
                    match self.tenant.channel_message(at).await {
                        Ok(root) => root,
                        Err(err) => {
                            self.thread_unreadable(before, &mut now, &id, path, err)?;
                            continue;
                        }
                    }
                }
            };
            // Gone or deleted in Teams: the new point leaves the thread out.
            let Some(root) = root.filter(|root| !root.is_deleted()) else {
                continue;
            };
            let thread_path = format!("{path}/{}", thread_folder(&root));
            report.current = Some(format!(
                "{} › {}",
                channel.display_name.as_deref().unwrap_or_default(),
                leaf(&thread_path)
            ));
            match self.replies(channel, &root).await {
                Ok(mut replies) => {
                    replies.sort_by_key(|r| (r.created_date_time, r.id.clone()));
                    for item in self.thread_items(channel, &thread_path, &root, &replies) {
                        report.items_seen += 1;
                        self.events.push(SourceEvent::Item(item));
                    }
                    now.threads.insert(
                        id,
                        ThreadState {
                            path: thread_path,
                            seen: Some(fingerprint(&root)),
                        },
                    );
                }
                Err(err) => self.thread_unreadable(before, &mut now, &id, &thread_path, err)?,
            }
        }
        Ok(now)
    }

    /// A thread whose post or replies could not be read: its previous copy is kept and it is
    /// taken again next time; a refusal of the protected API stops the channel.
    fn thread_unreadable(
        &mut self,
        before: &ChannelState,
        now: &mut ChannelState,
        id: &str,
        path: &str,
        err: GraphError,
    ) -> Result<(), ChannelFailure> {
        if matches!(err, GraphError::ProtectedApi(_)) {
            return Err(err.into());
        }
        let kept_at = before
            .threads
            .get(id)
            .map_or_else(|| path.to_string(), |t| t.path.clone());
        self.events.push(SourceEvent::Unlisted {
            prefix: kept_at.clone(),
            reason: plain(&err),
        });
        now.threads.insert(
            id.to_string(),
            ThreadState {
                path: kept_at,
                seen: None,
            },
        );
        Ok(())
    }

    /// Which posts changed: from the channel's delta when a link is stored, else (and after a
    /// forced resync) by listing the posts.
    async fn posts(
        &mut self,
        channel: &Channel,
        before: &ChannelState,
    ) -> Result<Posts, ChannelFailure> {
        let start = match &before.delta_link {
            Some(link) => DeltaStart::Resume(link.clone()),
            None => DeltaStart::Initial,
        };
        // The delta comes first, so a change made while the posts are listed is seen again by
        // the next run rather than missed.
        let requests = self.requests;
        let round = collect_round_with(
            self.tenant
                .channel_messages_delta(self.team_id, &channel.id, start),
            || requests.add(1),
        )
        .await;
        let round = match round {
            Ok(round) => Some(round),
            Err(GraphError::ProtectedApi(refusal)) => return Err(ChannelFailure::Refused(refusal)),
            // Not every channel offers the delta (a shared channel hosted by another
            // organization may not), and a link Microsoft no longer takes is no use: list the
            // channel instead (a deleted channel fails the listing too).
            Err(err) if !err.is_retryable() => {
                tracing::info!(channel = %channel.id, %err, "no message delta for this channel; listing it");
                None
            }
            Err(err) => return Err(err.into()),
        };
        match round {
            Some(round) if !round.full_sync => {
                let mut changed: HashMap<String, ChatMessage> = HashMap::new();
                let mut removed: HashSet<String> = HashSet::new();
                for change in round.changes {
                    match change {
                        DeltaChange::Upsert(post) if !post.is_reply() => {
                            removed.remove(&post.id);
                            changed.insert(post.id.clone(), post);
                        }
                        DeltaChange::Upsert(_) => {}
                        DeltaChange::Removed { id, .. } => {
                            changed.remove(&id);
                            removed.insert(id);
                        }
                    }
                }
                let mut posts = Posts {
                    fetch: Vec::new(),
                    carry: Vec::new(),
                    delta_link: Some(round.delta_link),
                };
                for (id, thread) in &before.threads {
                    if removed.contains(id) || changed.contains_key(id) {
                        continue;
                    }
                    if thread.seen.is_some() {
                        posts.carry.push(id.clone());
                    } else {
                        posts.fetch.push((id.clone(), None));
                    }
                }
                posts
                    .fetch
                    .extend(changed.into_iter().map(|(id, post)| (id, Some(post))));
                Ok(posts)
            }
            round => {
                let delta_link = round.map(|r| r.delta_link);
                let listed: Vec<ChatMessage> = self
                    .tenant
                    .channel_messages(self.team_id, &channel.id)
                    .try_collect()
                    .await
                    .map_err(ChannelFailure::from)?;
                self.requests.add(1 + listed.len() as u64 / PAGE);
                let mut posts = Posts {
                    fetch: Vec::new(),
                    carry: Vec::new(),
                    delta_link,
                };
                for post in listed {
                    if post.is_deleted() || post.is_reply() {
                        continue;
                    }
                    let unchanged = before.threads.get(&post.id).is_some_and(|thread| {
                        thread.seen.as_deref() == Some(fingerprint(&post).as_str())
                    });
                    if unchanged {
                        posts.carry.push(post.id.clone());
                    } else {
                        posts.fetch.push((post.id.clone(), Some(post)));
                    }
                }
                Ok(posts)
            }
        }
    }

    /// `&mut self`: the run holds events that are `Send` but not `Sync`.
    async fn replies(
        &mut self,
        channel: &Channel,
        root: &ChatMessage,
    ) -> Result<Vec<ChatMessage>, GraphError> {
        let replies: Vec<ChatMessage> = self
            .tenant
            .message_replies(self.team_id, &channel.id, &root.id)
            .try_collect()
            .await?;
        self.requests.add(1 + replies.len() as u64 / PAGE);
        Ok(replies)
    }

    /// `thread.json`, `thread.html` and the hosted contents of one thread.
    fn thread_items(
        &self,
        channel: &Channel,
        path: &str,
        root: &ChatMessage,
        replies: &[ChatMessage],
    ) -> Vec<SourceItem> {
        let mut hosted_items = Vec::new();
        let mut hosted_files = HostedFiles::new();
        for message in std::iter::once(root).chain(replies) {
            if message.is_deleted() {
                continue;
            }
            for hosted_id in message.hosted_content_ids() {
                let file = format!(
                    "hosted/{}-{}",
                    short_hash(&message.id),
                    short_hash(&hosted_id)
                );
                hosted_files.insert(hosted_id.clone(), file.clone());
                hosted_items.push(self.hosted_item(
                    channel,
                    &format!("{path}/{file}"),
                    root,
                    message,
                    hosted_id,
                ));
            }
        }

        let json = serde_json::json!({
            "team": {"id": self.team_id, "displayName": self.team_name},
            "channel": {
                "id": channel.id,
                "displayName": channel.display_name,
                "membershipType": channel.membership_type,
            },
            "message": root.raw,
            "replies": replies.iter().map(|r| &r.raw).collect::<Vec<_>>(),
        });
        let json = serde_json::to_vec_pretty(&json).unwrap_or_default();
        // The bytes themselves are the change key: a thread fetched again but unchanged is
        // taken from the parent point, not stored again.
        let change_key = format!("{:016x}", fnv1a(&json));
        let last_modified = std::iter::once(root)
            .chain(replies)
            .filter_map(|m| m.last_modified_date_time.or(m.created_date_time))
            .max();
        let metadata = ItemMetadata {
            kind: Some(ItemKind::Post),
            graph_id: Some(root.id.clone()),
            change_key: Some(change_key),
            last_modified,
            source_size: Some(json.len() as u64),
            subject: Some(thread_subject(root)),
            sender: root
                .from
                .as_ref()
                .and_then(|f| f.display_name())
                .map(str::to_string),
            sent_at: root.created_date_time,
            has_attachments: Some(
                !hosted_files.is_empty()
                    || root
                        .raw
                        .get("attachments")
                        .and_then(|a| a.as_array())
                        .is_some_and(|a| !a.is_empty()),
            ),
            ..ItemMetadata::default()
        };
        let html = thread_html(self.team_name, channel, root, replies, &hosted_files);
        let mut items = vec![
            SourceItem {
                path: format!("{path}/thread.json"),
                metadata: metadata.clone(),
                content: ItemContent::from_bytes(json),
            },
            SourceItem {
                path: format!("{path}/thread.html"),
                metadata: ItemMetadata {
                    kind: Some(ItemKind::File),
                    // A new rendering makes every page new, without touching the JSON.
                    change_key: metadata
                        .change_key
                        .as_ref()
                        .map(|key| format!("{key}-page{PAGE_VERSION}")),
                    source_size: Some(html.len() as u64),
                    ..metadata
                },
                content: ItemContent::from_bytes(html),
            },
        ];
        items.extend(hosted_items);
        items
    }

    fn hosted_item(
        &self,
        channel: &Channel,
        path: &str,
        root: &ChatMessage,
        message: &ChatMessage,
        hosted_id: String,
    ) -> SourceItem {
        let tenant = self.tenant.clone();
        let team = self.team_id.to_string();
        let channel_id = channel.id.clone();
        let post = root.id.clone();
        let reply = message.is_reply().then(|| message.id.clone());
        let id = hosted_id.clone();
        SourceItem {
            path: path.to_string(),
            metadata: ItemMetadata {
                kind: Some(ItemKind::File),
                graph_id: Some(format!("{}/hostedContents/{hosted_id}", message.id)),
                // A hosted content never changes under its id.
                change_key: Some(hosted_id),
                last_modified: message.created_date_time,
                ..ItemMetadata::default()
            },
            content: ItemContent::from_fn(move || async move {
                let at = MessageRef {
                    team_id: &team,
                    channel_id: &channel_id,
                    message_id: &post,
                    reply_id: reply.as_deref(),
                };
                let stream = tenant
                    .hosted_content(at, &id)
                    .await
                    .map_err(|err| std::io::Error::other(plain(&err)))?;
                Ok(StreamReader::new(
                    stream.map_err(|err| std::io::Error::other(plain(&err))),
                ))
            }),
        }
    }
}

/// The parent point's items, by the thread folder they are in.
struct ParentThreads {
    by_thread: HashMap<String, Vec<CatalogEntry>>,
}

impl ParentThreads {
    fn new(entries: &[CatalogEntry]) -> Self {
        let mut by_thread: HashMap<String, Vec<CatalogEntry>> = HashMap::new();
        for entry in entries {
            let Some((dir, _)) = entry.path.rsplit_once('/') else {
                continue;
            };
            let dir = dir.strip_suffix("/hosted").unwrap_or(dir);
            by_thread
                .entry(dir.to_string())
                .or_default()
                .push(entry.clone());
        }
        Self { by_thread }
    }

    /// The items of a thread the parent point has at `old`, offered at `new` (a renamed
    /// channel moves its threads; the storage matches them by Graph id and reads nothing).
    fn carried(&self, old: &str, new: &str) -> Vec<SourceItem> {
        self.by_thread
            .get(old)
            .into_iter()
            .flatten()
            .map(|entry| SourceItem {
                path: format!("{new}{}", &entry.path[old.len()..]),
                metadata: ItemMetadata::from_entry(entry),
                // Never asked: the entry is reused by its Graph id and change key.
                content: ItemContent::from_fn(|| async {
                    Err::<std::io::Cursor<Vec<u8>>, _>(std::io::Error::other(
                        "the thread is no longer in the previous backup; the next run takes it again",
                    ))
                }),
            })
            .collect()
    }
}

/// `{name} ({hash of the id})`: names repeat and change, ids do not.
pub(crate) fn channel_folder(channel: &Channel) -> String {
    channel_folder_of(
        channel
            .display_name
            .as_deref()
            .unwrap_or("(unnamed channel)"),
        &channel.id,
    )
}

/// The folder of the channel named `name` with id `id` (see [`channel_folder`]).
pub(crate) fn channel_folder_of(name: &str, id: &str) -> String {
    format!("{} ({})", folder_component(name), short_hash(id))
}

/// `{post time} ({hash of the post id})`, so a channel's folder lists its threads in order.
fn thread_folder(root: &ChatMessage) -> String {
    let when = root
        .created_date_time
        .map(|t| t.format("%Y-%m-%d %H.%M").to_string())
        .unwrap_or_else(|| "undated".into());
    format!("{when} ({})", short_hash(&root.id))
}

fn leaf(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// What says a post (and so its thread, as Microsoft reports a new reply on its post) changed.
fn fingerprint(post: &ChatMessage) -> String {
    format!(
        "{}|{}",
        post.last_modified_date_time
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        post.etag.as_deref().unwrap_or_default()
    )
}

/// The post's subject, else the start of its text.
fn thread_subject(root: &ChatMessage) -> String {
    if let Some(subject) = root.subject.as_deref().filter(|s| !s.trim().is_empty()) {
        return subject.to_string();
    }
    let html = root
        .body
        .as_ref()
        .and_then(|b| b.content.as_deref())
        .unwrap_or_default();
    let text = ammonia::Builder::empty().clean(html).to_string();
    let text = text
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"");
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut subject = String::new();
    for word in words {
        if subject.len() + word.len() > 80 {
            subject.push('…');
            break;
        }
        if !subject.is_empty() {
            subject.push(' ');
        }
        subject.push_str(word);
    }
    subject
}

/// The channel's Graph JSON.
fn channel_item(path: &str, channel: &Channel) -> SourceItem {
    let json = serde_json::to_vec_pretty(channel).unwrap_or_default();
    SourceItem {
        path: format!("{path}/channel.json"),
        metadata: ItemMetadata {
            kind: Some(ItemKind::Other),
            graph_id: Some(channel.id.clone()),
            change_key: Some(format!("{:016x}", fnv1a(&json))),
            last_modified: channel.created_date_time,
            subject: channel.display_name.clone(),
            ..ItemMetadata::default()
        },
        content: ItemContent::from_bytes(json),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A Graph failure in words, with Microsoft's own for support.
fn plain(err: &GraphError) -> String {
    let what = match err.kind() {
        ErrorKind::NotFound => "it was deleted in Microsoft 365 during the backup",
        ErrorKind::Throttled => "Microsoft kept throttling the team; the next run takes it",
        ErrorKind::Unavailable => "Microsoft 365 was unavailable; the next run takes it",
        ErrorKind::Forbidden => "the app lacks the permission to read it",
        ErrorKind::SyncStateLost => "Microsoft asked for a full resynchronisation",
        _ => "Microsoft 365 refused the request",
    };
    format!("{what} ({err})")
}
