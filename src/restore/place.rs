//! Where each backed-up file goes in the target of a drive restore, read from the archive's
//! layout (`backup::drive`, `backup::team`):
//!
//! - a OneDrive's `files/…` go into the target's drive at the same path;
//! - a site's `[subsites/<path>/]libraries/<library>/files/…` go into the document library of
//!   the same name, in the target site or its subsite at the same path. Nothing is created to
//!   make room: a library (or subsite) the target lacks makes each of its files fail, saying so;
//! - a team's `files/…` go into the target team's library; a top folder named like one of the
//!   backed-up channels is that channel's folder, and its files go into the target team's
//!   channel of the same id (the original team) or the same name (another team), wherever
//!   Microsoft keeps that channel's files (`filesFolder`). A channel the target lacks is not
//!   created either. A private or shared channel's own library (`channel-sites/<channel>/files/…`)
//!   goes into the library of the target's matching channel at the same paths. The channel
//!   conversations under `channels/…` are never placed: Microsoft
//!   offers no import of channel messages for backups; they are downloaded instead.
//!
//! It reads the target in Microsoft 365 and writes nothing.

use std::collections::HashMap;

use futures::TryStreamExt;

use super::drive::{Placement, drive_relative};
use crate::backup::drive::{name_component, site_prefix};
use crate::backup::team::channel_folder_of;
use crate::inventory::entities::protected_item;
use crate::m365::{ErrorKind, GraphError, TenantClient};
use crate::storage::catalog::{CatalogEntry, ItemKind, Workload};

/// The user, group, team or site receiving the files.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// `user`, `group`, `team` or `site`, as the inventory names it.
    pub kind: &'a str,
    pub graph_id: &'a str,
    pub name: &'a str,
}

impl<'a> From<&'a protected_item::Model> for Destination<'a> {
    fn from(item: &'a protected_item::Model) -> Self {
        Self {
            kind: &item.kind,
            graph_id: &item.graph_id,
            name: &item.display_name,
        }
    }
}

/// Where a team's channel conversations are in its archive.
const CHANNELS: &str = "channels/";

/// Whether a drive restore of `workload` acts on `entry` (a file of a drive or library, not a
/// channel conversation's page or image, nor a list item).
pub fn restorable(workload: Workload, entry: &CatalogEntry) -> bool {
    if entry.kind != ItemKind::File {
        return false;
    }
    match workload {
        Workload::Team => {
            entry.path.starts_with("files/") || channel_site_path(&entry.path).is_some()
        }
        Workload::Site => split_site_path(&entry.path).is_some(),
        _ => true,
    }
}

/// A team's channel threads among `entries` (their `thread.json`), which no restore can put back.
pub fn channel_threads(entries: &[CatalogEntry]) -> usize {
    entries
        .iter()
        .filter(|e| e.kind == ItemKind::Post && e.path.starts_with(CHANNELS))
        .count()
}

/// Where a team's private and shared channels' own libraries are in its archive.
const CHANNEL_SITES: &str = "channel-sites/";

/// `channel-sites/<channel folder>/files/<rest>` → (channel folder, rest).
fn channel_site_path(path: &str) -> Option<(&str, &str)> {
    let (site, after) = path.strip_prefix(CHANNEL_SITES)?.split_once('/')?;
    Some((site, after.strip_prefix("files/")?))
}

/// `[subsites/<x>/]libraries/<library>/files/<rest>` → (`""` or `subsites/<x>`, library, rest).
fn split_site_path(path: &str) -> Option<(&str, &str, &str)> {
    let (site, after) = match path.strip_prefix("libraries/") {
        Some(after) => ("", after),
        None => {
            let at = path.find("/libraries/")?;
            let site = &path[..at];
            if !site.starts_with("subsites/") {
                return None;
            }
            (site, &path[at + "/libraries/".len()..])
        }
    };
    let (library, rest) = after.split_once("/files/")?;
    (!library.contains('/') && !rest.is_empty()).then_some((site, library, rest))
}

/// A backed-up channel: its id and the name its folder has in the team's files.
#[derive(Debug, Clone)]
pub struct BackedUpChannel {
    pub id: String,
    pub name: String,
}

/// The channels a team's recovery point holds (their `channel.json` entries).
pub fn backed_up_channels(entries: &[CatalogEntry]) -> Vec<BackedUpChannel> {
    entries
        .iter()
        .filter(|e| e.path.starts_with(CHANNELS) && e.path.ends_with("/channel.json"))
        .filter_map(|e| {
            Some(BackedUpChannel {
                id: e.graph_id.clone()?,
                name: e.subject.clone()?,
            })
        })
        .collect()
}

fn cannot_reach(what: &str) -> impl Fn(GraphError) -> String + '_ {
    move |e| format!("{what} could not be reached: {e}")
}

