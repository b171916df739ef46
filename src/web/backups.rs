//! Backups in the console: an archive's recovery points (with "the state on a day"), browsing a
//! point, previewing an item, downloading items, folders and mbox files, and revealing the
//! repository password. Handlers are thin: scope the customer, parse, call `restore`, render.
//! Content (previews, downloads, the password) is for administrators and is audited; message
//! bodies are served by their own route with a Content-Security-Policy that lets nothing load,
//! framed in a sandbox that runs no script.

use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use bytesize::ByteSize;
use chrono::NaiveDate;
use serde::Deserialize;

use super::sorting::{self, Column, TableSort};
use super::{AppState, Chrome, SignedIn, WebError, ok, see_other, unlock};
use crate::accounts::access::CustomerScope;
use crate::ids::CustomerId;
use crate::jobs::backup_check::workload_label;
use crate::restore::browse::{self, BrowseRequest, PointView};
use crate::restore::download::{self, Download};
use crate::restore::preview::{self, Body, Preview};
use crate::restore::{self as restore, RestoreError};
use crate::storage::catalog::{ArchiveId, CatalogEntry, ItemOrder, RecoveryPointId};
use crate::storage::{RecoveryPoint, RecoveryPointStatus, StorageError};

/// The Content-Security-Policy of a message body: nothing may load or run (inline styles only),
/// and only the console may frame it.
pub const BODY_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

pub fn archive_url(customer: CustomerId, archive: ArchiveId) -> String {
    format!("/c/{customer}/backups/{archive}")
}

fn point_url(customer: CustomerId, archive: ArchiveId, point: RecoveryPointId) -> String {
    format!("/c/{customer}/backups/{archive}/points/{point}")
}

impl From<RestoreError> for WebError {
    fn from(err: RestoreError) -> Self {
        match err {
            RestoreError::Storage(err) => err.into(),
            RestoreError::Account(err) => err.into(),
            RestoreError::Unsupported(message) => WebError::BadRequest(message),
        }
    }
}

fn parse_id(text: &str) -> Result<uuid::Uuid, WebError> {
    text.parse().map_err(|_| WebError::NotFound)
}

/// The customer, archive and point of a URL, scoped.
async fn scoped(
    state: &AppState,
    signed_in: &SignedIn,
    customer: &str,
) -> Result<CustomerScope, WebError> {
    signed_in.customer(state, customer).await
}

/// Every value of `name` in a query string (`path=a&path=b`).
fn query_values(query: &str, name: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .collect()
}

fn query_value(query: &str, name: &str) -> String {
    query_values(query, name)
        .into_iter()
        .next()
        .unwrap_or_default()
}

// ---- archive page ---------------------------------------------------------------------------

pub struct PointRow {
    pub url: String,
    pub taken: String,
    pub day: String,
    pub items: u64,
    pub failed: u64,
    pub partial: bool,
    pub size: String,
}

