//! The catalog: archives, recovery points and the items in each, kept in the database so the
//! console can list, browse and search backups without opening a single pack.
//!
//! An entry carries the range of recovery-point sequence numbers in which its item was present
//! (`valid_from_seq` inclusive, `valid_to_seq` exclusive, `None` = still present in the newest
//! point), so an item unchanged over a year of daily backups costs one row, not 365.
//! The repository is the truth for bytes; this module never reads or writes the repository.

pub(crate) mod entity;
pub mod feed;
pub mod folders;
pub mod usage;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{CustomerId, ItemId, OrgId};

use super::error::{StorageError, StorageResult};
use super::scope::TenantScope;
use entity::{archive, catalog_entry, recovery_point};

macro_rules! storage_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

storage_id!(
    /// One protected item's backups of one workload (a mailbox, a OneDrive, a site).
    ArchiveId
);
storage_id!(
    /// One restic snapshot of an archive.
    RecoveryPointId
);
storage_id!(
    /// The repository of one encrypted protection plan, whose restic password is the customer's.
    EncryptedRepositoryId
);

impl std::str::FromStr for EncryptedRepositoryId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// Which of a customer's restic repositories: its own (random password, sealed by the master
/// key), or an encrypted plan's (the customer's password, also kept sealed so runs go on
/// unattended). An archive lives in one repository for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RepositoryRef {
    Customer(CustomerId),
    Encrypted {
        customer: CustomerId,
        id: EncryptedRepositoryId,
    },
}

impl RepositoryRef {
    pub fn of(customer: CustomerId, encrypted: Option<EncryptedRepositoryId>) -> Self {
        match encrypted {
            Some(id) => Self::Encrypted { customer, id },
            None => Self::Customer(customer),
        }
    }

    pub fn customer(self) -> CustomerId {
        match self {
            Self::Customer(customer) | Self::Encrypted { customer, .. } => customer,
        }
    }

    pub fn encrypted(self) -> Option<EncryptedRepositoryId> {
        match self {
            Self::Customer(_) => None,
            Self::Encrypted { id, .. } => Some(id),
        }
    }

    /// The value of the `repository_id` columns: the customer's id names its own repository.
    pub(crate) fn column(self) -> Uuid {
        match self {
            Self::Customer(customer) => customer.as_uuid(),
            Self::Encrypted { id, .. } => id.0,
        }
    }

    /// Reads a `repository_id` column back (rows older than the column are the customer's).
    pub(crate) fn from_column(customer: CustomerId, column: Option<Uuid>) -> Self {
        match column {
            Some(id) if id != customer.as_uuid() => Self::Encrypted {
                customer,
                id: EncryptedRepositoryId(id),
            },
            _ => Self::Customer(customer),
        }
    }
}

impl fmt::Display for RepositoryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Customer(customer) => write!(f, "{customer}"),
            Self::Encrypted { customer, id } => write!(f, "{customer}-encrypted-{id}"),
        }
    }
}

/// What an archive holds; also the top folder of its snapshots (`/mailbox/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Workload {
    Mailbox,
    ArchiveMailbox,
    OneDrive,
    Site,
    GroupMailbox,
    Team,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Self::Mailbox,
        Self::ArchiveMailbox,
        Self::OneDrive,
        Self::Site,
        Self::GroupMailbox,
        Self::Team,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mailbox => "mailbox",
            Self::ArchiveMailbox => "archive-mailbox",
            Self::OneDrive => "drive",
            Self::Site => "site",
            Self::GroupMailbox => "group-mailbox",
            Self::Team => "team",
        }
    }

    /// The folder at the top of every snapshot of this workload.
    pub fn root(self) -> String {
        format!("/{}", self.as_str())
    }
}

