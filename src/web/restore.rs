//! The restore form: `GET /c/{customer}/backups/{archive}/points/{point}/restore?path=…` shows
//! what was selected and asks where to (the original or another mailbox or drive of the
//! customer's organizations), into which folders and, for files, what to do with names already
//! taken; `POST` of the same URL queues the restore job, writes it to the audit log and sends
//! the browser to the job's page in Activities. Only administrators may restore; read-only users
//! get 403, another customer's ids 404; an encrypted plan's backups ask for its password first.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{AppState, Chrome, SignedIn, WebError, ok, render, see_other};
use crate::accounts::access::CustomerScope;
use crate::accounts::audit;
use crate::ids::ItemId;
use crate::jobs::backup_check::workload_label;
use crate::restore::drive::Collision;
use crate::restore::job::{self, RestoreError, RestoreRequest, TargetChoice};
use crate::restore::mailbox::FolderMode;
use crate::storage::catalog::{Archive, ArchiveId, RecoveryPoint, RecoveryPointId, Workload};

impl From<RestoreError> for WebError {
    fn from(err: RestoreError) -> Self {
        match err {
            RestoreError::NotFound => WebError::NotFound,
            RestoreError::Forbidden => WebError::Forbidden,
            RestoreError::Invalid(message) => WebError::BadRequest(message),
            RestoreError::Database(e) => WebError::internal(e),
            RestoreError::Storage(e) => WebError::internal(e),
        }
    }
}

#[derive(Template)]
#[template(path = "restore_form.html")]
struct RestoreForm {
    chrome: Chrome,
    action: String,
    back: String,
    archive_name: String,
    workload: &'static str,
    is_drive: bool,
    /// What the form says about where files go and what cannot be restored, by workload.
    placement_note: &'static str,
    /// A team's conversations are downloaded, not restored: the link that does it.
    conversations_zip: Option<String>,
    channel_note: &'static str,
    taken_at: String,
    paths: Vec<String>,
    targets: Vec<TargetChoice>,
    chosen_target: String,
    new_folder: String,
    folder_mode: &'static str,
    collision: &'static str,
    error: Option<String>,
}

fn ids(archive: &str, point: &str) -> Result<(ArchiveId, RecoveryPointId), WebError> {
    let archive = archive.parse().map_err(|_| WebError::NotFound)?;
    let point = point.parse().map_err(|_| WebError::NotFound)?;
    Ok((ArchiveId(archive), RecoveryPointId(point)))
}

fn placement_note(workload: Workload) -> &'static str {
    match workload {
        Workload::Site => {
            "Each file goes back into the document library it came from: in another site, into the library of the same name (and the subsite at the same path). Libraries are never created: files of a library the chosen site lacks fail and say so."
        }
        Workload::Team => {
            "Files of a channel go into that channel's folder in the chosen team: the same channel in the original team, the channel of the same name in another team (channels are never created: files of a channel the team lacks fail and say so). Other files go to the same place in the team's library."
        }
        Workload::OneDrive => {
            "Files go into the chosen user's OneDrive, at their original paths or under the new folder."
        }
        _ => "",
    }
}

fn is_drive(workload: Workload) -> bool {
    matches!(
        workload,
        Workload::OneDrive | Workload::Site | Workload::Team
    )
}

/// The default name of a new folder: "Restored 2026-11-30 14:05".
fn restored_folder_name(state: &AppState) -> String {
    format!("Restored {}", state.clock.now().format("%Y-%m-%d %H:%M"))
}

/// Repeated `path` fields, the rest by name (last one wins).
fn paths_of(fields: &[(String, String)]) -> Vec<String> {
    let mut paths: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "path")
        .map(|(_, v)| v.trim_matches('/').to_string())
        .collect();
    paths.dedup();
    paths
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

struct Loaded {
    scope: CustomerScope,
    archive: Archive,
    point: RecoveryPoint,
}

async fn load(
    state: &AppState,
    signed_in: &SignedIn,
    path: (String, String, String),
) -> Result<Loaded, WebError> {
    let (customer, archive, point) = path;
    let scope = signed_in.customer(state, &customer).await?;
    let (archive, point) = ids(&archive, &point)?;
    let (archive, point) = job::scoped_point(&state.db, &scope, archive, point).await?;
    // Read-only users see metadata elsewhere; the restore form itself is for administrators.
    scope.require_change()?;
    Ok(Loaded {
        scope,
        archive,
        point,
    })
}

