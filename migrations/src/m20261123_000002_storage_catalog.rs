//! Backup storage catalog: repositories (one per customer, password sealed with the master key),
//! archives, recovery points, catalog entries and failed items. It depends on no other migration:
//! `customer_id` is a plain UUID column so storage can be migrated and tested on its own.
//!
//! Catalog entries carry a validity range of recovery-point sequence numbers
//! (`valid_from_seq` inclusive, `valid_to_seq` exclusive, NULL = still present), so an item present
//! in many consecutive recovery points costs one row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StorageRepository {
    Table,
    CustomerId,
    Location,
    SealedPassword,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StorageArchive {
    Table,
    Id,
    CustomerId,
    OrgId,
    ItemId,
    Workload,
    DisplayName,
    CreatedAt,
    LastSeq,
}

#[derive(DeriveIden)]
enum StorageRecoveryPoint {
    Table,
    Id,
    ArchiveId,
    CustomerId,
    Seq,
    SnapshotId,
    TakenAt,
    Status,
    ItemCount,
    FailedCount,
    ReusedCount,
    BytesAdded,
    BytesTotal,
}

#[derive(DeriveIden)]
enum StorageCatalogEntry {
    Table,
    Id,
    ArchiveId,
    ValidFromSeq,
    ValidToSeq,
    Path,
    Name,
    Kind,
    GraphId,
    ChangeKey,
    LastModified,
    SourceSize,
    Size,
    Subject,
    Sender,
    Recipients,
    SentAt,
}

#[derive(DeriveIden)]
enum StorageFailedItem {
    Table,
    Id,
    RecoveryPointId,
    Path,
    GraphId,
    Reason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StorageRepository::Table)
                    .col(uuid(StorageRepository::CustomerId).primary_key())
                    .col(text(StorageRepository::Location))
                    .col(text(StorageRepository::SealedPassword))
                    .col(timestamp_with_time_zone(StorageRepository::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StorageArchive::Table)
                    .col(uuid(StorageArchive::Id).primary_key())
                    .col(uuid(StorageArchive::CustomerId))
                    .col(uuid(StorageArchive::OrgId))
                    .col(uuid(StorageArchive::ItemId))
                    .col(string_len(StorageArchive::Workload, 32))
                    .col(text(StorageArchive::DisplayName))
                    .col(timestamp_with_time_zone(StorageArchive::CreatedAt))
                    .col(big_integer(StorageArchive::LastSeq).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_storage_archive_item_workload")
                    .table(StorageArchive::Table)
                    .col(StorageArchive::CustomerId)
                    .col(StorageArchive::ItemId)
                    .col(StorageArchive::Workload)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StorageRecoveryPoint::Table)
                    .col(uuid(StorageRecoveryPoint::Id).primary_key())
                    .col(uuid(StorageRecoveryPoint::ArchiveId))
                    .col(uuid(StorageRecoveryPoint::CustomerId))
                    .col(big_integer(StorageRecoveryPoint::Seq))
                    .col(string_len(StorageRecoveryPoint::SnapshotId, 64))
                    .col(timestamp_with_time_zone(StorageRecoveryPoint::TakenAt))
                    .col(string_len(StorageRecoveryPoint::Status, 16))
                    .col(big_integer(StorageRecoveryPoint::ItemCount))
                    .col(big_integer(StorageRecoveryPoint::FailedCount))
                    .col(big_integer(StorageRecoveryPoint::ReusedCount))
                    .col(big_integer(StorageRecoveryPoint::BytesAdded))
                    .col(big_integer(StorageRecoveryPoint::BytesTotal))
                    .foreign_key(
                        ForeignKey::create()
                            .from(StorageRecoveryPoint::Table, StorageRecoveryPoint::ArchiveId)
                            .to(StorageArchive::Table, StorageArchive::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_storage_recovery_point_archive_seq")
                    .table(StorageRecoveryPoint::Table)
                    .col(StorageRecoveryPoint::ArchiveId)
                    .col(StorageRecoveryPoint::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StorageCatalogEntry::Table)
                    .col(big_pk_auto(StorageCatalogEntry::Id))
                    .col(uuid(StorageCatalogEntry::ArchiveId))
                    .col(big_integer(StorageCatalogEntry::ValidFromSeq))
                    .col(big_integer_null(StorageCatalogEntry::ValidToSeq))
                    .col(text(StorageCatalogEntry::Path))
                    .col(text(StorageCatalogEntry::Name))
                    .col(string_len(StorageCatalogEntry::Kind, 16))
                    .col(text_null(StorageCatalogEntry::GraphId))
                    .col(text_null(StorageCatalogEntry::ChangeKey))
                    .col(timestamp_with_time_zone_null(
                        StorageCatalogEntry::LastModified,
                    ))
                    .col(big_integer_null(StorageCatalogEntry::SourceSize))
                    .col(big_integer(StorageCatalogEntry::Size))
                    .col(text_null(StorageCatalogEntry::Subject))
                    .col(text_null(StorageCatalogEntry::Sender))
                    .col(text_null(StorageCatalogEntry::Recipients))
                    .col(timestamp_with_time_zone_null(StorageCatalogEntry::SentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(StorageCatalogEntry::Table, StorageCatalogEntry::ArchiveId)
                            .to(StorageArchive::Table, StorageArchive::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_storage_catalog_entry_archive_path")
                    .table(StorageCatalogEntry::Table)
                    .col(StorageCatalogEntry::ArchiveId)
                    .col(StorageCatalogEntry::Path)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_storage_catalog_entry_archive_open")
                    .table(StorageCatalogEntry::Table)
                    .col(StorageCatalogEntry::ArchiveId)
                    .col(StorageCatalogEntry::ValidToSeq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StorageFailedItem::Table)
                    .col(big_pk_auto(StorageFailedItem::Id))
                    .col(uuid(StorageFailedItem::RecoveryPointId))
                    .col(text(StorageFailedItem::Path))
                    .col(text_null(StorageFailedItem::GraphId))
                    .col(text(StorageFailedItem::Reason))
                    .foreign_key(
                        ForeignKey::create()
                            .from(StorageFailedItem::Table, StorageFailedItem::RecoveryPointId)
                            .to(StorageRecoveryPoint::Table, StorageRecoveryPoint::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            StorageFailedItem::Table.into_iden(),
            StorageCatalogEntry::Table.into_iden(),
            StorageRecoveryPoint::Table.into_iden(),
            StorageArchive::Table.into_iden(),
            StorageRepository::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