impl PointRow {
    fn of(customer: CustomerId, point: &RecoveryPoint) -> Self {
        Self {
            url: point_url(customer, point.archive, point.id),
            taken: super::m365::when(Some(point.taken_at)),
            day: point.taken_at.format("%A").to_string(),
            items: point.item_count,
            failed: point.failed_count,
            partial: point.status == RecoveryPointStatus::Partial,
            size: ByteSize::b(point.bytes_total).to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "backup_archive.html")]
struct ArchivePage {
    chrome: Chrome,
    name: String,
    workload: &'static str,
    storage_url: String,
    action: String,
    day: String,
    newest_day: String,
    oldest_day: String,
    points: Vec<PointRow>,
    notice: Option<(&'static str, String)>,
}

#[derive(Deserialize)]
pub struct ArchiveQuery {
    #[serde(default)]
    day: String,
}

/// An archive's recovery points, newest first; `?day=YYYY-MM-DD` opens the state on that day.
pub async fn archive_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<ArchiveQuery>,
) -> Result<HttpResponse, WebError> {
    let (customer, archive) = path.into_inner();
    let scope = scoped(&state, &signed_in, &customer).await?;
    let archive = ArchiveId(parse_id(&archive)?);
    let history = browse::archive_history(&state.db, &scope, archive).await?;
    let here = unlock::here(&request);
    if let Some(locked) = unlock::gate(&state, &signed_in, &scope, &history.archive, &here).await? {
        return Ok(locked);
    }
    let mut notice = None;
    let day = query.day.trim();
    if !day.is_empty() {
        match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
            Ok(date) => match browse::point_on_day(&state.db, &scope, archive, date).await? {
                Some(point) => return Ok(see_other(&point_url(scope.id(), archive, point.id))),
                None => {
                    notice = Some((
                        "info",
                        format!(
                            "No backup had been taken by the end of {date}. The oldest recovery point is listed last."
                        ),
                    ))
                }
            },
            Err(_) => {
                notice = Some((
                    "error",
                    "Enter the day as a date, like 2026-11-24.".to_string(),
                ))
            }
        }
    }
    let date = |p: Option<&RecoveryPoint>| {
        p.map(|p| p.taken_at.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    ok(&ArchivePage {
        chrome: Chrome::new(&signed_in, Some(&scope), "storage"),
        name: history.archive.display_name.clone(),
        workload: workload_label(history.archive.workload),
        storage_url: format!("/c/{}/storage", scope.id()),
        action: archive_url(scope.id(), archive),
        day: if day.is_empty() {
            date(history.points.first())
        } else {
            day.chars().take(10).collect()
        },
        newest_day: date(history.points.first()),
        oldest_day: date(history.points.last()),
        points: history
            .points
            .iter()
            .map(|p| PointRow::of(scope.id(), p))
            .collect(),
        notice,
    })
}

// ---- browsing a point -----------------------------------------------------------------------

const ITEM_COLUMNS: &[Column] = &[
    sorting::column_desc("date"),
    sorting::column("from"),
    sorting::column("subject"),
    sorting::column_desc("size"),
    sorting::column_desc("attachments"),
    sorting::column("type"),
    sorting::column("name"),
];

fn item_order(code: &str) -> ItemOrder {
    match code {
        "from" => ItemOrder::Sender,
        "subject" => ItemOrder::Subject,
        "size" => ItemOrder::Size,
        "attachments" => ItemOrder::HasAttachments,
        "type" => ItemOrder::Kind,
        "name" => ItemOrder::Name,
        _ => ItemOrder::Date,
    }
}

pub struct FolderLink {
    pub name: String,
    pub url: String,
    pub depth: usize,
    pub current: bool,
}

pub struct ItemRow {
    pub path: String,
    pub title: String,
    pub date: String,
    pub from: String,
    pub size: String,
    pub attachments: bool,
    pub kind: &'static str,
    pub preview_url: String,
    pub download_url: String,
}

#[derive(Template)]
#[template(path = "backup_browse.html")]
struct BrowsePage {
    chrome: Chrome,
    name: String,
    workload: &'static str,
    mail: bool,
    archive_url: String,
    taken: String,
    partial: bool,
    folder: String,
    folders: Vec<FolderLink>,
    top_url: String,
    rows: Vec<ItemRow>,
    total: u64,
    page: u64,
    pages: u64,
    sort: TableSort,
    can_see_content: bool,
    restore_url: String,
    zip_url: String,
    mbox_url: String,
    folder_zip_url: String,
}

fn item_row(base: &str, entry: &CatalogEntry, mail: bool) -> ItemRow {
    let encoded =
        |path: &str| url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
    let date = entry.sent_at.or(entry.last_modified);
    ItemRow {
        title: if mail {
            entry.subject.clone().unwrap_or_else(|| entry.name.clone())
        } else {
            entry.name.clone()
        },
        date: date
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default(),
        from: entry.sender.clone().unwrap_or_default(),
        size: ByteSize::b(entry.size).to_string(),
        attachments: entry.has_attachments.unwrap_or(false),
        kind: preview::kind_words(entry),
        preview_url: format!("{base}/preview?path={}", encoded(&entry.path)),
        download_url: format!("{base}/download?path={}", encoded(&entry.path)),
        path: entry.path.clone(),
    }
}

/// A recovery point at a folder: the folder tree and a page of the folder's items.
pub async fn point_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let (customer, archive, point) = path.into_inner();
    let scope = scoped(&state, &signed_in, &customer).await?;
    let (archive, point) = (
        ArchiveId(parse_id(&archive)?),
        RecoveryPointId(parse_id(&point)?),
    );
    let found = crate::storage::catalog::find_archive(&state.db, &scope, archive).await?;
    if let Some(locked) =
        unlock::gate(&state, &signed_in, &scope, &found, &unlock::here(&req)).await?
    {
        return Ok(locked);
    }
    let query = req.query_string();
    let folder = query_value(query, "folder");
    let base = point_url(scope.id(), archive, point);
    let sort = TableSort::from_query(base.clone(), ITEM_COLUMNS, query).keep("folder", &folder);
    let page = query_value(query, "page")
        .parse::<u64>()
        .unwrap_or(0)
        .min(1 << 40);
    let view = browse::open_point(
        &state.db,
        &scope,
        archive,
        point,
        &BrowseRequest {
            folder,
            order: item_order(sort.column),
            descending: sort.descending,
            page,
        },
    )
    .await?;
    ok(&browse_page(&signed_in, &scope, &base, sort, view))
}

fn browse_page(
    signed_in: &SignedIn,
    scope: &CustomerScope,
    base: &str,
    sort: TableSort,
    view: PointView,
) -> BrowsePage {
    let mail = browse::is_mail(view.archive.workload);
    let folder_url = |folder: &str| {
        format!(
            "{base}?folder={}",
            url::form_urlencoded::byte_serialize(folder.as_bytes()).collect::<String>()
        )
    };
    let encoded_folder: String =
        url::form_urlencoded::byte_serialize(view.folder.as_bytes()).collect();
    BrowsePage {
        chrome: Chrome::new(signed_in, Some(scope), "storage"),
        name: view.archive.display_name.clone(),
        workload: workload_label(view.archive.workload),
        mail,
        archive_url: archive_url(scope.id(), view.archive.id),
        taken: super::m365::when(Some(view.point.taken_at)),
        partial: view.point.status == RecoveryPointStatus::Partial,
        folders: view
            .folders
            .iter()
            .map(|f| FolderLink {
                name: f.name.clone(),
                url: folder_url(&f.path),
                depth: f.depth,
                current: f.path == view.folder,
            })
            .collect(),
        top_url: base.to_string(),
        rows: view
            .page
            .items
            .iter()
            .map(|e| item_row(base, e, mail))
            .collect(),
        total: view.page.total,
        page: view.page_index,
        pages: view.pages,
        sort,
        can_see_content: scope.can_change(),
        restore_url: format!("{base}/restore"),
        zip_url: format!("{base}/zip"),
        mbox_url: format!("{base}/mbox?folder={encoded_folder}"),
        folder_zip_url: format!("{base}/zip?path={encoded_folder}"),
        folder: view.folder,
    }
}

// ---- preview --------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "backup_preview.html")]
struct PreviewPage {
    chrome: Chrome,
    name: String,
    folder_url: String,
    preview: Preview,
    body_url: String,
    download_url: String,
    size: String,
}

#[derive(Deserialize)]
pub struct PathQuery {
    #[serde(default)]
    path: String,
}

/// What a content route reads: the scope, the archive and point of its URL, the archive's name.
type Content = (CustomerScope, ArchiveId, RecoveryPointId, String);

/// Checks the point belongs to the archive of the URL and the user may read content; an
/// encrypted plan's archive not unlocked in this session answers with the password form (`Err`),
/// which leads back to the point's page.
async fn content_scope(
    state: &AppState,
    signed_in: &SignedIn,
    ids: (String, String, String),
) -> Result<Result<Content, HttpResponse>, WebError> {
    let (customer, archive, point) = ids;
    let scope = scoped(state, signed_in, &customer).await?;
    let (archive, point) = (
        ArchiveId(parse_id(&archive)?),
        RecoveryPointId(parse_id(&point)?),
    );
    let found = crate::storage::catalog::find_recovery_point(&state.db, &scope, point).await?;
    if found.archive != archive {
        return Err(WebError::NotFound);
    }
    let archive_model = crate::storage::catalog::find_archive(&state.db, &scope, archive).await?;
    restore::require_content_access(&scope)?;
    let next = point_url(scope.id(), archive, point);
    if let Some(locked) = unlock::gate(state, signed_in, &scope, &archive_model, &next).await? {
        return Ok(Err(locked));
    }
    Ok(Ok((scope, archive, point, archive_model.display_name)))
}

/// A message's headers, body and attachments; a calendar item, contact or thread; a file's
/// details. Audited.
pub async fn preview_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    query: web::Query<PathQuery>,
) -> Result<HttpResponse, WebError> {
    let (scope, archive, point, name) =
        match content_scope(&state, &signed_in, path.into_inner()).await? {
            Ok(found) => found,
            Err(locked) => return Ok(locked),
        };
    let preview = preview::preview(&state.storage, &scope, point, &query.path).await?;
    restore::audit_content(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        &scope,
        "backup_previewed",
        &name,
        format!("{} in the recovery point {point}", preview.entry.path),
    )
    .await?;
    let base = point_url(scope.id(), archive, point);
    let encoded: String =
        url::form_urlencoded::byte_serialize(preview.entry.path.as_bytes()).collect();
    let folder = preview
        .entry
        .path
        .rsplit_once('/')
        .map_or("", |(folder, _)| folder);
    ok(&PreviewPage {
        chrome: Chrome::new(&signed_in, Some(&scope), "storage"),
        name,
        folder_url: format!(
            "{base}?folder={}",
            url::form_urlencoded::byte_serialize(folder.as_bytes()).collect::<String>()
        ),
        body_url: format!("{base}/body?path={encoded}"),
        download_url: format!("{base}/download?path={encoded}"),
        size: ByteSize::b(preview.entry.size).to_string(),
        preview,
    })
}

