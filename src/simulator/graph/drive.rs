//! OneDrive and SharePoint document libraries on Graph v1.0 (graph-protocol.md §4): drives of
//! users, groups and sites, items by id or path (`items/{id}:/name:`), children, `root/delta`
//! with tokens, the `deleted` facet and `410` resync, `/content` answering 302 to a
//! pre-authenticated download URL that serves ranges, simple upload, upload sessions (320 KiB
//! multiples, `nextExpectedRanges`, `conflictBehavior`, 409 `nameAlreadyExists`), and
//! `quickXorHash`. Generated files are computed on demand; only changes live in the overlay.
//! It must never decide a drive owner's life cycle, only answer for it.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::odata;
use super::{Ctx, GraphError, GraphResult, Reply};
use crate::simulator::generate::{self, DRIVE_FOLDERS, FIRST_FILE_KEY};
use crate::simulator::quickxor::{combine, finish, quick_xor_hash, xor_block};
use crate::simulator::state::{
    DriveOwner, Found, ItemContent, ItemState, Life, Simulator, Tenant, TenantState, lock, read,
    write,
};
use crate::simulator::throttle::{Caller, Scope, Workload};

const FRAGMENT_UNIT: usize = 320 * 1024;
const MAX_FRAGMENT: usize = 60 * 1024 * 1024;
const DELTA_PAGE: usize = 200;

fn ts(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn not_found() -> GraphError {
    GraphError::new(404, "itemNotFound", "The resource could not be found.")
}

fn invalid_json() -> GraphError {
    GraphError::bad_request("invalidRequest", "The request body is not valid JSON.")
}

/// One item as seen now.
#[derive(Clone)]
struct ItemView {
    key: u32,
    parent: u32,
    name: String,
    content: ItemContent,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    rev: u32,
    content_rev: u32,
}

impl ItemView {
    fn is_folder(&self) -> bool {
        matches!(self.content, ItemContent::Folder)
    }
}

fn generated_item(tenant: &Tenant, state: &TenantState, drive: u32, key: u32) -> Option<ItemView> {
    let d = state.drives.get(drive as usize)?;
    let folder = |parent: u32, name: &str| ItemView {
        key,
        parent,
        name: name.to_owned(),
        content: ItemContent::Folder,
        created: d.created,
        modified: d.created,
        rev: 1,
        content_rev: 1,
    };
    if key == 0 {
        return Some(folder(0, "root"));
    }
    if let Some(&(_, parent, name)) = DRIVE_FOLDERS.iter().find(|f| f.0 == key) {
        return Some(folder(parent, name));
    }
    if let Some(&(_, parent, name, size)) = notebook_items(d).iter().find(|n| n.0 == key) {
        let content = if size == 0 {
            ItemContent::Package("oneNote")
        } else {
            ItemContent::Synthetic {
                seed: generate::hash(&[tenant.spec.seed, 401, drive as u64, key as u64]),
                size,
            }
        };
        return Some(ItemView {
            content,
            ..folder(parent, name)
        });
    }
    if key >= FIRST_FILE_KEY && key < FIRST_FILE_KEY + d.generated_files {
        let spec =
            generate::generated_file(tenant.spec.seed, drive, key, tenant.spec.max_file_size);
        return Some(ItemView {
            key,
            parent: spec.parent,
            name: spec.name.clone(),
            created: spec.created,
            modified: spec.modified,
            content: ItemContent::Generated(spec),
            rev: 1,
            content_rev: 1,
        });
    }
    None
}

fn item_view(tenant: &Tenant, state: &TenantState, drive: u32, key: u32) -> Option<ItemView> {
    match state
        .drive_overlays
        .get(&drive)
        .and_then(|o| o.items.get(&key))
    {
        Some(s) if s.deleted => None,
        Some(s) => Some(ItemView {
            key,
            parent: s.parent,
            name: s.name.clone(),
            content: s.content.clone(),
            created: s.created,
            modified: s.modified,
            rev: s.rev,
            content_rev: s.content_rev,
        }),
        None => generated_item(tenant, state, drive, key),
    }
}

/// The OneNote notebook SharePoint keeps in a site's "Site Assets" library: (key, parent,
/// name, size), size 0 for the notebook package itself. Its sections are `.one` files and the
/// table of contents an `.onetoc2` file, as a notebook looks through the drive API.
fn notebook_items(
    drive: &crate::simulator::state::Drive,
) -> &'static [(u32, u32, &'static str, u64)] {
    const NOTEBOOK: &[(u32, u32, &str, u64)] = &[
        (5, 0, "Team Notebook", 0),
        (6, 5, "Open Notebook.onetoc2", 4_096),
        (7, 5, "Meetings.one", 27_000),
        (8, 5, "Projects.one", 61_440),
    ];
    if drive.name == "Site Assets" {
        NOTEBOOK
    } else {
        &[]
    }
}

/// Synthetic content is made of blocks of this size. A multiple of 160 bytes, so each block's
/// contribution to quickXorHash does not depend on where it sits (the rotation repeats every
/// 160 bytes) and a file of any size hashes from its distinct blocks alone.
const SYNTHETIC_BLOCK: u64 = 160 * 4096;
/// Distinct blocks before synthetic content repeats (40 MiB): large files stay cheap to hash.
const SYNTHETIC_PERIOD: u64 = 64;

