//! One restic repository per customer: created on first use with a random password that is kept
//! only sealed by the master key, opened once per process (opening runs the password's scrypt key
//! derivation, which is slow on purpose) and cached. An encrypted protection plan has its own
//! repository beside it, whose restic password is the one the customer chose for the plan
//! (registered when the plan is created, sealed the same way, never shown again). rustic_core is synchronous, so every call into
//! it goes through `run_blocking`, never on an async worker thread.
//! This module never logs or returns a repository password.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytesize::ByteSize;
use rand::RngCore;
use rustic_core::{
    ConfigOptions, Credentials, IndexedFullStatus, KeyOptions, OpenStatus, Repository,
    RepositoryBackends, RepositoryOptions,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Set,
};
use tokio::sync::{Mutex, RwLock};

use crate::crypto::MasterKey;
use crate::ids::CustomerId;

use super::catalog::entity::encrypted_repository as encrypted_row;
use super::catalog::entity::repository as repository_row;
use super::catalog::{EncryptedRepositoryId, RepositoryRef};
use super::error::{StorageError, StorageResult};
use super::location::StorageLocation;
use super::lock::{HeldLock, LockKind, Locker};
use super::sealed::{RepositoryCipher, SealedFiles};

/// An opened repository of one customer (its own, or one of its encrypted plans').
pub struct CustomerRepository {
    pub customer: CustomerId,
    pub repository: RepositoryRef,
    /// The backends and the decrypted master key: reopening with the key skips the password's
    /// key derivation, so each operation opens and indexes afresh (other processes may have added
    /// packs since) at the cost of reading the config file.
    opener: RepositoryOpener,
    /// Backups hold it shared, prune exclusively: inside one process a prune waits for running
    /// backups instead of polling the repository's lock files. Across processes (and against an
    /// operator's `restic`) the lock files of `lock` do the same.
    pub(crate) write_guard: RwLock<()>,
    locker: Locker,
    /// Snapshot and lock files Skyvault writes itself, in restic's format.
    pub(crate) files: SealedFiles,
    /// Bumped after every change to the repository's packs or index by this process, so a cached
    /// full index is known to be stale.
    generation: AtomicU64,
    indexed: Mutex<Option<(u64, Arc<Repository<IndexedFullStatus>>)>>,
}

impl std::fmt::Debug for CustomerRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerRepository")
            .field("repository", &self.repository)
            .finish()
    }
}

impl CustomerRepository {
    /// What a blocking task needs to open the repository.
    pub(crate) fn opener(&self) -> RepositoryOpener {
        self.opener.clone()
    }

    /// Takes restic's repository lock of `kind`, waiting up to `wait` for conflicting holders.
    pub(crate) async fn lock(
        &self,
        kind: LockKind,
        wait: std::time::Duration,
    ) -> StorageResult<HeldLock> {
        self.locker.lock(kind, wait).await
    }

    pub(crate) fn mark_changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A fully indexed repository for reading data, reused while this process has written nothing
    /// since. `refresh` forces a new index (another process may have written what we look for).
    pub(crate) async fn indexed(
        &self,
        refresh: bool,
    ) -> StorageResult<Arc<Repository<IndexedFullStatus>>> {
        let mut cached = self.indexed.lock().await;
        let generation = self.generation.load(Ordering::SeqCst);
        if !refresh
            && let Some((at, repo)) = cached.as_ref()
            && *at == generation
        {
            return Ok(repo.clone());
        }
        let opener = self.opener();
        let repo = Arc::new(
            run_blocking(move || opener.open()?.to_indexed().map_err(StorageError::from)).await?,
        );
        *cached = Some((generation, repo.clone()));
        Ok(repo)
    }
}

/// Opens a customer's repository with its decrypted key; call it on a blocking thread.
#[derive(Clone)]
pub(crate) struct RepositoryOpener {
    backends: RepositoryBackends,
    credentials: Credentials,
}

impl RepositoryOpener {
    pub(crate) fn open(&self) -> StorageResult<Repository<OpenStatus>> {
        Ok(Repository::new(&repository_options(), &self.backends)?.open(&self.credentials)?)
    }
}

