//! A session that was ended stays ended, even for a request that was already running when it
//! ended. The slow request is the consent callback, which always touches the session and waits
//! for Microsoft's token endpoint; here that endpoint is a gate the test opens when it chooses,
//! so the order of events is fixed without any timing.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use skyvault::accounts::entities::{console_user, session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::support::app::{PASSWORD, TestApp, Visitor};

/// Microsoft's identity platform as a gate: every connection is held, once its request has been
/// read, until the test opens the gate, and is then refused with an OAuth error.
struct IdentityGate {
    url: String,
    arrived: mpsc::UnboundedReceiver<()>,
    open: watch::Sender<bool>,
}

impl IdentityGate {
    async fn start() -> IdentityGate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        let (open, open_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let arrived = arrived_tx.clone();
                let mut open = open_rx.clone();
                tokio::spawn(async move {
                    read_request(&mut socket).await;
                    let _ = arrived.send(());
                    let _ = open.wait_for(|open| *open).await;
                    let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
                    let answer = format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        IdentityGate { url, arrived, open }
    }

    /// Waits until a request is being held.
    async fn holding_a_request(&mut self) {
        self.arrived.recv().await.unwrap();
    }

    fn open(&self) {
        self.open.send_replace(true);
    }
}

/// Reads one request (head and `Content-Length` body), so closing the socket resets nothing.
async fn read_request(socket: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

const ADMIN: &str = "casey@contoso.example";

/// Starts Devices > Add for `visitor` and returns the callback Microsoft would send back: a
/// request that touches the session and then waits for the token endpoint.
async fn consent_callback(app: &TestApp, visitor: &Visitor, customer: &str) -> String {
    let start = visitor
        .get(&format!("/c/{customer}/devices/add/m365"))
        .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let state = url::Url::parse(&start.location())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    format!(
        "/m365/consent/callback?admin_consent=True&tenant={}&state={state}&scope=x",
        app.simulator.tenants()[0].tenant_id
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_during_a_password_change_does_not_bring_its_session_back() {
    let mut gate = IdentityGate::start().await;
    let gate_url = gate.url.clone();
    let app = TestApp::start_with(|settings| settings.m365_authority_url = gate_url).await;
    let partner = app.first_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Contoso Ltd", ADMIN)
        .await;
    let devices = format!("/c/{customer}/overview");
    let owner = app.visitor();
    owner
        .sign_in(ADMIN, PASSWORD)
        .await
        .expect_redirect(&devices);
    // Someone else holds a cookie of the same account (stolen, or a forgotten browser).
    let thief = app.visitor();
    thief
        .sign_in(ADMIN, PASSWORD)
        .await
        .expect_redirect(&devices);

    let callback = consent_callback(&app, &thief, &customer).await;
    let new_password = "a much better passphrase";
    // The callback loads the thief's session, then waits for the token endpoint; meanwhile the
    // owner changes the password, which ends every other session of the account.
    let (answer, ()) = tokio::join!(thief.get(&callback), async {
        gate.holding_a_request().await;
        owner
            .get("/account/password")
            .await
            .expect_status(StatusCode::OK);
        let changed = owner
            .post(
                "/account/password",
                &[
                    ("current_password", PASSWORD),
                    ("new_password", new_password),
                    ("confirm_password", new_password),
                ],
            )
            .await
            .expect_status(StatusCode::OK);
        assert!(changed.body.contains("Your password was changed"));
        gate.open();
    });
    assert_eq!(
        answer.status,
        StatusCode::SEE_OTHER,
        "the callback still answers: {}",
        answer.body
    );

    thief.get(&devices).await.expect_redirect("/signin");
    thief
        .get("/account/password")
        .await
        .expect_redirect("/signin");
    owner.get(&devices).await.expect_status(StatusCode::OK);
    let user = console_user::Entity::find()
        .filter(console_user::Column::Email.eq(ADMIN))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let sessions = session::Entity::find()
        .filter(session::Column::UserId.eq(user.id))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(sessions, 1, "only the owner's new session is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_its_session_expires_does_not_extend_it() {
    let mut gate = IdentityGate::start().await;
    let gate_url = gate.url.clone();
    let app = TestApp::start_with(|settings| settings.m365_authority_url = gate_url).await;
    let partner = app.first_partner_admin().await;
    let customer = app
        .customer_with_admin(&partner, "Contoso Ltd", ADMIN)
        .await;
    let devices = format!("/c/{customer}/overview");
    let visitor = app.visitor();
    visitor
        .sign_in(ADMIN, PASSWORD)
        .await
        .expect_redirect(&devices);
    let callback = consent_callback(&app, &visitor, &customer).await;
    // The session was valid when the callback loaded it and expires while it waits.
    let idle = app.state.settings.session_idle_minutes as i64;
    let (answer, ()) = tokio::join!(visitor.get(&callback), async {
        gate.holding_a_request().await;
        app.clock.advance(chrono::Duration::minutes(idle + 1));
        gate.open();
    });
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    visitor.get(&devices).await.expect_redirect("/signin");
}
