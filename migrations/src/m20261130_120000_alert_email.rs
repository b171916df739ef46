//! Alert e-mail: the operator's SMTP server (one row; the password sealed with the master key),
//! who receives what (per customer and per partner: console users and extra addresses, for
//! alerts and for the daily summary), and the outbox of e-mails waiting to be sent. Each outbox
//! row is one message to one address with a unique `dedupe_key`, so an alert or a summary is
//! queued once however many nodes sweep at the same moment; workers claim rows with a lease
//! (`claimed_until`) and retry them with backoff up to an attempt limit. `alerts` gains
//! `resolution_mailed`, set once the "resolved" e-mails of an alert are queued.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SmtpSettings {
    Table,
    Id,
    Enabled,
    Host,
    Port,
    Security,
    Username,
    SealedPassword,
    Sender,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum MailRecipientSets {
    Table,
    OwnerId,
    OwnerKind,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum MailRecipients {
    Table,
    Id,
    OwnerId,
    UserId,
    Address,
    Alerts,
    Summary,
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Id,
    DedupeKey,
    Kind,
    CustomerId,
    AlertId,
    Recipient,
    Subject,
    Body,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    ClaimToken,
    LastError,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum Alerts {
    Table,
    ResolutionMailed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SmtpSettings::Table)
                    .if_not_exists()
                    .col(integer(SmtpSettings::Id).primary_key())
                    .col(boolean(SmtpSettings::Enabled))
                    .col(string(SmtpSettings::Host))
                    .col(integer(SmtpSettings::Port))
                    .col(string(SmtpSettings::Security))
                    .col(string(SmtpSettings::Username))
                    .col(text_null(SmtpSettings::SealedPassword))
                    .col(string(SmtpSettings::Sender))
                    .col(timestamp_with_time_zone(SmtpSettings::UpdatedAt))
                    .col(string_null(SmtpSettings::UpdatedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailRecipientSets::Table)
                    .if_not_exists()
                    .col(uuid(MailRecipientSets::OwnerId).primary_key())
                    .col(string(MailRecipientSets::OwnerKind))
                    .col(timestamp_with_time_zone(MailRecipientSets::UpdatedAt))
                    .col(string_null(MailRecipientSets::UpdatedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailRecipients::Table)
                    .if_not_exists()
                    .col(uuid(MailRecipients::Id).primary_key())
                    .col(uuid(MailRecipients::OwnerId))
                    .col(uuid_null(MailRecipients::UserId))
                    .col(string_null(MailRecipients::Address))
                    .col(boolean(MailRecipients::Alerts))
                    .col(boolean(MailRecipients::Summary))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("mail_recipients_owner")
                    .table(MailRecipients::Table)
                    .col(MailRecipients::OwnerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailOutbox::Table)
                    .if_not_exists()
                    .col(uuid(MailOutbox::Id).primary_key())
                    .col(string(MailOutbox::DedupeKey))
                    .col(string(MailOutbox::Kind))
                    .col(uuid_null(MailOutbox::CustomerId))
                    .col(uuid_null(MailOutbox::AlertId))
                    .col(string(MailOutbox::Recipient))
                    .col(string(MailOutbox::Subject))
                    .col(text(MailOutbox::Body))
                    .col(string(MailOutbox::Status))
                    .col(integer(MailOutbox::Attempts))
                    .col(timestamp_with_time_zone(MailOutbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(MailOutbox::ClaimedUntil))
                    .col(uuid_null(MailOutbox::ClaimToken))
                    .col(text_null(MailOutbox::LastError))
                    .col(timestamp_with_time_zone(MailOutbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(MailOutbox::SentAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("mail_outbox_dedupe_key")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::DedupeKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("mail_outbox_due")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::Status)
                    .col(MailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("mail_outbox_alert")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::AlertId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alerts::Table)
                    .add_column(boolean(Alerts::ResolutionMailed).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alerts::Table)
                    .drop_column(Alerts::ResolutionMailed)
                    .to_owned(),
            )
            .await?;
        for table in [
            MailOutbox::Table.into_iden(),
            MailRecipients::Table.into_iden(),
            MailRecipientSets::Table.into_iden(),
            SmtpSettings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
