//! A team: its channel conversations now, and its files through the team's site (the group's
//! document library) once that collector joins, in one archive per team. A recovery point
//! holds
//!
//! ```text
//! channels/…   every channel's threads as JSON and readable HTML, with inline images
//! files/…      the team site's library (see `FILES_PREFIX`; not collected yet)
//! ```
//!
//! Each part is a collector returning source events under its own prefix and its own state;
//! this runner joins them into one point and one source state. It never reads a part's state
//! for another part.

mod channels;
mod render;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub(crate) use channels::{ChannelsCollection, ChannelsSource, ChannelsState, collect_channels};

use crate::backup::{
    BackupError, BackupReport, BackupServices, BackupTarget, Progress, ProgressSink,
    RequestCounter, Runner, storage_request,
};
use crate::storage::catalog::Workload;
use crate::storage::{FailedItem, SourceState, ingest};

/// Where the channel conversations go in a team's archive.
pub const CHANNELS_PREFIX: &str = "channels";
/// Where the team site's files go in a team's archive (see `back_up_team`).
pub const FILES_PREFIX: &str = "files";

pub struct TeamRunner;

impl Runner for TeamRunner {
    fn workload(&self) -> Workload {
        Workload::Team
    }

    fn run<'a>(
        &'a self,
        services: &'a BackupServices,
        target: &'a BackupTarget,
        progress: &'a dyn ProgressSink,
    ) -> BoxFuture<'a, Result<BackupReport, BackupError>> {
        Box::pin(back_up_team(services, target, progress))
    }
}

/// The source state of a team's point: each part's own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TeamState {
    #[serde(default)]
    channels: ChannelsState,
    /// The files collector's state (its drive delta link), kept as it wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<serde_json::Value>,
}

async fn back_up_team(
    services: &BackupServices,
    target: &BackupTarget,
    progress: &dyn ProgressSink,
) -> Result<BackupReport, BackupError> {
    let tenant = services.graph.tenant(target.tenant);
    let requests = RequestCounter::default();
    let parent = ingest::parent_point(&services.storage, &storage_request(target)).await?;
    let (stored, entries) = match parent {
        Some(parent) => (parent.source_state, parent.entries),
        None => (None, Vec::new()),
    };
    let previous: TeamState = stored
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();

    let mut report = Progress::default();
    let collected = collect_channels(
        ChannelsSource {
            tenant: &tenant,
            team_id: &target.graph_id,
            team_name: &target.display_name,
            prefix: CHANNELS_PREFIX,
            previous: previous.channels,
            parent_entries: &entries,
            requests: &requests,
        },
        &mut report,
        progress,
    )
    .await?;
    let ChannelsCollection {
        events,
        state: channels_state,
        mut notes,
        refusal,
    } = collected;

    // The team site's files join here, under `FILES_PREFIX`, in the same recovery point:
    // drive-backup's `collect_drive` over the team's group drive (`/groups/{id}/drive`) with
    // `previous.files` as its state, its events appended to `events`, its state stored in
    // `TeamState::files` and its notes added to `notes`. Until then the files part keeps
    // whatever state it had, and this point holds the conversations only.
    let files_state = previous.files;
    let files_backed_up = false;

    if let Some(refusal) = &refusal {
        notes.push(format!(
            "Teams channel messages were not backed up: {} {}",
            channels::refusal_sentence(refusal),
            if files_backed_up {
                "The team's files and site are backed up; messages from earlier backups are kept."
            } else {
                "The channel list is backed up, and messages from earlier backups are kept."
            }
        ));
    }

    report.items_total = Some(report.items_seen);
    progress.report(&report);
    let source_state: SourceState = Box::new(move |failed: &[FailedItem]| {
        let mut channels = channels_state;
        channels.forget_failed(failed);
        serde_json::to_string(&TeamState {
            channels,
            files: files_state,
        })
        .ok()
    });
    let mut written = crate::backup::write_point(
        services,
        target,
        events,
        source_state,
        report,
        progress,
        &requests,
    )
    .await?;
    written.notes = notes;
    Ok(written)
}
