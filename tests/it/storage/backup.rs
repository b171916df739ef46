//! Backups: round trip, reuse of unchanged items, incremental size, deduplication, partial
//! points and cancelled backups.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt, stream};
use skyvault::ids::ItemId;
use skyvault::storage::{
    BrowseEntry, ItemContent, ItemKind, ItemMetadata, RecoveryPointStatus, SearchQuery, SourceItem,
    Workload, catalog, ingest, read,
};

use super::fixture::{
    Fixture, TestItem, count_files, fixture, mime_message, random_bytes, small_corpus,
};

#[tokio::test]
async fn round_trip_is_byte_exact_and_the_catalog_browses_and_searches() {
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let outcome = f.back_up(&request, &items).await;
    let point = &outcome.recovery_point;
    assert_eq!(point.status, RecoveryPointStatus::Complete);
    assert_eq!(point.item_count, items.len() as u64);
    assert_eq!(outcome.fetched, items.len() as u64);
    assert_eq!(point.seq, 1);

    for item in &items {
        let bytes = read::read_item_to_vec(&f.storage, &f.scope(), point.id, &item.path)
            .await
            .unwrap();
        assert!(
            bytes == *item.bytes,
            "{} differs after the round trip",
            item.path
        );
    }

    let top = catalog::browse(f.storage.db(), &f.scope(), point.id, "")
        .await
        .unwrap();
    let folders: Vec<&str> = top
        .iter()
        .filter_map(|e| match e {
            BrowseEntry::Folder { name, .. } => Some(name.as_str()),
            BrowseEntry::Item(_) => None,
        })
        .collect();
    assert_eq!(folders, ["Documents", "Inbox", "Sent Items"]);
    let inbox = catalog::browse(f.storage.db(), &f.scope(), point.id, "Inbox")
        .await
        .unwrap();
    assert_eq!(inbox.len(), 8);

    let search = |query: SearchQuery| {
        let db = f.storage.db().clone();
        let id = point.id;
        let scope = f.scope();
        async move { catalog::search(&db, &scope, id, &query).await.unwrap() }
    };
    let hits = search(SearchQuery {
        subject: Some("REPORT 5".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].sender.as_deref(),
        Some("Alice Example <alice@example.com>")
    );
    let hits = search(SearchQuery {
        sender: Some("alice@".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(hits.len(), 12);
    let hits = search(SearchQuery {
        recipient: Some("bob3@".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].path, "Sent Items/AAMkAD0003.eml");
    let hits = search(SearchQuery {
        file_name: Some("video".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].size, 6 << 20);
    let hits = search(SearchQuery {
        sent_after: Some(super::fixture::start_time()),
        ..Default::default()
    })
    .await;
    assert_eq!(hits.len(), 12, "every message is dated 2 November 2026");
}

#[tokio::test]
async fn unchanged_rerun_adds_no_pack_reads_nothing_and_adds_no_catalog_row() {
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let fetches = Arc::new(AtomicUsize::new(0));
    let first = f.back_up_counting(&request, &items, &fetches).await;
    assert_eq!(fetches.load(Ordering::SeqCst), items.len());
    let packs = f.pack_count();
    assert!(packs > 0);

    f.clock.advance(chrono::Duration::days(1));
    let fetches = Arc::new(AtomicUsize::new(0));
    let second = f.back_up_counting(&request, &items, &fetches).await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        0,
        "an unchanged item was read again"
    );
    assert_eq!(second.reused, items.len() as u64);
    assert_eq!(second.recovery_point.reused_count, items.len() as u64);
    assert_eq!(second.recovery_point.bytes_added, 0);
    assert_eq!(f.pack_count(), packs, "an unchanged backup added a pack");
    assert_eq!(second.recovery_point.seq, first.recovery_point.seq + 1);
    let rows = catalog::count_entry_rows(f.storage.db(), first.archive.id)
        .await
        .unwrap();
    assert_eq!(
        rows,
        items.len() as u64,
        "unchanged items must share their catalog rows"
    );

    // Both points still read back the same bytes.
    for point in [&first.recovery_point, &second.recovery_point] {
        let bytes = read::read_item_to_vec(&f.storage, &f.scope(), point.id, &items[0].path)
            .await
            .unwrap();
        assert!(bytes == *items[0].bytes);
    }
    // The unchanged point is a snapshot of its own (on the parent's tree) that restic accepts.
    assert_ne!(
        second.recovery_point.snapshot_id,
        first.recovery_point.snapshot_id
    );
    super::interop::restic_check(&f).await;
}

#[tokio::test]
async fn an_unchanged_backup_whose_parent_snapshot_was_removed_by_hand_backs_up_in_full() {
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let first = f.back_up(&request, &items).await;
    // What `restic forget <id>` run by an operator leaves: the catalog still lists the point.
    std::fs::remove_file(
        f.repository_path()
            .join("snapshots")
            .join(&first.recovery_point.snapshot_id),
    )
    .unwrap();

    f.clock.advance(chrono::Duration::days(1));
    let fetches = Arc::new(AtomicUsize::new(0));
    let second = f.back_up_counting(&request, &items, &fetches).await;
    assert_eq!(second.recovery_point.status, RecoveryPointStatus::Complete);
    assert_eq!(second.failed, vec![]);
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        items.len(),
        "without a parent snapshot every item is read again"
    );
    for item in &items {
        let bytes =
            read::read_item_to_vec(&f.storage, &f.scope(), second.recovery_point.id, &item.path)
                .await
                .unwrap();
        assert!(bytes == *item.bytes, "{} differs", item.path);
    }
    super::interop::restic_check(&f).await;
}

#[tokio::test]
async fn one_percent_changed_adds_about_one_percent() {
    let f = fixture().await;
    let mut items: Vec<TestItem> = (0..100)
        .map(|i| {
            TestItem::new(
                &format!("Files/f{i:03}.bin"),
                random_bytes(i, 40_000),
                ItemKind::File,
            )
        })
        .collect();
    let total: usize = items.iter().map(|i| i.bytes.len()).sum();
    let request = f.request(ItemId::new(), Workload::OneDrive, "Alice's OneDrive");
    let first = f.back_up(&request, &items).await;
    assert!(first.recovery_point.bytes_added as usize > total / 2);

    items[42] = items[42].edited(random_bytes(4242, 40_000));
    f.clock.advance(chrono::Duration::days(1));
    let fetches = Arc::new(AtomicUsize::new(0));
    let second = f.back_up_counting(&request, &items, &fetches).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(second.fetched, 1);
    let added = second.recovery_point.bytes_added as usize;
    assert!(
        added >= 40_000 * 9 / 10,
        "the changed item must be stored ({added} bytes added)"
    );
    assert!(
        added <= total * 3 / 100,
        "1 % changed added {added} of {total} bytes"
    );
    let bytes = read::read_item_to_vec(
        &f.storage,
        &f.scope(),
        second.recovery_point.id,
        "Files/f042.bin",
    )
    .await
    .unwrap();
    assert!(bytes == *items[42].bytes);
    let old = read::read_item_to_vec(
        &f.storage,
        &f.scope(),
        first.recovery_point.id,
        "Files/f042.bin",
    )
    .await
    .unwrap();
    assert!(old != bytes, "the first point keeps the old version");
    // One row per version of the changed item, one per unchanged item.
    let rows = catalog::count_entry_rows(f.storage.db(), first.archive.id)
        .await
        .unwrap();
    assert_eq!(rows, 101);
}

#[tokio::test]
async fn the_same_attachment_in_two_mailboxes_is_stored_once() {
    let f = fixture().await;
    // Large enough for content-defined chunks to find it inside both messages.
    // Each repository draws its own chunking polynomial, so where the second message's chunks
    // fall back in step with the first's varies from run to run (a few chunks, rarely more): the
    // attachment is large enough that "stored once" is certain, not lucky.
    let attachment = random_bytes(99, 12_000_000);
    let alice = vec![TestItem::new(
        "Inbox/a1.eml",
        mime_message(
            1,
            "Contract",
            "carol@example.com",
            "alice@example.com",
            Some(&attachment),
        ),
        ItemKind::Message,
    )];
    let bob = vec![TestItem::new(
        "Inbox/b1.eml",
        mime_message(
            2,
            "Fwd: Contract",
            "alice@example.com",
            "bob@example.com",
            Some(&attachment),
        ),
        ItemKind::Message,
    )];
    let first = f
        .back_up(
            &f.request(ItemId::new(), Workload::Mailbox, "Alice"),
            &alice,
        )
        .await;
    let second = f
        .back_up(&f.request(ItemId::new(), Workload::Mailbox, "Bob"), &bob)
        .await;
    let first_added = first.recovery_point.bytes_added;
    let second_added = second.recovery_point.bytes_added;
    assert!(
        first_added > 11_500_000,
        "the attachment is stored once: {first_added}"
    );
    assert!(
        second_added < first_added / 5,
        "the second mailbox stored the attachment again: {second_added} vs {first_added}"
    );
    assert_ne!(first.archive.id, second.archive.id);
}

#[tokio::test]
async fn items_that_fail_to_arrive_make_a_partial_point_and_are_taken_next_time() {
    let f = fixture().await;
    let mut items = small_corpus();
    items[3].fail_with = Some("Graph answered 503".into());
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let outcome = f.back_up(&request, &items).await;
    let point = &outcome.recovery_point;
    assert_eq!(point.status, RecoveryPointStatus::Partial);
    assert_eq!(point.failed_count, 1);
    assert_eq!(point.item_count, items.len() as u64 - 1);
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].path, items[3].path);
    assert!(outcome.failed[0].reason.contains("503"));
    let missing = catalog::find_item(f.storage.db(), &f.scope(), point.id, &items[3].path).await;
    assert!(
        missing.is_err(),
        "a failed item must not be listed in the point"
    );
    assert_eq!(
        count_files(&f.repository_path().join("snapshots")),
        1,
        "the untagged snapshot remains"
    );
    if super::interop::restic_installed() {
        let password = f
            .storage
            .reveal_repository_password(f.customer)
            .await
            .unwrap();
        let listed = super::interop::restic(&f, &password, &["snapshots", "--tag", "partial"]);
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.contains(&point.snapshot_id[..8]),
            "restic does not list the partial point's snapshot: {listed}"
        );
    }

    items[3].fail_with = None;
    f.clock.advance(chrono::Duration::hours(1));
    let fetches = Arc::new(AtomicUsize::new(0));
    let next = f.back_up_counting(&request, &items, &fetches).await;
    assert_eq!(next.recovery_point.status, RecoveryPointStatus::Complete);
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "only the failed item is fetched again"
    );
    let bytes = read::read_item_to_vec(
        &f.storage,
        &f.scope(),
        next.recovery_point.id,
        &items[3].path,
    )
    .await
    .unwrap();
    assert!(bytes == *items[3].bytes);
}

