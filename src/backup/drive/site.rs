//! The site runner: a SharePoint site with every subsite, each with every document library
//! (through `collect_drive`) and every list that is not a library (each item as its Graph JSON,
//! with `fields`). A Microsoft 365 group item backs up its group's site the same way: the
//! target's Graph id is then the group's id, and the site is found through the group.

use futures::TryStreamExt;
use futures::future::BoxFuture;

use crate::m365::types::Site;
use crate::m365::{ErrorKind, GraphError, Resource, SiteList, TenantClient};
use crate::storage::catalog::{ItemKind, Workload};
use crate::storage::{ItemContent, ItemMetadata, SourceEvent, SourceItem, ingest};

use super::collect::{DriveCollected, DriveSource, collect_drive, plain_drive_error};
use super::paths::{join, name_component};
use super::state::DrivesState;
use crate::backup::{
    BackupError, BackupReport, BackupServices, BackupTarget, Progress, ProgressSink,
    RequestCounter, Runner,
};

/// Backs up a SharePoint site, or a Microsoft 365 group's site.
pub struct SiteRunner;

impl Runner for SiteRunner {
    fn workload(&self) -> Workload {
        Workload::Site
    }

    fn run<'a>(
        &'a self,
        services: &'a BackupServices,
        target: &'a BackupTarget,
        progress: &'a dyn ProgressSink,
    ) -> BoxFuture<'a, Result<BackupReport, BackupError>> {
        Box::pin(back_up_site(services, target, progress))
    }
}

/// A site id is `hostname,collectionId,webId`; a group's id is a bare GUID.
fn is_group_id(graph_id: &str) -> bool {
    !graph_id.contains(',') && uuid::Uuid::parse_str(graph_id).is_ok()
}

fn site_gone() -> BackupError {
    BackupError::Unavailable("This SharePoint site no longer exists in Microsoft 365.".into())
}

async fn find_site(
    tenant: &TenantClient,
    target: &BackupTarget,
    requests: &RequestCounter,
) -> Result<Site, BackupError> {
    requests.add(1);
    let found = if is_group_id(&target.graph_id) {
        tenant.group_site(&target.graph_id).await
    } else {
        tenant.site(&target.graph_id).await
    };
    match found {
        Ok(Some(site)) => Ok(site),
        Ok(None) => Err(if is_group_id(&target.graph_id) {
            BackupError::Unavailable(
                "This group has no SharePoint site (it is not a Microsoft 365 group, or its site \
                 was never provisioned or was deleted)."
                    .into(),
            )
        } else {
            site_gone()
        }),
        Err(err) if err.kind() == ErrorKind::NotFound => Err(site_gone()),
        Err(err) => Err(err.into()),
    }
}

async fn back_up_site(
    services: &BackupServices,
    target: &BackupTarget,
    progress: &dyn ProgressSink,
) -> Result<BackupReport, BackupError> {
    let tenant = services.graph.tenant(target.tenant);
    let requests = RequestCounter::default();
    let root = find_site(&tenant, target, &requests).await?;
    let parent =
        ingest::parent_point(&services.storage, &crate::backup::storage_request(target)).await?;
    let (stored, parent_id) = match &parent {
        Some(parent) => (parent.source_state.as_deref(), Some(parent.point.id)),
        None => (None, None),
    };
    let previous = DrivesState::restore(stored);
    let mut next = DrivesState::restore(None);
    let mut report = Progress::default();
    let mut events: Vec<SourceEvent> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // The site and its subsites. Without the tree nothing is known to be gone: keep everything.
    let sites = match tenant.site_tree(&root.id).await {
        Ok(sites) => sites,
        Err(err) => {
            events.push(SourceEvent::Unlisted {
                prefix: String::new(),
                reason: plain_drive_error(&err),
            });
            next = previous.clone();
            vec![]
        }
    };
    requests.add(sites.len() as u64 + 1);

    for site in &sites {
        let site_prefix = site_prefix(&root, site);
        report.current = Some(site.display_name.clone().unwrap_or_else(|| site.id.clone()));
        report.throttled_until = services.graph.paused_until(&Resource::Files {
            tenant: target.tenant,
        });
        progress.report(&report);

        // Document libraries.
        requests.add(1);
        match tenant.site_drive_list(&site.id).await {
            Ok(drives) => {
                for drive in drives {
                    let name = drive.name.clone().unwrap_or_else(|| drive.id.clone());
                    let source = DriveSource {
                        drive_id: drive.id.clone(),
                        prefix: join(
                            &site_prefix,
                            &format!("libraries/{}", name_component(&name)),
                        ),
                        label: format!("Library \u{201c}{name}\u{201d}"),
                    };
                    let prior = previous.drives.get(&drive.id);
                    match collect_drive(
                        services,
                        &crate::storage::scope::SystemScope::worker(
                            target.customer,
                            "drive backup",
                        ),
                        &tenant,
                        &source,
                        prior,
                        parent_id,
                        &requests,
                    )
                    .await
                    {
                        Ok(DriveCollected {
                            events: drive_events,
                            state,
                            files,
                            notes: drive_notes,
                        }) => {
                            report.items_seen += files;
                            events.extend(drive_events);
                            notes.extend(drive_notes);
                            next.drives.insert(drive.id.clone(), state);
                        }
                        // Deleted since the site listed it: its files leave the point.
                        Err(err) if err.kind() == ErrorKind::NotFound => {}
                        Err(err) => return Err(err.into()),
                    }
                }
            }
            Err(err) => {
                // Keep every library of this site as it was, and their links.
                events.push(SourceEvent::Unlisted {
                    prefix: join(&site_prefix, "libraries"),
                    reason: plain_drive_error(&err),
                });
                keep_drives_under(&previous, &mut next, &join(&site_prefix, "libraries"));
            }
        }

        // Lists other than libraries, as their items' JSON.
        match list_events(&tenant, site, &site_prefix, &requests).await {
            Ok((list_events, count)) => {
                report.items_seen += count;
                events.extend(list_events);
            }
            Err(err) => events.push(SourceEvent::Unlisted {
                prefix: join(&site_prefix, "lists"),
                reason: plain_drive_error(&err),
            }),
        }
    }
    report.items_total = Some(report.items_seen);
    report.current = None;
    progress.report(&report);

    let mut written = crate::backup::write_point(
        services,
        target,
        events,
        super::finish_state(next),
        report,
        progress,
        &requests,
    )
    .await?;
    written.notes.extend(notes);
    Ok(written)
}

