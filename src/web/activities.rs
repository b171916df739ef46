//! Activities: every sync, backup, retention, prune and check of the customer, filtered by kind,
//! status and item, sorted and paged in the URL; and one activity's page with its items'
//! outcomes and failures in plain words. Running jobs show a progress bar fed by server-sent
//! events (`progress_events`).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::explain::FailureView;
use super::m365::when;
use super::sorting::{Column, TableSort, column_desc};
use super::{AppState, Chrome, SignedIn, WebError, ok, storage};
use crate::accounts::access::CustomerScope;
use crate::ids::PlanId;
use crate::inventory::organizations;
use crate::jobs::activities::{self, Activity, ActivityOrder, ActivityQuery};
use crate::jobs::backup_check::workload_label;
use crate::jobs::plan_run::ItemOutcome;
use crate::jobs::progress::{self, LiveProgress, Subscription};
use crate::jobs::queue::{self, JobKind, JobStatus};
use crate::plans;
use crate::storage::catalog::Workload;

pub struct ActivityRow {
    /// The activity's own page.
    pub url: String,
    /// Its progress stream, while it is queued or running.
    pub events_url: Option<String>,
    pub what: &'static str,
    pub subject: String,
    pub status: String,
    pub queued: String,
    pub finished: String,
    pub duration: String,
    pub trigger: String,
    pub items: String,
    /// The outcome's first line, and its further lines (a failed backup check names each
    /// damaged pack and the archives it affects).
    pub detail: String,
    pub more: Vec<String>,
    /// A failure, explained.
    pub failure: Option<FailureView>,
}

#[derive(Template)]
#[template(path = "activities.html")]
struct ActivitiesPage {
    chrome: Chrome,
    rows: Vec<ActivityRow>,
    base: String,
    kind: &'static str,
    status: &'static str,
    item: String,
    item_name: Option<String>,
    sort: TableSort,
    page: u64,
    pages: u64,
    total: u64,
}

impl ActivitiesPage {
    fn href(&self, page: u64) -> String {
        self.sort.page_href(page)
    }

    fn filtered(&self) -> bool {
        !self.kind.is_empty() || !self.status.is_empty() || !self.item.is_empty()
    }
}

/// Activities' filters, order and page, in the URL (a plain GET form and links).
#[derive(Deserialize, Default)]
pub struct ActivitiesQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    item: String,
    #[serde(default)]
    page: u64,
}

pub const ACTIVITIES_PAGE_SIZE: u64 = 50;

const COLUMNS: &[Column] = &[
    column_desc("started"),
    super::sorting::column("kind"),
    super::sorting::column("status"),
    column_desc("finished"),
];

fn order_of(sort: &TableSort) -> ActivityOrder {
    match sort.column {
        "kind" => ActivityOrder::Kind,
        "status" => ActivityOrder::Status,
        "finished" => ActivityOrder::Finished,
        _ => ActivityOrder::Queued,
    }
}

/// "3 min 20 s", "1 h 5 min", "12 s".
pub fn duration_words(duration: chrono::Duration) -> String {
    let seconds = duration.num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, (seconds % 3600) / 60),
    }
}

fn items_words(activity: &Activity) -> String {
    let counts = activity.items;
    if counts.recorded == 0 {
        return String::new();
    }
    let mut words = format!("{} of {} backed up", counts.backed_up, counts.recorded);
    if counts.failed > 0 {
        words.push_str(&format!(", {} failed", counts.failed));
    }
    words
}

/// The failure of a job, explained; none when it did not fail.
fn failure_of(job: &crate::jobs::entities::job::Model) -> Option<FailureView> {
    let error = job.error.as_deref()?;
    let kind = JobKind::parse(&job.kind)?;
    if kind == JobKind::DirectorySync {
        return Some(FailureView::of_sync_text(error));
    }
    let retrying = job.status == JobStatus::Queued.as_str();
    Some(FailureView::of_job(kind, error, retrying))
}

