//! Adding a Microsoft 365 organization by admin consent against the simulator, discovery sync,
//! the item life cycle, the Refresh button and the schedule.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use skyvault::inventory::entities::{organization, protected_item};
use skyvault::jobs::worker::run_until_idle;

use crate::support::app::{PASSWORD, Page, TestApp, Visitor};

fn attribute(body: &str, marker: &str) -> String {
    let start = body
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in page:\n{body}"))
        + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].replace("&amp;", "&")
}

/// Follows Devices > Add > Microsoft 365 Business through Microsoft's (the simulator's) sign-in
/// and consent pages, and returns the console's answer to the redirect back.
pub async fn consent(
    app: &TestApp,
    visitor: &Visitor,
    customer: &str,
    login: &str,
    password: &str,
    decision: &str,
) -> Page {
    let start = visitor
        .get(&format!("/c/{customer}/devices/add/m365"))
        .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let consent_url = start.location();
    assert!(
        consent_url.starts_with(app.simulator.base_url().trim_end_matches('/')),
        "{consent_url}"
    );
    assert!(
        consent_url.contains("/organizations/v2.0/adminconsent?"),
        "{consent_url}"
    );
    assert!(
        consent_url.contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"),
        "{consent_url}"
    );
    let sign_in = visitor
        .get_url(&consent_url)
        .await
        .expect_status(StatusCode::OK);
    let sim = app.simulator.base_url().trim_end_matches('/');
    let flow = attribute(&sign_in.body, "name=\"flow\" value=\"");
    let action = attribute(&sign_in.body, "<form method=\"post\" action=\"");
    let after_login = visitor
        .post_url(
            &format!("{sim}{action}"),
            &[("flow", &flow), ("login", login), ("passwd", password)],
        )
        .await;
    let callback = if after_login.status == StatusCode::OK {
        let flow = attribute(&after_login.body, "name=\"flow\" value=\"");
        let action = attribute(&after_login.body, "<form method=\"post\" action=\"");
        visitor
            .post_url(
                &format!("{sim}{action}"),
                &[("flow", &flow), ("decision", decision)],
            )
            .await
    } else {
        after_login
    };
    assert_eq!(
        callback.status,
        StatusCode::FOUND,
        "Microsoft redirects back: {}",
        callback.body
    );
    let back = callback.location();
    assert!(
        back.starts_with(&format!("{}/m365/consent/callback?", app.base)),
        "{back}"
    );
    let answer = visitor.get_url(&back).await;
    prove_administrator(app, visitor, answer, login, password).await
}

/// After consent, the console sends the browser to the consented tenant's sign-in (OpenID
/// Connect) to prove an administrator finished it. The simulator remembers the sign-in of the
/// consent leg (single sign-on), or asks for it again; either way the browser comes back to the
/// console with a code. Returns the console's final answer.
async fn prove_administrator(
    app: &TestApp,
    visitor: &Visitor,
    answer: Page,
    login: &str,
    password: &str,
) -> Page {
    let sim = app.simulator.base_url().trim_end_matches('/');
    if answer.status != StatusCode::SEE_OTHER
        || !answer.location().starts_with(sim)
        || !answer.location().contains("/oauth2/v2.0/authorize?")
    {
        return answer;
    }
    let authorize = visitor.get_url(&answer.location()).await;
    let callback = if authorize.status == StatusCode::OK {
        let flow = attribute(&authorize.body, "name=\"flow\" value=\"");
        let action = attribute(&authorize.body, "<form method=\"post\" action=\"");
        visitor
            .post_url(
                &format!("{sim}{action}"),
                &[("flow", &flow), ("login", login), ("passwd", password)],
            )
            .await
    } else {
        authorize
    };
    assert_eq!(callback.status, StatusCode::FOUND, "{}", callback.body);
    let back = callback.location();
    assert!(
        back.starts_with(&format!("{}/m365/consent/callback?code=", app.base)),
        "{back}"
    );
    visitor.get_url(&back).await
}

