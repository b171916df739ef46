//! A recovery point's source state: what a runner needs to continue incrementally from it (the
//! delta links of a mailbox's folders, of a drive). Kept on the point itself so it is written in
//! the same transaction: a crash can never leave links that skip changes the point lacks.
//! Also whether a catalogued message has attachments and a mailbox item's Exchange message class
//! (`IPM.Note`, `IPM.Appointment`, `IPM.Task`…), which browsing and search filter on.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StorageRecoveryPoint {
    Table,
    SourceState,
}

#[derive(DeriveIden)]
enum StorageCatalogEntry {
    Table,
    HasAttachments,
    ItemClass,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(StorageRecoveryPoint::Table)
                    .add_column(text_null(StorageRecoveryPoint::SourceState))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StorageCatalogEntry::Table)
                    .add_column(boolean_null(StorageCatalogEntry::HasAttachments))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StorageCatalogEntry::Table)
                    .add_column(string_null(StorageCatalogEntry::ItemClass))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(StorageCatalogEntry::Table)
                    .drop_column(StorageCatalogEntry::ItemClass)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StorageCatalogEntry::Table)
                    .drop_column(StorageCatalogEntry::HasAttachments)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StorageRecoveryPoint::Table)
                    .drop_column(StorageRecoveryPoint::SourceState)
                    .to_owned(),
            )
            .await
    }
}
