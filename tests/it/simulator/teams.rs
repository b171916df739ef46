//! Teams: channels of every kind, posts with replies and hosted content, the channel delta,
//! and Microsoft's refusal of the protected API.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Sim, start_sim};

async fn team_and_channels(sim: &Sim) -> (String, Vec<Value>) {
    let (groups, _) = sim.collect("groups", &[]).await;
    let team = groups
        .iter()
        .find(|g| {
            g["resourceProvisioningOptions"]
                .as_array()
                .is_some_and(|o| o.iter().any(|v| v == "Team"))
        })
        .expect("the small tenant has a team")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let channels = sim.json(&format!("teams/{team}/channels")).await["value"]
        .as_array()
        .unwrap()
        .clone();
    (team, channels)
}

async fn delta_round(sim: &Sim, url: &str) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut next = url.to_owned();
    loop {
        let body = sim.json(&next).await;
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(link) => next = link.to_owned(),
            None => return (items, body["@odata.deltaLink"].as_str().unwrap().to_owned()),
        }
    }
}

#[tokio::test]
async fn channels_posts_replies_and_hosted_content() {
    let sim = start_sim(|_| {}).await;
    let (team, channels) = team_and_channels(&sim).await;
    let kinds: Vec<&str> = channels
        .iter()
        .map(|c| c["membershipType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["standard", "standard", "private", "shared"]);
    assert_eq!(channels[0]["displayName"], "General");
    let channel = channels[0]["id"].as_str().unwrap();
    assert!(channel.starts_with("19:"), "{channel}");

    let (posts, _) = sim
        .collect(
            &format!("teams/{team}/channels/{channel}/messages?$top=3"),
            &[],
        )
        .await;
    assert_eq!(posts.len(), 8, "pages of three reach every post");
    assert!(posts.iter().all(|p| p["replyToId"].is_null()));
    assert!(
        posts
            .iter()
            .all(|p| p["from"]["user"]["displayName"].is_string())
    );
    let mut replies_seen = 0;
    for post in &posts {
        let id = post["id"].as_str().unwrap();
        let (replies, _) = sim
            .collect(
                &format!("teams/{team}/channels/{channel}/messages/{id}/replies"),
                &[],
            )
            .await;
        assert!(replies.iter().all(|r| r["replyToId"] == post["id"]));
        replies_seen += replies.len();
    }
    assert!(replies_seen > 0, "some posts have replies");

    let with_image = posts
        .iter()
        .find(|p| {
            p["body"]["content"]
                .as_str()
                .unwrap()
                .contains("hostedContents")
        })
        .expect("a post with an inline image");
    let id = with_image["id"].as_str().unwrap();
    let hosted = sim
        .json(&format!(
            "teams/{team}/channels/{channel}/messages/{id}/hostedContents"
        ))
        .await;
    let hosted_id = hosted["value"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        with_image["body"]["content"]
            .as_str()
            .unwrap()
            .contains(&format!("/hostedContents/{hosted_id}/$value"))
    );
    let image = sim
        .get(&format!(
            "teams/{team}/channels/{channel}/messages/{id}/hostedContents/{hosted_id}/$value"
        ))
        .await;
    assert_eq!(image.status(), 200);
    assert!(image.bytes().await.unwrap().starts_with(b"\x89PNG"));

    let folder = sim
        .json(&format!("teams/{team}/channels/{channel}/filesFolder"))
        .await;
    assert_eq!(folder["name"], "General");
    assert!(folder["folder"].is_object());
    // A private channel keeps its files in a site of its own: another drive, made on first use
    // and the same one after.
    let private = channels[2]["id"].as_str().unwrap();
    let own = sim
        .json(&format!("teams/{team}/channels/{private}/filesFolder"))
        .await;
    assert_eq!(own["name"], "Leadership");
    let drive_of = |item: &serde_json::Value| item["parentReference"]["driveId"].clone();
    assert!(drive_of(&own).is_string());
    assert_ne!(
        drive_of(&own),
        drive_of(&folder),
        "private channels keep their files in a site of their own"
    );
    let again = sim
        .json(&format!("teams/{team}/channels/{private}/filesFolder"))
        .await;
    assert_eq!(again["id"], own["id"]);

    let missing = sim
        .get(&format!(
            "teams/{team}/channels/19:nope@thread.tacv2/messages"
        ))
        .await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_channel_delta_returns_new_replied_and_deleted_posts() {
    let sim = start_sim(|_| {}).await;
    let (team, channels) = team_and_channels(&sim).await;
    let channel = channels[1]["id"].as_str().unwrap().to_owned();
    let base = format!("teams/{team}/channels/{channel}/messages");
    let (initial, link) = delta_round(&sim, &format!("{base}/delta?$top=3")).await;
    assert_eq!(initial.len(), 8);
    assert!(link.contains("$deltatoken="), "{link}");
    let (quiet, link) = delta_round(&sim, &link).await;
    assert!(quiet.is_empty(), "{quiet:?}");

    let control = format!("tenants/default/teams/{team}/channels/{channel}/messages");
    let replied = initial[2]["id"].as_str().unwrap().to_owned();
    let deleted = initial[5]["id"].as_str().unwrap().to_owned();
    let (status, reply) = sim
        .control(
            Method::POST,
            &control,
            Some(json!({"body": "<p>Agreed</p>", "replyTo": replied})),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["replyToId"], replied.as_str());
    let (status, post) = sim
        .control(
            Method::POST,
            &control,
            Some(json!({"body": "<p>New topic</p>"})),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    let (status, _) = sim
        .control(Method::DELETE, &format!("{control}/{deleted}"), None)
        .await;
    assert_eq!(status, 204);

    let (changes, _) = delta_round(&sim, &link).await;
    let mut ids: Vec<&str> = changes.iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected = vec![
        replied.as_str(),
        deleted.as_str(),
        post["id"].as_str().unwrap(),
    ];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let gone = changes
        .iter()
        .find(|c| c["id"] == deleted.as_str())
        .unwrap();
    assert!(gone["deletedDateTime"].is_string());
    let (replies, _) = sim.collect(&format!("{base}/{replied}/replies"), &[]).await;
    assert!(replies.iter().any(|r| r["id"] == reply["id"]));
}

#[tokio::test]
async fn protected_api_refusals_as_microsoft_words_them() {
    let sim = start_sim(|_| {}).await;
    let (team, channels) = team_and_channels(&sim).await;
    let channel = channels[0]["id"].as_str().unwrap();
    let messages = format!("teams/{team}/channels/{channel}/messages");

    let (status, _) = sim
        .control(
            Method::PUT,
            "tenants/default/teams/protected-api",
            Some(json!({"refusal": "approval"})),
        )
        .await;
    assert_eq!(status, 200);
    let refused = sim.get(&messages).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invoked API requires Protected API access in application-only context"),
        "{body}"
    );
    assert_eq!(
        sim.get(&format!("{messages}/delta")).await.status(),
        403,
        "the delta is protected too"
    );
    assert_eq!(
        sim.get(&format!("teams/{team}/channels")).await.status(),
        200,
        "listing channels is not a protected API"
    );

    sim.control(
        Method::PUT,
        "tenants/default/teams/protected-api",
        Some(json!({"refusal": "licence"})),
    )
    .await;
    assert_eq!(sim.get(&messages).await.status(), 402);
    sim.control(
        Method::PUT,
        "tenants/default/teams/protected-api",
        Some(json!({"refusal": null})),
    )
    .await;
    assert_eq!(sim.get(&messages).await.status(), 200);
    let (status, _) = sim
        .control(
            Method::PUT,
            "tenants/default/teams/protected-api",
            Some(json!({"refusal": "maybe"})),
        )
        .await;
    assert_eq!(status, 400);
}
