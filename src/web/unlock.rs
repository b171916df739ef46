//! Backups of a plan with a customer encryption password: before any page shows or reads an
//! archive in such a plan's repository (its points, browse, preview, download, restore), the
//! signed-in user enters the plan's password. It is compared in constant time with the sealed
//! one and, when right, remembered in the user's session for 15 minutes for that repository
//! only. Wrong passwords are throttled like sign-ins (per user and repository, and per address)
//! and every attempt is written to the customer's audit log.
//!
//! The session holds only which repositories are unlocked until when, never a password.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Duration, Utc};

use super::{AppState, Chrome, SignedIn, WebError, see_other};
use crate::accounts::access::CustomerScope;
use crate::accounts::{AccountError, audit, throttle};
use crate::jobs::backup_check::workload_label;
use crate::storage::catalog::{self, Archive, ArchiveId, EncryptedRepositoryId};

/// How long an entered password opens its repository's backups in one session.
pub const UNLOCK_MINUTES: i64 = 15;
const SESSION_KEY: &str = "unlocked_repositories";
/// Longer than any password Skyvault accepts; a longer answer is refused without a compare.
const MAX_ANSWER_BYTES: usize = 4096;

pub const UNLOCKED_ACTION: &str = "encrypted_backups_unlocked";
pub const REFUSED_ACTION: &str = "encrypted_backups_unlock_refused";

/// Repository id → unlocked until (Unix seconds).
type Unlocked = HashMap<String, i64>;

