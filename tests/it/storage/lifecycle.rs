//! Retention, deletion, prune and verify.

use std::collections::HashSet;

use chrono::Duration;
use skyvault::ids::ItemId;
use skyvault::storage::{
    ItemKind, PruneSettings, RetentionRule, VerifyScope, Workload, catalog, read, retention, verify,
};

use super::fixture::{TestItem, count_files, fixture, random_bytes, small_corpus};

fn prune_now() -> PruneSettings {
    PruneSettings {
        instant_delete: true,
        ..PruneSettings::default()
    }
}

#[tokio::test]
async fn retention_keeps_exactly_what_the_rules_say() {
    let f = fixture().await;
    let mut items = small_corpus();
    items.truncate(6);
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let mut points = Vec::new();
    for day in 0..6u64 {
        // Each day one message changes, so points differ.
        let i = usize::try_from(day).unwrap();
        items[i] = items[i].edited(random_bytes(500 + day, 2_000));
        points.push(f.back_up(&request, &items).await.recovery_point);
        f.clock.advance(Duration::days(1));
    }
    let archive = points[0].archive;

    let report =
        retention::apply_retention(&f.storage, &f.scope(), archive, RetentionRule::KeepLast(3))
            .await
            .unwrap();
    let removed: Vec<i64> = report.removed.iter().map(|p| p.seq).collect();
    assert_eq!(removed, [1, 2, 3]);
    let left: Vec<i64> = catalog::list_recovery_points(f.storage.db(), &f.scope(), archive)
        .await
        .unwrap()
        .iter()
        .map(|p| p.seq)
        .collect();
    assert_eq!(left, [4, 5, 6]);
    assert_eq!(count_files(&f.repository_path().join("snapshots")), 3);

    // The clock is one day after the last backup: points are 3, 2 and 1 days old.
    let report = retention::apply_retention(
        &f.storage,
        &f.scope(),
        archive,
        RetentionRule::KeepYoungerThanDays(2),
    )
    .await
    .unwrap();
    assert_eq!(
        report.removed.iter().map(|p| p.seq).collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(report.kept, [points[5].id]);

    // The kept point still browses and reads every item, and the catalog holds one row per item.
    let listed = catalog::list_items(f.storage.db(), &f.scope(), points[5].id)
        .await
        .unwrap();
    assert_eq!(listed.len(), items.len());
    for item in &items {
        let bytes = read::read_item_to_vec(&f.storage, &f.scope(), points[5].id, &item.path)
            .await
            .unwrap();
        assert!(bytes == *item.bytes);
    }
    assert_eq!(
        catalog::count_entry_rows(f.storage.db(), archive)
            .await
            .unwrap(),
        items.len() as u64
    );

    // Deleting the newest point makes the one before it the parent again.
    let next = f.back_up(&request, &items).await;
    assert_eq!(next.recovery_point.seq, 7);
    assert_eq!(next.reused, items.len() as u64);
    retention::delete_recovery_points(&f.storage, &f.scope(), archive, &[next.recovery_point.id])
        .await
        .unwrap();
    let again = f.back_up(&request, &items).await;
    assert_eq!(again.recovery_point.seq, 8);
    assert_eq!(again.reused, items.len() as u64);
    assert_eq!(
        catalog::list_items(f.storage.db(), &f.scope(), again.recovery_point.id)
            .await
            .unwrap()
            .len(),
        items.len()
    );
}

#[tokio::test]
async fn prune_reclaims_space_and_keeps_every_byte_a_kept_point_needs() {
    let f = fixture().await;
    let mut items: Vec<TestItem> = (0..20)
        .map(|i| {
            TestItem::new(
                &format!("Docs/d{i:02}.bin"),
                random_bytes(i, 60_000),
                ItemKind::File,
            )
        })
        .collect();
    let request = f.request(ItemId::new(), Workload::OneDrive, "Alice");
    f.back_up(&request, &items).await;
    for round in 1..3u64 {
        for (i, item) in items.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
            *item = item.edited(random_bytes(round * 1000 + i as u64, 60_000));
        }
        f.clock.advance(Duration::days(1));
        f.back_up(&request, &items).await;
    }
    let archive = catalog::list_archives(f.storage.db(), &f.scope())
        .await
        .unwrap()[0]
        .id;
    retention::apply_retention(&f.storage, &f.scope(), archive, RetentionRule::KeepLast(1))
        .await
        .unwrap();

    let report = retention::prune(&f.storage, f.customer, prune_now())
        .await
        .unwrap();
    assert!(report.bytes_reclaimed > 0, "{report:?}");
    assert!(report.pack_bytes_after < report.pack_bytes_before);

    let check = verify::verify(&f.storage, f.customer, VerifyScope::AllData)
        .await
        .unwrap();
    assert!(check.ok, "{check:?}");
    let kept = catalog::list_recovery_points(f.storage.db(), &f.scope(), archive)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    for item in &items {
        let bytes = read::read_item_to_vec(&f.storage, &f.scope(), kept[0].id, &item.path)
            .await
            .unwrap();
        assert!(bytes == *item.bytes, "{} lost by prune", item.path);
    }
    super::interop::restic_check(&f).await;
}

