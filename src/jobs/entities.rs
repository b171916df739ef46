//! The job row: one sync, backup, restore or check, claimed by a worker under a lease.

pub mod job {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub kind: String,
        pub customer_id: Uuid,
        pub org_id: Option<Uuid>,
        pub status: String,
        pub queued_at: ChronoDateTimeUtc,
        pub started_at: Option<ChronoDateTimeUtc>,
        pub finished_at: Option<ChronoDateTimeUtc>,
        pub lease_until: Option<ChronoDateTimeUtc>,
        pub attempts: i32,
        /// A line saying how far it got, updated while it runs.
        pub progress: Option<String>,
        /// What it did, as a sentence for Activities.
        pub summary: Option<String>,
        pub error: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
