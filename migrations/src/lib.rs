//! Database schema for Skyvault, written with SeaQuery so the same migrations run on SQLite and
//! PostgreSQL. Each issue's tables live in their own migration file; never edit one that has shipped.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_foundation;
mod m20261123_000002_storage_catalog;
mod m20261123_000003_inventory;
mod m20261129_000010_discovery_checks;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_foundation::Migration),
            Box::new(m20261123_000002_storage_catalog::Migration),
            Box::new(m20261123_000003_inventory::Migration),
            Box::new(m20261129_000010_discovery_checks::Migration),
        ]
    }
}
