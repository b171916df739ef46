//! Behaviour the simulator cannot show, against a tiny recording server. The bearer token never
//! follows a download redirect. The simulator's pre-authenticated URL
//! accepts a token if one is sent, so this test uses a tiny recording server instead: it plays
//! the token endpoint, Graph's `/content` (302 to a URL on the *same* origin, the case where an
//! HTTP client's own redirect handling would keep the `Authorization` header) and the
//! pre-authenticated URL, and records every request's headers. The same server hands out a
//! next link to a foreign host, which must be refused rather than sent the token, and refuses
//! `getAllSites` so the search fallback is used. It also serves a pre-authenticated URL that
//! works and one that has expired, to show that a download URL from the delta saves the
//! `/content` request and that an expired one is replaced by a fresh one.

use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use skyvault::m365::{GraphClient, GraphError, M365Settings, TenantId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn serve(listener: TcpListener, seen: Arc<Mutex<Vec<Seen>>>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            let head = text.split("\r\n\r\n").next().unwrap();
            let mut lines = head.split("\r\n");
            let request_line = lines.next().unwrap().to_string();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .collect();
            let request = Seen {
                request_line: request_line.clone(),
                headers,
            };
            let host = request.header("host").unwrap_or_default().to_string();
            seen.lock().unwrap().push(request);
            let path = request_line.split(' ').nth(1).unwrap_or("/");
            let (status, extra, body) = if path.ends_with("/oauth2/v2.0/token") {
                (
                    "200 OK",
                    "Content-Type: application/json\r\n".to_string(),
                    r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"secret-token"}"#.to_string(),
                )
            } else if path.starts_with("/v1.0/drives/d1/items/i1/content") {
                (
                    "302 Found",
                    format!("Location: http://{host}/download/preauth?tempauth=xyz\r\n"),
                    String::new(),
                )
            } else if path.starts_with("/v1.0/sites/getAllSites") {
                (
                    "400 Bad Request",
                    "Content-Type: application/json\r\n".to_string(),
                    r#"{"error":{"code":"invalidRequest","message":"getAllSites is not available"}}"#.to_string(),
                )
            } else if path.starts_with("/v1.0/sites?search=") {
                (
                    "200 OK",
                    "Content-Type: application/json\r\n".to_string(),
                    r#"{"value":[{"id":"contoso.sharepoint.com,1,2","displayName":"Team"}]}"#
                        .to_string(),
                )
            } else if path.starts_with("/v1.0/users") {
                (
                    "200 OK",
                    "Content-Type: application/json\r\n".to_string(),
                    r#"{"value":[{"id":"u1"}],"@odata.nextLink":"http://graph.evil.example/v1.0/users?$skiptoken=x"}"#.to_string(),
                )
            } else if path.starts_with("/v1.0/drives/d1/items/big/content") {
                (
                    "302 Found",
                    format!("Location: http://{host}/download/big?tempauth=1\r\n"),
                    String::new(),
                )
            } else if path.starts_with("/download/big") {
                // The full body is 20 bytes. Without a range the connection breaks after 8; a
                // range request gets the rest.
                const FULL: &str = "0123456789abcdefghij";
                let range = seen
                    .lock()
                    .unwrap()
                    .last()
                    .and_then(|s| s.header("range").map(str::to_string));
                match range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                {
                    Some(from) => {
                        let from: usize = from.parse().unwrap();
                        let rest = &FULL[from..];
                        let head = format!(
                            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-19/20\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{rest}",
                            rest.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                    }
                    None => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{}",
                            &FULL[..8]
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                    }
                }
                let _ = socket.shutdown().await;
                return;
            } else if path.starts_with("/download/known") {
                (
                    "200 OK",
                    "Content-Type: application/octet-stream\r\n".to_string(),
                    "known bytes".to_string(),
                )
            } else if path.starts_with("/download/expired") {
                (
                    "401 Unauthorized",
                    "Content-Type: application/json\r\n".to_string(),
                    r#"{"error":{"code":"unauthenticated","message":"The download URL has expired."}}"#.to_string(),
                )
            } else if path.starts_with("/download/preauth") {
                (
                    "200 OK",
                    "Content-Type: application/octet-stream\r\n".to_string(),
                    "file bytes".to_string(),
                )
            } else {
                (
                    "404 Not Found",
                    "Content-Type: application/json\r\n".to_string(),
                    r#"{"error":{"code":"itemNotFound","message":"nope"}}"#.to_string(),
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

async fn recording_graph() -> (GraphClient, TenantId, Arc<Mutex<Vec<Seen>>>) {
    skyvault::install_crypto_provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(listener, seen.clone()));
    let settings = M365Settings::new(
        "client",
        "secret",
        Url::parse("https://console.test/cb").unwrap(),
    )
    .with_base_url(&base);
    let settings = M365Settings {
        retry: super::fast_retry(),
        ..settings
    };
    let client = GraphClient::new(settings, skyvault::clock::system()).unwrap();
    (client, TenantId(uuid::Uuid::from_u128(0xabc)), seen)
}

#[tokio::test]
async fn a_next_link_off_the_graph_origin_is_refused() {
    let (client, tenant, seen) = recording_graph().await;
    let mut users = client.tenant(tenant).users();
    assert_eq!(users.try_next().await.unwrap().unwrap().id, "u1");
    let error = users.try_next().await.unwrap_err();
    assert!(matches!(error, GraphError::UntrustedLink(_)), "{error:?}");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|s| !s.header("host").unwrap_or_default().contains("evil"))
    );
}

