//! Protection plans and the rebuilt job queue: plans with their chosen items, the per-item
//! outcomes of a plan run (so a resumed run skips what it finished), and the job columns a queue
//! for many workers needs (payload, unique key, not-before time, attempt limit, resource key).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProtectionPlans {
    Table,
    Id,
    CustomerId,
    OrgId,
    Name,
    Enabled,
    Workloads,
    AllKinds,
    RetentionKind,
    RetentionValue,
    StartMinute,
    EstimatedLoad,
    SecondsPerItem,
    NextRunAt,
    LastRunAt,
    Version,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PlanItems {
    Table,
    PlanId,
    ItemId,
}

#[derive(DeriveIden)]
enum JobItems {
    Table,
    JobId,
    ItemId,
    Workload,
    Status,
    Detail,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Payload,
    UniqueKey,
    NotBefore,
    MaxAttempts,
    ResourceKey,
    PlanId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProtectionPlans::Table)
                    .col(uuid(ProtectionPlans::Id).primary_key())
                    .col(uuid(ProtectionPlans::CustomerId))
                    .col(uuid(ProtectionPlans::OrgId))
                    .col(string(ProtectionPlans::Name))
                    .col(boolean(ProtectionPlans::Enabled))
                    .col(string(ProtectionPlans::Workloads))
                    .col(string(ProtectionPlans::AllKinds))
                    .col(string(ProtectionPlans::RetentionKind))
                    .col(integer(ProtectionPlans::RetentionValue))
                    .col(integer(ProtectionPlans::StartMinute))
                    .col(big_integer(ProtectionPlans::EstimatedLoad))
                    .col(integer(ProtectionPlans::SecondsPerItem))
                    .col(timestamp_with_time_zone(ProtectionPlans::NextRunAt))
                    .col(timestamp_with_time_zone_null(ProtectionPlans::LastRunAt))
                    .col(integer(ProtectionPlans::Version))
                    .col(timestamp_with_time_zone(ProtectionPlans::CreatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("protection_plans_customer", ProtectionPlans::CustomerId),
            ("protection_plans_next_run", ProtectionPlans::NextRunAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(ProtectionPlans::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PlanItems::Table)
                    .col(uuid(PlanItems::PlanId))
                    .col(uuid(PlanItems::ItemId))
                    .primary_key(
                        Index::create()
                            .col(PlanItems::PlanId)
                            .col(PlanItems::ItemId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PlanItems::Table, PlanItems::PlanId)
                            .to(ProtectionPlans::Table, ProtectionPlans::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("plan_items_item")
                    .table(PlanItems::Table)
                    .col(PlanItems::ItemId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobItems::Table)
                    .col(uuid(JobItems::JobId))
                    .col(uuid(JobItems::ItemId))
                    .col(string(JobItems::Workload))
                    .col(string(JobItems::Status))
                    .col(text(JobItems::Detail))
                    .col(timestamp_with_time_zone(JobItems::FinishedAt))
                    .primary_key(
                        Index::create()
                            .col(JobItems::JobId)
                            .col(JobItems::ItemId)
                            .col(JobItems::Workload),
                    )
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        let columns = [
            ColumnDef::new(Jobs::Payload).text().null().to_owned(),
            ColumnDef::new(Jobs::UniqueKey).string().null().to_owned(),
            ColumnDef::new(Jobs::NotBefore)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Jobs::MaxAttempts)
                .integer()
                .not_null()
                .default(3)
                .to_owned(),
            ColumnDef::new(Jobs::ResourceKey).string().null().to_owned(),
            ColumnDef::new(Jobs::PlanId).uuid().null().to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Jobs::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Held only while a job is queued or running: the same work is queued once.
        manager
            .create_index(
                Index::create()
                    .name("jobs_unique_key")
                    .table(Jobs::Table)
                    .col(Jobs::UniqueKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_resource")
                    .table(Jobs::Table)
                    .col(Jobs::ResourceKey)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_plan")
                    .table(Jobs::Table)
                    .col(Jobs::PlanId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["jobs_plan", "jobs_resource", "jobs_unique_key"] {
            manager
                .drop_index(Index::drop().name(index).table(Jobs::Table).to_owned())
                .await?;
        }
        for column in [
            Jobs::PlanId,
            Jobs::ResourceKey,
            Jobs::MaxAttempts,
            Jobs::NotBefore,
            Jobs::UniqueKey,
            Jobs::Payload,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Jobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            JobItems::Table.into_iden(),
            PlanItems::Table.into_iden(),
            ProtectionPlans::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