#[tokio::test]
async fn deleting_an_archive_forgets_it_and_prune_reclaims_its_space() {
    let f = fixture().await;
    let items = small_corpus();
    let alice = f
        .back_up(
            &f.request(ItemId::new(), Workload::Mailbox, "Alice"),
            &items,
        )
        .await;
    let bob_items = vec![TestItem::new(
        "Inbox/b.eml",
        random_bytes(77, 50_000),
        ItemKind::Message,
    )];
    let bob = f
        .back_up(
            &f.request(ItemId::new(), Workload::Mailbox, "Bob"),
            &bob_items,
        )
        .await;

    let deleted = retention::delete_archive(&f.storage, &f.scope(), alice.archive.id)
        .await
        .unwrap();
    assert_eq!(deleted.removed.len(), 1);
    let left = catalog::list_archives(f.storage.db(), &f.scope())
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|a| a.id).collect::<Vec<_>>(),
        [bob.archive.id]
    );
    assert!(
        catalog::find_recovery_point(f.storage.db(), &f.scope(), alice.recovery_point.id)
            .await
            .is_err()
    );

    let report = retention::prune(&f.storage, f.customer, prune_now())
        .await
        .unwrap();
    assert!(
        report.bytes_reclaimed > 6 << 20,
        "the 6 MiB video should be gone: {report:?}"
    );
    let bytes =
        read::read_item_to_vec(&f.storage, &f.scope(), bob.recovery_point.id, "Inbox/b.eml")
            .await
            .unwrap();
    assert!(bytes == *bob_items[0].bytes);
    let check = verify::verify(&f.storage, f.customer, VerifyScope::AllData)
        .await
        .unwrap();
    assert!(check.ok, "{check:?}");
}