#[tokio::test]
async fn a_cancelled_backup_saves_no_snapshot_and_the_next_backup_completes() {
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let fetched = Arc::new(AtomicUsize::new(0));
    let mut sources: Vec<SourceItem> = items.iter().map(|i| i.source(&fetched)).collect();
    // The sixth item never arrives: the backup hangs there until it is cancelled.
    sources[5] = SourceItem {
        path: items[5].path.clone(),
        metadata: ItemMetadata {
            kind: Some(ItemKind::Message),
            ..ItemMetadata::default()
        },
        content: ItemContent::from_fn(|| async {
            futures::future::pending::<()>().await;
            Ok(std::io::Cursor::new(Vec::<u8>::new()))
        }),
    };
    let storage = f.storage.clone();
    let hung_request = request.clone();
    let backup = tokio::spawn(async move {
        ingest::back_up_archive(&storage, &hung_request, stream::iter(sources)).await
    });
    while fetched.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    backup.abort();
    assert!(backup.await.unwrap_err().is_cancelled());
    // Give the archiver thread time to notice and unwind; it must not save a snapshot.
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count_files(&f.repository_path().join("snapshots")), 0);

    let next = f.back_up(&request, &items).await;
    assert_eq!(next.recovery_point.status, RecoveryPointStatus::Complete);
    assert_eq!(next.recovery_point.seq, 1);
    let points = catalog::list_recovery_points(f.storage.db(), &f.scope(), next.archive.id)
        .await
        .unwrap();
    assert_eq!(points.len(), 1);
    let mut stream = read::read_item(
        &f.storage,
        &f.scope(),
        next.recovery_point.id,
        &items[5].path,
    )
    .await
    .unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert!(bytes == *items[5].bytes);
    super::interop::restic_check(&f).await;
}

