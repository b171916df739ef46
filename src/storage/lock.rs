//! restic's repository locks, which rustic_core does not implement: a file under `locks/` in the
//! repository, encrypted with the repository key, saying who holds it, since when, and whether it
//! is exclusive. Backups, restores and checks hold a shared lock; prune and the removal of
//! snapshots hold an exclusive one. Because the files are restic's own, Skyvault processes on
//! different machines exclude each other, and so do Skyvault and an operator running `restic`
//! against the same repository (`restic prune` refuses to run beside a Skyvault backup, and the
//! other way round).
//!
//! The rules are restic's:
//! - a shared lock conflicts with an exclusive one, an exclusive lock with any other lock;
//! - a lock is stale when it is older than 30 minutes, or when it was made on this host by a
//!   process that no longer runs; a stale lock is removed, as `restic unlock` would;
//! - a held lock is refreshed every 5 minutes (a new file, then the old one removed), so a long
//!   backup's lock never goes stale while it runs;
//! - after writing its file a locker checks again, and backs off if a conflicting lock appeared in
//!   the meantime (two lockers racing both back off rather than both proceeding).
//!
//! Lock times are wall-clock times, not the application clock: they coordinate real processes.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use opendal::{ErrorKind as DalErrorKind, Operator};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::error::{StorageError, StorageResult};
use super::sealed::RepositoryCipher;

/// restic's folder of lock files, beside `data/`, `index/` and `snapshots/`.
const LOCKS: &str = "locks/";

/// restic's `staleTimeout`.
const STALE_AFTER: Duration = Duration::minutes(30);
/// restic's refresh interval.
const REFRESH_EVERY: StdDuration = StdDuration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Backups, restores, checks: many at once.
    Shared,
    /// Prune and forgetting snapshots: alone.
    Exclusive,
}

