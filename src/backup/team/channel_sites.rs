//! The files of a team's private and shared channels. Each such channel has a SharePoint site
//! of its own: its `filesFolder` is in that site's library, not in the team's, so the team's
//! library alone misses them. Each library joins the team's point whole, under
//!
//! ```text
//! channel-sites/{channel name} ({hash of its id})/files/…
//!                                                /drive-items.jsonl
//! ```
//!
//! named like the channel's conversations, with its own drive state (by drive id) beside the
//! team library's. A shared channel hosted by another organization is that organization's to
//! back up; a channel whose site Microsoft has not made yet has no files.

use super::channels::{channel_folder, hosted_elsewhere};
use crate::backup::drive::{DriveCollected, DriveSource, DrivesState, collect_drive};
use crate::backup::{BackupError, BackupServices, BackupTarget, RequestCounter};
use crate::m365::{Channel, ChannelKind, ErrorKind, TenantClient};
use crate::storage::{RecoveryPointId, SourceEvent};

/// Where the channels' own libraries go in a team's archive.
pub const CHANNEL_SITES_PREFIX: &str = "channel-sites";

/// What the channel sites contributed to the team's point.
#[derive(Default)]
pub(super) struct ChannelSites {
    pub events: Vec<SourceEvent>,
    /// Each library's state, to keep beside the team library's (by drive id).
    pub states: DrivesState,
    pub files: u64,
    pub notes: Vec<String>,
}

/// Collects the library of every private and shared channel of the team whose files are not in
/// `team_drive` (the team's own library, backed up already). `channels` is the team's channel
/// list as the conversations collector read it, `None` when it could not be listed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn collect_channel_sites(
    services: &BackupServices,
    tenant: &TenantClient,
    target: &BackupTarget,
    channels: Option<&[Channel]>,
    team_drive: &str,
    previous: &DrivesState,
    parent: Option<RecoveryPointId>,
    requests: &RequestCounter,
) -> Result<ChannelSites, BackupError> {
    let mut collected = ChannelSites::default();
    let Some(channels) = channels else {
        let reason = "the team's channels could not be listed".to_string();
        collected.notes.push(
            "The private and shared channels could not be listed; their files were kept from the previous backup.".into(),
        );
        collected.events.push(SourceEvent::Unlisted {
            prefix: CHANNEL_SITES_PREFIX.into(),
            reason,
        });
        return Ok(collected);
    };
    let scope = crate::storage::scope::SystemScope::worker(target.customer, "drive backup");
    for channel in channels {
        if !matches!(channel.kind(), ChannelKind::Private | ChannelKind::Shared)
            || hosted_elsewhere(channel, tenant)
        {
            continue;
        }
        let name = channel.display_name.as_deref().unwrap_or("(unnamed)");
        let prefix = format!("{CHANNEL_SITES_PREFIX}/{}", channel_folder(channel));
        requests.add(1);
        let folder = match tenant
            .channel_files_folder(&target.graph_id, &channel.id)
            .await
        {
            Ok(Some(folder)) => folder,
            Ok(None) => continue,
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(err) => {
                let reason = crate::backup::drive::plain_drive_error(&err);
                collected.notes.push(format!(
                    "The files of the {name} channel could not be found ({reason}); they were kept from the previous backup."
                ));
                collected
                    .events
                    .push(SourceEvent::Unlisted { prefix, reason });
                continue;
            }
        };
        let Some(drive_id) = folder.parent_reference.and_then(|p| p.drive_id) else {
            continue;
        };
        if drive_id == team_drive {
            continue;
        }
        let source = DriveSource {
            drive_id: drive_id.clone(),
            prefix,
            label: format!("The files of the {name} channel"),
        };
        let DriveCollected {
            events,
            state,
            files,
            notes,
        } = match collect_drive(
            services,
            &scope,
            tenant,
            &source,
            previous.drives.get(&drive_id),
            parent,
            requests,
        )
        .await
        {
            Ok(collected) => collected,
            // The channel (and its site) was deleted during the backup.
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(err) => return Err(err.into()),
        };
        collected.events.extend(events);
        collected.states.drives.insert(drive_id, state);
        collected.files += files;
        collected.notes.extend(notes);
    }
    Ok(collected)
}
