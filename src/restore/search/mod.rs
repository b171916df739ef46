//! Full-text search across every backup of a customer: one tantivy index per customer, kept
//! beside the catalog and rebuilt from the repository when lost.
//!
//! The index follows the catalog as a feed (`storage::catalog::feed`): every catalog row is
//! indexed once (its content never changes: a changed item gets a new row), and the last row id
//! looked at (the customer's or another's, stepped over) is the index's commit payload,
//! committed with the documents, so a crash mid-update resumes where the last commit ended and
//! never indexes a row twice. Which recovery points a hit is in comes from the catalog at query
//! time, so retention needs no index update: rows it removes simply stop being found. The index
//! lives on the node's local disk (under `data_dir/search/<customer>`); a node without it
//! rebuilds it from the repository.

mod index;
mod query;
pub mod text;

pub use index::{IndexReport, SearchIndexes, update_index};
pub use query::{Hit, SearchRequest, SearchResults, search};

/// Why the search index could not be updated or read.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search query: {0}")]
    Query(String),
}
