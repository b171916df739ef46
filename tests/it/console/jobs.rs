//! The job queue: leases, lapsed leases, and one sync per organization at a time.

use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use skyvault::clock::{Clock, ManualClock};
use skyvault::inventory::entities::organization;
use skyvault::jobs::entities::job;
use skyvault::jobs::queue::{self, JobStatus};

use crate::support::fresh_database;

async fn organization(
    db: &sea_orm::DatabaseConnection,
    clock: &ManualClock,
) -> organization::Model {
    organization::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        customer_id: Set(uuid::Uuid::new_v4()),
        tenant_id: Set(uuid::Uuid::new_v4().to_string()),
        display_name: Set("Contoso".into()),
        default_domain: Set("contoso.example".into()),
        initial_domain: Set("contoso.onmicrosoft.com".into()),
        added_at: Set(clock.now()),
        last_sync_at: Set(None),
        last_sync_outcome: Set(None),
        next_sync_at: Set(clock.now()),
        item_counts: Set("{}".into()),
    }
    .insert(db)
    .await
    .unwrap()
}

/// A second queued sync of the same organization, as a race between Refresh and the tick could
/// leave (enqueue itself deduplicates, so it is inserted directly here).
async fn raced_duplicate(
    db: &sea_orm::DatabaseConnection,
    first: &job::Model,
    clock: &ManualClock,
) {
    job::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        status: Set(JobStatus::Queued.as_str().into()),
        queued_at: Set(clock.now() + Duration::seconds(1)),
        started_at: Set(None),
        lease_until: Set(None),
        ..first.clone().into()
    }
    .insert(db)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_per_organization_runs_at_a_time_and_lapsed_leases_are_reclaimed() {
    let db = fresh_database().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap());
    let org = organization(&db.conn, &clock).await;
    let other = organization(&db.conn, &clock).await;

    let first = queue::enqueue_sync(&db.conn, &clock, &org).await.unwrap();
    assert_eq!(
        queue::enqueue_sync(&db.conn, &clock, &org)
            .await
            .unwrap()
            .id,
        first.id,
        "deduplicated"
    );
    raced_duplicate(&db.conn, &first, &clock).await;
    let other_job = queue::enqueue_sync(&db.conn, &clock, &other).await.unwrap();

    let lease = Duration::seconds(120);
    let claimed = queue::claim_next(&db.conn, &clock, lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, first.id);
    // The duplicate waits; the other organization's sync does not.
    let next = queue::claim_next(&db.conn, &clock, lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, other_job.id);
    assert!(
        queue::claim_next(&db.conn, &clock, lease)
            .await
            .unwrap()
            .is_none()
    );

    queue::finish(&db.conn, &clock, other_job.id, Ok("done".into()))
        .await
        .unwrap();

    // The worker holding the first sync dies: once its lease lapses, the job is claimed again.
    clock.advance(Duration::seconds(121));
    let again = queue::claim_next(&db.conn, &clock, lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.attempts, 2);
    queue::finish(&db.conn, &clock, first.id, Ok("done".into()))
        .await
        .unwrap();
    let duplicate = queue::claim_next(&db.conn, &clock, lease)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(duplicate.id, first.id);
    assert_eq!(duplicate.org_id, Some(org.id));
}
