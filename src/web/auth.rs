//! Signing in and out, changing one's password, and the first-run setup page.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::forms::{self, FormState};
use super::{AppState, Chrome, SignedIn, WebError, csrf, ok, render, see_other};
use crate::accounts::access::{CustomerScope, Home};
use crate::accounts::session_store::USER_KEY;
use crate::accounts::{Access, AccountError, setup, users};

/// `/`: the console's start page for whoever is signed in.
pub async fn home(signed_in: Result<SignedIn, WebError>) -> HttpResponse {
    match signed_in {
        Ok(signed_in) => see_other(&start_page(&signed_in.access)),
        Err(_) => see_other("/signin"),
    }
}

fn start_page(access: &Access) -> String {
    match access.home {
        Home::Partner(_) => "/customers".into(),
        Home::Customer(id) => format!("/c/{id}/overview"),
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    csrf: String,
    form: FormState,
    setup_pending: bool,
}

pub async fn signin_page(
    state: web::Data<AppState>,
    session: Session,
    signed_in: Result<SignedIn, WebError>,
) -> Result<HttpResponse, WebError> {
    if let Ok(signed_in) = signed_in {
        return Ok(see_other(&start_page(&signed_in.access)));
    }
    let setup_pending = users::count_users(&state.db).await? == 0;
    ok(&SigninPage {
        csrf: csrf::ensure_token(&session),
        form: FormState::default(),
        setup_pending,
    })
}

#[derive(Deserialize)]
pub struct SigninForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn signin(
    state: web::Data<AppState>,
    session: Session,
    request: HttpRequest,
    form: web::Form<SigninForm>,
) -> Result<HttpResponse, WebError> {
    let address = super::client_address(&request).unwrap_or_default();
    let result = users::authenticate(
        &state.db,
        state.clock.as_ref(),
        &form.email,
        &form.password,
        &address,
    )
    .await;
    let (status, summary) = match result {
        Ok(access) => {
            // A new session key at sign-in, so a key planted before sign-in is worthless after it.
            session.renew();
            session
                .insert(USER_KEY, access.user_id.to_string())
                .map_err(WebError::internal)?;
            csrf::rotate_token(&session);
            return Ok(see_other(&start_page(&access)));
        }
        Err(AccountError::BadCredentials) => (
            StatusCode::UNAUTHORIZED,
            AccountError::BadCredentials.to_string(),
        ),
        Err(AccountError::Throttled { minutes }) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed sign-ins. Try again in {minutes} minutes."),
        ),
        Err(err @ AccountError::Invalid(_)) => {
            let form = FormState::with_values([("email", form.email.as_str())]).absorb(err)?;
            let code = form.error_code();
            return forms::unprocessable(
                &code,
                &SigninPage {
                    csrf: csrf::ensure_token(&session),
                    form,
                    setup_pending: false,
                },
            );
        }
        Err(other) => return Err(other.into()),
    };
    let mut form_state = FormState::with_values([("email", form.email.as_str())]);
    form_state.summary = Some(summary);
    render(
        status,
        &SigninPage {
            csrf: csrf::ensure_token(&session),
            form: form_state,
            setup_pending: false,
        },
    )
}

pub async fn signout(session: Session) -> HttpResponse {
    session.purge();
    see_other("/signin")
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    chrome: Chrome,
    form: FormState,
    changed: bool,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    /// The customer a partner was managing when they opened My account.
    #[serde(default)]
    customer: String,
}

/// The customer whose console frames My account: a customer user's own, or the one a partner
/// came from (checked through the scoping function like any id in a URL).
async fn account_context(
    state: &AppState,
    signed_in: &SignedIn,
    query: &AccountQuery,
) -> Result<Option<CustomerScope>, WebError> {
    match signed_in.access.home {
        Home::Customer(own) => Ok(Some(signed_in.access.customer(&state.db, own).await?)),
        Home::Partner(_) if query.customer.is_empty() => Ok(None),
        Home::Partner(_) => Ok(Some(signed_in.customer(state, &query.customer).await?)),
    }
}

pub async fn password_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, WebError> {
    let context = account_context(&state, &signed_in, &query).await?;
    let chrome = Chrome::new(&signed_in, context.as_ref(), "password");
    ok(&PasswordPage {
        chrome,
        form: FormState::default(),
        changed: false,
    })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

pub async fn change_password(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<AccountQuery>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, WebError> {
    let context = account_context(&state, &signed_in, &query).await?;
    let result = users::change_password(
        &state.db,
        &signed_in.access,
        &form.current_password,
        &form.new_password,
        &form.confirm_password,
    )
    .await;
    match result {
        Ok(()) => {
            // Every other session of this user has ended; this one continues under a new key.
            signed_in.session.renew();
            let chrome = Chrome::new(&signed_in, context.as_ref(), "password");
            ok(&PasswordPage {
                chrome,
                form: FormState::default(),
                changed: true,
            })
        }
        Err(err) => {
            let form = FormState::default().absorb(err)?;
            let code = form.error_code();
            let chrome = Chrome::new(&signed_in, context.as_ref(), "password");
            forms::unprocessable(
                &code,
                &PasswordPage {
                    chrome,
                    form,
                    changed: false,
                },
            )
        }
    }
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    csrf: String,
    token: String,
    form: FormState,
}

#[derive(Template)]
#[template(path = "setup_closed.html")]
struct SetupClosedPage {
    /// Setup was completed (the link was used), rather than the link never being valid.
    used: bool,
}

/// A setup link that no longer works says why: used (setup is done: sign in) or never valid
/// (only the newest printed link works).
async fn setup_closed(state: &AppState) -> Result<HttpResponse, WebError> {
    let used = users::count_users(&state.db).await? > 0;
    let status = if used {
        StatusCode::GONE
    } else {
        StatusCode::NOT_FOUND
    };
    let mut response = render(status, &SetupClosedPage { used })?;
    response.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static("x-skyvault-error"),
        actix_web::http::header::HeaderValue::from_static(if used {
            "setup_link_used"
        } else {
            "setup_link_invalid"
        }),
    );
    Ok(response)
}

pub async fn setup_page(
    state: web::Data<AppState>,
    session: Session,
    token: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    if !setup::setup_token_valid(&state.db, &token).await? {
        return setup_closed(&state).await;
    }
    ok(&SetupPage {
        csrf: csrf::ensure_token(&session),
        token: token.into_inner(),
        form: FormState::default(),
    })
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn setup(
    state: web::Data<AppState>,
    session: Session,
    token: web::Path<String>,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, WebError> {
    let claimed = setup::claim(
        &state.db,
        state.clock.as_ref(),
        &token,
        setup::FirstAdmin {
            organisation: &form.organisation,
            email: &form.email,
            display_name: &form.display_name,
            password: &form.password,
            confirm: &form.confirm,
        },
    )
    .await;
    match claimed {
        Ok(user) => {
            tracing::info!(email = %user.email, "setup complete: first partner administrator created");
            session.renew();
            session
                .insert(USER_KEY, user.id.to_string())
                .map_err(WebError::internal)?;
            csrf::rotate_token(&session);
            Ok(see_other("/customers"))
        }
        Err(AccountError::SetupClosed) => setup_closed(&state).await,
        Err(err) => {
            let form = FormState::with_values([
                ("organisation", form.organisation.as_str()),
                ("display_name", form.display_name.as_str()),
                ("email", form.email.as_str()),
            ])
            .absorb(err)?;
            let code = form.error_code();
            forms::unprocessable(
                &code,
                &SetupPage {
                    csrf: csrf::ensure_token(&session),
                    token: token.into_inner(),
                    form,
                },
            )
        }
    }
}
