//! Alerts: one row per cause and subject (a failed plan, an item not backed up, damage found,
//! consent revoked, storage unreachable). `open_key` is set while the alert is open and cleared
//! when it resolves; its unique index makes a repeat of the same cause update the open alert
//! instead of adding one, from any node. The mail columns track the alert's e-mail delivery
//! with its retries, so an SMTP outage never loses an alert.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Id,
    CustomerId,
    Cause,
    SubjectKey,
    Subject,
    Message,
    Link,
    OpenKey,
    FirstSeen,
    LastSeen,
    Occurrences,
    AcknowledgedBy,
    AcknowledgedAt,
    ResolvedAt,
    MailState,
    MailAttempts,
    MailNextAt,
    MailError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alerts::Table)
                    .if_not_exists()
                    .col(uuid(Alerts::Id).primary_key())
                    .col(uuid(Alerts::CustomerId))
                    .col(string(Alerts::Cause))
                    .col(string(Alerts::SubjectKey))
                    .col(string(Alerts::Subject))
                    .col(text(Alerts::Message))
                    .col(string_null(Alerts::Link))
                    .col(string_null(Alerts::OpenKey))
                    .col(timestamp_with_time_zone(Alerts::FirstSeen))
                    .col(timestamp_with_time_zone(Alerts::LastSeen))
                    .col(integer(Alerts::Occurrences))
                    .col(string_null(Alerts::AcknowledgedBy))
                    .col(timestamp_with_time_zone_null(Alerts::AcknowledgedAt))
                    .col(timestamp_with_time_zone_null(Alerts::ResolvedAt))
                    .col(string(Alerts::MailState))
                    .col(integer(Alerts::MailAttempts))
                    .col(timestamp_with_time_zone_null(Alerts::MailNextAt))
                    .col(text_null(Alerts::MailError))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("alerts_open_key")
                    .table(Alerts::Table)
                    .col(Alerts::OpenKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("alerts_customer_resolved")
                    .table(Alerts::Table)
                    .col(Alerts::CustomerId)
                    .col(Alerts::ResolvedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("alerts_mail_state")
                    .table(Alerts::Table)
                    .col(Alerts::MailState)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alerts::Table).to_owned())
            .await
    }
}
