//! Backup storage in the console: the page lists the catalog's archives, Check backups now queues
//! one backup check, the worker records its outcome (and damage, by archive) in Activities, and
//! the weekly tick queues checks only for customers with backups.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Duration;
use futures::stream;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::jobs::entities::job;
use skyvault::jobs::{backup_check, queue, ticks, worker};
use skyvault::storage::{
    BackupOutcome, BackupRequest, ItemContent, ItemKind, ItemMetadata, SourceItem, Workload, ingest,
};

use crate::support::app::{PASSWORD, TestApp};

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    bytes
}

/// Backs up one archive of `customer` with files of incompressible bytes.
pub async fn back_up(
    app: &TestApp,
    customer: &str,
    item: ItemId,
    workload: Workload,
    name: &str,
    seeds: &[u64],
) -> BackupOutcome {
    let request = BackupRequest {
        customer: customer.parse::<CustomerId>().unwrap(),
        org: OrgId::new(),
        item,
        workload,
        display_name: name.to_string(),
        encrypted_repository: None,
    };
    let items: Vec<SourceItem> = seeds
        .iter()
        .map(|seed| SourceItem {
            path: format!("Documents/file-{seed}.bin"),
            metadata: ItemMetadata {
                kind: Some(ItemKind::File),
                graph_id: Some(format!("id-{seed}")),
                change_key: Some(format!("ck-{seed}")),
                ..ItemMetadata::default()
            },
            content: ItemContent::from_bytes(random_bytes(*seed, 300_000)),
        })
        .collect();
    ingest::back_up_archive(&app.state.storage, &request, stream::iter(items))
        .await
        .unwrap()
}

pub fn pack_files(repository: &Path) -> HashSet<PathBuf> {
    let mut packs = HashSet::new();
    for dir in std::fs::read_dir(repository.join("data"))
        .unwrap()
        .flatten()
    {
        for pack in std::fs::read_dir(dir.path()).unwrap().flatten() {
            packs.insert(pack.path());
        }
    }
    packs
}

/// Flips bytes in the middle of a pack, keeping its size (only reading the data finds it).
pub fn damage(pack: &Path) {
    let mut bytes = std::fs::read(pack).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xff;
    }
    std::fs::write(pack, bytes).unwrap();
}

async fn verify_jobs(app: &TestApp, customer: &str) -> Vec<job::Model> {
    job::Entity::find()
        .filter(job::Column::CustomerId.eq(customer.parse::<uuid::Uuid>().unwrap()))
        .filter(job::Column::Kind.eq(queue::JobKind::Verify.as_str()))
        .all(&app.state.db)
        .await
        .unwrap()
}

async fn run_worker(app: &TestApp) -> u32 {
    worker::run_until_idle(&skyvault::app::worker_context(&app.state))
        .await
        .unwrap()
}

