//! Getting backups back: browsing a recovery point, previewing an item's content, downloading it,
//! and (in the restore-job modules) writing it back into Microsoft 365. Every read takes a tenant
//! scope (in the console, the signed-in user's [`CustomerScope`]), so another customer's ids read
//! nothing. Showing or handing out content is for administrators ([`require_content_access`]) and
//! is written to the audit log ([`audit_content`]); the web layer does both before it calls here.

pub mod browse;
pub mod download;
pub mod drive;
pub mod job;
pub mod mailbox;
pub mod place;
pub mod preview;
pub mod search;

use crate::accounts::AccountError;
use crate::accounts::access::{Access, CustomerScope};
use crate::accounts::audit::{self, Actor, Event, Owner};
use crate::clock::Clock;
use crate::storage::StorageError;

/// What can go wrong getting a backup back.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The item is not of a kind this action handles (a preview of a zip, …).
    #[error("{0}")]
    Unsupported(String),
}

pub type RestoreResult<T> = Result<T, RestoreError>;

/// Content (a message body, a file's bytes, the repository password) is for administrators of
/// the customer or its partners; read-only users see metadata only.
pub fn require_content_access(scope: &CustomerScope) -> Result<(), AccountError> {
    scope.require_change()
}

/// Writes who saw or took which content to the customer's audit log.
pub async fn audit_content(
    db: &sea_orm::DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    action: &'static str,
    subject: &str,
    detail: String,
) -> Result<(), AccountError> {
    audit::record(
        db,
        clock,
        Actor::from(access),
        Event {
            owner: Owner::Customer(scope.id()),
            action,
            subject,
            detail,
        },
    )
    .await
}
