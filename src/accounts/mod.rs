//! Partners, customers, console users and their roles; password hashing, sign-in throttling,
//! first-run setup, sessions and CSRF tokens. Every query for tenant data starts from an
//! [`Access`] (see `access`), the single place that decides which customers a user may reach.
//! This module knows nothing of HTTP beyond implementing actix-session's store trait.

pub mod access;
pub mod audit;
pub mod entities;
pub mod password;
pub mod session_store;
pub mod setup;
pub mod tenancy;
pub mod throttle;
pub mod user_admin;
pub mod users;

pub use access::Access;

use std::fmt;

use sea_orm::DbErr;

/// What a console user may do. Stored as text in `console_users.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Manages the partner's customers and sub-partners, and everything inside them.
    PartnerAdmin,
    /// Manages one customer's organizations, plans, backups and users.
    CustomerAdmin,
    /// Sees one customer's console; changes nothing.
    ReadOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PartnerAdmin => "partner_admin",
            Role::CustomerAdmin => "customer_admin",
            Role::ReadOnly => "read_only",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "partner_admin" => Some(Role::PartnerAdmin),
            "customer_admin" => Some(Role::CustomerAdmin),
            "read_only" => Some(Role::ReadOnly),
            _ => None,
        }
    }

    /// The role chosen for a customer's console user, as posted by the add-user form. Only the
    /// two customer roles are accepted; anything else (a partner role, a misspelling, nothing)
    /// is refused rather than guessed, so a bad value can never grant more than was chosen.
    pub fn parse_customer_role(text: &str) -> Result<Self, AccountError> {
        match Role::parse(text) {
            Some(role @ (Role::CustomerAdmin | Role::ReadOnly)) => Ok(role),
            _ => Err(AccountError::invalid(
                "role",
                "Choose Customer administrator or Read-only user.",
            )),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::PartnerAdmin => "Partner administrator",
            Role::CustomerAdmin => "Customer administrator",
            Role::ReadOnly => "Read-only user",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field-level problem with user input, shown next to the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("not found")]
    NotFound,
    #[error("you do not have permission to do that")]
    Forbidden,
    #[error("The email or password is not correct.")]
    BadCredentials,
    #[error("Too many failed sign-ins. Try again in {minutes} minutes.")]
    Throttled { minutes: i64 },
    #[error("the form has errors")]
    Invalid(Vec<FieldError>),
    #[error("this setup link is not valid or has already been used")]
    SetupClosed,
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("password hashing failed")]
    Hashing,
}

impl AccountError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AccountError::Invalid(vec![FieldError {
            field,
            message: message.into(),
        }])
    }
}

/// Normalises an email address for storage and look-up.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The longest name accepted (customers, partners, display names), in characters.
pub const MAX_NAME_CHARS: usize = 120;
/// The longest email address accepted, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// The longest password accepted, in bytes: hashing cost grows with it.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Control characters (NUL, tabs, line breaks, escape, DEL, C1 codes) never belong in a name or
/// an address. PostgreSQL refuses NUL in text, and in a name the others only spoof or break the
/// layout of the pages and logs that show it, so they are refused here, before any query.
fn has_control(value: &str) -> bool {
    value.chars().any(char::is_control)
}

/// Checks a name typed into a form: not blank, no control characters, not absurdly long.
pub fn validate_name(field: &'static str, value: &str, errors: &mut Vec<FieldError>) -> String {
    let trimmed = value.trim();
    let message = if trimmed.is_empty() {
        Some("Enter a name.".to_string())
    } else if trimmed.chars().count() > MAX_NAME_CHARS {
        Some(format!("Use at most {MAX_NAME_CHARS} characters."))
    } else if has_control(trimmed) {
        Some("Remove control characters (such as tabs, line breaks or NUL).".to_string())
    } else {
        None
    };
    if let Some(message) = message {
        errors.push(FieldError { field, message });
    }
    trimmed.to_string()
}

/// Checks an email address typed into a form and returns it normalised for storage and look-up.
pub fn validate_email(field: &'static str, value: &str, errors: &mut Vec<FieldError>) -> String {
    let email = normalise_email(value);
    if email.len() > MAX_EMAIL_BYTES {
        errors.push(FieldError {
            field,
            message: format!("Use at most {MAX_EMAIL_BYTES} characters."),
        });
        return email;
    }
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !email.contains(char::is_whitespace)
        && !has_control(&email);
    if !valid {
        errors.push(FieldError {
            field,
            message: "Enter an email address like name@example.com.".into(),
        });
    }
    email
}

pub const MIN_PASSWORD_LEN: usize = 12;

pub fn validate_new_password(field: &'static str, value: &str, errors: &mut Vec<FieldError>) {
    if value.chars().count() < MIN_PASSWORD_LEN {
        errors.push(FieldError {
            field,
            message: format!("Use at least {MIN_PASSWORD_LEN} characters."),
        });
    } else if value.len() > MAX_PASSWORD_BYTES {
        errors.push(FieldError {
            field,
            message: format!("Use at most {MAX_PASSWORD_BYTES} characters."),
        });
    }
}