pub async fn activities(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    request: &HttpRequest,
) -> Result<HttpResponse, WebError> {
    let query = web::Query::<ActivitiesQuery>::from_query(request.query_string())
        .map_err(|_| WebError::BadRequest("A filter or page number is malformed.".into()))?;
    let item = match query.item.as_str() {
        "" => None,
        text => Some(
            text.parse::<Uuid>()
                .map_err(|_| WebError::BadRequest("The item filter is malformed.".into()))?,
        ),
    };
    let kind = JobKind::parse(&query.kind);
    let status = JobStatus::parse(&query.status);
    let base = format!("/c/{}/activities", scope.id());
    let sort = TableSort::from_query(&base, COLUMNS, request.query_string())
        .keep("kind", kind.map(JobKind::as_str).unwrap_or(""))
        .keep("status", status.map(JobStatus::as_str).unwrap_or(""))
        .keep("item", &query.item);
    let found = activities::activities_page(
        &state.db,
        scope,
        &ActivityQuery {
            kind,
            status,
            item,
            order: order_of(&sort),
            descending: sort.descending,
            page: query.page,
            page_size: ACTIVITIES_PAGE_SIZE,
        },
    )
    .await?;
    let item_name = match item {
        Some(id) => Some(
            plans::item_names(&state.db, scope, &[id])
                .await?
                .remove(&id)
                .unwrap_or_else(|| "an item not in this customer's organizations".into()),
        ),
        None => None,
    };
    let orgs: std::collections::HashMap<Uuid, String> =
        organizations::organizations(&state.db, scope)
            .await?
            .into_iter()
            .map(|o| (o.id, o.display_name))
            .collect();
    let plan_names: std::collections::HashMap<Uuid, String> = plans::list_plans(&state.db, scope)
        .await?
        .into_iter()
        .map(|p| (p.id.0, p.name))
        .collect();
    let now = state.clock.now();
    let rows = found
        .activities
        .into_iter()
        .map(|activity| {
            let j = &activity.job;
            let failure = failure_of(j);
            let text = if failure.is_some() {
                None
            } else {
                j.summary.clone().or(j.progress.clone())
            };
            let (detail, more) = storage::outcome_lines(text);
            let pending = JobStatus::is_pending(&j.status);
            ActivityRow {
                url: format!("{base}/{}", j.id),
                events_url: pending.then(|| format!("{base}/{}/events", j.id)),
                what: JobKind::label(&j.kind),
                subject: if storage::is_check(&j.kind) || j.kind == JobKind::Prune.as_str() {
                    storage::CHECK_SUBJECT.into()
                } else if let Some(plan) = j.plan_id {
                    plan_names
                        .get(&plan)
                        .map(|name| format!("Plan “{name}”"))
                        .unwrap_or_else(|| "Deleted plan".into())
                } else {
                    j.org_id
                        .and_then(|id| orgs.get(&id).cloned())
                        .unwrap_or_else(|| "Removed organization".into())
                },
                queued: when(Some(j.queued_at)),
                finished: if pending {
                    String::new()
                } else {
                    when(j.finished_at)
                },
                duration: activity
                    .duration(now)
                    .map(duration_words)
                    .unwrap_or_default(),
                trigger: activity.trigger.sentence(),
                items: items_words(&activity),
                detail,
                more,
                failure,
                status: j.status.clone(),
            }
        })
        .collect();
    let pages = found.total.div_ceil(ACTIVITIES_PAGE_SIZE).max(1);
    ok(&ActivitiesPage {
        chrome: Chrome::new(signed_in, Some(scope), "activities"),
        rows,
        base,
        kind: kind.map(JobKind::as_str).unwrap_or(""),
        status: status.map(JobStatus::as_str).unwrap_or(""),
        item: item.map(|i| i.to_string()).unwrap_or_default(),
        item_name,
        sort,
        page: found.page,
        pages,
        total: found.total,
    })
}

pub struct ItemOutcomeRow {
    pub name: String,
    /// Activities of this item.
    pub history_url: String,
    pub workload: &'static str,
    pub outcome: &'static str,
    pub status: &'static str,
    pub detail: String,
    pub failure: Option<FailureView>,
    pub finished: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    chrome: Chrome,
    what: &'static str,
    subject: String,
    status: String,
    queued: String,
    started: String,
    finished: String,
    duration: String,
    trigger: String,
    attempts: i32,
    max_attempts: i32,
    progress: String,
    events_url: Option<String>,
    summary: String,
    failure: Option<FailureView>,
    items: Vec<ItemOutcomeRow>,
    back: String,
    plan_url: Option<String>,
    /// Microsoft's throttling of a backup run (none for other kinds).
    throttling: Option<super::overview::ThrottlingCard>,
}

/// A restore's row: it names the restored path (`restore::job`).
fn restored_row(row: crate::jobs::entities::job_item::Model, base: &str) -> ItemOutcomeRow {
    use crate::restore::job::ItemResult;
    let result = ItemResult::parse(&row.status);
    ItemOutcomeRow {
        name: row.workload,
        history_url: base.to_string(),
        workload: "Item",
        outcome: result.map_or("Unknown", ItemResult::label),
        status: result.map_or("", ItemResult::as_str),
        failure: None,
        detail: row.detail,
        finished: when(Some(row.finished_at)),
    }
}

