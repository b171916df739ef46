//! sea-orm entities of the alert e-mail tables (`m20261130_120000_alert_email`).

pub mod smtp_settings {
    use sea_orm::entity::prelude::*;

    /// The operator's mail server: one row (`id` 1), absent until first saved.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "smtp_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub enabled: bool,
        pub host: String,
        pub port: i32,
        /// `Security::as_str`.
        pub security: String,
        pub username: String,
        /// Sealed with the master key under `smtp::PASSWORD_CONTEXT`; never shown back.
        pub sealed_password: Option<String>,
        pub sender: String,
        pub updated_at: ChronoDateTimeUtc,
        pub updated_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod mail_recipient_set {
    use sea_orm::entity::prelude::*;

    /// Present once a customer or partner has chosen its recipients; without it, its
    /// administrators receive alerts (the default).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mail_recipient_sets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub owner_id: Uuid,
        /// `customer` or `partner`.
        pub owner_kind: String,
        pub updated_at: ChronoDateTimeUtc,
        pub updated_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod mail_recipient {
    use sea_orm::entity::prelude::*;

    /// One recipient of a set: a console user (`user_id`, mailed at their current address) or
    /// an extra address.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mail_recipients")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub owner_id: Uuid,
        pub user_id: Option<Uuid>,
        pub address: Option<String>,
        pub alerts: bool,
        pub summary: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod mail_outbox {
    use sea_orm::entity::prelude::*;

    /// One e-mail to one address, queued until the mail server accepts it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mail_outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// What this message is, stably (`alert:<id>:opened:<address>`): queued once.
        pub dedupe_key: String,
        /// `MailKind::as_str`.
        pub kind: String,
        pub customer_id: Option<Uuid>,
        pub alert_id: Option<Uuid>,
        pub recipient: String,
        pub subject: String,
        pub body: String,
        /// `OutboxStatus::as_str`.
        pub status: String,
        pub attempts: i32,
        pub next_attempt_at: ChronoDateTimeUtc,
        /// While a worker sends it: its lease; a lapsed one is claimed again.
        pub claimed_until: Option<ChronoDateTimeUtc>,
        pub claim_token: Option<Uuid>,
        pub last_error: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub sent_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