#[tokio::test]
async fn duplicate_and_unsafe_paths_are_recorded_as_failed() {
    let f = fixture().await;
    let request = f.request(ItemId::new(), Workload::OneDrive, "Alice");
    let fetches = Arc::new(AtomicUsize::new(0));
    let good = TestItem::new("Docs/a.txt", b"hello".to_vec(), ItemKind::File);
    let items = vec![
        good.source(&fetches),
        TestItem::new("Docs//a.txt", b"other".to_vec(), ItemKind::File).source(&fetches),
        TestItem::new("../escape.txt", b"x".to_vec(), ItemKind::File).source(&fetches),
    ];
    let outcome = ingest::back_up_archive(&f.storage, &request, stream::iter(items))
        .await
        .unwrap();
    assert_eq!(outcome.recovery_point.status, RecoveryPointStatus::Partial);
    assert_eq!(outcome.failed.len(), 2);
    assert_eq!(outcome.recovery_point.item_count, 1);
    let bytes = read::read_item_to_vec(
        &f.storage,
        &f.scope(),
        outcome.recovery_point.id,
        "Docs/a.txt",
    )
    .await
    .unwrap();
    assert_eq!(bytes, b"hello");
}

#[tokio::test]
async fn a_folder_and_a_whole_archive_download_as_zip() {
    let f = fixture().await;
    let items = small_corpus();
    let outcome = f
        .back_up(
            &f.request(ItemId::new(), Workload::Mailbox, "Alice"),
            &items,
        )
        .await;

    let collect = |stream: read::ByteStream| async move {
        let mut stream = stream;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        bytes
    };
    let inbox = collect(
        read::read_folder_as_zip(&f.storage, &f.scope(), outcome.recovery_point.id, "Inbox")
            .await
            .unwrap(),
    )
    .await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(inbox)).unwrap();
    let inbox_items: Vec<_> = items
        .iter()
        .filter(|i| i.path.starts_with("Inbox/"))
        .collect();
    assert_eq!(zip.len(), inbox_items.len());
    for item in inbox_items {
        let mut entry = zip.by_name(&item.path).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        assert!(bytes == *item.bytes, "{} differs in the zip", item.path);
        // The item's time in Microsoft 365, to the two seconds a zip can say.
        let time = entry.last_modified().unwrap();
        assert_eq!(
            (
                time.year(),
                time.month(),
                time.day(),
                time.hour(),
                time.minute()
            ),
            (2026, 10, 29, 2, 0)
        );
    }

    let whole = collect(
        read::read_archive_as_zip(&f.storage, &f.scope(), outcome.archive.id)
            .await
            .unwrap(),
    )
    .await;
    let zip = zip::ZipArchive::new(std::io::Cursor::new(whole)).unwrap();
    assert_eq!(zip.len(), items.len());
    assert!(
        read::read_folder_as_zip(&f.storage, &f.scope(), outcome.recovery_point.id, "Nope")
            .await
            .is_err()
    );
}

