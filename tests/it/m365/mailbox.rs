//! The mailbox import/export API, against a scripted Graph answering as Microsoft's pages show
//! (usersettings-list-exchange, mailboxfolder-delta, mailboxitem-delta, mailbox-exportitems,
//! mailbox-createimportsession, import-exchange-mailbox-item, handle-archive-mailbox-redirects):
//! the URLs and bodies sent, delta pages and links, `@removed`, a 410 resync, the 20-item cap,
//! per-item errors, archive redirects, the token kept away from the import URL, throttling.

use base64::Engine;
use futures::TryStreamExt;
use serde_json::json;
use skyvault::m365::{
    DeltaChange, DeltaStart, EXPORT_BATCH, GraphError, MailboxApi, MailboxRef, Resource,
    collect_round, import_target_mailbox,
};

use super::scripted_graph::{
    Bases, Counter, Reply, Seen, TOKEN, no_mailbox, scripted_graph, throttled,
};

const PRIMARY: &str = "MBX:e0643f21@a7809c93";
const ARCHIVE: &str = "MBX:4eba5149@a7809c93";
const AUXILIARY: &str = "MBX:767fh867@a7809c93";
const OWNER: &str = "5d9a3a2e-8c1f-4c43-9a4f-1f0e6b9f2a11";

fn primary() -> MailboxRef {
    MailboxRef {
        id: PRIMARY.into(),
        owner: OWNER.into(),
        api: MailboxApi::V1,
    }
}

fn archive() -> MailboxRef {
    MailboxRef {
        id: ARCHIVE.into(),
        owner: OWNER.into(),
        api: MailboxApi::Beta,
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unused(_: &Bases, seen: &Seen) -> Reply {
    panic!("unexpected request to the other origin: {}", seen.target)
}

fn bearer(seen: &Seen) -> Option<&str> {
    seen.header("authorization")
}

#[tokio::test]
async fn mailboxes_are_the_primary_from_v1_and_the_archive_from_beta() {
    let g = scripted_graph(
        |_, seen| match seen.target.as_str() {
            "/v1.0/users/megan/settings/exchange" => Reply::json(json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('megan')/settings/exchange/$entity",
                "primaryMailboxId": PRIMARY
            })),
            "/beta/users/megan/settings/exchange" => Reply::json(json!({
                "primaryMailboxId": PRIMARY, "inPlaceArchiveMailboxId": ARCHIVE
            })),
            "/v1.0/users/alex/settings/exchange" => {
                Reply::json(json!({"primaryMailboxId": PRIMARY}))
            }
            "/beta/users/alex/settings/exchange" => {
                Reply::json(json!({"primaryMailboxId": PRIMARY}))
            }
            _ => no_mailbox(),
        },
        unused,
    );
    let graph = g.client.tenant(g.tenant);

    let megan = graph.exchange_mailboxes("megan").await.unwrap();
    assert_eq!(megan.primary.as_deref(), Some(PRIMARY));
    assert_eq!(megan.archive.as_deref(), Some(ARCHIVE));
    assert_eq!(megan.archive_ref("megan").unwrap().api, MailboxApi::Beta);
    assert_eq!(megan.primary_ref("megan").unwrap().api, MailboxApi::V1);

    let alex = graph.exchange_mailboxes("alex").await.unwrap();
    assert_eq!(
        (alex.primary.as_deref(), alex.archive),
        (Some(PRIMARY), None)
    );

    let nobody = graph.exchange_mailboxes("unlicensed").await.unwrap();
    assert_eq!((nobody.primary, nobody.archive), (None, None));

    let requests = g.graph.graph_requests();
    assert!(
        requests
            .iter()
            .all(|s| bearer(s) == Some(&format!("Bearer {TOKEN}")[..]))
    );
    assert_eq!(
        requests
            .iter()
            .filter(|s| s.target.contains("unlicensed"))
            .count(),
        1,
        "no beta call for a user without a mailbox"
    );
}