/// The placement of every file, or why none can be placed (the target is gone or unreachable).
pub async fn place_files(
    client: &TenantClient,
    workload: Workload,
    target: &Destination<'_>,
    files: Vec<CatalogEntry>,
    channels: &[BackedUpChannel],
) -> Result<Vec<super::drive::PlacedFile>, String> {
    let placed = match workload {
        Workload::Site => place_in_site(client, target, files).await?,
        Workload::Team => place_in_team(client, target, files, channels).await?,
        _ => {
            let drive_id = target_drive(client, target).await?;
            files
                .into_iter()
                .map(|entry| super::drive::PlacedFile {
                    place: Ok(Placement {
                        drive_id: drive_id.clone(),
                        folder: "root".into(),
                        relative: drive_relative(&entry.path).to_string(),
                    }),
                    entry,
                })
                .collect()
        }
    };
    Ok(placed)
}

/// The drive a OneDrive's (or a team's) files go to: the user's OneDrive, the group's library,
/// or a site's default library.
async fn target_drive(client: &TenantClient, target: &Destination<'_>) -> Result<String, String> {
    let drive = match target.kind {
        "user" => client
            .user_drive(target.graph_id)
            .await
            .map_err(cannot_reach("The target drive"))?,
        "group" | "team" => client
            .group_drive(target.graph_id)
            .await
            .map_err(cannot_reach("The target drive"))?,
        _ => {
            let drives = client
                .site_drive_list(target.graph_id)
                .await
                .map_err(cannot_reach("The target site"))?;
            // The site's default library is "Documents" (Shared Documents in its URL).
            let default = drives
                .iter()
                .position(|d| d.name.as_deref() == Some("Documents"))
                .unwrap_or(0);
            drives.into_iter().nth(default)
        }
    };
    drive
        .map(|d| d.id)
        .ok_or_else(|| format!("{} has no drive to restore into.", target.name))
}

async fn place_in_site(
    client: &TenantClient,
    target: &Destination<'_>,
    files: Vec<CatalogEntry>,
) -> Result<Vec<super::drive::PlacedFile>, String> {
    let site_id = match target.kind {
        "group" | "team" => client
            .group_site(target.graph_id)
            .await
            .map_err(cannot_reach("The target group's site"))?
            .map(|s| s.id)
            .ok_or_else(|| format!("{} has no SharePoint site.", target.name))?,
        _ => target.graph_id.to_string(),
    };
    let tree = client
        .site_tree(&site_id)
        .await
        .map_err(cannot_reach("The target site"))?;
    let root = tree
        .iter()
        .find(|s| s.id == site_id)
        .or_else(|| tree.first())
        .cloned()
        .ok_or_else(|| format!("{} has no SharePoint site.", target.name))?;
    // Libraries by site prefix, then by the name the archive gives them; read on first use.
    let mut libraries: HashMap<String, Option<HashMap<String, String>>> = HashMap::new();
    let mut placed = Vec::with_capacity(files.len());
    for entry in files {
        let place = match split_site_path(&entry.path) {
            None => Err("This item is not a file of a document library.".to_string()),
            Some((prefix, library, rest)) => {
                if !libraries.contains_key(prefix) {
                    let site = tree.iter().find(|s| site_prefix(&root, s) == prefix);
                    let names = match site {
                        None => None,
                        Some(site) => Some(
                            client
                                .site_drive_list(&site.id)
                                .await
                                .map_err(cannot_reach("The target site's libraries"))?
                                .into_iter()
                                .map(|d| {
                                    (name_component(&d.name.clone().unwrap_or_default()), d.id)
                                })
                                .collect(),
                        ),
                    };
                    libraries.insert(prefix.to_string(), names);
                }
                match libraries.get(prefix).and_then(|l| l.as_ref()) {
                    None => Err(format!(
                        "{} has no subsite “{}”; Skyvault does not create sites: restore to a site that has it.",
                        target.name,
                        prefix.trim_start_matches("subsites/")
                    )),
                    Some(names) => match names.get(library) {
                        Some(drive_id) => Ok(Placement {
                            drive_id: drive_id.clone(),
                            folder: "root".into(),
                            relative: rest.to_string(),
                        }),
                        None => Err(format!(
                            "{} has no document library “{library}”; Skyvault does not create libraries: add it in SharePoint, or restore to a site that has it.",
                            target.name
                        )),
                    },
                }
            }
        };
        placed.push(super::drive::PlacedFile { entry, place });
    }
    Ok(placed)
}

