//! One-time page messages. A redirect names its message with `?notice=<code>`; the page that
//! receives it moves the code into the session and redirects to its own address without it, then
//! shows the message once. Reloading, Back, or a bookmark never bring the message back, and the
//! address bar stays clean. Only a code travels: pages map known codes to their own text and
//! ignore anything else, so nothing typed into a URL is ever reflected.

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse};

use super::see_other;

const NOTICE_KEY: &str = "flash_notice";
/// Longer than any code; anything longer is not one of ours and is dropped.
const MAX_CODE_LEN: usize = 40;

/// When the request carries `notice`, stores it for the next page view and answers with a
/// redirect to the same address without it.
pub fn lift_notice(request: &HttpRequest, session: &Session) -> Option<HttpResponse> {
    let query = request.query_string();
    let mut code = None;
    let rest: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter_map(|(key, value)| {
            if key == "notice" {
                code = Some(value.into_owned());
                None
            } else {
                Some((key.into_owned(), value.into_owned()))
            }
        })
        .collect();
    let code = code?;
    if !code.is_empty() && code.len() <= MAX_CODE_LEN {
        // A session that cannot be written loses the message, nothing else.
        let _ = session.insert(NOTICE_KEY, code);
    }
    let mut location = request.path().to_string();
    if !rest.is_empty() {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(rest)
            .finish();
        location.push('?');
        location.push_str(&query);
    }
    Some(see_other(&location))
}

/// The message code stored for this page view, removed as it is read ("" when none).
pub fn take_notice(session: &Session) -> String {
    session
        .remove_as::<String>(NOTICE_KEY)
        .and_then(Result::ok)
        .unwrap_or_default()
}