/// Folder delta as mailboxfolder-delta.md shows it, for the primary mailbox.
fn folder_delta(bases: &Bases, seen: &Seen, resyncs: &Counter) -> Reply {
    let root = format!(
        "{}/v1.0/admin/exchange/mailboxes/{PRIMARY}/folders/delta",
        bases.graph
    );
    let target = seen.target.as_str();
    if target == format!("/v1.0/admin/exchange/mailboxes/{PRIMARY}/folders/delta") {
        Reply::json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(mailboxFolder)",
            "@odata.nextLink": format!("{root}?$skiptoken=page2"),
            "value": [{
                "@odata.type": "#microsoft.graph.mailboxFolder",
                "id": "EDSVrdi3lRAAACgfQBAAA=", "displayName": "Archive",
                "parentFolderId": "NJWt2LeVEAAAIBCAAAAA==",
                "parentMailboxUrl": format!("https://graph.microsoft.com/v1.0/admin/exchange/mailboxes/{PRIMARY}"),
                "childFolderCount": 0, "totalItemCount": 2, "wellKnownName": "archive", "type": "IPF.Note"
            }]
        }))
    } else if target.ends_with("$skiptoken=page2") {
        Reply::json(json!({
            "@odata.deltaLink": format!("{root}?$deltatoken=round1"),
            "value": [
                {"@odata.type": "#microsoft.graph.mailboxFolder", "id": "NJWt2LeVEAAAIBDQAAAA==",
                 "displayName": "Project Calendar", "childFolderCount": 5, "totalItemCount": 6,
                 "wellKnownName": null, "type": "IPF.Appointment"},
                {"@odata.type": "#microsoft.graph.mailboxFolder", "id": "OldFolder=", "@removed": {"reason": "deleted"}}
            ]
        }))
    } else if target.ends_with("$deltatoken=round1") {
        resyncs.next();
        Reply::status_json(
            410,
            json!({"error": {"code": "SyncStateNotFound", "message": "The sync state is no longer available."}}),
        )
        .header("location", &root)
    } else {
        Reply::status_json(
            404,
            json!({"error": {"code": "ErrorItemNotFound", "message": "?"}}),
        )
    }
}