#[tokio::test]
async fn the_bearer_token_is_not_sent_to_the_preauthenticated_url() {
    skyvault::install_crypto_provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(listener, seen.clone()));

    let settings = M365Settings::new(
        "client",
        "secret",
        Url::parse("https://console.test/cb").unwrap(),
    )
    .with_base_url(&base);
    let client = GraphClient::new(settings, skyvault::clock::system()).unwrap();
    let tenant = TenantId(uuid::Uuid::from_u128(0xabc));
    let stream = client.tenant(tenant).download("d1", "i1").await.unwrap();
    let bytes: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(bytes.concat(), b"file bytes");

    let seen = seen.lock().unwrap().clone();
    let content = seen
        .iter()
        .find(|s| s.request_line.contains("/content"))
        .expect("a /content request");
    assert_eq!(content.header("authorization"), Some("Bearer secret-token"));
    assert!(
        content
            .header("user-agent")
            .unwrap_or_default()
            .starts_with("ISV|Skyvault|Skyvault/")
    );
    let download = seen
        .iter()
        .find(|s| s.request_line.contains("/download/preauth"))
        .expect("the redirect was followed");
    assert_eq!(
        download.header("authorization"),
        None,
        "token leaked to the download URL: {download:?}"
    );
    let token = seen
        .iter()
        .find(|s| s.request_line.starts_with("POST"))
        .expect("a token request");
    assert!(
        token
            .request_line
            .contains(&format!("/{tenant}/oauth2/v2.0/token"))
    );
}

#[tokio::test]
async fn a_broken_download_resumes_with_a_range_request() {
    let (client, tenant, seen) = recording_graph().await;
    let stream = client.tenant(tenant).download("d1", "big").await.unwrap();
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), b"0123456789abcdefghij");
    let seen = seen.lock().unwrap().clone();
    let ranges: Vec<_> = seen
        .iter()
        .filter(|s| s.request_line.contains("/download/big"))
        .map(|s| {
            (
                s.header("range").map(str::to_string),
                s.header("authorization").is_some(),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        vec![(None, false), (Some("bytes=8-".to_string()), false)]
    );
    let content_calls = seen
        .iter()
        .filter(|s| s.request_line.contains("/items/big/content"))
        .count();
    assert_eq!(
        content_calls, 2,
        "a fresh pre-authenticated URL is asked for"
    );
}

#[tokio::test]
async fn sites_fall_back_to_search_when_get_all_sites_is_refused() {
    let (client, tenant, seen) = recording_graph().await;
    let sites = client.tenant(tenant).sites().await.unwrap();
    assert_eq!(sites.len(), 1);
    assert_eq!(sites[0].display_name.as_deref(), Some("Team"));
    let paths: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.request_line.clone())
        .collect();
    assert!(
        paths.iter().any(|p| p.contains("/sites/getAllSites")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn the_delta_download_url_is_used_first_and_a_fresh_one_asked_for_when_it_expired() {
    let (client, tenant, seen) = recording_graph().await;
    let graph = client.tenant(tenant);
    let host = |seen: &Arc<Mutex<Vec<Seen>>>| {
        seen.lock().unwrap()[0]
            .header("host")
            .unwrap_or_default()
            .to_string()
    };
    // The token request comes first; any request names the server's host.
    let _ = graph.download("d1", "i1").await.unwrap();
    let base = format!("http://{}", host(&seen));
    seen.lock().unwrap().clear();

    let known = format!("{base}/download/known?tempauth=1");
    let body: Vec<bytes::Bytes> = graph
        .download_from("d1", "i1", 0, Some(&known))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(body.concat(), b"known bytes");
    let contents = |seen: &Arc<Mutex<Vec<Seen>>>| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|s| s.request_line.contains("/content"))
            .count()
    };
    assert_eq!(contents(&seen), 0, "no /content request was spent");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|s| s.header("authorization").is_none()),
        "the known URL gets no token"
    );

    let expired = format!("{base}/download/expired?tempauth=1");
    let body: Vec<bytes::Bytes> = graph
        .download_from("d1", "i1", 0, Some(&expired))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(body.concat(), b"file bytes");
    assert_eq!(contents(&seen), 1, "a fresh URL was asked for once");
}
