//! Workload checks that can fail per user and are retried: when a user's mailbox and OneDrive
//! were last checked, why the last check could not finish, and what the directory itself says
//! about the user (a mail address, Exchange and SharePoint plans), so checks it answers need not
//! be sent.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProtectedItems {
    Table,
    CheckedAt,
    CheckError,
    DirectoryHints,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [
            timestamp_with_time_zone_null(ProtectedItems::CheckedAt),
            text_null(ProtectedItems::CheckError),
            string_null(ProtectedItems::DirectoryHints),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(ProtectedItems::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ProtectedItems::CheckedAt,
            ProtectedItems::CheckError,
            ProtectedItems::DirectoryHints,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ProtectedItems::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
