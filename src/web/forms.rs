//! What a form page needs to re-render after a failed post: the values typed and the messages
//! to show next to each field; the 422 answer that carries them with a stable error code; and the
//! cleaning of search text. Names, addresses and roles are checked in `accounts`, which every
//! form goes through; this module never lets a refused value reach a query.

use std::collections::HashMap;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use askama::Template;

use super::WebError;
use crate::accounts::{AccountError, FieldError};

/// The longest search accepted, in characters: longer text is refused with a message instead of
/// reaching the database (SQLite refuses a LIKE pattern over 50,000 bytes with an error).
pub const MAX_SEARCH_CHARS: usize = 200;

/// Search text as typed into a search box, ready for a query: control characters (NUL among
/// them, which PostgreSQL refuses in text) are dropped, spaces trimmed. Text longer than
/// [`MAX_SEARCH_CHARS`] is refused with the message to show.
pub fn search_text(raw: &str) -> Result<String, String> {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() > MAX_SEARCH_CHARS {
        return Err(format!("Search for at most {MAX_SEARCH_CHARS} characters."));
    }
    Ok(cleaned.to_string())
}

#[derive(Debug, Default, Clone)]
pub struct FormState {
    values: HashMap<String, String>,
    errors: Vec<FieldError>,
    /// A message about the form as a whole (e.g. wrong password).
    pub summary: Option<String>,
}

impl FormState {
    /// Keeps the typed values, except secrets, which are never sent back to the browser.
    pub fn with_values<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let values = values
            .into_iter()
            .filter(|(name, _)| !name.contains("password") && *name != "confirm")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            values,
            ..Self::default()
        }
    }

    pub fn value(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn error(&self, name: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == name)
            .map(|e| e.message.as_str())
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.summary.is_some()
    }

    /// The stable code of a refused form, sent in the `X-Skyvault-Error` header of its 422
    /// answer: `invalid_<field>` for the first field with a message (e.g. `invalid_role`,
    /// `invalid_email`), else `invalid_form`.
    pub fn error_code(&self) -> String {
        match self.errors.first() {
            Some(first) => format!("invalid_{}", first.field),
            None => "invalid_form".into(),
        }
    }

    /// Turns a domain error into messages on this form; other errors are returned unchanged.
    pub fn absorb(mut self, err: AccountError) -> Result<Self, AccountError> {
        match err {
            AccountError::Invalid(errors) => self.errors = errors,
            AccountError::BadCredentials => self.summary = Some(err.to_string()),
            other => return Err(other),
        }
        Ok(self)
    }
}

/// The answer to a refused form: the page re-rendered with its messages, status 422, and the
/// form's stable error code (see [`FormState::error_code`]) for scripts and tests.
pub fn unprocessable(code: &str, page: &impl Template) -> Result<HttpResponse, WebError> {
    Ok(HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY)
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::HeaderName::from_static("x-skyvault-error"),
            HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("invalid_form")),
        ))
        .body(page.render()?))
}