#[tokio::test]
async fn folder_delta_follows_pages_keeps_removals_and_resyncs_after_a_410() {
    let resyncs = std::sync::Arc::new(Counter::default());
    let seen_resyncs = resyncs.clone();
    let g = scripted_graph(move |b, s| folder_delta(b, s, &resyncs), unused);
    let graph = g.client.tenant(g.tenant);

    let round = collect_round(graph.mailbox_folders_delta(&primary(), DeltaStart::Initial))
        .await
        .unwrap();
    assert!(round.full_sync);
    assert!(round.delta_link.as_str().ends_with("$deltatoken=round1"));
    let ids: Vec<_> = round.changes.iter().map(|c| c.id().to_string()).collect();
    assert_eq!(
        ids,
        [
            "EDSVrdi3lRAAACgfQBAAA=",
            "NJWt2LeVEAAAIBDQAAAA==",
            "OldFolder="
        ]
    );
    match &round.changes[1] {
        DeltaChange::Upsert(folder) => {
            assert_eq!(folder.display_name, "Project Calendar");
            assert_eq!(folder.folder_type.as_deref(), Some("IPF.Appointment"));
            assert_eq!(folder.child_folder_count, Some(5));
            assert_eq!(folder.well_known_name, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(round.changes[2], DeltaChange::Removed { .. }));

    // The stored link is refused with 410: the round starts again from the initial query and
    // says it is a full enumeration.
    let again = collect_round(
        graph.mailbox_folders_delta(&primary(), DeltaStart::Resume(round.delta_link)),
    )
    .await
    .unwrap();
    assert!(again.full_sync);
    assert_eq!(again.changes.len(), 3);
    assert_eq!(seen_resyncs.next(), 1, "the stale link was asked once");

    let requests = g.graph.graph_requests();
    let first = &requests[0];
    assert_eq!(first.method, "GET");
    assert!(
        first
            .header("prefer")
            .unwrap()
            .contains("IdType=\"ImmutableId\""),
        "{first:?}"
    );
    assert!(requests.iter().all(|s| bearer(s).is_some()));
}

#[tokio::test]
async fn item_delta_asks_for_the_page_size_on_every_page() {
    let g = scripted_graph(
        |b, s| {
            let root = format!(
                "{}/v1.0/admin/exchange/mailboxes/{PRIMARY}/folders/AAMkAGUwNjQ4ZyTAAA=/items/delta",
                b.graph
            );
            let item = |id: &str| {
                json!({
                    "@odata.type": "#microsoft.graph.mailboxItem",
                    "@odata.etag": "W/\"CQAAABYAAACQ2fKdhq8oSKEDSVrdi3lRAAFR+6ZT\"",
                    "createdDateTime": "2021-10-19T06:30:30Z", "lastModifiedDateTime": "2021-10-19T07:17:06Z",
                    "changeKey": "CQAAABYAAACQ2fKdhq8oSKEDSVrdi3lRAAFR+6ZT", "categories": ["Blue"],
                    "type": "IPM.Note", "size": 75329, "id": id
                })
            };
            if s.target.ends_with("$skiptoken=next") {
                Reply::json(json!({"@odata.deltaLink": format!("{root}?$deltatoken=d"),
                    "value": [item("c"), {"id": "gone", "@removed": {"reason": "deleted"}}]}))
            } else {
                Reply::json(json!({"@odata.nextLink": format!("{root}?$skiptoken=next"),
                    "value": [item("a"), item("b")]}))
            }
        },
        unused,
    );
    let graph = g.client.tenant(g.tenant);
    let round = collect_round(graph.mailbox_items_delta(
        &primary(),
        "AAMkAGUwNjQ4ZyTAAA=",
        DeltaStart::Initial,
        2,
    ))
    .await
    .unwrap();
    assert_eq!(round.changes.len(), 4);
    let DeltaChange::Upsert(first) = &round.changes[0] else {
        panic!("{:?}", round.changes[0]);
    };
    assert_eq!(first.size, Some(75329));
    assert_eq!(first.item_type.as_deref(), Some("IPM.Note"));
    assert_eq!(first.categories, ["Blue"]);
    assert_eq!(
        first.change_key.as_deref(),
        Some("CQAAABYAAACQ2fKdhq8oSKEDSVrdi3lRAAFR+6ZT")
    );

    let requests = g.graph.graph_requests();
    assert_eq!(
        requests[0].target,
        format!("/v1.0/admin/exchange/mailboxes/{PRIMARY}/folders/AAMkAGUwNjQ4ZyTAAA=/items/delta")
    );
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let prefer = request.header("prefer").unwrap();
        assert!(prefer.contains("odata.maxpagesize=2"), "{prefer}");
        assert!(prefer.contains("IdType=\"ImmutableId\""), "{prefer}");
    }
}

/// exportItems answering each id with its own bytes, except `missing` (an error) and `silent`
/// (left out of the answer).
fn export_answer(seen: &Seen) -> Reply {
    let ids = seen.json()["itemIds"].as_array().unwrap().clone();
    let value: Vec<_> = ids
        .iter()
        .map(|id| id.as_str().unwrap())
        .filter(|id| *id != "silent")
        .map(|id| {
            if id == "missing" {
                json!({"itemId": id, "error": {"code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}})
            } else {
                json!({"itemId": id, "changeKey": format!("ck-{id}"), "data": b64(format!("fts:{id}").as_bytes())})
            }
        })
        .collect();
    Reply::json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.exportItemResponse)",
        "value": value
    }))
}

