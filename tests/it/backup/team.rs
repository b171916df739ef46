//! Team backups against the simulator: every channel's threads (standard, private, shared) kept
//! as Graph JSON and a readable page with its inline images; later runs fetch only changed
//! threads; edits, deletions, a deleted team, the protected-API refusal and injected faults
//! lose nothing.

use std::collections::HashSet;

use futures::TryStreamExt;
use serde_json::{Value, json};
use skyvault::backup::{BackupError, BackupTarget, back_up};
use skyvault::ids::ItemId;
use skyvault::storage::{CatalogEntry, RecoveryPointId, RecoveryPointStatus, Workload};

use super::{BackupFixture, backup_fixture};

fn endpoint(counters: &Value, suffix: &str) -> u64 {
    counters["by_endpoint"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.ends_with(suffix))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

async fn team_target(x: &BackupFixture) -> BackupTarget {
    let groups: Vec<_> = x.h.graph().groups().try_collect().await.unwrap();
    let team = groups.into_iter().find(|g| g.is_team()).expect("a team");
    let mut target = x.target(&team.id, Workload::Team, ItemId::new());
    target.display_name = team.display_name.unwrap_or_default();
    target
}

fn threads(items: &[CatalogEntry]) -> Vec<&CatalogEntry> {
    items
        .iter()
        .filter(|e| e.path.ends_with("/thread.json"))
        .collect()
}

async fn thread_json(x: &BackupFixture, point: RecoveryPointId, entry: &CatalogEntry) -> Value {
    serde_json::from_slice(&x.bytes(point, &entry.path).await).unwrap()
}

/// The thread of `post` in a point, if it has one.
async fn thread_of(x: &BackupFixture, point: RecoveryPointId, post: &str) -> Option<Value> {
    let items = x.items(point).await;
    let entry = threads(&items)
        .into_iter()
        .find(|e| e.graph_id.as_deref() == Some(post))?
        .clone();
    Some(thread_json(x, point, &entry).await)
}

fn messages_control(target: &BackupTarget, channel: &str) -> String {
    format!(
        "tenants/default/teams/{}/channels/{channel}/messages",
        target.graph_id
    )
}

#[tokio::test]
async fn channel_threads_are_kept_readable_and_then_only_changed_threads_are_fetched() {
    let x = backup_fixture().await;
    let target = team_target(&x).await;
    let graph = x.h.graph();
    let channels: Vec<_> = graph
        .team_channels(&target.graph_id)
        .try_collect()
        .await
        .unwrap();

    let first = x.run(&target).await;
    let point = first.outcome.recovery_point.clone();
    assert_eq!(
        point.status,
        RecoveryPointStatus::Complete,
        "{:?}",
        first.outcome.failed
    );
    assert!(first.notes.is_empty(), "{:?}", first.notes);
    let items = x.items(point.id).await;

    // Every channel, private and shared included, with every post and every reply.
    let mut expected_replies = 0;
    let mut stored_posts = 0;
    for channel in &channels {
        let posts: Vec<_> = graph
            .channel_messages(&target.graph_id, &channel.id)
            .try_collect()
            .await
            .unwrap();
        for post in &posts {
            let replies: Vec<_> = graph
                .message_replies(&target.graph_id, &channel.id, &post.id)
                .try_collect()
                .await
                .unwrap();
            expected_replies += replies.len();
            let thread = thread_of(&x, point.id, &post.id)
                .await
                .unwrap_or_else(|| panic!("post {} of {:?}", post.id, channel.display_name));
            assert_eq!(thread["message"], post.raw, "the post is Graph's JSON");
            assert_eq!(thread["channel"]["id"], channel.id.as_str());
            let stored: Vec<&str> = thread["replies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap())
                .collect();
            let mut wanted: Vec<&str> = replies.iter().map(|r| r.id.as_str()).collect();
            let mut got = stored.clone();
            wanted.sort();
            got.sort();
            assert_eq!(got, wanted);
            stored_posts += 1;
        }
        let folder = items
            .iter()
            .find(|e| e.graph_id.as_deref() == Some(channel.id.as_str()))
            .expect("channel.json");
        assert!(folder.path.ends_with("/channel.json"));
    }
    assert_eq!(threads(&items).len(), stored_posts);
    assert!(expected_replies > 0);
    assert!(
        items.iter().any(|e| e.path.contains("/Leadership (")),
        "the private channel is backed up"
    );
    assert!(items.iter().any(|e| e.path.contains("/Partners (")));

    // The page reads on its own: the text is there, no script, the image is the stored copy.
    let image = items
        .iter()
        .find(|e| e.path.contains("/hosted/"))
        .expect("an inline image is stored");
    let bytes = x.bytes(point.id, &image.path).await;
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    let dir = image.path.rsplit_once("/hosted/").unwrap().0;
    let html = String::from_utf8(x.bytes(point.id, &format!("{dir}/thread.html")).await).unwrap();
    let file = image.path.rsplit_once('/').unwrap().1;
    assert!(html.contains(&format!("src=\"hosted/{file}\"")), "{html}");
    assert!(!html.contains("<script"));
    assert!(!html.contains("graph.microsoft.com") && !html.contains("/hostedContents/"));
    let json = x.bytes(point.id, &format!("{dir}/thread.json")).await;
    let thread: Value = serde_json::from_slice(&json).unwrap();
    let text = thread["message"]["body"]["content"].as_str().unwrap();
    let first_words = text
        .trim_start_matches("<p>")
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(html.contains(&first_words), "{first_words} in {html}");

    // Nothing changed: no thread is listed or fetched again.
    x.h.control("DELETE", "counters", None).await;
    let second = x.run(&target).await;
    assert_eq!(second.outcome.fetched, 0);
    assert_eq!(
        second.outcome.recovery_point.item_count, point.item_count,
        "every thread carried over"
    );
    let counters = x.counters().await;
    assert_eq!(endpoint(&counters, "/replies"), 0);
    assert_eq!(endpoint(&counters, "/messages"), 0);
    assert_eq!(endpoint(&counters, "/$value"), 0);

    // One new reply: exactly that thread is fetched again.
    let channel = &channels[1];
    let posts: Vec<_> = graph
        .channel_messages(&target.graph_id, &channel.id)
        .try_collect()
        .await
        .unwrap();
    let post = &posts[3];
    x.h.control(
        "POST",
        &messages_control(&target, &channel.id),
        Some(json!({"body": "<p>Shipping on <b>Friday</b> <script>steal()</script></p>", "replyTo": post.id})),
    )
    .await;
    x.h.control("DELETE", "counters", None).await;
    let third = x.run(&target).await;
    let counters = x.counters().await;
    assert_eq!(endpoint(&counters, "/replies"), 1, "{counters}");
    assert_eq!(endpoint(&counters, "/messages"), 0);
    assert!(third.outcome.fetched <= 2, "thread.json and thread.html");
    let point = third.outcome.recovery_point.id;
    let thread = thread_of(&x, point, &post.id).await.unwrap();
    assert!(
        thread["replies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["body"]["content"].as_str().unwrap().contains("Friday"))
    );
    let items = x.items(point).await;
    let entry = threads(&items)
        .into_iter()
        .find(|e| e.graph_id.as_deref() == Some(post.id.as_str()))
        .unwrap();
    let page = entry.path.replace("/thread.json", "/thread.html");
    let html = String::from_utf8(x.bytes(point, &page).await).unwrap();
    assert!(html.contains("Shipping on <b>Friday</b>"), "{html}");
    assert!(!html.contains("steal()"), "{html}");
}

#[tokio::test]
async fn edited_and_deleted_messages_between_runs() {
    let x = backup_fixture().await;
    let target = team_target(&x).await;
    let graph = x.h.graph();
    let channels: Vec<_> = graph
        .team_channels(&target.graph_id)
        .try_collect()
        .await
        .unwrap();
    let channel = &channels[0];
    let posts: Vec<_> = graph
        .channel_messages(&target.graph_id, &channel.id)
        .try_collect()
        .await
        .unwrap();
    let first = x.run(&target).await;
    let before = first.outcome.recovery_point.id;

    // A reply edited, a post edited, a post deleted.
    let mut with_reply = None;
    for post in &posts {
        let replies: Vec<_> = graph
            .message_replies(&target.graph_id, &channel.id, &post.id)
            .try_collect()
            .await
            .unwrap();
        if let Some(reply) = replies.first() {
            with_reply = Some((post.id.clone(), reply.id.clone()));
            break;
        }
    }
    let (replied, reply) = with_reply.expect("a post with replies");
    let edited = posts.iter().find(|p| p.id != replied).unwrap().id.clone();
    let deleted = posts
        .iter()
        .find(|p| p.id != replied && p.id != edited)
        .unwrap()
        .id
        .clone();
    let control = messages_control(&target, &channel.id);
    x.h.control(
        "PATCH",
        &format!("{control}/{reply}"),
        Some(json!({"body": "<p>Reply, corrected</p>"})),
    )
    .await;
    x.h.control(
        "PATCH",
        &format!("{control}/{edited}"),
        Some(json!({"body": "<p>Post, corrected</p>"})),
    )
    .await;
    x.h.control("DELETE", &format!("{control}/{deleted}"), None)
        .await;

    let second = x.run(&target).await;
    let after = second.outcome.recovery_point.id;
    assert_eq!(
        second.outcome.recovery_point.status,
        RecoveryPointStatus::Complete
    );
    let thread = thread_of(&x, after, &replied).await.unwrap();
    let stored = thread["replies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == reply.as_str())
        .unwrap();
    assert_eq!(stored["body"]["content"], "<p>Reply, corrected</p>");
    assert!(stored["lastEditedDateTime"].is_string());
    let thread = thread_of(&x, after, &edited).await.unwrap();
    assert_eq!(
        thread["message"]["body"]["content"],
        "<p>Post, corrected</p>"
    );
    assert!(
        thread_of(&x, after, &deleted).await.is_none(),
        "a deleted post leaves the new point"
    );
    // The earlier point still has everything as it was.
    let old = thread_of(&x, before, &deleted).await.expect("kept before");
    assert_eq!(old["message"]["id"], deleted.as_str());
    let old = thread_of(&x, before, &edited).await.unwrap();
    assert_ne!(old["message"]["body"]["content"], "<p>Post, corrected</p>");
}

#[tokio::test]
async fn a_refused_protected_api_keeps_what_was_read_and_says_so() {
    let x = backup_fixture().await;
    let target = team_target(&x).await;
    let first = x.run(&target).await;
    let before = x.items(first.outcome.recovery_point.id).await;

    x.h.control(
        "PUT",
        "tenants/default/teams/protected-api",
        Some(json!({"refusal": "approval"})),
    )
    .await;
    x.h.control("DELETE", "counters", None).await;
    let refused = x.run(&target).await;
    let point = &refused.outcome.recovery_point;
    // Partial: the conversations of this point are the previous backup's, not today's.
    assert_eq!(point.status, RecoveryPointStatus::Partial);
    let note = refused.notes.join("\n");
    assert!(
        note.contains("Teams channel messages were not backed up") && note.contains("approved"),
        "{note}"
    );
    assert!(
        refused
            .outcome
            .failed
            .iter()
            .any(|f| f.reason.contains("protected Teams API")),
        "{:?}",
        refused.outcome.failed
    );
    // Asked once, not retried, not asked again for the other channels.
    let counters = x.counters().await;
    assert_eq!(endpoint(&counters, "/messages/delta"), 1, "{counters}");
    assert_eq!(endpoint(&counters, "/replies"), 0);
    // What the previous backup had is kept.
    let after = x.items(point.id).await;
    let kept: HashSet<&str> = after.iter().map(|e| e.path.as_str()).collect();
    for entry in &before {
        assert!(kept.contains(entry.path.as_str()), "{} kept", entry.path);
    }

    // Approved again: the next run is complete and catches up from the stored delta links.
    x.h.control(
        "PUT",
        "tenants/default/teams/protected-api",
        Some(json!({"refusal": null})),
    )
    .await;
    let next = x.run(&target).await;
    assert_eq!(
        next.outcome.recovery_point.status,
        RecoveryPointStatus::Complete
    );
    assert!(next.notes.is_empty());

    // A team never read before: its channels are listed and the point says why it has no
    // messages.
    x.h.control(
        "PUT",
        "tenants/default/teams/protected-api",
        Some(json!({"refusal": "licence"})),
    )
    .await;
    let fresh = BackupTarget {
        item: ItemId::new(),
        ..target.clone()
    };
    let report = x.run(&fresh).await;
    assert_eq!(
        report.outcome.recovery_point.status,
        RecoveryPointStatus::Partial
    );
    assert!(
        report.notes.join(" ").contains("licence"),
        "{:?}",
        report.notes
    );
    // The team's files are backed up beside it; of the conversations only the four channels'
    // descriptions could be read.
    let items = x.items(report.outcome.recovery_point.id).await;
    let channels: Vec<_> = items
        .iter()
        .filter(|e| e.path.starts_with("channels/"))
        .collect();
    assert_eq!(
        channels.len(),
        4,
        "the four channels' descriptions: {channels:?}"
    );
    assert!(channels.iter().all(|e| e.path.ends_with("/channel.json")));
    assert!(items.iter().any(|e| e.path.starts_with("files/")));
    assert!(
        report
            .notes
            .join(" ")
            .contains("The team's files and site are backed up"),
        "{:?}",
        report.notes
    );
}

#[tokio::test]
async fn a_team_deleted_between_runs_keeps_its_backups() {
    let x = backup_fixture().await;
    let target = team_target(&x).await;
    let first = x.run(&target).await;
    let point = first.outcome.recovery_point.id;
    x.h.control(
        "DELETE",
        &format!("tenants/default/groups/{}", target.graph_id),
        None,
    )
    .await;
    match back_up(&x.services, &target, &()).await {
        Err(err @ BackupError::Unavailable(_)) => {
            assert!(err.to_string().contains("no longer exists"), "{err}");
            assert!(!err.is_retryable());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let items = x.items(point).await;
    let thread = threads(&items)[0].clone();
    let _: Value = serde_json::from_slice(&x.bytes(point, &thread.path).await).unwrap();
    // The repository is sound for restic itself.
    crate::storage::interop::restic_check(&x.f).await;
}

#[tokio::test]
async fn injected_faults_lose_nothing_and_say_what_is_missing() {
    let x = backup_fixture().await;
    let target = team_target(&x).await;
    let first = x.run(&target).await;
    let before = x.items(first.outcome.recovery_point.id).await;
    let graph = x.h.graph();
    let channels: Vec<_> = graph
        .team_channels(&target.graph_id)
        .try_collect()
        .await
        .unwrap();
    // Changes in every channel, so the faulty run has threads to fetch everywhere.
    for channel in &channels {
        let posts: Vec<_> = graph
            .channel_messages(&target.graph_id, &channel.id)
            .try_collect()
            .await
            .unwrap();
        for post in posts.iter().take(3) {
            x.h.control(
                "POST",
                &messages_control(&target, &channel.id),
                Some(json!({"body": "<p>late reply</p>", "replyTo": post.id})),
            )
            .await;
        }
    }
    x.h.control(
        "PUT",
        "faults/directory",
        Some(json!({"rate_503": 70.0, "rate_connection_reset": 10.0, "retry_after_seconds": 0.01})),
    )
    .await;
    let faulty = x.run(&target).await;
    x.h.control("DELETE", "faults", None).await;
    let point = &faulty.outcome.recovery_point;
    eprintln!(
        "faulty run: {:?}, failed {:?}",
        point.status, faulty.outcome.failed
    );
    let after = x.items(point.id).await;
    // Every thread of the first point is still there (nothing was deleted in Teams).
    let ids: HashSet<Option<&str>> = threads(&after)
        .iter()
        .map(|e| e.graph_id.as_deref())
        .collect();
    for entry in threads(&before) {
        assert!(
            ids.contains(&entry.graph_id.as_deref()),
            "{} lost",
            entry.path
        );
    }
    if point.status == RecoveryPointStatus::Partial {
        assert!(!faulty.outcome.failed.is_empty());
        assert!(faulty.outcome.failed.iter().all(|f| !f.reason.is_empty()));
    } else {
        assert!(faulty.outcome.failed.is_empty());
    }

    // Microsoft down for the whole run: the point is partial, says why, and keeps every thread.
    x.h.control(
        "PUT",
        "faults/directory",
        Some(json!({"rate_503": 100.0, "retry_after_seconds": 0.01})),
    )
    .await;
    let down = x.run(&target).await;
    x.h.control("DELETE", "faults", None).await;
    assert_eq!(
        down.outcome.recovery_point.status,
        RecoveryPointStatus::Partial
    );
    assert!(
        down.outcome
            .failed
            .iter()
            .any(|f| f.reason.contains("could not be listed") && f.reason.contains("unavailable")),
        "{:?}",
        down.outcome.failed
    );
    let kept = x.items(down.outcome.recovery_point.id).await;
    let kept: HashSet<&str> = kept.iter().map(|e| e.path.as_str()).collect();
    for entry in &after {
        assert!(kept.contains(entry.path.as_str()), "{} lost", entry.path);
    }

    // A clean run completes, and every late reply is in.
    let clean = x.run(&target).await;
    assert_eq!(
        clean.outcome.recovery_point.status,
        RecoveryPointStatus::Complete,
        "{:?}",
        clean.outcome.failed
    );
    let items = x.items(clean.outcome.recovery_point.id).await;
    let mut late = 0;
    for entry in threads(&items) {
        let thread = thread_json(&x, clean.outcome.recovery_point.id, entry).await;
        late += thread["replies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["body"]["content"] == "<p>late reply</p>")
            .count();
    }
    assert_eq!(late, 3 * channels.len());
}
