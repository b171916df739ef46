//! Request-wide protections: security headers (with a Content-Security-Policy that allows no
//! inline script, and HSTS behind HTTPS), the CSRF check on every state-changing request, turning
//! error pages into fragments for htmx requests, and giving a middleware's own failure the
//! console's error page instead of an empty 500.

use std::cell::RefCell;
use std::rc::Rc;

use actix_session::SessionExt;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, ResponseError, web};
use futures::StreamExt;
use subtle::ConstantTimeEq;

use super::AppState;
use super::csrf;
use super::error::{WebError, error_page, htmx_error_response};

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'; object-src 'none'";

/// Forms are small; anything larger than this on a form post is refused before parsing.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// `Strict-Transport-Security` when the console is served over HTTPS: browsers then refuse plain
/// HTTP to it for a year, subdomains included, so a network attacker cannot strip TLS.
const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Adds the security headers to every response (a failing layer's too: `render_errors_for_htmx`,
/// inside this one, turns its `Err` into a page).
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let https = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.settings.public_url().starts_with("https://"));
    let mut response = next.call(req).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ] {
        // A response that set its own policy keeps it: a backed-up message's body is served
        // under a stricter CSP, and framed by the console (`web::backups::BODY_CSP`).
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// The request, kept by `render_errors_for_htmx` while the layers inside it run, so that an `Err`
/// from one of them (the session store unable to read or write the database) can still be
/// answered with the console's error page: actix-web would send an empty 500 without our
/// headers. Routing needs the request unshared, so `release_request_for_routing`, the innermost
/// layer, drops the copy just before routing and keeps the routed request on the way back.
#[derive(Clone, Default)]
struct KeptRequest(Rc<RefCell<Option<HttpRequest>>>);

impl KeptRequest {
    fn keep(&self, request: HttpRequest) {
        *self.0.borrow_mut() = Some(request);
    }

    fn take(&self) -> Option<HttpRequest> {
        self.0.borrow_mut().take()
    }
}

/// Empties the slot however the request ends, cancelled included: the slot lives in the
/// request's own extensions, so a copy left in it would keep the request alive for ever.
struct EmptyOnDrop(KeptRequest);

impl Drop for EmptyOnDrop {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

/// The innermost layer: see `KeptRequest`.
pub async fn release_request_for_routing(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let kept = req.extensions().get::<KeptRequest>().cloned();
    if let Some(kept) = &kept {
        drop(kept.take());
    }
    let response = next.call(req).await?;
    if let Some(kept) = kept {
        kept.keep(response.request().clone());
    }
    Ok(response)
}

/// A layer's own failure becomes the console's error page, like a handler's error; the cause
/// goes to the log with the incident id shown on the page.
fn error_into_response(request: HttpRequest, err: Error) -> ServiceResponse<BoxBody> {
    let status = err.as_response_error().status_code();
    let response = if status.is_server_error() {
        // The cause was logged where it is known (the session store); `err` says which layer.
        WebError::internal(err).error_response()
    } else {
        error_page(status, "error", message_for("error", status))
    };
    ServiceResponse::new(request, response)
}

/// Every POST/PUT/PATCH/DELETE must carry the session's CSRF token, in the `X-CSRF-Token` header
/// (htmx sends it from `hx-headers` on the body) or as the `csrf_token` form field.
pub async fn require_csrf_token(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.call(req).await.map(|res| res.map_into_boxed_body());
    }
    let expected = csrf::session_token(&req.get_session());
    let from_header = req
        .headers()
        .get("X-CSRF-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let presented = match from_header {
        Some(token) => Some(token),
        None if req.content_type() == "application/x-www-form-urlencoded" => {
            let body = read_body(&mut req).await;
            let token = body.as_ref().and_then(|bytes| {
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
                    .ok()
                    .and_then(|pairs| {
                        pairs
                            .into_iter()
                            .find(|(k, _)| k == "csrf_token")
                            .map(|(_, v)| v)
                    })
            });
            // Put the body back for the handler's form extractor.
            let bytes = body.unwrap_or_default();
            let (_, mut payload) = actix_http::h1::Payload::create(true);
            payload.unread_data(bytes);
            req.set_payload(payload.into());
            token
        }
        None => None,
    };
    let valid = match (expected, presented) {
        (Some(expected), Some(presented)) => {
            bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
        }
        _ => false,
    };
    if !valid {
        let response = WebError::CsrfFailed.error_response();
        return Ok(req.into_response(response));
    }
    next.call(req).await.map(|res| res.map_into_boxed_body())
}

async fn read_body(req: &mut ServiceRequest) -> Option<bytes::Bytes> {
    let mut payload = req.take_payload();
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.ok()?;
        if body.len() + chunk.len() > MAX_FORM_BYTES {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body.freeze())
}

/// htmx swaps only what it asked for: an error page would replace a table row with a whole
/// document. For htmx requests an error response becomes a fragment in the message area. An
/// `Err` from the layers inside (the session middleware) becomes an error response first.
pub async fn render_errors_for_htmx(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let is_htmx = req.headers().contains_key("HX-Request");
    let kept = KeptRequest::default();
    kept.keep(req.request().clone());
    req.extensions_mut().insert(kept.clone());
    let _slot_emptied_at_the_end = EmptyOnDrop(kept.clone());
    let response = match next.call(req).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(err) => match kept.take() {
            Some(request) => error_into_response(request, err),
            None => return Err(err),
        },
    };
    let status = response.status();
    let signed_out = response
        .headers()
        .get("X-Skyvault-Error")
        .is_some_and(|v| v == "sign_in_required");
    if !is_htmx || !(status.is_client_error() || status.is_server_error() || signed_out) {
        return Ok(response);
    }
    let code = response
        .headers()
        .get("X-Skyvault-Error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("error")
        .to_string();
    if code == "sign_in_required" {
        // Tell htmx to go to the sign-in page instead of showing a fragment.
        let (req, _) = response.into_parts();
        let redirect = actix_web::HttpResponse::build(StatusCode::OK)
            .insert_header(("HX-Redirect", "/signin"))
            .finish();
        return Ok(ServiceResponse::new(req, redirect));
    }
    let message = message_for(&code, status);
    let (req, _) = response.into_parts();
    Ok(ServiceResponse::new(
        req,
        htmx_error_response(status, &code, message),
    ))
}

fn message_for(code: &str, status: StatusCode) -> String {
    match code {
        "not_found" => WebError::NotFound.to_string(),
        "forbidden" => WebError::Forbidden.to_string(),
        "csrf_failed" => WebError::CsrfFailed.to_string(),
        "too_many_attempts" => "Too many attempts. Wait a few minutes and try again.".into(),
        _ => format!("The request failed ({}).", status.as_u16()),
    }
}
