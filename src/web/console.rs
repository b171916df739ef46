//! The customer's console: Overview, Devices, Microsoft 365, Protection plans, Backup storage, Activities,
//! Alerts and Settings. Every page starts by scoping the customer id from the URL.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::flash;
use super::forms::{self, FormState};
use super::partner::{UserForm, UsersTable};
use super::{
    AppState, Chrome, SignedIn, WebError, activities, alerts, audit, m365, ok, overview, people,
    plans, see_other, storage,
};
use crate::accounts::access::CustomerScope;
use crate::accounts::users;

/// The console's sections in navigation order: (path segment, label).
pub const SECTIONS: &[(&str, &str)] = &[
    ("overview", "Overview"),
    ("devices", "Devices"),
    ("m365", "Microsoft 365"),
    ("plans", "Protection plans"),
    ("storage", "Backup storage"),
    ("activities", "Activities"),
    ("alerts", "Alerts"),
    ("audit", "Audit log"),
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
    users: UsersTable,
    can_change: bool,
    form: FormState,
    user_form_action: String,
    notice: Option<(&'static str, &'static str)>,
}

pub async fn section(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    if let Some(redirect) = flash::lift_notice(&request, &signed_in.session) {
        return Ok(redirect);
    }
    let (id, section) = path.into_inner();
    let scope = signed_in.customer(&state, &id).await?;
    let (section, title) = *SECTIONS
        .iter()
        .find(|(slug, _)| *slug == section)
        .ok_or(WebError::NotFound)?;
    match section {
        "settings" => {
            let mut page = settings_view(&state, &signed_in, &scope, FormState::default()).await?;
            page.users = page.users.sorted(&scope, request.query_string());
            page.notice = people::user_message(&flash::take_notice(&signed_in.session));
            return ok(&page);
        }
        "devices" => {
            let notice = flash::take_notice(&signed_in.session);
            return m365::devices(&state, &signed_in, &scope, &notice, request.query_string())
                .await;
        }
        "overview" => return overview::overview_page(&state, &signed_in, &scope).await,
        "alerts" => {
            let notice = flash::take_notice(&signed_in.session);
            return alerts::alerts_page(&state, &signed_in, &scope, &notice).await;
        }
        "activities" => {
            return activities::activities(&state, &signed_in, &scope, &request).await;
        }
        "audit" => return audit::customer_audit(&state, &signed_in, &scope, &request).await,
        "plans" => {
            let notice = flash::take_notice(&signed_in.session);
            return plans::plans_page(&state, &signed_in, &scope, &notice, request.query_string())
                .await;
        }
        "storage" => {
            let notice = flash::take_notice(&signed_in.session);
            return storage::storage_page(
                &state,
                &signed_in,
                &scope,
                &notice,
                request.query_string(),
            )
            .await;
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
        users: UsersTable::new(
            users::customer_users(&state.db, scope).await?,
            signed_in,
            scope,
            "settings",
        ),
        can_change: scope.can_change(),
        form,
        user_form_action: format!("/c/{}/settings/users", scope.id()),
        notice: None,
    })
}

/// Settings showing a password-reset link just made for one of the customer's users.
pub async fn settings_page_with_reset(
    state: &AppState,
    signed_in: &SignedIn,
    scope: &CustomerScope,
    reset: people::ResetLink,
) -> Result<HttpResponse, WebError> {
    let mut page = settings_view(state, signed_in, scope, FormState::default()).await?;
    page.users.reset = Some(reset);
    ok(&page)
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
