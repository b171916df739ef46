//! Static assets compiled into the binary, so a deployed `skyvault` needs no files beside it.

use actix_web::{HttpResponse, web};

use super::WebError;

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "skyvault.svg",
        "image/svg+xml",
        include_bytes!("../../static/skyvault.svg"),
    ),
    (
        "vendor/htmx/htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx/htmx.min.js"),
    ),
    (
        "vendor/htmx-ext-sse/sse.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx-ext-sse/sse.min.js"),
    ),
];

pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == path.as_str())
        .ok_or(WebError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(*body))
}