/// The cleaned HTML body of a message, served under a CSP that lets nothing load, for the
/// sandboxed frame of the preview page.
pub async fn body(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    query: web::Query<PathQuery>,
) -> Result<HttpResponse, WebError> {
    let (scope, _, point, _) = match content_scope(&state, &signed_in, path.into_inner()).await? {
        Ok(found) => found,
        Err(locked) => return Ok(locked),
    };
    let html = preview::sanitized_body(&state.storage, &scope, point, &query.path).await?;
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><base target=\"_blank\">\
         <style>body{{font:14px/1.5 system-ui,sans-serif;margin:12px;color:#1f2933;word-wrap:break-word}}\
         img{{max-width:100%}}</style></head><body>{html}</body></html>"
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, BODY_CSP))
        .insert_header((header::X_FRAME_OPTIONS, "SAMEORIGIN"))
        .body(page))
}

// ---- downloads ------------------------------------------------------------------------------

fn attachment(download: Download) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(download.content_type)
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(download.file_name)],
        })
        .streaming(download.stream)
}

async fn audit_download(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    name: &str,
    download: &Download,
    point: RecoveryPointId,
) -> Result<(), WebError> {
    restore::audit_content(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        scope,
        "backup_downloaded",
        name,
        format!("{} from the recovery point {point}", download.description),
    )
    .await?;
    Ok(())
}

