//! Indexes that make claiming a job cheap however long the job history grows, and make the
//! database itself keep one running job per resource.
//!
//! - `jobs_running_resource`: at most one *running* job per resource key. Two workers that pick
//!   two queued jobs of one resource at the same moment cannot both start them: the second
//!   claim fails on this index and is tried again. It is also the index the claim's "is this
//!   resource busy?" test reads, and it holds only the running jobs.
//! - `jobs_running_customer`: the running jobs per customer, which the claim counts for fairness,
//!   without reading each customer's finished history.
//!
//! Partial indexes (`WHERE status = 'running'`) are written the same in SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Before the index: a race the index now prevents may have left two running jobs of one
        // resource. The later claims go back to the queue (their work is idempotent).
        db.execute_unprepared(
            "UPDATE jobs SET status = 'queued', lease_until = NULL \
             WHERE status = 'running' AND resource_key IS NOT NULL AND EXISTS ( \
                 SELECT 1 FROM jobs AS earlier \
                 WHERE earlier.resource_key = jobs.resource_key \
                   AND earlier.status = 'running' \
                   AND (earlier.started_at < jobs.started_at \
                        OR (earlier.started_at = jobs.started_at AND earlier.id < jobs.id)))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX jobs_running_resource ON jobs (resource_key) \
             WHERE status = 'running'",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX jobs_running_customer ON jobs (customer_id) WHERE status = 'running'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["jobs_running_customer", "jobs_running_resource"] {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(Alias::new("jobs"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
