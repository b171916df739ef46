//! Managing console users: one-time password-reset links an administrator issues (only a hash of
//! each token is stored) and the audit log of changes to console users.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PasswordResets {
    Table,
    TokenHash,
    UserId,
    IssuedBy,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    ActorId,
    ActorEmail,
    CustomerId,
    Action,
    Subject,
    Detail,
}

#[derive(DeriveIden)]
enum ConsoleUsers {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PasswordResets::Table)
                    .col(string(PasswordResets::TokenHash).primary_key())
                    .col(uuid(PasswordResets::UserId))
                    .col(uuid(PasswordResets::IssuedBy))
                    .col(timestamp_with_time_zone(PasswordResets::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PasswordResets::Table, PasswordResets::UserId)
                            .to(ConsoleUsers::Table, ConsoleUsers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(uuid(AuditEvents::Id).primary_key())
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(uuid_null(AuditEvents::ActorId))
                    .col(string(AuditEvents::ActorEmail))
                    .col(uuid_null(AuditEvents::CustomerId))
                    .col(string(AuditEvents::Action))
                    .col(string(AuditEvents::Subject))
                    .col(text(AuditEvents::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_customer_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::CustomerId)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvents::Table.into_iden(),
            PasswordResets::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
