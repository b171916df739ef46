//! The one error type of backup storage. Every variant says whether retrying the same operation
//! later can help, so the job queue knows whether to reschedule or to raise an alert.
//! This module never formats a repository password or a storage secret into a message.

use rustic_core::RusticError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The repository or its backend failed (I/O, network, S3 answer). Usually transient.
    #[error("backup repository error: {message}")]
    Repository { message: String, retryable: bool },
    /// The catalog database failed.
    #[error("catalog database error: {0}")]
    Catalog(#[from] sea_orm::DbErr),
    /// The repository password stored in the catalog does not open with this master key.
    #[error(
        "the repository password of customer {customer} cannot be unsealed with this master key"
    )]
    Unseal { customer: String },
    /// The storage location setting is malformed.
    #[error("invalid storage location `{location}`: {reason}")]
    Location { location: String, reason: String },
    /// An archive, recovery point or item that was asked for does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// The caller asked for something contradictory (e.g. an empty retention rule).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A blocking task was cancelled or panicked; the repository is untouched or still valid.
    #[error("storage task did not finish: {0}")]
    Task(String),
    /// Another process holds a conflicting repository lock (a prune, or backups while a prune
    /// waits), still after waiting. Retrying later succeeds once it is released or stale.
    #[error("the backup repository is locked: {holder}")]
    Locked { holder: String },
    /// Local I/O outside the repository (temporary spool files, zip streams).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    /// Whether running the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Repository { retryable, .. } => *retryable,
            Self::Catalog(_) | Self::Task(_) | Self::Io(_) | Self::Locked { .. } => true,
            Self::Unseal { .. }
            | Self::Location { .. }
            | Self::NotFound { .. }
            | Self::Invalid(_) => false,
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }
}

impl From<Box<RusticError>> for StorageError {
    fn from(err: Box<RusticError>) -> Self {
        // rustic_core's own classification: backend and I/O trouble is worth retrying, a broken
        // password or repository is not.
        // rustic_core exposes the kind only through its debug form.
        let debug = format!("{err:?}");
        let retryable = !err.is_incorrect_password()
            && (debug.contains("kind: Backend") || debug.contains("kind: InputOutput"));
        Self::Repository {
            message: err.display_log(),
            retryable,
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;
