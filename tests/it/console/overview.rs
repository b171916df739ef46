//! The overviews against the database after real runs against the simulator: the customer's
//! Overview (protected and unprotected items, last night's result, problem items, storage, alerts,
//! next runs), the partner's Customers list (seats, state, sort and filter), the partner's alerts,
//! the usage report as a page and as CSV, and throttling recorded during a run with injected 429s
//! shown on the job's and the organization's pages. Another customer's overview answers 404; a
//! partner never sees customers outside its subtree.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use skyvault::ids::CustomerId;
use skyvault::inventory::entities::protected_item;
use skyvault::jobs::entities::job;
use skyvault::jobs::queue::JobKind;
use skyvault::jobs::throttling::entity as job_throttle;
use skyvault::m365::Resource;
use skyvault::storage::SystemScope;

use super::organizations::{added_and_synced, control, customer_admin, run_jobs};
use crate::support::app::{PARTNER_EMAIL, PASSWORD, TestApp, Visitor};

/// The `<tr>` of a page that contains `needle`.
fn row_with<'a>(body: &'a str, needle: &str) -> &'a str {
    let at = body
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in the page:\n{body}"));
    let start = body[..at].rfind("<tr").expect("row start");
    let end = at + body[at..].find("</tr>").expect("row end");
    &body[start..end]
}

/// The text of the table cell labelled `label` in a row.
fn cell<'a>(row: &'a str, label: &str) -> &'a str {
    let marker = format!("data-label=\"{label}\"");
    let at = row
        .find(&marker)
        .unwrap_or_else(|| panic!("{label} in {row}"));
    let open = at + row[at..].find('>').expect("cell open") + 1;
    let close = open + row[open..].find("</td>").expect("cell close");
    &row[open..close]
}

/// Text without tags.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A plan protecting one user's mailbox; returns (customer, plan, item).
async fn mailbox_plan(app: &TestApp, admin: &Visitor, org_page: &str) -> (String, String, String) {
    let mut parts = org_page.trim_start_matches("/c/").split('/');
    let customer = parts.next().unwrap().to_string();
    let org = parts.nth(1).unwrap().to_string();
    let user = protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq("user"))
        .filter(protected_item::Column::HasMailbox.eq(true))
        .filter(protected_item::Column::State.eq("active"))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a user with a mailbox");
    admin.get(&format!("/c/{customer}/plans/new")).await;
    let created = admin
        .post(
            &format!("/c/{customer}/plans"),
            &[
                ("name", "Mailboxes"),
                ("org", org.as_str()),
                ("retention_kind", "points"),
                ("retention_value", "5"),
                ("workload", "mailbox"),
                ("item", user.id.to_string().as_str()),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let plan = created
        .location()
        .trim_start_matches(&format!("/c/{customer}/plans/"))
        .trim_end_matches("?notice=created")
        .to_string();
    (customer, plan, user.id.to_string())
}

async fn run_now(admin: &Visitor, customer: &str, plan: &str) {
    admin.get(&format!("/c/{customer}/plans/{plan}")).await;
    admin
        .post(&format!("/c/{customer}/plans/{plan}/run"), &[])
        .await
        .expect_redirect(&format!("/c/{customer}/plans/{plan}?notice=run_queued"));
}

async fn latest_run(app: &TestApp) -> job::Model {
    use sea_orm::QueryOrder;
    job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::PlanRun.as_str()))
        .order_by_desc(job::Column::QueuedAt)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a plan run")
}

/// Active users whose mailbox is not known to be missing: what the overview counts.
async fn users_with_mailbox(app: &TestApp) -> u64 {
    protected_item::Entity::find()
        .filter(protected_item::Column::Kind.eq("user"))
        .filter(protected_item::Column::State.eq("active"))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.has_mailbox != Some(false))
        .count() as u64
}

