//! A message downloaded from a backup is the MIME Microsoft returned, byte for byte.

use futures::{StreamExt, TryStreamExt};
use skyvault::ids::ItemId;
use skyvault::restore::download;
use skyvault::storage::{ItemKind, RecoveryPointStatus, Workload};

use crate::backup::backup_fixture;

#[tokio::test]
async fn a_downloaded_eml_is_byte_identical_to_the_simulators_value() {
    let x = backup_fixture().await;
    let (user, _) = x.user(0).await;
    let target = x.target(&user, Workload::Mailbox, ItemId::new());
    let report = x.run(&target).await;
    let point = report.outcome.recovery_point.clone();
    assert_eq!(point.status, RecoveryPointStatus::Complete);
    let messages: Vec<_> = x
        .items(point.id)
        .await
        .into_iter()
        .filter(|e| e.kind == ItemKind::Message)
        .collect();
    assert!(messages.len() >= 2, "the simulated mailbox has messages");
    let graph = x.h.graph();
    for entry in &messages {
        let mut got = download::item(&x.f.storage, &x.f.scope(), point.id, &entry.path)
            .await
            .unwrap();
        assert_eq!(got.content_type, "message/rfc822");
        assert!(got.file_name.ends_with(".eml"));
        let mut bytes = Vec::new();
        while let Some(chunk) = got.stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        let value: Vec<bytes::Bytes> = graph
            .message_mime(&user, entry.graph_id.as_ref().unwrap())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(
            bytes == value.concat(),
            "{} differs from $value",
            entry.path
        );
    }
}