/// Many incompressible items in one folder: far more than the zip chunks in flight between the
/// writer and the consumer can hold.
fn many_clips() -> Vec<TestItem> {
    (0..24u64)
        .map(|i| {
            TestItem::new(
                &format!("Videos/clip {i:02}.mp4"),
                random_bytes(500 + i, 128 << 10),
                ItemKind::File,
            )
        })
        .collect()
}

/// Takes the first chunk of a zip download and then removes every pack of the repository. A zip
/// that streams has read only the first few items (its writer waits on the bounded channel), so
/// reading the rest fails and the stream ends in an error. A zip made whole before its first byte
/// left (spooled) would end cleanly: that is what this tells apart, with no timing involved.
async fn assert_streams_before_the_last_item_is_read(f: &Fixture, mut stream: read::ByteStream) {
    let first = stream.next().await.unwrap().unwrap();
    assert!(
        first.starts_with(b"PK\x03\x04"),
        "a zip starts with a local file header"
    );
    std::fs::remove_dir_all(f.repository_path().join("data")).unwrap();
    let mut received = first.len();
    let mut ended_in_error = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => received += chunk.len(),
            Err(_) => {
                ended_in_error = true;
                break;
            }
        }
    }
    assert!(
        ended_in_error,
        "the whole zip ({received} bytes) was made before its first chunk left"
    );
}