fn synthetic_block(seed: u64, index: u64) -> Bytes {
    let mut rng = generate::Stream::new(&[seed, 402, index % SYNTHETIC_PERIOD]);
    let mut block = Vec::with_capacity(SYNTHETIC_BLOCK as usize);
    while block.len() < SYNTHETIC_BLOCK as usize {
        block.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    Bytes::from(block)
}

/// quickXorHash of synthetic content, from its distinct blocks: a block that occurs an even
/// number of times cancels out.
fn synthetic_hash(seed: u64, size: u64) -> String {
    let full = size / SYNTHETIC_BLOCK;
    let tail = (size % SYNTHETIC_BLOCK) as usize;
    let mut block = [0u8; 20];
    for r in 0..SYNTHETIC_PERIOD.min(full) {
        let occurrences = full / SYNTHETIC_PERIOD + u64::from(r < full % SYNTHETIC_PERIOD);
        if occurrences % 2 == 1 {
            combine(&mut block, &xor_block(&synthetic_block(seed, r)));
        }
    }
    if tail > 0 {
        combine(&mut block, &xor_block(&synthetic_block(seed, full)[..tail]));
    }
    finish(block, size)
}

/// Bytes `start..=end` of synthetic content, one block at a time.
fn synthetic_stream(
    seed: u64,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + 'static {
    futures::stream::unfold(start, move |position| async move {
        if position > end {
            return None;
        }
        let index = position / SYNTHETIC_BLOCK;
        let block_start = index * SYNTHETIC_BLOCK;
        let stop = (end + 1 - block_start).min(SYNTHETIC_BLOCK);
        let chunk =
            synthetic_block(seed, index).slice((position - block_start) as usize..stop as usize);
        Some((Ok(chunk), block_start + stop))
    })
}

/// Every live item key of a drive, in key order.
fn all_keys(state: &TenantState, drive: u32) -> Vec<u32> {
    let Some(d) = state.drives.get(drive as usize) else {
        return Vec::new();
    };
    let overlay = state.drive_overlays.get(&drive);
    let mut keys: Vec<u32> = std::iter::once(0)
        .chain(DRIVE_FOLDERS.iter().map(|f| f.0))
        .chain(notebook_items(d).iter().map(|n| n.0))
        .chain(FIRST_FILE_KEY..FIRST_FILE_KEY + d.generated_files)
        .collect();
    if let Some(o) = overlay {
        let limit = FIRST_FILE_KEY + d.generated_files;
        let mut added: Vec<u32> = o.items.keys().copied().filter(|k| *k >= limit).collect();
        added.sort_unstable();
        keys.extend(added);
        keys.retain(|k| !o.items.get(k).is_some_and(|s| s.deleted));
    }
    keys
}

/// The files of a drive as its library's list items see them: (item id, name, modified).
pub(super) fn library_files(
    tenant: &Tenant,
    state: &TenantState,
    drive: u32,
) -> Vec<(String, String, DateTime<Utc>)> {
    all_keys(state, drive)
        .into_iter()
        .filter_map(|key| item_view(tenant, state, drive, key))
        .filter(|view| !matches!(view.content, ItemContent::Folder | ItemContent::Package(_)))
        .map(|view| (tenant.item_id(drive, view.key), view.name, view.modified))
        .collect()
}

/// Size and quickXorHash of a file, cached for generated content.
fn file_facts(tenant: &Tenant, drive: u32, view: &ItemView) -> (u64, String) {
    match &view.content {
        ItemContent::Folder | ItemContent::Package(_) => (0, String::new()),
        ItemContent::Stored { bytes, .. } => (bytes.len() as u64, quick_xor_hash(bytes)),
        ItemContent::Synthetic { seed, size } => {
            let key = (drive, view.key, view.content_rev);
            if let Some(found) = lock(&tenant.hash_cache).get(&key) {
                return found.clone();
            }
            let facts = (*size, synthetic_hash(*seed, *size));
            lock(&tenant.hash_cache).insert(key, facts.clone());
            facts
        }
        ItemContent::Generated(spec) => {
            let key = (drive, view.key, view.content_rev);
            if let Some(found) = lock(&tenant.hash_cache).get(&key) {
                return found.clone();
            }
            let bytes = generate::file_bytes(spec.kind, spec.content_seed, spec.target_size);
            let facts = (bytes.len() as u64, quick_xor_hash(&bytes));
            let mut cache = lock(&tenant.hash_cache);
            if cache.len() > 200_000 {
                cache.clear();
            }
            cache.insert(key, facts.clone());
            facts
        }
    }
}

fn content_bytes(view: &ItemView) -> Option<Vec<u8>> {
    match &view.content {
        ItemContent::Folder | ItemContent::Package(_) | ItemContent::Synthetic { .. } => None,
        ItemContent::Stored { bytes, .. } => Some(bytes.as_ref().clone()),
        ItemContent::Generated(spec) => Some(generate::file_bytes(
            spec.kind,
            spec.content_seed,
            spec.target_size,
        )),
    }
}

fn mime_type(view: &ItemView) -> String {
    match &view.content {
        ItemContent::Stored { mime_type, .. } => mime_type.clone(),
        ItemContent::Generated(spec) => spec.kind.mime_type().to_owned(),
        ItemContent::Synthetic { .. } if view.name.ends_with(".one") => {
            "application/msonenote".to_owned()
        }
        ItemContent::Synthetic { .. } => mime_for(&view.name),
        ItemContent::Folder | ItemContent::Package(_) => String::new(),
    }
}

/// Resolved drive reference of a request.
struct DriveCtx<'a, 'b> {
    ctx: &'a Ctx<'b>,
    drive: u32,
}

pub fn route(ctx: &Ctx<'_>, segments: &[&str]) -> Option<GraphResult> {
    let (drive, rest) = match segments {
        ["drives", id, rest @ ..] => (resolve_drive_id(ctx, id), rest),
        ["users", user, "drive", rest @ ..] => (user_drive(ctx, user), rest),
        ["users", user, "drives"] if ctx.method == "GET" => {
            return Some(user_drive(ctx, user).and_then(|d| list_drives(ctx, vec![d])));
        }
        ["groups", group, "drive", rest @ ..] => (
            group_drives(ctx, group).and_then(|d| d.first().copied().ok_or_else(not_found)),
            rest,
        ),
        ["groups", group, "drives"] if ctx.method == "GET" => {
            return Some(group_drives(ctx, group).and_then(|d| list_drives(ctx, d)));
        }
        ["sites", site, "drive", rest @ ..] => (
            site_drives(ctx, site).and_then(|d| d.first().copied().ok_or_else(not_found)),
            rest,
        ),
        ["sites", site, "drives"] if ctx.method == "GET" => {
            return Some(site_drives(ctx, site).and_then(|d| list_drives(ctx, d)));
        }
        _ => return None,
    };
    Some(drive.and_then(|drive| DriveCtx { ctx, drive }.route(rest)))
}

fn drive_gone(state: &TenantState, drive: u32) -> Result<u32, GraphError> {
    match state.drive_owner_life(drive) {
        Life::Active => Ok(drive),
        Life::SoftDeleted(_)
            if matches!(state.drives[drive as usize].owner, DriveOwner::User(_)) =>
        {
            Err(GraphError::new(
                404,
                "ResourceNotFound",
                "User's mysite not found.",
            ))
        }
        _ => Err(not_found()),
    }
}

fn resolve_drive_id(ctx: &Ctx<'_>, id: &str) -> Result<u32, GraphError> {
    let drive = ctx
        .tenant
        .parse_drive_id(id)
        .ok_or_else(|| GraphError::bad_request("invalidRequest", "Invalid drive id."))?;
    let state = read(&ctx.tenant.state);
    if drive as usize >= state.drives.len() {
        return Err(not_found());
    }
    drive_gone(&state, drive)
}

fn user_drive(ctx: &Ctx<'_>, user: &str) -> Result<u32, GraphError> {
    let state = read(&ctx.tenant.state);
    match state.find_user(user) {
        Found::Active(i) if state.users[i as usize].licensed => Ok(state.users[i as usize].drive),
        // No licence, no OneDrive (§4.1).
        Found::Active(_) | Found::SoftDeleted(_) => Err(GraphError::new(
            404,
            "ResourceNotFound",
            "User's mysite not found.",
        )),
        Found::Missing => Err(GraphError::directory_not_found(user)),
    }
}

fn group_drives(ctx: &Ctx<'_>, group: &str) -> Result<Vec<u32>, GraphError> {
    let state = read(&ctx.tenant.state);
    match state.find_group(group) {
        Found::Active(i) => match state.groups[i as usize].site {
            Some(site) => Ok(state.sites[site as usize].drives.clone()),
            None => Err(GraphError::new(
                404,
                "itemNotFound",
                "The group does not have a drive.",
            )),
        },
        _ => Err(GraphError::directory_not_found(group)),
    }
}

fn site_drives(ctx: &Ctx<'_>, site: &str) -> Result<Vec<u32>, GraphError> {
    let state = read(&ctx.tenant.state);
    let i = super::directory::active_site(ctx.tenant, &state, site)?;
    Ok(state.sites[i as usize].drives.clone())
}

fn drive_json(ctx: &Ctx<'_>, state: &TenantState, drive: u32) -> Value {
    let t = ctx.tenant;
    let d = &state.drives[drive as usize];
    let (drive_type, owner, web_url) = match d.owner {
        DriveOwner::User(u) => {
            let user = &state.users[u as usize];
            (
                "business",
                json!({"user": {"displayName": user.display_name, "id": user.id.to_string()}}),
                format!(
                    "https://{}/personal/{}/Documents",
                    t.my_host(),
                    user.user_principal_name.replace(['@', '.'], "_")
                ),
            )
        }
        DriveOwner::Site(s) => {
            let site = &state.sites[s as usize];
            let owner = match site.group.and_then(|g| state.groups.get(g as usize)) {
                Some(group) => {
                    json!({"group": {"displayName": group.display_name, "id": group.id.to_string()}})
                }
                None => json!({"user": {"displayName": "System Account"}}),
            };
            (
                "documentLibrary",
                owner,
                format!(
                    "{}/{}",
                    t.site_url(site),
                    if d.name == "Documents" {
                        "Shared Documents".to_owned()
                    } else {
                        d.name.replace(' ', "")
                    }
                ),
            )
        }
    };
    json!({
        "id": t.drive_id(drive),
        "createdDateTime": ts(d.created),
        "description": "",
        "lastModifiedDateTime": ts(d.created + Duration::days(1)),
        "name": d.name,
        "webUrl": web_url,
        "driveType": drive_type,
        "createdBy": {"user": {"displayName": "System Account"}},
        "owner": owner,
        "quota": {"deleted": 0, "remaining": 1_099_511_627_776u64 - 52_428_800, "state": "normal", "total": 1_099_511_627_776u64, "used": 52_428_800},
    })
}

fn list_drives(ctx: &Ctx<'_>, drives: Vec<u32>) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let items = drives
        .into_iter()
        .filter(|d| drive_gone(&state, *d).is_ok())
        .map(|d| {
            odata::project(
                &drive_json(ctx, &state, d),
                ctx.query.select().as_deref(),
                "drive",
                None,
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(Reply::Json(
        200,
        odata::collection(ctx.context("drives"), items, None, None),
    ))
}

/// How an item is addressed after the drive.
enum Address {
    Id(u32),
    /// A path below an item; the last segment may not exist yet (uploads).
    Path(u32, Vec<String>),
}

fn split_address<'a>(
    tenant: &Tenant,
    drive: u32,
    rest: &'a [&'a str],
) -> Result<(Address, &'a [&'a str]), GraphError> {
    let (base, after) = match rest {
        ["root", tail @ ..] => return Ok((Address::Id(0), tail)),
        ["root:", tail @ ..] => (0, tail),
        ["items", id, tail @ ..] if id.ends_with(':') => {
            (item_key(tenant, drive, id.trim_end_matches(':'))?, tail)
        }
        ["items", id, tail @ ..] => return Ok((Address::Id(item_key(tenant, drive, id)?), tail)),
        [first, ..] => return Err(GraphError::segment_not_found(first)),
        [] => return Err(GraphError::segment_not_found("drive")),
    };
    // Path mode: segments up to one ending with ':' (or the end).
    let mut path = Vec::new();
    let mut i = 0;
    while i < after.len() {
        let segment = after[i];
        i += 1;
        if let Some(stripped) = segment.strip_suffix(':') {
            if !stripped.is_empty() {
                path.push(stripped.to_owned());
            }
            return Ok((Address::Path(base, path), &after[i..]));
        }
        path.push(segment.to_owned());
    }
    Ok((Address::Path(base, path), &after[after.len()..]))
}

fn item_key(tenant: &Tenant, drive: u32, id: &str) -> Result<u32, GraphError> {
    if id == "root" {
        return Ok(0);
    }
    match tenant.parse_item_id(id) {
        Some((d, key)) if d == drive => Ok(key),
        _ => Err(not_found()),
    }
}

impl DriveCtx<'_, '_> {
    fn tenant(&self) -> &Tenant {
        self.ctx.tenant
    }

    fn route(&self, rest: &[&str]) -> GraphResult {
        let m = self.ctx.method;
        if rest.is_empty() {
            return if m == "GET" {
                let state = read(&self.tenant().state);
                Ok(Reply::Json(
                    200,
                    odata::project(
                        &drive_json(self.ctx, &state, self.drive),
                        self.ctx.query.select().as_deref(),
                        "drive",
                        None,
                    )?,
                ))
            } else {
                Err(GraphError::new(
                    405,
                    "invalidRequest",
                    "Method not allowed.",
                ))
            };
        }
        if matches!(
            rest,
            ["root", "delta" | "delta()" | "microsoft.graph.delta()"]
        ) && m == "GET"
        {
            return self.delta();
        }
        let (address, tail) = split_address(self.tenant(), self.drive, rest)?;
        match (m, tail) {
            ("GET", []) => self.get(&address),
            ("PATCH", []) => self.patch(&address),
            ("DELETE", []) => self.delete(&address),
            ("GET", ["children"]) => self.children(&address),
            ("POST", ["children"]) => self.create_folder(&address),
            ("GET", ["content" | "$value"]) => self.content(&address),
            ("PUT", ["content"]) => self.upload(&address),
            ("POST", ["createUploadSession" | "microsoft.graph.createUploadSession"]) => {
                self.create_session(&address)
            }
            (_, [first, ..]) => Err(GraphError::segment_not_found(first)),
            _ => Err(GraphError::new(
                405,
                "invalidRequest",
                "Method not allowed.",
            )),
        }
    }

    /// Resolves an address to an existing item key.
    fn existing(&self, state: &TenantState, address: &Address) -> Result<u32, GraphError> {
        match address {
            Address::Id(key) => item_view(self.tenant(), state, self.drive, *key)
                .map(|_| *key)
                .ok_or_else(not_found),
            Address::Path(base, path) => {
                let mut current = item_view(self.tenant(), state, self.drive, *base)
                    .ok_or_else(not_found)?
                    .key;
                for name in path {
                    current = self
                        .child_named(state, current, name)
                        .ok_or_else(not_found)?;
                }
                Ok(current)
            }
        }
    }

    fn child_named(&self, state: &TenantState, parent: u32, name: &str) -> Option<u32> {
        all_keys(state, self.drive).into_iter().find(|&k| {
            k != 0
                && item_view(self.tenant(), state, self.drive, k)
                    .is_some_and(|v| v.parent == parent && v.name.eq_ignore_ascii_case(name))
        })
    }

    fn path_of(&self, state: &TenantState, key: u32) -> String {
        let mut names = Vec::new();
        let mut current = key;
        let mut guard = 0;
        while current != 0 && guard < 64 {
            let Some(view) = item_view(self.tenant(), state, self.drive, current) else {
                break;
            };
            names.push(view.name);
            current = view.parent;
            guard += 1;
        }
        names.reverse();
        if names.is_empty() {
            "/drive/root:".to_owned()
        } else {
            format!("/drive/root:/{}", names.join("/"))
        }
    }

    fn download_url(&self, key: u32, content_rev: u32) -> String {
        let expires = (self.ctx.sim.now() + Duration::hours(1)).timestamp();
        let payload = format!(
            "{}|{}|{}|{}|{}|{}",
            self.tenant().index,
            self.drive,
            key,
            content_rev,
            expires,
            self.ctx.claims.app_id
        );
        let signature = hex::encode(
            &Sha256::new()
                .chain_update(self.ctx.sim.signing_key)
                .chain_update(payload.as_bytes())
                .finalize()[..16],
        );
        format!(
            "{}/_dl/{}.{signature}",
            self.ctx.sim.base_url,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload)
        )
    }

    fn item_json(&self, state: &TenantState, view: &ItemView, with_path: bool) -> Value {
        let t = self.tenant();
        let d = &state.drives[self.drive as usize];
        let drive_type = if matches!(d.owner, DriveOwner::User(_)) {
            "business"
        } else {
            "documentLibrary"
        };
        let guid = generate::Stream::new(&[t.spec.seed, 300, self.drive as u64, view.key as u64])
            .uuid()
            .to_string()
            .to_uppercase();
        let owner = match d.owner {
            DriveOwner::User(u) => state
                .users
                .get(u as usize)
                .map(|u| json!({"user": {"displayName": u.display_name, "id": u.id.to_string()}})),
            DriveOwner::Site(_) => None,
        }
        .unwrap_or_else(|| json!({"user": {"displayName": "System Account"}}));
        let drive_json = drive_json(self.ctx, state, self.drive);
        let web_url = format!(
            "{}/{}",
            drive_json["webUrl"].as_str().unwrap_or_default(),
            odata::escape(&view.name)
        );
        let mut value = json!({
            "@odata.etag": format!("\"{{{guid}}},{}\"", view.rev),
            "id": t.item_id(self.drive, view.key),
            "name": view.name,
            "createdDateTime": ts(view.created),
            "lastModifiedDateTime": ts(view.modified),
            "eTag": format!("\"{{{guid}}},{}\"", view.rev),
            "cTag": format!("\"c:{{{guid}}},{}\"", view.content_rev),
            "webUrl": web_url,
            "createdBy": owner.clone(),
            "lastModifiedBy": owner,
            "fileSystemInfo": {"createdDateTime": ts(view.created), "lastModifiedDateTime": ts(view.modified)},
        });
        if view.key == 0 {
            value["name"] = json!("root");
            value["root"] = json!({});
            value["parentReference"] =
                json!({"driveId": t.drive_id(self.drive), "driveType": drive_type});
            value["webUrl"] = drive_json["webUrl"].clone();
        } else {
            let mut parent = json!({"driveId": t.drive_id(self.drive), "driveType": drive_type, "id": t.item_id(self.drive, view.parent)});
            if with_path {
                parent["path"] = json!(self.path_of(state, view.parent));
            }
            value["parentReference"] = parent;
        }
        if let ItemContent::Package(kind) = &view.content {
            // Neither file nor folder to a client; its children are listed like a folder's.
            value["package"] = json!({"type": kind});
            value["size"] = json!(0);
        } else if view.is_folder() {
            let children = all_keys(state, self.drive)
                .into_iter()
                .filter(|&k| {
                    k != 0
                        && k != view.key
                        && item_view(t, state, self.drive, k).is_some_and(|c| c.parent == view.key)
                })
                .count();
            value["folder"] = json!({"childCount": children});
            value["size"] = json!(0);
        } else {
            let (size, hash) = file_facts(t, self.drive, view);
            value["size"] = json!(size);
            value["file"] = json!({"mimeType": mime_type(view), "hashes": {"quickXorHash": hash}});
            value["@microsoft.graph.downloadUrl"] =
                json!(self.download_url(view.key, view.content_rev));
        }
        value
    }

    fn get(&self, address: &Address) -> GraphResult {
        let state = read(&self.tenant().state);
        let key = self.existing(&state, address)?;
        let view = item_view(self.tenant(), &state, self.drive, key).ok_or_else(not_found)?;
        let value = self.item_json(&state, &view, true);
        Ok(Reply::Json(
            200,
            odata::project(
                &value,
                self.ctx.query.select().as_deref(),
                "driveItem",
                None,
            )?,
        ))
    }

    fn children(&self, address: &Address) -> GraphResult {
        let top = self.ctx.query.top(999)?.unwrap_or(200);
        let state = read(&self.tenant().state);
        let parent = self.existing(&state, address)?;
        let keys: Vec<u32> = all_keys(&state, self.drive)
            .into_iter()
            .filter(|&k| {
                k != 0
                    && item_view(self.tenant(), &state, self.drive, k)
                        .is_some_and(|v| v.parent == parent)
            })
            .collect();
        let start = match self.ctx.query.get("$skiptoken") {
            Some(token) => odata::decode_token(token)
                .and_then(|v| v["i"].as_u64())
                .ok_or_else(|| GraphError::bad_request("invalidRequest", "Invalid skip token."))?
                as usize,
            None => 0,
        };
        let select = self.ctx.query.select();
        let mut items = Vec::new();
        for &key in keys.iter().skip(start).take(top) {
            if let Some(view) = item_view(self.tenant(), &state, self.drive, key) {
                items.push(odata::project(
                    &self.item_json(&state, &view, true),
                    select.as_deref(),
                    "driveItem",
                    None,
                )?);
            }
        }
        let next =
            (start + top < keys.len()).then(|| super::sites::next_page_link(self.ctx, start + top));
        Ok(Reply::Json(
            200,
            odata::collection(self.ctx.context("Collection(driveItem)"), items, next, None),
        ))
    }

    fn delta(&self) -> GraphResult {
        let state = read(&self.tenant().state);
        let base = format!(
            "{}/drives/{}/root/delta",
            self.ctx.base(),
            self.tenant().drive_id(self.drive)
        );
        let page = self.ctx.query.top(999)?.unwrap_or(DELTA_PAGE);
        let floor = state
            .drive_overlays
            .get(&self.drive)
            .map_or(0, |o| o.resync_floor);
        let resync = || {
            GraphError::new(410, "resyncRequired", "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd. Upload any local changes that the server doesn't know about.").with_header("Location", base.clone())
        };
        let (since, upto, cursor, select) = match self.ctx.query.get("token") {
            None => (None, state.seq, 0usize, self.ctx.query.select()),
            Some("latest") => {
                let link = format!(
                    "{base}?token={}",
                    odata::encode_token(&json!({"s": state.seq}))
                );
                return Ok(Reply::Json(
                    200,
                    odata::collection(
                        self.ctx.context("Collection(driveItem)"),
                        Vec::new(),
                        None,
                        Some(link),
                    ),
                ));
            }
            Some(token) if DateTime::parse_from_rfc3339(token).is_ok() => {
                (None, state.seq, 0, self.ctx.query.select())
            }
            Some(token) => {
                let v = odata::decode_token(token).ok_or_else(|| {
                    GraphError::bad_request("invalidRequest", "Invalid delta token.")
                })?;
                let since = v["s"].as_u64();
                if since.is_some_and(|s| s < floor) {
                    return Err(resync()
                        .with_header("x-sim-reason", "token older than resync floor".to_owned()));
                }
                let upto = v["u"].as_u64().unwrap_or(state.seq);
                let cursor = v["c"].as_u64().map_or(0, |c| c as usize);
                let sel = v["sel"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                });
                // A deltaLink (no cursor) starts a new round up to now.
                if v.get("c").is_none_or(Value::is_null) {
                    (since, state.seq, 0, sel)
                } else {
                    (since, upto, cursor, sel)
                }
            }
        };
        let overlay = state.drive_overlays.get(&self.drive);
        let candidates: Vec<u32> = match since {
            None => all_keys(&state, self.drive),
            Some(s) => {
                let mut keys: Vec<u32> = overlay
                    .map(|o| {
                        o.items
                            .iter()
                            .filter(|(_, i)| i.version > s && i.version <= upto)
                            .map(|(k, _)| *k)
                            .collect()
                    })
                    .unwrap_or_default();
                keys.sort_unstable();
                keys
            }
        };
        let mut items = Vec::new();
        let mut next = None;
        for (position, key) in candidates.iter().enumerate().skip(cursor) {
            let entry = overlay.and_then(|o| o.items.get(key));
            if since.is_none() && entry.is_some_and(|e| e.version > upto) {
                continue;
            }
            if items.len() == page {
                next = Some(position);
                break;
            }
            match entry {
                Some(e) if e.deleted => items.push(json!({
                    "id": self.tenant().item_id(self.drive, *key),
                    "parentReference": {"driveId": self.tenant().drive_id(self.drive), "driveType": drive_type(&state, self.drive), "id": self.tenant().item_id(self.drive, e.parent)},
                    "deleted": {"state": "deleted"},
                    "fileSystemInfo": {"createdDateTime": ts(e.created), "lastModifiedDateTime": ts(e.modified)},
                })),
                _ => {
                    if let Some(view) = item_view(self.tenant(), &state, self.drive, *key) {
                        // OneDrive for Business leaves cTag out of delta results (§4.2).
                        let mut value = self.item_json(&state, &view, false);
                        if let Value::Object(map) = &mut value {
                            map.remove("cTag");
                        }
                        items.push(odata::project(&value, select.as_deref(), "driveItem", None)?);
                    }
                }
            }
        }
        let (next_link, delta_link) = match next {
            Some(c) => (
                Some(format!(
                    "{base}?token={}",
                    odata::encode_token(&json!({"s": since, "u": upto, "c": c, "sel": select}))
                )),
                None,
            ),
            None => (
                None,
                Some(format!(
                    "{base}?token={}",
                    odata::encode_token(&json!({"s": upto, "sel": select}))
                )),
            ),
        };
        Ok(Reply::Json(
            200,
            odata::collection(
                self.ctx.context("Collection(driveItem)"),
                items,
                next_link,
                delta_link,
            ),
        ))
    }

    fn content(&self, address: &Address) -> GraphResult {
        let state = read(&self.tenant().state);
        let key = self.existing(&state, address)?;
        let view = item_view(self.tenant(), &state, self.drive, key).ok_or_else(not_found)?;
        if view.is_folder() || matches!(view.content, ItemContent::Package(_)) {
            return Err(not_found());
        }
        let guid = generate::Stream::new(&[
            self.tenant().spec.seed,
            300,
            self.drive as u64,
            view.key as u64,
        ])
        .uuid()
        .to_string()
        .to_uppercase();
        if self
            .ctx
            .header("if-none-match")
            .is_some_and(|tag| tag.contains(&format!("{{{guid}}},{}", view.content_rev)))
        {
            return Ok(Reply::Bytes {
                status: 304,
                content_type: "text/plain".to_owned(),
                body: Bytes::new(),
                headers: Vec::new(),
            });
        }
        Ok(Reply::Redirect(self.download_url(key, view.content_rev)))
    }

    fn write_item(
        &self,
        state: &mut TenantState,
        key: u32,
        base: Option<ItemView>,
        update: impl FnOnce(&mut ItemState),
    ) -> u64 {
        let now = self.ctx.sim.now();
        let version = state.bump();
        let overlay = state.drive_overlays.entry(self.drive).or_default();
        let entry = overlay.items.entry(key).or_insert_with(|| {
            let b = base.clone();
            match b {
                Some(v) => ItemState {
                    parent: v.parent,
                    name: v.name,
                    content: v.content,
                    deleted: false,
                    version,
                    created: v.created,
                    modified: v.modified,
                    content_rev: v.content_rev,
                    rev: v.rev,
                },
                None => ItemState {
                    parent: 0,
                    name: String::new(),
                    content: ItemContent::Folder,
                    deleted: false,
                    version,
                    created: now,
                    modified: now,
                    content_rev: 1,
                    rev: 1,
                },
            }
        });
        entry.version = version;
        entry.modified = now;
        entry.rev += 1;
        update(entry);
        version
    }

    fn new_key(&self, state: &mut TenantState) -> u32 {
        let generated_end = FIRST_FILE_KEY + state.drives[self.drive as usize].generated_files;
        let overlay = state.drive_overlays.entry(self.drive).or_default();
        let key = overlay.next_key.unwrap_or(generated_end).max(generated_end);
        overlay.next_key = Some(key + 1);
        key
    }

    /// Finds a free name for `rename` conflict behaviour: `name 1.ext`, `name 2.ext`, …
    fn free_name(&self, state: &TenantState, parent: u32, name: &str) -> String {
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
            _ => (name.to_owned(), String::new()),
        };
        (1..)
            .map(|n| format!("{stem} {n}{ext}"))
            .find(|candidate| self.child_named(state, parent, candidate).is_none())
            .unwrap_or_else(|| name.to_owned())
    }

    /// Stores new content at `parent/name` honouring the conflict behaviour. Returns (key, created).
    fn put_file(
        &self,
        state: &mut TenantState,
        parent: u32,
        name: &str,
        bytes: Arc<Vec<u8>>,
        conflict: &str,
        replace_key: Option<u32>,
    ) -> Result<(u32, bool), GraphError> {
        let mime_type = mime_for(name);
        if let Some(key) = replace_key {
            let base = item_view(self.tenant(), state, self.drive, key).ok_or_else(not_found)?;
            self.write_item(state, key, Some(base), |e| {
                e.content = ItemContent::Stored { bytes, mime_type };
                e.content_rev += 1;
            });
            return Ok((key, false));
        }
        let parent_view =
            item_view(self.tenant(), state, self.drive, parent).ok_or_else(not_found)?;
        if !parent_view.is_folder() {
            return Err(GraphError::bad_request(
                "invalidRequest",
                "The parent is not a folder.",
            ));
        }
        let mut final_name = name.to_owned();
        if let Some(existing) = self.child_named(state, parent, name) {
            match conflict {
                "fail" => {
                    return Err(GraphError::new(
                        409,
                        "nameAlreadyExists",
                        "The specified item name already exists.",
                    ));
                }
                "rename" => final_name = self.free_name(state, parent, name),
                _ => {
                    let base = item_view(self.tenant(), state, self.drive, existing);
                    if base.as_ref().is_some_and(ItemView::is_folder) {
                        return Err(GraphError::new(
                            409,
                            "nameAlreadyExists",
                            "A folder with that name already exists.",
                        ));
                    }
                    self.write_item(state, existing, base, |e| {
                        e.content = ItemContent::Stored { bytes, mime_type };
                        e.content_rev += 1;
                    });
                    return Ok((existing, false));
                }
            }
        }
        let key = self.new_key(state);
        self.write_item(state, key, None, |e| {
            e.parent = parent;
            e.name = final_name;
            e.content = ItemContent::Stored { bytes, mime_type };
        });
        Ok((key, true))
    }

    /// Parent key and new name of a path address (`items/{parent}:/name:`).
    fn parent_and_name(
        &self,
        state: &TenantState,
        address: &Address,
    ) -> Result<(u32, String), GraphError> {
        let Address::Path(base, path) = address else {
            return Err(GraphError::bad_request(
                "invalidRequest",
                "A path address is needed.",
            ));
        };
        let Some((name, dirs)) = path.split_last() else {
            return Err(GraphError::bad_request(
                "invalidRequest",
                "The item name is missing.",
            ));
        };
        let mut parent = *base;
        for dir in dirs {
            parent = self.child_named(state, parent, dir).ok_or_else(not_found)?;
        }
        if name.is_empty() || name.contains(['"', '*', ':', '<', '>', '?', '/', '\\', '|']) {
            return Err(GraphError::bad_request(
                "invalidRequest",
                "The provided name contains invalid characters.",
            ));
        }
        Ok((parent, name.clone()))
    }

    fn upload(&self, address: &Address) -> GraphResult {
        let conflict = self
            .ctx
            .query
            .get("@microsoft.graph.conflictBehavior")
            .unwrap_or("replace")
            .to_owned();
        let bytes = Arc::new(self.ctx.body.to_vec());
        let mut state = write(&self.tenant().state);
        let (key, created) = match address {
            Address::Id(key) => self.put_file(&mut state, 0, "", bytes, "replace", Some(*key))?,
            Address::Path(..) => match self.existing(&state, address) {
                Ok(key) if conflict == "replace" => {
                    self.put_file(&mut state, 0, "", bytes, "replace", Some(key))?
                }
                _ => {
                    let (parent, name) = self.parent_and_name(&state, address)?;
                    self.put_file(&mut state, parent, &name, bytes, &conflict, None)?
                }
            },
        };
        let view = item_view(self.tenant(), &state, self.drive, key).ok_or_else(not_found)?;
        Ok(Reply::Json(
            if created { 201 } else { 200 },
            self.item_json(&state, &view, true),
        ))
    }

    fn create_folder(&self, address: &Address) -> GraphResult {
        let body: Value = serde_json::from_slice(self.ctx.body).map_err(|_| invalid_json())?;
        let name = body["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| GraphError::bad_request("invalidRequest", "The name is missing."))?
            .to_owned();
        if body.get("folder").is_none() {
            return Err(GraphError::bad_request(
                "invalidRequest",
                "Only folders can be created with POST children; upload files with PUT content.",
            ));
        }
        let conflict = body["@microsoft.graph.conflictBehavior"]
            .as_str()
            .unwrap_or("fail")
            .to_owned();
        let mut state = write(&self.tenant().state);
        let parent = self.existing(&state, address)?;
        let mut final_name = name.clone();
        if self.child_named(&state, parent, &name).is_some() {
            match conflict.as_str() {
                "rename" => final_name = self.free_name(&state, parent, &name),
                _ => {
                    return Err(GraphError::new(
                        409,
                        "nameAlreadyExists",
                        "The specified item name already exists.",
                    ));
                }
            }
        }
        let key = self.new_key(&mut state);
        self.write_item(&mut state, key, None, |e| {
            e.parent = parent;
            e.name = final_name;
            e.content = ItemContent::Folder;
        });
        let view = item_view(self.tenant(), &state, self.drive, key).ok_or_else(not_found)?;
        Ok(Reply::Json(201, self.item_json(&state, &view, true)))
    }

    fn patch(&self, address: &Address) -> GraphResult {
        let body: Value = serde_json::from_slice(self.ctx.body).map_err(|_| invalid_json())?;
        let mut state = write(&self.tenant().state);
        let key = self.existing(&state, address)?;
        if key == 0 {
            return Err(GraphError::new(
                403,
                "accessDenied",
                "The root cannot be changed.",
            ));
        }
        let view = item_view(self.tenant(), &state, self.drive, key).ok_or_else(not_found)?;
        let new_parent = match body["parentReference"]["id"].as_str() {
            Some(id) => item_key(self.tenant(), self.drive, id)?,
            None => view.parent,
        };
        let new_name = body["name"]
            .as_str()
            .map_or(view.name.clone(), str::to_owned);
        if self
            .child_named(&state, new_parent, &new_name)
            .is_some_and(|other| other != key)
        {
            return Err(GraphError::new(
                409,
                "nameAlreadyExists",
                "The specified item name already exists.",
            ));
        }
        self.write_item(&mut state, key, Some(view), |e| {
            e.parent = new_parent;
            e.name = new_name;
        });
        let view = item_view(self.tenant(), &state, self.drive, key).ok_or_else(not_found)?;
        Ok(Reply::Json(200, self.item_json(&state, &view, true)))
    }

    fn delete(&self, address: &Address) -> GraphResult {
        let mut state = write(&self.tenant().state);
        let key = self.existing(&state, address)?;
        if key == 0 {
            return Err(GraphError::new(
                403,
                "accessDenied",
                "The root cannot be deleted.",
            ));
        }
        // Children go with their folder; each gets the deleted facet in delta.
        let mut doomed = vec![key];
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            let children: Vec<u32> = all_keys(&state, self.drive)
                .into_iter()
                .filter(|&k| {
                    k != 0
                        && item_view(self.tenant(), &state, self.drive, k)
                            .is_some_and(|v| v.parent == parent)
                })
                .collect();
            doomed.extend(children);
            i += 1;
        }
        for k in doomed.into_iter().rev() {
            let base = item_view(self.tenant(), &state, self.drive, k);
            self.write_item(&mut state, k, base, |e| e.deleted = true);
        }
        Ok(Reply::NoContent)
    }

    fn create_session(&self, address: &Address) -> GraphResult {
        let body: Value = if self.ctx.body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(self.ctx.body).map_err(|_| invalid_json())?
        };
        let conflict = body["item"]["@microsoft.graph.conflictBehavior"]
            .as_str()
            .unwrap_or("fail")
            .to_owned();
        let state = read(&self.tenant().state);
        let (parent, name, replace) = match address {
            Address::Id(key) => {
                let view =
                    item_view(self.tenant(), &state, self.drive, *key).ok_or_else(not_found)?;
                (view.parent, view.name, Some(*key))
            }
            Address::Path(..) => {
                let (parent, name) = self.parent_and_name(&state, address)?;
                (
                    parent,
                    body["item"]["name"].as_str().map_or(name, str::to_owned),
                    None,
                )
            }
        };
        drop(state);
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let expires = self.ctx.sim.now() + Duration::days(7);
        let session = UploadSession {
            tenant: self.tenant().index,
            drive: self.drive,
            parent,
            name,
            conflict,
            replace,
            defer_commit: body["deferCommit"].as_bool().unwrap_or(false),
            total: body["item"]["fileSize"].as_u64(),
            data: Vec::new(),
            expires,
            app_id: self.ctx.claims.app_id.clone(),
            modified: body["item"]["fileSystemInfo"]["lastModifiedDateTime"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        };
        lock(&self.ctx.sim.uploads).insert(id.clone(), session);
        Ok(Reply::Json(
            200,
            json!({
                "@odata.context": self.ctx.context("microsoft.graph.uploadSession"),
                "uploadUrl": format!("{}/_up/{id}", self.ctx.sim.base_url),
                "expirationDateTime": expires.to_rfc3339_opts(SecondsFormat::Millis, true),
                "nextExpectedRanges": ["0-"],
            }),
        ))
    }
}