impl FromStr for Workload {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| StorageError::Invalid(format!("unknown workload `{s}`")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Archive {
    pub id: ArchiveId,
    pub customer: CustomerId,
    pub org: OrgId,
    pub item: ItemId,
    pub workload: Workload,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    /// Set when the archive lives in an encrypted plan's repository: reading it needs the
    /// plan's password in the console, and it is never put into the search index.
    pub encrypted_repository: Option<EncryptedRepositoryId>,
}

impl Archive {
    /// The repository that holds this archive.
    pub fn repository(&self) -> RepositoryRef {
        RepositoryRef::of(self.customer, self.encrypted_repository)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoveryPointStatus {
    /// Every item the source listed is in the point.
    Complete,
    /// Some items could not be read; they are listed as failed and missing from the point.
    Partial,
}

impl RecoveryPointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Partial => "partial",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryPoint {
    pub id: RecoveryPointId,
    pub archive: ArchiveId,
    pub customer: CustomerId,
    /// The repository holding its snapshot (its archive's).
    pub repository: RepositoryRef,
    /// Position in its archive: 1 for the first backup, increasing, never reused.
    pub seq: i64,
    /// The restic snapshot id (what `restic snapshots` lists).
    pub snapshot_id: String,
    pub taken_at: DateTime<Utc>,
    pub status: RecoveryPointStatus,
    pub item_count: u64,
    pub failed_count: u64,
    /// Items taken over from the parent point without being read.
    pub reused_count: u64,
    /// Bytes written to the repository by this backup (after deduplication and compression).
    pub bytes_added: u64,
    /// Bytes of all items in the point, before deduplication.
    pub bytes_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ItemKind {
    /// An e-mail message's MIME (`.eml`).
    Message,
    File,
    /// A mailbox item's full-fidelity export stream, whatever its type.
    MailboxItem,
    /// Readable copies of a mailbox's calendar items and contacts (their Graph JSON).
    Event,
    Contact,
    /// A post in a Microsoft 365 group's conversation.
    Post,
    Other,
}

impl ItemKind {
    const ALL: [ItemKind; 7] = [
        Self::Message,
        Self::File,
        Self::MailboxItem,
        Self::Event,
        Self::Contact,
        Self::Post,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::File => "file",
            Self::MailboxItem => "mailbox-item",
            Self::Event => "event",
            Self::Contact => "contact",
            Self::Post => "post",
            Self::Other => "other",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .unwrap_or(Self::Other)
    }
}

/// One item as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// Path inside the archive, relative to its root: `Inbox/AAMk….eml`, `Documents/report.docx`.
    pub path: String,
    pub name: String,
    pub kind: ItemKind,
    pub graph_id: Option<String>,
    pub change_key: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    /// Size as the source reported it (decides whether an item changed).
    pub source_size: Option<u64>,
    /// Bytes as stored (what a download returns).
    pub size: u64,
    pub subject: Option<String>,
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub has_attachments: Option<bool>,
    /// A mailbox item's Exchange message class (`IPM.Note`, `IPM.Appointment`, …).
    pub item_class: Option<String>,
}

/// A child of a browsed folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum BrowseEntry {
    Folder { name: String, path: String },
    Item(CatalogEntry),
}

/// Search inside one recovery point; every given field must match (case-insensitive substring).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub subject: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub file_name: Option<String>,
    pub sent_after: Option<DateTime<Utc>>,
    pub sent_before: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
}

// ---- conversions ----------------------------------------------------------------------------

pub(crate) fn archive_from_row(row: archive::Model) -> StorageResult<Archive> {
    let repository = RepositoryRef::from_column(CustomerId(row.customer_id), row.repository_id);
    Ok(Archive {
        encrypted_repository: repository.encrypted(),
        id: ArchiveId(row.id),
        customer: CustomerId(row.customer_id),
        org: OrgId(row.org_id),
        item: ItemId(row.item_id),
        workload: row.workload.parse()?,
        display_name: row.display_name,
        created_at: row.created_at,
    })
}

pub(crate) fn point_from_row(row: recovery_point::Model) -> RecoveryPoint {
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    RecoveryPoint {
        id: RecoveryPointId(row.id),
        archive: ArchiveId(row.archive_id),
        customer: CustomerId(row.customer_id),
        repository: RepositoryRef::from_column(CustomerId(row.customer_id), row.repository_id),
        seq: row.seq,
        snapshot_id: row.snapshot_id,
        taken_at: row.taken_at,
        status: if row.status == RecoveryPointStatus::Partial.as_str() {
            RecoveryPointStatus::Partial
        } else {
            RecoveryPointStatus::Complete
        },
        item_count: count(row.item_count),
        failed_count: count(row.failed_count),
        reused_count: count(row.reused_count),
        bytes_added: count(row.bytes_added),
        bytes_total: count(row.bytes_total),
    }
}

pub(crate) fn entry_from_row(row: &catalog_entry::Model) -> CatalogEntry {
    CatalogEntry {
        path: row.path.clone(),
        name: row.name.clone(),
        kind: ItemKind::parse(&row.kind),
        graph_id: row.graph_id.clone(),
        change_key: row.change_key.clone(),
        last_modified: row.last_modified,
        source_size: row.source_size.and_then(|size| u64::try_from(size).ok()),
        size: u64::try_from(row.size).unwrap_or(0),
        subject: row.subject.clone(),
        sender: row.sender.clone(),
        recipients: row
            .recipients
            .as_deref()
            .map(|r| {
                r.split('\n')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        sent_at: row.sent_at,
        has_attachments: row.has_attachments,
        item_class: row.item_class.clone(),
    }
}

// ---- queries --------------------------------------------------------------------------------

/// The archives of a customer, including those whose item is gone from Microsoft 365.
pub async fn list_archives(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
) -> StorageResult<Vec<Archive>> {
    archive::Entity::find()
        .filter(archive::Column::CustomerId.eq(scope.tenant().as_uuid()))
        .order_by_asc(archive::Column::DisplayName)
        .all(db)
        .await?
        .into_iter()
        .map(archive_from_row)
        .collect()
}

/// An archive of the scope's customer; another customer's id is *not found*.
pub async fn find_archive(
    db: &impl ConnectionTrait,
    scope: &dyn TenantScope,
    id: ArchiveId,
) -> StorageResult<Archive> {
    let row = archive::Entity::find_by_id(id.0)
        .filter(archive::Column::CustomerId.eq(scope.tenant().as_uuid()))
        .one(db)
        .await?
        .ok_or_else(|| StorageError::not_found(format!("archive {id}")))?;
    archive_from_row(row)
}

/// Recovery points of an archive, oldest first; none for another customer's archive.
pub async fn list_recovery_points(
    db: &impl ConnectionTrait,
    scope: &dyn TenantScope,
    archive_id: ArchiveId,
) -> StorageResult<Vec<RecoveryPoint>> {
    Ok(recovery_point::Entity::find()
        .filter(recovery_point::Column::ArchiveId.eq(archive_id.0))
        .filter(recovery_point::Column::CustomerId.eq(scope.tenant().as_uuid()))
        .order_by_asc(recovery_point::Column::Seq)
        .all(db)
        .await?
        .into_iter()
        .map(point_from_row)
        .collect())
}

/// A recovery point of the scope's customer; another customer's id is *not found*.
pub async fn find_recovery_point(
    db: &impl ConnectionTrait,
    scope: &dyn TenantScope,
    id: RecoveryPointId,
) -> StorageResult<RecoveryPoint> {
    recovery_point::Entity::find_by_id(id.0)
        .filter(recovery_point::Column::CustomerId.eq(scope.tenant().as_uuid()))
        .one(db)
        .await?
        .map(point_from_row)
        .ok_or_else(|| StorageError::not_found(format!("recovery point {id}")))
}

/// The newest recovery point of an archive, if any.
pub(crate) async fn latest_recovery_point(
    db: &impl ConnectionTrait,
    archive_id: ArchiveId,
) -> StorageResult<Option<RecoveryPoint>> {
    Ok(recovery_point::Entity::find()
        .filter(recovery_point::Column::ArchiveId.eq(archive_id.0))
        .order_by_desc(recovery_point::Column::Seq)
        .one(db)
        .await?
        .map(point_from_row))
}

/// Entries present in the recovery point `seq` of an archive.
pub(crate) fn live_at(archive_id: ArchiveId, seq: i64) -> Condition {
    Condition::all()
        .add(catalog_entry::Column::ArchiveId.eq(archive_id.0))
        .add(catalog_entry::Column::ValidFromSeq.lte(seq))
        .add(
            Condition::any()
                .add(catalog_entry::Column::ValidToSeq.is_null())
                .add(catalog_entry::Column::ValidToSeq.gt(seq)),
        )
}

pub(crate) async fn entry_rows_at(
    db: &impl ConnectionTrait,
    archive_id: ArchiveId,
    seq: i64,
) -> StorageResult<Vec<catalog_entry::Model>> {
    Ok(catalog_entry::Entity::find()
        .filter(live_at(archive_id, seq))
        .order_by_asc(catalog_entry::Column::Path)
        .all(db)
        .await?)
}

/// Every item of a recovery point, ordered by path.
pub async fn list_items(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
) -> StorageResult<Vec<CatalogEntry>> {
    let point = find_recovery_point(db, scope, point).await?;
    Ok(entry_rows_at(db, point.archive, point.seq)
        .await?
        .iter()
        .map(entry_from_row)
        .collect())
}

/// One item of a recovery point by its path.
pub async fn find_item(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    path: &str,
) -> StorageResult<CatalogEntry> {
    let point = find_recovery_point(db, scope, point).await?;
    catalog_entry::Entity::find()
        .filter(live_at(point.archive, point.seq))
        .filter(catalog_entry::Column::Path.eq(path))
        .one(db)
        .await?
        .map(|row| entry_from_row(&row))
        .ok_or_else(|| {
            StorageError::not_found(format!("item `{path}` in recovery point {}", point.id))
        })
}

/// The folders and items directly inside `folder` ("" for the top) of a recovery point.
pub async fn browse(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    folder: &str,
) -> StorageResult<Vec<BrowseEntry>> {
    let point = find_recovery_point(db, scope, point).await?;
    let folder = folder.trim_matches('/');
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    let mut query = catalog_entry::Entity::find().filter(live_at(point.archive, point.seq));
    if !prefix.is_empty() {
        query = query.filter(catalog_entry::Column::Path.starts_with(&prefix));
    }
    let rows = query
        .order_by_asc(catalog_entry::Column::Path)
        .all(db)
        .await?;
    let mut folders = BTreeMap::new();
    let mut items = Vec::new();
    for row in &rows {
        let Some(rest) = row.path.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((child, _)) => {
                folders
                    .entry(child.to_string())
                    .or_insert_with(|| format!("{prefix}{child}"));
            }
            None => items.push(BrowseEntry::Item(entry_from_row(row))),
        }
    }
    let mut listing: Vec<BrowseEntry> = folders
        .into_iter()
        .map(|(name, path)| BrowseEntry::Folder { name, path })
        .collect();
    listing.extend(items);
    Ok(listing)
}

/// Items of a recovery point matching every field of `query`.
pub async fn search(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    query: &SearchQuery,
) -> StorageResult<Vec<CatalogEntry>> {
    let point = find_recovery_point(db, scope, point).await?;
    let mut select = catalog_entry::Entity::find().filter(live_at(point.archive, point.seq));
    let contains = |column: catalog_entry::Column, needle: &str| {
        // LIKE is case-sensitive on PostgreSQL and not on SQLite: lower both sides everywhere.
        let pattern = format!("%{}%", escape_like(&needle.to_lowercase()));
        Expr::expr(Func::lower(Expr::col(column)))
            .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\'))
    };
    if let Some(text) = &query.subject {
        select = select.filter(contains(catalog_entry::Column::Subject, text));
    }
    if let Some(text) = &query.sender {
        select = select.filter(contains(catalog_entry::Column::Sender, text));
    }
    if let Some(text) = &query.recipient {
        select = select.filter(contains(catalog_entry::Column::Recipients, text));
    }
    if let Some(text) = &query.file_name {
        select = select.filter(contains(catalog_entry::Column::Name, text));
    }
    if let Some(after) = query.sent_after {
        select = select.filter(catalog_entry::Column::SentAt.gte(after));
    }
    if let Some(before) = query.sent_before {
        select = select.filter(catalog_entry::Column::SentAt.lt(before));
    }
    let rows = select
        .order_by_asc(catalog_entry::Column::Path)
        .limit(query.limit.unwrap_or(500))
        .all(db)
        .await?;
    Ok(rows.iter().map(entry_from_row).collect())
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Number of catalog rows of an archive (to show the range encoding keeps the catalog small).
pub async fn count_entry_rows(
    db: &DatabaseConnection,
    archive_id: ArchiveId,
) -> StorageResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(catalog_entry::Entity::find()
        .filter(catalog_entry::Column::ArchiveId.eq(archive_id.0))
        .count(db)
        .await?)
}

/// An archive with its recovery points summed up, for listing archives without loading points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveSummary {
    pub archive: Archive,
    pub recovery_points: u64,
    pub newest: Option<RecoveryPoint>,
    /// Bytes its backups added to the repository (after deduplication and compression).
    pub bytes_added: u64,
}

/// The archives of a customer with their point counts and newest points, in three queries
/// whatever the number of archives.
pub async fn list_archive_summaries(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
) -> StorageResult<Vec<ArchiveSummary>> {
    use sea_orm::sea_query::{Alias, Query};
    let customer = scope.tenant();
    let archives = list_archives(db, scope).await?;
    // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back so both databases answer an integer.
    let stats: Vec<(Uuid, i64, Option<i64>)> = recovery_point::Entity::find()
        .select_only()
        .column(recovery_point::Column::ArchiveId)
        .column_as(recovery_point::Column::Id.count(), "points")
        .column_as(
            Expr::col(recovery_point::Column::BytesAdded)
                .sum()
                .cast_as(Alias::new("BIGINT")),
            "bytes_added",
        )
        .filter(recovery_point::Column::CustomerId.eq(customer.as_uuid()))
        .group_by(recovery_point::Column::ArchiveId)
        .into_tuple()
        .all(db)
        .await?;
    let stats: std::collections::HashMap<Uuid, (i64, Option<i64>)> = stats
        .into_iter()
        .map(|(archive, points, bytes)| (archive, (points, bytes)))
        .collect();
    let other = Alias::new("newer_point");
    let newest_seq = Query::select()
        .expr(Expr::col((other.clone(), recovery_point::Column::Seq)).max())
        .from_as(recovery_point::Entity, other.clone())
        .and_where(
            Expr::col((other, recovery_point::Column::ArchiveId))
                .equals((recovery_point::Entity, recovery_point::Column::ArchiveId)),
        )
        .to_owned();
    let mut newest: std::collections::HashMap<Uuid, RecoveryPoint> = recovery_point::Entity::find()
        .filter(recovery_point::Column::CustomerId.eq(customer.as_uuid()))
        .filter(
            Expr::col((recovery_point::Entity, recovery_point::Column::Seq))
                .in_subquery(newest_seq),
        )
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.archive_id, point_from_row(row)))
        .collect();
    Ok(archives
        .into_iter()
        .map(|archive| {
            let (points, bytes) = stats.get(&archive.id.0).copied().unwrap_or((0, None));
            ArchiveSummary {
                recovery_points: u64::try_from(points).unwrap_or(0),
                newest: newest.remove(&archive.id.0),
                bytes_added: u64::try_from(bytes.unwrap_or(0)).unwrap_or(0),
                archive,
            }
        })
        .collect())
}

