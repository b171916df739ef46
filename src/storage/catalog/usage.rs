//! Storage used, as the catalog counts it: the bytes each customer's recovery points added to
//! its repository (after deduplication and compression), summed over the points that exist. Points
//! that retention removed no longer count, so the figure for a past day is what those days' points
//! still hold. For the overviews and the usage report; reads only.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::entity::recovery_point;
use crate::ids::CustomerId;
use crate::storage::error::StorageResult;
use crate::storage::scope::TenantScope;

/// Bytes stored for each of `customers` by points taken before `before` (all points when none).
/// The customer ids come from the caller's access (`Access::customers`); one query per 500.
pub async fn stored_bytes(
    db: &DatabaseConnection,
    customers: &[CustomerId],
    before: Option<DateTime<Utc>>,
) -> StorageResult<HashMap<CustomerId, u64>> {
    let ids: Vec<Uuid> = customers.iter().map(|c| c.as_uuid()).collect();
    let mut bytes = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut query = recovery_point::Entity::find()
            .select_only()
            .column(recovery_point::Column::CustomerId)
            // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back so both answer an integer.
            .column_as(
                Expr::col(recovery_point::Column::BytesAdded)
                    .sum()
                    .cast_as(Alias::new("BIGINT")),
                "bytes",
            )
            .filter(recovery_point::Column::CustomerId.is_in(chunk.iter().copied()))
            .group_by(recovery_point::Column::CustomerId);
        if let Some(before) = before {
            query = query.filter(recovery_point::Column::TakenAt.lt(before));
        }
        let rows: Vec<(Uuid, Option<i64>)> = query.into_tuple().all(db).await?;
        bytes.extend(rows.into_iter().map(|(customer, sum)| {
            (
                CustomerId(customer),
                u64::try_from(sum.unwrap_or(0)).unwrap_or(0),
            )
        }));
    }
    Ok(bytes)
}

/// Bytes stored for the scope's customer by points taken before `before` (all when none).
pub async fn stored_bytes_of(
    db: &DatabaseConnection,
    scope: &dyn TenantScope,
    before: Option<DateTime<Utc>>,
) -> StorageResult<u64> {
    let customer = scope.tenant();
    Ok(stored_bytes(db, &[customer], before)
        .await?
        .get(&customer)
        .copied()
        .unwrap_or(0))
}