/// Bytes the customer's recovery points added, from the catalog.
async fn stored(app: &TestApp, customer: &str) -> u64 {
    let scope = SystemScope::worker(CustomerId(customer.parse().unwrap()), "test");
    skyvault::storage::catalog::list_archive_summaries(&app.state.db, &scope)
        .await
        .unwrap()
        .iter()
        .map(|a| a.bytes_added)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_and_the_partner_list_say_what_the_database_holds_after_real_runs() {
    let (app, admin, org_page, tenant) = added_and_synced().await;
    let (customer, plan, item) = mailbox_plan(&app, &admin, &org_page).await;
    let name = protected_item::Entity::find_by_id(item.parse::<uuid::Uuid>().unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .display_name;

    // Before any run: one mailbox protected, the rest not; nothing ran; the plan's next start.
    let overview = format!("/c/{customer}/overview");
    let before = admin.get(&overview).await.expect_status(StatusCode::OK);
    let mailboxes = row_with(&before.body, ">Mailboxes</td>");
    assert_eq!(text(cell(mailboxes, "Protected")), "1", "{mailboxes}");
    let unprotected = users_with_mailbox(&app).await - 1;
    assert!(unprotected > 0);
    assert_eq!(
        text(cell(mailboxes, "Not protected")),
        unprotected.to_string()
    );
    assert!(before.body.contains("No backups"), "{}", before.body);
    let next = row_with(&before.body, ">Mailboxes</a>");
    assert!(next.contains(&format!("/c/{customer}/plans/{plan}")));
    assert!(before.body.contains("0 B"), "no storage used yet");

    // A good run: one succeeded in the last 24 hours, storage as the catalog counts it.
    run_now(&admin, &customer, &plan).await;
    run_jobs(&app).await;
    let good = admin.get(&overview).await.expect_status(StatusCode::OK);
    let used = stored(&app, &customer).await;
    assert!(used > 0);
    assert!(
        good.body.contains(&bytesize::ByteSize::b(used).to_string()),
        "storage {used} shown:\n{}",
        good.body
    );
    assert!(
        good.body
            .contains(&format!("+{} in 7 days", bytesize::ByteSize::b(used)))
    );
    let night = good.body.split("id=\"stat-night\"").nth(1).unwrap();
    let night = &night[..night.find("</section>").unwrap()];
    assert!(
        text(night).contains("1 succeeded") && text(night).contains("0 failed"),
        "{night}"
    );
    assert!(night.contains("activities?kind=plan_run&amp;status=succeeded"));
    assert!(good.body.contains("No item failed in the latest run"));

    // Microsoft refuses the mailbox: the next run fails, the item is listed with why.
    let graph_id = protected_item::Entity::find_by_id(item.parse::<uuid::Uuid>().unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .graph_id;
    control(
        &app,
        reqwest::Method::PUT,
        &format!("tenants/{}/users/{graph_id}/faults", tenant.tenant_id),
        Some(json!({"mail": 403})),
    )
    .await;
    app.clock.advance(chrono::Duration::minutes(10));
    run_now(&admin, &customer, &plan).await;
    run_jobs(&app).await;
    let failed_run = latest_run(&app).await;
    assert_eq!(failed_run.status, "failed");
    skyvault::jobs::alerts::evaluate(&app.state.db, app.state.clock.as_ref())
        .await
        .unwrap();
    let bad = admin.get(&overview).await.expect_status(StatusCode::OK);
    let night = bad.body.split("id=\"stat-night\"").nth(1).unwrap();
    let night = text(&night[..night.find("</section>").unwrap()]);
    assert!(
        night.contains("1 succeeded") && night.contains("1 failed"),
        "{night}"
    );
    let problem = bad.body.split("Items with problems").nth(1).unwrap();
    assert!(
        problem.contains(&format!("activities?item={item}")) && problem.contains(&name),
        "{problem}"
    );
    assert!(problem.contains(&format!("/c/{customer}/activities/{}", failed_run.id)));
    let alerts = bad.body.split("id=\"stat-alerts\"").nth(1).unwrap();
    assert!(text(&alerts[..alerts.find("</section>").unwrap()]).contains("1"));
    assert!(
        bad.body.contains("Backup failed"),
        "the open alert is listed"
    );

    // Read-only users see the overview, without the actions.
    let robin = app.read_only_user(&admin, &customer).await;
    let seen = robin.get(&overview).await.expect_status(StatusCode::OK);
    assert!(seen.body.contains("Protection by workload"));
    assert!(!seen.body.contains("plans/new"));

    // The partner's list: one seat, failed last night, an open alert; sort and filter by state.
    let partner = app.visitor();
    partner.sign_in(PARTNER_EMAIL, PASSWORD).await;
    let (other, fiona) = customer_admin(&app, &partner, "Fabrikam", "fiona@fabrikam.example").await;
    let list = partner
        .get("/customers")
        .await
        .expect_status(StatusCode::OK);
    let contoso = row_with(&list.body, &format!("href=\"/customers/{customer}\""));
    assert_eq!(text(cell(contoso, "Seats")), "1", "{contoso}");
    assert!(contoso.contains("data-state=\"failed\""), "{contoso}");
    assert_eq!(text(cell(contoso, "Alerts")), "1");
    assert!(text(cell(contoso, "Last 24 h")).contains("Failed"));
    assert_eq!(
        text(cell(contoso, "Storage")),
        bytesize::ByteSize::b(used).to_string()
    );
    let fabrikam = row_with(&list.body, &format!("href=\"/customers/{other}\""));
    assert!(
        fabrikam.contains("data-state=\"unprotected\""),
        "{fabrikam}"
    );
    assert_eq!(text(cell(fabrikam, "Seats")), "0");
    let failed_only = partner.get("/customers?state=failed").await;
    assert!(failed_only.body.contains("Contoso Ltd") && !failed_only.body.contains(">Fabrikam<"));
    assert!(failed_only.body.contains("1 of 2 customers"));
    let unprotected_only = partner.get("/customers?state=unprotected").await;
    assert!(
        !unprotected_only.body.contains(">Contoso Ltd<")
            && unprotected_only.body.contains(">Fabrikam<")
    );
    // Worst first by state; the other way round with dir=desc; the filter survives a sort link.
    let by_state = partner.get("/customers?sort=state").await;
    assert!(
        by_state.body.find(">Contoso Ltd<").unwrap() < by_state.body.find(">Fabrikam<").unwrap()
    );
    let reversed = partner.get("/customers?sort=state&dir=desc").await;
    assert!(
        reversed.body.find(">Contoso Ltd<").unwrap() > reversed.body.find(">Fabrikam<").unwrap()
    );
    let by_seats = partner.get("/customers?sort=seats&state=failed").await;
    assert!(by_seats.body.contains("state=failed"));
    let odd = partner
        .get("/customers?state=%3Cscript%3E&sort=seats&dir=sideways")
        .await
        .expect_status(StatusCode::OK);
    assert!(odd.body.contains("2 of 2 customers"));

    // The partner's alerts: Contoso's open alert, linking to the failed run in its console.
    let alerts = partner.get("/alerts").await.expect_status(StatusCode::OK);
    let row = row_with(&alerts.body, "Backup failed");
    assert!(row.contains("Contoso Ltd"), "{row}");
    assert!(row.contains(&format!("/c/{customer}/activities/{}", failed_run.id)));

    // The other customer's overview is theirs alone: 404 for Fabrikam's admin on Contoso's.
    fiona
        .get(&overview)
        .await
        .expect_status(StatusCode::NOT_FOUND);
    let theirs = fiona
        .get(&format!("/c/{other}/overview"))
        .await
        .expect_status(StatusCode::OK);
    assert!(!theirs.body.contains(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_report_counts_what_was_backed_up_in_the_month_as_page_and_csv() {
    let (app, admin, org_page, _) = added_and_synced().await;
    let (customer, plan, _) = mailbox_plan(&app, &admin, &org_page).await;
    run_now(&admin, &customer, &plan).await;
    run_jobs(&app).await;
    // Twice in the month: the mailbox still counts once.
    app.clock.advance(chrono::Duration::hours(1));
    run_now(&admin, &customer, &plan).await;
    run_jobs(&app).await;
    let used = stored(&app, &customer).await;
    let month = app.state.clock.now().format("%Y-%m").to_string();

    let partner = app.visitor();
    partner.sign_in(PARTNER_EMAIL, PASSWORD).await;
    let (other, _) = customer_admin(
        &app,
        &partner,
        "Fabrikam, \"East\"",
        "fiona@fabrikam.example",
    )
    .await;
    let page = partner
        .get(&format!("/usage?month={month}"))
        .await
        .expect_status(StatusCode::OK);
    let contoso = row_with(&page.body, ">Contoso Ltd<");
    assert_eq!(text(cell(contoso, "Protected users")), "1");
    assert_eq!(text(cell(contoso, "Mailboxes")), "1");
    assert_eq!(text(cell(contoso, "OneDrives")), "0");
    assert!(page.body.contains("How the figures are counted"));

    let (status, headers, body, _) = partner
        .get_bytes(&format!("/usage/csv?month={month}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(
        headers["content-disposition"].to_str().unwrap(),
        format!("attachment; filename=\"skyvault-usage-{month}.csv\"")
    );
    let csv = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(
        lines[0],
        "month,customer_id,customer,protected_users,mailboxes,archive_mailboxes,onedrives,group_mailboxes,sites,teams,storage_bytes"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines.contains(&format!("{month},{customer},Contoso Ltd,1,1,0,0,0,0,0,{used}").as_str()),
        "{csv}"
    );
    assert!(
        lines.contains(
            &format!("{month},{other},\"Fabrikam, \"\"East\"\"\",0,0,0,0,0,0,0,0").as_str()
        ),
        "{csv}"
    );
    // Last month nothing was backed up; a malformed month is a clear 400.
    let earlier = (app.state.clock.now() - chrono::Duration::days(40)).format("%Y-%m");
    let (_, _, body, _) = partner
        .get_bytes(&format!("/usage/csv?month={earlier}"))
        .await;
    let csv = String::from_utf8(body).unwrap();
    assert!(
        csv.contains(&format!("{earlier},{customer},Contoso Ltd,0,0,0,0,0,0,0,0")),
        "{csv}"
    );
    let bad = partner.get("/usage?month=2026-13").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("YYYY-MM"));

    // The customer's own file: twelve months, this one last.
    let (status, headers, body, _) = admin.get_bytes(&format!("/c/{customer}/usage/csv")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let csv = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 13, "{csv}");
    assert_eq!(
        lines[12],
        format!("{month},{customer},Contoso Ltd,1,1,0,0,0,0,0,{used}")
    );
    // Customers' users and other customers reach neither the partner's report nor each other's.
    admin
        .get("/usage")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    admin
        .get("/alerts")
        .await
        .expect_status(StatusCode::NOT_FOUND);
    admin
        .get(&format!("/c/{other}/usage/csv"))
        .await
        .expect_status(StatusCode::NOT_FOUND);

    // A sub-partner sees only its own customers, in its report and its alerts.
    let sub = app.sub_partner_with_admin(&partner).await;
    let (_, _, body, _) = sub.get_bytes("/usage/csv").await;
    let csv = String::from_utf8(body).unwrap();
    assert_eq!(
        csv.trim_end().split("\r\n").count(),
        1,
        "header only: {csv}"
    );
    let sub_list = sub.get("/customers").await.expect_status(StatusCode::OK);
    assert!(!sub_list.body.contains(">Contoso Ltd<"));
    let sub_alerts = sub.get("/alerts").await.expect_status(StatusCode::OK);
    assert!(sub_alerts.body.contains("No open alerts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_met_during_a_run_is_kept_and_shown_on_the_job_and_the_organization() {
    let (app, admin, org_page, tenant) = added_and_synced().await;
    let (customer, plan, item) = mailbox_plan(&app, &admin, &org_page).await;
    let user = protected_item::Entity::find_by_id(item.parse::<uuid::Uuid>().unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    // Before any run: nothing to say.
    let quiet = admin.get(&org_page).await.expect_status(StatusCode::OK);
    assert!(quiet.body.contains("Microsoft did not throttle Skyvault"));

    control(
        &app,
        reqwest::Method::PUT,
        "faults/mail",
        Some(json!({"rate_429": 25.0, "retry_after_seconds": 0.2})),
    )
    .await;
    let log_before = app.state.graph.throttle_log().recent().len();
    run_now(&admin, &customer, &plan).await;
    run_jobs(&app).await;
    control(&app, reqwest::Method::DELETE, "faults", None).await;
    let run = latest_run(&app).await;

    // What the Graph client met on this mailbox is what the job kept.
    let mailbox = Resource::Mailbox {
        tenant: skyvault::m365::TenantId(tenant.tenant_id),
        user: user.graph_id.clone(),
    };
    let met = app.state.graph.throttle_log().recent()[log_before..]
        .iter()
        .filter(|e| e.resource == mailbox)
        .count() as i32;
    assert!(met > 0, "the injected 429s were met");
    let rows = job_throttle::Entity::find()
        .filter(job_throttle::Column::JobId.eq(run.id))
        .all(&app.state.db)
        .await
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r.resource == format!("mailbox:{}", user.graph_id))
        .unwrap_or_else(|| panic!("the mailbox's throttling was kept: {rows:?}"));
    assert_eq!(row.events, met, "{rows:?}");
    assert_eq!(row.label, format!("Mailbox of {}", user.display_name));
    assert!(row.throttled_ms > 0);

    let page = admin
        .get(&format!("/c/{customer}/activities/{}", run.id))
        .await
        .expect_status(StatusCode::OK);
    let card = page.body.split("Throttling by Microsoft").nth(1).unwrap();
    let line = row_with(card, &format!("Mailbox of {}", user.display_name));
    assert_eq!(text(cell(line, "Times throttled")), met.to_string());
    let org = admin.get(&org_page).await.expect_status(StatusCode::OK);
    let card = org
        .body
        .split("Throttling by Microsoft, last 24 hours")
        .nth(1)
        .unwrap();
    assert!(text(card).contains("in 1 run"), "{card}");
    let line = row_with(card, &format!("Mailbox of {}", user.display_name));
    assert_eq!(text(cell(line, "Times throttled")), met.to_string());

    // A day later the organization's card has nothing from last night; the job keeps its own.
    app.clock.advance(chrono::Duration::hours(25));
    let admin = app.visitor();
    admin.sign_in("casey@contoso.example", PASSWORD).await;
    let later = admin.get(&org_page).await.expect_status(StatusCode::OK);
    assert!(later.body.contains("Microsoft did not throttle Skyvault"));
    let job_later = admin
        .get(&format!("/c/{customer}/activities/{}", run.id))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        job_later
            .body
            .contains(&format!("Mailbox of {}", user.display_name))
    );
}
