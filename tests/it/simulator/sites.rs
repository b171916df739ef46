//! Sites beyond their default library: subsites, lists with items, the OneNote notebook of a
//! "Site Assets" library, and synthetic files of many gigabytes served by range.

use reqwest::Method;
use serde_json::{Value, json};
use skyvault::simulator::quick_xor_hash;

use super::{Sim, start_sim};

/// The communication site of the small tenant: the one with a "Site Assets" library (and a
/// subsite).
async fn communication_site(sim: &Sim) -> Value {
    let (sites, _) = sim.collect("sites/getAllSites", &[]).await;
    for site in sites {
        let id = site["id"].as_str().unwrap();
        let drives = sim.json(&format!("sites/{id}/drives")).await;
        if drives["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "Site Assets")
        {
            return site;
        }
    }
    panic!("no communication site with Site Assets");
}

#[tokio::test]
async fn subsites_are_reached_through_their_parent_with_their_own_libraries() {
    let sim = start_sim(|_| {}).await;
    let (sites, _) = sim.collect("sites/getAllSites", &[]).await;
    let mut found = Vec::new();
    for site in &sites {
        let id = site["id"].as_str().unwrap();
        let (subsites, _) = sim.collect(&format!("sites/{id}/sites"), &[]).await;
        found.extend(subsites);
    }
    assert_eq!(found.len(), 1, "one generated subsite");
    let subsite = &found[0];
    assert!(subsite["webUrl"].as_str().unwrap().ends_with("/projects"));
    assert!(
        sites.iter().all(|s| s["id"] != subsite["id"]),
        "discovery lists site collections, not subsites"
    );
    let id = subsite["id"].as_str().unwrap();
    assert_eq!(sim.json(&format!("sites/{id}")).await["id"], subsite["id"]);
    let drives = sim.json(&format!("sites/{id}/drives")).await;
    assert_eq!(drives["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn lists_and_their_items_with_fields() {
    let sim = start_sim(|_| {}).await;
    let site = communication_site(&sim).await;
    let id = site["id"].as_str().unwrap();
    let (lists, _) = sim.collect(&format!("sites/{id}/lists"), &[]).await;
    let libraries = lists
        .iter()
        .filter(|l| l["list"]["template"] == "documentLibrary")
        .count();
    let drives = sim.json(&format!("sites/{id}/drives")).await["value"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(libraries, drives, "each library is a list");
    let tasks = lists.iter().find(|l| l["displayName"] == "Tasks").unwrap();
    let list = tasks["id"].as_str().unwrap();
    let (items, _) = sim
        .collect(
            &format!("sites/{id}/lists/{list}/items?$expand=fields&$top=3"),
            &[],
        )
        .await;
    assert_eq!(items.len(), 7);
    assert!(items.iter().all(|i| i["fields"]["Title"].is_string()));
    assert!(items.iter().all(|i| i["fields"]["Status"].is_string()));
    let (bare, _) = sim
        .collect(&format!("sites/{id}/lists/{list}/items"), &[])
        .await;
    assert!(bare.iter().all(|i| i.get("fields").is_none()));
    let one = sim.json(&format!("sites/{id}/lists/{list}/items/2")).await;
    assert_eq!(one["id"], "2");
    assert_eq!(
        sim.get(&format!(
            "sites/{id}/lists/00000000-0000-0000-0000-000000000000"
        ))
        .await
        .status(),
        404
    );
}

#[tokio::test]
async fn site_assets_hold_a_onenote_notebook() {
    let sim = start_sim(|_| {}).await;
    let site = communication_site(&sim).await;
    let id = site["id"].as_str().unwrap();
    let drives = sim.json(&format!("sites/{id}/drives")).await;
    let assets = drives["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Site Assets")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (items, _) = sim
        .collect(&format!("drives/{assets}/root/delta"), &[])
        .await;
    let notebook = items
        .iter()
        .find(|i| i["package"]["type"] == "oneNote")
        .expect("a notebook package");
    assert!(notebook.get("folder").is_none() && notebook.get("file").is_none());
    let sections: Vec<&Value> = items
        .iter()
        .filter(|i| i["parentReference"]["id"] == notebook["id"])
        .collect();
    assert_eq!(sections.len(), 3);
    let section = sections
        .iter()
        .find(|s| s["name"].as_str().unwrap().ends_with(".one"))
        .unwrap();
    assert_eq!(section["file"]["mimeType"], "application/msonenote");
    let content = sim
        .download(
            section["@microsoft.graph.downloadUrl"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(content.len() as u64, section["size"].as_u64().unwrap());
    assert_eq!(
        quick_xor_hash(&content),
        section["file"]["hashes"]["quickXorHash"].as_str().unwrap()
    );
}

#[tokio::test]
async fn synthetic_files_of_gigabytes_are_served_by_range_and_hash_right() {
    let sim = start_sim(|_| {}).await;
    let drive = super::drive::user_drive(&sim).await;
    let path = format!("tenants/default/drives/{drive}/synthetic-files");
    let ten_gb: u64 = 10 * 1024 * 1024 * 1024;
    let (status, big) = sim
        .control(
            Method::POST,
            &path,
            Some(json!({"name": "disk image.vhdx", "size": ten_gb})),
        )
        .await;
    assert_eq!(status, 201, "{big}");
    assert_eq!(big["size"].as_u64(), Some(ten_gb));
    assert!(big["file"]["hashes"]["quickXorHash"].is_string());
    let url = big["@microsoft.graph.downloadUrl"].as_str().unwrap();
    let tail = sim
        .http
        .get(url)
        .header("Range", format!("bytes={}-", ten_gb - 100))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.headers()["content-range"],
        format!("bytes {}-{}/{ten_gb}", ten_gb - 100, ten_gb - 1).as_str()
    );
    assert_eq!(tail.bytes().await.unwrap().len(), 100);

    // Larger than the 40 MiB period, so repeated blocks are part of the hash.
    let size: u64 = 45 * 1024 * 1024 + 12_345;
    let (_, file) = sim
        .control(
            Method::POST,
            &path,
            Some(json!({"name": "export.bin", "size": size})),
        )
        .await;
    let url = file["@microsoft.graph.downloadUrl"].as_str().unwrap();
    let whole = sim.download(url, None).await;
    assert_eq!(whole.len() as u64, size);
    assert_eq!(
        quick_xor_hash(&whole),
        file["file"]["hashes"]["quickXorHash"].as_str().unwrap()
    );
    let middle = sim.download(url, Some("bytes=1000000-1000999")).await;
    assert_eq!(&middle[..], &whole[1_000_000..1_001_000]);

    // A zero-byte file: no content, the hash of nothing, and a range cannot be served.
    let (_, empty) = sim
        .control(
            Method::POST,
            &path,
            Some(json!({"name": "empty.txt", "size": 0})),
        )
        .await;
    assert_eq!(empty["size"], 0);
    assert_eq!(
        empty["file"]["hashes"]["quickXorHash"],
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    );
    let url = empty["@microsoft.graph.downloadUrl"].as_str().unwrap();
    assert!(sim.download(url, None).await.is_empty());
    assert!(sim.download(url, Some("bytes=0-")).await.is_empty());

    let (status, _) = sim
        .control(
            Method::POST,
            &path,
            Some(json!({"name": "export.bin", "size": 1})),
        )
        .await;
    assert_eq!(status, 409, "names stay unique in a folder");
    let (status, _) = sim
        .control(Method::POST, &path, Some(json!({"name": "x.bin"})))
        .await;
    assert_eq!(status, 400);
}