fn unlocked(session: &Session) -> Unlocked {
    session
        .get::<Unlocked>(SESSION_KEY)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Whether the session has unlocked repository `id` and it has not expired.
pub fn is_unlocked(session: &Session, now: DateTime<Utc>, id: EncryptedRepositoryId) -> bool {
    unlocked(session)
        .get(&id.to_string())
        .is_some_and(|until| *until > now.timestamp())
}

fn remember(session: &Session, now: DateTime<Utc>, id: EncryptedRepositoryId) {
    let mut map = unlocked(session);
    map.retain(|_, until| *until > now.timestamp());
    map.insert(
        id.to_string(),
        (now + Duration::minutes(UNLOCK_MINUTES)).timestamp(),
    );
    // A session that cannot be written only asks for the password again.
    let _ = session.insert(SESSION_KEY, map);
}

#[derive(Template)]
#[template(path = "backup_unlock.html")]
struct UnlockPage {
    chrome: Chrome,
    name: String,
    workload: &'static str,
    plan: String,
    storage_url: String,
    action: String,
    next: String,
    minutes: i64,
    error: Option<String>,
}

fn archive_base(scope: &CustomerScope, archive: ArchiveId) -> String {
    format!("/c/{}/backups/{archive}", scope.id())
}

/// Only an address inside this archive's pages is followed after unlocking (never another site
/// or another customer's page).
fn safe_next(scope: &CustomerScope, archive: ArchiveId, next: &str) -> String {
    inside_or_base(&archive_base(scope, archive), next)
}

fn inside_or_base(base: &str, next: &str) -> String {
    let inside = next
        .strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'));
    if inside && !next.contains("//") && !next.contains('\\') && !next.chars().any(char::is_control)
    {
        next.to_string()
    } else {
        base.to_string()
    }
}

async fn page(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    archive: &Archive,
    id: EncryptedRepositoryId,
    next: &str,
    error: Option<String>,
) -> Result<UnlockPage, WebError> {
    Ok(UnlockPage {
        chrome: Chrome::new(signed_in, Some(scope), "storage"),
        name: archive.display_name.clone(),
        workload: workload_label(archive.workload),
        plan: state
            .storage
            .encrypted_repository_plan_name(scope, id)
            .await?,
        storage_url: format!("/c/{}/storage", scope.id()),
        action: format!("{}/unlock", archive_base(scope, archive.id)),
        next: safe_next(scope, archive.id, next),
        minutes: UNLOCK_MINUTES,
        error,
    })
}

fn respond(
    status: StatusCode,
    code: &'static str,
    page: &UnlockPage,
) -> Result<HttpResponse, WebError> {
    let mut response = super::render(status, page)?;
    response.headers_mut().insert(
        HeaderName::from_static("x-skyvault-error"),
        HeaderValue::from_static(code),
    );
    Ok(response)
}

/// The gate every reading page of an archive passes: `None` when the archive is not encrypted or
/// this session unlocked its repository; otherwise the password form (403), which sends the
/// user back to `next` (this page) once the password is right.
pub async fn gate(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    archive: &Archive,
    next: &str,
) -> Result<Option<HttpResponse>, WebError> {
    let Some(id) = archive.encrypted_repository else {
        return Ok(None);
    };
    if is_unlocked(&signed_in.session, state.clock.now(), id) {
        return Ok(None);
    }
    let page = page(state, signed_in, scope, archive, id, next, None).await?;
    respond(StatusCode::FORBIDDEN, "backups_locked", &page).map(Some)
}

/// The address of the request, path and query, for `next`.
pub fn here(request: &HttpRequest) -> String {
    match request.query_string() {
        "" => request.path().to_string(),
        query => format!("{}?{query}", request.path()),
    }
}

#[derive(serde::Deserialize)]
pub struct UnlockForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /c/{customer}/backups/{archive}/unlock`: checks the plan's password.
pub async fn unlock(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<UnlockForm>,
) -> Result<HttpResponse, WebError> {
    let (customer, archive) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let archive = ArchiveId(archive.parse().map_err(|_| WebError::NotFound)?);
    let archive = catalog::find_archive(&state.db, &scope, archive).await?;
    let next = safe_next(&scope, archive.id, &form.next);
    let Some(id) = archive.encrypted_repository else {
        return Ok(see_other(&next));
    };
    let account = format!("unlock:{}:{}", signed_in.access.user_id.0, id);
    let address = format!(
        "unlock:{}",
        super::client_address(&request).unwrap_or_default()
    );
    let clock = state.clock.as_ref();
    if let Err(err) = throttle::check(&state.db, clock, &account, &address).await {
        return match err {
            AccountError::Throttled { minutes } => {
                let message = format!(
                    "Too many wrong passwords. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                );
                let page = page(
                    &state,
                    &signed_in,
                    &scope,
                    &archive,
                    id,
                    &next,
                    Some(message),
                )
                .await?;
                respond(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", &page)
            }
            other => Err(other.into()),
        };
    }
    let answer = form.password.as_str();
    let right = answer.len() <= MAX_ANSWER_BYTES
        && state
            .storage
            .encrypted_password_matches(&scope, id, answer)
            .await?;
    let plan = state
        .storage
        .encrypted_repository_plan_name(&scope, id)
        .await?;
    audit::record(
        &state.db,
        clock,
        audit::Actor::from(&signed_in.access),
        audit::Event {
            owner: audit::Owner::Customer(scope.id()),
            action: if right {
                UNLOCKED_ACTION
            } else {
                REFUSED_ACTION
            },
            subject: &archive.display_name,
            detail: format!("backups of the encrypted plan “{plan}”"),
        },
    )
    .await?;
    if right {
        remember(&signed_in.session, clock.now(), id);
        return Ok(see_other(&next));
    }
    throttle::record_failure(&state.db, clock, &account, &address).await?;
    let page = page(
        &state,
        &signed_in,
        &scope,
        &archive,
        id,
        &next,
        Some("That is not this plan's encryption password.".into()),
    )
    .await?;
    respond(StatusCode::UNPROCESSABLE_ENTITY, "wrong_password", &page)
}

#[cfg(test)]
mod tests {
    use super::inside_or_base;

    #[test]
    fn only_pages_of_the_archive_are_followed_after_unlocking() {
        let base = "/c/1/backups/2";
        for inside in [
            base,
            "/c/1/backups/2?day=2026-11-24",
            "/c/1/backups/2/points/3?folder=Inbox",
        ] {
            assert_eq!(inside_or_base(base, inside), inside);
        }
        for outside in [
            "",
            "https://evil.example/",
            "//evil.example/c/1/backups/2",
            "/c/1/backups/23",
            "/c/1/backups/2//evil.example",
            "/c/1/backups/2/\\evil",
            "/c/9/backups/2",
            "/c/1/backups/2/\r\nSet-Cookie: x",
        ] {
            assert_eq!(inside_or_base(base, outside), base, "{outside:?}");
        }
    }
}