/// One activity with, for a backup, how each item's workload ended; for a restore, each item's
/// result.
pub async fn job_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (customer, id) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let id: Uuid = id.parse().map_err(|_| WebError::NotFound)?;
    let activity = activities::activity(&state.db, &scope, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let now = state.clock.now();
    let duration = activity
        .duration(now)
        .map(duration_words)
        .unwrap_or_default();
    let trigger = activity.trigger.sentence();
    let job = activity.job;
    let plan = match job.plan_id {
        Some(id) => plans::find_plan(&state.db, &scope, PlanId(id)).await.ok(),
        None => None,
    };
    let rows = queue::job_items(&state.db, job.id).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.item_id).collect();
    let names = plans::item_names(&state.db, &scope, &ids).await?;
    let base = format!("/c/{}/activities", scope.id());
    let restore = job.kind == JobKind::Restore.as_str();
    let items = rows
        .into_iter()
        .map(|row| {
            if restore {
                return restored_row(row, &base);
            }
            let outcome = ItemOutcome::parse(&row.status);
            let failed = outcome == Some(ItemOutcome::Failed);
            ItemOutcomeRow {
                name: names
                    .get(&row.item_id)
                    .cloned()
                    .unwrap_or_else(|| "An item no longer in Microsoft 365".into()),
                history_url: format!("{base}?item={}", row.item_id),
                workload: row
                    .workload
                    .parse::<Workload>()
                    .map(workload_label)
                    .unwrap_or("Workload"),
                outcome: outcome.map_or("Unknown", ItemOutcome::label),
                status: outcome.map_or("", ItemOutcome::as_str),
                failure: failed.then(|| FailureView::of_backup_item(&row.detail)),
                detail: row.detail,
                finished: when(Some(row.finished_at)),
            }
        })
        .collect();
    let pending = JobStatus::is_pending(&job.status);
    let throttling = if job.kind == JobKind::PlanRun.as_str() {
        Some(super::overview::job_throttling_card(&state, &scope, job.id).await?)
    } else {
        None
    };
    ok(&JobPage {
        throttling,
        chrome: Chrome::new(&signed_in, Some(&scope), "activities"),
        what: JobKind::label(&job.kind),
        subject: plan
            .as_ref()
            .map_or_else(String::new, |p| format!("Plan “{}”", p.name)),
        plan_url: plan
            .as_ref()
            .map(|p| format!("/c/{}/plans/{}", scope.id(), p.id)),
        queued: when(Some(job.queued_at)),
        started: when(job.started_at),
        finished: if pending {
            String::new()
        } else {
            when(job.finished_at)
        },
        duration,
        trigger,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        events_url: pending.then(|| format!("{base}/{}/events", job.id)),
        failure: failure_of(&job),
        progress: job.progress.unwrap_or_default(),
        summary: job.summary.unwrap_or_default(),
        status: job.status,
        items,
        back: base,
    })
}

/// What one progress event shows.
#[derive(Template, Default)]
#[template(path = "live_progress.html")]
struct LiveFragment {
    finished: bool,
    outcome: String,
    percent: Option<u8>,
    label: String,
    items: String,
    bytes: String,
    current: String,
    throttled: String,
}

impl LiveFragment {
    fn of_live(progress: &LiveProgress, now: chrono::DateTime<chrono::Utc>) -> Self {
        let items = match progress.items_total {
            Some(total) => format!("{} of {total} items", progress.items_done),
            None if progress.items_done > 0 => format!("{} items", progress.items_done),
            None => String::new(),
        };
        let throttled = match progress.throttled_until {
            Some(until) if until > now => format!(
                "Microsoft is throttling this item: Skyvault waits {} and resumes at {}.",
                duration_words(until - now),
                until.format("%H:%M:%S UTC")
            ),
            _ => String::new(),
        };
        LiveFragment {
            percent: Some(progress.percent()),
            label: progress.label.clone(),
            items,
            bytes: if progress.bytes > 0 {
                bytesize::ByteSize::b(progress.bytes).to_string()
            } else {
                String::new()
            },
            current: progress.current.clone().unwrap_or_default(),
            throttled,
            ..LiveFragment::default()
        }
    }