/// Customers that have at least one archive (for the weekly backup check).
pub async fn customers_with_archives(db: &DatabaseConnection) -> StorageResult<Vec<CustomerId>> {
    let customers: Vec<Uuid> = archive::Entity::find()
        .select_only()
        .column(archive::Column::CustomerId)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    Ok(customers.into_iter().map(CustomerId).collect())
}

// ---- browsing a recovery point page by page -------------------------------------------------

/// The order of a folder's item list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOrder {
    /// Sent date, or last change for items without one (files, events).
    Date,
    Sender,
    /// Subject, or name for items without one.
    Subject,
    Size,
    HasAttachments,
    Kind,
    Name,
}

/// One page of the items directly inside a folder of a recovery point.
#[derive(Debug, Clone)]
pub struct FolderPageQuery {
    /// `""` for the top of the archive.
    pub folder: String,
    pub order: ItemOrder,
    pub descending: bool,
    pub offset: u64,
    pub limit: u64,
    /// Leave out a mailbox item's full-fidelity export (`.item`) where the backup also keeps its
    /// readable copy (`.eml` or `.json`) beside it: the list shows each item once.
    pub collapse_exports: bool,
}

#[derive(Debug, Clone)]
pub struct FolderPage {
    pub items: Vec<CatalogEntry>,
    /// Items in the folder (all pages).
    pub total: u64,
}