#[tokio::test]
async fn verify_reports_a_damaged_pack_with_the_archives_it_affects() {
    let f = fixture().await;
    let alice_items = vec![TestItem::new(
        "Docs/a.bin",
        random_bytes(1, 300_000),
        ItemKind::File,
    )];
    let alice = f
        .back_up(
            &f.request(ItemId::new(), Workload::OneDrive, "Alice"),
            &alice_items,
        )
        .await;
    let packs_before = pack_files(&f.repository_path());
    let bob_items = vec![TestItem::new(
        "Docs/b.bin",
        random_bytes(2, 300_000),
        ItemKind::File,
    )];
    let bob = f
        .back_up(
            &f.request(ItemId::new(), Workload::OneDrive, "Bob"),
            &bob_items,
        )
        .await;

    let healthy = verify::verify(&f.storage, f.customer, VerifyScope::AllData)
        .await
        .unwrap();
    assert!(
        healthy.ok && healthy.damaged_packs.is_empty(),
        "{healthy:?}"
    );
    assert_eq!(healthy.snapshots_checked, 2);

    // Damage the largest pack Bob's backup wrote (his data): flip bytes in its middle.
    let bob_pack = pack_files(&f.repository_path())
        .difference(&packs_before)
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .cloned()
        .unwrap();
    let mut bytes = std::fs::read(&bob_pack).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xff;
    }
    std::fs::write(&bob_pack, bytes).unwrap();

    let report = verify::verify(&f.storage, f.customer, VerifyScope::AllData)
        .await
        .unwrap();
    assert!(!report.ok, "a damaged pack must fail verify");
    assert_eq!(report.damaged_packs.len(), 1, "{report:?}");
    let damaged = &report.damaged_packs[0];
    assert_eq!(
        bob_pack.file_name().unwrap().to_str().unwrap(),
        damaged.pack_id
    );
    assert_eq!(damaged.affected_archives, [bob.archive.id]);
    assert_eq!(damaged.affected_recovery_points, [bob.recovery_point.id]);
    assert_ne!(alice.archive.id, bob.archive.id);
}

fn pack_files(repo: &std::path::Path) -> HashSet<std::path::PathBuf> {
    let mut packs = HashSet::new();
    for dir in std::fs::read_dir(repo.join("data")).unwrap().flatten() {
        for pack in std::fs::read_dir(dir.path()).unwrap().flatten() {
            packs.insert(pack.path());
        }
    }
    packs
}

#[tokio::test]
async fn backups_of_two_archives_run_at_the_same_time() {
    let f = fixture().await;
    let items = small_corpus();
    let alice = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let bob = f.request(ItemId::new(), Workload::OneDrive, "Bob");
    let (a, b) = tokio::join!(f.back_up(&alice, &items), f.back_up(&bob, &items));
    assert_eq!(a.recovery_point.item_count, items.len() as u64);
    assert_eq!(b.recovery_point.item_count, items.len() as u64);
    let check = verify::verify(&f.storage, f.customer, VerifyScope::AllData)
        .await
        .unwrap();
    assert!(check.ok, "{check:?}");
    assert_eq!(check.snapshots_checked, 2);
    for point in [a.recovery_point.id, b.recovery_point.id] {
        let bytes = read::read_item_to_vec(&f.storage, &f.scope(), point, &items[0].path)
            .await
            .unwrap();
        assert!(bytes == *items[0].bytes);
    }
}

#[tokio::test]
async fn prune_forgets_snapshots_the_catalog_never_recorded_once_old_enough() {
    use sea_orm::ConnectionTrait;
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let recorded = f.back_up(&request, &items).await;
    // A crash between saving the snapshot and recording it leaves a snapshot the catalog lacks:
    // make one by removing the catalog's record of a second backup.
    f.clock.advance(Duration::days(1));
    let lost = f.back_up(&request, &items).await;
    let db = f.storage.db();
    let placeholder = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "$1",
        _ => "?",
    };
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        format!("DELETE FROM storage_recovery_point WHERE id = {placeholder}"),
        [lost.recovery_point.id.0.into()],
    ))
    .await
    .unwrap();
    assert!(
        catalog::find_recovery_point(f.storage.db(), &f.scope(), lost.recovery_point.id)
            .await
            .is_err()
    );

    // Within the grace period it may be a backup still being recorded: kept.
    let report = retention::prune(&f.storage, f.customer, prune_now())
        .await
        .unwrap();
    assert!(report.orphan_snapshots_forgotten.is_empty());
    assert_eq!(count_files(&f.repository_path().join("snapshots")), 2);

    f.clock.advance(Duration::days(2));
    let report = retention::prune(&f.storage, f.customer, prune_now())
        .await
        .unwrap();
    assert_eq!(report.orphan_snapshots_forgotten.len(), 1);
    assert_eq!(
        report.orphan_snapshots_forgotten[0],
        lost.recovery_point.snapshot_id
    );
    assert_eq!(count_files(&f.repository_path().join("snapshots")), 1);
    let bytes = read::read_item_to_vec(
        &f.storage,
        &f.scope(),
        recorded.recovery_point.id,
        &items[0].path,
    )
    .await
    .unwrap();
    assert!(bytes == *items[0].bytes);
}

