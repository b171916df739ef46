//! Directory: organization, users, groups, sites, paging, delta, deleted items and life cycle.

use std::collections::HashSet;

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use super::{ids, start_sim};

#[tokio::test]
async fn users_page_completely_with_select_top_and_filter() {
    let sim = start_sim(|_| {}).await;
    let org = sim.json("organization").await;
    assert_eq!(org["value"].as_array().unwrap().len(), 1);
    assert_eq!(org["value"][0]["id"], sim.tenant_id().as_str());
    assert_eq!(org["value"][0]["verifiedDomains"][0]["isInitial"], true);

    let (paged, last) = sim.collect("users?$top=3", &[]).await;
    let (whole, _) = sim.collect("users", &[]).await;
    assert_eq!(paged.len(), 8);
    assert_eq!(ids(&paged), ids(&whole));
    assert_eq!(ids(&paged).into_iter().collect::<HashSet<_>>().len(), 8);
    assert!(last.get("@odata.nextLink").is_none());
    // Default properties only, without $select.
    assert!(whole[0].get("accountEnabled").is_none() && whole[0]["userPrincipalName"].is_string());

    let selected = sim
        .json("users?$select=displayName,accountEnabled&$top=2")
        .await;
    let first = selected["value"][0].as_object().unwrap();
    assert_eq!(
        first.keys().cloned().collect::<HashSet<_>>(),
        ["id", "displayName", "accountEnabled"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    );
    assert!(
        selected["@odata.nextLink"]
            .as_str()
            .unwrap()
            .contains("$skiptoken=")
    );

    let too_big = sim.get("users?$top=1000").await;
    assert_eq!(too_big.status(), 400);
    let body: Value = too_big.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Must be between 1 and 999")
    );
    let unknown = sim.get("users?$select=notAProperty").await;
    assert_eq!(unknown.status(), 400);

    let admin = sim.running.tenant().admin_user_principal_name.clone();
    let filtered = sim
        .json(&format!("users?$filter=userPrincipalName eq '{admin}'"))
        .await;
    assert_eq!(filtered["value"].as_array().unwrap().len(), 1);
    // Non-ASCII literals and unsupported expressions: answers, never a crash.
    let accents = sim
        .get("users?$filter=startswith(displayName,'Zoë') or displayName eq 'Søren Åberg'")
        .await;
    assert_eq!(accents.status(), 200);
    let unsupported = sim.get("users?$filter=bogus(").await;
    assert_eq!(unsupported.status(), 400);
    assert_eq!(
        unsupported.json::<Value>().await.unwrap()["error"]["code"],
        "Request_UnsupportedQuery"
    );
    let by_upn = sim.json(&format!("users/{admin}")).await;
    assert_eq!(by_upn["userPrincipalName"], admin.as_str());
    let missing = sim.get("users/00000000-0000-0000-0000-000000000001").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "Request_ResourceNotFound"
    );
}

#[tokio::test]
async fn groups_teams_and_sites_are_listed_as_graph_does() {
    let sim = start_sim(|_| {}).await;
    let (groups, _) = sim.collect("groups", &[]).await;
    assert_eq!(
        groups.len(),
        4,
        "3 Microsoft 365 groups and 1 security group"
    );
    let unified = sim
        .json("groups?$filter=groupTypes/any(c:c eq 'Unified')")
        .await;
    assert_eq!(unified["value"].as_array().unwrap().len(), 3);
    let teams = sim
        .json("groups?$filter=resourceProvisioningOptions/Any(x:x eq 'Team')")
        .await;
    assert_eq!(teams["value"].as_array().unwrap().len(), 1);
    let team_id = teams["value"][0]["id"].as_str().unwrap().to_owned();
    let members = sim.json(&format!("groups/{team_id}/members")).await;
    assert!(!members["value"].as_array().unwrap().is_empty());
    assert_eq!(members["value"][0]["@odata.type"], "#microsoft.graph.user");

    let none = sim.json("sites").await;
    assert!(
        none["value"].as_array().unwrap().is_empty(),
        "GET /sites without search is empty"
    );
    let (all, _) = sim.collect("sites/getAllSites", &[]).await;
    let (searched, _) = sim.collect("sites?search=*", &[]).await;
    assert_eq!(all.len(), 5, "root + 3 group sites + 1 communication site");
    assert_eq!(ids(&all), ids(&searched));
    for site in &all {
        assert_eq!(
            site["id"].as_str().unwrap().split(',').count(),
            3,
            "host,collection,web"
        );
    }
    let group_site = sim.json(&format!("groups/{team_id}/sites/root")).await;
    assert!(ids(&all).contains(&group_site["id"].as_str().unwrap().to_owned()));
    let site = sim
        .json(&format!("sites/{}", group_site["id"].as_str().unwrap()))
        .await;
    assert_eq!(site["displayName"], group_site["displayName"]);
}

