//! Directory: organization, users past one page, groups and teams, sites, delta with adds,
//! edits and deletes, deleted items, forced resync, workload probes.

use std::collections::HashMap;

use futures::TryStreamExt;
use serde_json::json;
use skyvault::m365::{DeltaChange, DeltaStart, MailboxStatus, RemovedReason, collect_round};
use skyvault::simulator::TenantSpec;

use super::{Setup, harness, harness_with};

#[tokio::test]
async fn users_are_listed_across_pages() {
    // More users than the largest directory page (999), so the client must follow nextLink.
    let spec = TenantSpec {
        users: 1_100,
        groups: 1,
        teams: 0,
        security_groups: 0,
        sites: 0,
        ..TenantSpec::small("Fabrikam", 3)
    };
    let h = harness_with(Setup {
        spec,
        ..Setup::default()
    })
    .await;
    let users: Vec<_> = h.graph().users().try_collect().await.unwrap();
    assert_eq!(users.len(), 1_100);
    let mut ids: Vec<_> = users.iter().map(|u| u.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1_100, "no user twice");
    assert!(
        users
            .iter()
            .all(|u| u.user_principal_name.is_some() && u.account_enabled.is_some())
    );
}

#[tokio::test]
async fn groups_teams_and_sites_are_discovered() {
    let h = harness().await;
    let graph = h.graph();
    let groups: Vec<_> = graph.groups().try_collect().await.unwrap();
    let spec = TenantSpec::small("Contoso", 7);
    assert_eq!(
        groups.iter().filter(|g| g.is_microsoft365()).count() as u32,
        spec.groups
    );
    assert_eq!(
        groups.iter().filter(|g| g.is_team()).count() as u32,
        spec.teams
    );
    assert!(
        groups
            .iter()
            .filter(|g| g.is_team())
            .all(|g| g.is_microsoft365() && g.is_mail_enabled())
    );
    assert!(
        groups
            .iter()
            .any(|g| !g.is_microsoft365() && !g.is_mail_enabled()),
        "security groups too"
    );

    let sites = graph.sites().await.unwrap();
    assert!(!sites.is_empty());
    assert!(
        sites.iter().all(|s| s.id.split(',').count() == 3),
        "site ids are host,collection,web"
    );
}

