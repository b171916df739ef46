//! The operator's mail server: its settings (validated field by field, the password sealed with
//! the master key and never shown back), who may change them (the administrators of the
//! top-level partner, the one with no parent), and handing one message to it with lettre.
//! Failures come back in plain words with whether trying again later can help; this module never
//! logs a password and never retries by itself (the outbox does).

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionTrait,
};

use super::entities::smtp_settings;
use crate::accounts::entities::partner;
use crate::accounts::{Access, AccountError, FieldError, Role, audit, validate_email};
use crate::clock::Clock;
use crate::crypto::{CryptoError, MasterKey};
use crate::ids::PartnerId;

/// The one row of `smtp_settings`.
const ROW: i32 = 1;
/// Bound into the sealed password, so a sealed value copied elsewhere does not open.
pub const PASSWORD_CONTEXT: &str = "installation:smtp:password";
/// How long one delivery may take (connect, TLS, authentication, the message).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The name the messages come from.
const SENDER_NAME: &str = "Skyvault";

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (usually port 587); refused if it cannot be.
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption: only for a mail server on this machine.
    None,
}

impl Security {
    pub const ALL: [Security; 3] = [Security::StartTls, Security::Tls, Security::None];

    pub fn as_str(self) -> &'static str {
        match self {
            Security::StartTls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            Security::StartTls => "STARTTLS (port 587)",
            Security::Tls => "TLS (port 465)",
            Security::None => "None (this machine only)",
        }
    }
}

/// The settings as the mailer uses them, the password unsealed.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub password: Option<String>,
    pub sender: String,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("enabled", &self.enabled)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<sealed>"))
            .field("sender", &self.sender)
            .finish()
    }
}

/// The settings as the page shows them: never the password, only whether one is stored.
#[derive(Debug, Clone, Default)]
pub struct SmtpView {
    pub enabled: bool,
    pub host: String,
    pub port: String,
    pub security: String,
    pub username: String,
    pub has_password: bool,
    pub sender: String,
    pub updated: Option<(DateTime<Utc>, Option<String>)>,
}