/// restic's lock file, field for field (`internal/restic/lock.go`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockFile {
    time: DateTime<Utc>,
    exclusive: bool,
    hostname: String,
    #[serde(default)]
    username: String,
    pid: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    uid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    gid: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl LockFile {
    fn stale(&self, now: DateTime<Utc>, hostname: &str) -> bool {
        if now - self.time > STALE_AFTER {
            return true;
        }
        // A lock from another host may belong to a live process there: only time makes it stale.
        self.hostname == hostname && !process_exists(self.pid)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock held by process {} on {} since {}",
            if self.exclusive { "an exclusive" } else { "a" },
            self.pid,
            self.hostname,
            self.time.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

fn process_exists(pid: i64) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Where locks are read and written: the repository's `locks/` folder, through OpenDAL (on disk or
/// in S3, wherever rustic's backend keeps the rest of the repository).
#[derive(Clone)]
pub(crate) struct Locker {
    operator: Operator,
    cipher: RepositoryCipher,
    hostname: String,
}

impl Locker {
    pub(crate) fn new(
        service: &str,
        options: std::collections::BTreeMap<String, String>,
        cipher: RepositoryCipher,
    ) -> StorageResult<Self> {
        // Retried like rustic's own OpenDAL backend, so a passing S3 hiccup does not fail a lock.
        let operator = Operator::via_iter(service, options)
            .map_err(dal_error)?
            .layer(opendal::layers::RetryLayer::new().with_jitter());
        Ok(Self {
            operator,
            cipher,
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        })
    }

    /// Takes a lock of `kind`, waiting up to `wait` for conflicting locks to go away.
    pub(crate) async fn lock(&self, kind: LockKind, wait: StdDuration) -> StorageResult<HeldLock> {
        let started = tokio::time::Instant::now();
        let mut pause = StdDuration::from_millis(500);
        loop {
            match self.try_lock(kind).await {
                Ok(name) => return Ok(HeldLock::start(self.clone(), kind, name)),
                Err(StorageError::Locked { holder }) => {
                    let elapsed = started.elapsed();
                    if elapsed >= wait {
                        return Err(StorageError::Locked { holder });
                    }
                    tokio::time::sleep(pause.min(wait - elapsed)).await;
                    pause = (pause * 2).min(StdDuration::from_secs(30));
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// One attempt: check, write our file, check again.
    async fn try_lock(&self, kind: LockKind) -> StorageResult<String> {
        self.check_conflicts(kind, None).await?;
        let name = self.write(kind).await?;
        if let Err(conflict) = self.check_conflicts(kind, Some(&name)).await {
            // Someone locked at the same moment: both back off, and retry later.
            let _ = self.remove(&name).await;
            return Err(conflict);
        }
        Ok(name)
    }

    async fn check_conflicts(&self, kind: LockKind, own: Option<&str>) -> StorageResult<()> {
        let now = Utc::now();
        for (name, lock) in self.read_all().await? {
            if Some(name.as_str()) == own {
                continue;
            }
            if lock.stale(now, &self.hostname) {
                // What `restic unlock` would remove: a crashed process must not block restic
                // (which does not skip stale locks) or anyone else for good.
                tracing::info!("removing a stale repository lock: {}", lock.describe());
                let _ = self.remove(&name).await;
                continue;
            }
            if kind == LockKind::Exclusive || lock.exclusive {
                return Err(StorageError::Locked {
                    holder: lock.describe(),
                });
            }
        }
        Ok(())
    }

    /// Every lock in the repository. A file that vanished between listing and reading was
    /// released; one that does not open with this key belongs to no one Skyvault knows and counts
    /// as held, as restic counts it.
    async fn read_all(&self) -> StorageResult<Vec<(String, LockFile)>> {
        let entries = match self.operator.list(LOCKS).await {
            Ok(entries) => entries,
            Err(err) if err.kind() == DalErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(dal_error(err)),
        };
        let mut locks = Vec::new();
        for entry in entries {
            let name = entry.name().to_string();
            if !entry.metadata().is_file() || name.is_empty() {
                continue;
            }
            let data = match self.operator.read(&format!("{LOCKS}{name}")).await {
                Ok(data) => data.to_vec(),
                Err(err) if err.kind() == DalErrorKind::NotFound => continue,
                Err(err) => return Err(dal_error(err)),
            };
            let lock =
                self.cipher
                    .open_json::<LockFile>(&data)
                    .ok_or_else(|| StorageError::Locked {
                        holder: format!("an unreadable lock file {name}"),
                    })?;
            locks.push((name, lock));
        }
        Ok(locks)
    }

    async fn write(&self, kind: LockKind) -> StorageResult<String> {
        let (id, sealed) = self.cipher.seal_json(&LockFile {
            time: Utc::now(),
            exclusive: kind == LockKind::Exclusive,
            hostname: self.hostname.clone(),
            username: std::env::var("USER").unwrap_or_default(),
            pid: i64::from(std::process::id()),
            uid: 0,
            gid: 0,
        })?;
        let name = id.to_hex().as_str().to_string();
        self.operator
            .write(&format!("{LOCKS}{name}"), sealed)
            .await
            .map_err(dal_error)?;
        Ok(name)
    }

    async fn remove(&self, name: &str) -> StorageResult<()> {
        self.operator
            .delete(&format!("{LOCKS}{name}"))
            .await
            .map_err(dal_error)
    }

    async fn refresh(&self, kind: LockKind, old: &str) -> StorageResult<String> {
        let new = self.write(kind).await?;
        let _ = self.remove(old).await;
        Ok(new)
    }
}

fn dal_error(err: opendal::Error) -> StorageError {
    StorageError::Repository {
        retryable: err.is_temporary() || err.kind() == DalErrorKind::Unexpected,
        message: format!("repository lock: {err}"),
    }
}

/// A lock this process holds; refreshed in the background until released. Dropping it without
/// `release` still removes the file, shortly after, from the refresh task.
pub(crate) struct HeldLock {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl HeldLock {
    fn start(locker: Locker, kind: LockKind, name: String) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut current = name;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(REFRESH_EVERY) => {
                        match locker.refresh(kind, &current).await {
                            Ok(new) => current = new,
                            Err(err) => tracing::warn!("refreshing a repository lock failed: {err}"),
                        }
                    }
                }
            }
            if let Err(err) = locker.remove(&current).await {
                tracing::warn!(
                    "removing a repository lock failed (it goes stale in 30 minutes): {err}"
                );
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Removes the lock file and waits until it is gone.
    pub(crate) async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(time: DateTime<Utc>, hostname: &str, pid: i64) -> LockFile {
        LockFile {
            time,
            exclusive: false,
            hostname: hostname.into(),
            username: String::new(),
            pid,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn stale_after_thirty_minutes_or_when_its_local_process_is_gone() {
        let now = Utc::now();
        let me = i64::from(std::process::id());
        assert!(!lock(now, "here", me).stale(now, "here"));
        assert!(lock(now - Duration::minutes(31), "here", me).stale(now, "here"));
        // No process has pid 0x7fff_fff0 on Linux (pid_max is at most 2^22).
        assert!(lock(now, "here", 0x7fff_fff0).stale(now, "here"));
        // Another host's process cannot be checked from here.
        assert!(!lock(now, "elsewhere", 0x7fff_fff0).stale(now, "here"));
    }
}
