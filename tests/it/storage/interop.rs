//! Debian's `restic` (0.14) reads what Skyvault wrote: check with `--read-data`, list snapshots
//! with Skyvault's tags, dump the original bytes.

use std::process::Command;

use skyvault::ids::ItemId;
use skyvault::storage::{ItemKind, Workload};

use super::fixture::{Fixture, TestItem, fixture, small_corpus};

const RESTIC: &str = "restic";

pub fn restic_installed() -> bool {
    crate::support::tool_available(RESTIC, "apt-get install restic")
}

pub fn restic(f: &Fixture, password: &str, args: &[&str]) -> std::process::Output {
    Command::new(RESTIC)
        .arg("-r")
        .arg(f.repository_path())
        .args(["--no-cache", "--quiet"])
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run `restic` (install Debian's restic package): {err}")
        })
}

/// `restic check --read-data` must accept the customer's repository.
pub async fn restic_check(f: &Fixture) {
    if !restic_installed() {
        return;
    }
    let password = f
        .storage
        .reveal_repository_password(f.customer)
        .await
        .unwrap();
    let output = restic(f, &password, &["check", "--read-data"]);
    assert!(
        output.status.success(),
        "restic check failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn restic_checks_lists_and_dumps_what_skyvault_wrote() {
    if !restic_installed() {
        return;
    }
    let f = fixture().await;
    let mut items = small_corpus();
    let request = f.request(ItemId::new(), Workload::Mailbox, "Alice");
    f.back_up(&request, &items).await;
    items.push(TestItem::new(
        "Inbox/new.eml",
        b"Subject: hi\r\n\r\nnew".to_vec(),
        ItemKind::Message,
    ));
    // A changed item whose new bytes do not arrive makes the second point partial.
    items[3] = items[3].edited(b"edited".to_vec());
    items[3].fail_with = Some("gone".into());
    f.clock.advance(chrono::Duration::days(1));
    let second = f.back_up(&request, &items).await;

    restic_check(&f).await;

    let password = f
        .storage
        .reveal_repository_password(f.customer)
        .await
        .unwrap();
    let output = restic(&f, &password, &["snapshots", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let snapshots: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let snapshots = snapshots.as_array().unwrap();
    assert_eq!(snapshots.len(), 2);
    let archive_tag = format!("archive:{}", second.archive.id);
    let partial: Vec<&serde_json::Value> = snapshots
        .iter()
        .filter(|s| s["tags"].as_array().unwrap().iter().any(|t| t == "partial"))
        .collect();
    assert_eq!(
        partial.len(),
        1,
        "the partial point carries the `partial` tag"
    );
    assert_eq!(
        partial[0]["id"].as_str().unwrap(),
        second.recovery_point.snapshot_id
    );
    // Debian's restic lists the partial point but, having no version of the failed item in it,
    // cannot dump it from there.
    for snapshot in snapshots {
        let tags = snapshot["tags"].as_array().unwrap();
        assert!(tags.iter().any(|t| t == archive_tag.as_str()));
        assert!(tags.iter().any(|t| t == "workload:mailbox"));
        assert_eq!(snapshot["hostname"], "skyvault");
    }

    // Each restic run derives the key from the password (slow on purpose): dump a sample, a
    // message, the large file and the item added in the second backup.
    let sample = [
        "Inbox/AAMkAD0001.eml",
        "Documents/big video.mp4",
        "Inbox/new.eml",
    ];
    for item in items.iter().filter(|i| sample.contains(&i.path.as_str())) {
        let path = format!("/mailbox/{}", item.path);
        let output = restic(
            &f,
            &password,
            &["dump", &second.recovery_point.snapshot_id, &path],
        );
        assert!(
            output.status.success(),
            "dump {path}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stdout == *item.bytes,
            "restic dump of {path} differs"
        );
    }
}
