//! The storage contract runners rely on: items matched to their previous version by Graph id and
//! change key (so a move is never fetched again), folders the source could not list keep their
//! entries, a changed item whose new bytes fail keeps its previous version, and the runner's
//! source state is stored with the point.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream;
use skyvault::ids::ItemId;
use skyvault::storage::{
    FailedItem, RecoveryPointStatus, SourceEvent, SourceState, Workload, catalog, ingest, read,
};

use super::fixture::{Fixture, TestItem, fixture, small_corpus};

/// Backs up `items` plus the unlisted folders, storing `state` (and recording the failures it
/// was given), counting fetches.
async fn back_up_events(
    f: &Fixture,
    request: &skyvault::storage::BackupRequest,
    items: &[TestItem],
    unlisted: &[&str],
    state: &str,
) -> (
    skyvault::storage::BackupOutcome,
    usize,
    Arc<std::sync::Mutex<Vec<FailedItem>>>,
) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut events: Vec<SourceEvent> = items
        .iter()
        .map(|item| SourceEvent::Item(item.source(&fetches)))
        .collect();
    for prefix in unlisted {
        events.push(SourceEvent::Unlisted {
            prefix: prefix.to_string(),
            reason: "Graph answered 503".into(),
        });
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let state = state.to_string();
    let record = seen.clone();
    let state: SourceState = Box::new(move |failed: &[FailedItem]| {
        record.lock().unwrap().extend_from_slice(failed);
        Some(state)
    });
    let outcome = ingest::back_up_source(&f.storage, request, stream::iter(events), Some(state))
        .await
        .unwrap();
    (outcome, fetches.load(Ordering::SeqCst), seen)
}

#[tokio::test]
async fn a_moved_item_is_not_fetched_again_and_reads_back_at_its_new_path() {
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let (first, _, _) = back_up_events(&f, &request, &items, &[], "s1").await;

    let mut moved = items.clone();
    let old_path = moved[0].path.clone();
    moved[0].path = format!("Archive 2026/{}", old_path.rsplit('/').next().unwrap());
    f.clock.advance(chrono::Duration::hours(1));
    let (second, fetched, _) = back_up_events(&f, &request, &moved, &[], "s2").await;

    assert_eq!(fetched, 0, "a moved item keeps its Graph id and change key");
    assert_eq!(second.reused, items.len() as u64);
    assert_eq!(second.recovery_point.status, RecoveryPointStatus::Complete);
    let bytes = read::read_item_to_vec(
        &f.storage,
        &f.scope(),
        second.recovery_point.id,
        &moved[0].path,
    )
    .await
    .unwrap();
    assert!(bytes == *items[0].bytes, "the moved item's bytes differ");
    assert!(
        catalog::find_item(
            f.storage.db(),
            &f.scope(),
            second.recovery_point.id,
            &old_path
        )
        .await
        .is_err(),
        "the old path is gone from the new point"
    );
    let before = read::read_item_to_vec(&f.storage, &f.scope(), first.recovery_point.id, &old_path)
        .await
        .unwrap();
    assert!(
        before == *items[0].bytes,
        "the older point still has it at its old path"
    );
}

#[tokio::test]
async fn a_folder_that_could_not_be_listed_keeps_its_items_and_the_point_is_partial() {
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    back_up_events(&f, &request, &items, &[], "s1").await;

    let folder = items[0].path.rsplit_once('/').unwrap().0.to_string();
    let listed: Vec<TestItem> = items
        .iter()
        .filter(|item| !item.path.starts_with(&format!("{folder}/")))
        .cloned()
        .collect();
    assert!(
        listed.len() < items.len(),
        "the corpus has items in {folder}"
    );
    f.clock.advance(chrono::Duration::hours(1));
    let (second, fetched, seen) = back_up_events(&f, &request, &listed, &[&folder], "s2").await;

    assert_eq!(fetched, 0);
    let point = &second.recovery_point;
    assert_eq!(point.status, RecoveryPointStatus::Partial);
    assert_eq!(
        point.item_count,
        items.len() as u64,
        "no item looks deleted"
    );
    for item in &items {
        let bytes = read::read_item_to_vec(&f.storage, &f.scope(), point.id, &item.path)
            .await
            .unwrap();
        assert!(bytes == *item.bytes, "{} differs", item.path);
    }
    assert_eq!(second.failed.len(), 1);
    assert_eq!(second.failed[0].path, folder);
    assert!(second.failed[0].reason.contains("503"));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the source state saw the failure"
    );
}