/// The exclusive upper bound of the paths that start with `prefix` (which ends with `/`): the
/// same string with its last `/` bumped to `0`, the next character. With `path >= prefix AND
/// path < bound` both databases walk the `(archive_id, path)` index instead of matching LIKE.
fn prefix_bound(prefix: &str) -> String {
    let mut bound = prefix.to_string();
    bound.pop();
    bound.push('0');
    bound
}

/// The condition "directly inside `folder`".
fn directly_in(folder: &str) -> Condition {
    let not_deeper = |pattern: String| {
        Expr::col(catalog_entry::Column::Path)
            .not_like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\'))
    };
    if folder.is_empty() {
        return Condition::all().add(not_deeper("%/%".into()));
    }
    let prefix = format!("{folder}/");
    Condition::all()
        .add(catalog_entry::Column::Path.gte(prefix.clone()))
        .add(catalog_entry::Column::Path.lt(prefix_bound(&prefix)))
        .add(not_deeper(format!("{}%/%", escape_like(&prefix))))
}

/// Message classes whose items the mailbox backup also keeps as a readable copy (MIME or JSON);
/// the same rule as the mailbox runner's. An item without a class is a message.
const CLASSES_WITH_READABLE_COPY: [&str; 5] = [
    "IPM.Note",
    "IPM.Schedule.Meeting",
    "REPORT",
    "IPM.Appointment",
    "IPM.Contact",
];

