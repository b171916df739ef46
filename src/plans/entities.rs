//! sea-orm entities for protection plans and their chosen items (`m20261129_200000_plans_jobs`).
//! Only `plans` writes them.

pub mod plan {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "protection_plans")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub customer_id: Uuid,
        pub org_id: Uuid,
        pub name: String,
        pub enabled: bool,
        /// Workloads as their storage names, comma-separated (`Workload::as_str`).
        pub workloads: String,
        /// Item kinds protected as a whole ("All users"), comma-separated (`ItemKind::as_str`).
        pub all_kinds: String,
        /// "points" or "days".
        pub retention_kind: String,
        pub retention_value: i32,
        /// Minutes after midnight UTC, a multiple of 15, chosen by Skyvault.
        pub start_minute: i32,
        /// Seconds of backup work one run is expected to take (items × seconds per item).
        pub estimated_load: i64,
        /// Learned from earlier runs; a default until the first.
        pub seconds_per_item: i32,
        pub next_run_at: ChronoDateTimeUtc,
        pub last_run_at: Option<ChronoDateTimeUtc>,
        /// Raised by every save: a save made from an older version is refused.
        pub version: i32,
        pub created_at: ChronoDateTimeUtc,
        /// The plan's own repository when it has a customer encryption password; set once at
        /// creation, never changed.
        pub encrypted_repository_id: Option<Uuid>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod plan_item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "plan_items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub plan_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub item_id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