/// Control API (`POST /_sim/tenants/{t}/drives/{drive}/synthetic-files`): adds a file of
/// `size` deterministic bytes, up to many gigabytes, without holding it in memory. Body:
/// `{"name": "big.bin", "size": 10737418240, "parentId": "<item id>"}` (the root without
/// `parentId`). Answers the new driveItem.
pub fn add_synthetic_file(ctx: &Ctx<'_>, drive_id: &str) -> GraphResult {
    let body: Value = serde_json::from_slice(ctx.body).map_err(|_| invalid_json())?;
    let name = body["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| GraphError::bad_request("invalidRequest", "The name is missing."))?
        .to_owned();
    let size = body["size"]
        .as_u64()
        .ok_or_else(|| GraphError::bad_request("invalidRequest", "The size is missing."))?;
    let drive = resolve_drive_id(ctx, drive_id)?;
    let drive_ctx = DriveCtx { ctx, drive };
    let mut state = write(&ctx.tenant.state);
    let parent = match body["parentId"].as_str() {
        Some(id) => item_key(ctx.tenant, drive, id)?,
        None => 0,
    };
    if !item_view(ctx.tenant, &state, drive, parent).is_some_and(|v| v.is_folder()) {
        return Err(GraphError::bad_request(
            "invalidRequest",
            "The parent is not a folder.",
        ));
    }
    if drive_ctx.child_named(&state, parent, &name).is_some() {
        return Err(GraphError::new(
            409,
            "nameAlreadyExists",
            "The specified item name already exists.",
        ));
    }
    let key = drive_ctx.new_key(&mut state);
    let seed = generate::hash(&[ctx.tenant.spec.seed, 403, drive as u64, key as u64]);
    drive_ctx.write_item(&mut state, key, None, |e| {
        e.parent = parent;
        e.name = name;
        e.content = ItemContent::Synthetic { seed, size };
    });
    let view = item_view(ctx.tenant, &state, drive, key).ok_or_else(not_found)?;
    Ok(Reply::Json(201, drive_ctx.item_json(&state, &view, true)))
}

/// `GET /teams/{id}/channels/{id}/filesFolder` of a standard channel: the folder named like
/// the channel at the root of the team's default library, created on first use as Teams does.
pub(super) fn channel_folder(ctx: &Ctx<'_>, drive: u32, name: &str) -> GraphResult {
    let drive_ctx = DriveCtx { ctx, drive };
    let mut state = write(&ctx.tenant.state);
    let key = match drive_ctx.child_named(&state, 0, name) {
        Some(key) => key,
        None => {
            let key = drive_ctx.new_key(&mut state);
            drive_ctx.write_item(&mut state, key, None, |e| {
                e.parent = 0;
                e.name = name.to_owned();
                e.content = ItemContent::Folder;
            });
            key
        }
    };
    let view = item_view(ctx.tenant, &state, drive, key).ok_or_else(not_found)?;
    if !view.is_folder() {
        return Err(GraphError::new(
            409,
            "nameAlreadyExists",
            "A file has the channel folder's name.",
        ));
    }
    Ok(Reply::Json(200, drive_ctx.item_json(&state, &view, true)))
}

fn drive_type(state: &TenantState, drive: u32) -> &'static str {
    match state.drives.get(drive as usize).map(|d| d.owner) {
        Some(DriveOwner::User(_)) => "business",
        _ => "documentLibrary",
    }
}

