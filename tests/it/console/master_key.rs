//! The master key across restarts: a missing or different key file stops the start with a
//! message naming the file instead of starting with secrets nobody can open; rotation re-seals
//! every secret, and a rotation cut short at any point leaves a key that opens them all. The data
//! folder, the SQLite database and the key are readable only by Skyvault's user.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sea_orm::ConnectionTrait;
use skyvault::config::Settings;
use skyvault::crypto::MasterKey;
use skyvault::ids::CustomerId;
use skyvault::key_custody::{self, KeyCustodyError};

use crate::support::app::TestApp;
use crate::support::fresh_database;

/// Starts the app a second time on the same database and key file (the first keeps running,
/// as another node would); the refusal's message, if it refuses.
async fn second_start(app: &TestApp) -> Result<(), String> {
    skyvault::app::prepare(app.launch.clone(), Arc::new(app.clock.clone()))
        .await
        .map(drop)
        .map_err(|err| err.to_string())
}

fn key_path(app: &TestApp) -> PathBuf {
    app.launch.master_key_file()
}

/// A customer whose backup repository exists: its password is sealed in the database.
async fn customer_with_repository(
    app: &TestApp,
    partner: &crate::support::app::Visitor,
    name: &str,
) -> CustomerId {
    let id = app
        .customer_with_admin(
            partner,
            name,
            &format!("admin@{}.example", name.to_lowercase()),
        )
        .await;
    let customer: CustomerId = id.parse().unwrap();
    app.state.storage.repository(customer).await.unwrap();
    customer
}

