//! The simulator's state: tenants with their directory (users, groups, sites, drives) held in
//! memory, plus per-mailbox and per-drive overlays that record only what changed since generation.
//! Every change takes the next number of the tenant's change sequence; delta tokens are positions
//! in that sequence. This module owns identifiers and life cycle (soft delete, restore, purge);
//! it must never speak HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::generate::{self, FileSpec, MessageMeta, Stream};
use super::{SimulatorOptions, TenantInfo, TenantSpec};
use crate::clock::SharedClock;

pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The whole simulator, shared by every request.
pub struct Simulator {
    pub base_url: String,
    pub clock: SharedClock,
    pub token_lifetime: Duration,
    pub retention: RwLock<Duration>,
    pub admin_token: String,
    pub signing_key: [u8; 32],
    /// The RSA key ID tokens are signed with (published at `/{tenant}/discovery/v2.0/keys`).
    pub oidc_key: super::oidc::SigningKey,
    pub tenants: Vec<Arc<Tenant>>,
    pub identity: super::identity::IdentityState,
    pub throttle: super::throttle::Throttle,
    pub faults: super::faults::Faults,
    pub metrics: super::metrics::Metrics,
    pub uploads: Mutex<HashMap<String, super::graph::drive::UploadSession>>,
    /// Open mailbox import sessions by the token in their `importUrl`.
    pub import_sessions: super::import::ImportSessions,
    /// Open attachment upload sessions by session id.
    pub attachment_sessions: super::attach::AttachmentSessions,
    /// Teams messages added or changed through the control API, and the protected-API switch.
    pub teams: super::graph::teams::TeamsState,
}

