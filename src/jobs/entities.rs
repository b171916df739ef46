//! The job row (one sync, plan run, retention, prune or check, claimed by a worker under a
//! lease) and the per-item outcomes of a plan run.

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
        /// Claims so far; also the fencing token of the current claim: a worker may record an
        /// outcome only while the row still carries the attempt it claimed.
        pub attempts: i32,
        /// A line saying how far it got, updated while it runs.
        pub progress: Option<String>,
        /// What it did, as a sentence for Activities.
        pub summary: Option<String>,
        pub error: Option<String>,
        /// The kind's typed payload as JSON (`queue::JobPayload`).
        pub payload: Option<String>,
        /// Set while the job is queued or running, so the same work is queued once; cleared when
        /// it ends.
        pub unique_key: Option<String>,
        /// A retry waits until then.
        pub not_before: Option<ChronoDateTimeUtc>,
        pub max_attempts: i32,
        /// The Microsoft 365 or storage resource the job occupies; two jobs of one resource never
        /// run at once, jobs of different resources do.
        pub resource_key: Option<String>,
        pub plan_id: Option<Uuid>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job_item {
    use sea_orm::entity::prelude::*;

    /// How one protected item's workload ended in a plan run.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub job_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub item_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub workload: String,
        /// `ItemOutcome::as_str`.
        pub status: String,
        pub detail: String,
        pub finished_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
