//! Backup storage > Search: one form over every backup of the customer (or one archive), full
//! text and fields, answered from the customer's search index. Results are metadata (subject,
//! sender, name, date), which read-only users may see; opening an item goes through the browse
//! and preview pages and their access rules.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use super::forms;
use super::{AppState, Chrome, SignedIn, WebError, ok};
use crate::jobs::backup_check::workload_label;
use crate::restore::search::{self, SearchIndexes, SearchRequest};
use crate::storage::catalog::{ArchiveId, ItemKind};

/// The form as the URL carries it (a GET form: Back and reload show the same results).
#[derive(Deserialize, Default)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    attachments: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    archive: String,
}

/// Item types a person can pick, as the catalog names them.
const KINDS: &[(&str, &str)] = &[
    ("message", "E-mail messages"),
    ("event", "Calendar items"),
    ("contact", "Contacts"),
    ("post", "Group posts"),
    ("file", "Files"),
];

pub struct HitRow {
    pub title: String,
    pub who: String,
    pub when: String,
    pub folder: String,
    pub kind: &'static str,
    pub archive: String,
    pub workload: &'static str,
    pub size: String,
    pub attachments: bool,
    pub points: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    chrome: Chrome,
    action: String,
    storage_url: String,
    params: SearchParams,
    kinds: &'static [(&'static str, &'static str)],
    archives: Vec<(String, String)>,
    asked: bool,
    hits: Vec<HitRow>,
    total: usize,
    shown: usize,
    behind: u64,
    error: Option<String>,
    /// Archives of encrypted plans, which are never indexed nor searched.
    encrypted: usize,
}

/// Turns the form into a request; what a person typed wrong is said in the page.
fn request_of(params: &SearchParams) -> Result<SearchRequest, String> {
    let date = |text: &str, label: &str| -> Result<Option<NaiveDate>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("{label} must be a date like 2026-11-24."))
    };
    let kind = match params.kind.as_str() {
        "" => None,
        code if KINDS.iter().any(|(k, _)| *k == code) => Some(ItemKind::parse(code)),
        _ => return Err("Choose an item type from the list.".into()),
    };
    let archive = match params.archive.trim() {
        "" => None,
        text => Some(ArchiveId(
            text.parse()
                .map_err(|_| "Choose a backup from the list.".to_string())?,
        )),
    };
    let request = SearchRequest {
        text: forms::search_text(&params.q)?,
        subject: forms::search_text(&params.subject)?,
        sender: forms::search_text(&params.from)?,
        recipient: forms::search_text(&params.to)?,
        file_name: forms::search_text(&params.name)?,
        after: date(&params.after, "From date")?,
        before: date(&params.before, "To date")?,
        has_attachments: params.attachments == "1",
        kind,
        archive,
    };
    if let (Some(after), Some(before)) = (request.after, request.before)
        && after > before
    {
        return Err("The from date is after the to date.".into());
    }
    Ok(request)
}

/// GET /c/{customer}/storage/search
pub async fn search_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let scope = signed_in.customer(&state, &id).await?;
    let params = web::Query::<SearchParams>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| WebError::BadRequest("The search form is malformed.".into()))?;
    let (encrypted, archives): (Vec<_>, Vec<_>) =
        crate::storage::catalog::list_archives(&state.db, &scope)
            .await?
            .into_iter()
            .partition(|a| a.encrypted_repository.is_some());
    let mut page = SearchPage {
        chrome: Chrome::new(&signed_in, Some(&scope), "storage"),
        action: format!("/c/{}/storage/search", scope.id()),
        storage_url: format!("/c/{}/storage", scope.id()),
        kinds: KINDS,
        archives: archives
            .iter()
            .map(|a| {
                (
                    a.id.to_string(),
                    format!("{} ({})", a.display_name, workload_label(a.workload)),
                )
            })
            .collect(),
        asked: false,
        hits: Vec::new(),
        total: 0,
        shown: 0,
        behind: 0,
        error: None,
        encrypted: encrypted.len(),
        params,
    };
    match request_of(&page.params) {
        Err(message) => page.error = Some(message),
        Ok(asked) if asked.is_empty() => {}
        Ok(asked) => {
            let indexes = SearchIndexes::new(state.settings.data_dir());
            let results = search::search(&state.storage, &indexes, &scope, &asked)
                .await
                .map_err(WebError::internal)?;
            if results.behind > 0 {
                // Catch up in the background (after a lost index, or a backup whose worker
                // could not index); one update per customer runs at a time.
                let (storage, customer) = (state.storage.clone(), scope.id());
                tokio::spawn(async move {
                    if let Err(err) = search::update_index(&storage, &indexes, customer).await {
                        tracing::warn!(%customer, "search index not updated: {err}");
                    }
                });
            }
            page.asked = true;
            page.total = results.total;
            page.shown = results.hits.len();
            page.behind = results.behind;
            page.hits = results.hits.into_iter().map(hit_row).collect();
        }
    }
    ok(&page)
}

fn hit_row(hit: search::Hit) -> HitRow {
    let entry = &hit.entry;
    let day = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d").to_string();
    let folder = entry
        .path
        .rsplit_once('/')
        .map(|(folder, _)| folder.to_string())
        .unwrap_or_default();
    HitRow {
        title: entry
            .subject
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| entry.name.clone()),
        who: entry.sender.clone().unwrap_or_default(),
        when: entry
            .sent_at
            .or(entry.last_modified)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default(),
        folder,
        kind: KINDS
            .iter()
            .find(|(code, _)| *code == entry.kind.as_str())
            .map_or("Item", |(_, label)| label),
        archive: hit.archive.display_name.clone(),
        workload: workload_label(hit.archive.workload),
        size: bytesize::ByteSize::b(entry.size).to_string(),
        attachments: entry.has_attachments == Some(true),
        points: if hit.oldest.id == hit.newest.id {
            format!("Backup of {}", day(hit.oldest.taken_at))
        } else if hit.current {
            format!("Backups since {}", day(hit.oldest.taken_at))
        } else {
            format!(
                "Backups of {} to {}",
                day(hit.oldest.taken_at),
                day(hit.newest.taken_at)
            )
        },
    }
}
