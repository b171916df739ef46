//! Why a directory sync failed, in words a technician understands at 2 a.m.: what happened,
//! whether Skyvault tries again, and what they can do; the technical facts support asks for
//! (Graph's status, code and request id) are kept beside it, not instead of it.
//!
//! A failure is recorded as text (on the organization's last sync outcome and the job's error):
//! a first line naming the cause by a stable code, then one `Label: value` line per fact. Text
//! written before this format (a bare error message) reads back as an unexplained failure whose
//! only fact is that message. It never branches on Microsoft's message text, only on codes.

use crate::m365::{ErrorKind, GraphError};

use super::InventoryError;

/// What made a sync fail, as far as the person watching it needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// Microsoft 365 throttled Skyvault and the retries ran out.
    Throttled,
    /// Microsoft 365 (or the network to it) was unavailable.
    Unavailable,
    /// Consent was withdrawn, the tenant is gone, or the app's credentials are refused.
    NotAuthorized,
    /// The app lacks a permission in the organization.
    Forbidden,
    /// Microsoft asked for a full re-read of the directory.
    ResyncNeeded,
    /// Skyvault's own database failed.
    Database,
    /// Anything else.
    Other,
}

impl FailureCause {
    const ALL: [FailureCause; 7] = [
        FailureCause::Throttled,
        FailureCause::Unavailable,
        FailureCause::NotAuthorized,
        FailureCause::Forbidden,
        FailureCause::ResyncNeeded,
        FailureCause::Database,
        FailureCause::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            FailureCause::Throttled => "throttled",
            FailureCause::Unavailable => "unavailable",
            FailureCause::NotAuthorized => "not_authorized",
            FailureCause::Forbidden => "forbidden",
            FailureCause::ResyncNeeded => "resync_needed",
            FailureCause::Database => "database",
            FailureCause::Other => "other",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|cause| cause.code() == code)
    }

    /// What happened.
    pub fn what(self) -> &'static str {
        match self {
            FailureCause::Throttled => {
                "Microsoft 365 asked Skyvault to slow down (throttling), and the sync stopped after several retries."
            }
            FailureCause::Unavailable => {
                "Microsoft 365 could not be reached or was temporarily unavailable, so the sync stopped."
            }
            FailureCause::NotAuthorized => {
                "Microsoft 365 no longer lets Skyvault into this organization: consent may have been removed there, or the app's credentials were refused."
            }
            FailureCause::Forbidden => {
                "Microsoft 365 refused to list the directory: Skyvault lacks a permission in this organization."
            }
            FailureCause::ResyncNeeded => {
                "Microsoft 365 asked Skyvault to read the whole directory again, so this sync stopped early."
            }
            FailureCause::Database => {
                "Skyvault could not save what it read, because its database failed."
            }
            FailureCause::Other => "The sync stopped because of an unexpected error.",
        }
    }

    /// Whether and when Skyvault tries again by itself.
    pub fn retry(self) -> &'static str {
        match self {
            FailureCause::NotAuthorized | FailureCause::Forbidden => {
                "Skyvault tries again at the next scheduled sync, but it will fail the same way until consent is given again."
            }
            FailureCause::ResyncNeeded => {
                "The next sync reads everything again by itself; items already listed stay listed."
            }
            _ => {
                "Skyvault tries again at the next scheduled sync; items already listed stay listed."
            }
        }
    }

    /// What the person can do about it.
    pub fn action(self) -> &'static str {
        match self {
            FailureCause::Throttled => {
                "Nothing is needed; Refresh tries now. If it keeps happening, other apps may be using much of the organization's Microsoft Graph quota."
            }
            FailureCause::Unavailable => {
                "Nothing is needed; Refresh tries now. If it keeps failing, check Microsoft 365 service health."
            }
            FailureCause::NotAuthorized | FailureCause::Forbidden => {
                "Give consent again: on Devices choose Add › Microsoft 365 Business and sign in as a global administrator of this organization."
            }
            FailureCause::ResyncNeeded => "Nothing is needed; Refresh starts the full read now.",
            FailureCause::Database => {
                "Ask whoever runs this Skyvault to check its log and database; Refresh tries again."
            }
            FailureCause::Other => {
                "Try Refresh. If it fails again, send the details below to support."
            }
        }
    }
}

/// A failed sync: its cause and the facts support needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFailure {
    pub cause: FailureCause,
    /// (label, value) pairs: Graph's code, HTTP status, request id, message.
    pub facts: Vec<(String, String)>,
}

impl SyncFailure {
    pub fn of(err: &InventoryError) -> Self {
        match err {
            InventoryError::Graph(graph) => Self::of_graph(graph),
            InventoryError::Database(db) => Self {
                cause: FailureCause::Database,
                facts: vec![("Message".into(), db.to_string())],
            },
            other => Self {
                cause: FailureCause::Other,
                facts: vec![("Message".into(), other.to_string())],
            },
        }
    }

