//! Alert e-mail in the console. Partner administrators choose who of their partner receives
//! alerts of every customer below it and the daily summary (`/email`); the operator (the
//! administrators of the top-level partner) also sets the mail server there, sends a test
//! e-mail and sees the outbox: what waits, what failed and why. A customer chooses its own
//! recipients on `/c/{customer}/settings/email`. Anyone else gets "not found".

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::flash;
use super::forms::{self, FormState};
use super::m365::when;
use super::{AppState, Chrome, SignedIn, WebError, ok, see_other};
use crate::accounts::AccountError;
use crate::accounts::access::CustomerScope;
use crate::jobs::alerts::{AlertCause, entities::alert};
use crate::notify::outbox::{self, MailKind, OutboxSummary};
use crate::notify::recipients::{self, Choices, RecipientsForm, UserChoice};
use crate::notify::smtp::{self, Security, SmtpError, SmtpForm, SmtpView};
use crate::notify::{entities::mail_outbox, mailer};

impl From<SmtpError> for WebError {
    fn from(err: SmtpError) -> Self {
        match err {
            SmtpError::Account(err) => err.into(),
            SmtpError::Database(err) => WebError::internal(err),
            SmtpError::Crypto(err) => WebError::internal(err),
        }
    }
}

/// The recipients form as a page shows it (`recipients_form.html`).
pub struct RecipientsView {
    pub users: Vec<UserChoice>,
    pub alert_addresses: String,
    pub summary_addresses: String,
    pub chosen: bool,
    pub updated_by: Option<String>,
    pub form: FormState,
    pub action: String,
    pub can_change: bool,
    /// Who the set is for, in the page's words ("Contoso", "Northwind and its customers").
    pub scope_words: String,
}

impl RecipientsView {
    fn new(choices: Choices, action: String, can_change: bool, scope_words: String) -> Self {
        RecipientsView {
            alert_addresses: choices.extra_alerts.join("\n"),
            summary_addresses: choices.extra_summary.join("\n"),
            users: choices.users,
            chosen: choices.chosen,
            updated_by: choices.updated_by,
            form: FormState::default(),
            action,
            can_change,
            scope_words,
        }
    }

    /// Keeps what was typed into a refused form.
    fn typed(mut self, posted: &RecipientsForm, form: FormState) -> Self {
        for user in &mut self.users {
            let id = user.user_id.to_string();
            user.alerts = posted.alert_users.contains(&id);
            user.summary = posted.summary_users.contains(&id);
        }
        self.alert_addresses = posted.alert_addresses.clone();
        self.summary_addresses = posted.summary_addresses.clone();
        self.form = form;
        self
    }
}

fn recipients_message(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "recipients_saved" => ("success", "The recipients were saved."),
        "smtp_saved" => ("success", "The mail server settings were saved."),
        _ => return None,
    })
}

/// One row of the outbox's troubles.
pub struct ProblemRow {
    pub recipient: String,
    pub what: &'static str,
    pub subject: String,
    pub attempts: i32,
    pub error: String,
    pub next: String,
    pub gave_up: bool,
}

impl ProblemRow {
    fn of(row: mail_outbox::Model) -> Self {
        let gave_up = row.status == outbox::OutboxStatus::Failed.as_str();
        ProblemRow {
            recipient: row.recipient,
            what: MailKind::label(&row.kind),
            subject: row.subject,
            attempts: row.attempts,
            error: row.last_error.unwrap_or_default(),
            next: if gave_up {
                String::new()
            } else {
                when(Some(row.next_attempt_at))
            },
            gave_up,
        }
    }
}

/// An installation alert as the operator reads it.
pub struct InstallationAlert {
    pub title: &'static str,
    pub message: String,
    pub action: &'static str,
    pub since: String,
}

impl InstallationAlert {
    fn of(row: alert::Model) -> Self {
        let cause = AlertCause::parse(&row.cause);
        InstallationAlert {
            title: cause.map_or("Alert", AlertCause::title),
            action: cause.map_or("", AlertCause::action),
            message: row.message,
            since: when(Some(row.first_seen)),
        }
    }
}

