//! The customer's console: Devices, Microsoft 365, Protection plans, Backup storage, Activities,
//! Alerts and Settings. Every page starts by scoping the customer id from the URL.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::forms::{self, FormState};
use super::partner::{UserForm, UserRow, user_rows};
use super::{AppState, Chrome, SignedIn, WebError, m365, ok, see_other, storage};
use crate::accounts::access::CustomerScope;
use crate::accounts::users;

/// The console's sections in navigation order: (path segment, label).
pub const SECTIONS: &[(&str, &str)] = &[
    ("devices", "Devices"),
    ("m365", "Microsoft 365"),
    ("plans", "Protection plans"),
    ("storage", "Backup storage"),
    ("activities", "Activities"),
    ("alerts", "Alerts"),
    ("settings", "Settings"),
];

#[derive(Template)]
#[template(path = "section.html")]
struct SectionPage {
    chrome: Chrome,
    customer_id: String,
    section: &'static str,
    title: &'static str,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    can_change: bool,
    form: FormState,
    user_form_action: String,
}

pub async fn section(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    devices_query: web::Query<m365::DevicesQuery>,
) -> Result<HttpResponse, WebError> {
    let (id, section) = path.into_inner();
    let scope = signed_in.customer(&state, &id).await?;
    let (section, title) = *SECTIONS
        .iter()
        .find(|(slug, _)| *slug == section)
        .ok_or(WebError::NotFound)?;
    match section {
        "settings" => {
            return ok(&settings_view(&state, &signed_in, &scope, FormState::default()).await?);
        }
        "devices" => return m365::devices(&state, &signed_in, &scope, &devices_query).await,
        "activities" => return m365::activities(&state, &signed_in, &scope).await,
        "storage" => {
            return storage::storage_page(&state, &signed_in, &scope, &devices_query.notice).await;
        }
        "m365" => {
            if let Some(response) = m365::m365_section(&state, &scope).await? {
                return Ok(response);
            }
        }
        _ => {}
    }
    ok(&SectionPage {
        chrome: Chrome::new(&signed_in, Some(&scope), section),
        customer_id: scope.id().to_string(),
        section,
        title,
    })
}

async fn settings_view(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    form: FormState,
) -> Result<SettingsPage, WebError> {
    Ok(SettingsPage {
        chrome: Chrome::new(signed_in, Some(scope), "settings"),
        users: user_rows(users::customer_users(&state.db, scope).await?),
        can_change: scope.can_change(),
        form,
        user_form_action: format!("/c/{}/settings/users", scope.id()),
    })
}

/// A customer administrator (or their partner) adds a console user to the customer.
pub async fn add_user(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
    form: web::Form<UserForm>,
) -> Result<HttpResponse, WebError> {
    let scope = signed_in.customer(&state, &id).await?;
    scope.require_change()?;
    let created = match form.user() {
        Ok(user) => {
            users::create_customer_user(
                &state.db,
                state.clock.as_ref(),
                &signed_in.access,
                &scope,
                user,
            )
            .await
        }
        Err(err) => Err(err),
    };
    match created {
        Ok(_) => Ok(see_other(&format!("/c/{id}/settings"))),
        Err(err) => {
            let form = form.retained().absorb(err)?;
            let code = form.error_code();
            forms::unprocessable(
                &code,
                &settings_view(&state, &signed_in, &scope, form).await?,
            )
        }
    }
}
