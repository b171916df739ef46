//! Microsoft 365 organizations of a customer and their protected items: adding an organization
//! after admin consent, discovery sync, and each item's life cycle — *active*, *inactive*
//! (deleted in Microsoft 365 but still returned from deleted items: shown grayed out, never backed
//! up) and *gone* (no longer returned: hidden from the organization's pages and never backed up,
//! but its row stays, so the plans that chose it and the archives of its backups keep naming it;
//! it becomes active again if Microsoft 365 returns it).
//! Every function takes a `CustomerScope` or an organization found through one.

pub mod consent;
pub mod entities;
pub mod failure;
pub mod items;
pub mod organizations;
pub mod sync;

pub use organizations::OrgScope;

/// What a protected item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    User,
    Group,
    Team,
    Site,
}

impl ItemKind {
    pub const ALL: [ItemKind; 4] = [
        ItemKind::User,
        ItemKind::Group,
        ItemKind::Site,
        ItemKind::Team,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::User => "user",
            ItemKind::Group => "group",
            ItemKind::Team => "team",
            ItemKind::Site => "site",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Where an item is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Active,
    Inactive,
    /// No longer returned by Microsoft 365 at all; kept as a row, never listed or backed up.
    Gone,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Active => "active",
            ItemState::Inactive => "inactive",
            ItemState::Gone => "gone",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [ItemState::Active, ItemState::Inactive, ItemState::Gone]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("not found")]
    NotFound,
    #[error("you do not have permission to do that")]
    Forbidden,
    #[error("this Microsoft 365 organization is already protected by another customer")]
    TenantTakenByAnotherCustomer,
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Graph(#[from] crate::m365::GraphError),
}

impl From<crate::accounts::AccountError> for InventoryError {
    fn from(err: crate::accounts::AccountError) -> Self {
        match err {
            crate::accounts::AccountError::Forbidden => InventoryError::Forbidden,
            crate::accounts::AccountError::Database(db) => InventoryError::Database(db),
            _ => InventoryError::NotFound,
        }
    }
}
