//! Microsoft 365 organizations, their protected items (users, groups, teams, sites), the delta
//! links discovery resumes from, pending admin-consent requests, and the job queue behind
//! Activities.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    CustomerId,
    TenantId,
    DisplayName,
    DefaultDomain,
    InitialDomain,
    AddedAt,
    LastSyncAt,
    LastSyncOutcome,
    NextSyncAt,
    ItemCounts,
}

#[derive(DeriveIden)]
enum ProtectedItems {
    Table,
    Id,
    OrgId,
    Kind,
    GraphId,
    DisplayName,
    Address,
    Detail,
    State,
    HasMailbox,
    HasDrive,
    FirstSeenAt,
    ChangedAt,
    InactiveSince,
}

#[derive(DeriveIden)]
enum DirectoryCursors {
    Table,
    OrgId,
    Resource,
    DeltaLink,
}

#[derive(DeriveIden)]
enum ConsentRequests {
    Table,
    State,
    CustomerId,
    UserId,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    CustomerId,
    OrgId,
    Status,
    QueuedAt,
    StartedAt,
    FinishedAt,
    LeaseUntil,
    Attempts,
    Progress,
    Summary,
    Error,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(uuid(Organizations::Id).primary_key())
                    .col(uuid(Organizations::CustomerId))
                    .col(string_uniq(Organizations::TenantId))
                    .col(string(Organizations::DisplayName))
                    .col(string(Organizations::DefaultDomain))
                    .col(string(Organizations::InitialDomain))
                    .col(timestamp_with_time_zone(Organizations::AddedAt))
                    .col(timestamp_with_time_zone_null(Organizations::LastSyncAt))
                    .col(text_null(Organizations::LastSyncOutcome))
                    .col(timestamp_with_time_zone(Organizations::NextSyncAt))
                    .col(text(Organizations::ItemCounts).default("{}"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("organizations_customer")
                    .table(Organizations::Table)
                    .col(Organizations::CustomerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ProtectedItems::Table)
                    .col(uuid(ProtectedItems::Id).primary_key())
                    .col(uuid(ProtectedItems::OrgId))
                    .col(string(ProtectedItems::Kind))
                    .col(string(ProtectedItems::GraphId))
                    .col(string(ProtectedItems::DisplayName))
                    .col(string(ProtectedItems::Address))
                    .col(string(ProtectedItems::Detail))
                    .col(string(ProtectedItems::State))
                    .col(boolean_null(ProtectedItems::HasMailbox))
                    .col(boolean_null(ProtectedItems::HasDrive))
                    .col(timestamp_with_time_zone(ProtectedItems::FirstSeenAt))
                    .col(timestamp_with_time_zone(ProtectedItems::ChangedAt))
                    .col(timestamp_with_time_zone_null(ProtectedItems::InactiveSince))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ProtectedItems::Table, ProtectedItems::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("protected_items_identity")
                    .table(ProtectedItems::Table)
                    .col(ProtectedItems::OrgId)
                    .col(ProtectedItems::Kind)
                    .col(ProtectedItems::GraphId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("protected_items_listing")
                    .table(ProtectedItems::Table)
                    .col(ProtectedItems::OrgId)
                    .col(ProtectedItems::Kind)
                    .col(ProtectedItems::DisplayName)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DirectoryCursors::Table)
                    .col(uuid(DirectoryCursors::OrgId))
                    .col(string(DirectoryCursors::Resource))
                    .col(text(DirectoryCursors::DeltaLink))
                    .primary_key(
                        Index::create()
                            .col(DirectoryCursors::OrgId)
                            .col(DirectoryCursors::Resource),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DirectoryCursors::Table, DirectoryCursors::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsentRequests::Table)
                    .col(string(ConsentRequests::State).primary_key())
                    .col(uuid(ConsentRequests::CustomerId))
                    .col(uuid(ConsentRequests::UserId))
                    .col(timestamp_with_time_zone(ConsentRequests::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(uuid(Jobs::Id).primary_key())
                    .col(string(Jobs::Kind))
                    .col(uuid(Jobs::CustomerId))
                    .col(uuid_null(Jobs::OrgId))
                    .col(string(Jobs::Status))
                    .col(timestamp_with_time_zone(Jobs::QueuedAt))
                    .col(timestamp_with_time_zone_null(Jobs::StartedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .col(timestamp_with_time_zone_null(Jobs::LeaseUntil))
                    .col(integer(Jobs::Attempts).default(0))
                    .col(text_null(Jobs::Progress))
                    .col(text_null(Jobs::Summary))
                    .col(text_null(Jobs::Error))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_status")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::QueuedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_customer")
                    .table(Jobs::Table)
                    .col(Jobs::CustomerId)
                    .col(Jobs::QueuedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Jobs::Table.into_iden(),
            ConsentRequests::Table.into_iden(),
            DirectoryCursors::Table.into_iden(),
            ProtectedItems::Table.into_iden(),
            Organizations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