async fn delta_round(sim: &super::Sim, url: &str) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut next = url.to_owned();
    loop {
        let body = sim.json(&next).await;
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        if let Some(link) = body["@odata.nextLink"].as_str() {
            next = link.to_owned();
        } else {
            return (items, body["@odata.deltaLink"].as_str().unwrap().to_owned());
        }
    }
}

#[tokio::test]
async fn users_delta_reports_additions_changes_and_removals() {
    let sim = start_sim(|_| {}).await;
    let (initial, delta_link) = delta_round(&sim, "users/delta").await;
    assert_eq!(initial.len(), 8);
    assert!(delta_link.contains("$deltatoken="));

    let (quiet, _) = delta_round(&sim, &delta_link).await;
    assert!(quiet.is_empty(), "no changes yet: {quiet:?}");

    let (status, created) = sim
        .control(
            Method::POST,
            "tenants/default/users",
            Some(json!({"displayName": "Nina Novak"})),
        )
        .await;
    assert_eq!(status, 201);
    let new_id = created["id"].as_str().unwrap().to_owned();
    let changed_id = initial[3]["id"].as_str().unwrap().to_owned();
    let deleted_id = initial[4]["id"].as_str().unwrap().to_owned();
    let (status, _) = sim
        .control(
            Method::PATCH,
            &format!("tenants/default/users/{changed_id}"),
            Some(json!({"jobTitle": "Chief Tester"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = sim
        .control(
            Method::DELETE,
            &format!("tenants/default/users/{deleted_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let (changes, next_link) = delta_round(&sim, &delta_link).await;
    let find = |id: &str| changes.iter().find(|c| c["id"] == id).cloned();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(find(&new_id).unwrap()["displayName"], "Nina Novak");
    assert_eq!(find(&changed_id).unwrap()["jobTitle"], "Chief Tester");
    assert_eq!(find(&deleted_id).unwrap()["@removed"]["reason"], "changed");

    // After retention the soft-deleted user is purged: reported as deleted, gone from deletedItems.
    sim.clock.advance(Duration::seconds(121));
    let token = sim.app_token().await;
    let sim = super::Sim { token, ..sim };
    let (purged, _) = delta_round(&sim, &next_link).await;
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0]["@removed"]["reason"], "deleted");

    let latest = sim.json("users/delta?$deltatoken=latest").await;
    assert!(
        latest["value"].as_array().unwrap().is_empty() && latest["@odata.deltaLink"].is_string()
    );
    let bad = sim.get("users/delta?$top=5").await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn deleted_user_is_restorable_then_purged_after_retention() {
    let sim = start_sim(|_| {}).await;
    let users = sim.json("users").await;
    let user = users["value"][2].clone();
    let id = user["id"].as_str().unwrap().to_owned();
    let folders_before =
        sim.json(&format!("users/{id}/mailFolders/inbox")).await["totalItemCount"].clone();
    let drive_before = sim.json(&format!("users/{id}/drive")).await["id"].clone();

    let deleted = sim
        .http
        .delete(format!("{}/v1.0/users/{id}", sim.base()))
        .bearer_auth(&sim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(sim.get(&format!("users/{id}")).await.status(), 404);
    let (listed, _) = sim.collect("users", &[]).await;
    assert!(!ids(&listed).contains(&id));
    let (gone, _) = sim
        .collect("directory/deletedItems/microsoft.graph.user", &[])
        .await;
    assert_eq!(ids(&gone), vec![id.clone()]);
    assert!(gone[0]["deletedDateTime"].is_string());
    assert_eq!(sim.get("directory/deletedItems").await.status(), 400);

    let mailbox = sim.get(&format!("users/{id}/mailFolders")).await;
    assert_eq!(mailbox.status(), 404);
    assert_eq!(
        mailbox.json::<Value>().await.unwrap()["error"]["code"],
        "MailboxNotEnabledForRESTAPI"
    );
    let drive = sim.get(&format!("users/{id}/drive")).await;
    assert_eq!(drive.status(), 404);
    assert_eq!(
        drive.json::<Value>().await.unwrap()["error"]["message"],
        "User's mysite not found."
    );

    let restored = sim
        .http
        .post(format!(
            "{}/v1.0/directory/deletedItems/{id}/restore",
            sim.base()
        ))
        .bearer_auth(&sim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), 200);
    assert_eq!(
        sim.json(&format!("users/{id}/mailFolders/inbox")).await["totalItemCount"],
        folders_before
    );
    assert_eq!(
        sim.json(&format!("users/{id}/drive")).await["id"],
        drive_before
    );

    // Delete again and let retention pass: the API no longer returns it anywhere.
    let (status, _) = sim
        .control(Method::DELETE, &format!("tenants/default/users/{id}"), None)
        .await;
    assert_eq!(status, 200);
    sim.clock.advance(Duration::seconds(60));
    assert_eq!(
        sim.collect("directory/deletedItems/microsoft.graph.user", &[])
            .await
            .0
            .len(),
        1
    );
    sim.clock.advance(Duration::seconds(61));
    let token = sim.app_token().await;
    let sim = super::Sim { token, ..sim };
    assert!(
        sim.collect("directory/deletedItems/microsoft.graph.user", &[])
            .await
            .0
            .is_empty()
    );
    assert_eq!(
        sim.get(&format!("directory/deletedItems/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        sim.get(&format!("users/{id}/mailFolders"))
            .await
            .json::<Value>()
            .await
            .unwrap()["error"]["code"],
        "ErrorInvalidUser"
    );
}

#[tokio::test]
async fn groups_delete_restore_and_security_groups_go_at_once() {
    let sim = start_sim(|_| {}).await;
    let (groups, _) = sim.collect("groups", &[]).await;
    let unified = groups
        .iter()
        .find(|g| g["groupTypes"][0] == "Unified")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let security = groups
        .iter()
        .find(|g| g["groupTypes"].as_array().unwrap().is_empty())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, link) = delta_round(&sim, "groups/delta").await;
    for id in [&unified, &security] {
        let response = sim
            .http
            .delete(format!("{}/v1.0/groups/{id}", sim.base()))
            .bearer_auth(&sim.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
    let (deleted, _) = sim
        .collect("directory/deletedItems/microsoft.graph.group", &[])
        .await;
    assert_eq!(
        ids(&deleted),
        vec![unified.clone()],
        "security groups are deleted permanently at once"
    );
    let (changes, _) = delta_round(&sim, &link).await;
    let reason =
        |id: &str| changes.iter().find(|c| c["id"] == id).unwrap()["@removed"]["reason"].clone();
    assert_eq!(reason(&unified), "changed");
    assert_eq!(reason(&security), "deleted");
    // The group's site leaves getAllSites with it and returns on restore.
    let sites_before = sim.collect("sites/getAllSites", &[]).await.0.len();
    let (status, _) = sim
        .control(
            Method::POST,
            &format!("tenants/default/groups/{unified}/restore"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        sim.collect("sites/getAllSites", &[]).await.0.len(),
        sites_before + 1
    );
}

#[tokio::test]
async fn sites_soft_delete_restore_and_purge_through_the_control_api() {
    let sim = start_sim(|_| {}).await;
    let (sites, _) = sim.collect("sites/getAllSites", &[]).await;
    let site = sites.iter().find(|s| s.get("root").is_none()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let drives = sim.json(&format!("sites/{site}/drives")).await;
    let drive = drives["value"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = sim
        .control(
            Method::DELETE,
            &format!("tenants/default/sites/{site}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        sim.collect("sites/getAllSites", &[]).await.0.len(),
        sites.len() - 1
    );
    assert_eq!(sim.get(&format!("sites/{site}")).await.status(), 404);
    assert_eq!(sim.get(&format!("drives/{drive}/root")).await.status(), 404);
    let (status, _) = sim
        .control(
            Method::POST,
            &format!("tenants/default/sites/{site}/restore"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(sim.get(&format!("drives/{drive}/root")).await.status(), 200);
    let (status, _) = sim
        .control(
            Method::POST,
            &format!("tenants/default/sites/{site}/purge"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(sim.get(&format!("sites/{site}")).await.status(), 404);
    let (status, _) = sim
        .control(
            Method::POST,
            &format!("tenants/default/sites/{site}/restore"),
            None,
        )
        .await;
    assert_eq!(status, 404, "a purged site is gone for good");
}

#[tokio::test]
async fn control_api_forwards_changes_without_token_or_throttling() {
    let sim = start_sim(|_| {}).await;
    let user = sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let drive = sim.json(&format!("users/{user}/drive")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let upload = sim
        .http
        .put(format!(
            "{}/_sim/tenants/default/graph/drives/{drive}/items/root:/from-control.txt:/content",
            sim.base()
        ))
        .bearer_auth(sim.running.admin_token())
        .body("made by the control API")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    let item = sim
        .json(&format!("drives/{drive}/root:/from-control.txt"))
        .await;
    assert_eq!(item["size"], 23);
    let message = sim
        .json(&format!("users/{user}/mailFolders/inbox/messages?$top=1"))
        .await["value"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, moved) = sim
        .control(
            Method::POST,
            &format!("tenants/default/graph/users/{user}/messages/{message}/move"),
            Some(json!({"destinationId": "archive"})),
        )
        .await;
    assert_eq!(status, 201);
    let fetched = sim
        .json(&format!(
            "users/{user}/messages/{}",
            moved["id"].as_str().unwrap()
        ))
        .await;
    let archive_id = sim.json(&format!("users/{user}/mailFolders/archive")).await["id"].clone();
    assert_eq!(fetched["parentFolderId"], archive_id);
    let (status, counters) = sim.control(Method::GET, "counters", None).await;
    assert_eq!(status, 200);
    assert!(
        counters["by_app"].get("_sim").is_none(),
        "control changes are not counted as app traffic"
    );
}

#[tokio::test]
async fn bad_input_gets_graph_errors_never_a_crash() {
    let sim = start_sim(|_| {}).await;
    let user = sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let drive = sim.json(&format!("users/{user}/drive")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let paths = [
        "users/%ZZ".to_owned(),
        "users/'quoted'".to_owned(),
        "users?$top=abc".to_owned(),
        "users?$filter=displayName eq".to_owned(),
        "users?$skiptoken=garbage".to_owned(),
        "users/delta?$deltatoken=garbage".to_owned(),
        "users/delta?$skiptoken=!!".to_owned(),
        "groups/not-a-group/members".to_owned(),
        "drives/b!garbage/root".to_owned(),
        format!("drives/{drive}/items/01XYZ"),
        format!("drives/{drive}/root:/no/such/file.txt:/content"),
        format!("drives/{drive}/root/delta?token=%%%"),
        format!("users/{user}/messages/short"),
        format!("users/{user}/mailFolders/garbage/messages"),
        format!("users/{user}/mailFolders/inbox/messages/delta?$deltatoken=zzz"),
        format!("users/{user}/messages/{}/attachments/x", "A".repeat(28)),
        "sites/garbage".to_owned(),
        "nothing/here".to_owned(),
        "directory/deletedItems/microsoft.graph.application".to_owned(),
    ];
    for path in &paths {
        let response = sim.get(path).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!((400..500).contains(&status), "{path}: {status} {body}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    let posts = [
        (
            format!("users/{user}/messages"),
            "application/json",
            "{not json",
        ),
        (
            format!("users/{user}/mailFolders"),
            "application/json",
            "{}",
        ),
        (
            format!("drives/{drive}/root/children"),
            "application/json",
            "[]",
        ),
        ("$batch".to_owned(), "application/json", "{\"requests\": 5}"),
        (
            format!("users/{user}/messages/x/move"),
            "application/json",
            "{}",
        ),
    ];
    for (path, content_type, body) in &posts {
        let response = sim
            .http
            .post(format!("{}/v1.0/{path}", sim.base()))
            .bearer_auth(&sim.token)
            .header("Content-Type", *content_type)
            .body(*body)
            .send()
            .await
            .unwrap();
        assert!(
            (400..500).contains(&response.status().as_u16()),
            "{path}: {}",
            response.status()
        );
    }
    for raw in [
        "/_dl/garbage",
        "/_dl/YWJj.def",
        "/_up/nope",
        "/organizations/v2.0/adminconsent",
        "/common/oauth2/v2.0/token",
    ] {
        let response = sim
            .http
            .get(format!("{}{raw}", sim.base()))
            .send()
            .await
            .unwrap();
        assert!(
            (400..500).contains(&response.status().as_u16()),
            "{raw}: {}",
            response.status()
        );
    }
    let garbage = sim
        .http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.base(),
            sim.tenant_id()
        ))
        .body("%%%&&&===")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
}