async fn place_in_team(
    client: &TenantClient,
    target: &Destination<'_>,
    files: Vec<CatalogEntry>,
    channels: &[BackedUpChannel],
) -> Result<Vec<super::drive::PlacedFile>, String> {
    let library = target_drive(client, target).await?;
    let mut folders = ChannelFolders {
        client,
        target,
        listed: None,
        found: HashMap::new(),
    };
    let mut placed = Vec::with_capacity(files.len());
    for entry in files {
        let place = if let Some((site, relative)) = channel_site_path(&entry.path) {
            // A private or shared channel's own library: the same path in the library of the
            // target's matching channel, wherever Microsoft keeps it.
            match channels
                .iter()
                .find(|c| channel_folder_of(&c.name, &c.id) == site)
            {
                None => Err("The channel these files belonged to is not in this backup.".into()),
                Some(channel) => folders.of(channel).await?.map(|(drive_id, _)| Placement {
                    drive_id,
                    folder: "root".into(),
                    relative: relative.to_string(),
                }),
            }
        } else {
            let relative = drive_relative(&entry.path);
            let (top, rest) = relative.split_once('/').unwrap_or(("", relative));
            match channels.iter().find(|c| name_component(&c.name) == top) {
                // Not in a channel's folder: the same path in the team's library.
                None => Ok(Placement {
                    drive_id: library.clone(),
                    folder: "root".into(),
                    relative: relative.to_string(),
                }),
                Some(channel) => folders
                    .of(channel)
                    .await?
                    .map(|(drive_id, folder)| Placement {
                        drive_id,
                        folder,
                        relative: rest.to_string(),
                    }),
            }
        };
        placed.push(super::drive::PlacedFile { entry, place });
    }
    Ok(placed)
}

/// Where the target keeps the files of each backed-up channel, asked once per channel.
struct ChannelFolders<'a> {
    client: &'a TenantClient,
    target: &'a Destination<'a>,
    /// The target's channels, read only when a file is in a channel's folder or library.
    listed: Option<Vec<crate::m365::Channel>>,
    /// By backed-up channel id: the target's (drive, folder), or why there is none.
    found: HashMap<String, Result<(String, String), String>>,
}

impl ChannelFolders<'_> {
    /// The target's (drive, folder) for `channel`, or why there is none; Err outside: the
    /// target is unreachable.
    async fn of(
        &mut self,
        channel: &BackedUpChannel,
    ) -> Result<Result<(String, String), String>, String> {
        if let Some(found) = self.found.get(&channel.id) {
            return Ok(found.clone());
        }
        if self.listed.is_none() {
            self.listed = Some(list_channels(self.client, self.target).await?);
        }
        let found = channel_folder(
            self.client,
            self.target,
            self.listed.as_deref().unwrap_or_default(),
            channel,
        )
        .await?;
        self.found.insert(channel.id.clone(), found.clone());
        Ok(found)
    }
}

/// The target team's channels; none when the target is not a team (a group or a site).
async fn list_channels(
    client: &TenantClient,
    target: &Destination<'_>,
) -> Result<Vec<crate::m365::Channel>, String> {
    if !matches!(target.kind, "group" | "team") {
        return Ok(Vec::new());
    }
    match client
        .team_channels(target.graph_id)
        .try_collect::<Vec<_>>()
        .await
    {
        Ok(channels) => Ok(channels),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("The target team's channels could not be read: {e}")),
    }
}

/// The drive and folder where the target keeps the files of the channel matching `channel`
/// (same id, else same name), or why there is none. Err outside: the target is unreachable.
async fn channel_folder(
    client: &TenantClient,
    target: &Destination<'_>,
    candidates: &[crate::m365::Channel],
    channel: &BackedUpChannel,
) -> Result<Result<(String, String), String>, String> {
    let matching = candidates.iter().find(|c| c.id == channel.id).or_else(|| {
        candidates.iter().find(|c| {
            c.display_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&channel.name))
        })
    });
    let Some(matching) = matching else {
        return Ok(Err(format!(
            "{} has no channel “{}”; Skyvault does not create channels: add it in Teams and restore again, or restore to the original team.",
            target.name, channel.name
        )));
    };
    let folder = client
        .channel_files_folder(target.graph_id, &matching.id)
        .await
        .map_err(cannot_reach("The channel's files folder"))?;
    Ok(match folder {
        Some(item) => match item.parent_reference.and_then(|p| p.drive_id) {
            Some(drive_id) => Ok((drive_id, item.id)),
            None => Err("Microsoft did not say which drive holds the channel's files.".into()),
        },
        None => Err(format!(
            "Microsoft has no files folder for the channel “{}” of {}.",
            channel.name, target.name
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::split_site_path;

    #[test]
    fn a_site_path_names_its_subsite_library_and_file() {
        assert_eq!(
            split_site_path("libraries/Documents/files/a/b.txt"),
            Some(("", "Documents", "a/b.txt"))
        );
        assert_eq!(
            split_site_path("subsites/hr/libraries/Policies/files/x.docx"),
            Some(("subsites/hr", "Policies", "x.docx"))
        );
        assert_eq!(split_site_path("lists/Tasks/items/1.json"), None);
        assert_eq!(
            split_site_path("libraries/Documents/drive-items.jsonl"),
            None
        );
        assert_eq!(split_site_path("other/libraries/X/files/y"), None);
    }
}
