//! The per-customer index: its schema, where it lives, and bringing it up to date with the
//! catalog.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use tantivy::schema::{
    DateOptions, FAST, Field, INDEXED, STORED, STRING, Schema, TEXT, TantivyDocument,
};
use tantivy::{Index, IndexWriter};

use super::SearchError;
use super::text;
use crate::ids::CustomerId;
use crate::storage::catalog::feed::{self, FeedEntry};
use crate::storage::catalog::{ArchiveId, ItemKind, RecoveryPoint};
use crate::storage::scope::{SystemScope, TenantScope};
use crate::storage::{BackupStorage, read};

/// Catalog rows taken per step; each step is one commit.
const BATCH: u64 = 500;
/// Memory the index writer may use before it flushes a segment.
const WRITER_MEMORY: usize = 32 * 1024 * 1024;

/// Where the customers' indexes live on this node.
#[derive(Debug, Clone)]
pub struct SearchIndexes {
    root: PathBuf,
}

/// The fields of an indexed catalog row.
#[derive(Clone, Copy)]
pub(super) struct Fields {
    /// The catalog row id: what a hit points at.
    pub row: Field,
    pub archive: Field,
    pub kind: Field,
    pub subject: Field,
    pub sender: Field,
    pub recipients: Field,
    pub name: Field,
    pub body: Field,
    /// When the message was sent or the file last modified.
    pub when: Field,
    pub attachments: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let fields = Fields {
            row: builder.add_i64_field("row", INDEXED | STORED | FAST),
            archive: builder.add_text_field("archive", STRING),
            kind: builder.add_text_field("kind", STRING),
            subject: builder.add_text_field("subject", TEXT),
            sender: builder.add_text_field("sender", TEXT),
            recipients: builder.add_text_field("recipients", TEXT),
            name: builder.add_text_field("name", TEXT),
            body: builder.add_text_field("body", TEXT),
            when: builder.add_date_field("when", DateOptions::default().set_indexed().set_fast()),
            attachments: builder.add_u64_field("attachments", INDEXED),
        };
        (builder.build(), fields)
    }

    pub(super) fn of(index: &Index) -> Result<Fields, SearchError> {
        let schema = index.schema();
        let field = |name: &str| schema.get_field(name).map_err(SearchError::Index);
        Ok(Fields {
            row: field("row")?,
            archive: field("archive")?,
            kind: field("kind")?,
            subject: field("subject")?,
            sender: field("sender")?,
            recipients: field("recipients")?,
            name: field("name")?,
            body: field("body")?,
            when: field("when")?,
            attachments: field("attachments")?,
        })
    }
}

impl SearchIndexes {
    /// Indexes under `data_dir/search`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: data_dir.into().join("search"),
        }
    }

    fn dir(&self, customer: CustomerId) -> PathBuf {
        self.root.join(customer.to_string())
    }

    /// The customer's index, created empty when there is none (or when it cannot be opened: it
    /// is rebuilt from the catalog and the repository).
    pub(super) fn open(&self, customer: CustomerId) -> Result<Index, SearchError> {
        let dir = self.dir(customer);
        if dir.join("meta.json").exists() {
            match Index::open_in_dir(&dir) {
                Ok(index) => return Ok(index),
                Err(err) => {
                    tracing::warn!(%customer, "search index unreadable, rebuilding it: {err}");
                    std::fs::remove_dir_all(&dir).map_err(tantivy::TantivyError::from)?;
                }
            }
        }
        crate::private_files::secure_dir(&dir).map_err(tantivy::TantivyError::from)?;
        let (schema, _) = Fields::schema();
        Ok(Index::create_in_dir(&dir, schema)?)
    }

    /// The last catalog row id the customer's index has looked at (0 for none).
    pub(super) fn watermark(index: &Index) -> Result<i64, SearchError> {
        Ok(index
            .load_metas()?
            .payload
            .and_then(|payload| payload.parse().ok())
            .unwrap_or(0))
    }
}

/// What one update of an index did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexReport {
    pub rows_indexed: u64,
    /// Rows whose content was read from the repository (the rest are indexed by their fields).
    pub contents_read: u64,
    /// The other process updating this index held its lock; nothing was done.
    pub busy: bool,
}

/// One update at a time per customer in this process (tantivy's lock keeps other processes out).
fn customer_lock(customer: CustomerId) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<CustomerId, Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(customer)
        .or_default()
        .clone()
}