/// One item as stored (a message as its original `.eml`). Audited.
pub async fn download_item(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    query: web::Query<PathQuery>,
) -> Result<HttpResponse, WebError> {
    let (scope, _, point, name) = match content_scope(&state, &signed_in, path.into_inner()).await?
    {
        Ok(found) => found,
        Err(locked) => return Ok(locked),
    };
    let download = download::item(&state.storage, &scope, point, &query.path).await?;
    audit_download(&state, &signed_in, &scope, &name, &download, point).await?;
    Ok(attachment(download))
}

/// The selected items and folders (`path=…&path=…`) as a zip. Audited.
pub async fn download_zip(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let (scope, _, point, name) = match content_scope(&state, &signed_in, path.into_inner()).await?
    {
        Ok(found) => found,
        Err(locked) => return Ok(locked),
    };
    let paths = query_values(req.query_string(), "path");
    if paths.is_empty() {
        return Err(WebError::BadRequest(
            "Select at least one item or folder to download.".into(),
        ));
    }
    let download = download::selection_zip(&state.storage, &scope, point, &paths, &name)
        .await
        .map_err(invalid_as_bad_request)?;
    audit_download(&state, &signed_in, &scope, &name, &download, point).await?;
    Ok(attachment(download))
}

#[derive(Deserialize)]
pub struct FolderQuery {
    #[serde(default)]
    folder: String,
}

/// A mailbox folder's messages as an mbox file in a zip. Audited.
pub async fn download_mbox(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    query: web::Query<FolderQuery>,
) -> Result<HttpResponse, WebError> {
    let (scope, _, point, name) = match content_scope(&state, &signed_in, path.into_inner()).await?
    {
        Ok(found) => found,
        Err(locked) => return Ok(locked),
    };
    let download = download::folder_mbox(&state.storage, &scope, point, &query.folder)
        .await
        .map_err(invalid_as_bad_request)?;
    audit_download(&state, &signed_in, &scope, &name, &download, point).await?;
    Ok(attachment(download))
}

fn invalid_as_bad_request(err: StorageError) -> WebError {
    match err {
        StorageError::Invalid(message) => WebError::BadRequest(message),
        other => other.into(),
    }
}

// ---- repository password --------------------------------------------------------------------

#[derive(Template)]
#[template(path = "backup_password.html")]
struct PasswordPage {
    chrome: Chrome,
    action: String,
    storage_url: String,
    revealed: Option<download::RepositoryAccess>,
}

/// The page that offers to reveal the repository password (administrators only).
pub async fn password_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    customer: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let scope = scoped(&state, &signed_in, &customer).await?;
    restore::require_content_access(&scope)?;
    ok(&PasswordPage {
        chrome: Chrome::new(&signed_in, Some(&scope), "storage"),
        action: format!("/c/{}/backups/repository-password", scope.id()),
        storage_url: format!("/c/{}/storage", scope.id()),
        revealed: None,
    })
}

/// Reveals the repository password with the `restic` commands that use it. Audited.
pub async fn reveal_password(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    customer: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let scope = scoped(&state, &signed_in, &customer).await?;
    restore::require_content_access(&scope)?;
    let revealed =
        download::repository_access(&state.storage, &scope, signed_in.access.is_partner()).await?;
    restore::audit_content(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        &scope,
        "repository_password_revealed",
        &scope.customer().name,
        "The repository password was shown".into(),
    )
    .await?;
    ok(&PasswordPage {
        chrome: Chrome::new(&signed_in, Some(&scope), "storage"),
        action: format!("/c/{}/backups/repository-password", scope.id()),
        storage_url: format!("/c/{}/storage", scope.id()),
        revealed: Some(revealed),
    })
}
