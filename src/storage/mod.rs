//! Backup storage: everything Skyvault backs up lands in a restic repository (one per customer)
//! written through rustic_core, so anyone with the repository password can list, check and restore
//! it with the `restic` tool. Beside it, the catalog in the database makes browsing and searching
//! fast without opening packs.
//!
//! It knows nothing of actix-web or of the job queue: jobs call the async functions here and record
//! the result structs they return. It never blocks the async runtime (rustic_core runs on blocking
//! threads) and never lets a failed or half-made backup look whole.

pub mod catalog;
pub mod error;
pub mod ingest;
pub mod location;
pub mod lock;
pub mod read;
pub mod repository;
pub mod retention;
pub mod scope;
mod sealed;
mod trees;
pub mod verify;
mod zip_stream;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::clock::SharedClock;
use crate::crypto::MasterKey;
use crate::ids::CustomerId;

pub use catalog::{
    Archive, ArchiveId, BrowseEntry, CatalogEntry, EncryptedRepositoryId, ItemKind, RecoveryPoint,
    RecoveryPointId, RecoveryPointStatus, RepositoryRef, SearchQuery, Workload,
};
pub use error::{StorageError, StorageResult};
pub use ingest::{
    BackupOutcome, BackupRequest, FailedItem, ItemContent, ItemMetadata, ParentPoint, SourceEvent,
    SourceItem, SourceState,
};
pub use location::{S3Location, StorageLocation};
pub use repository::{CustomerRepository, NewEncryptedRepository};
pub use retention::{ArchiveDeletion, PruneReport, PruneSettings, RetentionReport, RetentionRule};
pub use scope::{SystemScope, TenantScope};
pub use verify::{DamagedPack, VerifyReport, VerifyScope};

/// How many secrets backup storage keeps sealed with the master key (repository passwords).
pub async fn sealed_secret_count<C: sea_orm::ConnectionTrait>(db: &C) -> StorageResult<u64> {
    repository::count_sealed_passwords(db).await
}

/// The first customer whose sealed repository password `key` cannot open: `None` when `key` is
/// the one that sealed them all.
pub async fn first_secret_not_opened_by<C: sea_orm::ConnectionTrait>(
    db: &C,
    key: &MasterKey,
) -> StorageResult<Option<CustomerId>> {
    repository::first_password_not_opened_by(db, key).await
}

/// Re-seals every repository password from `old` to `new` on `db` (the caller's transaction).
pub async fn reseal_secrets<C: sea_orm::ConnectionTrait>(
    db: &C,
    old: &MasterKey,
    new: &MasterKey,
) -> StorageResult<u64> {
    repository::reseal_passwords(db, old, new).await
}

/// The backup storage of one Skyvault process: settings, the catalog database and the cache of
/// opened repositories. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct BackupStorage {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    location: StorageLocation,
    master_key: MasterKey,
    clock: SharedClock,
    repositories: repository::RepositoryCache,
    lock_wait: std::time::Duration,
}

/// How long an operation waits for another process's conflicting repository lock (a backup for
/// a prune, a prune for running backups) before failing with `StorageError::Locked`, which the
/// job queue retries later.
const DEFAULT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

impl std::fmt::Debug for BackupStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupStorage")
            .field("location", &self.inner.location)
            .finish()
    }
}