#[tokio::test]
async fn delta_reports_adds_edits_and_deletes_and_deleted_items_list_them() {
    let h = harness().await;
    let graph = h.graph();
    let first = collect_round(graph.users_delta(DeltaStart::Initial))
        .await
        .unwrap();
    assert!(first.full_sync);
    let before: Vec<_> = graph.users().try_collect().await.unwrap();
    let upserts = first
        .changes
        .iter()
        .filter(|c| matches!(c, DeltaChange::Upsert(_)))
        .count();
    assert_eq!(upserts, before.len());

    let added = h
        .control(
            "POST",
            "tenants/default/users",
            Some(json!({"displayName": "Ada Lovelace"})),
        )
        .await;
    let added_id = added["id"].as_str().unwrap().to_string();
    let edited_id = before[1].id.clone();
    h.control(
        "PATCH",
        &format!("tenants/default/users/{edited_id}"),
        Some(json!({"displayName": "Renamed Person"})),
    )
    .await;
    let deleted_id = before[2].id.clone();
    h.control(
        "DELETE",
        &format!("tenants/default/users/{deleted_id}"),
        None,
    )
    .await;

    let second = collect_round(graph.users_delta(DeltaStart::Resume(first.delta_link.clone())))
        .await
        .unwrap();
    assert!(!second.full_sync);
    // The same object may come more than once; the last entry wins.
    let last: HashMap<_, _> = second
        .changes
        .iter()
        .map(|c| (c.id().to_string(), c.clone()))
        .collect();
    match &last[&added_id] {
        DeltaChange::Upsert(u) => assert_eq!(u.display_name.as_deref(), Some("Ada Lovelace")),
        other => panic!("{other:?}"),
    }
    match &last[&edited_id] {
        DeltaChange::Upsert(u) => assert_eq!(u.display_name.as_deref(), Some("Renamed Person")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        last[&deleted_id],
        DeltaChange::Removed {
            id: deleted_id.clone(),
            reason: RemovedReason::Changed
        },
        "a soft-deleted user is removed with reason changed"
    );
    assert!(
        !last.contains_key(&before[3].id),
        "untouched users are not in the round"
    );

    let deleted: Vec<_> = graph.deleted_users().try_collect().await.unwrap();
    let found = deleted
        .iter()
        .find(|u| u.id == deleted_id)
        .expect("soft-deleted user is listed");
    assert!(found.deleted_date_time.is_some());

    // A third round from the new link is quiet.
    let third = collect_round(graph.users_delta(DeltaStart::Resume(second.delta_link)))
        .await
        .unwrap();
    assert!(third.changes.is_empty(), "{:?}", third.changes);
}

#[tokio::test]
async fn a_rejected_delta_link_restarts_as_a_full_sync() {
    let h = harness().await;
    let graph = h.graph();
    let first = collect_round(graph.users_delta(DeltaStart::Initial))
        .await
        .unwrap();
    let users = first.changes.len();
    h.control("POST", "tenants/default/directory/resync", None)
        .await;
    let again = collect_round(graph.users_delta(DeltaStart::Resume(first.delta_link)))
        .await
        .unwrap();
    assert!(again.full_sync, "the round says it enumerated everything");
    assert_eq!(again.changes.len(), users);
    // The restarted round still carries the selected fields discovery needs.
    for change in &again.changes {
        match change {
            DeltaChange::Upsert(u) => assert!(
                u.account_enabled.is_some() && u.user_type.is_some(),
                "{u:?}"
            ),
            other => panic!("{other:?}"),
        }
    }
    // And its new link works.
    let quiet = collect_round(graph.users_delta(DeltaStart::Resume(again.delta_link)))
        .await
        .unwrap();
    assert!(!quiet.full_sync && quiet.changes.is_empty());
}

#[tokio::test]
async fn deleted_groups_are_listed() {
    let h = harness().await;
    let graph = h.graph();
    let groups: Vec<_> = graph.groups().try_collect().await.unwrap();
    let unified = groups.iter().find(|g| g.is_microsoft365()).unwrap();
    h.control(
        "DELETE",
        &format!("tenants/default/groups/{}", unified.id),
        None,
    )
    .await;
    let deleted: Vec<_> = graph.deleted_groups().try_collect().await.unwrap();
    assert!(
        deleted
            .iter()
            .any(|g| g.id == unified.id && g.deleted_date_time.is_some())
    );
    let still: Vec<_> = graph.groups().try_collect().await.unwrap();
    assert!(still.iter().all(|g| g.id != unified.id));
}

#[tokio::test]
async fn workload_probes_tell_mailboxes_and_onedrives() {
    let h = harness().await;
    let graph = h.graph();
    let users: Vec<_> = graph.users().try_collect().await.unwrap();
    let user = &users[0].id;
    assert_eq!(
        graph.probe_mailbox(user).await.unwrap(),
        MailboxStatus::Present
    );
    let drive = graph
        .user_drive(user)
        .await
        .unwrap()
        .expect("a provisioned OneDrive");
    assert_eq!(drive.drive_type.as_deref(), Some("business"));

    let gone = &users[1].id;
    h.control("DELETE", &format!("tenants/default/users/{gone}"), None)
        .await;
    assert_eq!(
        graph.probe_mailbox(gone).await.unwrap(),
        MailboxStatus::Absent
    );
    assert_eq!(graph.user_drive(gone).await.unwrap(), None);
}

#[tokio::test]
async fn licence_count_is_read_from_subscribed_skus() {
    let h = harness_with(Setup {
        spec: TenantSpec {
            licences: Some(7_500),
            ..TenantSpec::small("Contoso", 7)
        },
        ..Setup::default()
    })
    .await;
    let skus = h.graph().subscribed_skus().await.unwrap();
    assert_eq!(skus.len(), 1);
    assert!(skus[0].includes_sharepoint());
    assert_eq!(h.graph().sharepoint_licence_count().await.unwrap(), 7_500);
    assert_eq!(
        skyvault::m365::throttle::files_resource_units_for_licences(7_500),
        3_600
    );
}

#[tokio::test]
async fn users_carry_their_plans_and_deleted_sites_come_with_the_deleted_facet() {
    let h = harness().await;
    let unlicensed = h
        .control(
            "POST",
            "tenants/default/users",
            Some(json!({"displayName": "Room Twelve", "licensed": false})),
        )
        .await;
    let round = collect_round(h.graph().users_delta(DeltaStart::Initial))
        .await
        .unwrap();
    let users: Vec<_> = round
        .changes
        .into_iter()
        .filter_map(|c| match c {
            DeltaChange::Upsert(u) => Some(u),
            DeltaChange::Removed { .. } => None,
        })
        .collect();
    let room = users
        .iter()
        .find(|u| u.id == unlicensed["id"].as_str().unwrap())
        .unwrap();
    assert!(!room.has_enabled_plan("exchange") && !room.has_enabled_plan("SharePoint"));
    let licensed = users.iter().find(|u| u.id != room.id).unwrap();
    assert!(licensed.has_enabled_plan("exchange") && licensed.has_enabled_plan("sharepoint"));

    let site = h
        .control(
            "POST",
            "tenants/default/sites",
            Some(json!({"displayName": "Archive"})),
        )
        .await;
    let id = site["id"].as_str().unwrap();
    h.control("DELETE", &format!("tenants/default/sites/{id}"), None)
        .await;
    let (sites, with_deleted) = h.graph().sites_with_deleted().await.unwrap();
    assert!(with_deleted);
    let archive = sites.iter().find(|s| s.id == id).unwrap();
    assert!(archive.deleted.is_some());
    assert!(sites.iter().any(|s| s.deleted.is_none()));
    // Purged: no longer in the enumeration at all.
    h.control("POST", &format!("tenants/default/sites/{id}/purge"), None)
        .await;
    let (sites, _) = h.graph().sites_with_deleted().await.unwrap();
    assert!(sites.iter().all(|s| s.id != id));
}
