//! A small HTTP server that answers the way a test's script says Graph answers (taken from
//! Microsoft's pages), records every request it gets (method, path with query, headers, body),
//! and plays the identity platform's token endpoint. Two of them make Graph and a second origin
//! (the `outlook.office365.com` of a mailbox import URL, or a foreign host).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;
use skyvault::m365::{GraphClient, M365Settings, TenantId};
use url::Url;

/// The token the fake identity platform hands out.
pub const TOKEN: &str = "graph-bearer-token";

#[derive(Debug, Clone)]
pub struct Seen {
    pub origin: String,
    pub method: String,
    /// Path and query, percent-encoding as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One answer of the script.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(value: Value) -> Self {
        Self::status_json(200, value)
    }

    pub fn status_json(status: u16, value: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A running scripted server.
pub struct ScriptedServer {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ScriptedServer {
    /// Starts a server recording into `seen` and answering with `script` (after the token
    /// endpoint, which it always plays).
    pub fn start(seen: Arc<Mutex<Vec<Seen>>>, script: Script) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (log, origin) = (seen.clone(), base.clone());
        let server = HttpServer::new(move || {
            let (log, script, origin) = (log.clone(), script.clone(), origin.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (log, script, origin) = (log.clone(), script.clone(), origin.clone());
                async move {
                    let seen = Seen {
                        origin,
                        method: req.method().to_string(),
                        target: req.uri().to_string(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        body: body.to_vec(),
                    };
                    log.lock().unwrap().push(seen.clone());
                    let reply = if seen.target.ends_with("/oauth2/v2.0/token") {
                        Reply::json(serde_json::json!({
                            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                            "access_token": TOKEN
                        }))
                    } else {
                        script(&seen)
                    };
                    let mut response = HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(reply.status).unwrap(),
                    );
                    for (name, value) in &reply.headers {
                        response.insert_header((name.as_str(), value.as_str()));
                    }
                    response.body(reply.body)
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { base, seen }
    }

    /// Requests this server (or any sharing its log) received, token requests left out.
    pub fn graph_requests(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| !s.target.ends_with("/oauth2/v2.0/token"))
            .cloned()
            .collect()
    }
}

/// Graph (and the identity platform) at one origin, a second origin for what lives elsewhere,
/// and a client pointed at the first.
pub struct ScriptedGraph {
    pub graph: ScriptedServer,
    pub other: ScriptedServer,
    pub client: GraphClient,
    pub tenant: TenantId,
}

/// Starts Graph with `graph` as its script and the other origin with `other`. Both scripts get
/// the origins' bases through the `Bases` they are built from.
pub fn scripted_graph(
    graph: impl Fn(&Bases, &Seen) -> Reply + Send + Sync + 'static,
    other: impl Fn(&Bases, &Seen) -> Reply + Send + Sync + 'static,
) -> ScriptedGraph {
    skyvault::install_crypto_provider();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let bases = Arc::new(Mutex::new(Bases::default()));
    let (b1, b2) = (bases.clone(), bases.clone());
    let graph = ScriptedServer::start(
        seen.clone(),
        Arc::new(move |s| graph(&b1.lock().unwrap().clone(), s)),
    );
    let other = ScriptedServer::start(
        seen,
        Arc::new(move |s| other(&b2.lock().unwrap().clone(), s)),
    );
    *bases.lock().unwrap() = Bases {
        graph: graph.base.clone(),
        other: other.base.clone(),
    };
    let settings = M365Settings::new(
        "client",
        "secret",
        Url::parse("https://console.test/cb").unwrap(),
    )
    .with_base_url(&Url::parse(&graph.base).unwrap());
    let settings = M365Settings {
        retry: super::fast_retry(),
        ..settings
    };
    let client = GraphClient::new(settings, skyvault::clock::system()).unwrap();
    ScriptedGraph {
        graph,
        other,
        client,
        tenant: TenantId(uuid::Uuid::from_u128(0xfeed)),
    }
}

/// Where the two origins listen, for scripts that write links.
#[derive(Debug, Clone, Default)]
pub struct Bases {
    pub graph: String,
    pub other: String,
}

/// Counts calls, for scripts that answer differently the n-th time.
#[derive(Debug, Default)]
pub struct Counter(AtomicUsize);

impl Counter {
    /// The number of earlier calls.
    pub fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// The 404 Graph gives for a user without a mailbox it can reach.
pub fn no_mailbox() -> Reply {
    Reply::status_json(
        404,
        serde_json::json!({"error": {"code": "MailboxNotEnabledForRESTAPI",
            "message": "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}}),
    )
}

/// Graph's 429 with a fractional Retry-After (§5.2, §5.5).
pub fn throttled() -> Reply {
    Reply::status_json(
        429,
        serde_json::json!({"error": {"code": "ApplicationThrottled",
            "message": "Application is over its MailboxConcurrency limit."}}),
    )
    .header("retry-after", "0.05")
}
