//! Listing an organization's protected items: by kind, searched, a page at a time, so a tenant of
//! tens of thousands of users renders its first page as fast as a small one.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::entities::protected_item;
use super::{InventoryError, ItemKind, ItemState, OrgScope};

pub const PAGE_SIZE: u64 = 50;

#[derive(Debug, Clone, Default)]
pub struct ItemQuery {
    pub search: String,
    /// Only items in this state.
    pub state: Option<ItemState>,
    /// Only items of this type ("Member", "Guest", "Microsoft 365 group"…): the `detail` column.
    pub detail: Option<String>,
    pub sort: ItemSort,
    pub descending: bool,
    /// Zero-based.
    pub page: u64,
}

/// The column a list of items is ordered by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ItemSort {
    #[default]
    Name,
    Address,
    Detail,
    State,
}

impl ItemSort {
    pub const ALL: [ItemSort; 4] = [
        ItemSort::Name,
        ItemSort::Address,
        ItemSort::Detail,
        ItemSort::State,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemSort::Name => "name",
            ItemSort::Address => "address",
            ItemSort::Detail => "type",
            ItemSort::State => "status",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sort| sort.as_str() == text)
    }

    fn column(self) -> protected_item::Column {
        match self {
            ItemSort::Name => protected_item::Column::DisplayName,
            ItemSort::Address => protected_item::Column::Address,
            ItemSort::Detail => protected_item::Column::Detail,
            ItemSort::State => protected_item::Column::State,
        }
    }
}

#[derive(Debug)]
pub struct ItemPage {
    pub items: Vec<protected_item::Model>,
    pub total: u64,
    pub page: u64,
    pub pages: u64,
}

pub async fn list_items(
    db: &DatabaseConnection,
    org: &OrgScope,
    kind: ItemKind,
    query: &ItemQuery,
) -> Result<ItemPage, InventoryError> {
    let known_total = stored_counts(org.org()).get(kind.as_str()).map(|c| c.total);
    let mut select = protected_item::Entity::find()
        .filter(protected_item::Column::OrgId.eq(org.id().0))
        .filter(protected_item::Column::Kind.eq(kind.as_str()))
        .filter(protected_item::Column::State.ne(ItemState::Gone.as_str()));
    let needle: String = query
        .search
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '%' | '_' | '\\'))
        .collect();
    if !needle.is_empty() {
        let pattern = format!("%{needle}%");
        select = select.filter(
            Condition::any()
                .add(
                    Expr::expr(Func::lower(Expr::col(protected_item::Column::DisplayName)))
                        .like(pattern.clone()),
                )
                .add(
                    Expr::expr(Func::lower(Expr::col(protected_item::Column::Address)))
                        .like(pattern),
                ),
        );
    }
    if let Some(state) = query.state {
        select = select.filter(protected_item::Column::State.eq(state.as_str()));
    }
    if let Some(detail) = &query.detail {
        select = select.filter(protected_item::Column::Detail.eq(detail.as_str()));
    }
    let filtered = !needle.is_empty() || query.state.is_some() || query.detail.is_some();
    // Unfiltered, the total is the one recorded at the last sync (rows change only then).
    let total = match known_total {
        Some(total) if !filtered => total,
        _ => select.clone().count(db).await?,
    };
    let pages = Ord::max(total.div_ceil(PAGE_SIZE), 1);
    let page = Ord::min(query.page, pages - 1);
    let order = if query.descending {
        sea_orm::Order::Desc
    } else {
        sea_orm::Order::Asc
    };
    let mut select = select.order_by(query.sort.column(), order.clone());
    if query.sort != ItemSort::Name {
        select = select.order_by_asc(protected_item::Column::DisplayName);
    }
    let items = select
        .order_by_asc(protected_item::Column::Id)
        .offset(page * PAGE_SIZE)
        .limit(PAGE_SIZE)
        .all(db)
        .await?;
    Ok(ItemPage {
        items,
        total,
        page,
        pages,
    })
}

/// The item types ("Member", "Guest", "Security group"…) present among an organization's items
/// of one kind, for the type filter.
pub async fn item_types(
    db: &DatabaseConnection,
    org: &OrgScope,
    kind: ItemKind,
) -> Result<Vec<String>, InventoryError> {
    Ok(protected_item::Entity::find()
        .select_only()
        .column(protected_item::Column::Detail)
        .distinct()
        .filter(protected_item::Column::OrgId.eq(org.id().0))
        .filter(protected_item::Column::Kind.eq(kind.as_str()))
        .filter(protected_item::Column::State.ne(ItemState::Gone.as_str()))
        .order_by_asc(protected_item::Column::Detail)
        .into_tuple()
        .all(db)
        .await?)
}

/// Items per kind, and how many of them are inactive (gone items are not counted).
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct KindCount {
    pub total: u64,
    pub inactive: u64,
}

/// Counts per kind (`ItemKind::as_str`), as stored on the organization after each sync.
pub type ItemCounts = HashMap<String, KindCount>;

/// The counts recorded at the organization's last sync (empty before the first).
pub fn stored_counts(org: &crate::inventory::entities::organization::Model) -> ItemCounts {
    serde_json::from_str(&org.item_counts).unwrap_or_default()
}

/// Counts the organization's rows and records the result on it; called when a sync ends.
pub async fn refresh_counts(
    db: &DatabaseConnection,
    org_id: uuid::Uuid,
) -> Result<ItemCounts, InventoryError> {
    use crate::inventory::entities::organization;
    let counts: ItemCounts = count_items(db, org_id)
        .await?
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let text = serde_json::to_string(&counts).unwrap_or_else(|_| "{}".into());
    organization::Entity::update_many()
        .col_expr(organization::Column::ItemCounts, text.into())
        .filter(organization::Column::Id.eq(org_id))
        .exec(db)
        .await?;
    Ok(counts)
}

pub async fn count_items(
    db: &DatabaseConnection,
    org_id: uuid::Uuid,
) -> Result<HashMap<&'static str, KindCount>, InventoryError> {
    let rows: Vec<(String, String, i64)> = protected_item::Entity::find()
        .select_only()
        .column(protected_item::Column::Kind)
        .column(protected_item::Column::State)
        .column_as(protected_item::Column::Id.count(), "n")
        .filter(protected_item::Column::OrgId.eq(org_id))
        .filter(protected_item::Column::State.ne(ItemState::Gone.as_str()))
        .group_by(protected_item::Column::Kind)
        .group_by(protected_item::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    let mut counts: HashMap<&'static str, KindCount> = ItemKind::ALL
        .iter()
        .map(|k| (k.as_str(), KindCount::default()))
        .collect();
    for (kind, state, n) in rows {
        if let Some(kind) = ItemKind::parse(&kind)
            && let Some(count) = counts.get_mut(kind.as_str())
        {
            count.total += n as u64;
            if state == ItemState::Inactive.as_str() {
                count.inactive += n as u64;
            }
        }
    }
    Ok(counts)
}