/// The table row (`<tr>…</tr>`) of a page that contains `text`.
pub fn row_with<'a>(body: &'a str, text: &str) -> &'a str {
    let at = body
        .find(text)
        .unwrap_or_else(|| panic!("{text} not on the page:\n{body}"));
    let start = body[..at].rfind("<tr").expect("inside a table row");
    let end = at + body[at..].find("</tr>").expect("row ends");
    &body[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_storage_lists_archives_and_checks_them_now() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let id = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;
    let alice = ItemId::new();
    back_up(&app, &id, alice, Workload::Mailbox, "Alice Wilber", &[1, 2]).await;
    back_up(&app, &id, alice, Workload::Mailbox, "Alice Wilber", &[1, 3]).await;
    let repository = app.repository_folder(&id);
    let before_bob = pack_files(&repository);
    back_up(
        &app,
        &id,
        ItemId::new(),
        Workload::OneDrive,
        "Bob Kelly",
        &[4],
    )
    .await;
    let bob_pack = pack_files(&repository)
        .difference(&before_bob)
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .cloned()
        .unwrap();

    let page = partner
        .get(&format!("/c/{id}/storage"))
        .await
        .expect_status(StatusCode::OK);
    assert!(page.body.contains("Cloud application backups"));
    assert!(
        page.body
            .contains(&app.state.storage.repository_location(id.parse().unwrap()))
    );
    let alice_row = row_with(&page.body, "Alice Wilber");
    assert!(alice_row.contains(">Mailbox</td>") && alice_row.contains(">2</td>"));
    assert!(alice_row.contains("Complete"));
    let bob_row = row_with(&page.body, "Bob Kelly");
    assert!(bob_row.contains(">OneDrive</td>") && bob_row.contains(">1</td>"));
    assert!(page.body.contains("Not checked yet"));
    assert!(page.body.contains("Check backups now"));

    // Check backups now queues one check; a second click finds it pending.
    partner
        .post(&format!("/c/{id}/storage/check"), &[])
        .await
        .expect_redirect(&format!("/c/{id}/storage?notice=check_queued"));
    let page = partner
        .open(&format!("/c/{id}/storage?notice=check_queued"))
        .await;
    assert!(page.body.contains("A backup check was queued."));
    let reloaded = partner.get(&format!("/c/{id}/storage")).await;
    assert!(!reloaded.body.contains("A backup check was queued."));
    partner
        .post(&format!("/c/{id}/storage/check"), &[])
        .await
        .expect_redirect(&format!("/c/{id}/storage?notice=check_pending"));
    assert_eq!(verify_jobs(&app, &id).await.len(), 1);

    assert_eq!(run_worker(&app).await, 1);
    let checked = verify_jobs(&app, &id).await.remove(0);
    assert_eq!(checked.status, "succeeded", "{:?}", checked.error);
    assert_eq!(
        checked.summary.as_deref(),
        Some("Checked 3 recovery points, 2 archives (all data read); no damage found")
    );
    let activities = partner
        .get(&format!("/c/{id}/activities"))
        .await
        .expect_status(StatusCode::OK);
    let row = row_with(&activities.body, "Backup check");
    assert!(row.contains("Succeeded") && row.contains("no damage found"));
    assert!(row.contains("Backup storage"));
    let page = partner.get(&format!("/c/{id}/storage")).await;
    assert!(page.body.contains("Succeeded") && page.body.contains("no damage found"));

    // Later a pack is damaged: the next check fails and names the archive whose data it held.
    app.clock.advance(Duration::hours(2));
    damage(&bob_pack);
    partner.get(&format!("/c/{id}/storage")).await;
    partner
        .post(&format!("/c/{id}/storage/check"), &[])
        .await
        .expect_redirect(&format!("/c/{id}/storage?notice=check_queued"));
    assert_eq!(run_worker(&app).await, 1);
    let failed = queue::latest_job(&app.state.db, id.parse().unwrap(), queue::JobKind::Verify)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, "failed");
    let error = failed.error.unwrap();
    assert!(error.contains("Bob Kelly (OneDrive)"), "{error}");
    assert!(!error.contains("Alice Wilber"), "{error}");
    let activities = partner.get(&format!("/c/{id}/activities")).await;
    let row = row_with(&activities.body, "Damage found");
    assert!(row.contains("Failed") && row.contains("Bob Kelly (OneDrive)"));
    let page = partner.get(&format!("/c/{id}/storage")).await;
    assert!(page.body.contains("Failed") && page.body.contains("Bob Kelly (OneDrive)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_of_a_customer_without_backups_creates_no_repository() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let id = app
        .customer_with_admin(&partner, "Fabrikam", "fay@fabrikam.example")
        .await;
    let admin = app.visitor();
    admin
        .sign_in("fay@fabrikam.example", PASSWORD)
        .await
        .expect_redirect(&format!("/c/{id}/overview"));
    let page = admin
        .get(&format!("/c/{id}/storage"))
        .await
        .expect_status(StatusCode::OK);
    assert!(page.body.contains("No backups yet"));

    admin
        .post(&format!("/c/{id}/storage/check"), &[])
        .await
        .expect_redirect(&format!("/c/{id}/storage?notice=check_queued"));
    assert_eq!(run_worker(&app).await, 1);
    let checked = verify_jobs(&app, &id).await.remove(0);
    assert_eq!(checked.status, "succeeded");
    assert_eq!(
        checked.summary.as_deref(),
        Some(backup_check::NOTHING_TO_CHECK)
    );
    assert!(!app.repository_folder(&id).exists());
    let activities = admin.get(&format!("/c/{id}/activities")).await;
    assert!(row_with(&activities.body, "Backup check").contains("No backups to check yet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_customers_admin_cannot_see_or_check_this_customers_backups() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let contoso = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;
    let fabrikam = app
        .customer_with_admin(&partner, "Fabrikam", "fay@fabrikam.example")
        .await;
    back_up(
        &app,
        &contoso,
        ItemId::new(),
        Workload::Mailbox,
        "Alice Wilber",
        &[1],
    )
    .await;
    let intruder = app.visitor();
    intruder
        .sign_in("fay@fabrikam.example", PASSWORD)
        .await
        .expect_redirect(&format!("/c/{fabrikam}/overview"));

    let page = intruder.get(&format!("/c/{contoso}/storage")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("Alice Wilber") && !page.body.contains("Contoso"));
    intruder.get(&format!("/c/{fabrikam}/storage")).await;
    let post = intruder
        .post(&format!("/c/{contoso}/storage/check"), &[])
        .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    assert!(verify_jobs(&app, &contoso).await.is_empty());
    // Their own page shows none of it.
    let own = intruder
        .get(&format!("/c/{fabrikam}/storage"))
        .await
        .expect_status(StatusCode::OK);
    assert!(!own.body.contains("Alice Wilber"));

    // Malformed ids are pages that do not exist, not errors.
    intruder
        .get("/c/not-a-customer/storage")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    let post = intruder.post("/c/not-a-customer/storage/check", &[]).await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    let odd = intruder
        .open(&format!("/c/{fabrikam}/storage?notice=%3Cscript%3E"))
        .await
        .expect_status(StatusCode::OK);
    assert!(!odd.body.contains("<script>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_with_backups_are_checked_every_week() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let with_backups = app
        .customer_with_admin(&partner, "Contoso Ltd", "casey@contoso.example")
        .await;
    let without = app
        .customer_with_admin(&partner, "Fabrikam", "fay@fabrikam.example")
        .await;
    back_up(
        &app,
        &with_backups,
        ItemId::new(),
        Workload::Site,
        "Marketing",
        &[9],
    )
    .await;
    let clock: skyvault::clock::SharedClock = Arc::new(app.clock.clone());

    assert_eq!(ticks::enqueue_due_checks(&app.state.db, &clock).await, 1);
    assert_eq!(
        ticks::enqueue_due_checks(&app.state.db, &clock).await,
        0,
        "a pending check is not queued twice"
    );
    assert_eq!(run_worker(&app).await, 1);
    assert_eq!(ticks::enqueue_due_checks(&app.state.db, &clock).await, 0);
    app.clock.advance(Duration::days(6));
    assert_eq!(ticks::enqueue_due_checks(&app.state.db, &clock).await, 0);
    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    assert_eq!(ticks::enqueue_due_checks(&app.state.db, &clock).await, 1);
    assert_eq!(run_worker(&app).await, 1);

    assert_eq!(verify_jobs(&app, &with_backups).await.len(), 2);
    assert!(verify_jobs(&app, &without).await.is_empty());
    assert!(!app.repository_folder(&without).exists());
}
