//! The partner's console: customers (create, rename, disable, add administrators, manage) and
//! sub-partners. Only partner administrators reach these pages; ids outside their subtree are
//! answered with "not found".

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use askama::Template;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;

use super::forms::{self, FormState};
use super::{AppState, Chrome, SignedIn, WebError, ok, see_other};
use crate::accounts::entities::{console_user, customer, partner};
use crate::accounts::users;
use crate::accounts::{AccountError, Role, tenancy};
use crate::ids::PartnerId;

pub struct CustomerRow {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub disabled: bool,
    pub created: String,
    pub users: usize,
}

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    chrome: Chrome,
    customers: Vec<CustomerRow>,
    form: FormState,
}

fn partner_admin(signed_in: &SignedIn) -> Result<PartnerId, WebError> {
    signed_in
        .access
        .require_partner_admin()
        .map_err(WebError::from)
}

async fn customers_view(
    state: &AppState,
    signed_in: &SignedIn,
    form: FormState,
) -> Result<CustomersPage, WebError> {
    let customers = signed_in.access.customers(&state.db).await?;
    let partner_ids: Vec<_> = customers.iter().map(|c| c.partner_id).collect();
    let owners: HashMap<_, _> = partner::Entity::find()
        .filter(partner::Column::Id.is_in(partner_ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let customer_ids: Vec<_> = customers.iter().map(|c| c.id).collect();
    let mut user_counts: HashMap<uuid::Uuid, usize> = HashMap::new();
    for user in console_user::Entity::find()
        .filter(console_user::Column::CustomerId.is_in(customer_ids))
        .all(&state.db)
        .await?
    {
        if let Some(id) = user.customer_id {
            *user_counts.entry(id).or_default() += 1;
        }
    }
    let rows = customers
        .into_iter()
        .map(|c| CustomerRow {
            id: c.id.to_string(),
            owner: owners.get(&c.partner_id).cloned().unwrap_or_default(),
            users: user_counts.get(&c.id).copied().unwrap_or(0),
            created: c.created_at.format("%Y-%m-%d").to_string(),
            disabled: c.disabled,
            name: c.name,
        })
        .collect();
    Ok(CustomersPage {
        chrome: Chrome::new(signed_in, None, "customers"),
        customers: rows,
        form,
    })
}

pub async fn customers_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    ok(&customers_view(&state, &signed_in, FormState::default()).await?)
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

pub async fn create_customer(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<NameForm>,
) -> Result<HttpResponse, WebError> {
    let owner = partner_admin(&signed_in)?;
    match tenancy::create_customer(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        owner,
        &form.name,
    )
    .await
    {
        Ok(created) => Ok(see_other(&format!("/customers/{}", created.id))),
        Err(err) => {
            let form = FormState::with_values([("name", form.name.as_str())]).absorb(err)?;
            let code = form.error_code();
            forms::unprocessable(&code, &customers_view(&state, &signed_in, form).await?)
        }
    }
}

pub struct UserRow {
    pub email: String,
    pub display_name: String,
    pub role: &'static str,
    pub created: String,
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    chrome: Chrome,
    customer: customer::Model,
    users: Vec<UserRow>,
    rename: FormState,
    user_form: FormState,
    user_form_action: String,
}

pub fn user_rows(users: Vec<console_user::Model>) -> Vec<UserRow> {
    users
        .into_iter()
        .map(|u| UserRow {
            role: Role::parse(&u.role).map(Role::label).unwrap_or("Unknown"),
            created: u.created_at.format("%Y-%m-%d").to_string(),
            email: u.email,
            display_name: u.display_name,
        })
        .collect()
}

async fn customer_view(
    state: &AppState,
    signed_in: &SignedIn,
    id: &str,
    rename: FormState,
    user_form: FormState,
) -> Result<CustomerPage, WebError> {
    partner_admin(signed_in)?;
    let scope = signed_in.customer(state, id).await?;
    let users = user_rows(users::customer_users(&state.db, &scope).await?);
    Ok(CustomerPage {
        chrome: Chrome::new(signed_in, None, "customers"),
        customer: scope.customer().clone(),
        users,
        rename,
        user_form,
        user_form_action: format!("/customers/{}/users", scope.id()),
    })
}

pub async fn customer_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    ok(&customer_view(
        &state,
        &signed_in,
        &id,
        FormState::default(),
        FormState::default(),
    )
    .await?)
}

pub async fn rename_customer(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
    form: web::Form<NameForm>,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    let scope = signed_in.customer(&state, &id).await?;
    match tenancy::rename_customer(&state.db, &signed_in.access, &scope, &form.name).await {
        Ok(_) => Ok(see_other(&format!("/customers/{id}"))),
        Err(err) => {
            let rename = FormState::with_values([("name", form.name.as_str())]).absorb(err)?;
            let code = rename.error_code();
            let page = customer_view(&state, &signed_in, &id, rename, FormState::default()).await?;
            forms::unprocessable(&code, &page)
        }
    }
}

async fn set_disabled(
    state: &AppState,
    signed_in: &SignedIn,
    id: &str,
    disabled: bool,
) -> Result<HttpResponse, WebError> {
    partner_admin(signed_in)?;
    let scope = signed_in.customer(state, id).await?;
    tenancy::set_customer_disabled(&state.db, &signed_in.access, &scope, disabled).await?;
    Ok(see_other(&format!("/customers/{id}")))
}

pub async fn disable_customer(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    set_disabled(&state, &signed_in, &id, true).await
}

pub async fn enable_customer(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    set_disabled(&state, &signed_in, &id, false).await
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub role: String,
}

impl UserForm {
    /// The user as typed, with the role parsed: an unknown role is refused, never guessed.
    pub fn user(&self) -> Result<users::CustomerUser<'_>, AccountError> {
        Ok(users::CustomerUser {
            email: &self.email,
            display_name: &self.display_name,
            password: &self.password,
            role: Role::parse_customer_role(&self.role)?,
        })
    }

    pub fn retained(&self) -> FormState {
        FormState::with_values([
            ("email", self.email.as_str()),
            ("display_name", self.display_name.as_str()),
            ("role", self.role.as_str()),
        ])
    }
}

