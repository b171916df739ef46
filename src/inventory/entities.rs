//! sea-orm entities for organizations, protected items, delta cursors and consent requests
//! (`m20261123_000003_inventory`).

pub mod organization {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "organizations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub customer_id: Uuid,
        /// The Microsoft Entra tenant GUID; one organization belongs to one customer only.
        #[sea_orm(unique)]
        pub tenant_id: String,
        pub display_name: String,
        pub default_domain: String,
        pub initial_domain: String,
        pub added_at: ChronoDateTimeUtc,
        pub last_sync_at: Option<ChronoDateTimeUtc>,
        pub last_sync_outcome: Option<String>,
        pub next_sync_at: ChronoDateTimeUtc,
        /// Items per kind and state as of the last sync (JSON of `items::ItemCounts`), so pages
        /// show counts without counting a large tenant's rows on every request.
        pub item_counts: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// `last_sync_outcome` is "Succeeded: <summary>" or "Failed: <reason>" (written only by
    /// `organizations::record_sync_outcome`).
    pub const SUCCEEDED: &str = "Succeeded: ";
    pub const FAILED: &str = "Failed: ";

    impl Model {
        /// Added on a proven administrator's consent, but its `organization` object has not
        /// been read yet (the first sync does that).
        pub fn is_verifying(&self) -> bool {
            self.initial_domain.is_empty()
        }

        pub fn last_sync_failed(&self) -> bool {
            self.last_sync_outcome
                .as_deref()
                .is_some_and(|o| o.starts_with(FAILED))
        }

        /// The last sync's outcome as a sentence for the console.
        pub fn last_sync_summary(&self) -> String {
            self.last_sync_outcome
                .clone()
                .unwrap_or_else(|| "Not synced yet".into())
        }

        /// Why the last sync failed, when it did.
        pub fn last_sync_failure(&self) -> Option<crate::inventory::failure::SyncFailure> {
            self.last_sync_outcome
                .as_deref()
                .and_then(|o| o.strip_prefix(FAILED))
                .map(crate::inventory::failure::SyncFailure::decode)
        }

        /// What the last successful sync changed, when it succeeded.
        pub fn last_sync_success(&self) -> Option<&str> {
            self.last_sync_outcome
                .as_deref()
                .and_then(|o| o.strip_prefix(SUCCEEDED))
        }
    }
}

pub mod protected_item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "protected_items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        pub kind: String,
        pub graph_id: String,
        pub display_name: String,
        /// Email address for users and groups, web address for sites.
        pub address: String,
        /// A short description: "Microsoft 365 group", "Security group", "Member", "Guest"…
        pub detail: String,
        pub state: String,
        pub has_mailbox: Option<bool>,
        pub has_drive: Option<bool>,
        pub first_seen_at: ChronoDateTimeUtc,
        pub changed_at: ChronoDateTimeUtc,
        /// For inactive items: when Microsoft 365 deleted it (`deletedDateTime`), or, where
        /// Microsoft does not say (sites), when a sync first saw it deleted.
        pub inactive_since: Option<ChronoDateTimeUtc>,
        /// When the user's mailbox and OneDrive were last checked (`None`: never).
        pub checked_at: Option<ChronoDateTimeUtc>,
        /// Why the last check could not finish; the next sync checks again.
        pub check_error: Option<String>,
        /// What the directory says about the user's workloads (`DirectoryHints` as text);
        /// `None` when unknown.
        pub directory_hints: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod directory_cursor {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "directory_cursors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub resource: String,
        pub delta_link: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod consent_request {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consent_requests")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub state: String,
        pub customer_id: Uuid,
        pub user_id: Uuid,
        pub expires_at: ChronoDateTimeUtc,
        /// Set once consent is given: the tenant whose administrator must now sign in.
        pub tenant_id: Option<String>,
        pub nonce: Option<String>,
        pub pkce_verifier: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