pub(crate) async fn customer_admin(
    app: &TestApp,
    partner: &Visitor,
    name: &str,
    email: &str,
) -> (String, Visitor) {
    let id = app.customer_with_admin(partner, name, email).await;
    let visitor = app.visitor();
    visitor
        .sign_in(email, PASSWORD)
        .await
        .expect_redirect(&format!("/c/{id}/overview"));
    (id, visitor)
}

/// A customer administrator who has added the simulator's first tenant, after its first sync.
/// Returns the app, the administrator's browser, the organization page's path and the tenant.
pub(crate) async fn added_and_synced() -> (TestApp, Visitor, String, skyvault::simulator::TenantInfo)
{
    let (app, partner) = TestApp::with_partner_admin().await;
    let (customer, admin) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let tenant = app.simulator.tenants()[0].clone();
    let landed = consent(
        &app,
        &admin,
        &customer,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    let org_page = landed.location().replace("?notice=added", "");
    assert_eq!(run_jobs(&app).await, 1);
    (app, admin, org_page, tenant)
}

pub async fn run_jobs(app: &TestApp) -> u32 {
    run_until_idle(&skyvault::app::worker_context(&app.state))
        .await
        .unwrap()
}

async fn items(app: &TestApp, kind: &str) -> Vec<protected_item::Model> {
    protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq(kind))
        .all(&app.state.db)
        .await
        .unwrap()
}