fn export_with_readable_copy() -> Condition {
    let mut class = Condition::any().add(catalog_entry::Column::ItemClass.is_null());
    for prefix in CLASSES_WITH_READABLE_COPY {
        class = class
            .add(catalog_entry::Column::ItemClass.eq(prefix))
            .add(catalog_entry::Column::ItemClass.starts_with(format!("{prefix}.")));
    }
    Condition::all()
        .add(catalog_entry::Column::Kind.eq(ItemKind::MailboxItem.as_str()))
        .add(class)
}

/// One page of the items directly inside a folder, sorted in the database.
pub async fn folder_page(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    query: &FolderPageQuery,
) -> StorageResult<FolderPage> {
    use sea_orm::sea_query::{Order, SimpleExpr};
    let point = find_recovery_point(db, scope, point).await?;
    let folder = query.folder.trim_matches('/');
    let mut select = catalog_entry::Entity::find()
        .filter(live_at(point.archive, point.seq))
        .filter(directly_in(folder));
    if query.collapse_exports {
        select = select.filter(export_with_readable_copy().not());
    }
    // The count comes from the point's folder summary: counting a large folder's rows again
    // on every page would cost as much as sorting them.
    let total = folders::of_point(db, &point)
        .await?
        .into_iter()
        .find(|f| f.path == folder)
        .map_or(0, |f| {
            if query.collapse_exports {
                f.listed
            } else {
                f.entries
            }
        });
    // An empty folder (the top of a mailbox, a folder holding only folders) needs no query, and
    // the query for the top would walk every entry of the archive to find none.
    if total == 0 || query.offset >= total {
        return Ok(FolderPage {
            items: Vec::new(),
            total,
        });
    }
    let order = if query.descending {
        Order::Desc
    } else {
        Order::Asc
    };
    let column = |c: catalog_entry::Column| -> SimpleExpr { Expr::col(c) };
    let key: SimpleExpr = match query.order {
        ItemOrder::Date => Func::coalesce([
            column(catalog_entry::Column::SentAt),
            column(catalog_entry::Column::LastModified),
        ])
        .into(),
        ItemOrder::Sender => Func::lower(Expr::col(catalog_entry::Column::Sender)).into(),
        ItemOrder::Subject => Func::lower(Func::coalesce([
            column(catalog_entry::Column::Subject),
            column(catalog_entry::Column::Name),
        ]))
        .into(),
        ItemOrder::Size => column(catalog_entry::Column::Size),
        ItemOrder::HasAttachments => column(catalog_entry::Column::HasAttachments),
        ItemOrder::Kind => column(catalog_entry::Column::Kind),
        ItemOrder::Name => Func::lower(Expr::col(catalog_entry::Column::Name)).into(),
    };
    let rows = select
        .order_by(key, order.clone())
        .order_by(catalog_entry::Column::Path, order)
        .offset(query.offset)
        .limit(query.limit)
        .all(db)
        .await?;
    Ok(FolderPage {
        items: rows.iter().map(entry_from_row).collect(),
        total,
    })
}

