//! Mail: folders recursively, message delta per folder with immutable ids, MIME as a stream.

use futures::TryStreamExt;
use serde_json::json;
use skyvault::m365::types::MailboxPurpose;
use skyvault::m365::{DeltaChange, DeltaStart, collect_round};

use super::harness;

async fn mime_text(h: &super::Harness, user: &str, message: &str) -> String {
    let stream = h.graph().message_mime(user, message).await.unwrap();
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    String::from_utf8_lossy(&chunks.concat()).into_owned()
}

#[tokio::test]
async fn folders_messages_delta_and_mime() {
    let h = harness().await;
    let graph = h.graph();
    let users: Vec<_> = graph.users().try_collect().await.unwrap();
    let user = users[0].id.clone();

    assert_eq!(
        graph.mailbox_purpose(&user).await.unwrap(),
        Some(MailboxPurpose::User)
    );
    let folders = graph.mail_folders(&user).await.unwrap();
    let inbox = folders
        .iter()
        .find(|f| f.display_name.as_deref() == Some("Inbox"))
        .expect("an Inbox");
    assert!(
        folders.iter().any(|f| f.is_hidden == Some(true)),
        "hidden folders are included"
    );
    let ids: std::collections::HashSet<_> = folders.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids.len(), folders.len(), "no folder twice");
    // Every child folder's parent was listed too: the walk went all the way down.
    let nested: Vec<_> = folders
        .iter()
        .filter(|f| {
            f.parent_folder_id
                .as_deref()
                .is_some_and(|p| ids.contains(p))
        })
        .collect();
    assert!(!nested.is_empty(), "child folders are found");

    let round = collect_round(graph.message_delta(&user, &inbox.id, DeltaStart::Initial, 7))
        .await
        .unwrap();
    let messages: Vec<_> = round
        .changes
        .iter()
        .filter_map(|c| match c {
            DeltaChange::Upsert(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages.len() as i32,
        inbox.total_item_count,
        "delta lists the whole folder across small pages"
    );

    let mime = mime_text(&h, &user, &messages[0].id).await;
    assert!(
        mime.contains("Subject:") && mime.contains("Message-ID:"),
        "{}",
        &mime[..mime.len().min(400)]
    );

    let added = h
        .control(
            "POST",
            &format!("tenants/default/users/{user}/messages"),
            Some(json!({"subject": "Quarterly numbers"})),
        )
        .await;
    let next = collect_round(graph.message_delta(
        &user,
        &inbox.id,
        DeltaStart::Resume(round.delta_link),
        7,
    ))
    .await
    .unwrap();
    assert_eq!(next.changes.len(), 1, "{:?}", next.changes);
    match &next.changes[0] {
        DeltaChange::Upsert(m) => {
            assert_eq!(m.subject.as_deref(), Some("Quarterly numbers"));
            assert_eq!(
                m.id,
                added["immutableId"].as_str().unwrap(),
                "ids are immutable ids"
            );
        }
        other => panic!("{other:?}"),
    }

    // A deleted message comes back as a removal.
    let gone = messages[1].id.clone();
    h.control(
        "DELETE",
        &format!("tenants/default/graph/users/{user}/messages/{gone}"),
        None,
    )
    .await;
    let after = collect_round(graph.message_delta(
        &user,
        &inbox.id,
        DeltaStart::Resume(next.delta_link),
        7,
    ))
    .await
    .unwrap();
    assert!(
        after
            .changes
            .iter()
            .any(|c| matches!(c, DeltaChange::Removed { id, .. } if *id == gone)),
        "{:?}",
        after.changes
    );
}
