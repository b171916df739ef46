//! The S3 backend against a local S3-compatible server: moto (`pip install 'moto[server]'`),
//! started by the test on a free port and stopped when it ends.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use skyvault::clock::ManualClock;
use skyvault::crypto::MasterKey;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::storage::{
    BackupRequest, BackupStorage, RecoveryPointStatus, StorageLocation, VerifyScope, Workload,
    ingest, read, verify,
};

use super::fixture::{small_corpus, start_time};

struct MotoServer {
    child: Child,
    endpoint: String,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_moto() -> MotoServer {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot start moto_server (pip install 'moto[server]'): {err}")
        });
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = MotoServer { child, endpoint };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(&server.endpoint).send().await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("moto_server did not start on {}", server.endpoint);
}

#[tokio::test]
async fn backups_round_trip_through_an_s3_bucket() {
    if !crate::support::tool_available("moto_server", "pip install 'moto[server]'") {
        return;
    }
    let db = crate::support::fresh_database().await;
    let moto = start_moto().await;
    let client = reqwest::Client::new();
    let created = client
        .put(format!("{}/skyvault-test", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "create bucket: {}",
        created.status()
    );

    let location = StorageLocation::parse("s3://skyvault-test/backups")
        .unwrap()
        .with_s3_settings(
            Some(moto.endpoint.clone()),
            Some("us-east-1".into()),
            Some("testing".into()),
            Some("testing".into()),
        );
    let clock = ManualClock::new(start_time());
    let storage = BackupStorage::new(
        db.conn.clone(),
        location,
        MasterKey::random(),
        Arc::new(clock.clone()),
    );
    let customer = CustomerId::new();
    let scope = skyvault::storage::SystemScope::worker(customer, "test");
    let request = BackupRequest {
        customer,
        org: OrgId::new(),
        item: ItemId::new(),
        workload: Workload::Mailbox,
        display_name: "Alice".into(),
        encrypted_repository: None,
    };
    let items = small_corpus();
    let sources = |items: &[super::fixture::TestItem]| {
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        futures::stream::iter(items.iter().map(|i| i.source(&fetches)).collect::<Vec<_>>())
    };
    let first = ingest::back_up_archive(&storage, &request, sources(&items))
        .await
        .unwrap();
    assert_eq!(first.recovery_point.status, RecoveryPointStatus::Complete);
    clock.advance(chrono::Duration::days(1));
    let second = ingest::back_up_archive(&storage, &request, sources(&items))
        .await
        .unwrap();
    assert_eq!(second.reused, items.len() as u64);
    assert_eq!(second.recovery_point.bytes_added, 0);

    for item in &items {
        let bytes = read::read_item_to_vec(&storage, &scope, second.recovery_point.id, &item.path)
            .await
            .unwrap();
        assert!(
            bytes == *item.bytes,
            "{} differs after the S3 round trip",
            item.path
        );
    }
    let report = verify::verify(&storage, customer, VerifyScope::AllData)
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(
        storage.repository_location(customer),
        format!("s3:skyvault-test/backups/{customer}")
    );
}
