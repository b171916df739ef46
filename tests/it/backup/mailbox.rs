//! Mailbox backups against the simulator: every item's full-fidelity stream and every message's
//! MIME in the repository equal what Microsoft serves; incremental runs fetch only changes;
//! moves, deletes, expired delta links, per-item export refusals, faults and cancellation lose
//! nothing; archives and group conversations; restic reads what was written.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use serde_json::{Value, json};
use skyvault::backup::{BackupError, back_up};
use skyvault::ids::ItemId;
use skyvault::m365::{MailboxApi, MailboxRef};
use skyvault::storage::{CatalogEntry, ItemKind, RecoveryPointStatus, Workload};

use super::{BackupFixture, backup_fixture};

fn by_kind(items: &[CatalogEntry], kind: ItemKind) -> Vec<&CatalogEntry> {
    items.iter().filter(|e| e.kind == kind).collect()
}

fn endpoint(counters: &Value, suffix: &str) -> u64 {
    counters["by_endpoint"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.ends_with(suffix))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

/// Every `.item` equals a fresh export and every `.eml` equals `$value`, byte for byte.
async fn assert_exact(x: &BackupFixture, user: &str, point: skyvault::storage::RecoveryPointId) {
    let graph = x.h.graph();
    let ids = x.mailbox_ids(user).await;
    let mailbox = MailboxRef {
        id: ids["primary"].as_str().unwrap().to_string(),
        owner: user.to_string(),
        api: MailboxApi::V1,
    };
    let items = x.items(point).await;
    let exports = by_kind(&items, ItemKind::MailboxItem);
    assert!(!exports.is_empty());
    let wanted: Vec<String> = exports
        .iter()
        .map(|e| e.graph_id.clone().unwrap())
        .collect();
    let mut fresh = HashMap::new();
    for chunk in wanted.chunks(20) {
        for exported in graph.export_mailbox_items(&mailbox, chunk).await.unwrap() {
            fresh.insert(exported.item_id.clone(), exported.result.unwrap().data);
        }
    }
    for entry in &exports {
        let stored = x.bytes(point, &entry.path).await;
        assert!(
            stored == fresh[entry.graph_id.as_ref().unwrap()].as_ref(),
            "{} differs from its export",
            entry.path
        );
    }
    for entry in by_kind(&items, ItemKind::Message) {
        let stored = x.bytes(point, &entry.path).await;
        let mime: Vec<bytes::Bytes> = graph
            .message_mime(user, entry.graph_id.as_ref().unwrap())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(
            stored == mime.concat(),
            "{} differs from $value",
            entry.path
        );
    }
}

#[tokio::test]
async fn a_mailbox_is_backed_up_exactly_and_then_only_its_changes_are_fetched() {
    let x = backup_fixture().await;
    let (user, _) = x.user(0).await;
    let target = x.target(&user, Workload::Mailbox, ItemId::new());

    let first = x.run(&target).await;
    let point = first.outcome.recovery_point.clone();
    assert_eq!(
        point.status,
        RecoveryPointStatus::Complete,
        "{:?}",
        first.outcome.failed
    );
    let items = x.items(point.id).await;
    let classes: HashSet<&str> = items
        .iter()
        .filter_map(|e| e.item_class.as_deref())
        .collect();
    for class in [
        "IPM.Note",
        "IPM.Appointment",
        "IPM.Contact",
        "IPM.Task",
        "IPM.StickyNote",
    ] {
        assert!(
            classes.iter().any(|c| c.starts_with(class)),
            "no {class} item in {classes:?}"
        );
    }
    assert!(
        !by_kind(&items, ItemKind::Event).is_empty(),
        "calendar items as JSON"
    );
    assert!(
        !by_kind(&items, ItemKind::Contact).is_empty(),
        "contacts as JSON"
    );
    let message = by_kind(&items, ItemKind::Message)[0].clone();
    assert!(
        message.subject.is_some() && message.sender.is_some(),
        "{message:?}"
    );
    assert_exact(&x, &user, point.id).await;

    // Nothing changed: no content is asked for, only the delta links.
    x.h.control("DELETE", "counters", None).await;
    let second = x.run(&target).await;
    assert_eq!(second.outcome.fetched, 0);
    assert_eq!(second.outcome.reused, point.item_count);
    let counters = x.counters().await;
    assert_eq!(endpoint(&counters, "exportItems"), 0);
    assert_eq!(endpoint(&counters, "$value"), 0);
    // One page of each folder's item delta, the folder delta and the mailbox lookup (v1.0 and
    // beta); the runner's own count agrees with what the simulator answered.
    let deltas = endpoint(&counters, "items/delta");
    assert_eq!(second.requests, deltas + 3, "{counters}");
    assert_eq!(counters["total"].as_u64().unwrap(), second.requests);
    assert!(second.requests < first.requests);

    // The user adds a message, edits one, moves one and deletes one.
    let base = format!("tenants/default/users/{user}/mailbox/items");
    let added =
        x.h.control(
            "POST",
            &base,
            Some(json!({"type": "message", "subject": "Quarterly numbers", "body": "Q3"})),
        )
        .await;
    let exports = by_kind(&items, ItemKind::MailboxItem);
    let notes: Vec<&&CatalogEntry> = exports
        .iter()
        .filter(|e| e.item_class.as_deref() == Some("IPM.Note"))
        .collect();
    let edited = notes[0].graph_id.clone().unwrap();
    let moved = notes[1].graph_id.clone().unwrap();
    let deleted = notes[2].graph_id.clone().unwrap();
    x.h.control(
        "PATCH",
        &format!("{base}/{edited}"),
        Some(json!({"categories": ["Red category"], "flagged": true})),
    )
    .await;
    x.h.control(
        "POST",
        &format!("{base}/{moved}/move"),
        Some(json!({"folder": "deleteditems"})),
    )
    .await;
    x.h.control("DELETE", &format!("{base}/{deleted}"), None)
        .await;

    x.h.control("DELETE", "counters", None).await;
    let third = x.run(&target).await;
    let point3 = third.outcome.recovery_point.clone();
    assert_eq!(
        point3.status,
        RecoveryPointStatus::Complete,
        "{:?}",
        third.outcome.failed
    );
    // The new and the edited message: their export and their MIME each; the moved one: only
    // its export stream (Exchange gives a moved item a new change key), never its MIME.
    assert_eq!(third.outcome.fetched, 5, "only changes are fetched");
    let counters = x.counters().await;
    assert_eq!(
        endpoint(&counters, "exportItems"),
        1,
        "one batch for all three"
    );
    assert_eq!(
        endpoint(&counters, "$value"),
        2,
        "the moved message's MIME is carried over"
    );
    let after = x.items(point3.id).await;
    let ids_after: HashSet<String> = after.iter().filter_map(|e| e.graph_id.clone()).collect();
    assert!(
        !ids_after.contains(&deleted),
        "the deleted item left the new point"
    );
    assert!(ids_after.contains(added["id"].as_str().unwrap()));
    let moved_entry = after
        .iter()
        .find(|e| e.graph_id.as_deref() == Some(moved.as_str()) && e.kind == ItemKind::MailboxItem)
        .unwrap();
    let moved_before = exports
        .iter()
        .find(|e| e.graph_id.as_deref() == Some(moved.as_str()))
        .unwrap();
    assert_ne!(
        moved_entry.path, moved_before.path,
        "the moved item is in its new folder"
    );
    // The older point still has the deleted item.
    let before: HashSet<String> = x
        .items(point.id)
        .await
        .iter()
        .filter_map(|e| e.graph_id.clone())
        .collect();
    assert!(before.contains(&deleted));
    assert_exact(&x, &user, point3.id).await;
    crate::storage::interop::restic_check(&x.f).await;

    // Without Skyvault: `restic dump` of a message gives the MIME Microsoft served.
    if crate::storage::interop::restic_installed() {
        let password =
            x.f.storage
                .reveal_repository_password(x.f.customer)
                .await
                .unwrap();
        let eml = by_kind(&after, ItemKind::Message)[0];
        let dumped = crate::storage::interop::restic(
            &x.f,
            &password,
            &[
                "dump",
                &point3.snapshot_id,
                &format!("/mailbox/{}", eml.path),
            ],
        );
        assert!(
            dumped.status.success(),
            "{}",
            String::from_utf8_lossy(&dumped.stderr)
        );
        assert_eq!(dumped.stdout, x.bytes(point3.id, &eml.path).await);
        let parsed = mail_parser::MessageParser::new()
            .parse(&dumped.stdout)
            .unwrap();
        assert!(parsed.subject().is_some(), "a valid message");
    }
}

#[tokio::test]
async fn an_expired_delta_link_enumerates_again_without_fetching_unchanged_items() {
    let x = backup_fixture().await;
    let (user, _) = x.user(0).await;
    let target = x.target(&user, Workload::Mailbox, ItemId::new());
    let first = x.run(&target).await;
    x.h.control(
        "POST",
        &format!("tenants/default/users/{user}/mailbox/resync"),
        None,
    )
    .await;
    x.h.control("DELETE", "counters", None).await;
    let second = x.run(&target).await;
    assert_eq!(
        second.outcome.recovery_point.status,
        RecoveryPointStatus::Complete
    );
    assert_eq!(
        second.outcome.fetched, 0,
        "unchanged content is reused after a resync"
    );
    assert_eq!(
        second.outcome.recovery_point.item_count,
        first.outcome.recovery_point.item_count
    );
    assert_eq!(endpoint(&x.counters().await, "exportItems"), 0);
}

#[tokio::test]
async fn an_item_microsoft_refuses_to_export_is_reported_and_taken_next_time() {
    let x = backup_fixture().await;
    let (user, _) = x.user(0).await;
    let target = x.target(&user, Workload::Mailbox, ItemId::new());
    let first = x.run(&target).await;
    let items = x.items(first.outcome.recovery_point.id).await;
    let victim = by_kind(&items, ItemKind::MailboxItem)[3].clone();
    let victim_id = victim.graph_id.clone().unwrap();
    let base = format!("tenants/default/users/{user}/mailbox/items/{victim_id}");
    // Changed, then refused: the previous version stays and the point says why.
    x.h.control(
        "PATCH",
        &base,
        Some(json!({"categories": ["Blue category"]})),
    )
    .await;
    x.h.control("PUT", &format!("{base}/export-failure"), None)
        .await;
    let second = x.run(&target).await;
    let point = &second.outcome.recovery_point;
    assert_eq!(point.status, RecoveryPointStatus::Partial);
    let failed = &second.outcome.failed;
    assert!(
        failed
            .iter()
            .any(|f| f.graph_id.as_deref() == Some(victim_id.as_str())
                && f.reason.contains("could not export")),
        "{failed:?}"
    );
    let kept = x.bytes(point.id, &victim.path).await;
    assert_eq!(
        kept,
        x.bytes(first.outcome.recovery_point.id, &victim.path).await
    );

    x.h.control("DELETE", &format!("{base}/export-failure"), None)
        .await;
    let third = x.run(&target).await;
    assert_eq!(
        third.outcome.recovery_point.status,
        RecoveryPointStatus::Complete
    );
    assert!(
        third.outcome.fetched >= 1,
        "the refused item is asked for again"
    );
}

#[tokio::test]
async fn throttling_and_broken_connections_are_ridden_out() {
    let x = backup_fixture().await;
    let (user, _) = x.user(0).await;
    x.h.control(
        "PUT",
        "faults/mail",
        Some(
            json!({"rate_429": 10.0, "rate_503": 5.0, "rate_connection_reset": 3.0,
                    "retry_after_seconds": 0.05}),
        ),
    )
    .await;
    let target = x.target(&user, Workload::Mailbox, ItemId::new());
    let report = x.run(&target).await;
    x.h.control("DELETE", "faults", None).await;
    // Whatever a fault took is reported, never silently missing; a clean run then completes.
    let point = report.outcome.recovery_point.clone();
    let listed = x.items(point.id).await.len() as u64 + report.outcome.failed.len() as u64;
    assert!(listed >= point.item_count);
    let next = x.run(&target).await;
    assert_eq!(
        next.outcome.recovery_point.status,
        RecoveryPointStatus::Complete
    );
    assert_exact(&x, &user, next.outcome.recovery_point.id).await;
}

#[tokio::test]
async fn a_backup_cancelled_mid_run_leaves_no_point_and_the_next_run_completes() {
    let x = backup_fixture().await;
    let (user, _) = x.user(0).await;
    let target = x.target(&user, Workload::Mailbox, ItemId::new());
    x.h.control("PUT", "faults/mail", Some(json!({"latency_ms": 30})))
        .await;
    let cancelled = tokio::time::timeout(
        std::time::Duration::from_millis(400),
        back_up(&x.services, &target, &()),
    )
    .await;
    assert!(cancelled.is_err(), "the backup was still running");
    x.h.control("DELETE", "faults", None).await;
    let report = x.run(&target).await;
    assert_eq!(
        report.outcome.recovery_point.seq, 1,
        "the cancelled run recorded nothing"
    );
    assert_eq!(
        report.outcome.recovery_point.status,
        RecoveryPointStatus::Complete
    );
    crate::storage::interop::restic_check(&x.f).await;
}

#[tokio::test]
async fn an_archive_mailbox_is_backed_up_and_a_user_without_one_is_told_so() {
    let x = backup_fixture().await;
    let (with_archive, _) = x.user(1).await;
    let target = x.target(&with_archive, Workload::ArchiveMailbox, ItemId::new());
    let report = x.run(&target).await;
    let point = &report.outcome.recovery_point;
    assert_eq!(
        point.status,
        RecoveryPointStatus::Complete,
        "{:?}",
        report.outcome.failed
    );
    assert!(point.item_count > 0);
    assert!(
        !report.notes.is_empty(),
        "the job says what an archive backup keeps"
    );

    let (without, _) = x.user(2).await;
    let target = x.target(&without, Workload::ArchiveMailbox, ItemId::new());
    match back_up(&x.services, &target, &()).await {
        Err(BackupError::Unavailable(reason)) => assert!(reason.contains("archive"), "{reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_groups_conversations_are_kept_and_unchanged_threads_are_not_listed_again() {
    let x = backup_fixture().await;
    let groups: Vec<_> = x.h.graph().groups().try_collect().await.unwrap();
    let group = groups
        .iter()
        .find(|g| g.group_types.iter().any(|t| t == "Unified"))
        .expect("a Microsoft 365 group");
    let target = x.target(&group.id, Workload::GroupMailbox, ItemId::new());
    let first = x.run(&target).await;
    let items = x.items(first.outcome.recovery_point.id).await;
    let posts = by_kind(&items, ItemKind::Post);
    assert!(!posts.is_empty(), "posts are kept");
    let stored: Value = serde_json::from_slice(
        &x.bytes(first.outcome.recovery_point.id, &posts[0].path)
            .await,
    )
    .unwrap();
    assert!(stored["body"].is_object(), "a post's Graph JSON: {stored}");

    x.h.control("DELETE", "counters", None).await;
    let second = x.run(&target).await;
    assert_eq!(second.outcome.fetched, 0);
    assert_eq!(endpoint(&x.counters().await, "/posts"), 0);
}

/// Collects what a backup reports.
#[derive(Default)]
struct Collected(std::sync::Mutex<Vec<skyvault::backup::Progress>>);

impl skyvault::backup::ProgressSink for Collected {
    fn report(&self, progress: &skyvault::backup::Progress) {
        self.0.lock().unwrap().push(progress.clone());
    }
}

#[tokio::test]
async fn a_backup_reports_its_progress_until_every_item_is_done() {
    let x = backup_fixture().await;
    let (user, _) = x.user(0).await;
    let target = x.target(&user, Workload::Mailbox, ItemId::new());
    let sink = Collected::default();
    let report = back_up(&x.services, &target, &sink).await.unwrap();
    let seen = sink.0.lock().unwrap();
    assert!(
        seen.iter().any(|p| p.current.is_some()),
        "it names the folder it reads"
    );
    let last = seen.last().unwrap();
    assert_eq!(last.items_total, Some(last.items_seen));
    assert!(last.items_seen > 0);
    assert_eq!(last.items_done, last.items_seen, "every item is done");
    assert!(
        report.outcome.fetched >= last.items_seen,
        "an export stream each at least"
    );
}

#[tokio::test]
async fn hostile_folder_names_become_safe_paths_and_restic_checks_the_repository() {
    let x = backup_fixture().await;
    let (user, _) = x.user(0).await;
    let long = "L".repeat(255);
    let names = [
        "a/b",
        "a\u{2215}b",
        "..",
        "bell\u{7}tab\tend",
        long.as_str(),
    ];
    let mut folder_ids = Vec::new();
    for name in names {
        let created =
            x.h.control(
                "POST",
                &format!("tenants/default/graph/users/{user}/mailFolders"),
                Some(json!({"displayName": name})),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        x.h.control(
            "POST",
            &format!("tenants/default/users/{user}/mailbox/items"),
            Some(json!({"type": "message", "folder": id, "subject": format!("in {name}")})),
        )
        .await;
        folder_ids.push(id);
    }
    let target = x.target(&user, Workload::Mailbox, ItemId::new());
    let report = x.run(&target).await;
    let point = report.outcome.recovery_point.clone();
    assert_eq!(
        point.status,
        RecoveryPointStatus::Complete,
        "{:?}",
        report.outcome.failed
    );
    let items = x.items(point.id).await;
    let dirs: HashSet<String> = items
        .iter()
        .map(|e| {
            e.path
                .rsplit_once('/')
                .map_or(String::new(), |(d, _)| d.to_string())
        })
        .collect();
    for dir in &dirs {
        for part in dir.split('/') {
            assert!(!part.is_empty() && part != "." && part != "..", "{dir}");
            assert!(part.len() <= 255, "{dir}");
            assert!(!part.chars().any(char::is_control), "{dir:?}");
        }
    }
    // Five folders, five distinct places, each with its message.
    let subjects: HashSet<String> = by_kind(&items, ItemKind::Message)
        .iter()
        .filter_map(|e| e.subject.clone())
        .filter(|s| s.starts_with("in "))
        .collect();
    assert_eq!(subjects.len(), names.len(), "{subjects:?}");
    let homes: HashSet<&str> = by_kind(&items, ItemKind::Message)
        .iter()
        .filter(|e| e.subject.as_deref().is_some_and(|s| s.starts_with("in ")))
        .map(|e| e.path.rsplit_once('/').unwrap().0)
        .collect();
    assert_eq!(homes.len(), names.len(), "{homes:?}");
    crate::storage::interop::restic_check(&x.f).await;
}
