//! Sub-partners through HTTP: a partner opens one and works inside it (its customers, new
//! customers created under it), renames and disables it; a disabled sub-partner's
//! administrators are signed out and kept out while its customers carry on; every change is in
//! the audit log; and nobody reaches a partner outside the partners below their own.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use skyvault::accounts::entities::{customer, partner as partner_entity};

use crate::support::app::{PASSWORD, TestApp, Visitor};

/// The id of the partner called `name`.
pub async fn partner_id(app: &TestApp, name: &str) -> String {
    partner_entity::Entity::find()
        .filter(partner_entity::Column::Name.eq(name))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("partner exists")
        .id
        .to_string()
}

/// The partner's sub-partner "Reseller East" with its administrator signed in, and its id.
pub async fn sub_partner(app: &TestApp, partner: &Visitor) -> (Visitor, String) {
    let sub = app.sub_partner_with_admin(partner).await;
    let id = partner_id(app, "Reseller East").await;
    (sub, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_opens_renames_and_disables_a_sub_partner_whose_customers_carry_on() {
    let (app, partner) = TestApp::with_partner_admin().await;
    app.customer_with_admin(&partner, "Adatum", "casey@adatum.example")
        .await;
    let (sam, sub) = sub_partner(&app, &partner).await;
    let tailspin = app
        .customer_with_admin(&sam, "Tailspin", "tia@tailspin.example")
        .await;

    // Opened, the sub-partner's context lists its customers only, and a customer created there
    // belongs to it.
    let list = partner.get("/partners").await.expect_status(StatusCode::OK);
    assert!(
        list.body
            .contains(&format!("href=\"/customers?partner={sub}\""))
    );
    let inside = partner
        .get(&format!("/customers?partner={sub}"))
        .await
        .expect_status(StatusCode::OK);
    assert!(inside.body.contains("Customers of Reseller East"));
    assert!(inside.body.contains("Tailspin") && !inside.body.contains("Adatum"));
    assert!(
        inside
            .body
            .contains(&format!("name=\"partner\" value=\"{sub}\""))
    );
    let created = partner
        .post("/customers", &[("name", "Wingtip"), ("partner", &sub)])
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let wingtip = customer::Entity::find()
        .filter(customer::Column::Name.eq("Wingtip"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wingtip.partner_id.to_string(), sub);
    assert!(sam.get("/customers").await.body.contains("Wingtip"));

    // Renamed: a blank name is refused with a message; a good one is recorded.
    partner.get(&format!("/partners/{sub}")).await;
    let blank = partner
        .post(&format!("/partners/{sub}/rename"), &[("name", "  ")])
        .await;
    assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(blank.body.contains("Enter a name."));
    partner
        .post(
            &format!("/partners/{sub}/rename"),
            &[("name", "Reseller East & West")],
        )
        .await
        .expect_redirect(&format!("/partners/{sub}?notice=partner_renamed"));
    let page = partner
        .open(&format!("/partners/{sub}?notice=partner_renamed"))
        .await
        .expect_status(StatusCode::OK);
    assert!(page.body.contains("The sub-partner was renamed."));
    let title = page.body.replace("&#38;", "&amp;");
    assert!(title.contains("<h1>Reseller East &amp; West"), "{title}");

    // Disabled: Sam is signed out at once and cannot sign in again; Tailspin's administrator
    // still can, and the partner still manages Tailspin.
    let tia = app.visitor();
    tia.sign_in("tia@tailspin.example", PASSWORD).await;
    sam.get("/customers").await.expect_status(StatusCode::OK);
    partner
        .post(&format!("/partners/{sub}/disable"), &[])
        .await
        .expect_redirect(&format!("/partners/{sub}?notice=partner_disabled"));
    sam.get("/customers").await.expect_redirect("/signin");
    let refused = app.visitor().sign_in("sam@east.example", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    tia.get(&format!("/c/{tailspin}/devices"))
        .await
        .expect_status(StatusCode::OK);
    partner
        .get(&format!("/c/{tailspin}/devices"))
        .await
        .expect_status(StatusCode::OK);
    let listed = partner.get("/partners").await;
    assert!(listed.body.contains("Disabled"));

    // Enabled again, Sam signs in.
    partner.get(&format!("/partners/{sub}")).await;
    partner
        .post(&format!("/partners/{sub}/enable"), &[])
        .await
        .expect_redirect(&format!("/partners/{sub}?notice=partner_enabled"));
    app.visitor()
        .sign_in("sam@east.example", PASSWORD)
        .await
        .expect_redirect("/customers");

    // Each change is in the partner's audit log, with the address it came from; the
    // sub-partner does not read its parent's decisions about it.
    let log = partner.get("/audit").await.expect_status(StatusCode::OK);
    for words in [
        "<span class=\"strong\">Sub-partner created</span>",
        "administrator: sam@east.example",
        "<span class=\"strong\">Sub-partner renamed</span>",
        "was Reseller East",
        "<span class=\"strong\">Sub-partner disabled</span>",
        "<span class=\"strong\">Sub-partner enabled</span>",
        "<span class=\"strong\">Customer created</span>",
        "127.0.0.1",
    ] {
        assert!(log.body.contains(words), "audit log lacks {words}");
    }
    let sam = app.visitor();
    sam.sign_in("sam@east.example", PASSWORD).await;
    let own = sam.get("/audit").await.expect_status(StatusCode::OK);
    assert!(
        !own.body
            .contains("<span class=\"strong\">Sub-partner disabled</span>")
    );
    assert!(own.body.contains("Tailspin"), "its own customers' events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_reaches_a_partner_outside_the_partners_below_their_own() {
    let (app, partner) = TestApp::with_partner_admin().await;
    app.customer_with_admin(&partner, "Contoso", "casey@contoso.example")
        .await;
    let (sam, sub) = sub_partner(&app, &partner).await;
    let own = partner_id(&app, "Northwind Partners").await;
    let casey = app.visitor();
    casey.sign_in("casey@contoso.example", PASSWORD).await;

    // (who, partner ids out of their reach)
    let cases: [(&str, &Visitor, Vec<&str>); 3] = [
        // A partner never renames or disables the partner they sign in with.
        ("partner admin", &partner, vec![own.as_str()]),
        // A sub-partner's administrator never reaches the partner above it, nor itself.
        ("sub-partner admin", &sam, vec![own.as_str(), sub.as_str()]),
        ("customer admin", &casey, vec![own.as_str(), sub.as_str()]),
    ];
    for (who, visitor, ids) in &cases {
        for id in ids {
            for path in [
                format!("/partners/{id}"),
                format!("/customers?partner={id}"),
            ] {
                let page = visitor.get(&path).await;
                assert_eq!(page.status, StatusCode::NOT_FOUND, "{who}: GET {path}");
            }
            for action in ["rename", "disable", "enable"] {
                // A page with a fresh CSRF token, as a browser has.
                visitor.get("/account/password").await;
                let path = format!("/partners/{id}/{action}");
                let page = visitor.post(&path, &[("name", "Taken over")]).await;
                assert_eq!(page.status, StatusCode::NOT_FOUND, "{who}: POST {path}");
            }
            visitor.get("/account/password").await;
            let page = visitor
                .post("/customers", &[("name", "Planted"), ("partner", id)])
                .await;
            assert_eq!(
                page.status,
                StatusCode::NOT_FOUND,
                "{who}: customer under {id}"
            );
        }
    }
    let partners = partner_entity::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(
        partners
            .iter()
            .all(|p| !p.disabled && p.name != "Taken over")
    );
    assert!(
        customer::Entity::find()
            .filter(customer::Column::Name.eq("Planted"))
            .one(&app.state.db)
            .await
            .unwrap()
            .is_none()
    );
}
