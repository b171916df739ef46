//! HTTP plumbing: one actix-web server whose single catch-all service splits the path and hands
//! it to the identity platform, Graph, the pre-authenticated download/upload URLs or the control
//! API. Routing by hand keeps OData oddities (`items/{id}:/name:/content`, `$value`) in one place.
//! It must never hold protocol behaviour itself.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use super::state::Simulator;
use super::{attach, control, demo_page, graph, identity, import};

/// Largest request body accepted (an upload-session chunk must be under 60 MiB).
const MAX_BODY: usize = 64 * 1024 * 1024;

pub fn build(
    sim: Arc<Simulator>,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Server> {
    let data = web::Data::from(sim);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .default_service(web::to(dispatch))
    })
    .workers(workers.max(1))
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

/// Percent-decodes one path segment (`+` stays a plus: this is a path, not a form).
pub fn decode_segment(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| {
                std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            })
            .flatten();
        if let Some(value) = escaped {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn dispatch(req: HttpRequest, body: web::Bytes, sim: web::Data<Simulator>) -> HttpResponse {
    let sim: &Simulator = &sim;
    let segments: Vec<String> = req
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    match segments.first().map(String::as_str) {
        None => index(sim),
        Some("v1.0") => graph::handle(sim, &req, &segments[1..], body).await,
        Some("_sim") => control::handle(sim, &req, &segments[1..], &body).await,
        Some("_demo") => demo_page::handle(sim, &req, &segments[1..], &body),
        Some("_dl") => graph::drive::download(sim, &req, &segments[1..]).await,
        Some("_up") => graph::drive::upload_chunk(sim, &req, &segments[1..], &body).await,
        Some("beta") => graph::handle_beta(sim, &req, &segments[1..], body).await,
        Some(import::PATH_PREFIX)
            if segments.get(2).map(String::as_str) == Some(attach::API_VERSION) =>
        {
            attach::handle(sim, &req, &segments[1..], &body).await
        }
        Some(import::PATH_PREFIX) => import::handle(sim, &req, &segments[1..], &body).await,
        Some(_) => identity::handle(sim, &req, &segments, &body).unwrap_or_else(|| {
            HttpResponse::NotFound().content_type("text/html; charset=utf-8").body("<!DOCTYPE html><title>404</title><p>The resource you are looking for has been removed, had its name changed, or is temporarily unavailable.</p>")
        }),
    }
}

fn index(sim: &Simulator) -> HttpResponse {
    let tenants: String = sim
        .tenants
        .iter()
        .map(|t| {
            format!(
                "<li>{} — <code>{}</code> ({})</li>",
                super::generate::html_escape(&t.display_name),
                t.id,
                t.domain
            )
        })
        .collect();
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Microsoft 365 tenant simulator</title></head><body><h1>Microsoft 365 tenant simulator</h1><p>Identity platform at <code>/{{tenant}}/oauth2/v2.0/token</code> and <code>/{{tenant}}/v2.0/adminconsent</code>, Graph at <code>/v1.0</code>, control API at <code>/_sim</code>.</p><ul>{tenants}</ul></body></html>"
    ))
}
