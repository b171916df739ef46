//! The audit log page and sub-partner management: an audit event can belong to a partner (a
//! sub-partner renamed or disabled) instead of a customer, and records the address the change
//! came from; a partner can be disabled (its administrators then cannot sign in).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    PartnerId,
    Address,
}

#[derive(DeriveIden)]
enum Partners {
    Table,
    Disabled,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [
            uuid_null(AuditEvents::PartnerId),
            string_null(AuditEvents::Address),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(AuditEvents::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Partners::Table)
                    .add_column(boolean(Partners::Disabled).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_partner_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::PartnerId)
                    .col(Alias::new("at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("audit_events_partner_at")
                    .table(AuditEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Partners::Table)
                    .drop_column(Partners::Disabled)
                    .to_owned(),
            )
            .await?;
        for column in [AuditEvents::PartnerId, AuditEvents::Address] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AuditEvents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
