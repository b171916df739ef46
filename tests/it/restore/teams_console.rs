//! A team's recovery point in the console: browsed as channels and threads, its threads readable;
//! the restore form says plainly that channel conversations cannot go back into Teams and offers
//! them as a download; a selection of conversations only is refused with that reason, files are
//! queued.

use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use skyvault::ids::{CustomerId, ItemId, OrgId};
use skyvault::inventory::entities::protected_item;
use skyvault::jobs::entities::job;
use skyvault::jobs::queue::JobKind;
use skyvault::storage::{BackupRequest, ItemKind, Workload, ingest};

use crate::console::access::organization_fixture;
use crate::console::organizations::customer_admin;
use crate::storage::fixture::TestItem;
use crate::support::app::TestApp;

const CHANNEL: &str = "channels/General (1a2b3c)";
const THREAD: &str = "channels/General (1a2b3c)/2026-11-01 (4d5e6f)";

async fn team_item(app: &TestApp, org: &str) -> uuid::Uuid {
    let now = app.state.clock.now();
    let id = uuid::Uuid::new_v4();
    protected_item::ActiveModel {
        id: Set(id),
        org_id: Set(org.parse().unwrap()),
        kind: Set("team".into()),
        graph_id: Set(uuid::Uuid::new_v4().to_string()),
        display_name: Set("Marketing".into()),
        address: Set("marketing@contoso.example".into()),
        detail: Set("Team".into()),
        state: Set("active".into()),
        has_mailbox: Set(Some(true)),
        has_drive: Set(Some(true)),
        first_seen_at: Set(now),
        changed_at: Set(now),
        inactive_since: Set(None),
        checked_at: Set(Some(now)),
        check_error: Set(None),
        directory_hints: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_point_is_browsed_as_channels_and_its_conversations_are_offered_as_a_download() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (customer, casey) =
        customer_admin(&app, &partner, "Contoso", "casey@contoso.example").await;
    let org = organization_fixture(&app, &customer, "ContosoOrg").await;
    let team = team_item(&app, &org).await;
    let thread = serde_json::json!({
        "team": {"id": "t", "displayName": "Marketing"},
        "channel": {"id": "19:general@thread.tacv2", "displayName": "General"},
        "message": {"id": "1", "body": {"contentType": "html", "content": "<p>Launch on Monday</p>"}},
        "replies": [],
    });
    let items = [
        TestItem::new(
            &format!("{CHANNEL}/channel.json"),
            br#"{"id":"19:general@thread.tacv2","displayName":"General"}"#.to_vec(),
            ItemKind::Other,
        ),
        TestItem::new(
            &format!("{THREAD}/thread.json"),
            serde_json::to_vec_pretty(&thread).unwrap(),
            ItemKind::Post,
        ),
        TestItem::new(
            &format!("{THREAD}/thread.html"),
            b"<!DOCTYPE html><title>General</title><p>Launch on Monday</p>".to_vec(),
            ItemKind::File,
        ),
        TestItem::new(
            "files/General/agenda.txt",
            b"agenda".to_vec(),
            ItemKind::File,
        ),
    ];
    let request = BackupRequest {
        customer: CustomerId(customer.parse().unwrap()),
        org: OrgId(org.parse().unwrap()),
        item: ItemId(team),
        workload: Workload::Team,
        display_name: "Marketing".into(),
        encrypted_repository: None,
    };
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sources: Vec<_> = items.iter().map(|i| i.source(&counter)).collect();
    let outcome =
        ingest::back_up_archive(&app.state.storage, &request, futures::stream::iter(sources))
            .await
            .unwrap();
    let point = format!(
        "/c/{customer}/backups/{}/points/{}",
        outcome.archive.id, outcome.recovery_point.id
    );
    let encoded =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();

    // Channels and threads as folders; a thread's page and JSON inside.
    let page = casey.get(&point).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Folders and channels"), "{}", page.body);
    assert!(page.body.contains("General (1a2b3c)"), "{}", page.body);
    let page = casey
        .get(&format!("{point}?folder={}", encoded(THREAD)))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("thread.html") && page.body.contains("thread.json"),
        "{}",
        page.body
    );
    let page = casey
        .get(&format!(
            "{point}/preview?path={}",
            encoded(&format!("{THREAD}/thread.json"))
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);

    // The form says why conversations do not go back, and offers them as a download.
    let form = format!("{point}/restore");
    let page = casey.get(&format!("{form}?path=channels")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("Microsoft offers no import of channel messages"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!("{point}/zip?path=channels")),
        "{}",
        page.body
    );
    let zip = casey.get(&format!("{point}/zip?path=channels")).await;
    assert_eq!(zip.status, StatusCode::OK);

    // Conversations only: refused with the reason, nothing queued.
    let page = casey
        .post(
            &form,
            &[
                ("path", "channels"),
                ("target", &team.to_string()),
                ("folders", "original"),
                ("collision", "keep_both"),
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
        page.body.contains("cannot be put back into Teams"),
        "{}",
        page.body
    );
    let restores = || async {
        job::Entity::find()
            .filter(job::Column::Kind.eq(JobKind::Restore.as_str()))
            .all(&app.state.db)
            .await
            .unwrap()
    };
    assert!(restores().await.is_empty());

    // Everything: the files are queued (the job says what it did with the conversations).
    casey.get(&format!("{form}?path=")).await;
    let page = casey
        .post(
            &form,
            &[
                ("path", ""),
                ("target", &team.to_string()),
                ("folders", "original"),
                ("collision", "keep_both"),
            ],
        )
        .await;
    assert_eq!(restores().await.len(), 1, "{}", page.body);
}