impl Simulator {
    pub fn new(options: &SimulatorOptions, base_url: String) -> Self {
        let mut random = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut random);
        let admin_token = options
            .admin_token
            .clone()
            .unwrap_or_else(|| format!("sim-{}", hex::encode(&random[..16])));
        let mut signing_key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut signing_key);
        let tenants = options
            .tenants
            .iter()
            .enumerate()
            .map(|(i, spec)| Arc::new(Tenant::generate(i, spec)))
            .collect();
        let identity = super::identity::IdentityState::default();
        for app in &options.apps {
            identity.register(app.clone());
        }
        Self {
            base_url,
            clock: options.clock.clone(),
            token_lifetime: options.token_lifetime,
            retention: RwLock::new(options.deleted_retention),
            admin_token,
            signing_key,
            oidc_key: super::oidc::SigningKey::default(),
            tenants,
            identity,
            throttle: super::throttle::Throttle::new(options.limits.clone()),
            faults: super::faults::Faults::default(),
            metrics: super::metrics::Metrics::default(),
            uploads: Mutex::new(HashMap::new()),
            import_sessions: Mutex::new(HashMap::new()),
            attachment_sessions: Mutex::new(HashMap::new()),
            teams: super::graph::teams::TeamsState::default(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A tenant by GUID or by one of its domains.
    pub fn find_tenant(&self, key: &str) -> Option<&Arc<Tenant>> {
        let key = key.to_ascii_lowercase();
        self.tenants
            .iter()
            .find(|t| t.id.to_string() == key || t.domain == key)
    }

    /// Applies retention: soft-deleted objects older than it are purged. Called before reads so
    /// a moved clock takes effect without a background task.
    pub fn purge_expired(&self, tenant: &Tenant) {
        let retention = *read(&self.retention);
        let cutoff = self.now() - retention;
        let needs = {
            let state = read(&tenant.state);
            state
                .oldest_soft_delete
                .is_some_and(|oldest| oldest <= cutoff)
        };
        if needs {
            write(&tenant.state).purge_before(cutoff);
        }
    }
}

/// Whether an object is live, restorable, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Active,
    SoftDeleted(DateTime<Utc>),
    /// Permanently deleted; kept only so delta can report `@removed: deleted`.
    Purged,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub user_principal_name: String,
    pub mail_nickname: String,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub mobile_phone: Option<String>,
    pub business_phones: Vec<String>,
    pub account_enabled: bool,
    pub created: DateTime<Utc>,
    pub is_admin: bool,
    pub generated_messages: u32,
    pub drive: u32,
    /// Holds a Microsoft 365 licence (Exchange Online and SharePoint plans). Without one the
    /// mailbox and OneDrive do not answer.
    pub licensed: bool,
    pub life: Life,
    pub version: u64,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: Uuid,
    pub display_name: String,
    pub description: String,
    pub mail_nickname: String,
    pub unified: bool,
    pub team: bool,
    pub visibility: String,
    pub created: DateTime<Utc>,
    pub members: Vec<u32>,
    pub site: Option<u32>,
    pub life: Life,
    pub version: u64,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub collection_id: Uuid,
    pub web_id: Uuid,
    pub url_name: String,
    pub display_name: String,
    pub description: String,
    pub is_root: bool,
    pub group: Option<u32>,
    pub created: DateTime<Utc>,
    pub drives: Vec<u32>,
    pub life: Life,
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveOwner {
    User(u32),
    Site(u32),
}

#[derive(Debug, Clone)]
pub struct Drive {
    pub owner: DriveOwner,
    pub name: String,
    pub created: DateTime<Utc>,
    pub generated_files: u32,
}

/// A message that differs from its generated self, or was added.
#[derive(Debug, Clone)]
pub struct MessageState {
    pub folder: u16,
    /// `None`: still the generated content.
    pub meta: Option<Arc<MessageMeta>>,
    /// Raw MIME kept as uploaded (MIME-created drafts).
    pub mime: Option<Arc<Vec<u8>>>,
    pub deleted: bool,
    pub version: u64,
    /// Moves change the regular (non-immutable) id.
    pub moves: u32,
    /// Folders the message left, with the change number of leaving (for per-folder delta).
    pub left: Vec<(u16, u64)>,
    pub modified: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct FolderState {
    pub key: u16,
    pub parent: u16,
    pub display_name: String,
    pub hidden: bool,
    pub deleted: bool,
    pub version: u64,
}

#[derive(Debug, Clone, Default)]
pub struct MailboxOverlay {
    pub messages: HashMap<u32, MessageState>,
    pub next_key: Option<u32>,
    pub created_folders: Vec<FolderState>,
}

/// A non-message item of a user's mailboxes (event, contact, task, note, archived message)
/// that differs from its generated self, or was added.
#[derive(Debug, Clone)]
pub struct StoredItem {
    pub folder: u16,
    /// `None`: still the generated content.
    pub record: Option<Arc<super::record::ItemRecord>>,
    pub deleted: bool,
    pub version: u64,
    /// Folders the item left, with the change number of leaving (for per-folder delta).
    pub left: Vec<(u16, u64)>,
    pub modified: DateTime<Utc>,
}

/// What changed in a user's mailboxes besides messages (those stay in `MailboxOverlay`), and
/// the mailbox import/export API's per-user switches.
#[derive(Debug, Clone, Default)]
pub struct ItemsOverlay {
    /// By (`mail_kind`, key).
    pub items: HashMap<(u8, u32), StoredItem>,
    /// Next key to give an added item, by `mail_kind`.
    pub next_keys: HashMap<u8, u32>,
    /// Item ids whose export answers a per-item error (control API).
    pub export_failures: std::collections::HashSet<String>,
    /// Mailbox API delta tokens older than this change number answer 410 `syncStateNotFound`.
    pub resync_floor: u64,
}

#[derive(Debug, Clone)]
pub enum ItemContent {
    Folder,
    Generated(FileSpec),
    Stored {
        bytes: Arc<Vec<u8>>,
        mime_type: String,
    },
    /// Deterministic bytes of any size (up to many gigabytes) computed block by block as they
    /// are served; nothing is held in memory.
    Synthetic {
        seed: u64,
        size: u64,
    },
    /// A package such as a OneNote notebook: neither file nor folder, with children.
    Package(&'static str),
}

/// A drive item that differs from its generated self, or was added.
#[derive(Debug, Clone)]
pub struct ItemState {
    pub parent: u32,
    pub name: String,
    pub content: ItemContent,
    pub deleted: bool,
    pub version: u64,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// Bumped when content changes (cTag) and when anything changes (eTag).
    pub content_rev: u32,
    pub rev: u32,
}

#[derive(Debug, Clone, Default)]
pub struct DriveOverlay {
    pub items: HashMap<u32, ItemState>,
    pub next_key: Option<u32>,
    /// Delta tokens older than this change number answer 410 (resync required).
    pub resync_floor: u64,
}

/// Mutable state of one tenant.
#[derive(Debug, Default)]
pub struct TenantState {
    pub seq: u64,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub sites: Vec<Site>,
    pub drives: Vec<Drive>,
    pub mailboxes: HashMap<u32, MailboxOverlay>,
    /// By user: events, contacts, tasks, notes and archive items that changed.
    pub items: HashMap<u32, ItemsOverlay>,
    pub drive_overlays: HashMap<u32, DriveOverlay>,
    pub user_keys: HashMap<String, u32>,
    pub group_keys: HashMap<String, u32>,
    pub oldest_soft_delete: Option<DateTime<Utc>>,
    /// Directory delta tokens older than this answer 410 (control API `.../resync`).
    pub directory_resync_floor: u64,
    /// Subsite → the site it lives under (`/sites/{id}/sites`). Subsites are not site
    /// collections, so discovery does not list them.
    pub site_parents: HashMap<u32, u32>,
    /// (team's group, channel) → the site of a private or shared channel, made the first time
    /// its files are asked for.
    pub channel_sites: HashMap<(u32, u8), u32>,
}

/// (drive, item key, content revision).
pub type ContentKey = (u32, u32, u32);

pub struct Tenant {
    pub index: usize,
    pub id: Uuid,
    pub display_name: String,
    pub domain: String,
    /// `contoso` in `contoso.sharepoint.com`.
    pub prefix: String,
    pub spec: TenantSpec,
    pub admin_password: String,
    pub member_password: String,
    pub created: DateTime<Utc>,
    pub state: RwLock<TenantState>,
    /// (drive, key, content revision) → (size, quickXorHash): generated content is costly to hash.
    pub hash_cache: Mutex<HashMap<ContentKey, (u64, String)>>,
}

impl Tenant {
    /// Licences the tenant bought (what `subscribedSkus` reports as prepaid units).
    pub fn licences(&self) -> u32 {
        self.spec.licences.unwrap_or(self.spec.users.max(1))
    }

    pub fn generate(index: usize, spec: &TenantSpec) -> Self {
        let mut rng = Stream::new(&[spec.seed, 100, index as u64]);
        let id = rng.uuid();
        let mut prefix = generate::ascii_fold(&spec.organization);
        if prefix.is_empty() {
            prefix = "tenant".to_owned();
        }
        if index > 0 {
            prefix = format!("{prefix}{index}");
        }
        let domain = format!("{prefix}.onmicrosoft.com");
        let admin_password = spec
            .admin_password
            .clone()
            .unwrap_or_else(|| format!("Sim-{:08x}!a", rng.next_u64() as u32));
        let member_password = format!("Member-{:08x}!b", rng.next_u64() as u32);
        let created = generate::content_epoch() - Duration::days(900);
        let mut tenant = Self {
            index,
            id,
            display_name: spec.organization.clone(),
            domain,
            prefix,
            spec: spec.clone(),
            admin_password,
            member_password,
            created,
            state: RwLock::new(TenantState::default()),
            hash_cache: Mutex::new(HashMap::new()),
        };
        tenant.populate();
        tenant
    }

    fn populate(&mut self) {
        let spec = self.spec.clone();
        let mut state = TenantState::default();
        for i in 0..spec.users.max(1) {
            let person = generate::person(spec.seed, i, &spec.organization);
            let mut rng = Stream::new(&[spec.seed, 101, i as u64]);
            let user = User {
                id: rng.uuid(),
                display_name: person.display_name,
                given_name: person.given_name,
                surname: person.surname,
                user_principal_name: format!("{}@{}", person.nickname, self.domain),
                mail_nickname: person.nickname,
                job_title: Some(person.job_title),
                department: Some(person.department),
                office_location: Some(person.office),
                mobile_phone: Some(person.mobile_phone),
                business_phones: vec![person.business_phone],
                account_enabled: true,
                created: self.created + Duration::days(i as i64 % 400),
                is_admin: i == 0,
                generated_messages: spec.messages_per_mailbox,
                drive: 0,
                licensed: true,
                life: Life::Active,
                version: 0,
            };
            state.add_user(user, spec.files_per_drive, self.created);
        }
        let root_site = Site {
            collection_id: Stream::new(&[spec.seed, 102]).uuid(),
            web_id: Stream::new(&[spec.seed, 103]).uuid(),
            url_name: String::new(),
            display_name: "Communication site".to_owned(),
            description: format!("{} intranet", spec.organization),
            is_root: true,
            group: None,
            created: self.created,
            drives: Vec::new(),
            life: Life::Active,
            version: 0,
        };
        state.add_site(root_site, &["Documents"], spec.files_per_drive);
        let user_count = spec.users.max(1);
        for g in 0..spec.groups {
            let (display, nickname) = generate::group_name(spec.seed, g);
            let mut rng = Stream::new(&[spec.seed, 104, g as u64]);
            let members = (0..user_count)
                .filter(|u| *u == 0 || rng.percent(40))
                .collect();
            let created = self.created + Duration::days(30 + g as i64);
            let site = Site {
                collection_id: rng.uuid(),
                web_id: rng.uuid(),
                url_name: nickname.clone(),
                display_name: display.clone(),
                description: format!("Team site of {display}"),
                is_root: false,
                group: Some(g),
                created,
                drives: Vec::new(),
                life: Life::Active,
                version: 0,
            };
            let site_index = state.add_site(site, &["Documents"], spec.files_per_drive);
            state.add_group(Group {
                id: rng.uuid(),
                display_name: display.clone(),
                description: format!("{display} — collaboration space"),
                mail_nickname: nickname,
                unified: true,
                team: g < spec.teams,
                visibility: if g % 3 == 2 {
                    "Private".to_owned()
                } else {
                    "Public".to_owned()
                },
                created,
                members,
                site: Some(site_index),
                life: Life::Active,
                version: 0,
            });
        }
        for s in 0..spec.security_groups {
            let mut rng = Stream::new(&[spec.seed, 105, s as u64]);
            let members = (0..user_count).filter(|_| rng.percent(30)).collect();
            state.add_group(Group {
                id: rng.uuid(),
                display_name: format!(
                    "SG-{}",
                    ["Finance Approvers", "VPN Users", "Printers", "Contractors"][s as usize % 4]
                ),
                description: "Security group".to_owned(),
                mail_nickname: format!("sg{s}"),
                unified: false,
                team: false,
                visibility: "Private".to_owned(),
                created: self.created + Duration::days(10),
                members,
                site: None,
                life: Life::Active,
                version: 0,
            });
        }
        for c in 0..spec.sites {
            let (display, url) = generate::communication_site_name(c);
            let mut rng = Stream::new(&[spec.seed, 106, c as u64]);
            let site = Site {
                collection_id: rng.uuid(),
                web_id: rng.uuid(),
                url_name: url,
                display_name: display.clone(),
                description: format!("{display} communication site"),
                is_root: false,
                group: None,
                created: self.created + Duration::days(60 + c as i64),
                drives: Vec::new(),
                life: Life::Active,
                version: 0,
            };
            let libraries: &[&str] = if c % 2 == 0 {
                &["Documents", "Site Assets"]
            } else {
                &["Documents"]
            };
            let parent = state.add_site(site, libraries, spec.files_per_drive);
            if c == 0 {
                // One subsite with a library of its own, so "a site" means more than one web.
                let mut rng = Stream::new(&[spec.seed, 110, c as u64]);
                let parent_site = &state.sites[parent as usize];
                let subsite = Site {
                    collection_id: parent_site.collection_id,
                    web_id: rng.uuid(),
                    url_name: format!("{}/projects", parent_site.url_name),
                    display_name: format!("{} Projects", parent_site.display_name),
                    description: "Project workspace".to_owned(),
                    is_root: false,
                    group: None,
                    created: parent_site.created + Duration::days(3),
                    drives: Vec::new(),
                    life: Life::Active,
                    version: 0,
                };
                let child = state.add_site(subsite, &["Documents"], spec.files_per_drive / 2);
                state.site_parents.insert(child, parent);
            }
        }
        self.state = RwLock::new(state);
    }

    pub fn info(&self) -> TenantInfo {
        let state = read(&self.state);
        TenantInfo {
            tenant_id: self.id,
            display_name: self.display_name.clone(),
            domain: self.domain.clone(),
            admin_user_principal_name: state
                .users
                .first()
                .map(|u| u.user_principal_name.clone())
                .unwrap_or_default(),
            admin_password: self.admin_password.clone(),
        }
    }

    pub fn spo_host(&self) -> String {
        format!("{}.sharepoint.com", self.prefix)
    }

    pub fn my_host(&self) -> String {
        format!("{}-my.sharepoint.com", self.prefix)
    }

    /// Site id as Graph spells it: `host,siteCollectionId,webId`.
    pub fn site_id(&self, site: &Site) -> String {
        format!("{},{},{}", self.spo_host(), site.collection_id, site.web_id)
    }

    pub fn site_url(&self, site: &Site) -> String {
        if site.is_root {
            format!("https://{}", self.spo_host())
        } else {
            format!("https://{}/sites/{}", self.spo_host(), site.url_name)
        }
    }

    /// Drive id: `b!` and base64url of a tenant-specific tag and the drive number.
    pub fn drive_id(&self, drive: u32) -> String {
        let tag = generate::hash(&[self.spec.seed, 107, self.index as u64, drive as u64]);
        let mut bytes = tag.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(self.id.as_u128() as u64).to_be_bytes());
        bytes.extend_from_slice(&drive.to_be_bytes());
        format!(
            "b!{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    pub fn parse_drive_id(&self, id: &str) -> Option<u32> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id.strip_prefix("b!")?)
            .ok()?;
        let drive = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
        (self.drive_id(drive) == id).then_some(drive)
    }

    /// Drive item id: 34 upper-case base32 characters like OneDrive for Business.
    pub fn item_id(&self, drive: u32, key: u32) -> String {
        let tag = (generate::hash(&[self.spec.seed, 108, self.index as u64]) as u32).to_be_bytes();
        let mut bytes = Vec::with_capacity(20);
        bytes.extend_from_slice(&tag);
        bytes.extend_from_slice(&drive.to_be_bytes());
        bytes.extend_from_slice(&key.to_be_bytes());
        let check = generate::hash(&[drive as u64, key as u64, self.index as u64]).to_be_bytes();
        bytes.extend_from_slice(&check);
        format!("01{}", base32(&bytes))
    }

    pub fn parse_item_id(&self, id: &str) -> Option<(u32, u32)> {
        let bytes = unbase32(id.strip_prefix("01")?)?;
        let drive = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
        let key = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
        (self.item_id(drive, key) == id).then_some((drive, key))
    }

    /// Mail ids (`AAMk…`): kind, user, key and — for regular ids — the move count.
    pub fn mail_id(&self, kind: u8, user: u32, key: u32, moves: u32) -> String {
        let mut bytes = vec![0x00, 0x03, kind, self.index as u8];
        bytes.extend_from_slice(&user.to_be_bytes());
        bytes.extend_from_slice(&key.to_be_bytes());
        bytes.extend_from_slice(&moves.to_be_bytes());
        bytes.extend_from_slice(
            &(generate::hash(&[
                self.spec.seed,
                109,
                kind as u64,
                user as u64,
                key as u64,
                moves as u64,
            ]) as u32)
                .to_be_bytes(),
        );
        base64::engine::general_purpose::URL_SAFE.encode(bytes)
    }

    pub fn parse_mail_id(&self, id: &str) -> Option<(u8, u32, u32, u32)> {
        let bytes = base64::engine::general_purpose::URL_SAFE.decode(id).ok()?;
        if bytes.len() != 20 || bytes[0] != 0 || bytes[1] != 3 {
            return None;
        }
        let kind = bytes[2];
        let user = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
        let key = u32::from_be_bytes(bytes[8..12].try_into().ok()?);
        let moves = u32::from_be_bytes(bytes[12..16].try_into().ok()?);
        (self.mail_id(kind, user, key, moves) == id).then_some((kind, user, key, moves))
    }

    pub fn mailbox_context(&self, state: &TenantState, user: u32) -> generate::MailboxContext {
        let owner = state.users.get(user as usize);
        generate::MailboxContext {
            seed: self.spec.seed,
            user_index: user,
            user_count: self.spec.users.max(1),
            owner: generate::MailAddress {
                name: owner.map(|u| u.display_name.clone()).unwrap_or_default(),
                address: owner
                    .map(|u| u.user_principal_name.clone())
                    .unwrap_or_default(),
            },
            domain: self.domain.clone(),
            organization: self.spec.organization.clone(),
        }
    }
}

pub mod mail_kind {
    pub const FOLDER: u8 = 1;
    pub const MESSAGE: u8 = 2;
    pub const IMMUTABLE_MESSAGE: u8 = 3;
    pub const ATTACHMENT: u8 = 4;
    pub const EVENT: u8 = 5;
    pub const CONTACT: u8 = 6;
    pub const TASK: u8 = 7;
    pub const NOTE: u8 = 8;
    /// Folders of the archive mailbox (and of its auxiliary archive, which shares their ids).
    pub const ARCHIVE_FOLDER: u8 = 9;
    pub const ARCHIVE_ITEM: u8 = 10;
    /// Group mailboxes: the `user` part of the id is the group's index.
    pub const CONVERSATION: u8 = 11;
    pub const THREAD: u8 = 12;
    pub const POST: u8 = 13;
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | byte as u32;
        bits += 8;
        while bits >= 5 {
            out.push(BASE32[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for ch in text.bytes() {
        let value = BASE32.iter().position(|&c| c == ch)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            out.push(((buffer >> (bits - 8)) & 0xFF) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// What a user reference (id or UPN) points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Active(u32),
    SoftDeleted(u32),
    Missing,
}

impl TenantState {
    /// Takes the next change number.
    pub fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn add_user(&mut self, mut user: User, files: u32, created: DateTime<Utc>) -> u32 {
        let index = self.users.len() as u32;
        user.drive = self.drives.len() as u32;
        self.drives.push(Drive {
            owner: DriveOwner::User(index),
            name: "OneDrive".to_owned(),
            created,
            generated_files: files,
        });
        self.user_keys.insert(user.id.to_string(), index);
        self.user_keys
            .insert(user.user_principal_name.to_ascii_lowercase(), index);
        self.users.push(user);
        index
    }

    pub fn add_group(&mut self, group: Group) -> u32 {
        let index = self.groups.len() as u32;
        self.group_keys.insert(group.id.to_string(), index);
        self.groups.push(group);
        index
    }

    pub fn add_site(&mut self, mut site: Site, libraries: &[&str], files: u32) -> u32 {
        let index = self.sites.len() as u32;
        for library in libraries {
            site.drives.push(self.drives.len() as u32);
            self.drives.push(Drive {
                owner: DriveOwner::Site(index),
                name: (*library).to_owned(),
                created: site.created,
                generated_files: if *library == "Documents" {
                    files
                } else {
                    files / 4
                },
            });
        }
        self.sites.push(site);
        index
    }

    pub fn find_user(&self, key: &str) -> Found {
        match self.user_keys.get(&key.to_ascii_lowercase()) {
            Some(&i) => match self.users[i as usize].life {
                Life::Active => Found::Active(i),
                Life::SoftDeleted(_) => Found::SoftDeleted(i),
                Life::Purged => Found::Missing,
            },
            None => Found::Missing,
        }
    }

    pub fn find_group(&self, key: &str) -> Found {
        match self.group_keys.get(&key.to_ascii_lowercase()) {
            Some(&i) => match self.groups[i as usize].life {
                Life::Active => Found::Active(i),
                Life::SoftDeleted(_) => Found::SoftDeleted(i),
                Life::Purged => Found::Missing,
            },
            None => Found::Missing,
        }
    }

    fn note_soft_delete(&mut self, at: DateTime<Utc>) {
        self.oldest_soft_delete = Some(self.oldest_soft_delete.map_or(at, |old| old.min(at)));
    }

    /// Soft-deletes a user: it leaves `/users`, its mailbox and drive stop answering.
    pub fn soft_delete_user(&mut self, index: u32, now: DateTime<Utc>) -> bool {
        if self.users[index as usize].life != Life::Active {
            return false;
        }
        let version = self.bump();
        let user = &mut self.users[index as usize];
        user.life = Life::SoftDeleted(now);
        user.version = version;
        self.note_soft_delete(now);
        true
    }

    /// Soft-deletes a group. Security groups are deleted permanently at once (§2.3).
    pub fn delete_group(&mut self, index: u32, now: DateTime<Utc>) -> bool {
        if self.groups[index as usize].life != Life::Active {
            return false;
        }
        let version = self.bump();
        let unified = self.groups[index as usize].unified;
        let site = self.groups[index as usize].site;
        let group = &mut self.groups[index as usize];
        group.version = version;
        if unified {
            group.life = Life::SoftDeleted(now);
            self.note_soft_delete(now);
            if let Some(site) = site {
                self.sites[site as usize].life = Life::SoftDeleted(now);
                self.sites[site as usize].version = version;
            }
        } else {
            group.life = Life::Purged;
        }
        true
    }

    pub fn soft_delete_site(&mut self, index: u32, now: DateTime<Utc>) -> bool {
        if self.sites[index as usize].life != Life::Active || self.sites[index as usize].is_root {
            return false;
        }
        let version = self.bump();
        let site = &mut self.sites[index as usize];
        site.life = Life::SoftDeleted(now);
        site.version = version;
        self.note_soft_delete(now);
        true
    }

    pub fn restore_user(&mut self, index: u32) -> bool {
        if !matches!(self.users[index as usize].life, Life::SoftDeleted(_)) {
            return false;
        }
        let version = self.bump();
        let user = &mut self.users[index as usize];
        user.life = Life::Active;
        user.version = version;
        true
    }

    pub fn restore_group(&mut self, index: u32) -> bool {
        if !matches!(self.groups[index as usize].life, Life::SoftDeleted(_)) {
            return false;
        }
        let version = self.bump();
        let group = &mut self.groups[index as usize];
        group.life = Life::Active;
        group.version = version;
        if let Some(site) = group.site {
            self.sites[site as usize].life = Life::Active;
            self.sites[site as usize].version = version;
        }
        true
    }

    pub fn restore_site(&mut self, index: u32) -> bool {
        if !matches!(self.sites[index as usize].life, Life::SoftDeleted(_)) {
            return false;
        }
        let version = self.bump();
        let site = &mut self.sites[index as usize];
        site.life = Life::Active;
        site.version = version;
        true
    }

    pub fn purge_user(&mut self, index: u32) {
        let version = self.bump();
        let user = &mut self.users[index as usize];
        user.life = Life::Purged;
        user.version = version;
        let drive = user.drive;
        self.mailboxes.remove(&index);
        self.items.remove(&index);
        self.drive_overlays.remove(&drive);
    }

    pub fn purge_group(&mut self, index: u32) {
        let version = self.bump();
        let group = &mut self.groups[index as usize];
        group.life = Life::Purged;
        group.version = version;
        if let Some(site) = group.site {
            self.purge_site_at(site, version);
        }
    }

    pub fn purge_site(&mut self, index: u32) {
        let version = self.bump();
        self.purge_site_at(index, version);
    }

    fn purge_site_at(&mut self, index: u32, version: u64) {
        let site = &mut self.sites[index as usize];
        site.life = Life::Purged;
        site.version = version;
        for drive in site.drives.clone() {
            self.drive_overlays.remove(&drive);
        }
    }

    fn purge_before(&mut self, cutoff: DateTime<Utc>) {
        let expired = |life: Life| matches!(life, Life::SoftDeleted(at) if at <= cutoff);
        let users: Vec<u32> = (0..self.users.len() as u32)
            .filter(|&i| expired(self.users[i as usize].life))
            .collect();
        let groups: Vec<u32> = (0..self.groups.len() as u32)
            .filter(|&i| expired(self.groups[i as usize].life))
            .collect();
        let sites: Vec<u32> = (0..self.sites.len() as u32)
            .filter(|&i| expired(self.sites[i as usize].life))
            .collect();
        for i in users {
            self.purge_user(i);
        }
        for i in groups {
            self.purge_group(i);
        }
        for i in sites {
            if self.sites[i as usize].life != Life::Purged {
                self.purge_site(i);
            }
        }
        let lives = self
            .users
            .iter()
            .map(|u| u.life)
            .chain(self.groups.iter().map(|g| g.life))
            .chain(self.sites.iter().map(|s| s.life));
        self.oldest_soft_delete = lives
            .filter_map(|life| {
                if let Life::SoftDeleted(at) = life {
                    Some(at)
                } else {
                    None
                }
            })
            .min();
    }

    /// Whether the owner of a drive is live (a soft-deleted owner's drive answers an error).
    pub fn drive_owner_life(&self, drive: u32) -> Life {
        match self.drives.get(drive as usize).map(|d| d.owner) {
            Some(DriveOwner::User(u)) => self.users[u as usize].life,
            Some(DriveOwner::Site(s)) => self.sites[s as usize].life,
            None => Life::Purged,
        }
    }
}
