//! The one error type of the web layer. Each case has a stable code and a status; an htmx request
//! gets a small fragment retargeted to the page's message area, a full request an error page.
//! Internals (database errors, paths) are logged with an incident id and never shown.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::accounts::AccountError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("The page or item was not found.")]
    NotFound,
    #[error("You do not have permission to do that.")]
    Forbidden,
    #[error("Please sign in.")]
    SignInRequired,
    #[error("The form expired or came from another site. Reload the page and try again.")]
    CsrfFailed,
    #[error("{0}")]
    BadRequest(String),
    #[error("Too many failed sign-ins. Try again in {minutes} minutes.")]
    TooManyAttempts { minutes: i64 },
    #[error(
        "Something went wrong on our side (incident {incident}). The details are in the server log."
    )]
    Internal { incident: String },
}

impl WebError {
    pub fn code(&self) -> &'static str {
        match self {
            WebError::NotFound => "not_found",
            WebError::Forbidden => "forbidden",
            WebError::SignInRequired => "sign_in_required",
            WebError::CsrfFailed => "csrf_failed",
            WebError::BadRequest(_) => "bad_request",
            WebError::TooManyAttempts { .. } => "too_many_attempts",
            WebError::Internal { .. } => "internal",
        }
    }

    /// Logs the real cause and returns an error that shows only an incident id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let incident = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        tracing::error!(%incident, "request failed: {cause}");
        WebError::Internal { incident }
    }
}

impl From<AccountError> for WebError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::NotFound => WebError::NotFound,
            AccountError::Forbidden => WebError::Forbidden,
            AccountError::Throttled { minutes } => WebError::TooManyAttempts { minutes },
            AccountError::SetupClosed => WebError::NotFound,
            AccountError::BadCredentials => WebError::BadRequest(err.to_string()),
            AccountError::Invalid(errors) => WebError::BadRequest(
                errors
                    .into_iter()
                    .map(|e| e.message)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            AccountError::Database(_) | AccountError::Hashing => WebError::internal(err),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(err: askama::Error) -> Self {
        WebError::internal(format!("template: {err}"))
    }
}

impl From<sea_orm::DbErr> for WebError {
    fn from(err: sea_orm::DbErr) -> Self {
        WebError::internal(format!("database: {err}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
    code: &'a str,
}

#[derive(Template)]
#[template(path = "error_fragment.html")]
struct ErrorFragment<'a> {
    message: String,
    code: &'a str,
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Forbidden | WebError::CsrfFailed => StatusCode::FORBIDDEN,
            WebError::SignInRequired => StatusCode::UNAUTHORIZED,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Rendering happens without the request, so htmx detection is done by the wrapper
        // middleware (`render_errors_for_htmx`) which swaps in the fragment form below.
        let status = self.status_code();
        if matches!(self, WebError::SignInRequired) {
            // A signed-out visitor of a console page is sent to sign in, not shown an error.
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/signin"))
                .insert_header(("X-Skyvault-Error", self.code()))
                .finish();
        }
        error_page(status, self.code(), self.to_string())
    }
}

/// The console's error page for a status, with the error's stable code in `X-Skyvault-Error`.
pub fn error_page(status: StatusCode, code: &str, message: String) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let page = ErrorPage {
        status: status.as_u16(),
        title,
        message,
        code,
    };
    let body = page.render().unwrap_or_else(|_| page.message.clone());
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((
            "X-Skyvault-Error",
            HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("error")),
        ))
        .body(body)
}

/// The htmx form of an error: a fragment shown in the page's message area.
pub fn htmx_error_response(status: StatusCode, code: &str, message: String) -> HttpResponse {
    let body = ErrorFragment { message, code }.render().unwrap_or_default();
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((
            "X-Skyvault-Error",
            HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("error")),
        ))
        .insert_header(("HX-Retarget", "#messages"))
        .insert_header(("HX-Reswap", "innerHTML"))
        .body(body)
}
