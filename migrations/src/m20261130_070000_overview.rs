//! Throttling kept per job, and indexes for the overviews.
//!
//! - `job_throttles`: one row per job and Microsoft 365 resource (a mailbox, the tenant's
//!   OneDrive/SharePoint bucket, its directory) that Microsoft throttled during the job: how many
//!   times, for how long in all (pauses of one resource that overlap are counted once), first
//!   and last time. Written by the plan run as throttling happens, so it survives the process.
//! - `job_throttles_org`: an organization's throttling of the last night, without reading every
//!   job.
//! - `jobs_customer_kind_finished`: a customer's runs finished since a time (last night's
//!   result, usage by month) for many customers at once.
//! - `storage_recovery_point_customer_taken`: storage used at a time (growth, usage by month),
//!   summed from the index alone (it carries `bytes_added`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobThrottles {
    Table,
    JobId,
    Resource,
    Label,
    CustomerId,
    OrgId,
    Events,
    ThrottledMs,
    FirstAt,
    LastAt,
    PausedUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobThrottles::Table)
                    .if_not_exists()
                    .col(uuid(JobThrottles::JobId))
                    .col(string(JobThrottles::Resource))
                    .col(string(JobThrottles::Label))
                    .col(uuid(JobThrottles::CustomerId))
                    .col(uuid_null(JobThrottles::OrgId))
                    .col(integer(JobThrottles::Events))
                    .col(big_integer(JobThrottles::ThrottledMs))
                    .col(timestamp_with_time_zone(JobThrottles::FirstAt))
                    .col(timestamp_with_time_zone(JobThrottles::LastAt))
                    .col(timestamp_with_time_zone(JobThrottles::PausedUntil))
                    .primary_key(
                        Index::create()
                            .col(JobThrottles::JobId)
                            .col(JobThrottles::Resource),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("job_throttles_org")
                    .table(JobThrottles::Table)
                    .col(JobThrottles::OrgId)
                    .col(JobThrottles::LastAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_customer_kind_finished")
                    .table(Alias::new("jobs"))
                    .col(Alias::new("customer_id"))
                    .col(Alias::new("kind"))
                    .col(Alias::new("finished_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("storage_recovery_point_customer_taken")
                    .table(Alias::new("storage_recovery_point"))
                    .col(Alias::new("customer_id"))
                    .col(Alias::new("taken_at"))
                    .col(Alias::new("bytes_added"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (index, table) in [
            (
                "storage_recovery_point_customer_taken",
                "storage_recovery_point",
            ),
            ("jobs_customer_kind_finished", "jobs"),
        ] {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(Alias::new(table))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(JobThrottles::Table).to_owned())
            .await
    }
}
