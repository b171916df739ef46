//! The master key's check value: one row, written at the first start, that lets Skyvault tell at
//! every start whether the key file it was given is the one that sealed the database's secrets.
//! It holds a keyed hash of a fixed label under the key, never the key itself.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MasterKeyCheck {
    Table,
    Id,
    CheckValue,
    RecordedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MasterKeyCheck::Table)
                    // Always 1: the primary key makes a second row impossible, so two processes
                    // starting at once cannot record two different keys.
                    .col(integer(MasterKeyCheck::Id).primary_key())
                    .col(string(MasterKeyCheck::CheckValue))
                    .col(timestamp_with_time_zone(MasterKeyCheck::RecordedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MasterKeyCheck::Table).to_owned())
            .await
    }
}
