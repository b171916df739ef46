//! Managing a customer's console users from its Settings page (or a partner's customer page):
//! disable, re-enable, remove, change role, and issue a password-reset link, shown to the
//! administrator to pass on (Skyvault sends no mail). The reset link's own page lets the person
//! choose a new password.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::forms::FormState;
use super::{AppState, SignedIn, WebError, console, csrf, partner, render, see_other};
use crate::accounts::user_admin::{self, RESET_LINK_HOURS};
use crate::accounts::{AccountError, Role};
use crate::ids::UserId;

/// A reset link just issued, shown once to the administrator who asked for it.
pub struct ResetLink {
    pub email: String,
    pub url: String,
    pub expires: String,
}

#[derive(Deserialize)]
pub struct UserActionForm {
    #[serde(default)]
    role: String,
    /// `partner` when the action was taken on a partner's customer page (where it returns).
    #[serde(default)]
    from: String,
}

/// A page message after a change to a console user, by stable code.
pub fn user_message(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "user_disabled" => (
            "success",
            "The user was disabled and signed out. They cannot sign in until re-enabled.",
        ),
        "user_enabled" => ("success", "The user was enabled and can sign in again."),
        "user_removed" => (
            "success",
            "The user was removed and signed out. Their past actions stay in the audit log.",
        ),
        "user_role_changed" => (
            "success",
            "The role was changed; it applies from the user's next click.",
        ),
        _ => return None,
    })
}

/// `POST /c/{customer}/users/{user}/{action}`: disable, enable, remove, role, reset.
pub async fn user_action(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    form: web::Form<UserActionForm>,
) -> Result<HttpResponse, WebError> {
    let (customer, user, action) = path.into_inner();
    let scope = signed_in.customer(&state, &customer).await?;
    let user_id: UserId = user.parse().map_err(|_| WebError::NotFound)?;
    let on_partner_page = form.from == "partner" && signed_in.access.is_partner();
    let back = if on_partner_page {
        format!("/customers/{}", scope.id())
    } else {
        format!("/c/{}/settings", scope.id())
    };
    let (db, clock, access) = (&state.db, state.clock.as_ref(), &signed_in.access);
    let code = match action.as_str() {
        "disable" | "enable" => {
            let disabled = action == "disable";
            user_admin::set_user_disabled(db, clock, access, &scope, user_id, disabled)
                .await
                .map_err(refusal)?;
            if disabled {
                "user_disabled"
            } else {
                "user_enabled"
            }
        }
        "remove" => {
            user_admin::remove_user(db, clock, access, &scope, user_id)
                .await
                .map_err(refusal)?;
            "user_removed"
        }
        "role" => {
            let role = Role::parse(form.role.trim())
                .filter(|role| *role != Role::PartnerAdmin)
                .ok_or_else(|| {
                    WebError::BadRequest(
                        "Choose a role: Customer administrator or Read-only user.".into(),
                    )
                })?;
            user_admin::change_role(db, clock, access, &scope, user_id, role)
                .await
                .map_err(refusal)?;
            "user_role_changed"
        }
        "reset" => {
            let (token, expires) =
                user_admin::issue_password_reset(db, clock, access, &scope, user_id)
                    .await
                    .map_err(refusal)?;
            let email = crate::accounts::users::customer_users(db, &scope)
                .await?
                .into_iter()
                .find(|u| u.id == user_id.0)
                .map(|u| u.email)
                .unwrap_or_default();
            let link = ResetLink {
                email,
                url: format!("{}/reset/{token}", state.settings.public_url()),
                expires: super::m365::when(Some(expires)),
            };
            // Shown on this response only: the token is never stored in clear or put in a URL
            // of the console.
            return if on_partner_page {
                partner::customer_page_with_reset(&state, &signed_in, &customer, link).await
            } else {
                console::settings_page_with_reset(&state, &signed_in, &scope, link).await
            };
        }
        _ => return Err(WebError::NotFound),
    };
    Ok(see_other(&format!("{back}?notice={code}")))
}

/// An administrator's change that the rules refuse (their own account) is a 400 with the reason.
fn refusal(err: AccountError) -> WebError {
    match err {
        AccountError::Invalid(errors) => WebError::BadRequest(
            errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        other => other.into(),
    }
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    csrf: String,
    token: String,
    /// The account being reset; `None` when the link is used, expired or unknown.
    email: Option<String>,
    form: FormState,
    done: bool,
    hours: i64,
}

pub async fn reset_page(
    state: web::Data<AppState>,
    session: Session,
    token: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let email = user_admin::reset_link_user(&state.db, state.clock.as_ref(), &token).await?;
    let status = if email.is_some() {
        StatusCode::OK
    } else {
        StatusCode::GONE
    };
    render(
        status,
        &ResetPage {
            csrf: csrf::ensure_token(&session),
            token: token.into_inner(),
            email,
            form: FormState::default(),
            done: false,
            hours: RESET_LINK_HOURS,
        },
    )
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

pub async fn reset(
    state: web::Data<AppState>,
    request: HttpRequest,
    session: Session,
    token: web::Path<String>,
    form: web::Form<ResetForm>,
) -> Result<HttpResponse, WebError> {
    let email = user_admin::reset_link_user(&state.db, state.clock.as_ref(), &token).await?;
    let result = user_admin::reset_password(
        &state.db,
        state.clock.as_ref(),
        &token,
        &form.new_password,
        &form.confirm_password,
        super::client_address(&request).as_deref(),
    )
    .await;
    let mut page = ResetPage {
        csrf: csrf::ensure_token(&session),
        token: token.into_inner(),
        email,
        form: FormState::default(),
        done: false,
        hours: RESET_LINK_HOURS,
    };
    match result {
        Ok(()) => {
            page.done = true;
            render(StatusCode::OK, &page)
        }
        Err(AccountError::NotFound) => {
            page.email = None;
            render(StatusCode::GONE, &page)
        }
        Err(err) => {
            page.form = FormState::default().absorb(err)?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}
