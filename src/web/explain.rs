//! How the console shows a failure: a sentence saying what happened, one saying whether Skyvault
//! tries again, one saying what the person can do, and the technical facts (Microsoft's code,
//! request id) behind a "Details" disclosure for support.

use crate::inventory::failure::{SyncFailure, backup_item_words as backup_words};
use crate::jobs::queue::JobKind;

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

impl FailureView {
    /// One item's failed backup, as recorded on the run.
    pub fn of_backup_item(detail: &str) -> Self {
        let failure = SyncFailure::decode(detail);
        let (what, retry, action) = backup_words(failure.cause);
        Self {
            what,
            retry,
            action,
            facts: failure.facts,
        }
    }

    /// A failed job (or a failed attempt queued again) other than a directory sync: what
    /// happened, whether Skyvault tries again and what to do, with the recorded text as a fact.
    pub fn of_job(kind: JobKind, error: &str, retrying: bool) -> Self {
        let what = match kind {
            JobKind::PlanRun => "Some items of this backup could not be backed up.",
            JobKind::Retention => {
                "Old recovery points could not be removed by the plan's retention rule."
            }
            JobKind::Prune => "The space of removed recovery points could not be reclaimed.",
            JobKind::Verify => "The check of the backup storage could not finish.",
            JobKind::DirectorySync => "The directory sync stopped.",
            JobKind::Restore => "Some items could not be restored into Microsoft 365.",
        };
        let retry = if retrying {
            "Skyvault tries again by itself shortly; nothing already backed up is lost."
        } else if kind == JobKind::PlanRun {
            "Skyvault tries again at the plan's next daily run; recovery points already made are kept."
        } else if kind == JobKind::Restore {
            "Skyvault does not restore again by itself; the backups are unchanged."
        } else {
            "Skyvault tries again at its next scheduled time; nothing already backed up is lost."
        };
        let action = match kind {
            JobKind::PlanRun => {
                "Open the backup to see each failed item and why; Run now on the plan tries at once."
            }
            JobKind::Restore => {
                "Each item below says why it was not restored; start the restore again for those items once the cause is fixed."
            }
            _ => {
                "Check on Backup storage that the storage can be reached; if it keeps failing, send the details below to support."
            }
        };
        Self {
            what,
            retry,
            action,
            facts: vec![("Recorded".into(), error.to_string())],
        }
    }
}
