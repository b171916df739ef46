//! Attachments of 3 MB and more on the JSON restore path go through Outlook's attachment upload
//! session and come back byte for byte; the simulator holds the client to Microsoft's rules (one
//! POST only under 3 MB, a session only from 3 MB).

use base64::Engine;
use futures::TryStreamExt;
use skyvault::ids::ItemId;
use skyvault::m365::mail_create::NewAttachment;
use skyvault::restore::job::ItemResult;
use skyvault::restore::mailbox::{self, FolderMode, JSON_PATH_LOSS, MailboxTarget};
use skyvault::storage::{ItemKind, Workload};

use super::jobs::{Collected, folder_at, messages, primary, random_bytes};
use crate::backup::backup_fixture;
use crate::storage::fixture::TestItem;

/// A received message with a 5 MB attachment and a small one, as RFC 822.
fn message_with(big: &[u8], small: &[u8]) -> Vec<u8> {
    let b64 = |bytes: &[u8]| {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        text.as_bytes()
            .chunks(76)
            .map(|line| format!("{}\r\n", String::from_utf8_lossy(line)))
            .collect::<String>()
    };
    format!(
        "From: Ann <ann@contoso.com>\r\nTo: Bob <bob@contoso.com>\r\nSubject: Quarterly figures with the video\r\n\
Date: Tue, 22 Sep 2026 10:00:00 +0000\r\nMessage-ID: <big-attachment@contoso.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
The figures and the recording.\r\n--b1\r\nContent-Type: video/mp4; name=\"recording.mp4\"\r\n\
Content-Disposition: attachment; filename=\"recording.mp4\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\
--b1\r\nContent-Type: text/csv; name=\"figures.csv\"\r\nContent-Disposition: attachment; filename=\"figures.csv\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}--b1--\r\n",
        b64(big),
        b64(small)
    )
    .into_bytes()
}

#[tokio::test]
async fn a_5_mb_attachment_survives_the_json_restore_byte_for_byte() {
    let x = backup_fixture().await;
    let big = random_bytes(5, 5 * 1024 * 1024 + 4321);
    let small = b"quarter,revenue\nQ3,1200\n".to_vec();
    let raw = message_with(&big, &small);
    let request =
        x.f.request(ItemId::new(), Workload::Mailbox, "Ann's mailbox");
    let outcome =
        x.f.back_up(
            &request,
            &[TestItem::new("Inbox/figures.eml", raw, ItemKind::Message)],
        )
        .await;
    let point = outcome.recovery_point.id;
    let entries = x.items(point).await;
    let (other, _) = x.user(1).await;
    let target = MailboxTarget {
        user_id: other.clone(),
        mailbox: primary(&x, &other).await,
        folders: FolderMode::NewFolder("Large attachments".into()),
    };
    let sink = Collected::default();
    // A MIME copy without an export stream goes through the JSON create.
    let summary = mailbox::restore_items(
        &x.h.graph(),
        &x.f.storage,
        &x.f.scope(),
        point,
        mailbox::plan_items(&entries),
        &target,
        &sink,
    )
    .await;
    assert_eq!(summary.restored_with_loss, 1, "{:?}", sink.results());
    let (_, result, detail) = sink.results().remove(0);
    assert_eq!(result, ItemResult::RestoredWithLoss);
    assert!(detail.starts_with(JSON_PATH_LOSS), "{detail}");
    assert!(!detail.contains("attachment"), "nothing lost: {detail}");

    let graph = x.h.graph();
    let folder = folder_at(&graph, &target.mailbox, &["Large attachments", "Inbox"]).await;
    let restored = messages(&graph, &other, &folder).await;
    assert_eq!(restored.len(), 1);
    let message = &restored[0];
    assert_eq!(message.is_draft, Some(false));
    let mime: Vec<u8> = graph
        .message_mime(&other, &message.id)
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .concat();
    let parsed = mail_parser::MessageParser::default().parse(&mime).unwrap();
    let attachment = |name: &str| {
        use mail_parser::MimeHeaders;
        parsed
            .attachments()
            .find(|a| a.attachment_name() == Some(name))
            .map(|a| a.contents().to_vec())
            .unwrap_or_else(|| panic!("{name} is not on the restored message"))
    };
    assert!(
        attachment("recording.mp4") == big,
        "the 5 MB attachment differs"
    );
    assert_eq!(attachment("figures.csv"), small);

    // Microsoft's rules, held by the simulator: one POST carries less than 3 MB, a session
    // takes 3 MB and more.
    let too_big = NewAttachment {
        name: "again.bin".into(),
        content_type: "application/octet-stream".into(),
        bytes: big.clone(),
        content_id: None,
        is_inline: false,
    };
    let refused = graph
        .add_file_attachment(&other, &message.id, &too_big)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(413), "{refused}");
    let too_small = NewAttachment {
        bytes: small.clone(),
        ..too_big
    };
    let refused = graph
        .create_attachment_upload(&other, &message.id, &too_small)
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some("ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"),
        "{refused}"
    );
}