/// What the settings form posted.
#[derive(Debug, Clone, Default)]
pub struct SmtpForm {
    pub enabled: bool,
    pub host: String,
    pub port: String,
    pub security: String,
    pub username: String,
    /// Blank keeps the stored password.
    pub password: String,
    /// Forget the stored password (a server that takes no authentication any more).
    pub clear_password: bool,
    pub sender: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The partner whose administrators run this installation: the one with no parent. Anyone else
/// is told the page does not exist.
pub async fn require_operator(
    db: &DatabaseConnection,
    access: &Access,
) -> Result<PartnerId, AccountError> {
    let own = access.require_partner_admin()?;
    let row = partner::Entity::find_by_id(own.0)
        .one(db)
        .await?
        .ok_or(AccountError::NotFound)?;
    if row.parent_id.is_some() || access.role != Role::PartnerAdmin {
        return Err(AccountError::NotFound);
    }
    Ok(own)
}

/// Whether `access` is an administrator of the top-level partner.
pub async fn is_operator(db: &DatabaseConnection, access: &Access) -> Result<bool, AccountError> {
    match require_operator(db, access).await {
        Ok(_) => Ok(true),
        Err(AccountError::NotFound) => Ok(false),
        Err(err) => Err(err),
    }
}

/// The stored settings for the page (defaults when never saved).
pub async fn view(db: &DatabaseConnection) -> Result<SmtpView, sea_orm::DbErr> {
    Ok(
        match smtp_settings::Entity::find_by_id(ROW).one(db).await? {
            Some(row) => SmtpView {
                enabled: row.enabled,
                host: row.host,
                port: row.port.to_string(),
                security: row.security,
                username: row.username,
                has_password: row.sealed_password.is_some(),
                sender: row.sender,
                updated: Some((row.updated_at, row.updated_by)),
            },
            None => SmtpView {
                port: "587".into(),
                security: Security::StartTls.as_str().into(),
                ..SmtpView::default()
            },
        },
    )
}

/// The settings with the password unsealed; `None` when never saved.
pub async fn load(
    db: &impl ConnectionTrait,
    key: &MasterKey,
) -> Result<Option<SmtpConfig>, SmtpError> {
    let Some(row) = smtp_settings::Entity::find_by_id(ROW).one(db).await? else {
        return Ok(None);
    };
    let password = match &row.sealed_password {
        Some(sealed) => Some(key.open_string(sealed, PASSWORD_CONTEXT)?),
        None => None,
    };
    Ok(Some(SmtpConfig {
        enabled: row.enabled,
        host: row.host,
        port: u16::try_from(row.port).unwrap_or(587),
        security: Security::parse(&row.security).unwrap_or(Security::StartTls),
        username: row.username,
        password,
        sender: row.sender,
    }))
}

/// Whether e-mail is switched on (cheap: no unsealing).
pub async fn enabled(db: &impl ConnectionTrait) -> Result<bool, sea_orm::DbErr> {
    Ok(smtp_settings::Entity::find_by_id(ROW)
        .one(db)
        .await?
        .is_some_and(|row| row.enabled))
}

const MAX_HOST: usize = 253;
const MAX_SECRET_BYTES: usize = 1024;

fn is_local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks the form; the messages go beside their fields.
fn validate(form: &SmtpForm, stored_password: bool) -> Result<SmtpConfig, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut error = |field: &'static str, message: &str| {
        errors.push(FieldError {
            field,
            message: message.into(),
        })
    };
    let host = form.host.trim().to_string();
    if host.is_empty() {
        if form.enabled {
            error(
                "host",
                "Enter the mail server's name, e.g. smtp.example.com.",
            );
        }
    } else if host.len() > MAX_HOST
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        error(
            "host",
            "Enter a host name or IP address (letters, digits, dots and dashes), e.g. smtp.example.com.",
        );
    }
    let port = match form.port.trim().parse::<u16>() {
        Ok(port) if port > 0 => port,
        _ => {
            error("port", "Enter a port from 1 to 65535 (usually 587 or 465).");
            0
        }
    };
    let security = match Security::parse(form.security.trim()) {
        Some(Security::None) if !host.is_empty() && !is_local_host(&host) => {
            error(
                "security",
                "Without encryption the password and every message cross the network readable by anyone on the way: choose STARTTLS or TLS. \"None\" is only for a mail server on this machine (localhost).",
            );
            Security::None
        }
        Some(security) => security,
        None => {
            error("security", "Choose STARTTLS, TLS or None.");
            Security::StartTls
        }
    };
    let username = form.username.trim().to_string();
    if username.len() > 254 || username.chars().any(char::is_control) {
        error(
            "username",
            "Use at most 254 characters, without control characters.",
        );
    }
    if form.password.len() > MAX_SECRET_BYTES || form.password.chars().any(char::is_control) {
        error(
            "password",
            "Use at most 1024 characters, without control characters.",
        );
    }
    let keeps_password = stored_password && !form.clear_password;
    if !username.is_empty() && form.password.is_empty() && !keeps_password {
        error(
            "password",
            "Enter the password of this user (or leave the user name blank for a server that asks for none).",
        );
    }
    let sender = if form.sender.trim().is_empty() {
        if form.enabled {
            error(
                "sender",
                "Enter the address e-mails come from, e.g. backup@example.com.",
            );
        }
        String::new()
    } else {
        let mut found = Vec::new();
        let sender = validate_email("sender", &form.sender, &mut found);
        errors.extend(found);
        sender
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(SmtpConfig {
        enabled: form.enabled,
        host,
        port,
        security,
        username,
        password: (!form.password.is_empty()).then(|| form.password.clone()),
        sender,
    })
}

