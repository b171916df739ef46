//! The restore form: administrators choose a target among their own customer's items and start a
//! restore job (audited); read-only users are refused; another customer's archive, recovery point
//! or target item answers 404 or is refused, and nothing is queued.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use skyvault::accounts::entities::audit_event;
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::inventory::entities::protected_item;
use skyvault::jobs::entities::job;
use skyvault::jobs::queue::{JobKind, JobPayload};
use skyvault::storage::{BackupRequest, ItemKind, Workload, ingest};

use super::access::organization_fixture;
use super::organizations::customer_admin;
use crate::storage::fixture::TestItem;
use crate::support::app::TestApp;

async fn alice(app: &TestApp, org: &str) -> protected_item::Model {
    protected_item::Entity::find()
        .filter(protected_item::Column::OrgId.eq(org.parse::<uuid::Uuid>().unwrap()))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
}

/// A OneDrive archive of `customer` with two files; answers (archive, point).
async fn drive_archive(
    app: &TestApp,
    customer: &str,
    org: &str,
    item: uuid::Uuid,
) -> (String, String) {
    let request = BackupRequest {
        customer: CustomerId(customer.parse().unwrap()),
        org: OrgId(org.parse().unwrap()),
        item: ItemId(item),
        workload: Workload::OneDrive,
        display_name: "Alice's OneDrive".into(),
        encrypted_repository: None,
    };
    let files = [
        TestItem::new("Docs/a.txt", b"a".to_vec(), ItemKind::File),
        TestItem::new("Docs/b.txt", b"b".to_vec(), ItemKind::File),
    ];
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let items: Vec<_> = files.iter().map(|f| f.source(&counter)).collect();
    let outcome =
        ingest::back_up_archive(&app.state.storage, &request, futures::stream::iter(items))
            .await
            .unwrap();
    let point = outcome.recovery_point;
    (point.archive.to_string(), point.id.to_string())
}

async fn restore_jobs(app: &TestApp) -> Vec<job::Model> {
    job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::Restore.as_str()))
        .all(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_are_for_administrators_of_the_customer_and_are_audited() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (contoso, casey) = customer_admin(&app, &partner, "Contoso", "casey@contoso.example").await;
    let (fabrikam, fiona) =
        customer_admin(&app, &partner, "Fabrikam", "fiona@fabrikam.example").await;
    let contoso_org = organization_fixture(&app, &contoso, "ContosoOrg").await;
    let fabrikam_org = organization_fixture(&app, &fabrikam, "FabrikamOrg").await;
    let contoso_alice = alice(&app, &contoso_org).await;
    let fabrikam_alice = alice(&app, &fabrikam_org).await;
    let (ours, our_point) = drive_archive(&app, &contoso, &contoso_org, contoso_alice.id).await;
    let (theirs, their_point) =
        drive_archive(&app, &fabrikam, &fabrikam_org, fabrikam_alice.id).await;
    let form = |customer: &str, archive: &str, point: &str| {
        format!("/c/{customer}/backups/{archive}/points/{point}/restore")
    };

    // Another customer's archive or point, or our archive with their point: 404, nothing read.
    for (archive, point) in [
        (&theirs, &their_point),
        (&ours, &their_point),
        (&theirs, &our_point),
    ] {
        let url = form(&contoso, archive, point);
        let page = casey.get(&format!("{url}?path=Docs")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "GET {url}");
        assert!(!page.body.contains("Fabrikam"), "GET {url} leaked a name");
        casey.get(&format!("/c/{contoso}/devices")).await;
        let page = casey
            .post(
                &url,
                &[("path", "Docs"), ("target", &contoso_alice.id.to_string())],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "POST {url}");
    }

    // Our form offers only our own items, the original first.
    let url = form(&contoso, &ours, &our_point);
    let page = casey.get(&format!("{url}?path=Docs")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("The original: Alice Example"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("FabrikamOrg"));

    // Their item as the target is refused, and nothing is queued.
    let page = casey
        .post(
            &url,
            &[
                ("path", "Docs"),
                ("target", &fabrikam_alice.id.to_string()),
                ("folders", "original"),
                ("collision", "skip"),
            ],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("not among this customer"),
        "{}",
        page.body
    );
    assert!(restore_jobs(&app).await.is_empty());

    // A read-only user of Contoso may not restore.
    let robin = app.read_only_user(&casey, &contoso).await;
    let page = robin.get(&format!("{url}?path=Docs")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    robin.get(&format!("/c/{contoso}/devices")).await;
    let page = robin
        .post(
            &url,
            &[("path", "Docs"), ("target", &contoso_alice.id.to_string())],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(restore_jobs(&app).await.is_empty());

    // The administrator starts one: a restore job, its page in Activities, an audit event.
    casey.get(&format!("{url}?path=Docs")).await;
    let page = casey
        .post(
            &url,
            &[
                ("path", "Docs"),
                ("target", &contoso_alice.id.to_string()),
                ("folders", "new"),
                ("new_folder", "Restored today"),
                ("collision", "overwrite"),
            ],
        )
        .await;
    let jobs = restore_jobs(&app).await;
    assert_eq!(jobs.len(), 1);
    page.expect_redirect(&format!("/c/{contoso}/activities/{}", jobs[0].id));
    let Some(JobPayload::Restore { request }) = JobPayload::of(&jobs[0]) else {
        panic!("not a restore payload");
    };
    assert_eq!(request.paths, ["Docs"]);
    assert_eq!(request.target, ItemId(contoso_alice.id));
    assert_eq!(jobs[0].customer_id, contoso.parse::<uuid::Uuid>().unwrap());
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("restore_started"))
        .filter(audit_event::Column::CustomerId.eq(contoso.parse::<uuid::Uuid>().unwrap()))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(audited, 1);
    let page = casey
        .get(&format!("/c/{contoso}/activities/{}", jobs[0].id))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Restore"), "{}", page.body);
    // Fabrikam's administrator cannot see Contoso's restore.
    let page = fiona
        .get(&format!("/c/{fabrikam}/activities/{}", jobs[0].id))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}
