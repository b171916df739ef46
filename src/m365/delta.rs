//! Delta queries (graph-protocol.md §2.2, §3.2, §4.2): a round follows `@odata.nextLink` pages
//! until an `@odata.deltaLink`, which the caller stores and resumes from next time. Removed
//! objects come as `@removed` (directory, mail) or a `deleted` facet (drives). When Graph says
//! the stored link is no good (410 Gone, `syncStateNotFound`, `resyncRequired`, ...) the round
//! restarts as a full sync from the initial query, and says so, so the caller can treat whatever
//! it does not see as gone.
//! It owns that loop; it must never interpret or edit the opaque tokens inside the links.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::m365::error::{ErrorKind, GraphError};
use crate::m365::http::{Executor, GraphRequest};
use crate::m365::paging::Page;
use crate::m365::types::{DriveItem, Group, Message, TenantId, User};

/// The link to resume a delta query from. Opaque: store it as-is, hand it back as-is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeltaLink(String);

impl DeltaLink {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a link read back from storage.
    pub fn from_stored(link: impl Into<String>) -> Self {
        Self(link.into())
    }
}

/// Where a round starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaStart {
    /// A full enumeration (first backup or sync).
    Initial,
    /// Only what changed since the stored link.
    Resume(DeltaLink),
}

/// Why an object left the feed (`@removed.reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovedReason {
    /// `changed`: soft-deleted (directory) — still restorable from `directory/deletedItems` —
    /// or moved out of scope.
    Changed,
    /// `deleted`: gone for good.
    Deleted,
    Other(String),
}

/// One entry of the feed. The same id can come more than once in a round; the last one wins.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaChange<T> {
    /// Created or changed; holds the selected properties.
    Upsert(T),
    Removed {
        id: String,
        reason: RemovedReason,
    },
}

impl<T: DeltaItem> DeltaChange<T> {
    pub fn id(&self) -> &str {
        match self {
            DeltaChange::Upsert(item) => item.delta_id(),
            DeltaChange::Removed { id, .. } => id,
        }
    }
}

/// A resource that can come through a delta feed.
pub trait DeltaItem: DeserializeOwned + Send + 'static {
    fn delta_id(&self) -> &str;
    /// Drives mark deletions with a `deleted` facet instead of `@removed`.
    fn is_deleted(&self) -> bool {
        false
    }
}

impl DeltaItem for User {
    fn delta_id(&self) -> &str {
        &self.id
    }
}

impl DeltaItem for Group {
    fn delta_id(&self) -> &str {
        &self.id
    }
}

impl DeltaItem for Message {
    fn delta_id(&self) -> &str {
        &self.id
    }
}

impl DeltaItem for DriveItem {
    fn delta_id(&self) -> &str {
        &self.id
    }
    fn is_deleted(&self) -> bool {
        self.deleted.is_some()
    }
}

/// One page of a round.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPage<T> {
    pub changes: Vec<DeltaChange<T>>,
    /// On the last page: the link to store for the next round.
    pub delta_link: Option<DeltaLink>,
    /// A full enumeration starts with this page — the first page of a round started without a
    /// link, or the first page after Graph rejected the stored link and forced a resync. The
    /// caller forgets what it gathered earlier in this round and, at the end, treats every
    /// object it did not see as removed.
    pub starts_full_sync: bool,
}

/// A whole round, gathered.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaRound<T> {
    pub changes: Vec<DeltaChange<T>>,
    pub delta_link: DeltaLink,
    /// The round enumerated everything (it started without a link, or Graph forced a resync).
    pub full_sync: bool,
}

pub type DeltaStream<T> = Pin<Box<dyn Stream<Item = Result<DeltaPage<T>, GraphError>> + Send>>;

/// Restarting more often than this in one round means the service is confused; stop and let
/// the next scheduled run try.
const MAX_RESYNCS: u32 = 2;

struct RoundState {
    next: Option<GraphRequest>,
    resyncs: u32,
    full_sync_pending: bool,
}