/// Every folder of a recovery point (`Inbox`, `Inbox/Projects`, …), sorted, ancestors included,
/// from the point's folder summary.
pub async fn list_folders(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
) -> StorageResult<Vec<String>> {
    let point = find_recovery_point(db, scope, point).await?;
    Ok(folders::of_point(db, &point)
        .await?
        .into_iter()
        .map(|folder| folder.path)
        .filter(|path| !path.is_empty())
        .collect())
}

/// The items of a recovery point at or below each of `paths` (an item's path, or a folder's),
/// ordered by path: what a download of a selection holds. Unknown paths are *not found*.
pub async fn expand_selection(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    paths: &[String],
) -> StorageResult<Vec<CatalogEntry>> {
    let point = find_recovery_point(db, scope, point).await?;
    let mut found = BTreeMap::new();
    for path in paths {
        let path = path.trim_matches('/');
        let prefix = format!("{path}/");
        let mut wanted = Condition::any().add(catalog_entry::Column::Path.eq(path));
        if !path.is_empty() {
            wanted = wanted.add(
                Condition::all()
                    .add(catalog_entry::Column::Path.gte(prefix.clone()))
                    .add(catalog_entry::Column::Path.lt(prefix_bound(&prefix))),
            );
        }
        let query = catalog_entry::Entity::find().filter(live_at(point.archive, point.seq));
        let query = if path.is_empty() {
            query
        } else {
            query.filter(wanted)
        };
        let rows = query.all(db).await?;
        if rows.is_empty() {
            return Err(StorageError::not_found(format!(
                "`{path}` in recovery point {}",
                point.id
            )));
        }
        for row in &rows {
            found.insert(row.path.clone(), entry_from_row(row));
        }
    }
    Ok(found.into_values().collect())
}

/// The newest recovery point of an archive taken before `before`, if any.
pub async fn point_before(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    archive_id: ArchiveId,
    before: DateTime<Utc>,
) -> StorageResult<Option<RecoveryPoint>> {
    find_archive(db, scope, archive_id).await?;
    Ok(recovery_point::Entity::find()
        .filter(recovery_point::Column::ArchiveId.eq(archive_id.0))
        .filter(recovery_point::Column::CustomerId.eq(scope.tenant().as_uuid()))
        .filter(recovery_point::Column::TakenAt.lt(before))
        .order_by_desc(recovery_point::Column::Seq)
        .one(db)
        .await?
        .map(point_from_row))
}
