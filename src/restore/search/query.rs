//! Asking a customer's index: fields as a person fills them in, hits as catalog rows with the
//! archive and recovery points they are in.

use std::collections::HashMap;
use std::ops::Bound;

use chrono::NaiveDate;
use tantivy::collector::TopDocs;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Index, Term};

use super::SearchError;
use super::index::{Fields, SearchIndexes};
use crate::accounts::access::CustomerScope;
use crate::storage::BackupStorage;
use crate::storage::catalog::feed;
use crate::storage::catalog::{Archive, ArchiveId, CatalogEntry, ItemKind, RecoveryPoint};

/// Hits shown at most; a person narrows the search rather than paging through thousands.
pub const MAX_HITS: usize = 200;

/// What to look for; empty fields match everything, and every given field must match.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Words anywhere: subject, body, names, people.
    pub text: String,
    pub subject: String,
    pub sender: String,
    pub recipient: String,
    pub file_name: String,
    /// Sent or modified on or after this day (UTC).
    pub after: Option<NaiveDate>,
    /// Sent or modified on or before this day (UTC).
    pub before: Option<NaiveDate>,
    pub has_attachments: bool,
    pub kind: Option<ItemKind>,
    pub archive: Option<ArchiveId>,
}

impl SearchRequest {
    pub fn is_empty(&self) -> bool {
        [
            &self.text,
            &self.subject,
            &self.sender,
            &self.recipient,
            &self.file_name,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
            && self.after.is_none()
            && self.before.is_none()
            && !self.has_attachments
            && self.kind.is_none()
    }
}

/// One item found: the catalog row, its archive and the recovery points that hold it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub archive: Archive,
    pub entry: CatalogEntry,
    /// The oldest and newest recovery points holding this version of the item.
    pub oldest: RecoveryPoint,
    pub newest: RecoveryPoint,
    /// Whether the archive's newest point still holds this version.
    pub current: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    /// Matches in the index (more than `hits` when cut at `MAX_HITS`).
    pub total: usize,
    /// Catalog rows not indexed yet: results may miss the newest backups.
    pub behind: u64,
}