pub async fn add_customer_user(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
    form: web::Form<UserForm>,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    let scope = signed_in.customer(&state, &id).await?;
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
        Ok(_) => Ok(see_other(&format!("/customers/{id}"))),
        Err(err) => {
            let user_form = form.retained().absorb(err)?;
            let code = user_form.error_code();
            let page =
                customer_view(&state, &signed_in, &id, FormState::default(), user_form).await?;
            forms::unprocessable(&code, &page)
        }
    }
}

pub struct PartnerRow {
    pub name: String,
    pub created: String,
    pub admins: Vec<String>,
}

#[derive(Template)]
#[template(path = "partners.html")]
struct PartnersPage {
    chrome: Chrome,
    partners: Vec<PartnerRow>,
    form: FormState,
}

async fn partners_view(
    state: &AppState,
    signed_in: &SignedIn,
    form: FormState,
) -> Result<PartnersPage, WebError> {
    let own = partner_admin(signed_in)?;
    let children = tenancy::sub_partners(&state.db, &signed_in.access, own).await?;
    let ids: Vec<_> = children.iter().map(|p| p.id).collect();
    let admins = console_user::Entity::find()
        .filter(console_user::Column::PartnerId.is_in(ids))
        .all(&state.db)
        .await?;
    let partners = children
        .into_iter()
        .map(|p| PartnerRow {
            admins: admins
                .iter()
                .filter(|a| a.partner_id == Some(p.id))
                .map(|a| a.email.clone())
                .collect(),
            created: p.created_at.format("%Y-%m-%d").to_string(),
            name: p.name,
        })
        .collect();
    Ok(PartnersPage {
        chrome: Chrome::new(signed_in, None, "partners"),
        partners,
        form,
    })
}

pub async fn partners_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, WebError> {
    ok(&partners_view(&state, &signed_in, FormState::default()).await?)
}

#[derive(Deserialize)]
pub struct SubPartnerForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
}

/// A sub-partner always comes with its first administrator, so it is never left unmanaged.
pub async fn create_sub_partner(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<SubPartnerForm>,
) -> Result<HttpResponse, WebError> {
    let own = partner_admin(&signed_in)?;
    let retained = FormState::with_values([
        ("name", form.name.as_str()),
        ("email", form.email.as_str()),
        ("display_name", form.display_name.as_str()),
    ]);
    let result = tenancy::create_sub_partner_with_admin(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        own,
        &form.name,
        tenancy::PartnerAdmin {
            email: &form.email,
            display_name: &form.display_name,
            password: &form.password,
        },
    )
    .await;
    match result {
        Ok(_) => Ok(see_other("/partners")),
        Err(err) => {
            let form = retained.absorb(err)?;
            let code = form.error_code();
            forms::unprocessable(&code, &partners_view(&state, &signed_in, form).await?)
        }
    }
}