/// What a folder page says a folder holds, for every folder of a point.
async fn folder_counts(
    f: &super::fixture::Fixture,
    point: catalog::RecoveryPointId,
) -> Vec<(String, u64)> {
    let mut counts = Vec::new();
    let mut folders = catalog::list_folders(f.storage.db(), &f.scope(), point)
        .await
        .unwrap();
    folders.insert(0, String::new());
    for folder in folders {
        let page = catalog::folder_page(
            f.storage.db(),
            &f.scope(),
            point,
            &catalog::FolderPageQuery {
                folder: folder.clone(),
                order: catalog::ItemOrder::Name,
                descending: false,
                offset: 0,
                limit: 100,
                collapse_exports: false,
            },
        )
        .await
        .unwrap();
        assert_eq!(page.items.len() as u64, page.total, "{folder}");
        counts.push((folder, page.total));
    }
    counts
}

async fn summary_rows(f: &super::fixture::Fixture, point: catalog::RecoveryPointId) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = f.storage.db();
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT count(*) AS n FROM storage_point_folder WHERE point_id = $1"
        }
        _ => "SELECT count(*) AS n FROM storage_point_folder WHERE point_id = ?",
    };
    db.query_one_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [point.0.into()],
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get::<i64>("", "n")
    .unwrap()
}

#[tokio::test]
async fn every_point_keeps_its_own_folders_and_counts_through_later_backups_and_retention() {
    let f = fixture().await;
    let first_items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let first = f.back_up(&request, &first_items).await.recovery_point;
    // Recorded with the point, before anyone opens it.
    assert_eq!(summary_rows(&f, first.id).await, 4);
    // The next day the Documents folder is gone and a nested folder appears.
    let mut second_items: Vec<TestItem> = first_items
        .iter()
        .filter(|item| !item.path.starts_with("Documents/"))
        .cloned()
        .collect();
    f.clock.advance(Duration::days(1));
    second_items.push(TestItem::new(
        "Inbox/Projects/Apollo/AAMkAD9999.eml",
        random_bytes(99, 3_000),
        ItemKind::Message,
    ));
    let second = f.back_up(&request, &second_items).await.recovery_point;

    let expected_first = vec![
        (String::new(), 0),
        ("Documents".to_string(), 3),
        ("Inbox".to_string(), 8),
        ("Sent Items".to_string(), 4),
    ];
    assert_eq!(folder_counts(&f, first.id).await, expected_first);
    assert_eq!(
        folder_counts(&f, second.id).await,
        vec![
            (String::new(), 0),
            ("Inbox".to_string(), 8),
            ("Inbox/Projects".to_string(), 0),
            ("Inbox/Projects/Apollo".to_string(), 1),
            ("Sent Items".to_string(), 4),
        ]
    );

    // A point recorded before summaries existed gets the same one on its first open.
    use sea_orm::ConnectionTrait;
    let db = f.storage.db();
    let delete = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "DELETE FROM storage_point_folder WHERE point_id = $1",
        _ => "DELETE FROM storage_point_folder WHERE point_id = ?",
    };
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        delete,
        [first.id.0.into()],
    ))
    .await
    .unwrap();
    assert_eq!(summary_rows(&f, first.id).await, 0);
    assert_eq!(folder_counts(&f, first.id).await, expected_first);
    assert_eq!(summary_rows(&f, first.id).await, 4);

    // Deleting a point deletes its summary; the other point's stays.
    retention::delete_recovery_points(&f.storage, &f.scope(), first.archive, &[first.id])
        .await
        .unwrap();
    assert_eq!(summary_rows(&f, first.id).await, 0);
    assert_eq!(summary_rows(&f, second.id).await, 5);
}