/// Pages of one round. `initial` is the query without a token; `start` says where to begin.
pub(crate) fn delta_pages<T: DeltaItem>(
    executor: Arc<Executor>,
    tenant: TenantId,
    initial: GraphRequest,
    start: DeltaStart,
) -> DeltaStream<T> {
    let full_sync = start == DeltaStart::Initial;
    let first = match start {
        DeltaStart::Initial => Ok(initial.clone()),
        DeltaStart::Resume(link) => executor
            .graph_link(link.as_str())
            .map(|url| initial.with_url(url)),
    };
    let state = first.map(|first| RoundState {
        next: Some(first),
        resyncs: 0,
        full_sync_pending: full_sync,
    });
    let stream = futures::stream::try_unfold(state, move |state| {
        let executor = executor.clone();
        let initial = initial.clone();
        async move {
            let mut state = state?;
            loop {
                let Some(request) = state.next.take() else {
                    return Ok(None);
                };
                match executor
                    .get_json::<Page<serde_json::Value>>(tenant, &request)
                    .await
                {
                    Ok(page) => {
                        let changes = page
                            .value
                            .into_iter()
                            .map(parse_change::<T>)
                            .collect::<Result<Vec<_>, _>>()?;
                        let starts_full_sync = std::mem::take(&mut state.full_sync_pending);
                        let delta_link = page.delta_link.map(DeltaLink);
                        state.next = match (&page.next_link, &delta_link) {
                            (Some(link), _) => Some(request.with_url(executor.graph_link(link)?)),
                            (None, Some(_)) => None,
                            (None, None) => {
                                return Err(GraphError::Decode {
                                    url: request.url.to_string(),
                                    message: "delta page has neither @odata.nextLink nor @odata.deltaLink".into(),
                                });
                            }
                        };
                        return Ok(Some((
                            DeltaPage {
                                changes,
                                delta_link,
                                starts_full_sync,
                            },
                            Ok(state),
                        )));
                    }
                    Err(error) if error.kind() == ErrorKind::SyncStateLost => {
                        state.resyncs += 1;
                        if state.resyncs > MAX_RESYNCS {
                            return Err(GraphError::ResyncLoop(error.to_string()));
                        }
                        tracing::info!(tenant = %tenant, %error, "delta link rejected; starting a full resync");
                        // The 410's `Location` also starts a full sync, but nothing documents
                        // that it keeps the query options of the original request, and a
                        // directory resync without our `$select` would drop fields discovery
                        // needs. The initial query is always a valid full sync.
                        state.next = Some(initial.clone());
                        state.full_sync_pending = true;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
    });
    Box::pin(stream)
}

fn parse_change<T: DeltaItem>(value: serde_json::Value) -> Result<DeltaChange<T>, GraphError> {
    if let Some(removed) = value.get("@removed") {
        let id = value
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let reason = match removed.get("reason").and_then(|r| r.as_str()) {
            Some("changed") => RemovedReason::Changed,
            Some("deleted") => RemovedReason::Deleted,
            Some(other) => RemovedReason::Other(other.to_string()),
            None => RemovedReason::Other(String::new()),
        };
        return Ok(DeltaChange::Removed { id, reason });
    }
    let item: T = serde_json::from_value(value).map_err(|e| GraphError::Decode {
        url: "delta item".into(),
        message: e.to_string(),
    })?;
    if item.is_deleted() {
        let id = item.delta_id().to_string();
        return Ok(DeltaChange::Removed {
            id,
            reason: RemovedReason::Deleted,
        });
    }
    Ok(DeltaChange::Upsert(item))
}

/// Runs a round to its end and gathers it. A resync in the middle drops what came before it:
/// the full enumeration that follows is authoritative. Everything is held in memory: fine for a
/// directory or a mail folder, but a large drive's first round should be consumed page by page
/// from the stream instead.
pub async fn collect_round<T>(pages: DeltaStream<T>) -> Result<DeltaRound<T>, GraphError> {
    collect_round_with(pages, || {}).await
}

/// `collect_round`, calling `on_page` for every page received (one request each), so a caller
/// can count what a round cost.
pub async fn collect_round_with<T>(
    mut pages: DeltaStream<T>,
    mut on_page: impl FnMut(),
) -> Result<DeltaRound<T>, GraphError> {
    let mut changes = Vec::new();
    let mut full_sync = false;
    while let Some(page) = pages.try_next().await? {
        on_page();
        if page.starts_full_sync {
            changes.clear();
            full_sync = true;
        }
        changes.extend(page.changes);
        if let Some(delta_link) = page.delta_link {
            return Ok(DeltaRound {
                changes,
                delta_link,
                full_sync,
            });
        }
    }
    Err(GraphError::Decode {
        url: "delta round".into(),
        message: "round ended without @odata.deltaLink".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_entries_carry_reason() {
        let c: DeltaChange<User> =
            parse_change(serde_json::json!({"id":"u1","@removed":{"reason":"changed"}})).unwrap();
        assert_eq!(
            c,
            DeltaChange::Removed {
                id: "u1".into(),
                reason: RemovedReason::Changed
            }
        );
        let c: DeltaChange<Message> = parse_change(serde_json::json!({
            "@odata.type":"#microsoft.graph.message","id":"m","@removed":{"reason":"deleted"}}))
        .unwrap();
        assert_eq!(c.id(), "m");
        assert!(matches!(
            c,
            DeltaChange::Removed {
                reason: RemovedReason::Deleted,
                ..
            }
        ));
    }

    #[test]
    fn deleted_drive_items_are_removals() {
        let c: DeltaChange<DriveItem> =
            parse_change(serde_json::json!({"id":"i","deleted":{"state":"deleted"}})).unwrap();
        assert!(matches!(
            c,
            DeltaChange::Removed {
                reason: RemovedReason::Deleted,
                ..
            }
        ));
        let c: DeltaChange<DriveItem> = parse_change(
            serde_json::json!({"id":"i","name":"a.txt","file":{"hashes":{"quickXorHash":"x"}}}),
        )
        .unwrap();
        assert!(matches!(c, DeltaChange::Upsert(ref i) if i.quick_xor_hash() == Some("x")));
    }

    #[tokio::test]
    async fn collect_round_drops_changes_before_a_resync() {
        let user = |id: &str| {
            DeltaChange::Upsert(
                serde_json::from_value::<User>(serde_json::json!({"id": id})).unwrap(),
            )
        };
        let pages: Vec<Result<DeltaPage<User>, GraphError>> = vec![
            Ok(DeltaPage {
                changes: vec![user("stale")],
                delta_link: None,
                starts_full_sync: false,
            }),
            Ok(DeltaPage {
                changes: vec![user("a")],
                delta_link: None,
                starts_full_sync: true,
            }),
            Ok(DeltaPage {
                changes: vec![user("b")],
                delta_link: Some(DeltaLink::from_stored("L")),
                starts_full_sync: false,
            }),
        ];
        let round = collect_round(Box::pin(futures::stream::iter(pages)))
            .await
            .unwrap();
        let ids: Vec<_> = round.changes.iter().map(|c| c.id().to_string()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert!(round.full_sync);
        assert_eq!(round.delta_link.as_str(), "L");
    }
}