/// Carries over the state of the drives whose manifests are under `prefix`.
fn keep_drives_under(previous: &DrivesState, next: &mut DrivesState, prefix: &str) {
    for (id, state) in &previous.drives {
        if state.manifest.starts_with(&format!("{prefix}/")) {
            next.drives.insert(id.clone(), state.clone());
        }
    }
}

/// Where a site's libraries and lists go: the archive root for the site itself,
/// `subsites/<path below the site>` for a subsite (its URL path relative to the root site's,
/// kept as one component so a subsite never mixes with another's folders).
pub(crate) fn site_prefix(root: &Site, site: &Site) -> String {
    if site.id == root.id {
        return String::new();
    }
    let base = root
        .web_url
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    let relative = site
        .web_url
        .as_deref()
        .and_then(|url| url.strip_prefix(base))
        .map(|rest| rest.trim_matches('/').to_string())
        .filter(|rest| !rest.is_empty())
        .or_else(|| site.name.clone())
        .unwrap_or_else(|| site.id.clone());
    format!("subsites/{}", name_component(&relative))
}

/// A site's lists that are not document libraries nor hidden, every item as its Graph JSON.
async fn list_events(
    tenant: &TenantClient,
    site: &Site,
    site_prefix: &str,
    requests: &RequestCounter,
) -> Result<(Vec<SourceEvent>, u64), GraphError> {
    requests.add(1);
    let lists: Vec<SiteList> = tenant.site_lists(&site.id).try_collect().await?;
    let mut events = Vec::new();
    let mut count = 0;
    for list in lists
        .iter()
        .filter(|l| !l.is_document_library() && !l.is_hidden())
    {
        let name = list
            .display_name
            .clone()
            .or_else(|| list.name.clone())
            .unwrap_or_else(|| list.id.clone());
        let folder = join(site_prefix, &format!("lists/{}", name_component(&name)));
        requests.add(1);
        let items = match tenant
            .list_items(&site.id, &list.id)
            .try_collect::<Vec<_>>()
            .await
        {
            Ok(items) => items,
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(err) => {
                events.push(SourceEvent::Unlisted {
                    prefix: folder,
                    reason: plain_drive_error(&err),
                });
                continue;
            }
        };
        // The list itself (columns' owner, template), so a restore knows what it was.
        let list_json = serde_json::to_vec_pretty(list).unwrap_or_default();
        events.push(SourceEvent::Item(SourceItem {
            path: format!("{folder}/list.json"),
            metadata: ItemMetadata {
                kind: Some(ItemKind::Other),
                graph_id: Some(format!("list:{}", list.id)),
                last_modified: list.last_modified_date_time,
                source_size: Some(list_json.len() as u64),
                ..ItemMetadata::default()
            },
            content: ItemContent::from_bytes(list_json),
        }));
        for item in items {
            count += 1;
            let json = serde_json::to_vec_pretty(&item).unwrap_or_default();
            events.push(SourceEvent::Item(SourceItem {
                path: format!("{folder}/items/{}.json", name_component(&item.id)),
                metadata: ItemMetadata {
                    kind: Some(ItemKind::Other),
                    // List item ids are numbers unique only within their list.
                    graph_id: Some(format!("{}:{}", list.id, item.id)),
                    change_key: item.e_tag.clone(),
                    last_modified: item.last_modified_date_time,
                    source_size: Some(json.len() as u64),
                    sender: item
                        .last_modified_by
                        .as_ref()
                        .and_then(|by| by.user.as_ref())
                        .and_then(|who| who.display_name.clone()),
                    ..ItemMetadata::default()
                },
                content: ItemContent::from_bytes(json),
            }));
        }
    }
    Ok((events, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: &str, url: &str) -> Site {
        serde_json::from_value(serde_json::json!({"id": id, "webUrl": url, "name": "n"})).unwrap()
    }

    #[test]
    fn subsites_get_their_own_folder() {
        let root = site("h,1,1", "https://c.sharepoint.com/sites/hr");
        assert_eq!(site_prefix(&root, &root), "");
        let sub = site("h,1,2", "https://c.sharepoint.com/sites/hr/emea/paris");
        assert_eq!(site_prefix(&root, &sub), "subsites/emea\u{2215}paris");
        assert!(is_group_id("9c4bd5b1-2ed5-4cb6-9b7b-0d1c7e0e6f2a"));
        assert!(!is_group_id("contoso.sharepoint.com,1,2"));
    }
}
