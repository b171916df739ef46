//! File content downloads (graph-protocol.md §4.3). `/content` answers 302 to a pre-authenticated
//! URL that lives a few minutes; that URL is fetched on a client that never carries a token.
//! When the body breaks off mid-way, the download goes on from the last byte received: a fresh
//! URL is asked for and fetched with `Range: bytes=N-` (ranges go to the download URL, never to
//! `/content`); a server that ignores the range gets its first N bytes skipped. It owns that
//! loop; it must never send the bearer token anywhere but Graph.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header::{HeaderValue, LOCATION, RANGE, RETRY_AFTER};
use url::Url;

use crate::m365::client::TenantClient;
use crate::m365::error::GraphError;
use crate::m365::http::{ByteStream, GraphRequest};
use crate::m365::quickxor::{QuickXorHasher, same_quick_xor_hash};
use crate::m365::throttle::{Permit, backoff_delay, parse_retry_after};

/// An open body and how many of its leading bytes were already delivered.
struct Opened {
    body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    /// Held while the body is read: the download still counts as a request in flight.
    _permit: Permit,
    skip: u64,
}

/// Opens the content at `offset`, retrying what can be retried (a throttled or failed
/// pre-authenticated fetch asks Graph for a fresh URL).
async fn open(
    client: &TenantClient,
    request: &GraphRequest,
    offset: u64,
    known_url: &mut Option<Url>,
) -> Result<Opened, GraphError> {
    let executor = client.executor();
    let mut retries = 0;
    loop {
        // A URL the delta feed already gave saves the `/content` round trip; it still costs a
        // download against the tenant's bucket (§5.3). Used once: a failure asks for a fresh one.
        let (location, permit) = match known_url.take() {
            Some(url) => (
                url,
                executor
                    .governor
                    .acquire(&request.resource, request.cost)
                    .await,
            ),
            None => {
                let response = executor.send(client.tenant_id(), request).await?;
                if response.status().is_success() {
                    // Served directly, without a redirect: no range support here, so skip what
                    // we have.
                    let body = response.response.bytes_stream().boxed();
                    return Ok(Opened {
                        body,
                        _permit: response.permit,
                        skip: offset,
                    });
                }
                let status = response.status();
                let location = response
                    .response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| request.url.join(l).ok())
                    .ok_or_else(|| GraphError::Decode {
                        url: request.url.to_string(),
                        message: format!("{status} without a usable Location"),
                    })?;
                (location, response.permit)
            }
        };
        let mut get = executor.anonymous.get(location.clone());
        if offset > 0
            && let Ok(range) = HeaderValue::from_str(&format!("bytes={offset}-"))
        {
            get = get.header(RANGE, range);
        }
        let error = match get.send().await {
            Ok(answer) if answer.status() == StatusCode::PARTIAL_CONTENT => {
                return Ok(Opened {
                    body: answer.bytes_stream().boxed(),
                    _permit: permit,
                    skip: 0,
                });
            }
            Ok(answer) if answer.status() == StatusCode::OK => {
                return Ok(Opened {
                    body: answer.bytes_stream().boxed(),
                    _permit: permit,
                    skip: offset,
                });
            }
            Ok(answer) => {
                let status = answer.status().as_u16();
                let header = |name: &str| {
                    answer
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let request_id = header("request-id");
                let retry_after = answer
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, executor.governor.clock().now()));
                let body = answer.bytes().await.unwrap_or_default();
                GraphError::from_response(status, request_id, retry_after, None, &body)
            }
            Err(e) => GraphError::Transport {
                host: location.host_str().unwrap_or_default().to_string(),
                message: e.to_string(),
                retries,
            },
        };
        drop(permit);
        // An expired URL (401/403/410) is cured by a fresh one; so are busy answers.
        let expired = matches!(error.status(), Some(401 | 403 | 410));
        if !(error.is_retryable() || expired) || retries >= executor.policy.max_retries {
            return Err(error.with_retries(retries));
        }
        retries += 1;
        let wait = error
            .retry_after()
            .unwrap_or_else(|| backoff_delay(&executor.policy, retries, &mut rand::rng()));
        match error.status() {
            // SharePoint's throttle covers the whole tenant bucket (§5.3): pause it.
            Some(status @ (429 | 503)) => {
                let code = error.code().map(str::to_string);
                executor.governor.record_throttle(
                    &request.resource,
                    status,
                    code,
                    error.retry_after(),
                    wait,
                );
            }
            _ if expired => {}
            _ => executor.governor.sleeper().sleep(wait).await,
        }
    }
}