/// Saves the settings (operator only), sealing a new password; a blank password keeps the
/// stored one. Audited in the operator's log, without the password.
pub async fn save(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    key: &MasterKey,
    access: &Access,
    form: &SmtpForm,
) -> Result<(), SmtpError> {
    let operator = require_operator(db, access).await?;
    let stored = smtp_settings::Entity::find_by_id(ROW).one(db).await?;
    let stored_password = stored.as_ref().and_then(|s| s.sealed_password.clone());
    let config = validate(form, stored_password.is_some()).map_err(AccountError::Invalid)?;
    let sealed = match (&config.password, form.clear_password) {
        (Some(password), _) => Some(key.seal(password.as_bytes(), PASSWORD_CONTEXT)),
        (None, true) => None,
        (None, false) => stored_password,
    };
    let now = clock.now();
    let transaction = db.begin().await?;
    smtp_settings::Entity::insert(smtp_settings::ActiveModel {
        id: Set(ROW),
        enabled: Set(config.enabled),
        host: Set(config.host.clone()),
        port: Set(i32::from(config.port)),
        security: Set(config.security.as_str().into()),
        username: Set(config.username.clone()),
        sealed_password: Set(sealed),
        sender: Set(config.sender.clone()),
        updated_at: Set(now),
        updated_by: Set(Some(access.email.clone())),
    })
    .on_conflict(
        OnConflict::column(smtp_settings::Column::Id)
            .update_columns([
                smtp_settings::Column::Enabled,
                smtp_settings::Column::Host,
                smtp_settings::Column::Port,
                smtp_settings::Column::Security,
                smtp_settings::Column::Username,
                smtp_settings::Column::SealedPassword,
                smtp_settings::Column::Sender,
                smtp_settings::Column::UpdatedAt,
                smtp_settings::Column::UpdatedBy,
            ])
            .to_owned(),
    )
    .exec_without_returning(&transaction)
    .await?;
    let password_note = match (&config.password, form.clear_password) {
        (Some(_), _) => "; password changed",
        (None, true) => "; password removed",
        (None, false) => "",
    };
    audit::record(
        &transaction,
        clock,
        access.into(),
        audit::Event {
            owner: audit::Owner::Partner(operator),
            action: "smtp_settings_changed",
            subject: &format!("{}:{}", config.host, config.port),
            detail: format!(
                "e-mail {}; {} as {}; from {}{password_note}",
                if config.enabled { "on" } else { "off" },
                config.security.as_str(),
                if config.username.is_empty() {
                    "no user"
                } else {
                    &config.username
                },
                config.sender,
            ),
        },
    )
    .await?;
    transaction.commit().await?;
    Ok(())
}

/// Records in the operator's log that a test e-mail was sent (or refused).
pub async fn audit_test(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    to: &str,
    outcome: &Result<(), DeliveryError>,
) -> Result<(), SmtpError> {
    let operator = require_operator(db, access).await?;
    audit::record(
        db,
        clock,
        access.into(),
        audit::Event {
            owner: audit::Owner::Partner(operator),
            action: "smtp_test_sent",
            subject: to,
            detail: match outcome {
                Ok(()) => "accepted by the mail server".into(),
                Err(err) => err.message.clone(),
            },
        },
    )
    .await?;
    Ok(())
}

/// Whether the database holds a sealed SMTP password (a key must never be replaced then).
pub async fn has_sealed_password(db: &impl ConnectionTrait) -> Result<bool, sea_orm::DbErr> {
    Ok(smtp_settings::Entity::find_by_id(ROW)
        .one(db)
        .await?
        .is_some_and(|row| row.sealed_password.is_some()))
}

/// Re-seals the SMTP password from `old` to `new` on `db` (the rotation's transaction).
pub async fn reseal_password(
    db: &impl ConnectionTrait,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<u64, SmtpError> {
    let Some(row) = smtp_settings::Entity::find_by_id(ROW).one(db).await? else {
        return Ok(0);
    };
    let Some(sealed) = row.sealed_password else {
        return Ok(0);
    };
    let password = old.open(&sealed, PASSWORD_CONTEXT)?;
    smtp_settings::Entity::update_many()
        .col_expr(
            smtp_settings::Column::SealedPassword,
            Expr::value(Some(new.seal(&password, PASSWORD_CONTEXT))),
        )
        .filter(smtp_settings::Column::Id.eq(ROW))
        .exec(db)
        .await?;
    Ok(1)
}

/// Why a message did not go, in words for the page, and whether a later try may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    pub message: String,
    /// False when trying again cannot help (an address no mail server would take).
    pub retryable: bool,
}

/// Hands one plain-text message to the mail server.
pub async fn deliver(
    config: &SmtpConfig,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<(), DeliveryError> {
    let sender = config
        .sender
        .parse()
        .map(|address| Mailbox::new(Some(SENDER_NAME.into()), address))
        .map_err(|_| DeliveryError {
            message: format!(
                "The sender address {} is not valid: correct it in the mail server settings.",
                config.sender
            ),
            retryable: true,
        })?;
    let recipient: Mailbox = to.parse().map_err(|_| DeliveryError {
        message: format!("{to} is not an e-mail address a mail server can deliver to."),
        retryable: false,
    })?;
    let message = Message::builder()
        .from(sender)
        .to(recipient)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .map_err(|err| DeliveryError {
            message: format!("The message could not be put together: {err}."),
            retryable: false,
        })?;
    let transport = transport(config)?;
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(err) => Err(DeliveryError {
            message: describe(config, &err),
            retryable: true,
        }),
    }
}

