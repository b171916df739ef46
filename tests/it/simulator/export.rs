//! exportItems (the opaque stream, per-item errors, the 20-id ceiling, the auxiliary archive's
//! per-item redirect) and import sessions (pre-authenticated URL, create and update, not a
//! draft, expiry, corrupt data, the expanded archive folder's 409).

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use super::mailbox_api::{delta_round, folder_by_name, mailbox, owner};
use super::{Sim, start_sim};

async fn post(sim: &Sim, url: &str, body: Value) -> (u16, Value) {
    sim.post_json(url, &body).await
}

/// Imports without any bearer token: the URL is the credential.
async fn import(sim: &Sim, import_url: &str, body: Value) -> (u16, Value) {
    let response = sim.http.post(import_url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn items_of(sim: &Sim, path: &str, folder: &Value) -> Vec<Value> {
    sim.collect(
        &format!(
            "{path}/folders/{}/items?$top=100",
            folder["id"].as_str().unwrap()
        ),
        &[],
    )
    .await
    .0
}

#[tokio::test]
async fn export_gives_an_opaque_stream_per_item_and_errors_per_item() {
    let sim = start_sim(|_| {}).await;
    let user = owner(&sim, 2).await;
    let path = mailbox(&user.primary);
    let inbox = folder_by_name(&sim, &path, "Inbox").await;
    let calendar = folder_by_name(&sim, &path, "Calendar").await;
    let messages = items_of(&sim, &path, &inbox).await;
    let events = items_of(&sim, &path, &calendar).await;
    let ids = [
        messages[0]["id"].as_str().unwrap(),
        events[0]["id"].as_str().unwrap(),
        messages[1]["id"].as_str().unwrap(),
        "AAMkAGI2THVSAAA=",
    ];
    let failing = ids[2];
    let (status, _) = sim
        .control(
            Method::PUT,
            &format!(
                "tenants/default/users/{}/mailbox/items/{failing}/export-failure",
                user.id
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = post(
        &sim,
        &format!("{path}/exportItems"),
        json!({"itemIds": ids}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["value"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for (result, expected) in results[..2].iter().zip([&messages[0], &events[0]]) {
        assert_eq!(result["itemId"], expected["id"]);
        assert_eq!(result["changeKey"], expected["changeKey"]);
        let data = base64::engine::general_purpose::STANDARD
            .decode(result["data"].as_str().unwrap())
            .unwrap();
        assert!(
            data.starts_with(b"SVFT"),
            "the stream is the simulator's own format"
        );
        assert!(!String::from_utf8_lossy(&data).contains("MIME-Version"));
    }
    assert_eq!(results[2]["error"]["code"], "ErrorInternalServerError");
    assert!(results[2].get("data").is_none());
    assert_eq!(results[3]["error"]["code"], "ErrorItemNotFound");
    let too_many: Vec<&str> = std::iter::repeat_n(ids[0], 21).collect();
    let (status, body) = post(
        &sim,
        &format!("{path}/exportItems"),
        json!({"itemIds": too_many}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "ErrorInvalidRequest");
    let (status, _) = post(&sim, &format!("{path}/exportItems"), json!({"itemIds": []})).await;
    assert_eq!(status, 400);
    let (status, _) = post(&sim, &format!("{path}/exportItems"), json!("nonsense")).await;
    assert_eq!(status, 400);
    // Another user's mailbox does not export this user's items.
    let other = owner(&sim, 3).await;
    let (_, body) = post(
        &sim,
        &format!("{}/exportItems", mailbox(&other.primary)),
        json!({"itemIds": [ids[0]]}),
    )
    .await;
    assert_eq!(body["value"][0]["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn an_exported_message_imports_elsewhere_as_the_same_received_message() {
    let sim = start_sim(|_| {}).await;
    let source = owner(&sim, 2).await;
    let target = owner(&sim, 3).await;
    let inbox = folder_by_name(&sim, &mailbox(&source.primary), "Inbox").await;
    let messages = items_of(&sim, &mailbox(&source.primary), &inbox).await;
    let id = messages[0]["id"].as_str().unwrap();
    let original = sim
        .json(&format!("users/{}/messages/{id}", source.id))
        .await;
    let (_, exported) = post(
        &sim,
        &format!("{}/exportItems", mailbox(&source.primary)),
        json!({"itemIds": [id]}),
    )
    .await;
    let data = exported["value"][0]["data"].as_str().unwrap().to_owned();

    let (status, session) = post(
        &sim,
        &format!("{}/createImportSession", mailbox(&target.primary)),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    let import_url = session["importUrl"].as_str().unwrap().to_owned();
    assert!(import_url.starts_with(&format!(
        "{}/_outlook/api/gv1.0/Mailboxes('{}')/importItem?authtoken=",
        sim.base(),
        target.primary
    )));
    assert!(
        chrono::DateTime::parse_from_rfc3339(session["expirationDateTime"].as_str().unwrap())
            .is_ok()
    );
    let target_inbox = folder_by_name(&sim, &mailbox(&target.primary), "Inbox").await;
    let (_, link) = delta_round(
        &sim,
        &format!(
            "{}/v1.0/{}/folders/{}/items/delta",
            sim.base(),
            mailbox(&target.primary),
            target_inbox["id"].as_str().unwrap()
        ),
        50,
    )
    .await;
    let (status, created) = import(
        &sim,
        &import_url,
        json!({"FolderId": target_inbox["id"], "Mode": "create", "Data": data}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let new_id = created["itemId"].as_str().unwrap();
    assert!(created["changeKey"].is_string());
    let copy = sim
        .json(&format!("users/{}/messages/{new_id}", target.id))
        .await;
    assert_eq!(copy["isDraft"], false);
    for field in [
        "subject",
        "receivedDateTime",
        "sentDateTime",
        "isRead",
        "internetMessageId",
        "categories",
        "importance",
        "hasAttachments",
        "flag",
        "from",
        "toRecipients",
    ] {
        assert_eq!(copy[field], original[field], "{field}");
    }
    assert_eq!(copy["parentFolderId"], target_inbox["id"]);
    let (changes, _) = delta_round(&sim, &link, 10).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["id"], new_id);

    // Update mode needs the current change key.
    let (status, body) = import(
        &sim,
        &import_url,
        json!({"FolderId": target_inbox["id"], "Mode": "update", "Data": data, "ItemId": new_id, "ChangeKey": "stale"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, updated) = import(
        &sim,
        &import_url,
        json!({"FolderId": target_inbox["id"], "Mode": "update", "Data": data, "ItemId": new_id, "ChangeKey": created["changeKey"]}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["itemId"], new_id);
    assert_ne!(updated["changeKey"], created["changeKey"]);
    let (status, _) = import(
        &sim,
        &import_url,
        json!({"FolderId": target_inbox["id"], "Mode": "create", "Data": data, "ItemId": new_id}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = import(
        &sim,
        &import_url,
        json!({"FolderId": target_inbox["id"], "Mode": "create", "Data": base64::engine::general_purpose::STANDARD.encode("From: a@b\r\n\r\nhello")}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("ErrorCorruptData"))
    );
    // The token is the only credential: a changed one is refused, and sessions expire.
    let (status, _) = import(
        &sim,
        &format!("{import_url}x"),
        json!({"FolderId": target_inbox["id"], "Mode": "create", "Data": data}),
    )
    .await;
    assert_eq!(status, 401);
    sim.clock.advance(chrono::Duration::hours(2));
    let (status, body) = import(
        &sim,
        &import_url,
        json!({"FolderId": target_inbox["id"], "Mode": "create", "Data": data}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn events_contacts_tasks_and_notes_round_trip_through_export_and_import() {
    let sim = start_sim(|_| {}).await;
    let user = owner(&sim, 2).await;
    let path = mailbox(&user.primary);
    let (_, session) = post(&sim, &format!("{path}/createImportSession"), json!({})).await;
    let import_url = session["importUrl"].as_str().unwrap().to_owned();
    for name in ["Calendar", "Contacts", "Tasks", "Notes"] {
        let folder = folder_by_name(&sim, &path, name).await;
        let items = items_of(&sim, &path, &folder).await;
        let (_, exported) = post(
            &sim,
            &format!("{path}/exportItems"),
            json!({"itemIds": [items[0]["id"]]}),
        )
        .await;
        let data = exported["value"][0]["data"].as_str().unwrap();
        let (status, created) = import(
            &sim,
            &import_url,
            json!({"FolderId": folder["id"], "Mode": "create", "Data": data}),
        )
        .await;
        assert_eq!(status, 200, "{name}: {created}");
        let after = items_of(&sim, &path, &folder).await;
        assert_eq!(after.len(), items.len() + 1);
        let copy = after.iter().find(|i| i["id"] == created["itemId"]).unwrap();
        assert_eq!(copy["type"], items[0]["type"]);
        assert_eq!(copy["categories"], items[0]["categories"]);
        assert_eq!(copy["createdDateTime"], items[0]["createdDateTime"]);
        let (_, again) = post(
            &sim,
            &format!("{path}/exportItems"),
            json!({"itemIds": [created["itemId"]]}),
        )
        .await;
        assert_eq!(
            again["value"][0]["data"].as_str().map(str::len),
            Some(data.len()),
            "{name}: the copy exports the same content"
        );
        if name == "Calendar" {
            let original = sim
                .json(&format!(
                    "users/{}/events/{}",
                    user.id,
                    items[0]["id"].as_str().unwrap()
                ))
                .await;
            let event = sim
                .json(&format!(
                    "users/{}/events/{}",
                    user.id,
                    created["itemId"].as_str().unwrap()
                ))
                .await;
            for field in [
                "subject",
                "start",
                "end",
                "recurrence",
                "attendees",
                "organizer",
                "iCalUId",
            ] {
                assert_eq!(event[field], original[field], "{field}");
            }
        }
    }
}

#[tokio::test]
async fn the_auxiliary_archive_redirects_export_and_refuses_imports_into_expanded_folders() {
    let sim = start_sim(|_| {}).await;
    let user = owner(&sim, 1).await;
    let archive = user.archive.clone().unwrap();
    let auxiliary = user.auxiliary.clone().unwrap();
    let beta = |id: &str| format!("{}/beta/{}", sim.base(), mailbox(id));
    let folders = sim.json(&format!("{}/folders", beta(&archive))).await;
    let folders = folders["value"].as_array().unwrap().clone();
    let expanded = folders.iter().find(|f| f["displayName"] == "2023").unwrap();
    let inbox = folders
        .iter()
        .find(|f| f["displayName"] == "Inbox")
        .unwrap();
    let moved_items = sim
        .json(&format!(
            "{}/folders/{}/items",
            beta(&auxiliary),
            expanded["id"].as_str().unwrap()
        ))
        .await;
    let in_auxiliary = moved_items["value"][0]["id"].as_str().unwrap().to_owned();
    let in_main = sim
        .json(&format!(
            "{}/folders/{}/items",
            beta(&archive),
            inbox["id"].as_str().unwrap()
        ))
        .await["value"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = post(
        &sim,
        &format!("{}/exportItems", beta(&archive)),
        json!({"itemIds": [in_main, in_auxiliary]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["value"][0]["data"].is_string());
    let redirect = &body["value"][1]["error"];
    assert_eq!(redirect["code"], "ErrorArchiveFolderMovedPermanently");
    let retry_url = redirect["message"].as_str().unwrap();
    assert_eq!(retry_url, format!("{}/exportItems", beta(&auxiliary)));
    let (status, body) = post(&sim, retry_url, json!({"itemIds": [in_auxiliary]})).await;
    assert_eq!(status, 200);
    assert!(body["value"][0]["data"].is_string(), "{body}");

    let (status, session) = post(
        &sim,
        &format!("{}/createImportSession", beta(&archive)),
        json!({}),
    )
    .await;
    assert_eq!(status, 201);
    let import_url = session["importUrl"].as_str().unwrap();
    assert!(import_url.contains("/api/gbeta/"));
    let data = body["value"][0]["data"].clone();
    let (status, refused) = import(
        &sim,
        import_url,
        json!({"FolderId": expanded["id"], "Mode": "create", "Data": data}),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        refused["Message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("mailbox {auxiliary}."))
    );
    let (status, created) = import(
        &sim,
        import_url,
        json!({"FolderId": inbox["id"], "Mode": "create", "Data": data}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    // v1.0 serves no archive.
    let (status, _) = post(
        &sim,
        &format!("{}/exportItems", mailbox(&archive)),
        json!({"itemIds": [in_main]}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn export_and_import_need_their_permissions() {
    let sim = start_sim(|_| {}).await;
    let user = owner(&sim, 2).await;
    let narrow = skyvault::simulator::AppRegistration {
        client_id: "0c4a1f7e-2222-4c4c-8d8d-0123456789ab".to_owned(),
        client_secret: "narrow".to_owned(),
        redirect_uris: vec![super::REDIRECT_URI.to_owned()],
        display_name: "Narrow".to_owned(),
        permissions: vec![
            "Mail.ReadWrite".to_owned(),
            "MailboxFolder.Read.All".to_owned(),
        ],
    };
    sim.running.register_app_with(narrow.clone());
    sim.running
        .grant_consent(sim.running.tenant().tenant_id, &narrow.client_id);
    let response = sim
        .token_request(
            &sim.tenant_id(),
            &[
                ("client_id", narrow.client_id.as_str()),
                ("client_secret", "narrow"),
                ("scope", super::GRAPH_SCOPE),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let narrow_sim = Sim { token, ..sim };
    let path = mailbox(&user.primary);
    assert_eq!(
        narrow_sim.get(&format!("{path}/folders")).await.status(),
        200
    );
    let inbox = folder_by_name(&narrow_sim, &path, "Inbox").await;
    let response = narrow_sim
        .get(&format!(
            "{path}/folders/{}/items",
            inbox["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(response.status(), 403);
    let (status, body) = post(
        &narrow_sim,
        &format!("{path}/exportItems"),
        json!({"itemIds": ["x"]}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("ErrorAccessDenied"))
    );
    let (status, _) = post(
        &narrow_sim,
        &format!("{path}/createImportSession"),
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
}
