//! A protection plan with a customer encryption password, end to end: the form's messages, a
//! mailbox backed up by the plan's run into a repository of its own that `restic` opens with the
//! customer's password (and not with the customer's repository password), the password asked for
//! before anything of it is shown or restored, wrong passwords refused and throttled, the unlock
//! remembered for 15 minutes for that repository only, search leaving it out, the backup check
//! and prune going over it, and another customer unable to unlock or read it.

use chrono::Duration;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use skyvault::accounts::entities::audit_event;
use skyvault::inventory::entities::protected_item;
use skyvault::jobs::entities::job;
use skyvault::jobs::queue::{JobKind, JobStatus};
use skyvault::plans::entities::plan;
use skyvault::storage::catalog::{self, ItemKind};
use skyvault::storage::{PruneSettings, SystemScope, VerifyScope, retention};

use super::organizations::{consent, customer_admin, run_jobs};
use crate::storage::interop::restic_installed;
use crate::support::app::{Page, TestApp, Visitor};

const PASSWORD: &str = "correct horse battery staple";

/// Contoso (with a synced Microsoft 365 organization) and Fabrikam, each with an administrator.
async fn customers() -> (TestApp, Visitor, String, String, Visitor, String) {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (contoso, casey) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let (fabrikam, fiona) =
        customer_admin(&app, &partner, "Fabrikam", "fiona@fabrikam.example").await;
    let tenant = app.simulator.tenants()[0].clone();
    let landed = consent(
        &app,
        &casey,
        &contoso,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    let org_page = landed.location().replace("?notice=added", "");
    assert_eq!(run_jobs(&app).await, 1);
    let org = org_page.rsplit('/').next().unwrap().to_string();
    (app, casey, contoso, org, fiona, fabrikam)
}

fn plan_fields<'a>(
    org: &'a str,
    user: &'a str,
    password: &'a str,
    again: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", "Sealed mailboxes"),
        ("org", org),
        ("workload", "mailbox"),
        ("item", user),
        ("retention_kind", "points"),
        ("retention_value", "5"),
        ("encrypt", "on"),
        ("encryption_password", password),
        ("encryption_password_again", again),
    ]
}

async fn create(casey: &Visitor, customer: &str, fields: &[(&str, &str)]) -> Page {
    casey.get(&format!("/c/{customer}/plans/new")).await;
    casey.post(&format!("/c/{customer}/plans"), fields).await
}

fn restic(repository: &std::path::Path, password: &str, args: &[&str]) -> std::process::Output {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), password).unwrap();
    std::process::Command::new("restic")
        .arg("-r")
        .arg(repository)
        .arg("--password-file")
        .arg(file.path())
        .args(["--no-cache", "--quiet"])
        .args(args)
        .output()
        .expect("restic runs")
}