/// Searches every backup of the signed-in user's customer (or one archive of it).
pub async fn search(
    storage: &BackupStorage,
    indexes: &SearchIndexes,
    scope: &CustomerScope,
    request: &SearchRequest,
) -> Result<SearchResults, SearchError> {
    let customer = scope.id();
    let (rows, total, watermark) = {
        let indexes = indexes.clone();
        let request = request.clone();
        tokio::task::spawn_blocking(move || {
            let index = indexes.open(customer)?;
            let watermark = SearchIndexes::watermark(&index)?;
            let (rows, total) = find_rows(&index, &request)?;
            Ok::<_, SearchError>((rows, total, watermark))
        })
        .await
        .map_err(|err| SearchError::Query(err.to_string()))??
    };
    let behind = feed::pending_after(storage.db(), scope, watermark).await?;
    // The catalog is asked under the customer's scope: a row of another customer (impossible in
    // this customer's index, but the index is a file on disk) is never shown.
    let mut entries = feed::entries_by_ids(storage.db(), scope, &rows).await?;
    let rank: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    entries.sort_by_key(|entry| rank.get(&entry.row_id).copied().unwrap_or(usize::MAX));
    let archives: HashMap<ArchiveId, Archive> =
        crate::storage::catalog::list_archives(storage.db(), scope)
            .await?
            .into_iter()
            .map(|archive| (archive.id, archive))
            .collect();
    let mut points: HashMap<ArchiveId, Vec<RecoveryPoint>> = HashMap::new();
    let mut hits = Vec::new();
    for entry in entries {
        let Some(archive) = archives.get(&entry.archive) else {
            continue;
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = points.entry(entry.archive) {
            slot.insert(feed::points_of(storage.db(), scope, entry.archive).await?);
        }
        let all = &points[&entry.archive];
        let holding: Vec<&RecoveryPoint> = all
            .iter()
            .filter(|point| {
                point.seq >= entry.valid_from_seq
                    && entry.valid_to_seq.is_none_or(|to| point.seq < to)
            })
            .collect();
        // A version whose points were all removed by retention is no longer in any backup.
        let (Some(oldest), Some(newest)) = (holding.first(), holding.last()) else {
            continue;
        };
        hits.push(Hit {
            archive: archive.clone(),
            current: all.last().map(|p| p.id) == Some(newest.id),
            oldest: (*oldest).clone(),
            newest: (*newest).clone(),
            entry: entry.entry,
        });
    }
    Ok(SearchResults {
        hits,
        total,
        behind,
    })
}

/// The catalog row ids matching `request`, best first, and how many matched in all.
fn find_rows(index: &Index, request: &SearchRequest) -> Result<(Vec<i64>, usize), SearchError> {
    let fields = Fields::of(index)?;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let words = |text: &str, over: Vec<Field>| -> Option<Box<dyn Query>> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let mut parser = QueryParser::for_index(index, over);
        parser.set_conjunction_by_default();
        // Lenient: a stray quote or colon in what a person typed is not an error.
        Some(parser.parse_query_lenient(text).0)
    };
    let everything = vec![
        fields.subject,
        fields.body,
        fields.name,
        fields.sender,
        fields.recipients,
    ];
    for query in [
        words(&request.text, everything),
        words(&request.subject, vec![fields.subject]),
        words(&request.sender, vec![fields.sender]),
        words(&request.recipient, vec![fields.recipients]),
        words(&request.file_name, vec![fields.name]),
    ]
    .into_iter()
    .flatten()
    {
        clauses.push((Occur::Must, query));
    }
    let term = |field: Field, value: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    };
    if let Some(kind) = request.kind {
        clauses.push((Occur::Must, term(fields.kind, kind.as_str())));
    }
    if let Some(archive) = request.archive {
        clauses.push((Occur::Must, term(fields.archive, &archive.to_string())));
    }
    if request.has_attachments {
        clauses.push((
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_u64(fields.attachments, 1),
                IndexRecordOption::Basic,
            )),
        ));
    }
    if request.after.is_some() || request.before.is_some() {
        let day = |date: NaiveDate, days: i64| {
            let at = date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
                + chrono::Duration::days(days);
            Term::from_field_date(
                fields.when,
                tantivy::DateTime::from_timestamp_secs(at.timestamp()),
            )
        };
        let lower = request
            .after
            .map_or(Bound::Unbounded, |d| Bound::Included(day(d, 0)));
        // "Before" names a day the person wants included: up to the start of the next one.
        let upper = request
            .before
            .map_or(Bound::Unbounded, |d| Bound::Excluded(day(d, 1)));
        clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
    }
    let query: Box<dyn Query> = if clauses.is_empty() {
        Box::new(AllQuery)
    } else {
        Box::new(BooleanQuery::new(clauses))
    };
    let reader = index.reader()?;
    let searcher = reader.searcher();
    // Two passes rather than one collector pair: alone, the top-docs collector skips blocks of
    // postings that cannot reach the best 200 (a common word matches a quarter of a million
    // messages), and counting alone needs no scores (a single word is counted from its postings
    // header without reading them).
    let top = searcher.search(&query, &TopDocs::with_limit(MAX_HITS).order_by_score())?;
    let total = query.count(&searcher)?;
    // The row id is read from its fast field (a column per segment) rather than from the stored
    // document, which would decompress a block of the document store for every hit.
    let mut columns = HashMap::new();
    let mut rows = Vec::with_capacity(top.len());
    for (_, address) in top {
        let column = match columns.entry(address.segment_ord) {
            std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(
                searcher
                    .segment_reader(address.segment_ord)
                    .fast_fields()
                    .i64("row")?,
            ),
        };
        if let Some(row) = column.first(address.doc_id) {
            rows.push(row);
        }
    }
    Ok((rows, total))
}
