//! Throttling and faults: the simulator's 429s with Retry-After are waited out and recorded,
//! 503/504 and dropped connections retried, and a throttled mailbox is paused without holding
//! up another.

use futures::TryStreamExt;
use futures::future::join_all;
use serde_json::json;
use skyvault::m365::Resource;

use skyvault::simulator::ThrottleLimits;

use super::{Setup, harness, harness_with};

#[tokio::test]
async fn injected_429s_are_waited_out_and_recorded() {
    let h = harness().await;
    let graph = h.graph();
    let expected: Vec<_> = graph.groups().try_collect().await.unwrap();
    h.control(
        "PUT",
        "faults/directory",
        Some(json!({"rate_429": 50.0, "retry_after_seconds": 0.05})),
    )
    .await;
    let mut events = h.client.throttle_log().subscribe();
    for _ in 0..4 {
        let groups: Vec<_> = graph.groups().try_collect().await.unwrap();
        assert_eq!(groups.len(), expected.len());
    }
    let recorded = h.client.throttle_log().recent_for_tenant(h.tenant);
    assert!(!recorded.is_empty(), "throttling was recorded");
    let event = &recorded[0];
    assert_eq!(event.status, 429);
    assert_eq!(event.resource, Resource::Directory { tenant: h.tenant });
    assert_eq!(
        event.retry_after,
        Some(std::time::Duration::from_millis(50)),
        "fractional Retry-After honoured"
    );
    assert!(event.paused_until > event.at);
    assert_eq!(
        events.try_recv().unwrap(),
        recorded[0],
        "live subscribers see it too"
    );
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let h = harness().await;
    let graph = h.graph();
    let users: Vec<_> = graph.users().try_collect().await.unwrap();
    let drive = graph.user_drive(&users[0].id).await.unwrap().unwrap();
    h.control(
        "PUT",
        "faults/drive",
        Some(json!({"rate_503": 15.0, "rate_504": 15.0, "rate_connection_reset": 10.0, "retry_after_seconds": 0.02})),
    )
    .await;
    let round = skyvault::m365::collect_round(graph.drive_delta(
        &drive.id,
        skyvault::m365::DeltaStart::Initial,
        3,
    ))
    .await
    .unwrap();
    let files: Vec<_> = round
        .changes
        .iter()
        .filter_map(|c| match c {
            skyvault::m365::DeltaChange::Upsert(i) if i.is_file() => Some(i.clone()),
            _ => None,
        })
        .collect();
    assert!(!files.is_empty());
    // Downloads under the same faults still arrive whole.
    for file in files.iter().take(6) {
        let chunks: Vec<bytes::Bytes> = graph
            .download(&drive.id, &file.id)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let content = chunks.concat();
        assert_eq!(
            Some(skyvault::simulator::quick_xor_hash(&content).as_str()),
            file.quick_xor_hash()
        );
    }
    // And a mail folder walk and message delta under mail faults.
    h.control(
        "PUT",
        "faults/mail",
        Some(json!({"rate_503": 10.0, "rate_504": 10.0, "rate_connection_reset": 10.0, "retry_after_seconds": 0.02})),
    )
    .await;
    let folders = graph.mail_folders(&users[0].id).await.unwrap();
    assert!(!folders.is_empty());
    h.control("DELETE", "faults", None).await;
}

#[tokio::test]
async fn a_mailbox_over_its_request_limit_is_paused_while_others_go_on() {
    // The simulator enforces Outlook's per-mailbox request window (scaled down to 10 per second
    // here) and answers 429 ApplicationThrottled with Retry-After, refusing early retries.
    let limits = ThrottleLimits {
        mailbox_requests: 10,
        mailbox_window_seconds: 1.0,
        ..ThrottleLimits::default()
    };
    let h = harness_with(Setup {
        limits,
        ..Setup::default()
    })
    .await;
    let graph = h.graph();
    let users: Vec<_> = graph.users().try_collect().await.unwrap();
    let (busy, quiet) = (users[0].id.clone(), users[1].id.clone());

    let hammer = join_all((0..25).map(|_| graph.probe_mailbox(&busy)));
    let results = hammer.await;
    assert!(
        results.iter().all(Result::is_ok),
        "every call completed after waiting: {results:?}"
    );

    let busy_box = Resource::Mailbox {
        tenant: h.tenant,
        user: busy.clone(),
    };
    let events: Vec<_> = h
        .client
        .throttle_log()
        .recent()
        .into_iter()
        .filter(|e| e.resource == busy_box)
        .collect();
    assert!(!events.is_empty(), "the simulator's 429s were recorded");
    assert!(
        events
            .iter()
            .all(|e| e.status == 429 && e.code.as_deref() == Some("ApplicationThrottled")),
        "{events:?}"
    );
    assert!(
        events.iter().all(|e| e.retry_after.is_some()),
        "Retry-After was read"
    );

    // The other mailbox was never paused and is served at once.
    assert_eq!(
        h.client.paused_until(&Resource::Mailbox {
            tenant: h.tenant,
            user: quiet.clone()
        }),
        None
    );
    graph.probe_mailbox(&quiet).await.unwrap();
    let sim_events = h.control("GET", "throttling/events", None).await;
    let sim_events = sim_events.as_array().unwrap();
    assert_eq!(
        sim_events.len(),
        events.len(),
        "every refusal the simulator sent was seen once"
    );
    assert!(sim_events.iter().all(|e| {
        !e["resource"]
            .as_str()
            .unwrap_or("")
            .eq_ignore_ascii_case(&quiet)
    }));
}
