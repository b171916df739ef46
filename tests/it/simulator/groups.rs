//! Microsoft 365 group mailboxes: conversations, threads and posts.

use serde_json::Value;

use super::start_sim;

#[tokio::test]
async fn unified_groups_have_conversations_threads_and_posts() {
    let sim = start_sim(|_| {}).await;
    let groups = sim.json("groups").await;
    let groups = groups["value"].as_array().unwrap();
    let unified = groups
        .iter()
        .find(|g| {
            g["groupTypes"]
                .as_array()
                .is_some_and(|t| t.iter().any(|v| v == "Unified"))
        })
        .unwrap();
    let id = unified["id"].as_str().unwrap();
    let threads = sim.json(&format!("groups/{id}/threads")).await;
    let threads = threads["value"].as_array().unwrap();
    assert!(!threads.is_empty());
    for thread in threads {
        assert!(thread["topic"].is_string() && thread["lastDeliveredDateTime"].is_string());
        assert!(!thread["uniqueSenders"].as_array().unwrap().is_empty());
        let posts = sim
            .json(&format!(
                "groups/{id}/threads/{}/posts",
                thread["id"].as_str().unwrap()
            ))
            .await;
        let posts = posts["value"].as_array().unwrap();
        assert!(!posts.is_empty());
        for post in posts {
            assert_eq!(post["conversationThreadId"], thread["id"]);
            assert!(post["body"]["content"].as_str().unwrap().contains("<div>"));
            assert!(
                post["from"]["emailAddress"]["address"]
                    .as_str()
                    .unwrap()
                    .contains('@')
            );
            assert!(post["changeKey"].is_string() && post["receivedDateTime"].is_string());
        }
        assert_eq!(
            thread["lastDeliveredDateTime"],
            posts.last().unwrap()["receivedDateTime"]
        );
    }
    let conversations = sim.json(&format!("groups/{id}/conversations")).await;
    let conversation = &conversations["value"][0];
    let inner = sim
        .json(&format!(
            "groups/{id}/conversations/{}/threads",
            conversation["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(inner["value"][0]["topic"], conversation["topic"]);
    let security = groups
        .iter()
        .find(|g| g["securityEnabled"] == true && g["mailEnabled"] == false)
        .unwrap();
    let response = sim
        .get(&format!(
            "groups/{}/threads",
            security["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(response.status(), 404);
    let response = sim
        .get(&format!("groups/{id}/threads/AAMkAGI2THVSAAA="))
        .await;
    assert_eq!(response.status(), 404);
    let _: Value = response.json().await.unwrap();
}
