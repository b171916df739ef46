//! Sites through the client: a site with its subsites, lists with items as JSON, a group's
//! site, and the OneNote notebook of a library.

use futures::TryStreamExt;

use super::harness;

#[tokio::test]
async fn a_site_tree_its_libraries_lists_and_items() {
    let h = harness().await;
    let graph = h.graph();
    let sites = graph.sites().await.unwrap();
    let mut trees = Vec::new();
    for site in &sites {
        trees.push(graph.site_tree(&site.id).await.unwrap());
    }
    let tree = trees
        .iter()
        .find(|t| t.len() > 1)
        .expect("a site with a subsite");
    assert!(
        sites.iter().all(|s| s.id != tree[1].id),
        "subsites come through their parent only"
    );
    let sub_libraries = graph.site_drive_list(&tree[1].id).await.unwrap();
    assert_eq!(sub_libraries.len(), 1);

    let lists: Vec<_> = graph.site_lists(&tree[0].id).try_collect().await.unwrap();
    let libraries = graph.site_drive_list(&tree[0].id).await.unwrap();
    assert_eq!(
        lists.iter().filter(|l| l.is_document_library()).count(),
        libraries.len()
    );
    let tasks = lists
        .iter()
        .find(|l| l.display_name.as_deref() == Some("Tasks"))
        .unwrap();
    let items: Vec<_> = graph
        .list_items(&tree[0].id, &tasks.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(items.len(), 7);
    let json = serde_json::to_value(&items[0]).unwrap();
    assert!(json["fields"]["Title"].is_string());
    assert!(
        json["webUrl"].is_string(),
        "properties beyond the typed ones are kept"
    );

    let assets = libraries
        .iter()
        .find(|d| d.name.as_deref() == Some("Site Assets"))
        .unwrap();
    let round = skyvault::m365::collect_round(graph.drive_delta(
        &assets.id,
        skyvault::m365::DeltaStart::Initial,
        50,
    ))
    .await
    .unwrap();
    let notebook = round
        .changes
        .iter()
        .find_map(|c| match c {
            skyvault::m365::DeltaChange::Upsert(i) if i.is_onenote_notebook() => Some(i.clone()),
            _ => None,
        })
        .expect("a OneNote notebook");
    assert!(!notebook.is_file() && !notebook.is_folder());
    let sections: Vec<_> = graph
        .drive_children(&assets.id, &notebook.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sections.len(), 3);
    assert!(sections.iter().all(|s| s.is_file()));
}

#[tokio::test]
async fn a_group_site_and_a_missing_site() {
    let h = harness().await;
    let graph = h.graph();
    let groups: Vec<_> = graph.groups().try_collect().await.unwrap();
    let unified = groups.iter().find(|g| g.is_microsoft365()).unwrap();
    let site = graph
        .group_site(&unified.id)
        .await
        .unwrap()
        .expect("a team site");
    let drives = graph.site_drive_list(&site.id).await.unwrap();
    let group_drive = graph.group_drive(&unified.id).await.unwrap().unwrap();
    assert_eq!(drives[0].id, group_drive.id);
    assert_eq!(
        graph
            .site("contoso.sharepoint.com,00000000-0000-0000-0000-000000000000,00000000-0000-0000-0000-000000000000")
            .await
            .unwrap(),
        None
    );
}

/// Sleeping moves the shared manual clock, so a minute's wait for SharePoint's window costs
/// nothing.
#[derive(Debug)]
struct AdvanceClock(skyvault::clock::ManualClock);

impl skyvault::m365::Sleeper for AdvanceClock {
    fn sleep(&self, duration: std::time::Duration) -> futures::future::BoxFuture<'static, ()> {
        self.0
            .advance(chrono::Duration::from_std(duration).unwrap_or_default());
        Box::pin(async {})
    }
}

/// SharePoint's resource units (scaled down to 40 per minute) are announced by `RateLimit`
/// headers from 80 % on; the client holds back when none remain, so site listings that need
/// two minutes' worth of units all succeed without a single 429.
#[tokio::test]
async fn rate_limit_headers_pre_empt_sharepoint_throttling() {
    use chrono::TimeZone;
    let clock = skyvault::clock::ManualClock::new(
        chrono::Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
    );
    let h = super::harness_with(super::Setup {
        limits: skyvault::simulator::ThrottleLimits {
            spo_resource_units_per_minute: Some(40.0),
            ..skyvault::simulator::ThrottleLimits::default()
        },
        sim_clock: super::shared(clock.clone()),
        ..super::Setup::default()
    })
    .await;
    let client = skyvault::m365::GraphClient::builder(
        super::settings_for(&h.sim),
        super::shared(clock.clone()),
    )
    .sleeper(std::sync::Arc::new(AdvanceClock(clock.clone())))
    .build()
    .unwrap();
    // The client's own bucket is generous: only Microsoft's headers can hold it back.
    client.set_tenant_files_limit(h.tenant, 6_000);
    let graph = client.tenant(h.tenant);
    let started = skyvault::clock::Clock::now(&clock);
    let sites = graph.sites().await.unwrap();
    for _ in 0..40 {
        let lists: Vec<_> = graph.site_lists(&sites[0].id).try_collect().await.unwrap();
        assert!(!lists.is_empty());
    }
    let refusals = h.control("GET", "throttling/events", None).await;
    assert_eq!(refusals.as_array().unwrap().len(), 0, "{refusals}");
    assert!(
        skyvault::clock::Clock::now(&clock) - started >= chrono::Duration::seconds(60),
        "the client waited for SharePoint's next window"
    );
}
