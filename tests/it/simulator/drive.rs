//! Drives: discovery, root delta with tokens, deleted facet and resync, downloads with ranges,
//! simple upload and upload sessions.

use reqwest::Method;
use serde_json::{Value, json};
use skyvault::simulator::quick_xor_hash;

use super::start_sim;

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

/// The OneDrive of the tenant's second user.
pub(super) async fn user_drive(sim: &super::Sim) -> String {
    let user = sim.json("users?$top=2").await["value"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.json(&format!("users/{user}/drive")).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn drives_are_discovered_for_users_groups_and_sites() {
    let sim = start_sim(|_| {}).await;
    let drive = user_drive(&sim).await;
    assert!(drive.starts_with("b!"));
    assert_eq!(
        sim.json(&format!("drives/{drive}")).await["driveType"],
        "business"
    );
    let group = sim
        .json("groups?$filter=groupTypes/any(c:c eq 'Unified')")
        .await["value"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group_drive = sim.json(&format!("groups/{group}/drive")).await;
    assert_eq!(group_drive["driveType"], "documentLibrary");
    let site = sim.json(&format!("groups/{group}/sites/root")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let site_drives = sim.json(&format!("sites/{site}/drives")).await;
    assert_eq!(site_drives["value"][0]["id"], group_drive["id"]);
}

#[tokio::test]
async fn root_delta_pages_hashes_downloads_and_tracks_changes() {
    let sim = start_sim(|_| {}).await;
    let drive = user_drive(&sim).await;
    let (initial, link) = delta_round(&sim, &format!("drives/{drive}/root/delta?$top=5")).await;
    assert_eq!(
        initial.iter().filter(|i| i.get("file").is_some()).count(),
        12
    );
    assert!(initial[0].get("root").is_some(), "the root comes first");
    assert!(link.contains("token="));
    let file = initial
        .iter()
        .find(|i| i.get("file").is_some())
        .unwrap()
        .clone();
    let item_id = file["id"].as_str().unwrap().to_owned();

    // /content answers 302 to a pre-authenticated URL that needs no Authorization and serves ranges.
    let redirect = sim
        .get(&format!("drives/{drive}/items/{item_id}/content"))
        .await;
    assert_eq!(redirect.status(), 302);
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let bytes = sim
        .http
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap());
    assert_eq!(
        quick_xor_hash(&bytes),
        file["file"]["hashes"]["quickXorHash"].as_str().unwrap()
    );
    let partial = sim
        .http
        .get(&location)
        .header("Range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(
        partial.headers()["content-range"].to_str().unwrap(),
        format!("bytes 0-99/{}", bytes.len())
    );
    assert_eq!(&partial.bytes().await.unwrap()[..], &bytes[..100]);

    // Changes: an upload, a rename and a delete show up with the next token.
    let put = sim
        .http
        .put(format!(
            "{}/v1.0/drives/{drive}/items/root:/Projects/notes.txt:/content",
            sim.base()
        ))
        .bearer_auth(&sim.token)
        .body("hello, world")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let uploaded: Value = put.json().await.unwrap();
    assert_eq!(
        uploaded["file"]["hashes"]["quickXorHash"].as_str().unwrap(),
        quick_xor_hash(b"hello, world")
    );
    let renamed = sim
        .http
        .patch(format!(
            "{}/v1.0/drives/{drive}/items/{item_id}",
            sim.base()
        ))
        .bearer_auth(&sim.token)
        .json(&json!({"name": "renamed.bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let victim = initial
        .iter()
        .filter(|i| i.get("file").is_some())
        .nth(1)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = sim
        .http
        .delete(format!("{}/v1.0/drives/{drive}/items/{victim}", sim.base()))
        .bearer_auth(&sim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (changes, next_link) = delta_round(&sim, &link).await;
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(changes.iter().any(|c| c["name"] == "notes.txt"));
    assert!(
        changes
            .iter()
            .any(|c| c["id"] == item_id.as_str() && c["name"] == "renamed.bin")
    );
    assert_eq!(
        changes.iter().find(|c| c["id"] == victim.as_str()).unwrap()["deleted"]["state"],
        "deleted"
    );
    assert_eq!(
        sim.get(&format!("drives/{drive}/items/{victim}"))
            .await
            .status(),
        404
    );

    // The service may demand a resync: 410 with a Location to start again.
    let (status, _) = sim
        .control(
            Method::POST,
            &format!("tenants/default/drives/{drive}/resync"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let gone = sim.get(&next_link).await;
    assert_eq!(gone.status(), 410);
    assert!(
        gone.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/root/delta")
    );
    assert_eq!(
        gone.json::<Value>().await.unwrap()["error"]["code"],
        "resyncRequired"
    );
    let latest = sim
        .json(&format!("drives/{drive}/root/delta?token=latest"))
        .await;
    assert!(latest["value"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn upload_sessions_take_320_kib_fragments_and_honour_conflicts() {
    let sim = start_sim(|_| {}).await;
    let drive = user_drive(&sim).await;
    let unit = 320 * 1024;
    let data: Vec<u8> = (0..(2 * unit + 1000)).map(|i| (i % 251) as u8).collect();
    let create = |name: &str, conflict: &str| {
        sim.http
            .post(format!(
                "{}/v1.0/drives/{drive}/items/root:/{name}:/createUploadSession",
                sim.base()
            ))
            .bearer_auth(&sim.token)
            .json(&json!({"item": {"@microsoft.graph.conflictBehavior": conflict}}))
    };
    let session: Value = create("big.bin", "fail")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_url = session["uploadUrl"].as_str().unwrap().to_owned();
    assert_eq!(session["nextExpectedRanges"][0], "0-");
    let total = data.len();
    let put = |start: usize, end: usize| {
        sim.http
            .put(&upload_url)
            .header(
                "Content-Range",
                format!("bytes {start}-{}/{total}", end - 1),
            )
            .body(data[start..end].to_vec())
    };

    let odd = put(0, 1000).send().await.unwrap();
    assert_eq!(odd.status(), 400, "fragments must be multiples of 320 KiB");
    let with_auth = sim
        .http
        .put(&upload_url)
        .bearer_auth(&sim.token)
        .header("Content-Range", format!("bytes 0-{}/{total}", unit - 1))
        .body(data[..unit].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_auth.status(),
        401,
        "no Authorization header on the upload URL"
    );
    let first = put(0, unit).send().await.unwrap();
    assert_eq!(first.status(), 202);
    assert_eq!(
        first.json::<Value>().await.unwrap()["nextExpectedRanges"][0],
        format!("{unit}-")
    );
    let again = put(0, unit).send().await.unwrap();
    assert_eq!(again.status(), 416);
    let status: Value = sim
        .http
        .get(&upload_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["nextExpectedRanges"][0], format!("{unit}-"));
    assert_eq!(put(unit, 2 * unit).send().await.unwrap().status(), 202);
    let last = put(2 * unit, total).send().await.unwrap();
    assert_eq!(last.status(), 201);
    let item: Value = last.json().await.unwrap();
    assert_eq!(item["size"], total as u64);
    assert_eq!(
        item["file"]["hashes"]["quickXorHash"].as_str().unwrap(),
        quick_xor_hash(&data)
    );

    // Same name again: fail → 409 nameAlreadyExists at commit; rename → "big 1.bin".
    let small = |url: String| {
        sim.http
            .put(url)
            .header("Content-Range", "bytes 0-9/10")
            .body(vec![7u8; 10])
    };
    let failing: Value = create("big.bin", "fail")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conflict = small(failing["uploadUrl"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        conflict.json::<Value>().await.unwrap()["error"]["code"],
        "nameAlreadyExists"
    );
    let renaming: Value = create("big.bin", "rename")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let renamed: Value = small(renaming["uploadUrl"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["name"], "big 1.bin");
    let simple_fail = sim.http.put(format!("{}/v1.0/drives/{drive}/items/root:/big.bin:/content?@microsoft.graph.conflictBehavior=fail", sim.base())).bearer_auth(&sim.token).body("x").send().await.unwrap();
    assert_eq!(simple_fail.status(), 409);
}