#[tokio::test]
async fn export_sends_at_most_twenty_ids_a_request_and_keeps_each_items_error() {
    let g = scripted_graph(|_, s| export_answer(s), unused);
    let graph = g.client.tenant(g.tenant);
    let mut ids: Vec<String> = (0..43).map(|i| format!("item{i}")).collect();
    ids[7] = "missing".into();
    ids[30] = "silent".into();

    let exported = graph.export_mailbox_items(&primary(), &ids).await.unwrap();
    assert_eq!(
        exported
            .iter()
            .map(|e| e.item_id.clone())
            .collect::<Vec<_>>(),
        ids,
        "one answer per id, in the order asked"
    );
    let first = exported[0].result.as_ref().unwrap();
    assert_eq!(&first.data[..], b"fts:item0", "base64 decoded");
    assert_eq!(first.change_key.as_deref(), Some("ck-item0"));
    let missing = exported[7].result.as_ref().unwrap_err();
    assert_eq!(missing.code, "ErrorItemNotFound");
    assert_eq!(
        exported[30].result.as_ref().unwrap_err().code,
        "ItemNotReturned"
    );
    assert_eq!(exported.iter().filter(|e| e.result.is_ok()).count(), 41);

    let requests = g.graph.graph_requests();
    let sizes: Vec<_> = requests
        .iter()
        .map(|s| s.json()["itemIds"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [EXPORT_BATCH, EXPORT_BATCH, 3]);
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.target,
            format!("/v1.0/admin/exchange/mailboxes/{PRIMARY}/exportItems")
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert!(bearer(request).is_some());
    }
    assert!(
        graph
            .export_mailbox_items(&primary(), &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        g.graph.graph_requests().len(),
        3,
        "nothing to export, nothing sent"
    );
}

#[tokio::test]
async fn archive_redirects_are_followed_on_graph_and_refused_elsewhere() {
    let g = scripted_graph(
        |b, s| {
            let aux = format!("{}/beta/admin/exchange/mailboxes/{AUXILIARY}", b.graph);
            let target = s.target.as_str();
            if target
                == format!("/beta/admin/exchange/mailboxes/{ARCHIVE}/folders/Expanded=/items/delta")
            {
                Reply::status_json(308, json!({}))
                    .header("location", &format!("{aux}/folders/Expanded=/items/delta"))
            } else if target
                == format!(
                    "/beta/admin/exchange/mailboxes/{AUXILIARY}/folders/Expanded=/items/delta"
                )
            {
                Reply::json(json!({
                    "@odata.deltaLink": format!("{aux}/folders/Expanded=/items/delta?$deltatoken=x"),
                    "value": [{"id": "old-mail", "type": "IPM.Note", "size": 10}]
                }))
            } else if target
                == format!(
                    "/beta/admin/exchange/mailboxes/{ARCHIVE}/folders/Elsewhere=/items/delta"
                )
            {
                Reply::status_json(308, json!({})).header(
                    "location",
                    &format!("{}/beta/admin/exchange/mailboxes/{AUXILIARY}/folders/Elsewhere=/items/delta", b.other),
                )
            } else if target == format!("/beta/admin/exchange/mailboxes/{ARCHIVE}/exportItems") {
                Reply::json(json!({"value": [
                    {"itemId": "here", "changeKey": "ck1", "data": b64(b"in the main archive")},
                    {"itemId": "moved", "Error": {"message": format!("{aux}/exportItems"),
                        "code": "ErrorArchiveFolderMovedPermanently"}},
                    {"itemId": "astray", "Error": {"message": format!("{}/beta/admin/exchange/mailboxes/{AUXILIARY}/exportItems", b.other),
                        "code": "ErrorArchiveFolderMovedPermanently"}}
                ]}))
            } else if target == format!("/beta/admin/exchange/mailboxes/{AUXILIARY}/exportItems") {
                assert_eq!(s.json(), json!({"itemIds": ["moved"]}));
                Reply::json(json!({"value": [
                    {"itemId": "moved", "changeKey": "ck2", "data": b64(b"in the auxiliary archive")}
                ]}))
            } else {
                Reply::status_json(
                    404,
                    json!({"error": {"code": "ErrorItemNotFound", "message": target}}),
                )
            }
        },
        unused,
    );
    let graph = g.client.tenant(g.tenant);

    let round =
        collect_round(graph.mailbox_items_delta(&archive(), "Expanded=", DeltaStart::Initial, 50))
            .await
            .unwrap();
    assert_eq!(round.changes.len(), 1);
    assert!(
        round.delta_link.as_str().contains(AUXILIARY),
        "the stored link follows the data"
    );

    let error =
        collect_round(graph.mailbox_items_delta(&archive(), "Elsewhere=", DeltaStart::Initial, 50))
            .await
            .unwrap_err();
    assert!(matches!(error, GraphError::UntrustedLink(_)), "{error:?}");

    let ids = [
        "here".to_string(),
        "moved".to_string(),
        "astray".to_string(),
    ];
    let exported = graph.export_mailbox_items(&archive(), &ids).await.unwrap();
    assert_eq!(
        &exported[0].result.as_ref().unwrap().data[..],
        b"in the main archive"
    );
    assert_eq!(
        &exported[1].result.as_ref().unwrap().data[..],
        b"in the auxiliary archive"
    );
    assert_eq!(
        exported[2].result.as_ref().unwrap_err().code,
        "ErrorArchiveFolderMovedPermanently",
        "a redirect off Graph is not followed"
    );

    let requests = g.graph.graph_requests();
    assert!(
        requests.iter().all(|s| s.origin == g.graph.base),
        "nothing went to the foreign host"
    );
    let followed = requests
        .iter()
        .find(|s| s.target.contains(AUXILIARY) && s.target.contains("/items/delta"))
        .expect("the 308 was followed");
    assert_eq!(bearer(followed), Some(&format!("Bearer {TOKEN}")[..]));
    assert!(
        followed
            .header("prefer")
            .unwrap()
            .contains("odata.maxpagesize=50")
    );
}

#[tokio::test]
async fn imports_go_to_the_preauthenticated_url_without_the_token() {
    let attempts = std::sync::Arc::new(Counter::default());
    let import_attempts = attempts.clone();
    let g = scripted_graph(
        |b, s| {
            assert_eq!(s.method, "POST");
            assert_eq!(
                s.target,
                format!("/v1.0/admin/exchange/mailboxes/{PRIMARY}/createImportSession")
            );
            Reply::status_json(
                201,
                json!({
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.mailboxItemImportSession",
                    "importUrl": format!("{}/api/gv1.0/Mailboxes('{PRIMARY}')/importItem?authtoken=eyJhbGciOiJSUzI1NiIsImtpZCI6IjFTeXQ1b", b.other),
                    "expirationDateTime": "2024-10-17T19:00:48.1052906Z"
                }),
            )
        },
        move |_, s| {
            let body = s.json();
            match body["FolderId"].as_str().unwrap() {
                // First throttled, then created.
                "Inbox=" if import_attempts.next() == 0 => throttled(),
                "Inbox=" => Reply::json(json!({
                    "@odata.context": "https://outlook.office365.com/api/gv1.0/$metadata#microsoft.graph.importMailboxItemResponse",
                    "itemId": "EDSVrdi3lRAAFSX03NAAA=", "changeKey": "kNnynYavKEihA0la3Yt5UQABUftGQg=="
                })),
                "Expanded=" => Reply::status_json(
                    409,
                    json!({
                        "Message": format!("Invalid import session. The target session is expected in mailbox {AUXILIARY}.")
                    }),
                ),
                // A gateway timeout: the item may exist now, so it must not be sent again.
                _ => Reply::status_json(
                    504,
                    json!({"error": {"code": "GatewayTimeout", "message": "timeout"}}),
                ),
            }
        },
    );
    let graph = g.client.tenant(g.tenant);
    let mut events = g.client.throttle_log().subscribe();

    let session = graph.create_import_session(&primary()).await.unwrap();
    assert_eq!(
        session.expires.to_rfc3339(),
        "2024-10-17T19:00:48.105290600+00:00"
    );
    assert!(!format!("{session:?}").contains("authtoken"), "{session:?}");

    let imported = graph
        .import_mailbox_item(&session, "Inbox=", b"opaque export stream")
        .await
        .unwrap();
    assert_eq!(imported.item_id, "EDSVrdi3lRAAFSX03NAAA=");
    assert_eq!(
        imported.change_key.as_deref(),
        Some("kNnynYavKEihA0la3Yt5UQABUftGQg==")
    );

    let wrong = graph
        .import_mailbox_item(&session, "Expanded=", b"x")
        .await
        .unwrap_err();
    assert_eq!(import_target_mailbox(&wrong).as_deref(), Some(AUXILIARY));

    let timeout = graph
        .import_mailbox_item(&session, "Drafts=", b"y")
        .await
        .unwrap_err();
    assert_eq!(timeout.status(), Some(504));
    assert!(!timeout.to_string().contains("authtoken"), "{timeout}");

    let imports: Vec<Seen> = g
        .other
        .graph_requests()
        .into_iter()
        .filter(|s| s.origin == g.other.base)
        .collect();
    assert_eq!(
        imports.len(),
        4,
        "429 retried once, 409 and 504 sent once each"
    );
    for import in &imports {
        assert_eq!(
            import.header("authorization"),
            None,
            "token sent to the import URL"
        );
        assert!(
            import.target.contains("authtoken="),
            "the URL is used as given"
        );
        assert_eq!(import.method, "POST");
    }
    assert_eq!(
        imports[0].json(),
        json!({"FolderId": "Inbox=", "Mode": "create", "Data": b64(b"opaque export stream")})
    );
    let session_request = g
        .graph
        .graph_requests()
        .into_iter()
        .find(|s| s.origin == g.graph.base)
        .unwrap();
    assert_eq!(
        bearer(&session_request),
        Some(&format!("Bearer {TOKEN}")[..])
    );

    let event = events.try_recv().expect("the 429 was recorded");
    assert_eq!(
        event.resource,
        Resource::Mailbox {
            tenant: g.tenant,
            user: OWNER.into()
        }
    );
    assert_eq!(
        event.retry_after,
        Some(std::time::Duration::from_millis(50))
    );
}

#[tokio::test]
async fn a_throttled_export_waits_out_retry_after_and_pauses_the_owners_mailbox() {
    let calls = Counter::default();
    let g = scripted_graph(
        move |_, s| {
            if calls.next() == 0 {
                throttled()
            } else {
                export_answer(s)
            }
        },
        unused,
    );
    let graph = g.client.tenant(g.tenant);
    let exported = graph
        .export_mailbox_items(&primary(), &["a".to_string()])
        .await
        .unwrap();
    assert_eq!(&exported[0].result.as_ref().unwrap().data[..], b"fts:a");
    let requests = g.graph.graph_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("retry-attempt"), Some("1"));
    assert_eq!(
        requests[1].body, requests[0].body,
        "the same body is sent again"
    );
    let recorded = g.client.throttle_log().recent_for_tenant(g.tenant);
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].resource,
        Resource::Mailbox {
            tenant: g.tenant,
            user: OWNER.into()
        }
    );
    assert_eq!(recorded[0].code.as_deref(), Some("ApplicationThrottled"));
}