/// What only the operator sees.
pub struct OperatorView {
    pub smtp: SmtpView,
    pub form: FormState,
    pub outbox: OutboxSummary,
    pub problems: Vec<ProblemRow>,
    pub last_sent: String,
    pub alerts: Vec<InstallationAlert>,
    pub test_to: String,
    pub test_result: Option<(&'static str, String)>,
}

impl OperatorView {
    pub fn securities(&self) -> Vec<(&'static str, &'static str, bool)> {
        Security::ALL
            .into_iter()
            .map(|s| (s.as_str(), s.label(), self.smtp.security == s.as_str()))
            .collect()
    }
}

#[derive(Template)]
#[template(path = "email.html")]
struct EmailPage {
    chrome: Chrome,
    partner_name: String,
    email_on: bool,
    operator: Option<OperatorView>,
    recipients: RecipientsView,
    notice: Option<(&'static str, &'static str)>,
}

async fn operator_view(state: &AppState, signed_in: &SignedIn) -> Result<OperatorView, WebError> {
    let outbox = outbox::summary(&state.db).await?;
    Ok(OperatorView {
        smtp: smtp::view(&state.db).await?,
        form: FormState::default(),
        problems: outbox
            .problems
            .clone()
            .into_iter()
            .map(ProblemRow::of)
            .collect(),
        last_sent: outbox
            .last_sent
            .map(|at| when(Some(at)))
            .unwrap_or_default(),
        outbox,
        alerts: mailer::installation_alerts(&state.db)
            .await?
            .into_iter()
            .map(InstallationAlert::of)
            .collect(),
        test_to: signed_in.access.email.clone(),
        test_result: None,
    })
}

async fn email_view(state: &AppState, signed_in: &SignedIn) -> Result<EmailPage, WebError> {
    signed_in.access.require_partner_admin()?;
    let partner_name = signed_in.partner_name.clone().unwrap_or_default();
    let operator = if smtp::is_operator(&state.db, &signed_in.access).await? {
        Some(operator_view(state, signed_in).await?)
    } else {
        None
    };
    let choices = recipients::partner_choices(&state.db, &signed_in.access).await?;
    Ok(EmailPage {
        chrome: Chrome::new(signed_in, None, "email"),
        email_on: smtp::enabled(&state.db).await?,
        operator,
        recipients: RecipientsView::new(
            choices,
            "/email/recipients".into(),
            true,
            format!("every customer of {partner_name} and of its sub-partners"),
        ),
        partner_name,
        notice: None,
    })
}

/// `GET /email`: partner administrators only.
pub async fn email_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
) -> Result<HttpResponse, WebError> {
    if let Some(redirect) = flash::lift_notice(&request, &signed_in.session) {
        return Ok(redirect);
    }
    let mut page = email_view(&state, &signed_in).await?;
    page.notice = recipients_message(&flash::take_notice(&signed_in.session));
    ok(&page)
}

