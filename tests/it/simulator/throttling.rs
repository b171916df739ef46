//! Throttling as Microsoft publishes it, fault injection and request counters.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use super::start_sim;

async fn set_limits(sim: &super::Sim, limits: Value) {
    let (status, body) = sim.control(Method::PUT, "throttling", Some(limits)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn mailbox_request_window_answers_application_throttled() {
    let sim = start_sim(|_| {}).await;
    set_limits(&sim, json!({"mailbox_requests": 5})).await;
    let user = sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = sim.json("users?$top=3").await["value"][2]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..5 {
        assert_eq!(
            sim.get(&format!("users/{user}/mailFolders")).await.status(),
            200
        );
    }
    let throttled = sim.get(&format!("users/{user}/mailFolders")).await;
    assert_eq!(throttled.status(), 429);
    let retry: f64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0.0);
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MailboxConcurrency")
    );
    // Limits are per app and mailbox: another mailbox is unaffected.
    assert_eq!(
        sim.get(&format!("users/{other}/mailFolders"))
            .await
            .status(),
        200
    );
    sim.clock.advance(Duration::seconds(601));
    let token = sim.app_token().await;
    let sim = super::Sim { token, ..sim };
    assert_eq!(
        sim.get(&format!("users/{user}/mailFolders")).await.status(),
        200
    );
    let (_, events) = sim.control(Method::GET, "throttling/events", None).await;
    assert_eq!(events[0]["workload"], "mail");
}

