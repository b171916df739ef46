//! Teams through the client: channels of every kind, posts with replies and inline images,
//! the channel delta across changes, and the protected-API refusal as a typed error.

use futures::TryStreamExt;
use serde_json::json;
use skyvault::m365::{
    ChannelKind, ChatMessage, DeltaChange, DeltaStart, MessageRef, ProtectedApiReason,
    collect_round,
};

use super::{Harness, harness};

async fn team(h: &Harness) -> String {
    let groups: Vec<_> = h.graph().groups().try_collect().await.unwrap();
    groups.into_iter().find(|g| g.is_team()).unwrap().id
}

#[tokio::test]
async fn channels_posts_replies_and_inline_images() {
    let h = harness().await;
    let graph = h.graph();
    let team = team(&h).await;
    let channels: Vec<_> = graph.team_channels(&team).try_collect().await.unwrap();
    let kinds: Vec<_> = channels.iter().map(|c| c.kind()).collect();
    assert_eq!(
        kinds,
        [
            ChannelKind::Standard,
            ChannelKind::Standard,
            ChannelKind::Private,
            ChannelKind::Shared
        ]
    );
    let general = &channels[0];
    let posts: Vec<ChatMessage> = graph
        .channel_messages(&team, &general.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(posts.len(), 8);
    let mut replies = 0;
    for post in &posts {
        let answers: Vec<ChatMessage> = graph
            .message_replies(&team, &general.id, &post.id)
            .try_collect()
            .await
            .unwrap();
        assert!(
            answers
                .iter()
                .all(|r| r.reply_to_id.as_deref() == Some(&post.id))
        );
        replies += answers.len();
    }
    assert!(replies > 0);

    let with_image = posts
        .iter()
        .find(|p| !p.hosted_content_ids().is_empty())
        .expect("a post with an inline image");
    let at = MessageRef {
        team_id: &team,
        channel_id: &general.id,
        message_id: &with_image.id,
        reply_id: None,
    };
    let listed: Vec<_> = graph.hosted_contents(at).try_collect().await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        with_image.hosted_content_ids()
    );
    let image: Vec<bytes::Bytes> = graph
        .hosted_content(at, &listed[0].id)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(image.concat().starts_with(b"\x89PNG"));
    // A standard channel's files are a folder of the team's library; asking twice finds the
    // same folder.
    let folder = graph
        .channel_files_folder(&team, &general.id)
        .await
        .unwrap()
        .expect("a files folder");
    assert!(folder.is_folder());
    assert_eq!(folder.name.as_deref(), Some("General"));
    let library = graph.group_drive(&team).await.unwrap().unwrap();
    assert_eq!(
        folder
            .parent_reference
            .as_ref()
            .and_then(|p| p.drive_id.as_deref()),
        Some(library.id.as_str())
    );
    let again = graph
        .channel_files_folder(&team, &general.id)
        .await
        .unwrap();
    assert_eq!(again.map(|f| f.id), Some(folder.id));

    // The stored JSON is Microsoft's: properties the client does not model survive.
    let stored = serde_json::to_value(with_image).unwrap();
    assert_eq!(stored["channelIdentity"]["teamId"], team.as_str());
}

#[tokio::test]
async fn the_channel_delta_brings_only_changed_posts() {
    let h = harness().await;
    let graph = h.graph();
    let team = team(&h).await;
    let channels: Vec<_> = graph.team_channels(&team).try_collect().await.unwrap();
    let channel = channels[2].id.clone();
    let first = collect_round(graph.channel_messages_delta(&team, &channel, DeltaStart::Initial))
        .await
        .unwrap();
    assert_eq!(first.changes.len(), 8);
    assert!(first.full_sync);
    let replied = first.changes[0].id().to_string();
    let deleted = first.changes[1].id().to_string();
    let control = format!("tenants/default/teams/{team}/channels/{channel}/messages");
    h.control(
        "POST",
        &control,
        Some(json!({"body": "<p>+1</p>", "replyTo": replied})),
    )
    .await;
    h.control("DELETE", &format!("{control}/{deleted}"), None)
        .await;

    let next = collect_round(graph.channel_messages_delta(
        &team,
        &channel,
        DeltaStart::Resume(first.delta_link),
    ))
    .await
    .unwrap();
    assert!(!next.full_sync);
    assert_eq!(next.changes.len(), 2, "{:?}", next.changes);
    assert!(
        next.changes
            .iter()
            .any(|c| matches!(c, DeltaChange::Upsert(m) if m.id == replied))
    );
    assert!(
        next.changes
            .iter()
            .any(|c| matches!(c, DeltaChange::Removed { id, .. } if *id == deleted)),
        "a deleted post is a removal"
    );
}

#[tokio::test]
async fn a_refused_protected_api_is_a_typed_error_and_channels_still_list() {
    let h = harness().await;
    let graph = h.graph();
    let team = team(&h).await;
    h.control(
        "PUT",
        "tenants/default/teams/protected-api",
        Some(json!({"refusal": "approval"})),
    )
    .await;
    let channels: Vec<_> = graph.team_channels(&team).try_collect().await.unwrap();
    let error = graph
        .channel_messages(&team, &channels[0].id)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    let refusal = error
        .protected_api_refusal()
        .expect("a protected-API refusal");
    assert_eq!(refusal.reason, ProtectedApiReason::NotApproved);
    assert!(refusal.explanation().contains("not approved"), "{refusal}");
    assert!(!error.is_retryable());

    let error =
        collect_round(graph.channel_messages_delta(&team, &channels[0].id, DeltaStart::Initial))
            .await
            .unwrap_err();
    assert!(error.protected_api_refusal().is_some(), "{error:?}");

    h.control(
        "PUT",
        "tenants/default/teams/protected-api",
        Some(json!({"refusal": "licence"})),
    )
    .await;
    let error = graph
        .channel_messages(&team, &channels[0].id)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(
        error.protected_api_refusal().map(|r| r.reason),
        Some(ProtectedApiReason::LicenceRequired)
    );
}
