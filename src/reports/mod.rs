//! Read-only summaries across inventory, plans, jobs, alerts and the catalog, for the pages that
//! tell a customer or a reseller at a glance whether all is well: the customer overview, the
//! partner's Customers list with each customer's state, the partner's alerts and the monthly
//! usage report a reseller bills from.
//!
//! Every function takes the customers it may read from the caller's access: a `CustomerScope`
//! for one customer, or the ids `Access::customers` returned for a partner. Figures for many
//! customers come from a few aggregate queries whatever their number, never one per customer.
//! Nothing here writes.

pub mod alerts;
pub mod coverage;
pub mod fleet;
pub mod overview;
pub mod runs;
pub mod usage;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Plans(#[from] crate::plans::PlanError),
}

pub type ReportResult<T> = Result<T, ReportError>;

/// Splits ids into chunks small enough for one `IN (...)` list on either database.
pub(crate) const CHUNK: usize = 500;