/// No local cache: several processes may share one bucket, and the index is read afresh for
/// every operation anyway.
fn repository_options() -> RepositoryOptions {
    RepositoryOptions::default().no_cache(true)
}

/// Format version 2 (compressed) is rustic's default and what restic ≥ 0.14 reads.
///
/// Chunks average 128 KiB instead of restic's 1 MiB: a message is one file whose attachment sits
/// base64-encoded after headers that differ from mailbox to mailbox, and with 512 KiB minimum
/// chunks an attachment below a few MiB would never be deduplicated across mailboxes. restic reads
/// and checks such repositories unchanged (chunk sizes only matter when writing).
fn repository_config() -> ConfigOptions {
    ConfigOptions::default()
        .set_chunk_size(ByteSize::kib(128))
        .set_chunk_min_size(ByteSize::kib(32))
        .set_chunk_max_size(ByteSize::mib(2))
}

/// The per-process cache of opened repositories.
#[derive(Default)]
pub(crate) struct RepositoryCache {
    opened: Mutex<HashMap<RepositoryRef, Arc<CustomerRepository>>>,
}

impl RepositoryCache {
    /// Opens a repository, creating it on first use (the customer's with a new sealed password;
    /// an encrypted plan's with the password registered when the plan was created).
    pub(crate) async fn open_or_create(
        &self,
        db: &DatabaseConnection,
        location: &StorageLocation,
        master_key: &MasterKey,
        now: chrono::DateTime<chrono::Utc>,
        repository: RepositoryRef,
    ) -> StorageResult<Arc<CustomerRepository>> {
        // Held across the open so two tasks never run the slow key derivation twice.
        let mut opened = self.opened.lock().await;
        if let Some(repo) = opened.get(&repository) {
            return Ok(repo.clone());
        }
        let customer = repository.customer();
        let password = match repository.encrypted() {
            None => repository_password(db, location, master_key, now, customer).await?,
            Some(id) => encrypted_password(db, master_key, customer, id).await?,
        };
        let backends = location.backend_options(repository).to_backends()?;
        let opener_backends = backends.clone();
        let key = run_blocking(move || {
            let options = repository_options();
            let credentials = Credentials::password(&password);
            let repo = Repository::new(&options, &backends)?;
            // Each derivation of the key from the password is a deliberately slow scrypt; a new
            // repository comes back from `init` already open, so it is derived once, not twice.
            if repo.config_id()?.is_none() {
                let repo = Repository::new(&options, &backends)?;
                return Ok(repo
                    .init(&credentials, &KeyOptions::default(), &repository_config())?
                    .key());
            }
            Ok(Repository::new(&options, &backends)?
                .open(&credentials)?
                .key())
        })
        .await?;
        let cipher = RepositoryCipher::new(&key);
        let (service, options) = location.opendal_options(repository);
        let repo = Arc::new(CustomerRepository {
            customer,
            repository,
            locker: Locker::new(service, options, cipher.clone())?,
            files: SealedFiles::new(opener_backends.repository(), cipher),
            opener: RepositoryOpener {
                backends: opener_backends,
                credentials: Credentials::Masterkey(key),
            },
            write_guard: RwLock::new(()),
            generation: AtomicU64::new(0),
            indexed: Mutex::new(None),
        });
        opened.insert(repository, repo.clone());
        Ok(repo)
    }
}

fn encrypted_seal_context(id: EncryptedRepositoryId) -> String {
    format!("encrypted-repository:{id}:password")
}

/// The customer's password of an encrypted plan's repository, unsealed; another customer's
/// repository id is not found.
async fn encrypted_password<C: ConnectionTrait>(
    db: &C,
    master_key: &MasterKey,
    customer: CustomerId,
    id: EncryptedRepositoryId,
) -> StorageResult<String> {
    let row = encrypted_row::Entity::find_by_id(id.0)
        .filter(encrypted_row::Column::CustomerId.eq(customer.as_uuid()))
        .one(db)
        .await?
        .ok_or_else(|| StorageError::not_found(format!("encrypted repository {id}")))?;
    master_key
        .open_string(&row.sealed_password, &encrypted_seal_context(id))
        .map_err(|_| StorageError::Unseal {
            customer: customer.to_string(),
        })
}

