//! Sub-partners: the resellers below a partner. A partner administrator lists them (sorted from
//! the URL), creates one with its first administrator, opens one (its customers, with new
//! customers created under it), renames and disables it. Only partners strictly below the
//! signed-in partner are reachable; any other id is "not found".

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::flash;
use super::forms::{self, FormState};
use super::partner::{PartnerRef, partner_admin};
use super::sorting::{self, Column, TableSort};
use super::{AppState, Chrome, SignedIn, WebError, ok, see_other};
use crate::accounts::tenancy::{self, SubPartnerSummary};
use crate::ids::PartnerId;

pub struct PartnerRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub admins: Vec<String>,
    pub customers: usize,
    pub disabled: bool,
}

impl PartnerRow {
    fn of(summary: &SubPartnerSummary) -> Self {
        Self {
            id: summary.partner.id.to_string(),
            name: summary.partner.name.clone(),
            created: summary.partner.created_at.format("%Y-%m-%d").to_string(),
            admins: summary.admins.iter().map(|a| a.email.clone()).collect(),
            customers: summary.customers,
            disabled: summary.partner.disabled,
        }
    }
}

const PARTNER_COLUMNS: &[Column] = &[
    sorting::column("name"),
    sorting::column_desc("customers"),
    sorting::column("status"),
    sorting::column_desc("created"),
];

#[derive(Deserialize, Default)]
pub struct PartnersQuery {
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
}

#[derive(Template)]
#[template(path = "partners.html")]
struct PartnersPage {
    chrome: Chrome,
    partners: Vec<PartnerRow>,
    sort: TableSort,
    form: FormState,
}

async fn partners_view(
    state: &AppState,
    signed_in: &SignedIn,
    form: FormState,
    query: &PartnersQuery,
) -> Result<PartnersPage, WebError> {
    let own = partner_admin(signed_in)?;
    let mut summaries = tenancy::sub_partner_summaries(&state.db, &signed_in.access, own).await?;
    let sort = TableSort::new("/partners", PARTNER_COLUMNS, &query.sort, &query.dir);
    sort.apply(&mut summaries, |column, a, b| match column {
        "customers" => a.customers.cmp(&b.customers),
        "status" => a.partner.disabled.cmp(&b.partner.disabled),
        "created" => a.partner.created_at.cmp(&b.partner.created_at),
        _ => sorting::text(&a.partner.name, &b.partner.name),
    });
    Ok(PartnersPage {
        chrome: Chrome::new(signed_in, None, "partners"),
        partners: summaries.iter().map(PartnerRow::of).collect(),
        sort,
        form,
    })
}

pub async fn partners_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<PartnersQuery>,
) -> Result<HttpResponse, WebError> {
    ok(&partners_view(&state, &signed_in, FormState::default(), &query).await?)
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
            let page = partners_view(&state, &signed_in, form, &PartnersQuery::default()).await?;
            forms::unprocessable(&code, &page)
        }
    }
}

#[derive(Template)]
#[template(path = "sub_partner.html")]
struct SubPartnerPage {
    chrome: Chrome,
    partner: PartnerRow,
    admins: Vec<(String, String)>,
    rename: FormState,
    notice: Option<(&'static str, &'static str)>,
}

fn partner_id(id: &str) -> Result<PartnerId, WebError> {
    id.parse().map_err(|_| WebError::NotFound)
}

async fn sub_partner_view(
    state: &AppState,
    signed_in: &SignedIn,
    id: &str,
    rename: FormState,
) -> Result<SubPartnerPage, WebError> {
    partner_admin(signed_in)?;
    let summary =
        tenancy::sub_partner_summary(&state.db, &signed_in.access, partner_id(id)?).await?;
    let partner = PartnerRow::of(&summary);
    let mut chrome = Chrome::new(signed_in, None, "partners");
    chrome.sub_partner = Some(PartnerRef {
        id: partner.id.clone(),
        name: partner.name.clone(),
    });
    Ok(SubPartnerPage {
        chrome,
        partner,
        admins: summary
            .admins
            .into_iter()
            .map(|a| (a.display_name, a.email))
            .collect(),
        rename,
        notice: None,
    })
}

/// A page message after a change to a sub-partner, by stable code.
fn partner_message(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "partner_renamed" => ("success", "The sub-partner was renamed."),
        "partner_disabled" => (
            "success",
            "The sub-partner was disabled: its administrators were signed out and cannot sign in. Its customers are unchanged, and you still manage them.",
        ),
        "partner_enabled" => (
            "success",
            "The sub-partner was enabled: its administrators can sign in again.",
        ),
        _ => return None,
    })
}

pub async fn sub_partner_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    if let Some(redirect) = flash::lift_notice(&request, &signed_in.session) {
        return Ok(redirect);
    }
    let mut page = sub_partner_view(&state, &signed_in, &id, FormState::default()).await?;
    page.notice = partner_message(&flash::take_notice(&signed_in.session));
    ok(&page)
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

pub async fn rename_sub_partner(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
    form: web::Form<RenameForm>,
) -> Result<HttpResponse, WebError> {
    partner_admin(&signed_in)?;
    let result = tenancy::rename_sub_partner(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        partner_id(&id)?,
        &form.name,
    )
    .await;
    match result {
        Ok(_) => Ok(see_other(&format!("/partners/{id}?notice=partner_renamed"))),
        Err(err) => {
            let rename = FormState::with_values([("name", form.name.as_str())]).absorb(err)?;
            let code = rename.error_code();
            forms::unprocessable(
                &code,
                &sub_partner_view(&state, &signed_in, &id, rename).await?,
            )
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
    tenancy::set_sub_partner_disabled(
        &state.db,
        state.clock.as_ref(),
        &signed_in.access,
        partner_id(id)?,
        disabled,
    )
    .await?;
    let code = if disabled {
        "partner_disabled"
    } else {
        "partner_enabled"
    };
    Ok(see_other(&format!("/partners/{id}?notice={code}")))
}

pub async fn disable_sub_partner(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    set_disabled(&state, &signed_in, &id, true).await
}

pub async fn enable_sub_partner(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    set_disabled(&state, &signed_in, &id, false).await
}