pub async fn control(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let client = reqwest::Client::new();
    let mut request = client
        .request(
            method,
            format!(
                "{}/_sim/{path}",
                app.simulator.base_url().trim_end_matches('/')
            ),
        )
        .bearer_auth(app.simulator.admin_token());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "control {path}: {}",
        response.status()
    );
    response.json().await.unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_consent_adds_the_organization_and_discovery_lists_it() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (customer, admin) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let devices = admin
        .get(&format!("/c/{customer}/devices"))
        .await
        .expect_status(StatusCode::OK);
    assert!(devices.body.contains("Microsoft 365 Business"));

    let tenant = app.simulator.tenants()[0].clone();
    let landed = consent(
        &app,
        &admin,
        &customer,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    let org_page = landed.location();
    assert!(
        org_page.starts_with(&format!("/c/{customer}/m365/"))
            && org_page.ends_with("?notice=added"),
        "{org_page}"
    );

    let org = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("organization stored");
    assert_eq!(org.tenant_id, tenant.tenant_id.to_string());
    assert!(org.is_verifying(), "its names are read by the first sync");
    assert_eq!(org.next_sync_at, org.added_at + chrono::Duration::hours(24));

    // The first sync was queued by the consent; a worker runs it.
    let waiting = admin.open(&org_page).await.expect_status(StatusCode::OK);
    assert!(
        waiting
            .body
            .contains("Discovering users, groups, sites and teams for the first time"),
        "the page shows the queued first sync"
    );
    assert!(
        waiting
            .body
            .contains("Queued: starts as soon as a worker is free")
    );
    assert_eq!(run_jobs(&app).await, 1);
    let org = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(org.display_name, tenant.display_name);

    let page = admin.open(&org_page).await.expect_status(StatusCode::OK);
    assert!(page.body.contains("The organization was added."));
    assert!(
        !page.body.contains("for the first time"),
        "the discovery banner is gone once the sync has ended"
    );
    // The message was for one view: a reload of the page's own address does not repeat it.
    let clean = org_page.replace("?notice=added", "");
    let reloaded = admin.get(&clean).await.expect_status(StatusCode::OK);
    assert!(!reloaded.body.contains("The organization was added."));
    assert!(reloaded.body.contains("The last sync finished:"));
    let users = items(&app, "user").await;
    assert!(users.len() >= 8, "all users discovered: {}", users.len());
    assert!(
        users
            .iter()
            .all(|u| u.has_mailbox.is_some() && u.has_drive.is_some()),
        "workloads probed"
    );
    for user in users.iter().take(3) {
        assert!(
            page.body.contains(&user.display_name),
            "{} listed",
            user.display_name
        );
    }
    assert!(!items(&app, "group").await.is_empty());
    assert!(!items(&app, "team").await.is_empty());
    assert!(!items(&app, "site").await.is_empty());
    let groups = admin
        .open(&format!(
            "{}&tab=groups",
            org_page.replace("?notice=added", "?notice=")
        ))
        .await;
    assert!(groups.body.contains("Microsoft 365 group"));

    let org = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(org.last_sync_outcome.unwrap().starts_with("Succeeded"));
    let activities = admin
        .get(&format!("/c/{customer}/activities"))
        .await
        .expect_status(StatusCode::OK);
    assert!(activities.body.contains("Directory sync") && activities.body.contains("Succeeded"));
    let devices = admin.get(&format!("/c/{customer}/devices")).await;
    assert!(devices.body.contains(&tenant.display_name) && devices.body.contains(&tenant.domain));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_errors_are_explained_on_the_devices_page() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (customer, admin) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let tenant = app.simulator.tenants()[0].clone();

    // The admin declines.
    let declined = consent(
        &app,
        &admin,
        &customer,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "cancel",
    )
    .await;
    assert_eq!(
        declined.location(),
        format!("/c/{customer}/devices?notice=declined")
    );
    let page = admin.open(&declined.location()).await;
    assert!(page.body.contains("Consent was declined"), "{}", page.body);

    // A user who is not a global administrator.
    let info = control(&app, reqwest::Method::GET, "tenants", None).await;
    let member_password = info[0]["member_password"].as_str().unwrap().to_string();
    let created = control(
        &app,
        reqwest::Method::POST,
        &format!("tenants/{}/users", tenant.tenant_id),
        Some(json!({"displayName": "Nora Member", "mailNickname": "nora"})),
    )
    .await;
    let upn = created["userPrincipalName"].as_str().unwrap().to_string();
    let not_admin = consent(&app, &admin, &customer, &upn, &member_password, "accept").await;
    assert_eq!(
        not_admin.location(),
        format!("/c/{customer}/devices?notice=not_admin")
    );
    assert!(
        admin
            .open(&not_admin.location())
            .await
            .body
            .contains("sign in as a global administrator")
    );
    assert!(
        organization::Entity::find()
            .one(&app.state.db)
            .await
            .unwrap()
            .is_none(),
        "nothing added"
    );

    // A replayed callback (the state was used) is refused.
    let state = consent_state(&admin, &customer).await;
    let forged = format!(
        "/m365/consent/callback?admin_consent=True&tenant={}&state={state}&scope=x",
        tenant.tenant_id
    );
    let first = admin.get(&forged).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    let replay = admin.get(&forged).await;
    assert_eq!(
        replay.location(),
        format!("/c/{customer}/devices?notice=state")
    );

    // A callback delivered to another user's session is refused.
    let state = consent_state(&admin, &customer).await;
    let other = app.visitor();
    other
        .sign_in(crate::support::app::PARTNER_EMAIL, PASSWORD)
        .await;
    let stolen = other
        .get(&format!(
            "/m365/consent/callback?admin_consent=True&tenant={}&state={state}&scope=x",
            tenant.tenant_id
        ))
        .await;
    assert_eq!(stolen.location(), "/customers?notice=state");

    // An expired request.
    let state = consent_state(&admin, &customer).await;
    app.clock.advance(chrono::Duration::minutes(16));
    let late = admin
        .get(&format!(
            "/m365/consent/callback?admin_consent=True&tenant={}&state={state}&scope=x",
            tenant.tenant_id
        ))
        .await;
    assert_eq!(
        late.location(),
        format!("/c/{customer}/devices?notice=expired")
    );
    app.clock.advance(chrono::Duration::hours(2));

    // The same tenant cannot be added by a second customer.
    let accepted = consent(
        &app,
        &admin,
        &customer,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    assert!(
        accepted.location().ends_with("?notice=added"),
        "{}",
        accepted.location()
    );
    let (second, other_admin) =
        customer_admin(&app, &partner, "Second Customer", "sam@second.example").await;
    let taken = consent(
        &app,
        &other_admin,
        &second,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    assert_eq!(
        taken.location(),
        format!("/c/{second}/devices?notice=taken")
    );
    assert!(
        other_admin
            .open(&taken.location())
            .await
            .body
            .contains("already protected by another customer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_users_turn_inactive_then_gone_and_restored_ones_come_back() {
    let (app, admin, org_page, tenant) = added_and_synced().await;
    let users = items(&app, "user").await;
    let leaving = users
        .iter()
        .find(|u| !u.address.starts_with("admin"))
        .unwrap()
        .clone();
    let restored = users
        .iter()
        .filter(|u| !u.address.starts_with("admin"))
        .nth(1)
        .unwrap()
        .clone();

    // Deleted in Microsoft 365: still returned by deleted items, so inactive and grayed out.
    for user in [&leaving, &restored] {
        control(
            &app,
            reqwest::Method::DELETE,
            &format!("tenants/{}/users/{}", tenant.tenant_id, user.graph_id),
            None,
        )
        .await;
    }
    admin.get(&org_page).await;
    let refresh = admin
        .htmx_post(&format!("{org_page}/refresh"), &admin.csrf_token())
        .await;
    assert_eq!(refresh.status, StatusCode::OK);
    assert!(
        refresh.body.contains("Syncing the directory") && refresh.body.contains("every 1s"),
        "{}",
        refresh.body
    );
    assert_eq!(run_jobs(&app).await, 1);
    let status = admin.get(&format!("{org_page}/sync?was=pending")).await;
    assert_eq!(
        status.headers.get("hx-trigger").unwrap(),
        "inventory-synced",
        "the list reloads when the sync ends"
    );
    let now = items(&app, "user").await;
    let row = now.iter().find(|u| u.graph_id == leaving.graph_id).unwrap();
    assert_eq!(row.state, "inactive");
    let page = admin.get(&org_page).await;
    assert!(page.body.contains("row-inactive") && page.body.contains("it is not backed up"));

    // One is restored in Microsoft 365: active again at the next sync.
    control(
        &app,
        reqwest::Method::POST,
        &format!(
            "tenants/{}/users/{}/restore",
            tenant.tenant_id, restored.graph_id
        ),
        None,
    )
    .await;
    // The other is purged after the deleted-items retention: gone from the page.
    app.clock.advance(chrono::Duration::days(31));
    // A month later the console session has long expired: sign in again.
    admin.get(&org_page).await.expect_redirect("/signin");
    admin.sign_in("casey@contoso.example", PASSWORD).await;
    admin.get(&org_page).await.expect_status(StatusCode::OK);
    admin
        .post(&format!("{org_page}/refresh"), &[])
        .await
        .expect_redirect(&org_page);
    assert_eq!(run_jobs(&app).await, 1);
    let now = items(&app, "user").await;
    let outcome = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .last_sync_outcome;
    // Kept as a row marked gone, so plans and archives keep their reference, but no longer
    // listed.
    assert_eq!(
        now.iter()
            .find(|u| u.graph_id == leaving.graph_id)
            .map(|u| u.state.as_str()),
        Some("gone"),
        "purged user is gone; last sync: {outcome:?}"
    );
    assert_eq!(
        now.iter()
            .find(|u| u.graph_id == restored.graph_id)
            .unwrap()
            .state,
        "active"
    );
    assert_eq!(now.len(), users.len());
    let page = admin.get(&org_page).await;
    assert!(!page.body.contains(&leaving.display_name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_syncs_follow_the_time_added_and_refresh_does_not_shift_them() {
    let (app, admin, org_page, _) = added_and_synced().await;
    let org = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let interval = app.state.sync_interval();
    let clock = app.state.clock.clone();

    // A Refresh an hour later syncs now but leaves the schedule alone.
    app.clock.advance(chrono::Duration::hours(1));
    admin.get(&org_page).await;
    admin.post(&format!("{org_page}/refresh"), &[]).await;
    // A second Refresh while one is pending does not queue another.
    admin.post(&format!("{org_page}/refresh"), &[]).await;
    assert_eq!(run_jobs(&app).await, 1);
    let after_refresh = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after_refresh.next_sync_at, org.added_at + interval);
    assert_eq!(
        skyvault::jobs::ticks::enqueue_due_syncs(&app.state.db, &clock, interval).await,
        0
    );

    // Down for three days: the missed syncs run once, and the next one keeps the time of day.
    app.clock.advance(chrono::Duration::hours(72));
    assert_eq!(
        skyvault::jobs::ticks::enqueue_due_syncs(&app.state.db, &clock, interval).await,
        1
    );
    assert_eq!(
        skyvault::jobs::ticks::enqueue_due_syncs(&app.state.db, &clock, interval).await,
        0
    );
    assert_eq!(run_jobs(&app).await, 1);
    let later = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(later.next_sync_at, org.added_at + interval * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_of_another_customer_are_out_of_reach() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (first, first_admin) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let (second, second_admin) =
        customer_admin(&app, &partner, "Fabrikam", "fran@fabrikam.example").await;
    let tenant = app.simulator.tenants()[0].clone();
    let landed = consent(
        &app,
        &first_admin,
        &first,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    let org_id = landed
        .location()
        .trim_start_matches(&format!("/c/{first}/m365/"))
        .trim_end_matches("?notice=added")
        .to_string();
    run_jobs(&app).await;
    for path in [
        format!("/c/{second}/m365/{org_id}"),
        format!("/c/{second}/m365/{org_id}/sync"),
        format!("/c/{first}/m365/{org_id}"),
        format!("/c/{second}/devices/{org_id}/remove"),
    ] {
        let page = second_admin.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.body.contains(&tenant.display_name));
    }
    second_admin.get(&format!("/c/{second}/devices")).await;
    for path in [
        format!("/c/{second}/m365/{org_id}/refresh"),
        format!("/c/{second}/devices/{org_id}/remove"),
    ] {
        assert_eq!(
            second_admin.post(&path, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert!(
        organization::Entity::find()
            .one(&app.state.db)
            .await
            .unwrap()
            .is_some()
    );

    // Removing asks for confirmation and keeps nothing in the list afterwards.
    let confirm = first_admin
        .get(&format!("/c/{first}/devices/{org_id}/remove"))
        .await
        .expect_status(StatusCode::OK);
    assert!(confirm.body.contains("Its backups are kept"));
    first_admin
        .post(&format!("/c/{first}/devices/{org_id}/remove"), &[])
        .await
        .expect_redirect(&format!("/c/{first}/devices?notice=removed"));
    assert!(
        organization::Entity::find()
            .one(&app.state.db)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        protected_item::Entity::find()
            .one(&app.state.db)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_completes_through_throttling_and_faults_without_false_changes() {
    let (app, admin, org_page, tenant) = added_and_synced().await;
    let before: Vec<String> = items(&app, "user")
        .await
        .into_iter()
        .map(|u| u.graph_id)
        .collect();

    // A new user, then a quarter of directory and mail requests throttled or failing with 503.
    control(
        &app,
        reqwest::Method::POST,
        &format!("tenants/{}/users", tenant.tenant_id),
        Some(json!({"displayName": "Nadia New", "mailNickname": "nadia"})),
    )
    .await;
    for workload in ["directory", "mail", "drive"] {
        control(
            &app,
            reqwest::Method::PUT,
            &format!("faults/{workload}"),
            Some(json!({"rate_429": 15.0, "rate_503": 10.0, "retry_after_seconds": 0.05})),
        )
        .await;
    }
    admin.get(&org_page).await;
    admin
        .post(&format!("{org_page}/refresh"), &[])
        .await
        .expect_redirect(&org_page);
    assert_eq!(run_jobs(&app).await, 1);

    let org = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let outcome = org.last_sync_outcome.unwrap();
    assert!(
        outcome.starts_with(
            "Succeeded: 1 added, 0 changed, 0 became inactive, 0 active again, 0 gone"
        ),
        "{outcome}"
    );
    let after = items(&app, "user").await;
    assert_eq!(after.len(), before.len() + 1);
    assert!(after.iter().all(|u| u.state == "active"));
    assert!(
        after
            .iter()
            .any(|u| u.display_name == "Nadia New" && u.has_mailbox.is_some())
    );
    assert!(
        !app.state.graph.throttle_log().recent().is_empty(),
        "throttling was met and recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_page_parameters_get_a_clear_400_and_huge_pages_clamp() {
    let (app, admin, org_page, _) = added_and_synced().await;
    let bad = admin.get(&format!("{org_page}?tab=users&page=abc")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code().as_deref(), Some("bad_request"));
    assert!(bad.body.contains("malformed parameter"));
    let far = admin
        .get(&format!("{org_page}?tab=users&page=18446744073709551615"))
        .await;
    assert_eq!(
        far.status,
        StatusCode::OK,
        "a page past the end shows the last page"
    );
    assert!(far.body.contains("Page") || far.body.contains("items"));
    drop(app);
}

/// A console answer that sends the browser to `location`.
fn redirect_page(location: &str) -> Page {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::LOCATION, location.parse().unwrap());
    Page {
        status: StatusCode::SEE_OTHER,
        headers,
        body: String::new(),
    }
}

/// The state a console user's Devices > Add put in the consent URL.
async fn consent_state(visitor: &Visitor, customer: &str) -> String {
    let start = visitor
        .get(&format!("/c/{customer}/devices/add/m365"))
        .await;
    url::Url::parse(&start.location())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_consent_answer_cannot_take_another_customers_organization() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (victim, victim_admin) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let (attacker, attacker_admin) =
        customer_admin(&app, &partner, "Mallory Inc", "mal@mallory.example").await;
    let contoso = app.simulator.tenants()[0].clone();
    let fabrikam = app.simulator.tenants()[1].clone();
    let org_count = |customer: String| {
        let db = app.state.db.clone();
        async move {
            organization::Entity::find()
                .filter(
                    organization::Column::CustomerId.eq(uuid::Uuid::parse_str(&customer).unwrap()),
                )
                .all(&db)
                .await
                .unwrap()
                .len()
        }
    };

    // Contoso is added by its own administrator, then removed: Microsoft's consent stays.
    let added = consent(
        &app,
        &victim_admin,
        &victim,
        &contoso.admin_user_principal_name,
        &contoso.admin_password,
        "accept",
    )
    .await;
    let org_page = added.location().replace("?notice=added", "");
    let org_id = org_page.rsplit('/').next().unwrap().to_string();
    victim_admin
        .get(&format!("/c/{victim}/devices/{org_id}/remove"))
        .await
        .expect_status(StatusCode::OK);
    victim_admin
        .post(&format!("/c/{victim}/devices/{org_id}/remove"), &[])
        .await
        .expect_redirect(&format!("/c/{victim}/devices?notice=removed"));
    assert_eq!(org_count(victim.clone()).await, 0);

    // The attacker never visits Microsoft's consent page: they answer the callback with
    // Contoso's tenant id and their own state. Skyvault does not add anything on that word; it
    // sends the browser to Contoso's own sign-in, with PKCE and a nonce.
    let state = consent_state(&attacker_admin, &attacker).await;
    let forged = attacker_admin
        .get(&format!(
            "/m365/consent/callback?admin_consent=True&tenant={}&state={state}&scope=x",
            contoso.tenant_id
        ))
        .await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);
    let sign_in = url::Url::parse(&forged.location()).unwrap();
    assert_eq!(
        sign_in.path(),
        format!("/{}/oauth2/v2.0/authorize", contoso.tenant_id)
    );
    let params: std::collections::HashMap<String, String> =
        sign_in.query_pairs().into_owned().collect();
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["code_challenge_method"], "S256");
    assert!(params.contains_key("nonce") && params["state"] != state);
    assert_eq!(org_count(attacker.clone()).await, 0, "nothing added yet");

    // Their own tenant's administrator cannot sign in to Contoso...
    let page = attacker_admin
        .get_url(sign_in.as_str())
        .await
        .expect_status(StatusCode::OK);
    let sim = app.simulator.base_url().trim_end_matches('/');
    let flow = attribute(&page.body, "name=\"flow\" value=\"");
    let action = attribute(&page.body, "<form method=\"post\" action=\"");
    let refused = attacker_admin
        .post_url(
            &format!("{sim}{action}"),
            &[
                ("flow", &flow),
                ("login", &fabrikam.admin_user_principal_name),
                ("passwd", &fabrikam.admin_password),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::OK, "the sign-in page again");
    assert!(refused.body.contains("AADSTS50034"), "{}", refused.body);

    // ...and a sign-in to their own tenant, answered under the same state, is refused: its ID
    // token is issued by Fabrikam, not Contoso.
    let own_tenant = sign_in.as_str().replace(
        &contoso.tenant_id.to_string(),
        &fabrikam.tenant_id.to_string(),
    );
    let landed = prove_administrator(
        &app,
        &attacker_admin,
        redirect_page(&own_tenant),
        &fabrikam.admin_user_principal_name,
        &fabrikam.admin_password,
    )
    .await;
    assert_eq!(
        landed.location(),
        format!("/c/{attacker}/devices?notice=sign_in_unproven")
    );
    assert_eq!(org_count(attacker.clone()).await, 0);

    // A Contoso user who is not an administrator (say, a former employee the attacker knows) is
    // refused too.
    let info = control(&app, reqwest::Method::GET, "tenants", None).await;
    let member_password = info[0]["member_password"].as_str().unwrap().to_string();
    let created = control(
        &app,
        reqwest::Method::POST,
        &format!("tenants/{}/users", contoso.tenant_id),
        Some(json!({"displayName": "Ex Employee", "mailNickname": "ex"})),
    )
    .await;
    let member = created["userPrincipalName"].as_str().unwrap().to_string();
    let forged = attacker_admin
        .get(&format!(
            "/m365/consent/callback?admin_consent=True&tenant={}&state={}&scope=x",
            contoso.tenant_id,
            consent_state(&attacker_admin, &attacker).await
        ))
        .await;
    let landed =
        prove_administrator(&app, &attacker_admin, forged, &member, &member_password).await;
    assert_eq!(
        landed.location(),
        format!("/c/{attacker}/devices?notice=not_admin")
    );
    assert_eq!(org_count(attacker.clone()).await, 0);

    // With a real Contoso administrator's sign-in, the organization can move to another
    // customer, and its previous customer can add it back only the same way.
    let moved = consent(
        &app,
        &attacker_admin,
        &attacker,
        &contoso.admin_user_principal_name,
        &contoso.admin_password,
        "accept",
    )
    .await;
    assert!(
        moved.location().ends_with("?notice=added"),
        "{}",
        moved.location()
    );
    assert_eq!(org_count(attacker.clone()).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_answers_at_once_while_graph_is_down_and_the_first_sync_verifies() {
    let (app, partner) = TestApp::with_partner_admin().await;
    let (customer, admin) =
        customer_admin(&app, &partner, "Contoso Ltd", "casey@contoso.example").await;
    let tenant = app.simulator.tenants()[0].clone();
    // Graph answers every directory request 503 with a long Retry-After: a callback that read
    // `organization` itself would hold the browser for many minutes.
    control(
        &app,
        reqwest::Method::PUT,
        "faults/directory",
        Some(json!({"rate_503": 100.0, "retry_after_seconds": 120.0})),
    )
    .await;
    control(&app, reqwest::Method::DELETE, "counters", None).await;
    let landed = consent(
        &app,
        &admin,
        &customer,
        &tenant.admin_user_principal_name,
        &tenant.admin_password,
        "accept",
    )
    .await;
    assert!(
        landed.location().ends_with("?notice=added"),
        "{}",
        landed.location()
    );
    let counters = control(&app, reqwest::Method::GET, "counters", None).await;
    assert_eq!(
        counters["total"], 0,
        "no Graph request during consent: {counters}"
    );
    let org = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(org.is_verifying());
    let page = admin
        .get(&landed.location().replace("?notice=added", ""))
        .await;
    assert!(
        page.body.contains("Verifying consent with Microsoft"),
        "{}",
        page.body
    );

    // Microsoft answers again: the first sync reads the organization, then its directory.
    control(&app, reqwest::Method::DELETE, "faults", None).await;
    assert_eq!(run_jobs(&app).await, 1);
    let org = organization::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(!org.is_verifying());
    assert_eq!(org.display_name, tenant.display_name);
    assert_eq!(org.initial_domain, tenant.domain);
    assert!(!org.last_sync_failed(), "{:?}", org.last_sync_outcome);
}