async fn audited(app: &TestApp, action: &str) -> u64 {
    audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq(action))
        .count(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_plans_backups_are_its_own_repository_and_open_only_with_its_password() {
    let (app, casey, contoso, org, fiona, fabrikam) = customers().await;
    let user = protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq("user"))
        .filter(protected_item::Column::HasMailbox.eq(true))
        .filter(protected_item::Column::State.eq("active"))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a user with a mailbox");
    let user_id = user.id.to_string();

    // The form says what encryption means, and refuses a mismatch and a short password.
    let form = casey.get(&format!("/c/{contoso}/plans/new")).await;
    assert!(form.body.contains("cannot recover it"), "{}", form.body);
    let refused = create(
        &casey,
        &contoso,
        &plan_fields(&org, &user_id, PASSWORD, "correct horse battery stable"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("The two passwords are not the same"));
    assert!(
        !refused.body.contains(PASSWORD),
        "a password is never sent back"
    );
    let refused = create(
        &casey,
        &contoso,
        &plan_fields(&org, &user_id, "short", "short"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("at least 12 characters"));
    assert_eq!(plan::Entity::find().count(&app.state.db).await.unwrap(), 0);

    let created = create(
        &casey,
        &contoso,
        &plan_fields(&org, &user_id, PASSWORD, PASSWORD),
    )
    .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let plan_row = plan::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let repository_id = plan_row.encrypted_repository_id.expect("an encrypted plan");
    let plan_url = format!("/c/{contoso}/plans/{}", plan_row.id);
    let page = casey.get(&plan_url).await.expect_status(StatusCode::OK);
    assert!(page.body.contains("cannot be changed or removed"));
    assert!(!page.body.contains(PASSWORD));
    // An edit cannot remove the encryption, whatever the form sends.
    let mut edit: Vec<(&str, &str)> = plan_fields(&org, &user_id, "", "");
    edit.retain(|(k, _)| *k != "encrypt");
    edit.push(("version", "1"));
    casey
        .post(&plan_url, &edit)
        .await
        .expect_status(StatusCode::SEE_OTHER);
    let plan_row = plan::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(plan_row.encrypted_repository_id, Some(repository_id));

    // Run now backs the mailbox up into the plan's own repository.
    casey.get(&plan_url).await;
    casey
        .post(&format!("{plan_url}/run"), &[])
        .await
        .expect_status(StatusCode::SEE_OTHER);
    run_jobs(&app).await;
    let run = job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::PlanRun.as_str()))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, JobStatus::Succeeded.as_str(), "{run:?}");
    let system = SystemScope::worker(contoso.parse().unwrap(), "test");
    let archives = catalog::list_archives(&app.state.db, &system)
        .await
        .unwrap();
    assert_eq!(archives.len(), 1);
    let archive = &archives[0];
    assert_eq!(
        archive.encrypted_repository.map(|id| id.0),
        Some(repository_id)
    );
    let points = catalog::list_recovery_points(&app.state.db, &system, archive.id)
        .await
        .unwrap();
    assert_eq!(points.len(), 1);
    let point = &points[0];
    let folder = app.repository_folder(&format!("{contoso}-encrypted-{repository_id}"));
    assert!(folder.join("config").exists(), "{}", folder.display());
    assert!(
        !app.repository_folder(&contoso).exists(),
        "nothing went into the customer's own repository"
    );

    // restic opens it with the customer's password, and not with the customer's repository's.
    if restic_installed() {
        let output = restic(&folder, PASSWORD, &["snapshots", "--json"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listed = String::from_utf8_lossy(&output.stdout);
        assert!(listed.contains(&point.snapshot_id), "{listed}");
        let output = restic(&folder, PASSWORD, &["check", "--read-data"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        app.state
            .storage
            .repository(contoso.parse().unwrap())
            .await
            .unwrap();
        let theirs = app
            .state
            .storage
            .reveal_repository_password(contoso.parse().unwrap())
            .await
            .unwrap();
        assert!(!restic(&folder, &theirs, &["snapshots"]).status.success());
    }

    // Nothing of it is shown before the password: its points, browse, download, restore.
    let archive_url = format!("/c/{contoso}/backups/{}", archive.id);
    let point_url = format!("{archive_url}/points/{}", point.id);
    let items = catalog::list_items(&app.state.db, &system, point.id)
        .await
        .unwrap();
    let message = items
        .iter()
        .find(|e| e.kind == ItemKind::Message && e.subject.is_some())
        .expect("a backed-up message")
        .clone();
    let subject = message.subject.clone().unwrap();
    let encoded: String = url::form_urlencoded::byte_serialize(message.path.as_bytes()).collect();
    for url in [
        archive_url.clone(),
        point_url.clone(),
        format!("{point_url}/preview?path={encoded}"),
        format!("{point_url}/download?path={encoded}"),
        format!("{point_url}/zip?path={encoded}"),
        format!("{point_url}/restore?path={encoded}"),
    ] {
        let page = casey.get(&url).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{url}");
        assert_eq!(page.error_code().as_deref(), Some("backups_locked"));
        assert!(page.body.contains("Enter the plan's encryption password"));
        assert!(page.body.contains("Sealed mailboxes"));
        assert!(!page.body.contains(&subject), "{url} showed an item");
    }
    assert_eq!(audited(&app, "backup_downloaded").await, 0);

    // A wrong password is refused and audited; the right one opens it and goes back.
    let unlock = format!("{archive_url}/unlock");
    let wrong = casey
        .post(
            &unlock,
            &[("password", "not the password"), ("next", &point_url)],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong.body.contains("That is not this plan"),
        "{}",
        wrong.body
    );
    assert_eq!(audited(&app, "encrypted_backups_unlock_refused").await, 1);
    casey
        .get(&point_url)
        .await
        .expect_status(StatusCode::FORBIDDEN);
    // `next` never leads outside the archive's pages.
    casey
        .post(
            &unlock,
            &[("password", PASSWORD), ("next", "https://evil.example/")],
        )
        .await
        .expect_redirect(&archive_url);
    casey
        .post(&unlock, &[("password", PASSWORD), ("next", &point_url)])
        .await
        .expect_redirect(&point_url);
    assert_eq!(audited(&app, "encrypted_backups_unlocked").await, 2);
    let folder: String = url::form_urlencoded::byte_serialize(
        message
            .path
            .rsplit_once('/')
            .map_or("", |(f, _)| f)
            .as_bytes(),
    )
    .collect();
    let opened = casey
        .get(&format!("{point_url}?folder={folder}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(opened.body.contains(&encoded), "{}", opened.body);
    let (status, _, bytes, _) = casey
        .get_bytes(&format!("{point_url}/download?path={encoded}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.len() as u64, message.size);

    // A restore from it, after unlocking, runs to the end.
    let form = casey
        .get(&format!("{point_url}/restore?path={encoded}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(form.body.contains("Restore"), "{}", form.body);
    let started = casey
        .post(
            &format!("{point_url}/restore"),
            &[
                ("path", message.path.as_str()),
                ("target", &user_id),
                ("folders", "new"),
                ("new_folder", "Restored from the sealed plan"),
                ("collision", "keep_both"),
            ],
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    run_jobs(&app).await;
    let restore = job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::Restore.as_str()))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restore.status, JobStatus::Succeeded.as_str(), "{restore:?}");

    // Search leaves it out, and says so.
    let search = casey
        .get(&format!(
            "/c/{contoso}/storage/search?subject={}",
            url::form_urlencoded::byte_serialize(subject.as_bytes()).collect::<String>()
        ))
        .await
        .expect_status(StatusCode::OK);
    assert!(search.body.contains("Nothing found"), "{}", search.body);
    assert!(
        search
            .body
            .contains("1 backup belongs to a plan with its own encryption password")
    );

    // The check and prune go over the encrypted repository too.
    let checked = skyvault::jobs::backup_check::check_backups(
        &app.state.storage,
        contoso.parse().unwrap(),
        VerifyScope::AllData,
    )
    .await
    .expect("the encrypted repository checks clean");
    assert!(checked.contains("1 recovery point"), "{checked}");
    let pruned = retention::prune(
        &app.state.storage,
        contoso.parse().unwrap(),
        PruneSettings::default(),
    )
    .await
    .unwrap();
    assert!(pruned.packs_after > 0, "{pruned:?}");

    // Another customer cannot unlock or read it, even with the password.
    for customer in [&fabrikam, &contoso] {
        fiona.get(&format!("/c/{fabrikam}/storage")).await;
        let url = format!("/c/{customer}/backups/{}/unlock", archive.id);
        let page = fiona
            .post(&url, &[("password", PASSWORD), ("next", "")])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{url}");
        let url = format!("/c/{customer}/backups/{}/points/{}", archive.id, point.id);
        let page = fiona.get(&url).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{url}");
        assert!(!page.body.contains(&subject));
    }

    // The unlock lasts 15 minutes.
    app.clock.advance(Duration::minutes(16));
    casey
        .get(&point_url)
        .await
        .expect_status(StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_throttled_like_sign_ins() {
    let (app, casey, contoso, org, _, _) = customers().await;
    let user = protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq("user"))
        .filter(protected_item::Column::HasMailbox.eq(true))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    create(
        &casey,
        &contoso,
        &plan_fields(&org, &user, PASSWORD, PASSWORD),
    )
    .await
    .expect_status(StatusCode::SEE_OTHER);
    let plan_row = plan::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    casey
        .get(&format!("/c/{contoso}/plans/{}", plan_row.id))
        .await;
    casey
        .post(&format!("/c/{contoso}/plans/{}/run", plan_row.id), &[])
        .await;
    run_jobs(&app).await;
    let system = SystemScope::worker(contoso.parse().unwrap(), "test");
    let archive = catalog::list_archives(&app.state.db, &system)
        .await
        .unwrap()
        .remove(0);
    let archive_url = format!("/c/{contoso}/backups/{}", archive.id);
    casey.get(&archive_url).await;
    for _ in 0..5 {
        let page = casey
            .post(
                &format!("{archive_url}/unlock"),
                &[("password", "guess guess guess")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Even the right password waits until the window has passed.
    let page = casey
        .post(&format!("{archive_url}/unlock"), &[("password", PASSWORD)])
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.body.contains("Too many wrong passwords"));
    app.clock.advance(Duration::minutes(16));
    casey
        .post(&format!("{archive_url}/unlock"), &[("password", PASSWORD)])
        .await
        .expect_redirect(&archive_url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_reseals_an_encrypted_plans_password_too() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let customer: skyvault::ids::CustomerId = app
        .customer_with_admin(&partner, "Contoso", "admin@contoso.example")
        .await
        .parse()
        .unwrap();
    app.state.storage.repository(customer).await.unwrap();
    let id = app
        .state
        .storage
        .register_encrypted_repository(
            &app.state.db,
            &skyvault::storage::NewEncryptedRepository {
                customer,
                plan: uuid::Uuid::new_v4(),
                plan_name: "Sealed",
                password: PASSWORD,
            },
        )
        .await
        .unwrap();
    let encrypted = skyvault::storage::RepositoryRef::Encrypted { customer, id };
    app.state.storage.open_repository(encrypted).await.unwrap();
    let key = app.launch.master_key_file();
    let rotation = skyvault::key_custody::rotate_master_key(&app.state.db, &app.clock, &key)
        .await
        .unwrap();
    assert_eq!(
        rotation.resealed, 2,
        "the customer's and the plan's password"
    );
    let app = app.restart().await;
    let scope = SystemScope::worker(customer, "test");
    let storage = &app.state.storage;
    assert!(
        storage
            .encrypted_password_matches(&scope, id, PASSWORD)
            .await
            .unwrap()
    );
    assert!(
        !storage
            .encrypted_password_matches(&scope, id, "something else entirely")
            .await
            .unwrap()
    );
    storage.open_repository(encrypted).await.unwrap();
    // Another customer's scope does not reach it.
    let other = SystemScope::worker(skyvault::ids::CustomerId(uuid::Uuid::new_v4()), "test");
    assert!(
        storage
            .encrypted_password_matches(&other, id, PASSWORD)
            .await
            .is_err()
    );
}
