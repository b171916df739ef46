//! Backups of Microsoft 365 workloads end to end: the runners against the simulator, writing into
//! a real repository and catalog.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod drive;
mod mailbox;
mod team;

use std::sync::Arc;

use serde_json::Value;
use skyvault::backup::{BackupReport, BackupServices, BackupTarget, back_up};
use skyvault::ids::ItemId;
use skyvault::storage::{CatalogEntry, RecoveryPointId, Workload, catalog, read};

use crate::m365::{Harness, Setup, harness_with};
use crate::storage::fixture::{Fixture, fixture};

pub struct BackupFixture {
    pub h: Harness,
    pub f: Fixture,
    pub services: BackupServices,
}

pub async fn backup_fixture() -> BackupFixture {
    backup_fixture_with(Setup::default()).await
}

pub async fn backup_fixture_with(setup: Setup) -> BackupFixture {
    let h = harness_with(setup).await;
    let f = fixture().await;
    let services = BackupServices {
        graph: h.client.clone(),
        storage: f.storage.clone(),
        clock: Arc::new(f.clock.clone()),
    };
    BackupFixture { h, f, services }
}

impl BackupFixture {
    /// The `index`-th user of the simulated tenant (in `/users` order).
    pub async fn user(&self, index: usize) -> (String, String) {
        let users: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(self.h.graph().users())
            .await
            .unwrap();
        let user = &users[index];
        (
            user.id.clone(),
            user.display_name.clone().unwrap_or_default(),
        )
    }

    pub fn target(&self, graph_id: &str, workload: Workload, item: ItemId) -> BackupTarget {
        BackupTarget {
            customer: self.f.customer,
            org: self.f.org,
            tenant: self.h.tenant,
            item,
            graph_id: graph_id.to_string(),
            workload,
            display_name: format!("{workload:?} of {graph_id}"),
            encrypted_repository: None,
        }
    }

    pub async fn run(&self, target: &BackupTarget) -> BackupReport {
        back_up(&self.services, target, &()).await.unwrap()
    }

    pub async fn items(&self, point: RecoveryPointId) -> Vec<CatalogEntry> {
        catalog::list_items(self.f.storage.db(), &self.f.scope(), point)
            .await
            .unwrap()
    }

    pub async fn bytes(&self, point: RecoveryPointId, path: &str) -> Vec<u8> {
        read::read_item_to_vec(&self.f.storage, &self.f.scope(), point, path)
            .await
            .unwrap()
    }

    /// The simulator's mailbox ids of a user: `primary`, `archive`, `auxiliaryArchive`.
    pub async fn mailbox_ids(&self, user: &str) -> Value {
        self.h
            .control(
                "GET",
                &format!("tenants/default/users/{user}/mailbox"),
                None,
            )
            .await
    }

    /// Graph requests the simulator has answered so far, in all and per endpoint.
    pub async fn counters(&self) -> Value {
        self.h.control("GET", "counters", None).await
    }
}
