//! How the console shows a failure: a sentence saying what happened, one saying whether Skyvault
//! tries again, one saying what the person can do, and the technical facts (Microsoft's code,
//! request id) behind a "Details" disclosure for support.

use crate::inventory::failure::SyncFailure;

pub struct FailureView {
    pub what: &'static str,
    pub retry: &'static str,
    pub action: &'static str,
    pub facts: Vec<(String, String)>,
}

impl FailureView {
    pub fn of_sync(failure: SyncFailure) -> Self {
        Self {
            what: failure.cause.what(),
            retry: failure.cause.retry(),
            action: failure.cause.action(),
            facts: failure.facts,
        }
    }

    /// A failed job's recorded error, as a view when the job is a directory sync.
    pub fn of_sync_text(text: &str) -> Self {
        Self::of_sync(SyncFailure::decode(text))
    }
}
