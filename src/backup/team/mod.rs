//! A team: its channel conversations now, and its files through the team's site (the group's
//! document library) once that collector joins, in one archive per team. A recovery point
//! holds
//!
//! ```text
//! channels/…   every channel's threads as JSON and readable HTML, with inline images
//! files/…      the team site's document library, where channel files live (`collect_drive`)
//! channel-sites/…  the libraries of private and shared channels, which have sites of their
//!              own (`channel_sites`)
//! ```
//!
//! Each part is a collector returning source events under its own prefix and its own state;
//! this runner joins them into one point and one source state. It never reads a part's state
//! for another part.

mod channel_sites;
mod channels;
mod render;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub(crate) use channels::{
    ChannelsCollection, ChannelsSource, ChannelsState, channel_folder_of, collect_channels,
};

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

/// What the team's files contributed: their events, state (as JSON, kept in `TeamState`), count
/// and notes.
struct TeamFiles {
    events: Vec<crate::storage::SourceEvent>,
    state: serde_json::Value,
    files: u64,
    notes: Vec<String>,
}

/// Backs up the team's group drive under `FILES_PREFIX`, and the libraries of its private and
/// shared channels beside it; `None` when the team has no drive
/// (Microsoft provisions it on first use), which leaves the conversations alone in the point.
async fn collect_team_files(
    services: &BackupServices,
    tenant: &crate::m365::TenantClient,
    target: &BackupTarget,
    channels: Option<&[crate::m365::Channel]>,
    previous: &crate::backup::drive::DrivesState,
    parent: Option<crate::storage::RecoveryPointId>,
    requests: &RequestCounter,
) -> Result<Option<TeamFiles>, BackupError> {
    use crate::backup::drive::{DriveCollected, DriveSource, DrivesState, collect_drive};
    use crate::m365::ErrorKind;
    requests.add(1);
    let drive = match tenant.group_drive(&target.graph_id).await {
        Ok(Some(drive)) => drive,
        Ok(None) => return Ok(None),
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    // The drive's own layout puts its files under `files/` (= `FILES_PREFIX`) and its manifest
    // at the top, beside `channels/`.
    let source = DriveSource {
        drive_id: drive.id.clone(),
        prefix: String::new(),
        label: "the team's files".into(),
    };
    let collected = match collect_drive(
        services,
        &crate::storage::scope::SystemScope::worker(target.customer, "drive backup"),
        tenant,
        &source,
        previous.drives.get(&drive.id),
        parent,
        requests,
    )
    .await
    {
        Ok(collected) => collected,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let DriveCollected {
        mut events,
        state,
        mut files,
        mut notes,
    } = collected;
    let channel_sites = channel_sites::collect_channel_sites(
        services, tenant, target, channels, &drive.id, previous, parent, requests,
    )
    .await?;
    events.extend(channel_sites.events);
    files += channel_sites.files;
    notes.extend(channel_sites.notes);
    let mut next = DrivesState::restore(None);
    next.drives.insert(drive.id.clone(), state);
    next.drives.extend(channel_sites.states.drives);
    Ok(Some(TeamFiles {
        events,
        state: serde_json::from_str(&next.to_text()).unwrap_or_default(),
        files,
        notes,
    }))
}

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
    let (stored, entries, parent_point_id) = match parent {
        Some(parent) => (parent.source_state, parent.entries, Some(parent.point.id)),
        None => (None, Vec::new(), None),
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
        channels,
    } = collected;

    // The team site's files (the group's document library, where channel files live) join the
    // same point under `FILES_PREFIX`, with their own drive state.
    let mut events = events;
    let previous_files = crate::backup::drive::DrivesState::restore(
        previous.files.as_ref().map(|v| v.to_string()).as_deref(),
    );
    let parent_id = parent_point_id;
    let (files_state, files_backed_up) = match collect_team_files(
        services,
        &tenant,
        target,
        channels.as_deref(),
        &previous_files,
        parent_id,
        &requests,
    )
    .await?
    {
        Some(files) => {
            report.items_seen += files.files;
            events.extend(files.events);
            notes.extend(files.notes);
            (Some(files.state), true)
        }
        None => (previous.files, false),
    };

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