/// Brings the customer's index up to date with the catalog: every row added since the last
/// update, with the text of its content read from the repository. Runs in a worker after each
/// backup; safe to run again at any time (it resumes from the index's own watermark).
pub async fn update_index(
    storage: &BackupStorage,
    indexes: &SearchIndexes,
    customer: CustomerId,
) -> Result<IndexReport, SearchError> {
    // The index is the customer's own and is updated by workers, for the customer.
    let scope = SystemScope::worker(customer, "search index");
    let lock = customer_lock(customer);
    let _held = lock.lock().await;
    let index = {
        let indexes = indexes.clone();
        tokio::task::spawn_blocking(move || indexes.open(customer))
            .await
            .map_err(|err| SearchError::Query(err.to_string()))??
    };
    let fields = Fields::of(&index)?;
    let mut writer: IndexWriter<TantivyDocument> = match index.writer(WRITER_MEMORY) {
        Ok(writer) => writer,
        Err(tantivy::TantivyError::LockFailure(..)) => {
            return Ok(IndexReport {
                busy: true,
                ..IndexReport::default()
            });
        }
        Err(err) => return Err(err.into()),
    };
    let mut report = IndexReport::default();
    let mut after = SearchIndexes::watermark(&index)?;
    let mut points: HashMap<ArchiveId, Vec<RecoveryPoint>> = HashMap::new();
    let archives: HashMap<ArchiveId, String> =
        crate::storage::catalog::list_archives(storage.db(), &scope)
            .await?
            .into_iter()
            .map(|archive| (archive.id, archive.workload.root()))
            .collect();
    loop {
        let feed::FeedBatch {
            entries: batch,
            scanned_to,
        } = feed::entries_after(storage.db(), &scope, after, BATCH).await?;
        let Some(last) = scanned_to else {
            break;
        };
        let contents = read_contents(storage, &scope, &batch, &mut points, &archives).await?;
        report.contents_read += contents.len() as u64;
        for entry in batch.iter().filter(|entry| indexed(entry)) {
            let body = contents
                .get(&entry.row_id)
                .map(|bytes| text::extract(&entry.entry.path, bytes))
                .unwrap_or_default();
            writer.add_document(document(&fields, entry, &body))?;
            report.rows_indexed += 1;
        }
        // The watermark is committed with the documents it covers.
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&last.to_string());
        commit.commit()?;
        after = last;
    }
    tokio::task::spawn_blocking(move || writer.wait_merging_threads())
        .await
        .map_err(|err| SearchError::Query(err.to_string()))??;
    Ok(report)
}

/// Rows a person searches for: the export stream beside a message's `.eml` is the same item in
/// a format only Exchange reads, so it is not indexed twice.
fn indexed(entry: &FeedEntry) -> bool {
    !(entry.entry.kind == ItemKind::MailboxItem || entry.entry.path.ends_with(".item"))
}

fn document(fields: &Fields, entry: &FeedEntry, body: &str) -> TantivyDocument {
    let item = &entry.entry;
    let mut doc = TantivyDocument::default();
    doc.add_i64(fields.row, entry.row_id);
    doc.add_text(fields.archive, entry.archive.to_string());
    doc.add_text(fields.kind, item.kind.as_str());
    doc.add_text(fields.name, &item.name);
    for (field, value) in [
        (fields.subject, &item.subject),
        (fields.sender, &item.sender),
    ] {
        if let Some(value) = value {
            doc.add_text(field, value);
        }
    }
    for recipient in &item.recipients {
        doc.add_text(fields.recipients, recipient);
    }
    if !body.is_empty() {
        doc.add_text(fields.body, body);
    }
    if let Some(when) = item.sent_at.or(item.last_modified) {
        doc.add_date(
            fields.when,
            tantivy::DateTime::from_timestamp_secs(when.timestamp()),
        );
    }
    doc.add_u64(
        fields.attachments,
        u64::from(item.has_attachments == Some(true)),
    );
    doc
}

/// Reads the content of the batch's rows that have words in them, grouped by the recovery point
/// each row first appeared in (one repository open per point). A row whose first point has been
/// removed by retention is read from the oldest point that still holds it.
async fn read_contents(
    storage: &BackupStorage,
    scope: &SystemScope,
    batch: &[FeedEntry],
    points: &mut HashMap<ArchiveId, Vec<RecoveryPoint>>,
    roots: &HashMap<ArchiveId, String>,
) -> Result<HashMap<i64, Vec<u8>>, SearchError> {
    let mut wanted: BTreeMap<(ArchiveId, i64), Vec<&FeedEntry>> = BTreeMap::new();
    for entry in batch {
        if !indexed(entry)
            || !text::has_text(&entry.entry.path)
            || entry.entry.size > text::MAX_READ
        {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = points.entry(entry.archive) {
            slot.insert(feed::points_of(storage.db(), scope, entry.archive).await?);
        }
        let holder = points[&entry.archive].iter().find(|point| {
            point.seq >= entry.valid_from_seq && entry.valid_to_seq.is_none_or(|to| point.seq < to)
        });
        if let Some(point) = holder {
            wanted
                .entry((entry.archive, point.seq))
                .or_default()
                .push(entry);
        }
    }
    let mut contents = HashMap::new();
    for ((archive, seq), entries) in wanted {
        let (Some(point), Some(root)) = (
            points[&archive].iter().find(|point| point.seq == seq),
            roots.get(&archive),
        ) else {
            continue;
        };
        let by_path: HashMap<&str, i64> = entries
            .iter()
            .map(|entry| (entry.entry.path.as_str(), entry.row_id))
            .collect();
        let paths = entries
            .iter()
            .map(|entry| entry.entry.path.clone())
            .collect();
        match read::read_small_items(storage, point, root, paths, text::MAX_READ).await {
            Ok(items) => {
                for (path, bytes) in items {
                    if let Some(row) = by_path.get(path.as_str()) {
                        contents.insert(*row, bytes);
                    }
                }
            }
            // Unreadable content (a damaged pack) leaves the rows findable by their fields;
            // the backup check reports the damage.
            Err(err) => {
                tracing::warn!(customer = %scope.tenant(), %archive, "search index: content unread: {err}")
            }
        }
    }
    Ok(contents)
}
