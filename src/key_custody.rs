//! Custody of the master key: which key file may open this database's secrets, and how a key is
//! replaced. At the first start a check value of the key (a keyed hash of a fixed label, never the
//! key) is recorded in the database; at every start the key file must match it, or Skyvault stops
//! with a message naming the file and what to do. A new key is made only for a database that has
//! neither a check value nor a sealed secret. `rotate_master_key` re-seals every secret in one
//! transaction and swaps the key file so that a crash at any point leaves a way back.
//!
//! Files beside the key file `K`: `K.new` holds a rotation's new key from before its transaction
//! until the rename that completes it; `K.old` keeps the key that was replaced. This module never
//! deletes a key file that a database might still need.

use std::path::{Path, PathBuf};

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, TransactionTrait,
};

use crate::clock::Clock;
use crate::crypto::{CryptoError, MasterKey, sync_parent};
use crate::storage::{self, StorageError};

/// The one row of the check value.
pub mod master_key_check {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "master_key_check")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub check_value: String,
        pub recorded_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const CHECK_ROW: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeyCustodyError {
    #[error(transparent)]
    KeyFile(#[from] CryptoError),
    #[error("the database: {0}")]
    Database(#[from] DbErr),
    #[error("backup storage: {0}")]
    Storage(#[from] StorageError),
    #[error(
        "the master key file {path} is missing, but this database already has a master key{}: \
         the secrets it holds (backup repository passwords) open only with that key, and without \
         it no backup can be read. Put the key file from your backup back at {path} (or point the \
         master_key_file setting, SKYVAULT_MASTER_KEY_FILE, at it) and start again. Skyvault does \
         not make a new key for a database that already has one.",
        fingerprint_note(.expected.as_deref())
    )]
    Missing {
        path: PathBuf,
        expected: Option<String>,
    },
    #[error(
        "the master key file {path} holds a key (fingerprint {found}) that is not the one this \
         database's secrets are sealed with (fingerprint {expected}). Started with it, Skyvault \
         could open no repository password and no backup, so it stops. {hint}"
    )]
    WrongKey {
        path: PathBuf,
        found: String,
        expected: String,
        hint: String,
    },
    #[error(
        "the master key file {path} (fingerprint {found}) does not open the sealed repository \
         password of customer {customer}: it is not the key this database's secrets were sealed \
         with. Put the right key file at {path} (or point the master_key_file setting, \
         SKYVAULT_MASTER_KEY_FILE, at it) and start again."
    )]
    SecretsNotOpened {
        path: PathBuf,
        found: String,
        customer: String,
    },
    #[error(
        "{pending} is left from a key rotation that did not finish; the database still uses \
         {path}. Remove {pending} (after checking it is not the key of another database) and run \
         the rotation again."
    )]
    PendingRotation { pending: PathBuf, path: PathBuf },
    #[error(
        "the database changed its master key while this rotation ran (another rotation?); \
         nothing was changed by this one"
    )]
    ConcurrentRotation,
    #[error(
        "the database did not confirm the rotation: {source}. Start Skyvault: if the re-sealed \
         secrets were committed it finishes the rotation with {pending}, otherwise it keeps {path}."
    )]
    Unconfirmed {
        source: DbErr,
        pending: PathBuf,
        path: PathBuf,
    },
    #[error(
        "the rotation was committed, but {pending} could not be renamed to {path}: {source}. Start Skyvault: it finishes the rename."
    )]
    Rename {
        source: std::io::Error,
        pending: PathBuf,
        path: PathBuf,
    },
}

fn fingerprint_note(expected: Option<&str>) -> String {
    expected
        .map(|fingerprint| format!(" (fingerprint {fingerprint})"))
        .unwrap_or_default()
}

/// The short form of a check value shown to operators, enough to tell key files apart.
pub fn fingerprint(check_value: &str) -> String {
    check_value.chars().take(12).collect()
}

/// `K.new` or `K.old` beside the key file `K`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

pub fn pending_key_path(path: &Path) -> PathBuf {
    sibling(path, ".new")
}

pub fn previous_key_path(path: &Path) -> PathBuf {
    sibling(path, ".old")
}

