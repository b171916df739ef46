//! JSON batching (`POST /v1.0/$batch`): up to 20 requests in one, each authenticated, counted
//! and throttled on its own, so a batch can answer 200 with inner 429s (graph-protocol.md §5.2).
//! Requests run in order; one whose `dependsOn` failed gets 424. It never routes by itself: each
//! inner request goes through the same pipeline as a standalone one.

use actix_web::body::MessageBody;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::JSON_CONTENT_TYPE;
use crate::simulator::server::decode_segment;
use crate::simulator::state::Simulator;

const MAX_REQUESTS: usize = 20;

fn fail(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .content_type("application/json")
    .body(json!({"error": {"code": code, "message": message}}).to_string())
}

pub async fn handle(sim: &Simulator, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let Ok(batch) = serde_json::from_slice::<Value>(body) else {
        return fail(400, "BadRequest", "Invalid batch payload format.");
    };
    let Some(requests) = batch["requests"].as_array() else {
        return fail(400, "BadRequest", "Invalid batch payload format.");
    };
    if requests.len() > MAX_REQUESTS {
        return fail(
            400,
            "BadRequest",
            "Number of batch request steps exceeds the maximum of 20.",
        );
    }
    let authorization = req.headers().get("authorization").cloned();
    let mut statuses: Map<String, Value> = Map::new();
    let mut responses = Vec::new();
    for inner in requests {
        let id = inner["id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| inner["id"].to_string());
        let depends: Vec<String> = inner["dependsOn"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if depends.iter().any(|d| {
            statuses
                .get(d)
                .and_then(Value::as_u64)
                .is_none_or(|s| s >= 400)
        }) {
            statuses.insert(id.clone(), json!(424));
            responses.push(json!({"id": id, "status": 424, "body": {"error": {"code": "BadRequest", "message": "Failed dependency."}}}));
            continue;
        }
        let method = inner["method"]
            .as_str()
            .unwrap_or("GET")
            .to_ascii_uppercase();
        let url = inner["url"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        let mut builder = actix_web::test::TestRequest::default().uri(&format!("/v1.0/{url}"));
        builder = builder.method(
            actix_web::http::Method::from_bytes(method.as_bytes())
                .unwrap_or(actix_web::http::Method::GET),
        );
        if let Some(auth) = &authorization {
            builder = builder.insert_header(("authorization", auth.clone()));
        }
        if let Some(headers) = inner["headers"].as_object() {
            for (name, value) in headers {
                if let Some(value) = value.as_str() {
                    builder = builder.insert_header((name.as_str(), value));
                }
            }
        }
        let inner_body = match &inner["body"] {
            Value::Null => Bytes::new(),
            Value::String(text) => Bytes::from(text.clone().into_bytes()),
            other => Bytes::from(other.to_string().into_bytes()),
        };
        if !inner_body.is_empty()
            && inner["headers"]["Content-Type"].is_null()
            && inner["headers"]["content-type"].is_null()
        {
            builder = builder.insert_header(("content-type", "application/json"));
        }
        let sub = builder.to_http_request();
        let segments: Vec<String> = url
            .split('?')
            .next()
            .unwrap_or_default()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode_segment)
            .collect();
        let response = Box::pin(super::handle(sim, &sub, &segments, inner_body)).await;
        let status = response.status().as_u16();
        let mut headers = Map::new();
        let mut is_json = false;
        for (name, value) in response.headers() {
            if let Ok(text) = value.to_str() {
                is_json |= name.as_str() == "content-type" && text.starts_with("application/json");
                if matches!(
                    name.as_str(),
                    "content-type" | "retry-after" | "location" | "etag"
                ) {
                    headers.insert(name.as_str().to_owned(), json!(text));
                }
            }
        }
        let bytes = response.into_body().try_into_bytes().unwrap_or_default();
        let body = if bytes.is_empty() {
            Value::Null
        } else if is_json {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        } else {
            json!(base64::engine::general_purpose::STANDARD.encode(&bytes))
        };
        statuses.insert(id.clone(), json!(status));
        let mut entry = json!({"id": id, "status": status, "headers": headers});
        if !body.is_null() {
            entry["body"] = body;
        }
        responses.push(entry);
    }
    HttpResponse::Ok()
        .content_type(JSON_CONTENT_TYPE)
        .body(json!({"responses": responses}).to_string())
}