    fn of_graph(err: &GraphError) -> Self {
        let cause = match err.kind() {
            ErrorKind::Throttled => FailureCause::Throttled,
            ErrorKind::Unavailable => FailureCause::Unavailable,
            ErrorKind::AppNotAuthorized | ErrorKind::Unauthenticated => FailureCause::NotAuthorized,
            ErrorKind::Forbidden => FailureCause::Forbidden,
            ErrorKind::SyncStateLost => FailureCause::ResyncNeeded,
            ErrorKind::NotFound | ErrorKind::BadRequest | ErrorKind::Other => FailureCause::Other,
        };
        let mut facts = Vec::new();
        if let Some(code) = err.code() {
            facts.push(("Microsoft code".into(), code.to_string()));
        }
        if let Some(status) = err.status() {
            facts.push(("HTTP status".into(), status.to_string()));
        }
        if let Some(id) = err.request_id() {
            facts.push(("Request id".into(), id.to_string()));
        }
        facts.push(("Message".into(), err.to_string()));
        Self { cause, facts }
    }

    /// The recorded form: `[code]` on the first line, then one `Label: value` line per fact.
    pub fn encode(&self) -> String {
        let mut text = format!("[{}]", self.cause.code());
        for (label, value) in &self.facts {
            // A fact is one line: Microsoft's messages may carry line breaks.
            let value = value.replace(['\r', '\n'], " ");
            text.push_str(&format!("\n{label}: {value}"));
        }
        text
    }

    /// Reads a recorded failure back; text in an older or unknown form becomes an unexplained
    /// failure whose one fact is that text.
    pub fn decode(text: &str) -> Self {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default().trim();
        let cause = first
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(FailureCause::parse);
        match cause {
            Some(cause) => Self {
                cause,
                facts: lines
                    .filter_map(|line| line.split_once(": "))
                    .map(|(label, value)| (label.to_string(), value.to_string()))
                    .collect(),
            },
            None => Self {
                cause: FailureCause::Other,
                facts: vec![("Message".into(), text.trim().to_string())],
            },
        }
    }
}

/// The words for one item's failed backup (what happened, whether Skyvault retries, what to do), by what made it fail. Graph failures are recorded
/// as a [`SyncFailure`] (cause code and facts); any other text reads as an unexplained failure.
pub fn backup_item_words(cause: FailureCause) -> (&'static str, &'static str, &'static str) {
    match cause {
        FailureCause::Throttled => (
            "Microsoft 365 throttled Skyvault while it read this item, and the retries ran out.",
            "Skyvault tries the item again by itself; what was backed up before is kept.",
            "Nothing is needed. If it happens every night, other apps may be using much of the organization's Microsoft Graph quota.",
        ),
        FailureCause::Unavailable => (
            "Microsoft 365 could not be reached or was temporarily unavailable while this item was read.",
            "Skyvault tries the item again by itself; what was backed up before is kept.",
            "Nothing is needed. If it keeps failing, check Microsoft 365 service health.",
        ),
        FailureCause::NotAuthorized => (
            "The app's consent was revoked in Microsoft 365, or its credentials were refused.",
            "Skyvault tries again at the next run, but it fails the same way until consent is given again.",
            "Add the organization again: on Devices choose Add › Microsoft 365 Business and sign in as a global administrator.",
        ),
        FailureCause::Forbidden => (
            "Microsoft 365 refused to let Skyvault read this item: the app lacks a permission in this organization.",
            "Skyvault tries again at the next run, but it fails the same way until the permission is granted.",
            "Give consent again from Devices as a global administrator, so the app gets every permission it asks for.",
        ),
        FailureCause::ResyncNeeded => (
            "Microsoft 365 asked Skyvault to read this item in full again.",
            "The next run reads it in full by itself; earlier recovery points are kept.",
            "Nothing is needed; Run now on the plan starts it now.",
        ),
        FailureCause::Database => (
            "Skyvault could not record this item's backup, because its database failed.",
            "Skyvault tries again by itself; earlier recovery points are kept.",
            "Ask whoever runs this Skyvault to check its log and database.",
        ),
        FailureCause::Other => (
            "This item could not be backed up.",
            "Skyvault tries again at the next run; earlier recovery points are kept.",
            "If it fails again, send the details below to support.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_failure_reads_back_with_its_cause_and_facts() {
        let failure = SyncFailure {
            cause: FailureCause::Throttled,
            facts: vec![
                ("Microsoft code".into(), "TooManyRequests".into()),
                ("Request id".into(), "abc-123".into()),
                ("Message".into(), "line one\nline two".into()),
            ],
        };
        let back = SyncFailure::decode(&failure.encode());
        assert_eq!(back.cause, FailureCause::Throttled);
        assert_eq!(back.facts[1], ("Request id".into(), "abc-123".into()));
        assert_eq!(back.facts[2].1, "line one line two");
    }

    #[test]
    fn text_from_before_the_format_is_an_unexplained_failure() {
        let old = "Graph 503 serviceNotAvailable: try later (request-id 42)";
        let back = SyncFailure::decode(old);
        assert_eq!(back.cause, FailureCause::Other);
        assert_eq!(back.facts, vec![("Message".to_string(), old.to_string())]);
        assert_eq!(
            SyncFailure::decode("[no_such_cause]").cause,
            FailureCause::Other
        );
    }
}