#[tokio::test]
async fn a_folder_zip_leaves_before_its_last_item_is_read() {
    let f = fixture().await;
    let items = many_clips();
    let outcome = f
        .back_up(
            &f.request(ItemId::new(), Workload::OneDrive, "Alice"),
            &items,
        )
        .await;
    let stream =
        read::read_folder_as_zip(&f.storage, &f.scope(), outcome.recovery_point.id, "Videos")
            .await
            .unwrap();
    assert_streams_before_the_last_item_is_read(&f, stream).await;
}

#[tokio::test]
async fn a_selection_zip_leaves_before_its_last_item_is_read() {
    let f = fixture().await;
    let items = many_clips();
    let outcome = f
        .back_up(
            &f.request(ItemId::new(), Workload::OneDrive, "Alice"),
            &items,
        )
        .await;
    let stream = read::read_items_as_zip(
        &f.storage,
        &f.scope(),
        outcome.recovery_point.id,
        items.iter().map(|item| item.path.clone()).collect(),
        read::ZipLayout::Files,
    )
    .await
    .unwrap();
    assert_streams_before_the_last_item_is_read(&f, stream).await;
}

#[tokio::test]
async fn a_recovery_point_restores_into_a_folder() {
    let f = fixture().await;
    let items = small_corpus();
    let outcome = f
        .back_up(
            &f.request(ItemId::new(), Workload::OneDrive, "Alice"),
            &items,
        )
        .await;
    let target = tempfile::tempdir().unwrap();
    let report = read::restore_to_folder(
        &f.storage,
        &f.scope(),
        outcome.recovery_point.id,
        "",
        target.path(),
    )
    .await
    .unwrap();
    assert_eq!(report.files, items.len() as u64);
    for item in &items {
        let bytes = std::fs::read(target.path().join(&item.path)).unwrap();
        assert!(bytes == *item.bytes, "{} differs after restore", item.path);
    }
    let only_documents = tempfile::tempdir().unwrap();
    let report = read::restore_to_folder(
        &f.storage,
        &f.scope(),
        outcome.recovery_point.id,
        "Documents",
        only_documents.path(),
    )
    .await
    .unwrap();
    assert_eq!(report.files, 3);
    assert!(only_documents.path().join("Documents/report.docx").exists());
}