fn mime_for(name: &str) -> String {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "docx" => generate::FileKind::Docx.mime_type(),
        "xlsx" => generate::FileKind::Xlsx.mime_type(),
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "eml" => "message/rfc822",
        "zip" => "application/x-zip-compressed",
        _ => "application/octet-stream",
    }
    .to_owned()
}

/// The most an upload session reserves up front for the bytes it is told to expect.
const RESERVE_LIMIT: usize = 2 * 1024 * 1024 * 1024;

/// An upload session in progress (§4.4).
#[derive(Debug, Clone)]
pub struct UploadSession {
    tenant: usize,
    drive: u32,
    parent: u32,
    name: String,
    conflict: String,
    replace: Option<u32>,
    defer_commit: bool,
    total: Option<u64>,
    data: Vec<u8>,
    expires: DateTime<Utc>,
    app_id: String,
    /// `item.fileSystemInfo.lastModifiedDateTime` of the session, applied at commit.
    modified: Option<DateTime<Utc>>,
}

fn plain_error(sim: &Simulator, error: GraphError) -> HttpResponse {
    let id = uuid::Uuid::new_v4().to_string();
    super::error_response(sim, &error, (&id, &id))
}

fn plain_json(status: u16, value: Value) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK),
    )
    .content_type(super::JSON_CONTENT_TYPE)
    .body(value.to_string())
}