async fn forget_check_value(app: &TestApp) {
    app.state
        .db
        .execute_unprepared("DELETE FROM master_key_check")
        .await
        .unwrap();
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_master_key_stops_the_start_instead_of_making_a_new_one() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let key = key_path(&app);
    let kept = std::fs::read(&key).unwrap();

    // A database that has recorded its key: no start without it, and no new key.
    std::fs::remove_file(&key).unwrap();
    let refusal = second_start(&app).await.unwrap_err();
    assert!(refusal.contains(&key.display().to_string()), "{refusal}");
    assert!(refusal.contains("is missing"), "{refusal}");
    assert!(
        refusal.contains("Put the key file from your backup back"),
        "{refusal}"
    );
    assert!(!key.exists(), "no new key was made");

    // A database from before check values, holding a sealed secret: the same.
    customer_with_repository(&app, &partner, "Contoso").await;
    forget_check_value(&app).await;
    let refusal = second_start(&app).await.unwrap_err();
    assert!(refusal.contains("is missing"), "{refusal}");
    assert!(!key.exists(), "no new key was made");

    // The key put back: it starts.
    std::fs::write(&key, &kept).unwrap();
    second_start(&app).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_master_key_stops_the_start_and_names_the_file() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer = customer_with_repository(&app, &partner, "Contoso").await;
    let key = key_path(&app);
    let kept = std::fs::read(&key).unwrap();

    MasterKey::random().write_file(&key).unwrap();
    let refusal = second_start(&app).await.unwrap_err();
    assert!(refusal.contains(&key.display().to_string()), "{refusal}");
    assert!(
        refusal.contains("is not the one this database's secrets are sealed with"),
        "{refusal}"
    );

    // Without a recorded check value, the sealed password is what tells.
    forget_check_value(&app).await;
    let refusal = second_start(&app).await.unwrap_err();
    assert!(
        refusal.contains(&format!(
            "does not open the sealed repository password of customer {customer}"
        )),
        "{refusal}"
    );

    // The right key: it starts, and records the check value again.
    std::fs::write(&key, &kept).unwrap();
    second_start(&app).await.unwrap();
    MasterKey::random().write_file(&key).unwrap();
    let refusal = second_start(&app).await.unwrap_err();
    assert!(refusal.contains("is not the one"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_reseals_every_secret_and_backups_stay_readable() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let contoso = customer_with_repository(&app, &partner, "Contoso").await;
    let fabrikam = customer_with_repository(&app, &partner, "Fabrikam").await;
    let passwords = [
        app.state
            .storage
            .reveal_repository_password(contoso)
            .await
            .unwrap(),
        app.state
            .storage
            .reveal_repository_password(fabrikam)
            .await
            .unwrap(),
    ];
    let key = key_path(&app);
    let old = std::fs::read_to_string(&key).unwrap();

    let rotation = key_custody::rotate_master_key(&app.state.db, &app.clock, &key)
        .await
        .unwrap();
    assert_eq!(rotation.resealed, 2);
    let new = std::fs::read_to_string(&key).unwrap();
    assert_ne!(new, old);
    assert_eq!(std::fs::read_to_string(&rotation.previous).unwrap(), old);
    assert!(!key_custody::pending_key_path(&key).exists());
    #[cfg(unix)]
    {
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&rotation.previous), 0o600);
    }

    // The old key no longer opens anything; the process started with it is refused.
    std::fs::write(&key, &old).unwrap();
    let refusal = second_start(&app).await.unwrap_err();
    assert!(refusal.contains("is not the one"), "{refusal}");
    std::fs::write(&key, &new).unwrap();

    let app = app.restart().await;
    for (customer, password) in [(contoso, &passwords[0]), (fabrikam, &passwords[1])] {
        assert_eq!(
            &app.state
                .storage
                .reveal_repository_password(customer)
                .await
                .unwrap(),
            password
        );
        app.state.storage.repository(customer).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_cut_short_leaves_one_key_that_opens_everything() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let contoso = customer_with_repository(&app, &partner, "Contoso").await;
    let fabrikam = customer_with_repository(&app, &partner, "Fabrikam").await;
    let password = app
        .state
        .storage
        .reveal_repository_password(contoso)
        .await
        .unwrap();
    let key = key_path(&app);
    let pending = key_custody::pending_key_path(&key);
    let old = std::fs::read_to_string(&key).unwrap();

    // A secret the key cannot open fails the rotation inside its transaction: nothing changed,
    // not even the secrets re-sealed before it.
    app.state
        .db
        .execute_unprepared(&format!(
            "UPDATE storage_repository SET sealed_password = 'sv1:damaged' WHERE location LIKE '%{fabrikam}'"
        ))
        .await
        .unwrap();
    let failed = key_custody::rotate_master_key(&app.state.db, &app.clock, &key).await;
    assert!(
        matches!(failed, Err(KeyCustodyError::Storage(_))),
        "{failed:?}"
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), old);
    assert!(!pending.exists(), "the unused new key is removed");
    second_start(&app).await.unwrap();
    assert_eq!(
        app.state
            .storage
            .reveal_repository_password(contoso)
            .await
            .unwrap(),
        password
    );
    app.state
        .db
        .execute_unprepared(&format!(
            "DELETE FROM storage_repository WHERE location LIKE '%{fabrikam}'"
        ))
        .await
        .unwrap();

    // Stopped before its transaction committed: the new key is left at K.new, unused.
    let stray = MasterKey::random();
    stray.write_file(&pending).unwrap();
    second_start(&app).await.unwrap();
    assert_eq!(std::fs::read_to_string(&key).unwrap(), old);
    let refused = key_custody::rotate_master_key(&app.state.db, &app.clock, &key).await;
    assert!(
        matches!(refused, Err(KeyCustodyError::PendingRotation { .. })),
        "{refused:?}"
    );
    std::fs::remove_file(&pending).unwrap();

    // Stopped after the commit, before the rename: the next start finishes the rename.
    key_custody::rotate_master_key(&app.state.db, &app.clock, &key)
        .await
        .unwrap();
    let new = std::fs::read_to_string(&key).unwrap();
    std::fs::rename(&key, &pending).unwrap();
    std::fs::copy(key_custody::previous_key_path(&key), &key).unwrap();
    let app = app.restart().await;
    assert_eq!(std::fs::read_to_string(&key).unwrap(), new);
    assert!(!pending.exists());
    assert_eq!(
        app.state
            .storage
            .reveal_repository_password(contoso)
            .await
            .unwrap(),
        password
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_database_and_key_are_readable_only_by_skyvault() {
    use std::os::unix::fs::PermissionsExt;

    let db = fresh_database().await;
    let data = db.dir.path().join("data");
    let sqlite = !db.url.starts_with("postgres");
    let settings = Settings {
        data_dir: data.display().to_string(),
        // SQLite at its default place in the data folder; PostgreSQL at the test's database.
        database_url: if sqlite {
            String::new()
        } else {
            db.url.clone()
        },
        m365_client_id: crate::support::app::TEST_CLIENT_ID.into(),
        m365_client_secret: crate::support::app::TEST_CLIENT_SECRET.into(),
        ..Settings::default()
    };
    let clock = Arc::new(skyvault::clock::ManualClock::new(chrono::Utc::now()));
    let start = || skyvault::app::prepare(settings.clone(), clock.clone());
    let state = start().await.unwrap();
    let database = data.join("skyvault.sqlite");
    let check = |what: &str| {
        assert_eq!(mode(&data), 0o700, "data folder, {what}");
        assert_eq!(mode(&data.join("master.key")), 0o600, "master key, {what}");
        if sqlite {
            assert_eq!(mode(&database), 0o600, "database, {what}");
            for companion in ["skyvault.sqlite-wal", "skyvault.sqlite-shm"] {
                let path = data.join(companion);
                if path.exists() {
                    assert_eq!(mode(&path), 0o600, "{companion}, {what}");
                }
            }
        }
    };
    check("made at the first start");
    drop(state);

    // Made readable to everyone by an older version or by hand: narrowed at the next start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    if sqlite {
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    start().await.unwrap();
    check("narrowed at a later start");
}