impl BackupStorage {
    pub fn new(
        db: DatabaseConnection,
        location: StorageLocation,
        master_key: MasterKey,
        clock: SharedClock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                location,
                master_key,
                clock,
                repositories: repository::RepositoryCache::default(),
                lock_wait: DEFAULT_LOCK_WAIT,
            }),
        }
    }

    /// Sets how long operations wait for conflicting repository locks. Call it on a new value,
    /// before it is cloned; on a shared one it changes nothing.
    #[must_use]
    pub fn with_lock_wait(mut self, wait: std::time::Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.lock_wait = wait;
        }
        self
    }

    pub(crate) fn lock_wait(&self) -> std::time::Duration {
        self.inner.lock_wait
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn location(&self) -> &StorageLocation {
        &self.inner.location
    }

    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The customer's repository, created on first use, opened once per process.
    pub async fn repository(&self, customer: CustomerId) -> StorageResult<Arc<CustomerRepository>> {
        self.open_repository(RepositoryRef::Customer(customer))
            .await
    }

    /// Any repository of a customer (an encrypted plan's included), created on first use,
    /// opened once per process.
    pub async fn open_repository(
        &self,
        repository: RepositoryRef,
    ) -> StorageResult<Arc<CustomerRepository>> {
        self.inner
            .repositories
            .open_or_create(
                &self.inner.db,
                &self.inner.location,
                &self.inner.master_key,
                self.inner.clock.now(),
                repository,
            )
            .await
    }

    /// Takes restic's lock of `kind` on a repository, waiting as long as set.
    pub(crate) async fn lock(
        &self,
        repository: RepositoryRef,
        kind: lock::LockKind,
    ) -> StorageResult<lock::HeldLock> {
        self.open_repository(repository)
            .await?
            .lock(kind, self.inner.lock_wait)
            .await
    }

    /// The customer's repositories that exist, for the work that goes over all of them
    /// (retention's prune, the backup check): its own once made, and each encrypted plan's once
    /// its first backup created it. Never creates one.
    pub async fn repositories(&self, customer: CustomerId) -> StorageResult<Vec<RepositoryRef>> {
        use sea_orm::EntityTrait;
        let mut found = Vec::new();
        if catalog::entity::repository::Entity::find_by_id(customer.as_uuid())
            .one(&self.inner.db)
            .await?
            .is_some()
        {
            found.push(RepositoryRef::Customer(customer));
        }
        for row in repository::encrypted_repositories(&self.inner.db, customer).await? {
            let encrypted = RepositoryRef::Encrypted {
                customer,
                id: EncryptedRepositoryId(row.id),
            };
            if repository::exists(&self.inner.location, encrypted).await? {
                found.push(encrypted);
            }
        }
        Ok(found)
    }

    /// Registers an encrypted plan's repository on `db` (the caller's transaction, the plan's),
    /// with the customer's password sealed by the master key.
    pub async fn register_encrypted_repository<C: sea_orm::ConnectionTrait>(
        &self,
        db: &C,
        new: &NewEncryptedRepository<'_>,
    ) -> StorageResult<EncryptedRepositoryId> {
        repository::register_encrypted(
            db,
            &self.inner.location,
            &self.inner.master_key,
            self.inner.clock.now(),
            new,
        )
        .await
    }

    /// Whether `candidate` is the password of the scope's customer's encrypted repository `id`
    /// (constant-time). Another customer's repository is not found.
    pub async fn encrypted_password_matches(
        &self,
        scope: &dyn TenantScope,
        id: EncryptedRepositoryId,
        candidate: &str,
    ) -> StorageResult<bool> {
        repository::encrypted_password_matches(
            &self.inner.db,
            &self.inner.master_key,
            scope.tenant(),
            id,
            candidate,
        )
        .await
    }

    /// The customer's repository password, for an admin who wants to use `restic` directly
    /// (`restic -r <location> …`). Show it only to someone allowed to read every backup.
    pub async fn reveal_repository_password(&self, customer: CustomerId) -> StorageResult<String> {
        repository::reveal_password(&self.inner.db, &self.inner.master_key, customer).await
    }

    /// The name of the plan an encrypted repository was made for (kept after the plan is
    /// deleted). Another customer's repository is not found.
    pub async fn encrypted_repository_plan_name(
        &self,
        scope: &dyn TenantScope,
        id: EncryptedRepositoryId,
    ) -> StorageResult<String> {
        repository::encrypted_repositories(&self.inner.db, scope.tenant())
            .await?
            .into_iter()
            .find(|row| row.id == id.0)
            .map(|row| row.plan_name)
            .ok_or_else(|| StorageError::not_found(format!("encrypted repository {id}")))
    }

    /// Where the customer's repository lives, for `restic -r`.
    pub fn repository_location(&self, customer: CustomerId) -> String {
        self.inner.location.describe_repository(customer)
    }

    /// Where any repository of a customer lives, for `restic -r`.
    pub fn location_of(&self, repository: RepositoryRef) -> String {
        self.inner.location.describe(repository)
    }
}
