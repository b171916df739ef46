//! Site and team restores put each file where it belongs: a site's files into the library (and
//! subsite) they came from, or the same-named one of another site, a team's channel files into
//! the channel's folder of the original or another team; a library or channel the target lacks
//! is never created, its files fail and say why. Channel conversations are never uploaded.

use futures::TryStreamExt;
use skyvault::ids::ItemId;
use skyvault::m365::TenantClient;
use skyvault::m365::upload::{ChunkAnswer, ConflictBehavior};
use skyvault::restore::drive::{self, Collision};
use skyvault::restore::job::ItemResult;
use skyvault::restore::place::{self, Destination};
use skyvault::simulator::TenantSpec;
use skyvault::storage::{CatalogEntry, RecoveryPointId, RecoveryPointStatus, Workload};

use super::jobs::{Collected, content_at, random_bytes};
use crate::backup::{BackupFixture, backup_fixture_with};
use crate::m365::Setup;

async fn put_file(graph: &TenantClient, drive: &str, parent: &str, name: &str, bytes: &[u8]) {
    let session = graph
        .create_upload_session(
            drive,
            parent,
            name,
            ConflictBehavior::Fail,
            bytes.len() as u64,
            None,
        )
        .await
        .unwrap();
    let answer = graph
        .upload_chunk(&session, 0, bytes.len() as u64, bytes.to_vec().into())
        .await
        .unwrap();
    assert!(matches!(answer, ChunkAnswer::Done(_)));
}

/// Where the team's channel named `channel` keeps its files: (drive, folder).
async fn channel_files(graph: &TenantClient, team: &str, channel: &str) -> (String, String) {
    let channels: Vec<_> = graph.team_channels(team).try_collect().await.unwrap();
    let channel = channels
        .into_iter()
        .find(|c| c.display_name.as_deref() == Some(channel))
        .unwrap();
    let folder = graph
        .channel_files_folder(team, &channel.id)
        .await
        .unwrap()
        .unwrap();
    (
        folder.parent_reference.unwrap().drive_id.unwrap(),
        folder.id,
    )
}

fn fixture_spec() -> Setup {
    Setup {
        spec: TenantSpec {
            teams: 2,
            ..TenantSpec::small("Contoso", 7)
        },
        ..Setup::default()
    }
}

async fn back_up(
    x: &BackupFixture,
    graph_id: &str,
    workload: Workload,
) -> (RecoveryPointId, Vec<CatalogEntry>) {
    let report = x.run(&x.target(graph_id, workload, ItemId::new())).await;
    let point = report.outcome.recovery_point;
    assert_eq!(
        point.status,
        RecoveryPointStatus::Complete,
        "{:?}",
        report.outcome.failed
    );
    (point.id, x.items(point.id).await)
}

async fn restore(
    x: &BackupFixture,
    workload: Workload,
    destination: Destination<'_>,
    point: RecoveryPointId,
    entries: &[CatalogEntry],
    files: Vec<CatalogEntry>,
    under: Option<&str>,
) -> Collected {
    let channels = place::backed_up_channels(entries);
    let placed = place::place_files(&x.h.graph(), workload, &destination, files, &channels)
        .await
        .unwrap();
    let sink = Collected::default();
    drive::restore_placed(
        &x.h.graph(),
        &x.f.storage,
        &x.f.scope(),
        point,
        placed,
        under,
        Collision::KeepBoth,
        &sink,
    )
    .await;
    sink
}

fn result_of(sink: &Collected, path: &str) -> (ItemResult, String) {
    sink.results()
        .into_iter()
        .find(|(p, ..)| p == path)
        .map(|(_, r, d)| (r, d))
        .unwrap_or_else(|| panic!("{path} was not reported: {:?}", sink.results()))
}