async fn recorded_check_value(db: &DatabaseConnection) -> Result<Option<String>, DbErr> {
    Ok(master_key_check::Entity::find_by_id(CHECK_ROW)
        .one(db)
        .await?
        .map(|row| row.check_value))
}

/// The master key for this database, read from `path` and checked against the database; made
/// (and recorded) only when the database has no key yet. Every refusal names the file and says
/// what to do.
pub async fn open_master_key(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    path: &Path,
) -> Result<MasterKey, KeyCustodyError> {
    let recorded = recorded_check_value(db).await?;
    if let Some(recorded) = &recorded {
        finish_interrupted_rotation(path, recorded)?;
    }
    let key = match (MasterKey::load(path)?, recorded) {
        (Some(key), Some(recorded)) if key.check_value() == recorded => key,
        (Some(key), Some(recorded)) => return Err(wrong_key(path, &key, &recorded)),
        (None, Some(recorded)) => {
            return Err(KeyCustodyError::Missing {
                path: path.to_owned(),
                expected: Some(fingerprint(&recorded)),
            });
        }
        // A database from before check values were recorded: the key is right if it opens every
        // sealed secret there is.
        (Some(key), None) => {
            if let Some(customer) = storage::first_secret_not_opened_by(db, &key).await? {
                return Err(KeyCustodyError::SecretsNotOpened {
                    path: path.to_owned(),
                    found: fingerprint(&key.check_value()),
                    customer: customer.to_string(),
                });
            }
            record_check_value(db, clock, path, &key).await?;
            key
        }
        (None, None) => {
            if storage::sealed_secret_count(db).await? > 0
                || crate::notify::smtp::has_sealed_password(db).await?
            {
                return Err(KeyCustodyError::Missing {
                    path: path.to_owned(),
                    expected: None,
                });
            }
            let mut key = MasterKey::random();
            if key.write_new_file(path)? {
                tracing::info!("created the master key {}", path.display());
            } else if let Some(theirs) = MasterKey::load(path)? {
                // Another process starting at the same moment wrote its key first: share it.
                key = theirs;
            }
            record_check_value(db, clock, path, &key).await?;
            key
        }
    };
    crate::private_files::restrict_to_owner(path);
    tracing::info!(
        "master key {} (fingerprint {})",
        path.display(),
        fingerprint(&key.check_value())
    );
    Ok(key)
}

/// Records `key`'s check value. Two processes starting at once on an empty database both try;
/// the primary key lets one win, and the other must then hold the same key.
async fn record_check_value(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    path: &Path,
    key: &MasterKey,
) -> Result<(), KeyCustodyError> {
    let inserted = master_key_check::ActiveModel {
        id: Set(CHECK_ROW),
        check_value: Set(key.check_value()),
        recorded_at: Set(clock.now()),
    }
    .insert(db)
    .await;
    if let Err(err) = inserted {
        match recorded_check_value(db).await? {
            Some(recorded) if recorded == key.check_value() => {}
            Some(recorded) => return Err(wrong_key(path, key, &recorded)),
            None => return Err(err.into()),
        }
    }
    Ok(())
}

fn wrong_key(path: &Path, key: &MasterKey, recorded: &str) -> KeyCustodyError {
    let previous = previous_key_path(path);
    let hint = match MasterKey::load(&previous) {
        Ok(Some(old)) if old.check_value() == recorded => format!(
            "{} holds the key this database expects: the key that `skyvault admin \
             rotate-master-key` replaced. If this database was restored from a backup made before \
             that rotation, put {} back at {} (or restore the newer database).",
            previous.display(),
            previous.display(),
            path.display()
        ),
        _ => format!(
            "Put the key file from your backup of this instance at {} (or point the \
             master_key_file setting, SKYVAULT_MASTER_KEY_FILE, at it), or check that \
             database_url names this instance's database.",
            path.display()
        ),
    };
    KeyCustodyError::WrongKey {
        path: path.to_owned(),
        found: fingerprint(&key.check_value()),
        expected: fingerprint(recorded),
        hint,
    }
}

