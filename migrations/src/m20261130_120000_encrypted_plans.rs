//! A protection plan's optional customer encryption password: the plan's backups go into their
//! own restic repository whose password is the customer's (so the customer can open it with
//! `restic` and nothing else), kept sealed with the master key so daily runs need nobody.
//!
//! - `storage_encrypted_repository`: one row per encrypted plan's repository, kept after the plan
//!   is deleted (its backups stay unless asked otherwise).
//! - `storage_archive.repository_id` and `storage_recovery_point.repository_id`: which of the
//!   customer's repositories holds an archive for its whole life. The customer's own repository is
//!   named by the customer's id, so every existing row gets its customer id; the unique index on
//!   an archive's item and workload now includes it (an item moved between a plain and an
//!   encrypted plan starts a new archive in the other repository, the old one stays).
//! - `protection_plans.encrypted_repository_id`: set once when an encrypted plan is created.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StorageEncryptedRepository {
    Table,
    Id,
    CustomerId,
    PlanId,
    PlanName,
    Location,
    SealedPassword,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StorageArchive {
    Table,
    CustomerId,
    ItemId,
    Workload,
    RepositoryId,
}

#[derive(DeriveIden)]
enum StorageRecoveryPoint {
    Table,
    RepositoryId,
}

#[derive(DeriveIden)]
enum ProtectionPlans {
    Table,
    EncryptedRepositoryId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StorageEncryptedRepository::Table)
                    .col(uuid(StorageEncryptedRepository::Id).primary_key())
                    .col(uuid(StorageEncryptedRepository::CustomerId))
                    .col(uuid(StorageEncryptedRepository::PlanId))
                    .col(text(StorageEncryptedRepository::PlanName))
                    .col(text(StorageEncryptedRepository::Location))
                    .col(text(StorageEncryptedRepository::SealedPassword))
                    .col(timestamp_with_time_zone(
                        StorageEncryptedRepository::CreatedAt,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_storage_encrypted_repository_customer")
                    .table(StorageEncryptedRepository::Table)
                    .col(StorageEncryptedRepository::CustomerId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StorageArchive::Table)
                    .add_column(uuid_null(StorageArchive::RepositoryId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StorageRecoveryPoint::Table)
                    .add_column(uuid_null(StorageRecoveryPoint::RepositoryId))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Every archive so far lives in its customer's repository, which the customer's id names.
        db.execute_unprepared("UPDATE storage_archive SET repository_id = customer_id")
            .await?;
        db.execute_unprepared("UPDATE storage_recovery_point SET repository_id = customer_id")
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_storage_archive_item_workload")
                    .table(StorageArchive::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_storage_archive_item_workload_repository")
                    .table(StorageArchive::Table)
                    .col(StorageArchive::CustomerId)
                    .col(StorageArchive::ItemId)
                    .col(StorageArchive::Workload)
                    .col(StorageArchive::RepositoryId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ProtectionPlans::Table)
                    .add_column(uuid_null(ProtectionPlans::EncryptedRepositoryId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ProtectionPlans::Table)
                    .drop_column(ProtectionPlans::EncryptedRepositoryId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_storage_archive_item_workload_repository")
                    .table(StorageArchive::Table)
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
        for (table, column) in [
            (
                StorageRecoveryPoint::Table.into_iden(),
                StorageRecoveryPoint::RepositoryId.into_iden(),
            ),
            (
                StorageArchive::Table.into_iden(),
                StorageArchive::RepositoryId.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        manager
            .drop_table(
                Table::drop()
                    .table(StorageEncryptedRepository::Table)
                    .to_owned(),
            )
            .await
    }
}