/// What an encrypted plan's repository is registered with.
pub struct NewEncryptedRepository<'a> {
    pub customer: CustomerId,
    pub plan: uuid::Uuid,
    pub plan_name: &'a str,
    /// The customer's password: the restic password of the repository.
    pub password: &'a str,
}

/// Registers an encrypted plan's repository on `db` (the plan's own transaction): its row with
/// the customer's password sealed by the master key. The restic repository itself is created by
/// the first backup into it.
pub(crate) async fn register_encrypted<C: ConnectionTrait>(
    db: &C,
    location: &StorageLocation,
    master_key: &MasterKey,
    now: chrono::DateTime<chrono::Utc>,
    new: &NewEncryptedRepository<'_>,
) -> StorageResult<EncryptedRepositoryId> {
    let id = EncryptedRepositoryId(uuid::Uuid::new_v4());
    let repository = RepositoryRef::Encrypted {
        customer: new.customer,
        id,
    };
    encrypted_row::Entity::insert(encrypted_row::ActiveModel {
        id: Set(id.0),
        customer_id: Set(new.customer.as_uuid()),
        plan_id: Set(new.plan),
        plan_name: Set(new.plan_name.to_string()),
        location: Set(location.describe(repository)),
        sealed_password: Set(master_key.seal(new.password.as_bytes(), &encrypted_seal_context(id))),
        created_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(id)
}

/// Whether `candidate` is the password of the customer's encrypted repository `id`, compared in
/// constant time (as digests, so the length of the password does not show either).
pub(crate) async fn encrypted_password_matches<C: ConnectionTrait>(
    db: &C,
    master_key: &MasterKey,
    customer: CustomerId,
    id: EncryptedRepositoryId,
    candidate: &str,
) -> StorageResult<bool> {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let password = encrypted_password(db, master_key, customer, id).await?;
    let (known, given) = (
        Sha256::digest(password.as_bytes()),
        Sha256::digest(candidate.as_bytes()),
    );
    Ok(bool::from(known.ct_eq(&given)))
}

/// The customer's encrypted repositories: (id, the plan name it was made for, location).
pub(crate) async fn encrypted_repositories<C: ConnectionTrait>(
    db: &C,
    customer: CustomerId,
) -> StorageResult<Vec<encrypted_row::Model>> {
    use sea_orm::QueryOrder;
    Ok(encrypted_row::Entity::find()
        .filter(encrypted_row::Column::CustomerId.eq(customer.as_uuid()))
        .order_by_asc(encrypted_row::Column::CreatedAt)
        .all(db)
        .await?)
}

/// Whether a repository has been created in the storage (a restic config file is there);
/// checked without its password.
pub(crate) async fn exists(
    location: &StorageLocation,
    repository: RepositoryRef,
) -> StorageResult<bool> {
    let backends = location.backend_options(repository).to_backends()?;
    run_blocking(move || {
        Ok(Repository::new(&repository_options(), &backends)?
            .config_id()?
            .is_some())
    })
    .await
}

/// Reads the customer's sealed password, or makes, seals and stores a new one. The row is written
/// before the repository is initialised, so a password is never lost to a crash in between.
async fn repository_password(
    db: &DatabaseConnection,
    location: &StorageLocation,
    master_key: &MasterKey,
    now: chrono::DateTime<chrono::Utc>,
    customer: CustomerId,
) -> StorageResult<String> {
    let context = seal_context(customer);
    if let Some(row) = repository_row::Entity::find_by_id(customer.as_uuid())
        .one(db)
        .await?
    {
        return master_key
            .open_string(&row.sealed_password, &context)
            .map_err(|_| StorageError::Unseal {
                customer: customer.to_string(),
            });
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let password = B64.encode(secret);
    let row = repository_row::ActiveModel {
        customer_id: Set(customer.as_uuid()),
        location: Set(location.describe_repository(customer)),
        sealed_password: Set(master_key.seal(password.as_bytes(), &context)),
        created_at: Set(now),
    };
    match row.insert(db).await {
        Ok(_) => Ok(password),
        // Another process created it first: use theirs.
        Err(_) => {
            let row = repository_row::Entity::find_by_id(customer.as_uuid())
                .one(db)
                .await?
                .ok_or_else(|| StorageError::not_found("repository row"))?;
            master_key
                .open_string(&row.sealed_password, &context)
                .map_err(|_| StorageError::Unseal {
                    customer: customer.to_string(),
                })
        }
    }
}

fn seal_context(customer: CustomerId) -> String {
    format!("customer:{customer}:repository")
}

/// The repository password of a customer, for an operator who wants to run `restic` by hand
/// (and for the interoperability tests). Callers must show it only to an authorised admin.
pub(crate) async fn reveal_password(
    db: &DatabaseConnection,
    master_key: &MasterKey,
    customer: CustomerId,
) -> StorageResult<String> {
    let row = repository_row::Entity::find_by_id(customer.as_uuid())
        .one(db)
        .await?
        .ok_or_else(|| StorageError::not_found(format!("repository of customer {customer}")))?;
    master_key
        .open_string(&row.sealed_password, &seal_context(customer))
        .map_err(|_| StorageError::Unseal {
            customer: customer.to_string(),
        })
}

/// Runs synchronous rustic_core work on tokio's blocking pool.
pub(crate) async fn run_blocking<T, F>(work: F) -> StorageResult<T>
where
    F: FnOnce() -> StorageResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| StorageError::Task(err.to_string()))?
}

/// How many repository passwords the catalog holds sealed with the master key.
pub(crate) async fn count_sealed_passwords<C: ConnectionTrait>(db: &C) -> StorageResult<u64> {
    Ok(repository_row::Entity::find().count(db).await?
        + encrypted_row::Entity::find().count(db).await?)
}

/// The first customer whose sealed repository password `key` cannot open, if any.
pub(crate) async fn first_password_not_opened_by<C: ConnectionTrait>(
    db: &C,
    key: &MasterKey,
) -> StorageResult<Option<CustomerId>> {
    let rows = repository_row::Entity::find().all(db).await?;
    if let Some(customer) = rows.into_iter().find_map(|row| {
        let customer = CustomerId(row.customer_id);
        key.open(&row.sealed_password, &seal_context(customer))
            .is_err()
            .then_some(customer)
    }) {
        return Ok(Some(customer));
    }
    let encrypted = encrypted_row::Entity::find().all(db).await?;
    Ok(encrypted.into_iter().find_map(|row| {
        let context = encrypted_seal_context(EncryptedRepositoryId(row.id));
        key.open(&row.sealed_password, &context)
            .is_err()
            .then_some(CustomerId(row.customer_id))
    }))
}

/// Re-seals every repository password from `old` to `new` on `db`, which the caller makes a
/// transaction: one password that `old` cannot open fails the whole re-seal, so no password is
/// ever left under a key nobody has.
pub(crate) async fn reseal_passwords<C: ConnectionTrait>(
    db: &C,
    old: &MasterKey,
    new: &MasterKey,
) -> StorageResult<u64> {
    let rows = repository_row::Entity::find().all(db).await?;
    let mut resealed = 0;
    for row in rows {
        let customer = CustomerId(row.customer_id);
        let context = seal_context(customer);
        let password =
            old.open(&row.sealed_password, &context)
                .map_err(|_| StorageError::Unseal {
                    customer: customer.to_string(),
                })?;
        repository_row::Entity::update_many()
            .col_expr(
                repository_row::Column::SealedPassword,
                Expr::value(new.seal(&password, &context)),
            )
            .filter(repository_row::Column::CustomerId.eq(row.customer_id))
            .exec(db)
            .await?;
        resealed += 1;
    }
    // An encrypted plan's password is re-sealed too: a rotation must never leave one behind
    // under a key nobody keeps.
    for row in encrypted_row::Entity::find().all(db).await? {
        let context = encrypted_seal_context(EncryptedRepositoryId(row.id));
        let password =
            old.open(&row.sealed_password, &context)
                .map_err(|_| StorageError::Unseal {
                    customer: row.customer_id.to_string(),
                })?;
        encrypted_row::Entity::update_many()
            .col_expr(
                encrypted_row::Column::SealedPassword,
                Expr::value(new.seal(&password, &context)),
            )
            .filter(encrypted_row::Column::Id.eq(row.id))
            .exec(db)
            .await?;
        resealed += 1;
    }
    Ok(resealed)
}