#[tokio::test]
async fn site_files_go_back_to_their_own_library_and_subsite_and_nothing_is_created() {
    let x = backup_fixture_with(fixture_spec()).await;
    let graph = x.h.graph();
    let mut site = None;
    for candidate in graph.sites().await.unwrap() {
        if graph.site_tree(&candidate.id).await.unwrap().len() > 1 {
            site = Some(candidate);
            break;
        }
    }
    let site = site.expect("a site with a subsite");
    let libraries = graph.site_drive_list(&site.id).await.unwrap();
    let assets = libraries
        .iter()
        .find(|d| d.name.as_deref() == Some("Site Assets"))
        .expect("a second library");
    let documents = libraries
        .iter()
        .find(|d| d.name.as_deref() == Some("Documents"))
        .unwrap();
    let logo = random_bytes(11, 20_000);
    put_file(&graph, &assets.id, "root", "logo.bin", &logo).await;

    let (point, entries) = back_up(&x, &site.id, Workload::Site).await;
    let pick = |prefix: &str| {
        entries
            .iter()
            .find(|e| place::restorable(Workload::Site, e) && e.path.starts_with(prefix))
            .unwrap_or_else(|| panic!("no file under {prefix}"))
            .clone()
    };
    let in_documents = pick("libraries/Documents/files/");
    let in_assets = pick("libraries/Site Assets/files/logo.bin");
    let in_subsite = pick("subsites/");
    assert!(
        !entries
            .iter()
            .any(|e| e.path.starts_with("lists/") && place::restorable(Workload::Site, e)),
        "list items are not files of a library"
    );
    let selected = vec![in_documents.clone(), in_assets.clone(), in_subsite.clone()];
    let relative = |e: &CatalogEntry| e.path.split_once("/files/").unwrap().1.to_string();

    // Into the original site, under a new folder: each file into its own library.
    let sink = restore(
        &x,
        Workload::Site,
        Destination {
            kind: "site",
            graph_id: &site.id,
            name: "Intranet",
        },
        point,
        &entries,
        selected.clone(),
        Some("Restored"),
    )
    .await;
    assert_eq!(sink.count(ItemResult::Restored), 3, "{:?}", sink.results());
    let (bytes, _) = content_at(&graph, &assets.id, &["Restored", "logo.bin"])
        .await
        .unwrap();
    assert!(bytes == logo, "the logo came back into Site Assets");
    let path: Vec<String> = std::iter::once("Restored".to_string())
        .chain(relative(&in_documents).split('/').map(str::to_string))
        .collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let (bytes, _) = content_at(&graph, &documents.id, &path).await.unwrap();
    assert_eq!(bytes, x.bytes(point, &in_documents.path).await);
    let subsite = graph
        .site_tree(&site.id)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id != site.id)
        .unwrap();
    let subsite_documents = graph.site_drive_list(&subsite.id).await.unwrap()[0]
        .id
        .clone();
    let path: Vec<String> = std::iter::once("Restored".to_string())
        .chain(relative(&in_subsite).split('/').map(str::to_string))
        .collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let (bytes, _) = content_at(&graph, &subsite_documents, &path).await.unwrap();
    assert_eq!(bytes, x.bytes(point, &in_subsite.path).await);
    assert!(
        content_at(&graph, &documents.id, &["Restored", "logo.bin"])
            .await
            .is_none(),
        "nothing went to the first library by default"
    );

    // Into a group's site, which has only "Documents" and no subsite.
    let groups: Vec<_> = graph.groups().try_collect().await.unwrap();
    let group = groups.iter().find(|g| g.is_microsoft365()).unwrap();
    let sink = restore(
        &x,
        Workload::Site,
        Destination {
            kind: "group",
            graph_id: &group.id,
            name: "Sales",
        },
        point,
        &entries,
        selected,
        None,
    )
    .await;
    assert_eq!(result_of(&sink, &in_documents.path).0, ItemResult::Restored);
    let (result, detail) = result_of(&sink, &in_assets.path);
    assert_eq!(result, ItemResult::Failed);
    assert!(
        detail.contains("no document library “Site Assets”"),
        "{detail}"
    );
    let (result, detail) = result_of(&sink, &in_subsite.path);
    assert_eq!(result, ItemResult::Failed);
    assert!(detail.contains("no subsite"), "{detail}");
    let group_site = graph.group_site(&group.id).await.unwrap().unwrap();
    let group_libraries = graph.site_drive_list(&group_site.id).await.unwrap();
    assert!(
        group_libraries
            .iter()
            .all(|d| d.name.as_deref() != Some("Site Assets")),
        "no library was created"
    );
    let path: Vec<String> = relative(&in_documents)
        .split('/')
        .map(str::to_string)
        .collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let group_drive = graph.group_drive(&group.id).await.unwrap().unwrap();
    assert!(content_at(&graph, &group_drive.id, &path).await.is_some());
}

