//! Every storage read takes a tenant scope: another customer's archive, point and item ids read
//! nothing, delete nothing and are reported as not found.

use skyvault::ids::{CustomerId, ItemId};
use skyvault::storage::{
    RetentionRule, SearchQuery, StorageError, StorageResult, SystemScope, Workload, catalog, read,
    retention,
};

use super::fixture::{fixture, small_corpus};

fn not_found<T>(result: StorageResult<T>, what: &str) {
    assert!(
        matches!(result, Err(StorageError::NotFound { .. })),
        "{what} must be not found for another customer"
    );
}

#[tokio::test]
async fn another_customers_archive_point_and_item_ids_read_nothing() {
    let f = fixture().await;
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    let outcome = f.back_up(&request, &small_corpus()).await;
    let (archive, point) = (outcome.archive.id, outcome.recovery_point.id);
    let db = f.storage.db();
    let owner = f.scope();
    let items = catalog::list_items(db, &owner, point).await.unwrap();
    let path = items[0].path.clone();
    let stranger = SystemScope::worker(CustomerId::new(), "test");

    not_found(
        catalog::find_archive(db, &stranger, archive).await,
        "archive",
    );
    not_found(
        catalog::find_recovery_point(db, &stranger, point).await,
        "point",
    );
    assert!(
        catalog::list_recovery_points(db, &stranger, archive)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        catalog::list_archives(db, &stranger)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        catalog::list_archive_summaries(db, &stranger)
            .await
            .unwrap()
            .is_empty()
    );
    not_found(catalog::list_items(db, &stranger, point).await, "items");
    not_found(
        catalog::find_item(db, &stranger, point, &path).await,
        "item",
    );
    not_found(catalog::browse(db, &stranger, point, "").await, "browse");
    not_found(
        catalog::search(db, &stranger, point, &SearchQuery::default()).await,
        "search",
    );
    not_found(
        read::read_item(&f.storage, &stranger, point, &path)
            .await
            .map(|_| ()),
        "read_item",
    );
    not_found(
        read::read_folder_as_zip(&f.storage, &stranger, point, "")
            .await
            .map(|_| ()),
        "folder zip",
    );
    not_found(
        read::read_archive_as_zip(&f.storage, &stranger, archive)
            .await
            .map(|_| ()),
        "archive zip",
    );
    let target = tempfile::tempdir().unwrap();
    not_found(
        read::restore_to_folder(&f.storage, &stranger, point, "", target.path()).await,
        "restore to folder",
    );
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
    not_found(
        retention::apply_retention(&f.storage, &stranger, archive, RetentionRule::KeepLast(1))
            .await
            .map(|_| ()),
        "retention",
    );
    not_found(
        retention::delete_recovery_points(&f.storage, &stranger, archive, &[point]).await,
        "point deletion",
    );
    not_found(
        retention::delete_archive(&f.storage, &stranger, archive)
            .await
            .map(|_| ()),
        "archive deletion",
    );

    // The owner still reads everything, byte for byte.
    assert_eq!(
        catalog::list_items(db, &owner, point).await.unwrap().len(),
        items.len()
    );
    let bytes = read::read_item_to_vec(&f.storage, &owner, point, &path)
        .await
        .unwrap();
    assert_eq!(bytes.len() as u64, items[0].size);
}
