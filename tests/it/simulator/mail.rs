//! Mail: folders, per-folder message delta, ids, MIME, creation and attachments.

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use super::start_sim;

async fn first_user(sim: &super::Sim) -> String {
    sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn delta_round(
    sim: &super::Sim,
    url: &str,
    headers: &[(&str, &str)],
) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut next = url.to_owned();
    loop {
        let response = sim.get_with(&next, headers).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let page = body["value"].as_array().unwrap();
        items.extend(page.iter().cloned());
        if let Some(link) = body["@odata.nextLink"].as_str() {
            next = link.to_owned();
        } else {
            return (items, body["@odata.deltaLink"].as_str().unwrap().to_owned());
        }
    }
}

#[tokio::test]
async fn folders_list_children_of_root_and_hidden_only_on_request() {
    let sim = start_sim(|_| {}).await;
    let user = first_user(&sim).await;
    let (visible, _) = sim.collect(&format!("users/{user}/mailFolders"), &[]).await;
    let (all, _) = sim
        .collect(
            &format!("users/{user}/mailFolders?includeHiddenFolders=true"),
            &[],
        )
        .await;
    assert_eq!(all.len(), visible.len() + 1);
    assert!(
        all.iter().any(|f| f["isHidden"] == true) && visible.iter().all(|f| f["isHidden"] == false)
    );
    let names: Vec<&str> = visible
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Inbox") && names.contains(&"Sent Items") && !names.contains(&"Projects")
    );
    let inbox = sim.json(&format!("users/{user}/mailFolders/inbox")).await;
    let children = sim
        .child_folders(&format!("users/{user}/mailFolders"), &inbox)
        .await;
    assert!(
        children
            .iter()
            .any(|c| c["displayName"] == "Reçus & factures")
    );
}

