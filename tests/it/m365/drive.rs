//! Drives: a user's OneDrive, root delta, downloads through the pre-authenticated redirect.

use futures::TryStreamExt;
use skyvault::m365::{DeltaChange, DeltaStart, collect_round};
use skyvault::simulator::quick_xor_hash;

use super::harness;

#[tokio::test]
async fn drive_delta_and_downloads_match_their_hashes() {
    let h = harness().await;
    let graph = h.graph();
    let users: Vec<_> = graph.users().try_collect().await.unwrap();
    let drive = graph.user_drive(&users[0].id).await.unwrap().unwrap();

    let round = collect_round(graph.drive_delta(&drive.id, DeltaStart::Initial, 5))
        .await
        .unwrap();
    let files: Vec<_> = round
        .changes
        .iter()
        .filter_map(|c| match c {
            DeltaChange::Upsert(i) if i.is_file() => Some(i.clone()),
            _ => None,
        })
        .collect();
    assert!(files.len() >= 3, "{} files", files.len());

    for file in files.iter().take(3) {
        let stream = graph.download(&drive.id, &file.id).await.unwrap();
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
        let content = chunks.concat();
        assert_eq!(content.len() as i64, file.size.unwrap());
        assert_eq!(
            Some(quick_xor_hash(&content).as_str()),
            file.quick_xor_hash(),
            "{:?}",
            file.name
        );
    }

    let quiet =
        collect_round(graph.drive_delta(&drive.id, DeltaStart::Resume(round.delta_link), 5))
            .await
            .unwrap();
    assert!(quiet.changes.is_empty(), "{:?}", quiet.changes);

    // A deleted file comes back as a removal (the `deleted` facet).
    let gone = files[0].id.clone();
    h.control(
        "DELETE",
        &format!("tenants/default/graph/drives/{}/items/{gone}", drive.id),
        None,
    )
    .await;
    let after =
        collect_round(graph.drive_delta(&drive.id, DeltaStart::Resume(quiet.delta_link), 5))
            .await
            .unwrap();
    assert!(
        after
            .changes
            .iter()
            .any(|c| matches!(c, DeltaChange::Removed { id, .. } if *id == gone)),
        "{:?}",
        after.changes
    );
}

#[tokio::test]
async fn group_and_site_drives_and_a_forced_drive_resync() {
    let h = harness().await;
    let graph = h.graph();
    let groups: Vec<_> = graph.groups().try_collect().await.unwrap();
    let unified = groups.iter().find(|g| g.is_microsoft365()).unwrap();
    let group_drive = graph
        .group_drive(&unified.id)
        .await
        .unwrap()
        .expect("a group library");
    assert_eq!(group_drive.drive_type.as_deref(), Some("documentLibrary"));
    let security = groups.iter().find(|g| !g.is_microsoft365()).unwrap();
    assert_eq!(
        graph.group_drive(&security.id).await.unwrap(),
        None,
        "security groups have no drive"
    );

    let sites = graph.sites().await.unwrap();
    let mut libraries = 0;
    for site in &sites {
        libraries += graph.site_drive_list(&site.id).await.unwrap().len();
    }
    assert!(libraries >= sites.len(), "every site has a library");

    let first = collect_round(graph.drive_delta(&group_drive.id, DeltaStart::Initial, 50))
        .await
        .unwrap();
    h.control(
        "POST",
        &format!("tenants/default/drives/{}/resync", group_drive.id),
        None,
    )
    .await;
    let again =
        collect_round(graph.drive_delta(&group_drive.id, DeltaStart::Resume(first.delta_link), 50))
            .await
            .unwrap();
    assert!(again.full_sync);
    assert_eq!(again.changes.len(), first.changes.len());
}

/// A file past the simulator's 40 MiB content period, hashed by the client's own
/// quickXorHash while it streams, then resumed from an offset through the delta's URL.
#[tokio::test]
async fn large_files_stream_verified_and_resume_from_an_offset() {
    let h = harness().await;
    let graph = h.graph();
    let users: Vec<_> = graph.users().try_collect().await.unwrap();
    let drive = graph.user_drive(&users[1].id).await.unwrap().unwrap();
    let size: u64 = 42 * 1024 * 1024 + 99;
    let created = h
        .control(
            "POST",
            &format!("tenants/default/drives/{}/synthetic-files", drive.id),
            Some(serde_json::json!({"name": "backup.vhdx", "size": size})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let round = collect_round(graph.drive_delta(&drive.id, DeltaStart::Initial, 200))
        .await
        .unwrap();
    let item = round
        .changes
        .iter()
        .find_map(|c| match c {
            DeltaChange::Upsert(i) if i.id == id => Some(i.clone()),
            _ => None,
        })
        .unwrap();
    let expected = item.quick_xor_hash().unwrap().to_string();
    assert!(item.download_url.is_some());
    assert_eq!(
        item.created_by.as_ref().and_then(|c| c.display_name()),
        users[1].display_name.as_deref()
    );

    let mut stream = skyvault::m365::verify_quick_xor(
        graph.download(&drive.id, &id).await.unwrap(),
        expected.clone(),
    );
    let mut received = 0u64;
    let mut largest = 0usize;
    while let Some(chunk) = stream.try_next().await.unwrap() {
        received += chunk.len() as u64;
        largest = largest.max(chunk.len());
    }
    assert_eq!(received, size);
    assert!(largest < 4 * 1024 * 1024, "streamed in chunks, not whole");

    // A crash after 30 MB: go on from there with the URL the delta gave.
    let offset = 30_000_000u64;
    let tail: Vec<bytes::Bytes> = graph
        .download_from(&drive.id, &id, offset, item.download_url.as_deref())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let tail = tail.concat();
    assert_eq!(tail.len() as u64, size - offset);
    let head: Vec<bytes::Bytes> = graph
        .download(&drive.id, &id)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let whole = head.concat();
    assert_eq!(&whole[offset as usize..], &tail[..]);
    assert_eq!(skyvault::m365::quick_xor_hash(&whole), expected);

    // Bytes that do not match the hash end the stream with an error, not silently.
    let wrong = skyvault::m365::verify_quick_xor(
        graph.download(&drive.id, &id).await.unwrap(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    let error = wrong.try_collect::<Vec<_>>().await.unwrap_err();
    assert!(
        matches!(error, skyvault::m365::GraphError::ContentMismatch { bytes, .. } if bytes == size)
    );

    // Deleted between listing and download: a plain not-found.
    h.control(
        "DELETE",
        &format!("tenants/default/graph/drives/{}/items/{id}", drive.id),
        None,
    )
    .await;
    let gone = match graph.download(&drive.id, &id).await {
        Ok(_) => panic!("a deleted file downloaded"),
        Err(e) => e,
    };
    assert!(gone.is_not_found(), "{gone:?}");
    assert_eq!(graph.drive_item(&drive.id, &id).await.unwrap(), None);
}
