//! The drive runners: a user's OneDrive, and a SharePoint site (every document library of the
//! site and of its subsites, plus its lists as their items' JSON), which is also how a Microsoft
//! 365 group's site is backed up. Both are built on `collect_drive`, which backs up one drive
//! under a path prefix; the team runner uses it for a team's channel files.
//!
//! Archive layout (paths under the workload's root):
//! - OneDrive: `files/<the drive's folders and files>` and `drive-items.jsonl`, the manifest
//!   of every item (exact names, authors, dates, eTag/cTag, hashes);
//! - site: `libraries/<library>/files/...` with `libraries/<library>/drive-items.jsonl`,
//!   `lists/<list>/<item id>.json`, and the same under `subsites/<subsite path>/` for every
//!   subsite.

pub(crate) mod collect;
mod paths;
mod site;
pub(crate) mod state;

use futures::future::BoxFuture;

use crate::m365::{ErrorKind, Resource};
use crate::storage::catalog::Workload;
use crate::storage::{FailedItem, SourceState, ingest};

pub(crate) use self::collect::{DriveCollected, DriveSource, collect_drive, plain_drive_error};
pub use self::site::SiteRunner;
pub(crate) use self::state::DrivesState;
/// The archive layout's names, which a restore reads back to find where a file came from.
pub(crate) use self::{paths::name_component, site::site_prefix};

use super::{
    BackupError, BackupReport, BackupServices, BackupTarget, Progress, ProgressSink,
    RequestCounter, Runner,
};

/// Backs up a user's OneDrive.
pub struct OneDriveRunner;

impl Runner for OneDriveRunner {
    fn workload(&self) -> Workload {
        Workload::OneDrive
    }

    fn run<'a>(
        &'a self,
        services: &'a BackupServices,
        target: &'a BackupTarget,
        progress: &'a dyn ProgressSink,
    ) -> BoxFuture<'a, Result<BackupReport, BackupError>> {
        Box::pin(back_up_onedrive(services, target, progress))
    }
}

fn no_onedrive() -> BackupError {
    BackupError::Unavailable(
        "This user has no OneDrive (unlicensed, never signed in to OneDrive, or deleted).".into(),
    )
}

async fn back_up_onedrive(
    services: &BackupServices,
    target: &BackupTarget,
    progress: &dyn ProgressSink,
) -> Result<BackupReport, BackupError> {
    let tenant = services.graph.tenant(target.tenant);
    let requests = RequestCounter::default();
    requests.add(1);
    let drive = match tenant.user_drive(&target.graph_id).await {
        Ok(Some(drive)) => drive,
        Ok(None) => return Err(no_onedrive()),
        Err(err) if err.kind() == ErrorKind::NotFound => return Err(no_onedrive()),
        Err(err) => return Err(err.into()),
    };
    let parent = ingest::parent_point(&services.storage, &super::storage_request(target)).await?;
    let (stored, parent_id) = match &parent {
        Some(parent) => (parent.source_state.as_deref(), Some(parent.point.id)),
        None => (None, None),
    };
    let previous = DrivesState::restore(stored);
    let mut report = Progress {
        current: Some("OneDrive".into()),
        throttled_until: services.graph.paused_until(&Resource::Files {
            tenant: target.tenant,
        }),
        ..Progress::default()
    };
    progress.report(&report);
    let source = DriveSource {
        drive_id: drive.id.clone(),
        prefix: String::new(),
        label: "OneDrive".into(),
    };
    let collected = match collect_drive(
        services,
        &crate::storage::scope::SystemScope::worker(target.customer, "drive backup"),
        &tenant,
        &source,
        previous.drives.get(&drive.id),
        parent_id,
        &requests,
    )
    .await
    {
        Ok(collected) => collected,
        Err(err) if err.kind() == ErrorKind::NotFound => return Err(no_onedrive()),
        Err(err) => return Err(err.into()),
    };
    let DriveCollected {
        events,
        state,
        files,
        notes,
    } = collected;
    let mut next = DrivesState::restore(None);
    next.drives.insert(drive.id.clone(), state);
    report.items_seen = files;
    report.items_total = Some(files);
    report.current = None;
    progress.report(&report);
    let mut written = super::write_point(
        services,
        target,
        events,
        finish_state(next),
        report,
        progress,
        &requests,
    )
    .await?;
    written.notes.extend(notes);
    Ok(written)
}

/// The state to store: a file that failed needs no older link, since the manifest keeps it with
/// its new key and the next run, not finding that key in the point, fetches it again.
pub(crate) fn finish_state(state: DrivesState) -> SourceState {
    Box::new(move |_failed: &[FailedItem]| Some(state.to_text()))
}