fn transport(config: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, DeliveryError> {
    let builder = match config.security {
        Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
        Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
        Security::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &config.host,
        )),
    }
    .map_err(|err| DeliveryError {
        message: format!(
            "The mail server's name {} cannot be used for a secure connection: {err}.",
            config.host
        ),
        retryable: true,
    })?;
    let mut builder = builder.port(config.port).timeout(Some(SEND_TIMEOUT));
    if !config.username.is_empty() {
        builder = builder.credentials(Credentials::new(
            config.username.clone(),
            config.password.clone().unwrap_or_default(),
        ));
    }
    Ok(builder.build())
}

/// The lettre error in words a person can act on.
fn describe(config: &SmtpConfig, err: &lettre::transport::smtp::Error) -> String {
    let server = format!("{}:{}", config.host, config.port);
    let detail = err.to_string();
    if let Some(code) = err.status() {
        let code = code.to_string();
        if code.starts_with("535") || code.starts_with("530") {
            return format!(
                "The mail server {server} refused the user name or password ({detail}). Check them in the mail server settings."
            );
        }
        if err.is_permanent() {
            return format!("The mail server {server} refused the message ({detail}).");
        }
        return format!(
            "The mail server {server} asked to try again later ({detail}). Skyvault will."
        );
    }
    if err.is_timeout() {
        return format!("The mail server {server} did not answer in time.");
    }
    if err.is_tls() {
        return format!(
            "The secure connection to {server} failed ({detail}). Check the security setting (STARTTLS or TLS) and the port."
        );
    }
    if err.is_response() {
        return format!(
            "The mail server {server} answered something Skyvault did not understand ({detail}). Check the port and the security setting."
        );
    }
    format!("Skyvault could not reach the mail server {server} ({detail}).")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> SmtpForm {
        SmtpForm {
            enabled: true,
            host: "smtp.example.com".into(),
            port: "587".into(),
            security: "starttls".into(),
            username: "backup".into(),
            password: "s3cret".into(),
            clear_password: false,
            sender: "Backup@Example.com".into(),
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<&'static str> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_good_form_is_taken_with_the_sender_normalised() {
        let config = validate(&form(), false).unwrap();
        assert_eq!(config.sender, "backup@example.com");
        assert_eq!(config.port, 587);
        assert_eq!(config.security, Security::StartTls);
    }

    #[test]
    fn each_bad_field_gets_its_own_message() {
        let bad = SmtpForm {
            host: "smtp example".into(),
            port: "70000".into(),
            security: "ssl3".into(),
            sender: "nobody".into(),
            ..form()
        };
        assert_eq!(
            fields(validate(&bad, false).unwrap_err()),
            ["host", "port", "security", "sender"]
        );
    }

    #[test]
    fn no_encryption_is_only_for_this_machine() {
        let remote = SmtpForm {
            security: "none".into(),
            ..form()
        };
        assert_eq!(fields(validate(&remote, false).unwrap_err()), ["security"]);
        for host in ["localhost", "127.0.0.1", "[::1]", "mail.localhost"] {
            let local = SmtpForm {
                host: host.into(),
                ..remote.clone()
            };
            assert!(validate(&local, false).is_ok(), "{host}");
        }
    }

    #[test]
    fn a_user_needs_a_password_unless_one_is_stored() {
        let blank = SmtpForm {
            password: String::new(),
            ..form()
        };
        assert_eq!(fields(validate(&blank, false).unwrap_err()), ["password"]);
        assert!(validate(&blank, true).is_ok());
        let cleared = SmtpForm {
            clear_password: true,
            ..blank
        };
        assert_eq!(fields(validate(&cleared, true).unwrap_err()), ["password"]);
    }

    #[test]
    fn off_needs_no_server_yet() {
        let off = SmtpForm {
            enabled: false,
            host: String::new(),
            username: String::new(),
            password: String::new(),
            sender: String::new(),
            ..form()
        };
        assert!(validate(&off, false).is_ok());
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let config = validate(&form(), false).unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