/// Throttling and faults for the pre-authenticated URLs, charged to the app that got the URL.
async fn admit_spo(
    sim: &Simulator,
    tenant: &Tenant,
    app_id: &str,
    cost: f64,
    resource: &str,
) -> Result<crate::simulator::faults::Fault, GraphError> {
    let (fault, latency) = sim.faults.pick(Workload::Drive);
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    if let crate::simulator::faults::Fault::Status(status, retry) = fault {
        let mut error = GraphError::new(
            status,
            if status == 429 {
                "TooManyRequests"
            } else {
                "serviceNotAvailable"
            },
            "Please retry again later.",
        );
        if status != 504 {
            error = error.with_header("Retry-After", format!("{retry}"));
        }
        return Err(error);
    }
    let tenant_id = tenant.id.to_string();
    let users = read(&tenant.state).users.len();
    sim.metrics.count(app_id, &tenant_id, None, resource);
    let caller = Caller {
        now: sim.now(),
        app_id,
        tenant: tenant.index,
        tenant_id: &tenant_id,
        users_in_tenant: users,
        licences_in_tenant: tenant.licences() as usize,
        resource,
    };
    sim.throttle
        .admit(&caller, Scope::Spo, cost, 0)
        .map(|_| fault)
        .map_err(|refusal| {
            let mut error = GraphError::new(refusal.status, refusal.code, &refusal.message);
            if let Some(retry) = refusal.retry_after {
                error = error.with_header("Retry-After", format!("{retry:.3}"));
            }
            error.headers.extend(refusal.headers);
            error
        })
}