#[tokio::test]
async fn a_changed_item_whose_new_bytes_fail_keeps_its_previous_version() {
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    back_up_events(&f, &request, &items, &[], "s1").await;

    let mut changed = items.clone();
    changed[2] = items[2].edited(b"new text".to_vec());
    changed[2].fail_with = Some("Graph answered 503".into());
    f.clock.advance(chrono::Duration::hours(1));
    let (second, fetched, _) = back_up_events(&f, &request, &changed, &[], "s2").await;

    assert_eq!(fetched, 1);
    let point = &second.recovery_point;
    assert_eq!(point.status, RecoveryPointStatus::Partial);
    assert_eq!(point.item_count, items.len() as u64);
    let bytes = read::read_item_to_vec(&f.storage, &f.scope(), point.id, &items[2].path)
        .await
        .unwrap();
    assert!(bytes == *items[2].bytes, "the previous version is kept");
    assert_eq!(second.failed.len(), 1);
    assert!(
        second.failed[0]
            .reason
            .contains("previous version was kept")
    );

    // Next time the new bytes arrive and replace it.
    changed[2].fail_with = None;
    f.clock.advance(chrono::Duration::hours(1));
    let (third, fetched, _) = back_up_events(&f, &request, &changed, &[], "s3").await;
    assert_eq!(fetched, 1);
    assert_eq!(third.recovery_point.status, RecoveryPointStatus::Complete);
    let bytes = read::read_item_to_vec(
        &f.storage,
        &f.scope(),
        third.recovery_point.id,
        &items[2].path,
    )
    .await
    .unwrap();
    assert_eq!(bytes, b"new text");
}

#[tokio::test]
async fn the_source_state_is_stored_with_the_point_and_read_back_as_its_parent() {
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    assert!(
        ingest::parent_point(&f.storage, &request)
            .await
            .unwrap()
            .is_none()
    );
    let (first, _, _) = back_up_events(&f, &request, &items, &[], "links-1").await;
    let parent = ingest::parent_point(&f.storage, &request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent.point.id, first.recovery_point.id);
    assert_eq!(parent.source_state.as_deref(), Some("links-1"));
    assert_eq!(parent.entries.len(), items.len());

    // An unchanged run (carried over without the archiver) stores its state too.
    f.clock.advance(chrono::Duration::hours(1));
    let (second, fetched, _) = back_up_events(&f, &request, &items, &[], "links-2").await;
    assert_eq!(fetched, 0);
    let parent = ingest::parent_point(&f.storage, &request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent.point.id, second.recovery_point.id);
    assert_eq!(parent.source_state.as_deref(), Some("links-2"));
}

#[tokio::test]
async fn an_item_with_the_same_change_key_is_reused_even_when_its_time_moves() {
    let f = fixture().await;
    let items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    back_up_events(&f, &request, &items, &[], "s1").await;
    let mut touched = items.clone();
    touched[1].modified += chrono::Duration::minutes(5);
    f.clock.advance(chrono::Duration::hours(1));
    let (second, fetched, _) = back_up_events(&f, &request, &touched, &[], "s2").await;
    assert_eq!(
        fetched, 0,
        "Graph's change key says the item did not change"
    );
    assert_eq!(second.recovery_point.status, RecoveryPointStatus::Complete);
}
