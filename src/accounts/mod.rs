//! Partners, customers, console users and their roles; password hashing, sign-in throttling,
//! first-run setup, sessions and CSRF tokens. Every query for tenant data starts from an
//! [`Access`] (see `access`), the single place that decides which customers a user may reach.
//! This module knows nothing of HTTP beyond implementing actix-session's store trait.

pub mod access;
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

/// Checks a name typed into a form: not blank, not absurdly long.
pub fn validate_name(field: &'static str, value: &str, errors: &mut Vec<FieldError>) -> String {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.push(FieldError {
            field,
            message: "Enter a name.".into(),
        });
    } else if trimmed.chars().count() > 120 {
        errors.push(FieldError {
            field,
            message: "Use at most 120 characters.".into(),
        });
    }
    trimmed.to_string()
}

pub fn validate_email(field: &'static str, value: &str, errors: &mut Vec<FieldError>) -> String {
    let email = normalise_email(value);
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.contains(char::is_whitespace);
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
    } else if value.len() > 1024 {
        errors.push(FieldError {
            field,
            message: "Use at most 1024 characters.".into(),
        });
    }
}
