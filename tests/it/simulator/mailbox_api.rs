//! The mailbox import/export API's read side: exchange settings, folders of every class, items
//! whose ids the message, event and contact endpoints accept, per-folder item delta (moves,
//! deletes, expired tokens), archives on beta with the auxiliary archive's 308, and limits.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Sim, start_sim};

/// A user's id, UPN and mailbox ids (`index` in `/users` order: 1 has an archive and an
/// auxiliary archive, 2 has none).
pub struct Owner {
    pub id: String,
    pub primary: String,
    pub archive: Option<String>,
    pub auxiliary: Option<String>,
}

pub async fn owner(sim: &Sim, index: usize) -> Owner {
    let users = sim.json("users").await;
    let id = users["value"][index]["id"].as_str().unwrap().to_owned();
    let (status, ids) = sim
        .control(
            Method::GET,
            &format!("tenants/default/users/{id}/mailbox"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{ids}");
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Owner {
        id,
        primary: text(&ids["primary"]).unwrap(),
        archive: text(&ids["archive"]),
        auxiliary: text(&ids["auxiliaryArchive"]),
    }
}

pub fn mailbox(id: &str) -> String {
    format!("admin/exchange/mailboxes/{id}")
}

pub async fn folder_by_name(sim: &Sim, mailbox_path: &str, name: &str) -> Value {
    let (folders, _) = sim
        .collect(&format!("{mailbox_path}/folders?$top=100"), &[])
        .await;
    folders
        .into_iter()
        .find(|f| f["displayName"] == name)
        .unwrap_or_else(|| panic!("no folder {name}"))
}

/// Follows a delta round to its deltaLink.
pub async fn delta_round(sim: &Sim, url: &str, page: usize) -> (Vec<Value>, String) {
    let prefer = format!("odata.maxpagesize={page}");
    let mut items = Vec::new();
    let mut next = url.to_owned();
    for _ in 0..1_000 {
        let response = sim.get_with(&next, &[("Prefer", &prefer)]).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{next}: {body}");
        let values = body["value"].as_array().unwrap();
        assert!(values.len() <= page);
        items.extend(values.iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(link) => next = link.to_owned(),
            None => return (items, body["@odata.deltaLink"].as_str().unwrap().to_owned()),
        }
    }
    panic!("delta did not end");
}

#[tokio::test]
async fn exchange_settings_give_mailbox_ids_and_the_archive_on_beta_only() {
    let sim = start_sim(|_| {}).await;
    let with_archive = owner(&sim, 1).await;
    let settings = sim
        .json(&format!("users/{}/settings/exchange", with_archive.id))
        .await;
    let primary = settings["primaryMailboxId"].as_str().unwrap();
    assert_eq!(primary, with_archive.primary);
    assert!(primary.starts_with("MBX:") && primary.ends_with(&format!("@{}", sim.tenant_id())));
    assert!(settings.get("inPlaceArchiveMailboxId").is_none());
    let beta = sim
        .json(&format!(
            "{}/beta/users/{}/settings/exchange",
            sim.base(),
            with_archive.id
        ))
        .await;
    assert_eq!(beta["primaryMailboxId"], primary);
    assert_eq!(
        beta["inPlaceArchiveMailboxId"].as_str(),
        with_archive.archive.as_deref()
    );
    let without = owner(&sim, 2).await;
    let beta = sim
        .json(&format!(
            "{}/beta/users/{}/settings/exchange",
            sim.base(),
            without.id
        ))
        .await;
    assert!(beta["inPlaceArchiveMailboxId"].is_null());
    // A user without a licence has no mailbox.
    sim.control(
        Method::PATCH,
        &format!("tenants/default/users/{}", without.id),
        Some(json!({"licensed": false})),
    )
    .await;
    let response = sim
        .get(&format!("users/{}/settings/exchange", without.id))
        .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MailboxNotEnabledForRESTAPI");
    let response = sim
        .get(&format!("{}/folders", mailbox(&without.primary)))
        .await;
    assert_eq!(response.status(), 404);
    // Other beta paths are not served.
    let response = sim.get(&format!("{}/beta/users", sim.base())).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn folders_cover_mail_calendar_contacts_tasks_and_notes() {
    let sim = start_sim(|_| {}).await;
    let user = owner(&sim, 2).await;
    let path = mailbox(&user.primary);
    let (folders, _) = sim.collect(&format!("{path}/folders?$top=3"), &[]).await;
    let class_of = |name: &str| {
        folders
            .iter()
            .find(|f| f["displayName"] == name)
            .map(|f| (f["type"].as_str().unwrap(), f["wellKnownName"].clone()))
    };
    assert_eq!(class_of("Inbox"), Some(("IPF.Note", json!("inbox"))));
    assert_eq!(
        class_of("Calendar"),
        Some(("IPF.Appointment", json!("calendar")))
    );
    assert_eq!(
        class_of("Contacts"),
        Some(("IPF.Contact", json!("contacts")))
    );
    assert_eq!(class_of("Tasks"), Some(("IPF.Task", json!("tasks"))));
    assert_eq!(class_of("Notes"), Some(("IPF.StickyNote", json!("notes"))));
    // Mail folders keep the ids the mail endpoints give them.
    let inbox = folders
        .iter()
        .find(|f| f["displayName"] == "Inbox")
        .unwrap();
    let mail_inbox = sim
        .json(&format!("users/{}/mailFolders/inbox", user.id))
        .await;
    assert_eq!(inbox["id"], mail_inbox["id"]);
    assert_eq!(inbox["totalItemCount"], mail_inbox["totalItemCount"]);
    let children = sim.child_folders(&format!("{path}/folders"), inbox).await;
    let (child_delta, child_link) = delta_round(
        &sim,
        &format!(
            "{}/v1.0/{path}/folders/{}/childFolders/delta",
            sim.base(),
            inbox["id"].as_str().unwrap()
        ),
        1,
    )
    .await;
    assert_eq!(super::ids(&child_delta), super::ids(&children));
    // A folder created in Outlook shows in the next round.
    let (status, _) = sim
        .post_json(
            &format!("users/{}/mailFolders/inbox/childFolders", user.id),
            &json!({"displayName": "Invoices"}),
        )
        .await;
    assert_eq!(status, 201);
    let (created, _) = delta_round(&sim, &child_link, 5).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["displayName"], "Invoices");
    assert_eq!(created[0]["type"], "IPF.Note");
    let calendars = sim
        .json(&format!("{path}/folders?$filter=type eq 'IPF.Appointment'"))
        .await;
    assert_eq!(calendars["value"].as_array().unwrap().len(), 1);
    let (delta, _) = delta_round(
        &sim,
        &format!("{}/v1.0/{path}/folders/delta", sim.base()),
        4,
    )
    .await;
    assert!(delta.len() >= folders.len() + children.len());
    let one = sim
        .json(&format!("{path}/folders/{}", inbox["id"].as_str().unwrap()))
        .await;
    assert_eq!(one["displayName"], "Inbox");
    let response = sim.get(&format!("{path}/folders/nonsense")).await;
    assert_eq!(response.status(), 400);
    let response = sim
        .get(&format!("{}/folders", mailbox("MBX:nothing@here")))
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn item_ids_open_the_message_event_and_contact_endpoints() {
    let sim = start_sim(|_| {}).await;
    let user = owner(&sim, 2).await;
    let path = mailbox(&user.primary);
    let inbox = folder_by_name(&sim, &path, "Inbox").await;
    let (items, _) = sim
        .collect(
            &format!(
                "{path}/folders/{}/items?$top=7",
                inbox["id"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(
        items.len() as u64,
        inbox["totalItemCount"].as_u64().unwrap()
    );
    for item in &items {
        assert_eq!(item["type"], "IPM.Note");
        assert!(item["size"].as_u64().unwrap() > 0);
        assert!(item["changeKey"].is_string() && item["createdDateTime"].is_string());
    }
    let id = items[0]["id"].as_str().unwrap();
    let mime = sim
        .get(&format!("users/{}/messages/{id}/$value", user.id))
        .await;
    assert_eq!(mime.status(), 200);
    assert!(mime.text().await.unwrap().contains("Message-ID:"));
    let message = sim.json(&format!("users/{}/messages/{id}", user.id)).await;
    assert_eq!(message["changeKey"], items[0]["changeKey"]);

    let calendar = folder_by_name(&sim, &path, "Calendar").await;
    let (events, _) = sim
        .collect(
            &format!(
                "{path}/folders/{}/items?$top=50",
                calendar["id"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert!(events.len() >= 4 && events.iter().all(|e| e["type"] == "IPM.Appointment"));
    let mut recurring = 0;
    for event in &events {
        let json = sim
            .json(&format!(
                "users/{}/events/{}",
                user.id,
                event["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(json["id"], event["id"]);
        assert!(
            json["start"]["dateTime"].is_string()
                && json["organizer"]["emailAddress"]["address"].is_string()
        );
        if json["recurrence"].is_object() {
            recurring += 1;
            assert_eq!(json["recurrence"]["pattern"]["type"], "weekly");
            assert!(!json["attendees"].as_array().unwrap().is_empty());
            assert_eq!(json["type"], "seriesMaster");
        }
    }
    assert!(recurring > 0);
    let contacts = folder_by_name(&sim, &path, "Contacts").await;
    let (people, _) = sim
        .collect(
            &format!("{path}/folders/{}/items", contacts["id"].as_str().unwrap()),
            &[],
        )
        .await;
    assert!(people.len() >= 3 && people.iter().all(|c| c["type"] == "IPM.Contact"));
    let contact = sim
        .json(&format!(
            "users/{}/contacts/{}",
            user.id,
            people[0]["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        contact["emailAddresses"][0]["address"]
            .as_str()
            .unwrap()
            .contains('@')
    );
    assert!(
        contact["businessPhones"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    for (name, class) in [("Tasks", "IPM.Task"), ("Notes", "IPM.StickyNote")] {
        let folder = folder_by_name(&sim, &path, name).await;
        let body = sim
            .json(&format!(
                "{path}/folders/{}/items",
                folder["id"].as_str().unwrap()
            ))
            .await;
        assert!(
            body["value"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["type"] == class)
        );
        assert!(!body["value"].as_array().unwrap().is_empty());
    }
    // An event id is not a contact.
    let response = sim
        .get(&format!(
            "users/{}/contacts/{}",
            user.id,
            events[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn item_delta_reports_moves_in_both_folders_deletes_and_additions() {
    let sim = start_sim(|_| {}).await;
    let user = owner(&sim, 2).await;
    let path = mailbox(&user.primary);
    let base = format!("{}/v1.0/{path}", sim.base());
    let inbox = folder_by_name(&sim, &path, "Inbox").await;
    let deleted = folder_by_name(&sim, &path, "Deleted Items").await;
    let calendar = folder_by_name(&sim, &path, "Calendar").await;
    let url = |f: &Value| format!("{base}/folders/{}/items/delta", f["id"].as_str().unwrap());
    let (first, inbox_link) = delta_round(&sim, &url(&inbox), 3).await;
    assert_eq!(
        first.len() as u64,
        inbox["totalItemCount"].as_u64().unwrap()
    );
    let (_, deleted_link) = delta_round(&sim, &url(&deleted), 3).await;
    let (events, calendar_link) = delta_round(&sim, &url(&calendar), 3).await;
    let moved = first[0]["id"].as_str().unwrap().to_owned();
    let control = |rest: &str| format!("tenants/default/users/{}/mailbox/{rest}", user.id);
    let (status, body) = sim
        .control(
            Method::POST,
            &control(&format!("items/{moved}/move")),
            Some(json!({"folder": "deleteditems"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, added) = sim
        .control(
            Method::POST,
            &control("items"),
            Some(json!({"type": "event", "subject": "Budget review"})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let gone = events[1]["id"].as_str().unwrap();
    let (status, _) = sim
        .control(Method::DELETE, &control(&format!("items/{gone}")), None)
        .await;
    assert_eq!(status, 200);
    let changed = events[2]["id"].as_str().unwrap();
    let (status, _) = sim
        .control(
            Method::PATCH,
            &control(&format!("items/{changed}")),
            Some(json!({"categories": ["Red category"]})),
        )
        .await;
    assert_eq!(status, 200);

    let (inbox_changes, _) = delta_round(&sim, &inbox_link, 3).await;
    assert_eq!(inbox_changes.len(), 1);
    assert_eq!(inbox_changes[0]["id"], moved.as_str());
    assert_eq!(inbox_changes[0]["@removed"]["reason"], "deleted");
    let (deleted_changes, _) = delta_round(&sim, &deleted_link, 3).await;
    assert_eq!(deleted_changes.len(), 1);
    assert_eq!(deleted_changes[0]["id"], moved.as_str());
    assert_eq!(deleted_changes[0]["type"], "IPM.Note");
    // The immutable id survives the move for the message endpoints too.
    let message = sim
        .json(&format!("users/{}/messages/{moved}", user.id))
        .await;
    assert_eq!(message["parentFolderId"], deleted["id"]);
    let (calendar_changes, next_link) = delta_round(&sim, &calendar_link, 3).await;
    let by_id = |id: &str| calendar_changes.iter().find(|c| c["id"] == id).cloned();
    assert_eq!(by_id(gone).unwrap()["@removed"]["reason"], "deleted");
    assert_eq!(
        by_id(changed).unwrap()["categories"],
        json!(["Red category"])
    );
    assert_eq!(
        by_id(added["id"].as_str().unwrap()).unwrap()["type"],
        "IPM.Appointment"
    );
    assert_eq!(calendar_changes.len(), 3);
    let (nothing, _) = delta_round(&sim, &next_link, 3).await;
    assert!(nothing.is_empty());

    // Expired tokens answer 410 with the initial request in Location; garbled ones 400.
    let (status, _) = sim.control(Method::POST, &control("resync"), None).await;
    assert_eq!(status, 200);
    let response = sim.get(&next_link).await;
    assert_eq!(response.status(), 410);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        url(&calendar)
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "syncStateNotFound");
    let response = sim
        .get(&format!("{}?$deltatoken=garbage", url(&calendar)))
        .await;
    assert_eq!(response.status(), 400);
    let (again, _) = delta_round(&sim, &url(&calendar), 50).await;
    assert_eq!(again.len(), events.len());
}

#[tokio::test]
async fn archives_answer_on_beta_and_redirect_expanded_folders_to_the_auxiliary_archive() {
    let sim = start_sim(|_| {}).await;
    let user = owner(&sim, 1).await;
    let archive = user.archive.clone().unwrap();
    let auxiliary = user.auxiliary.clone().unwrap();
    let response = sim.get(&format!("{}/folders", mailbox(&archive))).await;
    assert_eq!(response.status(), 400);
    let beta = format!("{}/beta/{}", sim.base(), mailbox(&archive));
    let folders = sim.json(&format!("{beta}/folders")).await;
    let folders = folders["value"].as_array().unwrap();
    assert!(folders.iter().all(|f| f["wellKnownName"].is_null()));
    let expanded = folders.iter().find(|f| f["displayName"] == "2023").unwrap();
    let expanded_id = expanded["id"].as_str().unwrap();
    let response = sim
        .get(&format!("{beta}/folders/{expanded_id}/items"))
        .await;
    assert_eq!(response.status(), 308);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!(
            "{}/beta/{}/folders/{expanded_id}/items",
            sim.base(),
            mailbox(&auxiliary)
        )
    );
    let items = sim.json(&location).await;
    let items = items["value"].as_array().unwrap();
    assert!(!items.is_empty() && items.iter().all(|i| i["type"] == "IPM.Note"));
    let inbox = folders
        .iter()
        .find(|f| f["displayName"] == "Inbox")
        .unwrap();
    let (archived, _) = delta_round(
        &sim,
        &format!(
            "{beta}/folders/{}/items/delta",
            inbox["id"].as_str().unwrap()
        ),
        5,
    )
    .await;
    assert_eq!(
        archived.len() as u64,
        inbox["totalItemCount"].as_u64().unwrap()
    );
    // Archived mail is not in the primary mailbox.
    let response = sim
        .get(&format!(
            "users/{}/messages/{}",
            user.id,
            archived[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn mailbox_ids_count_against_the_owners_mailbox_limit() {
    let sim = start_sim(|_| {}).await;
    let user = owner(&sim, 2).await;
    let (status, _) = sim
        .control(
            Method::PUT,
            "throttling",
            Some(json!({"mailbox_requests": 4})),
        )
        .await;
    assert_eq!(status, 200);
    for path in [
        format!("users/{}/mailFolders", user.id),
        format!("{}/folders", mailbox(&user.primary)),
        format!("users/{}/settings/exchange", user.id),
        format!("{}/folders/delta", mailbox(&user.primary)),
    ] {
        assert_eq!(sim.get(&path).await.status(), 200, "{path}");
    }
    let throttled = sim
        .get(&format!("{}/folders", mailbox(&user.primary)))
        .await;
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    let other = owner(&sim, 3).await;
    assert_eq!(
        sim.get(&format!("{}/folders", mailbox(&other.primary)))
            .await
            .status(),
        200
    );
}
