//! The per-session CSRF token: created with the session, rendered into every form and into
//! htmx's request headers, checked by `middleware::require_csrf_token`.

use actix_session::Session;
use rand::distr::{Alphanumeric, SampleString};

const CSRF_KEY: &str = "csrf";

pub fn session_token(session: &Session) -> Option<String> {
    session.get::<String>(CSRF_KEY).ok().flatten()
}

/// The session's token, creating one (and so the session) when there is none yet.
pub fn ensure_token(session: &Session) -> String {
    if let Some(token) = session_token(session) {
        return token;
    }
    let token = Alphanumeric.sample_string(&mut rand::rng(), 43);
    // A failed insert leaves the form without a valid token; its post is then refused, which is safe.
    let _ = session.insert(CSRF_KEY, &token);
    token
}

/// A fresh token, e.g. after sign-in, so a token seen before sign-in is worthless after it.
pub fn rotate_token(session: &Session) -> String {
    session.remove(CSRF_KEY);
    ensure_token(session)
}
