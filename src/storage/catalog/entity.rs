//! sea-orm entities for the storage tables created by `m20261123_000002_storage_catalog`.
//! Only `catalog` uses them; the rest of Skyvault sees the domain types in `catalog`.

pub mod repository {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "storage_repository")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub customer_id: Uuid,
        pub location: String,
        pub sealed_password: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod encrypted_repository {
    use sea_orm::entity::prelude::*;

    /// An encrypted plan's repository; outlives the plan (`plan_id` then names a deleted plan).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "storage_encrypted_repository")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub customer_id: Uuid,
        pub plan_id: Uuid,
        pub plan_name: String,
        pub location: String,
        pub sealed_password: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod archive {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "storage_archive")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub customer_id: Uuid,
        pub org_id: Uuid,
        pub item_id: Uuid,
        pub workload: String,
        pub display_name: String,
        pub created_at: DateTimeUtc,
        pub last_seq: i64,
        /// The repository holding the archive for its whole life: the customer's id for the
        /// customer's own repository, an encrypted plan's repository id otherwise.
        pub repository_id: Option<Uuid>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod recovery_point {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "storage_recovery_point")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub archive_id: Uuid,
        pub customer_id: Uuid,
        pub seq: i64,
        pub snapshot_id: String,
        pub taken_at: DateTimeUtc,
        pub status: String,
        pub item_count: i64,
        pub failed_count: i64,
        pub reused_count: i64,
        pub bytes_added: i64,
        pub bytes_total: i64,
        /// What the runner needs to continue incrementally from this point (opaque to storage).
        pub source_state: Option<String>,
        /// The archive's repository (see `archive::Model::repository_id`).
        pub repository_id: Option<Uuid>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod catalog_entry {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "storage_catalog_entry")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub archive_id: Uuid,
        pub valid_from_seq: i64,
        pub valid_to_seq: Option<i64>,
        pub path: String,
        pub name: String,
        pub kind: String,
        pub graph_id: Option<String>,
        pub change_key: Option<String>,
        pub last_modified: Option<DateTimeUtc>,
        pub source_size: Option<i64>,
        pub size: i64,
        pub subject: Option<String>,
        pub sender: Option<String>,
        pub recipients: Option<String>,
        pub sent_at: Option<DateTimeUtc>,
        pub has_attachments: Option<bool>,
        /// A mailbox item's Exchange message class (`IPM.Note`, `IPM.Appointment`, …).
        pub item_class: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod failed_item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "storage_failed_item")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub recovery_point_id: Uuid,
        pub path: String,
        pub graph_id: Option<String>,
        pub reason: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod point_folder {
    use sea_orm::entity::prelude::*;

    /// One folder of a recovery point with its counts (see `catalog::folders`).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "storage_point_folder")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub point_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub path: String,
        pub entries: i64,
        pub listed: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