/// `GET /_dl/{token}`: the pre-authenticated download URL; no Authorization needed; ranges.
pub async fn download(sim: &Simulator, req: &HttpRequest, segments: &[String]) -> HttpResponse {
    let Some((payload, signature)) = segments.first().and_then(|t| t.split_once('.')) else {
        return plain_error(
            sim,
            GraphError::new(401, "unauthenticated", "The download URL is invalid."),
        );
    };
    let Some(text) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return plain_error(
            sim,
            GraphError::new(401, "unauthenticated", "The download URL is invalid."),
        );
    };
    let expected = hex::encode(
        &Sha256::new()
            .chain_update(sim.signing_key)
            .chain_update(text.as_bytes())
            .finalize()[..16],
    );
    let parts: Vec<&str> = text.splitn(6, '|').collect();
    if expected != signature || parts.len() != 6 {
        return plain_error(
            sim,
            GraphError::new(401, "unauthenticated", "The download URL is invalid."),
        );
    }
    let (Ok(tenant), Ok(drive), Ok(key), Ok(expires)) = (
        parts[0].parse::<usize>(),
        parts[1].parse::<u32>(),
        parts[2].parse::<u32>(),
        parts[4].parse::<i64>(),
    ) else {
        return plain_error(
            sim,
            GraphError::new(401, "unauthenticated", "The download URL is invalid."),
        );
    };
    if sim.now().timestamp() > expires {
        return plain_error(
            sim,
            GraphError::new(401, "unauthenticated", "The download URL has expired."),
        );
    }
    let Some(tenant) = sim.tenants.get(tenant) else {
        return plain_error(sim, not_found());
    };
    let fault = match admit_spo(sim, tenant, parts[5], 1.0, "GET /_dl/{token}").await {
        Ok(fault) => fault,
        Err(error) => return plain_error(sim, error),
    };
    let body = {
        let state = read(&tenant.state);
        if drive_gone(&state, drive).is_err() {
            return plain_error(sim, not_found());
        }
        let Some(view) = item_view(tenant, &state, drive, key) else {
            return plain_error(sim, not_found());
        };
        match &view.content {
            ItemContent::Synthetic { seed, size } => Body::Synthetic(*seed, *size),
            _ => match content_bytes(&view) {
                Some(bytes) => Body::Bytes(Bytes::from(bytes)),
                None => return plain_error(sim, not_found()),
            },
        }
    };
    let total = body.len();
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, total));
    let (start, end) = range.unwrap_or((0, total.saturating_sub(1)));
    let length = if total == 0 { 0 } else { end + 1 - start };
    let mut builder = match range {
        Some(_) => {
            let mut b = HttpResponse::PartialContent();
            b.insert_header(("Content-Range", format!("bytes {start}-{end}/{total}")));
            b
        }
        None => HttpResponse::Ok(),
    };
    builder
        .insert_header(("Accept-Ranges", "bytes"))
        .insert_header(("Content-Length", length.to_string()))
        .content_type("application/octet-stream");
    let stream: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> =
        match (body, length) {
            (_, 0) => Box::pin(futures::stream::empty()),
            (Body::Bytes(bytes), _) => Box::pin(futures::stream::once(async move {
                Ok(bytes.slice(start as usize..end as usize + 1))
            })),
            (Body::Synthetic(seed, _), _) => Box::pin(synthetic_stream(seed, start, end)),
        };
    // An injected reset cuts the body off half-way, as a dropped connection would.
    if fault == crate::simulator::faults::Fault::ConnectionReset {
        let truncated = futures::stream::unfold(
            (stream, length / 2, false),
            |(mut inner, left, done)| async move {
                if done {
                    return None;
                }
                if left == 0 {
                    let reset = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "injected connection reset",
                    );
                    return Some((Err(reset), (inner, 0, true)));
                }
                match inner.next().await {
                    Some(Ok(chunk)) => {
                        let take = left.min(chunk.len() as u64);
                        Some((
                            Ok(chunk.slice(..take as usize)),
                            (inner, left - take, false),
                        ))
                    }
                    Some(Err(e)) => Some((Err(e), (inner, 0, true))),
                    None => None,
                }
            },
        );
        return builder.streaming(truncated);
    }
    builder.streaming(stream)
}