/// A rotation whose transaction committed but whose process stopped before renaming `K.new` over
/// `K` left the database under the new key: finish the rename. A `K.new` the database does not
/// use is left alone (it may be another database's key) with a warning.
fn finish_interrupted_rotation(path: &Path, recorded: &str) -> Result<(), KeyCustodyError> {
    let pending = pending_key_path(path);
    let Ok(Some(new)) = MasterKey::load(&pending) else {
        return Ok(());
    };
    if new.check_value() != recorded {
        tracing::warn!(
            "{} is left from a key rotation that did not finish; the database does not use it",
            pending.display()
        );
        return Ok(());
    }
    let io_error = |source| CryptoError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    std::fs::rename(&pending, path).map_err(io_error)?;
    sync_parent(path).map_err(io_error)?;
    tracing::warn!(
        "finished an interrupted master key rotation: {} now holds the new key",
        path.display()
    );
    Ok(())
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// Secrets re-sealed under the new key.
    pub resealed: u64,
    pub fingerprint: String,
    /// Where the replaced key is kept.
    pub previous: PathBuf,
}

/// Replaces the master key: re-seals every secret under a new key and updates the check value in
/// one transaction, then puts the new key at `path`. Run it with every Skyvault process stopped.
///
/// Order, so that a crash anywhere leaves a way back: the new key is written to `K.new` and the
/// old one copied to `K.old` before the transaction; until it commits the database and `K` are
/// unchanged; after it commits, `K.new` is renamed over `K`, and a start that finds the database
/// under `K.new` finishes that rename.
pub async fn rotate_master_key(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    path: &Path,
) -> Result<Rotation, KeyCustodyError> {
    let old = open_master_key(db, clock, path).await?;
    let pending = pending_key_path(path);
    if pending.exists() {
        return Err(KeyCustodyError::PendingRotation {
            pending,
            path: path.to_owned(),
        });
    }
    let previous = previous_key_path(path);
    let new = MasterKey::random();
    new.write_file(&pending)?;
    old.write_file(&previous)?;
    let (resealed, transaction) = match reseal_everything(db, clock, &old, &new).await {
        Ok(done) => done,
        Err(err) => {
            // Nothing was committed: the new key protects nothing and is removed.
            let _ = std::fs::remove_file(&pending);
            return Err(err);
        }
    };
    transaction
        .commit()
        .await
        .map_err(|source| KeyCustodyError::Unconfirmed {
            source,
            pending: pending.clone(),
            path: path.to_owned(),
        })?;
    let rename_error = |source| KeyCustodyError::Rename {
        source,
        pending: pending.clone(),
        path: path.to_owned(),
    };
    std::fs::rename(&pending, path).map_err(rename_error)?;
    sync_parent(path).map_err(rename_error)?;
    Ok(Rotation {
        resealed,
        fingerprint: fingerprint(&new.check_value()),
        previous,
    })
}

/// Re-seals and moves the check value from `old` to `new` in a transaction handed back
/// uncommitted, so the caller decides what a failed commit means.
async fn reseal_everything(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<(u64, sea_orm::DatabaseTransaction), KeyCustodyError> {
    let transaction = db.begin().await?;
    let moved = master_key_check::Entity::update_many()
        .col_expr(
            master_key_check::Column::CheckValue,
            Expr::value(new.check_value()),
        )
        .col_expr(
            master_key_check::Column::RecordedAt,
            Expr::value(clock.now()),
        )
        .filter(master_key_check::Column::Id.eq(CHECK_ROW))
        .filter(master_key_check::Column::CheckValue.eq(old.check_value()))
        .exec(&transaction)
        .await?;
    if moved.rows_affected != 1 {
        return Err(KeyCustodyError::ConcurrentRotation);
    }
    let mut resealed = storage::reseal_secrets(&transaction, old, new).await?;
    resealed += crate::notify::smtp::reseal_password(&transaction, old, new)
        .await
        .map_err(|err| match err {
            crate::notify::smtp::SmtpError::Database(err) => KeyCustodyError::Database(err),
            crate::notify::smtp::SmtpError::Crypto(err) => KeyCustodyError::KeyFile(err),
            crate::notify::smtp::SmtpError::Account(err) => {
                KeyCustodyError::Database(sea_orm::DbErr::Custom(err.to_string()))
            }
        })?;
    Ok((resealed, transaction))
}