    /// From the job's row: its progress line while it runs, its outcome once it ended.
    fn of_row(job: &crate::jobs::entities::job::Model) -> Self {
        if JobStatus::is_pending(&job.status) {
            return LiveFragment {
                label: job
                    .progress
                    .clone()
                    .unwrap_or_else(|| "Waiting for a worker".into()),
                ..LiveFragment::default()
            };
        }
        let outcome = if job.status == JobStatus::Succeeded.as_str() {
            format!("Succeeded. {}", job.summary.clone().unwrap_or_default())
        } else {
            "Failed: open the activity for what happened and what to do.".into()
        };
        LiveFragment {
            finished: true,
            outcome,
            ..LiveFragment::default()
        }
    }

    /// One server-sent event: each line of the fragment on its own `data:` line.
    fn event(&self, name: &str) -> web::Bytes {
        web::Bytes::from(sse_event(name, &self.render().unwrap_or_default()))
    }

    /// The events that end a stream: the job's status badge (the job page swaps it in place of
    /// "Running"), then its outcome, which closes the stream.
    fn ended(job: &crate::jobs::entities::job::Model) -> web::Bytes {
        let badge = StatusBadge {
            status: job.status.clone(),
        }
        .render()
        .unwrap_or_default();
        let mut text = sse_event("status", &badge);
        text.push_str(&sse_event(
            "done",
            &Self::of_row(job).render().unwrap_or_default(),
        ));
        web::Bytes::from(text)
    }
}

/// A job's status as the badge the job page shows.
#[derive(Template)]
#[template(path = "status_badge.html")]
struct StatusBadge {
    status: String,
}

/// One server-sent event named `name`: each line of `html` on its own `data:` line.
fn sse_event(name: &str, html: &str) -> String {
    let mut text = format!("event: {name}\n");
    for line in html.lines() {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    text
}

/// How long a stream waits for the in-process hub before reading the job's row (which also
/// notices the job's end and a job run by another worker process).
const POLL_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

struct EventStream {
    db: sea_orm::DatabaseConnection,
    clock: crate::clock::SharedClock,
    customer: crate::ids::CustomerId,
    job: Uuid,
    subscription: Subscription,
    last_line: Option<String>,
    done: bool,
}

impl EventStream {
    /// The next event to send, or `None` when the stream is over.
    async fn next_event(&mut self) -> Option<web::Bytes> {
        if self.done {
            return None;
        }
        let wait = tokio::time::timeout(POLL_AFTER, self.subscription.next()).await;
        if let Ok(Some(progress)) = wait {
            return Some(LiveFragment::of_live(&progress, self.clock.now()).event("progress"));
        }
        let row = match progress::job_row(&self.db, self.customer, self.job).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                // The job was deleted with its customer: nothing more to tell.
                self.done = true;
                return None;
            }
            Err(err) => {
                tracing::warn!("progress stream of job {}: {err}", self.job);
                // A comment keeps the connection (and notices a client gone); next poll retries.
                return Some(web::Bytes::from_static(b": database unavailable\n\n"));
            }
        };
        if !JobStatus::is_pending(&row.status) {
            self.done = true;
            return Some(LiveFragment::ended(&row));
        }
        if row.progress != self.last_line {
            self.last_line = row.progress.clone();
            return Some(LiveFragment::of_row(&row).event("progress"));
        }
        // Nothing new: a comment, so a client that went away is noticed by the failed write.
        Some(web::Bytes::from_static(b": waiting\n\n"))
    }
}

/// `GET /c/{customer}/activities/{job}/events`: the job's progress as server-sent events until
/// it ends (then one `done` event). Another customer's job is not found.
pub async fn progress_events(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (customer, id) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let id: Uuid = id.parse().map_err(|_| WebError::NotFound)?;
    let row = progress::job_row(&state.db, scope.id(), id)
        .await?
        .ok_or(WebError::NotFound)?;
    let mut first = Some(if JobStatus::is_pending(&row.status) {
        LiveFragment::of_row(&row).event("progress")
    } else {
        LiveFragment::ended(&row)
    });
    let stream = EventStream {
        db: state.db.clone(),
        clock: state.clock.clone(),
        customer: scope.id(),
        job: id,
        subscription: progress::hub().subscribe(id),
        last_line: row.progress.clone(),
        done: !JobStatus::is_pending(&row.status),
    };
    let events = futures::stream::unfold(stream, move |mut stream| {
        let first = first.take();
        async move {
            let event = match first {
                Some(event) => event,
                None => stream.next_event().await?,
            };
            Some((Ok::<_, actix_web::Error>(event), stream))
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        // Proxies that buffer would hold the events back until the job ends; so would the
        // compression middleware, which leaves a response that names its encoding alone.
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(actix_web::http::header::ContentEncoding::Identity)
        .streaming(events))
}
