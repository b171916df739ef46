//! The catalog as a customer's search index follows it: rows read by id, only the customer's own
//! kept, other customers' rows stepped over for good, and what is still to index counted in the
//! customer's rows alone.

use std::collections::BTreeSet;

use skyvault::ids::{CustomerId, ItemId};
use skyvault::restore::search::{SearchIndexes, update_index};
use skyvault::storage::catalog::feed;
use skyvault::storage::{BackupRequest, ItemKind, SystemScope, Workload};

use super::fixture::{TestItem, fixture, mime_message};

fn messages(prefix: &str, count: u64) -> Vec<TestItem> {
    (0..count)
        .map(|i| {
            let bytes = mime_message(
                i,
                &format!("{prefix} {i}"),
                "a@example.com",
                "b@example.com",
                None,
            );
            TestItem::new(
                &format!("Inbox/{prefix}{i:03}.eml"),
                bytes,
                ItemKind::Message,
            )
        })
        .collect()
}

fn paths(entries: &[feed::FeedEntry]) -> BTreeSet<String> {
    entries.iter().map(|e| e.entry.path.clone()).collect()
}

#[tokio::test]
async fn an_index_takes_its_customers_rows_only_and_steps_over_the_others_for_good() {
    let f = fixture().await;
    let db = f.storage.db();
    let ours = f.scope();
    let other = CustomerId::new();
    let theirs = SystemScope::worker(other, "test");
    let their_request = |name: &str| BackupRequest {
        customer: other,
        ..f.request(ItemId::new(), Workload::Mailbox, name)
    };
    // Rows interleave in id order: ours, theirs, ours, theirs.
    f.back_up(
        &f.request(ItemId::new(), Workload::Mailbox, "Alice"),
        &messages("alice", 4),
    )
    .await;
    f.back_up(&their_request("Zoe"), &messages("zoe", 3)).await;
    f.back_up(
        &f.request(ItemId::new(), Workload::Mailbox, "Bob"),
        &messages("bob", 2),
    )
    .await;
    f.back_up(&their_request("Yann"), &messages("yann", 5))
        .await;

    let everything = feed::entries_after(db, &ours, 0, 1000).await.unwrap();
    let ours_paths = paths(&everything.entries);
    assert_eq!(ours_paths.len(), 6, "{ours_paths:?}");
    assert!(
        ours_paths
            .iter()
            .all(|p| p.starts_with("Inbox/alice") || p.starts_with("Inbox/bob")),
        "{ours_paths:?}"
    );
    let their_rows = feed::entries_after(db, &theirs, 0, 1000).await.unwrap();
    assert_eq!(their_rows.entries.len(), 8);
    let last_row = their_rows.scanned_to.unwrap();
    // The scan went past the other customer's last rows, not only up to our own last row.
    assert_eq!(everything.scanned_to, Some(last_row));
    assert!(everything.entries.last().unwrap().row_id < last_row);

    // Steps of two: each ends at the customer's row it took, and together they are everything.
    let mut after = 0;
    let mut stepped = Vec::new();
    loop {
        let batch = feed::entries_after(db, &ours, after, 2).await.unwrap();
        let Some(to) = batch.scanned_to else { break };
        assert!(batch.entries.len() <= 2);
        stepped.extend(batch.entries);
        after = to;
    }
    assert_eq!(paths(&stepped), ours_paths);
    assert_eq!(
        after, last_row,
        "the last step stepped over the other's rows"
    );

    // Still to index: our rows only, counted, not a difference of ids.
    assert_eq!(feed::pending_after(db, &ours, 0).await.unwrap(), 6);
    let first_of_bob = stepped
        .iter()
        .find(|e| e.entry.path.starts_with("Inbox/bob"))
        .unwrap()
        .row_id;
    assert_eq!(
        feed::pending_after(db, &ours, first_of_bob - 1)
            .await
            .unwrap(),
        2
    );
    assert_eq!(feed::pending_after(db, &ours, last_row).await.unwrap(), 0);

    // Rows asked for by id: another customer's ids are absent.
    let ids: Vec<i64> = stepped
        .iter()
        .chain(&their_rows.entries)
        .map(|e| e.row_id)
        .collect();
    let found = feed::entries_by_ids(db, &ours, &ids).await.unwrap();
    assert_eq!(paths(&found), ours_paths);

    // The index takes our six messages once, and after the other customer backs up again it
    // has nothing new of ours to take.
    let dir = tempfile::tempdir().unwrap();
    let indexes = SearchIndexes::new(dir.path());
    let report = update_index(&f.storage, &indexes, f.customer)
        .await
        .unwrap();
    assert_eq!(report.rows_indexed, 6);
    assert_eq!(report.contents_read, 6);
    f.back_up(&their_request("Xavier"), &messages("xavier", 3))
        .await;
    let again = update_index(&f.storage, &indexes, f.customer)
        .await
        .unwrap();
    assert_eq!(again.rows_indexed, 0);
    f.back_up(
        &f.request(ItemId::new(), Workload::Mailbox, "Carol"),
        &messages("carol", 1),
    )
    .await;
    let newest = update_index(&f.storage, &indexes, f.customer)
        .await
        .unwrap();
    assert_eq!(newest.rows_indexed, 1);
}
