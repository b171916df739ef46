//! The folders of each recovery point with their item counts, so opening a point of a large
//! mailbox reads a few dozen rows instead of reducing every catalog row live at the point to
//! its folder (200,000 rows for a 100,000-item mailbox). A point's catalog view never changes
//! after it is recorded, so a summary made once stays true; it is made when the point is
//! recorded, or on first open for points recorded before this table existed.
//!
//! - `storage_point_folder`: one row per folder of a point (ancestors included, `""` for the
//!   top), `entries` = catalog rows directly in it, `listed` = what the browse list shows there
//!   (a mailbox item's export is left out where its readable copy is beside it). Rows go with
//!   their point.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StoragePointFolder {
    Table,
    PointId,
    Path,
    Entries,
    Listed,
}

#[derive(DeriveIden)]
enum StorageRecoveryPoint {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StoragePointFolder::Table)
                    .col(uuid(StoragePointFolder::PointId))
                    .col(text(StoragePointFolder::Path))
                    .col(big_integer(StoragePointFolder::Entries))
                    .col(big_integer(StoragePointFolder::Listed))
                    .primary_key(
                        Index::create()
                            .col(StoragePointFolder::PointId)
                            .col(StoragePointFolder::Path),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(StoragePointFolder::Table, StoragePointFolder::PointId)
                            .to(StorageRecoveryPoint::Table, StorageRecoveryPoint::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StoragePointFolder::Table).to_owned())
            .await
    }
}
