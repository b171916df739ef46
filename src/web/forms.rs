//! What a form page needs to re-render after a failed post: the values typed and the messages
//! to show next to each field.

use std::collections::HashMap;

use crate::accounts::{AccountError, FieldError};

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
