//! restic's repository locks across processes: a prune in one Skyvault process refuses to run
//! beside a backup in another, `restic prune` refuses to run beside a Skyvault backup, a Skyvault
//! prune refuses to run beside `restic backup`, and a lock left by a process that died is ignored.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::stream;
use skyvault::ids::ItemId;
use skyvault::storage::{
    BackupRequest, BackupStorage, ItemContent, ItemKind, ItemMetadata, PruneSettings, SourceItem,
    StorageError, Workload, ingest, retention,
};
use tokio::sync::oneshot;

use super::fixture::{Fixture, TestItem, fixture, small_corpus};
use super::interop::{restic, restic_installed};

/// A backup in `storage` whose one item's bytes arrive only when the returned sender fires: while
/// it waits, the backup holds its shared lock.
fn blocked_backup(
    storage: &BackupStorage,
    request: BackupRequest,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<ingest::BackupOutcome, StorageError>>,
) {
    let (release, released) = oneshot::channel::<()>();
    let item = SourceItem {
        path: "Inbox/slow.eml".into(),
        metadata: ItemMetadata {
            kind: Some(ItemKind::Message),
            graph_id: Some("slow".into()),
            ..ItemMetadata::default()
        },
        content: ItemContent::from_fn(move || async move {
            let _ = released.await;
            Ok(std::io::Cursor::new(
                b"Subject: slow\r\n\r\nat last".to_vec(),
            ))
        }),
    };
    let storage = storage.clone();
    let backup = tokio::spawn(async move {
        ingest::back_up_archive(&storage, &request, stream::iter(vec![item])).await
    });
    (release, backup)
}

async fn wait_for_locks(f: &Fixture, count: usize) {
    for _ in 0..200 {
        if f.lock_count() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {count} lock files, found {}", f.lock_count());
}

#[tokio::test]
async fn a_prune_in_another_process_waits_for_a_running_backup_and_then_runs() {
    let f = fixture().await;
    f.back_up(
        &f.request(ItemId::new(), Workload::Mailbox, "Alice"),
        &small_corpus(),
    )
    .await;
    assert_eq!(f.lock_count(), 0, "a finished backup leaves no lock");

    let (release, backup) = blocked_backup(
        &f.storage,
        f.request(ItemId::new(), Workload::Mailbox, "Bob"),
    );
    wait_for_locks(&f, 1).await;

    let other = f.other_process(Duration::from_millis(300));
    let refused = retention::prune(&other, f.customer, PruneSettings::default()).await;
    match refused {
        Err(StorageError::Locked { holder }) => {
            assert!(holder.contains(&std::process::id().to_string()), "{holder}");
        }
        other => panic!("prune ran beside a backup: {other:?}"),
    }
    assert!(
        StorageError::Locked { holder: "x".into() }.is_retryable(),
        "a locked repository is worth retrying"
    );
    // Another process's backup shares the repository with the running one.
    let mut other_items = small_corpus();
    other_items.truncate(2);
    let carol = f.request(ItemId::new(), Workload::Mailbox, "Carol");
    let items: Vec<SourceItem> = other_items
        .iter()
        .map(|item| item.source(&Default::default()))
        .collect();
    ingest::back_up_archive(&other, &carol, stream::iter(items))
        .await
        .unwrap();

    // A prune that waits long enough runs once the backup is done.
    let patient = f.other_process(Duration::from_secs(60));
    let prune = tokio::spawn({
        let customer = f.customer;
        async move { retention::prune(&patient, customer, PruneSettings::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!prune.is_finished(), "prune must wait for the backup");
    release.send(()).unwrap();
    let outcome = backup.await.unwrap().unwrap();
    assert_eq!(outcome.failed, vec![]);
    prune.await.unwrap().unwrap();
    assert_eq!(f.lock_count(), 0);
    super::interop::restic_check(&f).await;
}

/// `restic` on the same repository: Skyvault's lock keeps `restic prune` out, restic's lock keeps
/// Skyvault's prune out, and the lock of a killed restic is stale.
#[tokio::test]
async fn skyvault_and_restic_honour_each_others_locks() {
    if !restic_installed() {
        return;
    }
    let f = fixture().await;
    f.back_up(
        &f.request(ItemId::new(), Workload::Mailbox, "Alice"),
        &small_corpus(),
    )
    .await;
    let password = f
        .storage
        .reveal_repository_password(f.customer)
        .await
        .unwrap();

    // Skyvault holds a shared lock: restic lists it, and restic prune refuses.
    let (release, backup) = blocked_backup(
        &f.storage,
        f.request(ItemId::new(), Workload::Mailbox, "Bob"),
    );
    wait_for_locks(&f, 1).await;
    let listed = restic(&f, &password, &["list", "locks", "--no-lock"]);
    assert!(listed.status.success());
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 1);
    let cat = restic(
        &f,
        &password,
        &[
            "cat",
            "lock",
            String::from_utf8_lossy(&listed.stdout).trim(),
            "--no-lock",
        ],
    );
    let shown: String = String::from_utf8_lossy(&cat.stdout)
        .split_whitespace()
        .collect();
    assert!(
        cat.status.success(),
        "{}",
        String::from_utf8_lossy(&cat.stderr)
    );
    assert!(shown.contains("\"exclusive\":false"), "{shown}");
    assert!(
        shown.contains(&format!("\"pid\":{}", std::process::id())),
        "{shown}"
    );
    let prune = restic(&f, &password, &["prune"]);
    assert!(
        !prune.status.success(),
        "restic pruned beside a Skyvault backup"
    );
    assert!(
        String::from_utf8_lossy(&prune.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    release.send(()).unwrap();
    backup.await.unwrap().unwrap();
    assert_eq!(f.lock_count(), 0);

    // restic holds a shared lock while it reads a backup from stdin: Skyvault backs up beside it
    // but does not prune.
    let mut restic_backup = restic_reading_stdin(&f, &password);
    wait_for_locks(&f, 1).await;
    f.back_up(
        &f.request(ItemId::new(), Workload::OneDrive, "Alice"),
        &[TestItem::new(
            "Documents/a.txt",
            b"beside restic".to_vec(),
            ItemKind::File,
        )],
    )
    .await;
    let other = f.other_process(Duration::from_millis(300));
    let refused = retention::prune(&other, f.customer, PruneSettings::default()).await;
    assert!(
        matches!(refused, Err(StorageError::Locked { .. })),
        "{refused:?}"
    );

    // restic dies without removing its lock: on this host a dead process's lock is stale.
    restic_backup.kill().unwrap();
    restic_backup.wait().unwrap();
    assert_eq!(f.lock_count(), 1, "the killed restic left its lock behind");
    retention::prune(&other, f.customer, PruneSettings::default())
        .await
        .unwrap();
    super::interop::restic_check(&f).await;
}

fn restic_reading_stdin(f: &Fixture, password: &str) -> Child {
    Command::new("restic")
        .arg("-r")
        .arg(f.repository_path())
        .args(["--no-cache", "--quiet", "backup", "--stdin"])
        .env("RESTIC_PASSWORD", password)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