#[tokio::test]
async fn events_contacts_and_group_posts_keep_graphs_json() {
    const EVENT: &str = r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users('u1')/events/$entity","id":"AAMkAGIAAAoZDOFAAA=","subject":"Plan summer company picnic","start":{"dateTime":"2017-04-15T11:00:00.0000000","timeZone":"Pacific Standard Time"}}"#;
    const CONTACT: &str = r#"{"id":"AAMkAGI2THk0AAA=","displayName":"Pavel Bansky","emailAddresses":[{"address":"pavelb@contoso.com","name":"Pavel Bansky"}]}"#;
    let g = scripted_graph(
        |b, s| match s.target.as_str() {
            "/v1.0/users/u1/events/AAMkAGIAAAoZDOFAAA=" => Reply {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: EVENT.into(),
            },
            "/v1.0/users/u1/contacts/AAMkAGI2THk0AAA=" => Reply {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: CONTACT.into(),
            },
            "/v1.0/groups/g1/threads" => Reply::json(json!({
                "value": [{"id": "t1", "topic": "Budget", "hasAttachments": true,
                    "lastDeliveredDateTime": "2017-07-31T18:59:05Z", "uniqueSenders": ["HR Taskforce"],
                    "preview": "Meeting", "isLocked": false}],
                "@odata.nextLink": format!("{}/v1.0/groups/g1/threads?$skiptoken=2", b.graph)
            })),
            "/v1.0/groups/g1/threads?$skiptoken=2" => {
                Reply::json(json!({"value": [{"id": "t2", "topic": "Picnic"}]}))
            }
            "/v1.0/groups/g1/threads/t1/posts?%24expand=attachments" => {
                Reply::json(json!({"value": [{
                    "id": "p1", "changeKey": "CwAAABYAAADE9kXbLjqkSJUGeLzs6eumAAB601tS",
                    "createdDateTime": "2017-07-31T18:59:04Z", "hasAttachments": true,
                    "body": {"contentType": "html", "content": "<html><body>Meeting</body></html>"},
                    "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "plan.txt", "contentBytes": b64(b"plan")}]
                }]}))
            }
            other => Reply::status_json(
                404,
                json!({"error": {"code": "ErrorItemNotFound", "message": other}}),
            ),
        },
        unused,
    );
    let graph = g.client.tenant(g.tenant);
    assert_eq!(
        &graph.event_json("u1", "AAMkAGIAAAoZDOFAAA=").await.unwrap()[..],
        EVENT.as_bytes()
    );
    assert_eq!(
        &graph.contact_json("u1", "AAMkAGI2THk0AAA=").await.unwrap()[..],
        CONTACT.as_bytes()
    );
    assert!(
        graph
            .event_json("u1", "gone")
            .await
            .unwrap_err()
            .is_not_found()
    );

    let threads: Vec<_> = graph.group_threads("g1").try_collect().await.unwrap();
    assert_eq!(
        threads.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t1", "t2"]
    );
    assert_eq!(threads[0].topic.as_deref(), Some("Budget"));
    let posts: Vec<_> = graph.thread_posts("g1", "t1").try_collect().await.unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].raw["attachments"][0]["name"], "plan.txt");
    assert_eq!(posts[0].has_attachments, Some(true));

    let requests = g.graph.graph_requests();
    let event = requests
        .iter()
        .find(|s| s.target.contains("/events/"))
        .unwrap();
    assert!(event.header("prefer").unwrap().contains("ImmutableId"));
}