struct Download {
    client: TenantClient,
    request: GraphRequest,
    current: Option<Opened>,
    /// Bytes delivered so far, counted from the start of the file (a resumed download starts
    /// at its offset).
    delivered: u64,
    breaks: u32,
    finished: bool,
}

/// Opens a download, from byte `offset` on, whose stream resumes by itself after a broken
/// body. `known_url` is a pre-authenticated URL to try first (`@microsoft.graph.downloadUrl`).
pub(crate) async fn resumable(
    client: TenantClient,
    request: GraphRequest,
    offset: u64,
    known_url: Option<Url>,
) -> Result<ByteStream, GraphError> {
    let mut known_url = known_url;
    let first = open(&client, &request, offset, &mut known_url).await?;
    let state = Download {
        client,
        request,
        current: Some(first),
        delivered: offset,
        breaks: 0,
        finished: false,
    };
    Ok(Box::pin(futures::stream::unfold(state, next_chunk)))
}

async fn next_chunk(mut state: Download) -> Option<(Result<Bytes, GraphError>, Download)> {
    if state.finished {
        return None;
    }
    loop {
        let opened = match state.current.as_mut() {
            Some(opened) => opened,
            None => match open(&state.client, &state.request, state.delivered, &mut None).await {
                Ok(opened) => state.current.insert(opened),
                Err(e) => {
                    state.finished = true;
                    return Some((Err(e), state));
                }
            },
        };
        match opened.body.next().await {
            Some(Ok(mut chunk)) => {
                if opened.skip > 0 {
                    let drop = opened.skip.min(chunk.len() as u64);
                    opened.skip -= drop;
                    chunk = chunk.slice(drop as usize..);
                }
                if chunk.is_empty() {
                    continue;
                }
                state.delivered += chunk.len() as u64;
                return Some((Ok(chunk), state));
            }
            None => return None,
            Some(Err(e)) => {
                state.current = None;
                state.breaks += 1;
                let executor = state.client.executor();
                if state.breaks > executor.policy.max_retries {
                    state.finished = true;
                    let host = state.request.url.host_str().unwrap_or_default().to_string();
                    return Some((
                        Err(GraphError::Transport {
                            host,
                            message: e.to_string(),
                            retries: state.breaks,
                        }),
                        state,
                    ));
                }
                tracing::debug!(delivered = state.delivered, error = %e, "download broke off; resuming");
                let wait = backoff_delay(&executor.policy, state.breaks, &mut rand::rng());
                executor.governor.sleeper().sleep(wait).await;
            }
        }
    }
}

/// Passes `stream` through, hashing it, and ends it with [`GraphError::ContentMismatch`] when
/// the bytes do not hash to `expected` (a file that changed while it was read, or a corrupted
/// transfer). Nothing is buffered; the caller keeps what it already wrote only if the stream
/// ends cleanly.
pub fn verify_quick_xor(stream: ByteStream, expected: impl Into<String>) -> ByteStream {
    struct Verify {
        inner: ByteStream,
        hasher: QuickXorHasher,
        expected: String,
        done: bool,
    }
    let state = Verify {
        inner: stream,
        hasher: QuickXorHasher::new(),
        expected: expected.into(),
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        match state.inner.next().await {
            Some(Ok(chunk)) => {
                state.hasher.update(&chunk);
                Some((Ok(chunk), state))
            }
            Some(Err(e)) => {
                state.done = true;
                Some((Err(e), state))
            }
            None => {
                state.done = true;
                let actual = state.hasher.base64();
                if same_quick_xor_hash(&actual, &state.expected) {
                    None
                } else {
                    let error = GraphError::ContentMismatch {
                        expected: state.expected.clone(),
                        actual,
                        bytes: state.hasher.len(),
                    };
                    Some((Err(error), state))
                }
            }
        }
    }))
}