/// `POST /email/recipients`: the partner's own recipients.
pub async fn save_partner_recipients(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let posted = RecipientsForm::from_pairs(&fields);
    match recipients::save_for_partner(&state.db, state.clock.as_ref(), &signed_in.access, &posted)
        .await
    {
        Ok(()) => Ok(see_other("/email?notice=recipients_saved")),
        Err(err) => {
            let form = FormState::default().absorb(err)?;
            let code = form.error_code();
            let mut page = email_view(&state, &signed_in).await?;
            page.recipients = page.recipients.typed(&posted, form);
            forms::unprocessable(&code, &page)
        }
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// `POST /email/server`: the operator saves the mail server settings.
pub async fn save_server(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    smtp::require_operator(&state.db, &signed_in.access).await?;
    let form = SmtpForm {
        enabled: field(&fields, "enabled") == "on",
        host: field(&fields, "host").into(),
        port: field(&fields, "port").into(),
        security: field(&fields, "security").into(),
        username: field(&fields, "username").into(),
        password: field(&fields, "password").into(),
        clear_password: field(&fields, "clear_password") == "on",
        sender: field(&fields, "sender").into(),
    };
    match smtp::save(
        &state.db,
        state.clock.as_ref(),
        &state.master_key,
        &signed_in.access,
        &form,
    )
    .await
    {
        Ok(()) => Ok(see_other("/email?notice=smtp_saved")),
        Err(SmtpError::Account(err @ AccountError::Invalid(_))) => {
            let refused = FormState::default().absorb(err)?;
            let code = refused.error_code();
            let mut page = email_view(&state, &signed_in).await?;
            if let Some(operator) = &mut page.operator {
                // What was typed stays in the form (never the password).
                operator.smtp = SmtpView {
                    enabled: form.enabled,
                    host: form.host,
                    port: form.port,
                    security: form.security,
                    username: form.username,
                    has_password: operator.smtp.has_password,
                    sender: form.sender,
                    updated: operator.smtp.updated.clone(),
                };
                operator.form = refused;
            }
            forms::unprocessable(&code, &page)
        }
        Err(err) => Err(err.into()),
    }
}

/// `POST /email/server/test`: sends one message with the saved settings, at once, and says in
/// the page what the server answered. Works while e-mail is still off, to try before switching
/// it on.
pub async fn send_test(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    smtp::require_operator(&state.db, &signed_in.access).await?;
    let mut errors = Vec::new();
    let to = crate::accounts::validate_email("to", field(&fields, "to"), &mut errors);
    let mut page = email_view(&state, &signed_in).await?;
    if !errors.is_empty() {
        let refused = FormState::default().absorb(AccountError::Invalid(errors))?;
        let code = refused.error_code();
        if let Some(operator) = &mut page.operator {
            operator.test_to = field(&fields, "to").chars().take(254).collect();
            operator.form = refused;
        }
        return forms::unprocessable(&code, &page);
    }
    let result = match smtp::load(&state.db, &state.master_key).await? {
        None => Err(smtp::DeliveryError {
            message: "Save the mail server settings first.".into(),
            retryable: false,
        }),
        Some(config) if config.host.is_empty() || config.sender.is_empty() => {
            Err(smtp::DeliveryError {
                message: "Enter and save the mail server and the sender address first.".into(),
                retryable: false,
            })
        }
        Some(config) => {
            smtp::deliver(
                &config,
                &to,
                "[Skyvault] Test e-mail",
                &format!(
                    "This is a test e-mail from Skyvault at {}, sent by {}.\n\nIf you read this, alert e-mails can reach you.\n",
                    state.settings.public_url(),
                    signed_in.access.email
                ),
            )
            .await
        }
    };
    smtp::audit_test(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        &to,
        &result,
    )
    .await?;
    if let Some(operator) = &mut page.operator {
        operator.test_to = to.clone();
        operator.test_result = Some(match result {
            Ok(()) => (
                "success",
                format!("The mail server accepted the test e-mail to {to}. Check that it arrived."),
            ),
            Err(err) => (
                "error",
                format!("The test e-mail was not sent: {}", err.message),
            ),
        });
    }
    ok(&page)
}

#[derive(Template)]
#[template(path = "customer_email.html")]
struct CustomerEmailPage {
    chrome: Chrome,
    settings_url: String,
    email_on: bool,
    recipients: RecipientsView,
    notice: Option<(&'static str, &'static str)>,
}

async fn customer_view(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
) -> Result<CustomerEmailPage, WebError> {
    let choices = recipients::customer_choices(&state.db, scope).await?;
    Ok(CustomerEmailPage {
        chrome: Chrome::new(signed_in, Some(scope), "settings"),
        settings_url: format!("/c/{}/settings", scope.id()),
        email_on: smtp::enabled(&state.db).await?,
        recipients: RecipientsView::new(
            choices,
            format!("/c/{}/settings/email", scope.id()),
            scope.can_change(),
            scope.customer().name.clone(),
        ),
        notice: None,
    })
}

/// `GET /c/{customer}/settings/email`: the customer's recipients (read-only users see them).
pub async fn customer_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    customer: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    if let Some(redirect) = flash::lift_notice(&request, &signed_in.session) {
        return Ok(redirect);
    }
    let scope = signed_in.customer(&state, &customer).await?;
    let mut page = customer_view(&state, &signed_in, &scope).await?;
    page.notice = recipients_message(&flash::take_notice(&signed_in.session));
    ok(&page)
}

/// `POST /c/{customer}/settings/email`: not read-only users.
pub async fn save_customer_recipients(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    customer: web::Path<String>,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let scope = signed_in.customer(&state, &customer).await?;
    let posted = RecipientsForm::from_pairs(&fields);
    match recipients::save_for_customer(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        &scope,
        &posted,
    )
    .await
    {
        Ok(()) => Ok(see_other(&format!(
            "/c/{}/settings/email?notice=recipients_saved",
            scope.id()
        ))),
        Err(err) => {
            let form = FormState::default().absorb(err)?;
            let code = form.error_code();
            let mut page = customer_view(&state, &signed_in, &scope).await?;
            page.recipients = page.recipients.typed(&posted, form);
            forms::unprocessable(&code, &page)
        }
    }
}
