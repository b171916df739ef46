//! Open alerts across the customers a partner reaches, for the partner's Alerts page and the
//! customer overview's top few. Reads only; `jobs::alerts` raises and resolves them.

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{CHUNK, ReportResult};
use crate::jobs::alerts::entities::alert;

/// Open alerts of `customers` (ids from the caller's access), the most recently seen first, at
/// most `limit`; and how many are open in all.
pub async fn open_alerts(
    db: &DatabaseConnection,
    customers: &[Uuid],
    limit: u64,
) -> ReportResult<(Vec<alert::Model>, u64)> {
    use sea_orm::PaginatorTrait;
    let mut alerts = Vec::new();
    let mut total = 0;
    for chunk in customers.chunks(CHUNK) {
        let open = || {
            alert::Entity::find()
                .filter(alert::Column::CustomerId.is_in(chunk.iter().copied()))
                .filter(alert::Column::ResolvedAt.is_null())
        };
        total += open().count(db).await?;
        alerts.extend(
            open()
                .order_by_desc(alert::Column::LastSeen)
                .order_by_asc(alert::Column::Id)
                .limit(limit)
                .all(db)
                .await?,
        );
    }
    alerts.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
    alerts.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((alerts, total))
}