#[tokio::test]
async fn message_delta_pages_completely_and_reports_changes_moves_and_deletes() {
    let sim = start_sim(|_| {}).await;
    let user = first_user(&sim).await;
    let immutable = [
        ("Prefer", "odata.maxpagesize=7"),
        ("Prefer", "IdType=\"ImmutableId\""),
    ];
    let inbox = sim.json(&format!("users/{user}/mailFolders/inbox")).await;
    let inbox_id = inbox["id"].as_str().unwrap().to_owned();
    let (initial, link) = delta_round(&sim, &format!("users/{user}/mailFolders/{inbox_id}/messages/delta?$select=subject,isRead,parentFolderId"), &immutable).await;
    assert_eq!(
        initial.len() as u64,
        inbox["totalItemCount"].as_u64().unwrap()
    );
    assert!(initial.len() > 7, "needs several pages");
    let first = initial[0].as_object().unwrap();
    assert!(
        first.contains_key("subject") && !first.contains_key("body"),
        "$select is honoured"
    );
    assert!(first["@odata.etag"].is_string());

    let (archive_items, archive_link) = delta_round(
        &sim,
        &format!("users/{user}/mailFolders/archive/messages/delta"),
        &immutable,
    )
    .await;
    let (status, added) = sim
        .control(
            Method::POST,
            &format!("tenants/default/users/{user}/messages"),
            Some(json!({"subject": "Fresh order", "folder": "inbox"})),
        )
        .await;
    assert_eq!(status, 201);
    let moved = initial[1]["id"].as_str().unwrap().to_owned();
    let deleted = initial[2]["id"].as_str().unwrap().to_owned();
    let read = initial
        .iter()
        .skip(3)
        .find(|m| m["isRead"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let graph = |path: String| format!("{}/v1.0/users/{user}/messages/{path}", sim.base());
    let patched = sim
        .http
        .patch(graph(read.clone()))
        .bearer_auth(&sim.token)
        .header("Prefer", "IdType=\"ImmutableId\"")
        .json(&json!({"isRead": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let moved_response = sim
        .http
        .post(graph(format!("{moved}/move")))
        .bearer_auth(&sim.token)
        .header("Prefer", "IdType=\"ImmutableId\"")
        .json(&json!({"destinationId": "archive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved_response.status(), 201);
    assert_eq!(
        moved_response.json::<Value>().await.unwrap()["id"],
        moved.as_str(),
        "immutable ids survive moves"
    );
    let removed = sim
        .http
        .delete(graph(deleted.clone()))
        .bearer_auth(&sim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);

    let (changes, _) = delta_round(&sim, &link, &immutable).await;
    let find = |id: &str| changes.iter().find(|c| c["id"] == id).cloned();
    assert!(
        changes.iter().any(|c| c["subject"] == "Fresh order"),
        "{changes:?}"
    );
    assert_eq!(find(&read).unwrap()["isRead"], true);
    assert_eq!(find(&moved).unwrap()["@removed"]["reason"], "deleted");
    assert_eq!(find(&deleted).unwrap()["@removed"]["reason"], "deleted");
    assert_eq!(changes.len(), 4);
    let (archive_changes, _) = delta_round(&sim, &archive_link, &immutable).await;
    assert_eq!(archive_changes.len(), 1);
    assert_eq!(archive_changes[0]["id"], moved.as_str());
    assert!(!archive_items.iter().any(|m| m["id"] == moved.as_str()));
    let _ = added;

    // Without ImmutableId the regular id changes on a move and the old one stops resolving.
    let regular = sim
        .json(&format!(
            "users/{user}/mailFolders/inbox/messages?$top=1&$select=id"
        ))
        .await["value"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let moved_again = sim
        .http
        .post(graph(format!("{regular}/move")))
        .bearer_auth(&sim.token)
        .json(&json!({"destinationId": "deleteditems"}))
        .send()
        .await
        .unwrap();
    let new_id = moved_again.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_id, regular);
    assert_eq!(
        sim.get(&format!("users/{user}/messages/{regular}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        sim.get(&format!("users/{user}/messages/{new_id}"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn mime_export_and_creation_follow_the_draft_rules() {
    let sim = start_sim(|_| {}).await;
    let user = first_user(&sim).await;
    let (messages, _) = sim
        .collect(
            &format!(
                "users/{user}/messages?$top=50&$select=hasAttachments,subject,internetMessageId"
            ),
            &[],
        )
        .await;
    let with_attachment = messages
        .iter()
        .find(|m| m["hasAttachments"] == true)
        .expect("some message has attachments");
    let id = with_attachment["id"].as_str().unwrap();
    let mime = sim
        .get(&format!("users/{user}/messages/{id}/$value"))
        .await
        .bytes()
        .await
        .unwrap();
    let parsed = mail_parser::MessageParser::default()
        .parse(&mime[..])
        .unwrap();
    assert_eq!(
        format!("<{}>", parsed.message_id().unwrap()),
        with_attachment["internetMessageId"].as_str().unwrap()
    );
    assert!(parsed.attachment_count() >= 1);
    assert!(String::from_utf8_lossy(&mime).contains("multipart/alternative"));
    let attachments = sim
        .json(&format!("users/{user}/messages/{id}/attachments"))
        .await;
    let attachment = &attachments["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["isInline"] == false)
        .unwrap();
    assert_eq!(attachment["@odata.type"], "#microsoft.graph.fileAttachment");
    let raw = sim
        .get(&format!(
            "users/{user}/messages/{id}/attachments/{}/$value",
            attachment["id"].as_str().unwrap()
        ))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(&raw),
        attachment["contentBytes"].as_str().unwrap()
    );

    // MIME upload: base64 text/plain, always a draft.
    let encoded = base64::engine::general_purpose::STANDARD.encode(&mime);
    let url = format!(
        "{}/v1.0/users/{user}/mailFolders/inbox/messages",
        sim.base()
    );
    let created = sim
        .http
        .post(&url)
        .bearer_auth(&sim.token)
        .header("Content-Type", "text/plain")
        .body(encoded)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["isDraft"], true);
    assert_eq!(created["subject"], with_attachment["subject"]);
    let invalid = sim
        .http
        .post(&url)
        .bearer_auth(&sim.token)
        .header("Content-Type", "text/plain")
        .body("%%% not base64 %%%")
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    assert_eq!(
        invalid.json::<Value>().await.unwrap()["error"]["code"],
        "ErrorMimeContentInvalidBase64String"
    );

    // JSON create with PR_MESSAGE_FLAGS = read, not unsent: a normal received message.
    let body = json!({
        "subject": "Restored", "body": {"contentType": "html", "content": "<p>Hi</p>"},
        "from": {"emailAddress": {"name": "Ann", "address": "ann@example.com"}},
        "toRecipients": [{"emailAddress": {"address": "bob@example.com"}}],
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "1"},
            {"id": "SystemTime 0x0E06", "value": "2026-09-22T10:00:00Z"}
        ]
    });
    let restored: Value = sim
        .http
        .post(&url)
        .bearer_auth(&sim.token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(restored["isDraft"], false);
    assert_eq!(restored["isRead"], true);
    assert_eq!(restored["receivedDateTime"], "2026-09-22T10:00:00Z");
    let plain = json!({"subject": "Draft by default"});
    let draft: Value = sim
        .http
        .post(&url)
        .bearer_auth(&sim.token)
        .json(&plain)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(draft["isDraft"], true);
    let added = sim.http.post(format!("{}/v1.0/users/{user}/messages/{}/attachments", sim.base(), restored["id"].as_str().unwrap())).bearer_auth(&sim.token)
        .json(&json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt", "contentType": "text/plain", "contentBytes": "aGVsbG8="})).send().await.unwrap();
    assert_eq!(added.status(), 201);
    let unknown = sim
        .get(&format!(
            "users/{user}/messages/AAMkAGZmZmZmZmZmZmZmZmZmZmZmZmZmZmZm"
        ))
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"]["code"],
        "ErrorItemNotFound"
    );
}

#[tokio::test]
async fn all_staff_mail_is_identical_across_mailboxes() {
    let sim = start_sim(|_| {}).await;
    let users = sim.json("users?$top=3").await;
    let mut bodies = Vec::new();
    for user in users["value"].as_array().unwrap().iter().skip(1) {
        let id = user["id"].as_str().unwrap();
        let (items, _) = sim
            .collect(
                &format!("users/{id}/mailFolders/inbox/messages?$top=100&$select=subject"),
                &[],
            )
            .await;
        let announcement = items
            .iter()
            .find(|m| m["subject"].as_str().unwrap().starts_with("[All staff]"))
            .unwrap();
        bodies.push(
            sim.get(&format!(
                "users/{id}/messages/{}/$value",
                announcement["id"].as_str().unwrap()
            ))
            .await
            .bytes()
            .await
            .unwrap(),
        );
    }
    assert_eq!(bodies[0], bodies[1], "company-wide mail deduplicates");
}

#[tokio::test]
async fn received_date_filters_narrow_listing_and_delta() {
    let sim = start_sim(|_| {}).await;
    let user = first_user(&sim).await;
    let cutoff = "2026-10-25T00:00:00Z";
    let (all, _) = delta_round(
        &sim,
        &format!("users/{user}/mailFolders/inbox/messages/delta"),
        &[],
    )
    .await;
    let (recent, link) = delta_round(
        &sim,
        &format!(
            "users/{user}/mailFolders/inbox/messages/delta?$filter=receivedDateTime ge {cutoff}"
        ),
        &[],
    )
    .await;
    assert!(
        !recent.is_empty() && recent.len() < all.len(),
        "{} of {}",
        recent.len(),
        all.len()
    );
    assert!(
        recent
            .iter()
            .all(|m| m["receivedDateTime"].as_str().unwrap() >= cutoff)
    );
    let (listed, _) = sim.collect(&format!("users/{user}/mailFolders/inbox/messages?$top=100&$filter=receivedDateTime ge {cutoff}"), &[]).await;
    assert_eq!(listed.len(), recent.len());
    // The filter lives on in the delta token: an old message changed later does not surface.
    let old = all
        .iter()
        .find(|m| m["receivedDateTime"].as_str().unwrap() < cutoff)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = sim
        .http
        .patch(format!("{}/v1.0/users/{user}/messages/{old}", sim.base()))
        .bearer_auth(&sim.token)
        .json(&json!({"isRead": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let (changes, _) = delta_round(&sim, &link, &[]).await;
    assert!(changes.is_empty(), "{changes:?}");
}
