//! The alert row: one per cause and subject while open (`open_key`), kept after it resolves.

pub mod alert {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub customer_id: Uuid,
        /// `AlertCause::code`.
        pub cause: String,
        /// What the cause is about, stably (a plan's id, an item and workload, an organization).
        pub subject_key: String,
        /// The subject as people read it.
        pub subject: String,
        pub message: String,
        /// The console page that shows the cause (the failed run, the organization).
        pub link: Option<String>,
        /// `customer:cause:subject_key` while open; cleared when it resolves.
        pub open_key: Option<String>,
        pub first_seen: ChronoDateTimeUtc,
        pub last_seen: ChronoDateTimeUtc,
        /// How often the cause was seen again (a new failed run of the same plan).
        pub occurrences: i32,
        pub acknowledged_by: Option<String>,
        pub acknowledged_at: Option<ChronoDateTimeUtc>,
        pub resolved_at: Option<ChronoDateTimeUtc>,
        /// `MailState::as_str`.
        pub mail_state: String,
        pub mail_attempts: i32,
        pub mail_next_at: Option<ChronoDateTimeUtc>,
        pub mail_error: Option<String>,
        /// The "resolved" e-mails of this alert are queued (`notify::mailer`).
        pub resolution_mailed: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