#[allow(clippy::too_many_arguments)]
async fn form_page(
    state: &AppState,
    signed_in: &SignedIn,
    loaded: &Loaded,
    paths: Vec<String>,
    fields: &[(String, String)],
    error: Option<String>,
) -> Result<RestoreForm, WebError> {
    let targets = job::target_choices(&state.db, &loaded.scope, &loaded.archive).await?;
    let chosen_target = field(fields, "target")
        .map(str::to_string)
        .or_else(|| targets.first().map(|t| t.id.to_string()))
        .unwrap_or_default();
    let base = format!(
        "/c/{}/backups/{}/points/{}",
        loaded.scope.id(),
        loaded.archive.id,
        loaded.point.id
    );
    Ok(RestoreForm {
        chrome: Chrome::new(signed_in, Some(&loaded.scope), "storage"),
        action: format!("{base}/restore"),
        back: base.clone(),
        archive_name: loaded.archive.display_name.clone(),
        workload: workload_label(loaded.archive.workload),
        is_drive: is_drive(loaded.archive.workload),
        placement_note: placement_note(loaded.archive.workload),
        conversations_zip: (loaded.archive.workload == Workload::Team)
            .then(|| format!("{base}/zip?path=channels")),
        channel_note: job::CHANNEL_MESSAGES_NOT_RESTORABLE,
        taken_at: loaded
            .point
            .taken_at
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        paths,
        targets,
        chosen_target,
        new_folder: field(fields, "new_folder")
            .map(str::to_string)
            .unwrap_or_else(|| restored_folder_name(state)),
        folder_mode: match field(fields, "folders") {
            Some("new") => "new",
            _ => "original",
        },
        collision: match field(fields, "collision") {
            Some("skip") => "skip",
            Some("overwrite") => "overwrite",
            _ => "keep_both",
        },
        error,
    })
}

/// `GET …/restore?path=…&path=…`: the form.
pub async fn restore_form(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    request: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let loaded = load(&state, &signed_in, path.into_inner()).await?;
    let here = super::unlock::here(&request);
    if let Some(locked) =
        super::unlock::gate(&state, &signed_in, &loaded.scope, &loaded.archive, &here).await?
    {
        return Ok(locked);
    }
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
    let paths = paths_of(&fields);
    let error = paths
        .is_empty()
        .then(|| "Nothing is selected. Go back and choose the items or folders to restore.".into());
    ok(&form_page(&state, &signed_in, &loaded, paths, &[], error).await?)
}

/// `POST …/restore`: queues the restore and opens its page in Activities.
pub async fn start_restore(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let loaded = load(&state, &signed_in, path.into_inner()).await?;
    // An encrypted plan's backups are restored only by someone who entered its password.
    let back = format!(
        "/c/{}/backups/{}/points/{}",
        loaded.scope.id(),
        loaded.archive.id,
        loaded.point.id
    );
    if let Some(locked) =
        super::unlock::gate(&state, &signed_in, &loaded.scope, &loaded.archive, &back).await?
    {
        return Ok(locked);
    }
    let fields = fields.into_inner();
    let paths = paths_of(&fields);
    let target = field(&fields, "target")
        .and_then(|t| t.parse().ok())
        .map(ItemId);
    let folders = match field(&fields, "folders") {
        Some("new") => FolderMode::NewFolder(
            field(&fields, "new_folder")
                .map(|n| n.trim().to_string())
                .unwrap_or_default(),
        ),
        _ => FolderMode::Original,
    };
    let collision = match field(&fields, "collision") {
        Some("skip") => Collision::Skip,
        Some("overwrite") => Collision::Overwrite,
        _ => Collision::KeepBoth,
    };
    let refused = |message: String| async {
        let page = form_page(
            &state,
            &signed_in,
            &loaded,
            paths.clone(),
            &fields,
            Some(message),
        )
        .await?;
        render(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    let Some(target) = target else {
        return refused("Choose where to restore to.".into()).await;
    };
    let request = RestoreRequest {
        archive: loaded.archive.id,
        point: loaded.point.id,
        paths: paths.clone(),
        target,
        folders,
        collision,
        requested_by: Some(signed_in.access.email.clone()),
    };
    let queued = job::start_restore(
        &state.db,
        state.clock.as_ref(),
        &loaded.scope,
        request.clone(),
    )
    .await;
    let job = match queued {
        Ok(job) => job,
        Err(RestoreError::Invalid(message)) => return refused(message).await,
        Err(RestoreError::NotFound) if !paths.is_empty() => {
            return refused(
                "The chosen target or items are not among this customer's; choose again.".into(),
            )
            .await;
        }
        Err(err) => return Err(err.into()),
    };
    let detail = format!(
        "{} of {} ({} from {}) into item {}; folders: {}; collisions: {}",
        if paths.iter().any(|p| p.is_empty()) {
            "Everything".to_string()
        } else {
            format!("{} selected path(s): {}", paths.len(), paths.join(", "))
        },
        loaded.archive.display_name,
        workload_label(loaded.archive.workload),
        loaded.point.taken_at.format("%Y-%m-%d %H:%M UTC"),
        request.target,
        match &request.folders {
            FolderMode::Original => "original".to_string(),
            FolderMode::NewFolder(name) => format!("new folder “{name}”"),
        },
        request.collision.label(),
    );
    audit::record(
        &state.db,
        state.clock.as_ref(),
        (&signed_in.access).into(),
        audit::Event {
            owner: audit::Owner::Customer(loaded.scope.id()),
            action: "restore_started",
            subject: &loaded.archive.display_name,
            detail,
        },
    )
    .await?;
    Ok(see_other(&format!(
        "/c/{}/activities/{}",
        loaded.scope.id(),
        job.id
    )))
}