#[tokio::test]
async fn mailbox_concurrency_is_four_requests_in_flight() {
    let sim = start_sim(|options| options.workers = 2).await;
    let user = sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Service time keeps requests in flight long enough to overlap.
    let (status, _) = sim
        .control(Method::PUT, "faults/mail", Some(json!({"latency_ms": 400})))
        .await;
    assert_eq!(status, 200);
    let path = format!("users/{user}/mailFolders/inbox");
    let requests = (0..10).map(|_| sim.get_with(&path, &[]));
    let statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 4 + 4,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn sharepoint_resource_units_throttle_with_retry_after_then_503_on_early_retry() {
    let sim = start_sim(|_| {}).await;
    set_limits(&sim, json!({"spo_resource_units_per_minute": 6.0})).await;
    let user = sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let drive = sim.json(&format!("users/{user}/drive")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let response = sim.get(&format!("drives/{drive}/root")).await;
        if response.status() == 429 {
            retry_after = Some(
                response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap(),
            );
        }
        statuses.push(response.status().as_u16());
        if retry_after.is_some() {
            break;
        }
    }
    assert!(statuses.ends_with(&[429]), "{statuses:?}");
    assert!(retry_after.unwrap() > 0.0);
    let early = sim.get(&format!("drives/{drive}/root")).await;
    assert_eq!(
        early.status(),
        503,
        "calling before Retry-After is refused again"
    );
    assert!(early.headers().contains_key("retry-after"));
    sim.clock.advance(Duration::seconds(61));
    assert_eq!(sim.get(&format!("drives/{drive}/root")).await.status(), 200);
}

#[tokio::test]
async fn directory_token_bucket_answers_429_with_throttle_headers() {
    let sim = start_sim(|_| {}).await;
    set_limits(&sim, json!({"directory_resource_units_per_10s": 5.0})).await;
    let first = sim.get("users").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ms-resource-unit"], "2");
    assert_eq!(sim.get("users").await.status(), 200);
    let throttled = sim.get("users").await;
    assert_eq!(throttled.status(), 429);
    assert!(
        throttled.headers()["x-ms-throttle-scope"]
            .to_str()
            .unwrap()
            .starts_with("Tenant_Application/ReadWrite/")
    );
    assert_eq!(
        throttled.headers()["x-ms-throttle-information"],
        "ResourceUnitLimitExceeded"
    );
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(
        throttled.json::<Value>().await.unwrap()["error"]["code"],
        "TooManyRequests"
    );
    sim.clock.advance(Duration::seconds(10));
    assert_eq!(sim.get("users").await.status(), 200);
}

#[tokio::test]
async fn injected_faults_use_graph_errors_and_break_connections() {
    let sim = start_sim(|_| {}).await;
    let (status, _) = sim
        .control(
            Method::PUT,
            "faults/directory",
            Some(json!({"rate_503": 100.0, "retry_after_seconds": 1.5})),
        )
        .await;
    assert_eq!(status, 200);
    let unavailable = sim.get("users").await;
    assert_eq!(unavailable.status(), 503);
    assert_eq!(unavailable.headers()["retry-after"], "1.500");
    sim.control(
        Method::PUT,
        "faults/directory",
        Some(json!({"rate_504": 100.0})),
    )
    .await;
    assert_eq!(sim.get("users").await.status(), 504);
    sim.control(
        Method::PUT,
        "faults/directory",
        Some(json!({"rate_429": 100.0})),
    )
    .await;
    assert_eq!(
        sim.get("users").await.json::<Value>().await.unwrap()["error"]["code"],
        "TooManyRequests"
    );
    sim.control(
        Method::PUT,
        "faults/directory",
        Some(json!({"rate_connection_reset": 100.0})),
    )
    .await;
    // The connection drops before or during the body.
    match sim
        .http
        .get(format!("{}/v1.0/users", sim.base()))
        .bearer_auth(&sim.token)
        .send()
        .await
    {
        Err(_) => {}
        Ok(response) => assert!(response.bytes().await.is_err(), "the body breaks off"),
    }
    sim.control(
        Method::PUT,
        "faults/directory",
        Some(json!({"rate_slow_body": 100.0, "slow_body_ms": 50})),
    )
    .await;
    let slow = sim.get("users").await;
    let body: Value = slow.json().await.unwrap();
    assert_eq!(
        body["value"].as_array().unwrap().len(),
        8,
        "a slow body is still complete"
    );
    sim.control(Method::DELETE, "faults", None).await;
    assert_eq!(sim.get("users").await.status(), 200);
    let bad = sim
        .control(Method::PUT, "faults/nowhere", Some(json!({})))
        .await;
    assert_eq!(bad.0, 400);
}

#[tokio::test]
async fn counters_report_per_app_tenant_mailbox_and_endpoint() {
    let sim = start_sim(|_| {}).await;
    sim.control(Method::DELETE, "counters", None).await;
    let user = sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.json(&format!("users/{user}/mailFolders")).await;
    sim.json(&format!("users/{user}/mailFolders")).await;
    let (status, counters) = sim.control(Method::GET, "counters", None).await;
    assert_eq!(status, 200);
    assert_eq!(counters["total"], 3);
    assert_eq!(counters["by_app"][super::CLIENT_ID], 3);
    assert_eq!(counters["by_tenant"][sim.tenant_id()], 3);
    assert_eq!(counters["by_mailbox"][user.to_ascii_lowercase()], 2);
    assert_eq!(counters["by_endpoint"]["GET /users/{id}/mailFolders"], 2);
    let unauthorised = sim
        .http
        .get(format!("{}/_sim/counters", sim.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unauthorised.status(),
        401,
        "the control API needs its own token"
    );
}

#[tokio::test]
async fn batch_answers_200_with_inner_throttling_and_failed_dependencies() {
    let sim = start_sim(|_| {}).await;
    set_limits(&sim, json!({"mailbox_requests": 3})).await;
    let user = sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut requests: Vec<Value> = (1..=5).map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{user}/mailFolders/inbox")})).collect();
    requests.push(json!({"id": "6", "method": "GET", "url": "/organization", "dependsOn": ["5"]}));
    requests.push(json!({"id": "7", "method": "GET", "url": "/organization"}));
    let response = sim
        .http
        .post(format!("{}/v1.0/$batch", sim.base()))
        .bearer_auth(&sim.token)
        .json(&json!({"requests": requests}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let status = |id: &str| {
        body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!((status("1"), status("2"), status("3")), (200, 200, 200));
    assert_eq!((status("4"), status("5")), (429, 429));
    assert_eq!(status("6"), 424);
    assert_eq!(status("7"), 200);
    let throttled = body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "4")
        .unwrap();
    assert!(throttled["headers"]["retry-after"].is_string());
    assert_eq!(throttled["body"]["error"]["code"], "ApplicationThrottled");
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/organization"}))
        .collect();
    let refused = sim
        .http
        .post(format!("{}/v1.0/$batch", sim.base()))
        .bearer_auth(&sim.token)
        .json(&json!({"requests": too_many}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn mailbox_upload_bytes_and_the_global_app_limit_throttle() {
    let sim = start_sim(|_| {}).await;
    set_limits(&sim, json!({"mailbox_upload_bytes": 2000})).await;
    let user = sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{}/v1.0/users/{user}/messages", sim.base());
    let message = json!({"subject": "x".repeat(1200)});
    assert_eq!(
        sim.http
            .post(&url)
            .bearer_auth(&sim.token)
            .json(&message)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let over = sim
        .http
        .post(&url)
        .bearer_auth(&sim.token)
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 429);
    assert_eq!(
        over.json::<Value>().await.unwrap()["error"]["message"],
        "Application is over its IncomingBytes limit."
    );

    set_limits(&sim, json!({"app_requests_per_10s": 3})).await;
    for _ in 0..3 {
        assert_eq!(sim.get("organization").await.status(), 200);
    }
    let limited = sim.get("organization").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    sim.clock.advance(Duration::seconds(10));
    assert_eq!(sim.get("organization").await.status(), 200);
}