#[tokio::test]
async fn team_channel_files_go_to_the_channels_folder_and_conversations_are_not_uploaded() {
    let x = backup_fixture_with(fixture_spec()).await;
    let graph = x.h.graph();
    let groups: Vec<_> = graph.groups().try_collect().await.unwrap();
    let teams: Vec<_> = groups.iter().filter(|g| g.is_team()).collect();
    assert!(teams.len() >= 2, "two teams");
    let (team, other) = (teams[0], teams[1]);
    let plain_group = groups
        .iter()
        .find(|g| g.is_microsoft365() && !g.is_team())
        .expect("a group without a team");
    let (team_drive, general_folder) = channel_files(&graph, &team.id, "General").await;
    let agenda = random_bytes(21, 40_000);
    put_file(&graph, &team_drive, &general_folder, "agenda.txt", &agenda).await;
    let loose = b"not in any channel".to_vec();
    put_file(&graph, &team_drive, "root", "loose.txt", &loose).await;

    let (point, entries) = back_up(&x, &team.id, Workload::Team).await;
    assert!(
        place::channel_threads(&entries) > 0,
        "the team's conversations are in the point"
    );
    let files: Vec<CatalogEntry> = drive::plan_files(&entries)
        .into_iter()
        .filter(|e| place::restorable(Workload::Team, e))
        .collect();
    assert!(
        files.iter().all(|e| e.path.starts_with("files/")),
        "no conversation page or image is uploaded"
    );
    let selected: Vec<CatalogEntry> = files
        .into_iter()
        .filter(|e| e.path == "files/General/agenda.txt" || e.path == "files/loose.txt")
        .collect();
    assert_eq!(
        selected.len(),
        2,
        "{:?}",
        entries.iter().map(|e| &e.path).collect::<Vec<_>>()
    );

    // Another team: the channel of the same name takes the channel's files.
    let sink = restore(
        &x,
        Workload::Team,
        Destination {
            kind: "team",
            graph_id: &other.id,
            name: "Other team",
        },
        point,
        &entries,
        selected.clone(),
        None,
    )
    .await;
    assert_eq!(sink.count(ItemResult::Restored), 2, "{:?}", sink.results());
    let (other_drive, other_general) = channel_files(&graph, &other.id, "General").await;
    let in_general = graph
        .drive_child(&other_drive, &other_general, "agenda.txt")
        .await
        .unwrap()
        .expect("agenda.txt in the other team's General folder");
    let bytes: Vec<u8> = graph
        .download(&other_drive, &in_general.id)
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .concat();
    assert!(bytes == agenda);
    let (bytes, _) = content_at(&graph, &other_drive, &["loose.txt"])
        .await
        .unwrap();
    assert_eq!(bytes, loose);

    // A group without Teams has no channel: its files fail and say why; the rest is restored.
    let sink = restore(
        &x,
        Workload::Team,
        Destination {
            kind: "group",
            graph_id: &plain_group.id,
            name: "Plain group",
        },
        point,
        &entries,
        selected,
        None,
    )
    .await;
    let (result, detail) = result_of(&sink, "files/General/agenda.txt");
    assert_eq!(result, ItemResult::Failed);
    assert!(detail.contains("no channel “General”"), "{detail}");
    assert_eq!(result_of(&sink, "files/loose.txt").0, ItemResult::Restored);
    let plain_drive = graph.group_drive(&plain_group.id).await.unwrap().unwrap();
    assert!(
        graph
            .drive_child(&plain_drive.id, "root", "General")
            .await
            .unwrap()
            .is_none(),
        "no channel folder was made up"
    );
}

#[tokio::test]
async fn a_private_channels_own_library_is_in_the_team_backup_and_goes_back_to_its_channel() {
    let x = backup_fixture_with(fixture_spec()).await;
    let graph = x.h.graph();
    let groups: Vec<_> = graph.groups().try_collect().await.unwrap();
    let teams: Vec<_> = groups.iter().filter(|g| g.is_team()).collect();
    let (team, other) = (teams[0], teams[1]);
    let (leadership_drive, leadership_folder) = channel_files(&graph, &team.id, "Leadership").await;
    let (team_drive, _) = channel_files(&graph, &team.id, "General").await;
    assert_ne!(
        leadership_drive, team_drive,
        "a private channel's files are in a site of its own"
    );
    let plan = random_bytes(33, 50_000);
    put_file(
        &graph,
        &leadership_drive,
        &leadership_folder,
        "plan.txt",
        &plan,
    )
    .await;

    let (_, first) = back_up(&x, &team.id, Workload::Team).await;
    let in_backup = |entries: &[CatalogEntry]| {
        entries
            .iter()
            .find(|e| {
                e.path.starts_with("channel-sites/Leadership (")
                    && e.path.ends_with("/files/Leadership/plan.txt")
            })
            .cloned()
    };
    assert!(
        in_backup(&first).is_some(),
        "{:?}",
        first.iter().map(|e| &e.path).collect::<Vec<_>>()
    );
    // The next backup follows the channel library's own delta and still holds the file.
    let (point, entries) = back_up(&x, &team.id, Workload::Team).await;
    let file = in_backup(&entries).expect("the file in the second backup");
    assert!(place::restorable(Workload::Team, &file));

    // Into another team: the library of its channel of the same name, at the same path.
    let sink = restore(
        &x,
        Workload::Team,
        Destination {
            kind: "team",
            graph_id: &other.id,
            name: "Other team",
        },
        point,
        &entries,
        vec![file.clone()],
        None,
    )
    .await;
    assert_eq!(sink.count(ItemResult::Restored), 1, "{:?}", sink.results());
    let (other_drive, _) = channel_files(&graph, &other.id, "Leadership").await;
    assert_ne!(other_drive, leadership_drive);
    let (bytes, _) = content_at(&graph, &other_drive, &["Leadership", "plan.txt"])
        .await
        .unwrap();
    assert!(bytes == plan, "the file came back byte for byte");
}