/// What a download serves: bytes in memory, or synthetic content computed as it is sent.
enum Body {
    Bytes(Bytes),
    Synthetic(u64, u64),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::Synthetic(_, size) => *size,
        }
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n`; `None` when it cannot be served (a plain 200 then).
fn parse_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (total.saturating_sub(n), total - 1)
        }
        (a, "") => (a.parse().ok()?, total - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(total - 1)),
    };
    (start <= end && start < total).then_some((start, end))
}

/// `PUT|GET|POST|DELETE /_up/{session}`: the upload URL; no Authorization header allowed.
pub async fn upload_chunk(
    sim: &Simulator,
    req: &HttpRequest,
    segments: &[String],
    body: &[u8],
) -> HttpResponse {
    let Some(id) = segments.first().cloned() else {
        return plain_error(
            sim,
            GraphError::new(404, "itemNotFound", "The upload session was not found."),
        );
    };
    if req.headers().contains_key("authorization") {
        return plain_error(
            sim,
            GraphError::new(
                401,
                "unauthenticated",
                "Do not send an Authorization header to the upload URL.",
            ),
        );
    }
    // Taken out of the table while this request is handled and put back after, so the bytes
    // received so far are never copied (a gigabyte upload would copy them at every range).
    let session = {
        let mut uploads = lock(&sim.uploads);
        let now = sim.now();
        uploads.retain(|_, s| s.expires > now);
        uploads.remove(&id)
    };
    let mut held = HeldSession {
        sim,
        id: id.clone(),
        session,
    };
    let Some(session) = held.session.as_mut() else {
        return plain_error(
            sim,
            GraphError::new(
                404,
                "itemNotFound",
                "The upload session was not found or has expired.",
            ),
        );
    };
    let Some(tenant) = sim.tenants.get(session.tenant).cloned() else {
        return plain_error(sim, not_found());
    };
    let method = req.method().as_str();
    if method == "DELETE" {
        held.session = None;
        return HttpResponse::NoContent().finish();
    }
    let status = |s: &UploadSession| json!({"expirationDateTime": s.expires.to_rfc3339_opts(SecondsFormat::Millis, true), "nextExpectedRanges": [format!("{}-", s.data.len())]});
    if method == "GET" {
        return plain_json(200, status(session));
    }
    if let Err(error) = admit_spo(sim, &tenant, &session.app_id, 2.0, "PUT /_up/{session}").await {
        return plain_error(sim, error);
    }
    if method == "POST" {
        // deferCommit: commit with an empty POST once every byte is there.
        if session
            .total
            .is_some_and(|t| t as usize != session.data.len())
        {
            return plain_error(
                sim,
                GraphError::bad_request(
                    "uploadSessionIncomplete",
                    "The upload session is incomplete.",
                ),
            );
        }
        let response = commit(sim, &tenant, &id, session);
        held.session = None;
        return response;
    }
    if method != "PUT" {
        return plain_error(
            sim,
            GraphError::new(405, "invalidRequest", "Method not allowed."),
        );
    }
    let Some((start, end, total)) = req
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range)
    else {
        return plain_error(
            sim,
            GraphError::bad_request(
                "invalidRange",
                "The Content-Range header is missing or malformed.",
            ),
        );
    };
    let length = end + 1 - start;
    if length != body.len() {
        return plain_error(
            sim,
            GraphError::bad_request(
                "fragmentLengthMismatch",
                "The Content-Range header length does not match the provided number of bytes.",
            ),
        );
    }
    if length > MAX_FRAGMENT {
        return plain_error(
            sim,
            GraphError::bad_request(
                "maxFragmentLengthExceeded",
                "The fragment is larger than 60 MiB.",
            ),
        );
    }
    if session.total.is_some_and(|t| t as usize != total) {
        return plain_error(
            sim,
            GraphError::bad_request(
                "invalidRange",
                "The total size in Content-Range changed during the session.",
            ),
        );
    }
    if start < session.data.len() {
        return plain_error(
            sim,
            GraphError::new(
                416,
                "fragmentOverlap",
                "The uploaded fragment overlaps with data that has already been received.",
            ),
        );
    }
    if start > session.data.len() {
        return plain_error(
            sim,
            GraphError::new(
                416,
                "fragmentOutOfOrder",
                "The uploaded fragment is out of order; see nextExpectedRanges.",
            ),
        );
    }
    let last = end + 1 == total;
    if !last && length % FRAGMENT_UNIT != 0 {
        return plain_error(
            sim,
            GraphError::bad_request(
                "invalidRange",
                "Fragments must be a multiple of 320 KiB (327,680 bytes), except the last one.",
            ),
        );
    }
    session.total = Some(total as u64);
    if session.data.is_empty() {
        // Room for the whole file at once (within reason): growing by doubling would hold
        // half as much again while a large upload arrives.
        session.data.reserve_exact(total.min(RESERVE_LIMIT));
    }
    session.data.extend_from_slice(body);
    if !last || session.defer_commit {
        return plain_json(202, status(session));
    }
    let response = commit(sim, &tenant, &id, session);
    held.session = None;
    response
}

/// An upload session taken out of the table for one request; back in when the request ends,
/// unless it was committed or deleted (`session` set to `None`).
struct HeldSession<'a> {
    sim: &'a Simulator,
    id: String,
    session: Option<UploadSession>,
}

impl Drop for HeldSession<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            lock(&self.sim.uploads).insert(self.id.clone(), session);
        }
    }
}

fn parse_content_range(header: &str) -> Option<(usize, usize, usize)> {
    let spec = header.trim().strip_prefix("bytes ")?;
    let (range, total) = spec.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (start, end, total) = (
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (start <= end && end < total).then_some((start, end, total))
}

fn commit(
    sim: &Simulator,
    tenant: &Arc<Tenant>,
    id: &str,
    session: &mut UploadSession,
) -> HttpResponse {
    let claims = super::super::identity::Claims {
        tenant: tenant.index,
        app_id: session.app_id.clone(),
        roles: Vec::new(),
        user: None,
    };
    let request = actix_web::test::TestRequest::default().to_http_request();
    let ctx = Ctx {
        sim,
        tenant,
        claims: &claims,
        req: &request,
        query: odata::Query::default(),
        body: &[],
        method: "PUT",
    };
    let drive = DriveCtx {
        ctx: &ctx,
        drive: session.drive,
    };
    let mut state = write(&tenant.state);
    let result = drive.put_file(
        &mut state,
        session.parent,
        &session.name,
        Arc::new(std::mem::take(&mut session.data)),
        &session.conflict,
        session.replace,
    );
    lock(&sim.uploads).remove(id);
    if let (Ok((key, _)), Some(modified)) = (&result, session.modified) {
        // The client's own times (fileSystemInfo) replace the upload's.
        let base = item_view(tenant, &state, session.drive, *key);
        drive.write_item(&mut state, *key, base, |e| e.modified = modified);
    }
    match result {
        Ok((key, created)) => match item_view(tenant, &state, session.drive, key) {
            Some(view) => plain_json(
                if created { 201 } else { 200 },
                drive.item_json(&state, &view, true),
            ),
            None => plain_error(sim, not_found()),
        },
        Err(error) => {
            drop(state);
            plain_error(sim, error)
        }
    }
}
