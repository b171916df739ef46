//! Database schema for Skyvault, written with SeaQuery so the same migrations run on SQLite and
//! PostgreSQL. Each issue's tables live in their own migration file; never edit one that has shipped.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_foundation;
mod m20261123_000002_storage_catalog;
mod m20261123_000003_inventory;
mod m20261129_000001_admin_sign_in;
mod m20261129_000010_discovery_checks;
mod m20261129_091000_master_key_check;
mod m20261129_100000_console_users_admin;
mod m20261129_140000_audit_log_and_partner_status;
mod m20261129_150000_backup_source_state;
mod m20261129_200000_plans_jobs;
mod m20261130_050000_alerts;
mod m20261130_060000_job_claims;
mod m20261130_070000_overview;
mod m20261130_120000_alert_email;
mod m20261130_120000_encrypted_plans;
mod m20261201_090000_point_folders;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_foundation::Migration),
            Box::new(m20261123_000002_storage_catalog::Migration),
            Box::new(m20261123_000003_inventory::Migration),
            Box::new(m20261129_000001_admin_sign_in::Migration),
            Box::new(m20261129_000010_discovery_checks::Migration),
            Box::new(m20261129_091000_master_key_check::Migration),
            Box::new(m20261129_100000_console_users_admin::Migration),
            Box::new(m20261129_140000_audit_log_and_partner_status::Migration),
            Box::new(m20261129_150000_backup_source_state::Migration),
            Box::new(m20261129_200000_plans_jobs::Migration),
            Box::new(m20261130_050000_alerts::Migration),
            Box::new(m20261130_060000_job_claims::Migration),
            Box::new(m20261130_070000_overview::Migration),
            Box::new(m20261130_120000_alert_email::Migration),
            Box::new(m20261130_120000_encrypted_plans::Migration),
            Box::new(m20261201_090000_point_folders::Migration),
        ]
    }
}
