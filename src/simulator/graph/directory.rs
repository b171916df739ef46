//! Directory and sites on Graph v1.0 (graph-protocol.md §2): `organization`, `subscribedSkus`,
//! `users` (with `assignedPlans` from their licence), `groups` (Microsoft 365 groups, teams via
//! `resourceProvisioningOptions`), members, `sites/getAllSites`, `sites?search=*` and
//! `sites/delta` (deleted sites with the `deleted` facet), `users/delta` and `groups/delta` with
//! `@removed` (soft-deleted objects included in the initial round), and `directory/deletedItems`. It renders entities with Microsoft's property names and never
//! touches mail or drive content.

use chrono::{Duration, SecondsFormat};
use serde_json::{Value, json};

use super::odata::{self, Filter};
use super::{Ctx, GraphError, GraphResult, Reply};
use crate::simulator::state::{Found, Group, Life, Site, Tenant, TenantState, User, read, write};

/// Properties `GET /users` returns without `$select` (§2.1).
const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 999;
const DELTA_PAGE: usize = 100;
/// Directory delta tokens expire after 7 days (§2.2).
const DELTA_TOKEN_DAYS: i64 = 7;

fn ts(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn user_json(tenant: &Tenant, user: &User) -> Value {
    json!({
        "id": user.id.to_string(),
        "businessPhones": user.business_phones,
        "displayName": user.display_name,
        "givenName": user.given_name,
        "jobTitle": user.job_title,
        "mail": user.user_principal_name,
        "mobilePhone": user.mobile_phone,
        "officeLocation": user.office_location,
        "preferredLanguage": "en-US",
        "surname": user.surname,
        "userPrincipalName": user.user_principal_name,
        "accountEnabled": user.account_enabled,
        "createdDateTime": ts(user.created),
        "deletedDateTime": match user.life { Life::SoftDeleted(at) => Value::String(ts(at)), _ => Value::Null },
        "department": user.department,
        "companyName": tenant.display_name,
        "mailNickname": user.mail_nickname,
        "userType": "Member",
        "usageLocation": "US",
        "city": "Redmond",
        "country": "United States",
        "employeeId": Value::Null,
        "faxNumber": Value::Null,
        "onPremisesSyncEnabled": Value::Null,
        "otherMails": [],
        "proxyAddresses": [format!("SMTP:{}", user.user_principal_name)],
        "imAddresses": [user.user_principal_name],
        "securityIdentifier": format!("S-1-12-1-{}", user.id.as_u128() as u32),
        "assignedLicenses": if user.licensed { json!([{"disabledPlans": [], "skuId": SKU_ID}]) } else { json!([]) },
        "assignedPlans": if user.licensed { assigned_plans(user.created) } else { json!([]) },
    })
}

/// The one subscription simulated tenants buy: Office 365 E5 (`ENTERPRISEPREMIUM`).
const SKU_ID: &str = "c7df2760-2c81-4ef7-b578-5b5392b571df";
const EXCHANGE_PLAN: (&str, &str) = (
    "efb87545-963c-4e0d-99df-69c6916d9eb0",
    "EXCHANGE_S_ENTERPRISE",
);
const SHAREPOINT_PLAN: (&str, &str) = (
    "5dbe027f-2339-4123-9542-606e4d348a72",
    "SHAREPOINTENTERPRISE",
);

/// `assignedPlans` of a licensed user: the licence's Exchange Online and SharePoint Online plans,
/// with the service names Microsoft uses (`exchange`, `SharePoint`).
fn assigned_plans(at: chrono::DateTime<chrono::Utc>) -> Value {
    json!([
        {"assignedDateTime": ts(at), "capabilityStatus": "Enabled", "service": "exchange", "servicePlanId": EXCHANGE_PLAN.0},
        {"assignedDateTime": ts(at), "capabilityStatus": "Enabled", "service": "SharePoint", "servicePlanId": SHAREPOINT_PLAN.0},
    ])
}

pub fn group_json(tenant: &Tenant, group: &Group) -> Value {
    let mail = group
        .unified
        .then(|| format!("{}@{}", group.mail_nickname, tenant.domain));
    json!({
        "id": group.id.to_string(),
        "deletedDateTime": match group.life { Life::SoftDeleted(at) => Value::String(ts(at)), _ => Value::Null },
        "classification": Value::Null,
        "createdDateTime": ts(group.created),
        "description": group.description,
        "displayName": group.display_name,
        "expirationDateTime": Value::Null,
        "groupTypes": if group.unified { vec!["Unified"] } else { Vec::new() },
        "isAssignableToRole": Value::Null,
        "mail": mail,
        "mailEnabled": group.unified,
        "mailNickname": group.mail_nickname,
        "membershipRule": Value::Null,
        "membershipRuleProcessingState": Value::Null,
        "onPremisesSyncEnabled": Value::Null,
        "preferredDataLocation": Value::Null,
        "preferredLanguage": Value::Null,
        "proxyAddresses": mail.iter().map(|m| format!("SMTP:{m}")).collect::<Vec<_>>(),
        "renewedDateTime": ts(group.created),
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": if group.team { vec!["Team"] } else { Vec::new() },
        "securityEnabled": !group.unified,
        "securityIdentifier": format!("S-1-12-1-{}", group.id.as_u128() as u32),
        "theme": Value::Null,
        "visibility": group.visibility,
    })
}

pub fn site_json(tenant: &Tenant, site: &Site) -> Value {
    let mut value = json!({
        "createdDateTime": ts(site.created),
        "description": site.description,
        "id": tenant.site_id(site),
        "lastModifiedDateTime": ts(site.created + Duration::days(3)),
        "name": if site.is_root { tenant.spo_host() } else { site.url_name.clone() },
        "webUrl": tenant.site_url(site),
        "displayName": site.display_name,
        "isPersonalSite": false,
        "siteCollection": {"hostname": tenant.spo_host()},
        "sharepointIds": {"siteId": site.collection_id.to_string(), "webId": site.web_id.to_string(), "siteUrl": tenant.site_url(site), "tenantId": tenant.id.to_string()},
    });
    if site.is_root {
        value["root"] = json!({});
    }
    value
}

fn removed(odata_type: &str, id: &str, reason: &str) -> Value {
    json!({"@odata.type": odata_type, "id": id, "@removed": {"reason": reason}})
}

pub fn route(ctx: &Ctx<'_>, segments: &[&str]) -> Option<GraphResult> {
    let get = ctx.method == "GET";
    Some(match segments {
        ["organization"] if get => organization(ctx),
        ["subscribedSkus"] if get => subscribed_skus(ctx),
        ["domains"] if get => domains(ctx),
        ["users"] if get => list_users(ctx),
        ["users", "delta" | "delta()" | "microsoft.graph.delta()"] if get => delta(ctx, Kind::User),
        ["users", id] if get => get_user(ctx, id),
        ["users", id] if ctx.method == "DELETE" => delete_user(ctx, id),
        ["groups"] if get => list_groups(ctx),
        ["groups", "delta" | "delta()" | "microsoft.graph.delta()"] if get => {
            delta(ctx, Kind::Group)
        }
        ["groups", id] if get => get_group(ctx, id),
        ["groups", id] if ctx.method == "DELETE" => delete_group(ctx, id),
        ["groups", id, "members" | "owners"] if get => members(ctx, id, segments[2] == "owners"),
        ["groups", id, "sites", "root"] if get => group_site(ctx, id),
        ["sites"] if get => list_sites(ctx, false),
        [
            "sites",
            "getAllSites" | "getAllSites()" | "microsoft.graph.getAllSites()",
        ] if get => list_sites(ctx, true),
        ["sites", "delta" | "delta()" | "microsoft.graph.delta()"] if get => sites_delta(ctx),
        ["sites", id] if get => get_site(ctx, id),
        ["directory", "deletedItems"] if get => Err(GraphError::bad_request(
            "Request_BadRequest",
            "The OData cast segment is required: use directory/deletedItems/microsoft.graph.user or microsoft.graph.group.",
        )),
        ["directory", "deletedItems", "microsoft.graph.user"] if get => {
            deleted_items(ctx, Kind::User)
        }
        ["directory", "deletedItems", "microsoft.graph.group"] if get => {
            deleted_items(ctx, Kind::Group)
        }
        ["directory", "deletedItems", id] if get => deleted_item(ctx, id),
        [
            "directory",
            "deletedItems",
            id,
            "restore" | "microsoft.graph.restore",
        ] if ctx.method == "POST" => restore(ctx, id),
        ["directory", "deletedItems", id] if ctx.method == "DELETE" => purge(ctx, id),
        _ => return None,
    })
}

fn organization(ctx: &Ctx<'_>) -> GraphResult {
    let t = ctx.tenant;
    let org = json!({
        "id": t.id.to_string(),
        "deletedDateTime": Value::Null,
        "businessPhones": ["+1 425 555 0100"],
        "city": "Redmond",
        "country": Value::Null,
        "countryLetterCode": "US",
        "createdDateTime": ts(t.created),
        "defaultUsageLocation": "US",
        "displayName": t.display_name,
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": Value::Null,
        "onPremisesSyncEnabled": Value::Null,
        "postalCode": "98052",
        "preferredLanguage": "en",
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": "WA",
        "street": "One Microsoft Way",
        "technicalNotificationMails": [format!("admin@{}", t.domain)],
        "tenantType": "AAD",
        "assignedPlans": [{"assignedDateTime": ts(t.created), "capabilityStatus": "Enabled", "service": "exchange", "servicePlanId": "efb87545-963c-4e0d-99df-69c6916d9eb0"}, {"assignedDateTime": ts(t.created), "capabilityStatus": "Enabled", "service": "SharePoint", "servicePlanId": "5dbe027f-2339-4123-9542-606e4d348a72"}],
        "provisionedPlans": [{"capabilityStatus": "Enabled", "provisioningStatus": "Success", "service": "exchange"}],
        "verifiedDomains": [{"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": true, "isInitial": true, "name": t.domain, "type": "Managed"}],
    });
    let projected = odata::project(&org, ctx.query.select().as_deref(), "organization", None)?;
    Ok(Reply::Json(
        200,
        odata::collection(ctx.context("organization"), vec![projected], None, None),
    ))
}

/// `GET /subscribedSkus`: one subscription whose prepaid units are the tenant's licences and
/// whose consumed units are its licensed users.
fn subscribed_skus(ctx: &Ctx<'_>) -> GraphResult {
    let t = ctx.tenant;
    let consumed = read(&t.state)
        .users
        .iter()
        .filter(|u| u.licensed && u.life == Life::Active)
        .count();
    let plan = |(id, name): (&str, &str)| json!({"servicePlanId": id, "servicePlanName": name, "provisioningStatus": "Success", "appliesTo": "User"});
    let sku = json!({
        "id": format!("{}_{SKU_ID}", t.id),
        "accountId": t.id.to_string(),
        "accountName": t.display_name,
        "appliesTo": "User",
        "capabilityStatus": "Enabled",
        "consumedUnits": consumed,
        "skuId": SKU_ID,
        "skuPartNumber": "ENTERPRISEPREMIUM",
        "subscriptionIds": [t.id.to_string()],
        "prepaidUnits": {"enabled": t.licences(), "suspended": 0, "warning": 0, "lockedOut": 0},
        "servicePlans": [plan(EXCHANGE_PLAN), plan(SHAREPOINT_PLAN)],
    });
    Ok(Reply::Json(
        200,
        odata::collection(ctx.context("subscribedSkus"), vec![sku], None, None),
    ))
}

fn domains(ctx: &Ctx<'_>) -> GraphResult {
    let d = json!({"id": ctx.tenant.domain, "authenticationType": "Managed", "availabilityStatus": Value::Null, "isAdminManaged": true, "isDefault": true, "isInitial": true, "isRoot": true, "isVerified": true, "passwordNotificationWindowInDays": 14, "passwordValidityPeriodInDays": 2147483647, "supportedServices": ["Email", "OfficeCommunicationsOnline"]});
    Ok(Reply::Json(
        200,
        odata::collection(ctx.context("domains"), vec![d], None, None),
    ))
}

/// A page over a stable ordering: the cursor is the next index, so objects added or changed
/// meanwhile never shift what is still to come.
fn page<T>(
    ctx: &Ctx<'_>,
    items: &[T],
    include: impl Fn(&T) -> Option<Value>,
    path: &str,
    context: &str,
) -> GraphResult {
    let top = ctx.query.top(PAGE_MAX)?.unwrap_or(PAGE_DEFAULT);
    let start = match ctx.query.get("$skiptoken") {
        None => 0,
        Some(token) => odata::decode_token(token).and_then(|v| v["next"].as_u64()).ok_or_else(|| GraphError::bad_request("Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request."))? as usize,
    };
    let mut out = Vec::new();
    let mut next = None;
    let mut i = start;
    while i < items.len() {
        if let Some(value) = include(&items[i]) {
            if out.len() == top {
                next = Some(i);
                break;
            }
            out.push(value);
        }
        i += 1;
    }
    let count = (start == 0 && ctx.query.flag("$count")).then(|| {
        (start..items.len())
            .filter(|&j| include(&items[j]).is_some())
            .count()
    });
    let next_link = next.map(|n| {
        let mut params: Vec<String> = ctx
            .query
            .pairs
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
            .map(|(k, v)| format!("{}={}", odata::escape(k), odata::escape(v)))
            .collect();
        params.push(format!(
            "$skiptoken={}",
            odata::encode_token(&json!({"next": n}))
        ));
        format!("{}/{path}?{}", ctx.base(), params.join("&"))
    });
    let mut body = odata::collection(ctx.context(context), out, next_link, None);
    if let Some(count) = count {
        if ctx
            .header("ConsistencyLevel")
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
        {
            body["@odata.count"] = json!(count);
        } else {
            return Err(GraphError::bad_request(
                "Request_BadRequest",
                "$count is only supported with the header 'ConsistencyLevel: eventual'.",
            ));
        }
    }
    Ok(Reply::Json(200, body))
}

fn filter_of(ctx: &Ctx<'_>) -> Result<Option<Filter>, GraphError> {
    ctx.query
        .get("$filter")
        .map(odata::parse_filter)
        .transpose()
}

fn list_users(ctx: &Ctx<'_>) -> GraphResult {
    let filter = filter_of(ctx)?;
    let select = ctx.query.select();
    let state = read(&ctx.tenant.state);
    // Validate $select against the entity once, even when the page is empty.
    if let Some(first) = state.users.first() {
        odata::project(
            &user_json(ctx.tenant, first),
            select.as_deref(),
            "user",
            Some(USER_DEFAULT),
        )?;
    }
    page(
        ctx,
        &state.users,
        |u| {
            if u.life != Life::Active {
                return None;
            }
            let full = user_json(ctx.tenant, u);
            if filter.as_ref().is_some_and(|f| !odata::matches(f, &full)) {
                return None;
            }
            odata::project(&full, select.as_deref(), "user", Some(USER_DEFAULT)).ok()
        },
        "users",
        "users",
    )
}

fn get_user(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    match state.find_user(id) {
        Found::Active(i) => Ok(Reply::Json(
            200,
            with_context(
                ctx,
                "users/$entity",
                odata::project(
                    &user_json(ctx.tenant, &state.users[i as usize]),
                    ctx.query.select().as_deref(),
                    "user",
                    Some(USER_DEFAULT),
                )?,
            ),
        )),
        _ => Err(GraphError::directory_not_found(id)),
    }
}

fn with_context(ctx: &Ctx<'_>, fragment: &str, mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        let mut out = serde_json::Map::new();
        out.insert(
            "@odata.context".to_owned(),
            Value::String(ctx.context(fragment)),
        );
        out.extend(std::mem::take(map));
        return Value::Object(out);
    }
    value
}

fn delete_user(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let mut state = write(&ctx.tenant.state);
    match state.find_user(id) {
        Found::Active(i) => {
            state.soft_delete_user(i, ctx.sim.now());
            Ok(Reply::NoContent)
        }
        _ => Err(GraphError::directory_not_found(id)),
    }
}

fn list_groups(ctx: &Ctx<'_>) -> GraphResult {
    let filter = filter_of(ctx)?;
    let select = ctx.query.select();
    let state = read(&ctx.tenant.state);
    if let Some(first) = state.groups.first() {
        odata::project(
            &group_json(ctx.tenant, first),
            select.as_deref(),
            "group",
            None,
        )?;
    }
    page(
        ctx,
        &state.groups,
        |g| {
            if g.life != Life::Active {
                return None;
            }
            let full = group_json(ctx.tenant, g);
            if filter.as_ref().is_some_and(|f| !odata::matches(f, &full)) {
                return None;
            }
            odata::project(&full, select.as_deref(), "group", None).ok()
        },
        "groups",
        "groups",
    )
}

fn get_group(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    match state.find_group(id) {
        Found::Active(i) => Ok(Reply::Json(
            200,
            with_context(
                ctx,
                "groups/$entity",
                odata::project(
                    &group_json(ctx.tenant, &state.groups[i as usize]),
                    ctx.query.select().as_deref(),
                    "group",
                    None,
                )?,
            ),
        )),
        _ => Err(GraphError::directory_not_found(id)),
    }
}

fn delete_group(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let mut state = write(&ctx.tenant.state);
    match state.find_group(id) {
        Found::Active(i) => {
            state.delete_group(i, ctx.sim.now());
            Ok(Reply::NoContent)
        }
        _ => Err(GraphError::directory_not_found(id)),
    }
}

fn members(ctx: &Ctx<'_>, id: &str, owners: bool) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let Found::Active(g) = state.find_group(id) else {
        return Err(GraphError::directory_not_found(id));
    };
    let group = &state.groups[g as usize];
    let list: Vec<u32> = if owners {
        group.members.iter().copied().take(1).collect()
    } else {
        group.members.clone()
    };
    let users: Vec<&User> = list
        .iter()
        .filter_map(|&u| state.users.get(u as usize))
        .filter(|u| u.life == Life::Active)
        .collect();
    let select = ctx.query.select();
    page(
        ctx,
        &users,
        |u| {
            let mut value = odata::project(
                &user_json(ctx.tenant, u),
                select.as_deref(),
                "user",
                Some(USER_DEFAULT),
            )
            .ok()?;
            value["@odata.type"] = json!("#microsoft.graph.user");
            Some(value)
        },
        &format!("groups/{id}/{}", if owners { "owners" } else { "members" }),
        "directoryObjects",
    )
}

fn find_site(tenant: &Tenant, state: &TenantState, id: &str) -> Option<u32> {
    if id == "root" {
        return state.sites.iter().position(|s| s.is_root).map(|i| i as u32);
    }
    let lower = id.to_ascii_lowercase();
    state
        .sites
        .iter()
        .position(|s| {
            tenant.site_id(s).to_ascii_lowercase() == lower || s.collection_id.to_string() == lower
        })
        .map(|i| i as u32)
}

/// Resolves a site id for other modules (drives of a site): `None` if missing or deleted.
pub fn active_site(tenant: &Tenant, state: &TenantState, id: &str) -> Result<u32, GraphError> {
    match find_site(tenant, state, id) {
        Some(i) if state.sites[i as usize].life == Life::Active => Ok(i),
        _ => Err(GraphError::new(
            404,
            "itemNotFound",
            "Requested site could not be found",
        )),
    }
}

fn get_site(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let i = active_site(ctx.tenant, &state, id)?;
    let value = odata::project(
        &site_json(ctx.tenant, &state.sites[i as usize]),
        ctx.query.select().as_deref(),
        "site",
        None,
    )?;
    Ok(Reply::Json(200, with_context(ctx, "sites/$entity", value)))
}

fn group_site(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let Found::Active(g) = state.find_group(id) else {
        return Err(GraphError::directory_not_found(id));
    };
    let Some(site) = state.groups[g as usize].site else {
        return Err(GraphError::new(
            404,
            "itemNotFound",
            "Requested site could not be found",
        ));
    };
    Ok(Reply::Json(
        200,
        with_context(
            ctx,
            "sites/$entity",
            site_json(ctx.tenant, &state.sites[site as usize]),
        ),
    ))
}

fn list_sites(ctx: &Ctx<'_>, all: bool) -> GraphResult {
    // Without `search`, `GET /sites` answers an empty collection (§2.1).
    let search = ctx.query.get("search").map(str::to_owned);
    let filter = filter_of(ctx)?;
    if !all && search.is_none() && filter.is_none() {
        return Ok(Reply::Json(
            200,
            odata::collection(ctx.context("sites"), Vec::new(), None, None),
        ));
    }
    if all && ctx.claims.user.is_some() {
        return Err(GraphError::new(
            403,
            "accessDenied",
            "getAllSites is supported with application permissions only.",
        ));
    }
    let select = ctx.query.select();
    let state = read(&ctx.tenant.state);
    let term = search
        .filter(|s| s != "*" && !s.is_empty())
        .map(|s| s.trim_matches('"').to_lowercase());
    // Subsites are reached through their parent (`/sites/{id}/sites`), not listed here. Nor
    // are the sites of private and shared channels, which the simulator makes on first use:
    // Microsoft lists them, but a site appearing halfway through a test would change what
    // discovery finds; Skyvault backs them up with their team.
    let subsites: std::collections::HashSet<uuid::Uuid> = state
        .site_parents
        .keys()
        .chain(state.channel_sites.values())
        .map(|&i| state.sites[i as usize].web_id)
        .collect();
    page(
        ctx,
        &state.sites,
        |s| {
            if s.life != Life::Active || subsites.contains(&s.web_id) {
                return None;
            }
            let full = site_json(ctx.tenant, s);
            if term
                .as_ref()
                .is_some_and(|t| !s.display_name.to_lowercase().contains(t.as_str()))
            {
                return None;
            }
            if filter.as_ref().is_some_and(|f| !odata::matches(f, &full)) {
                return None;
            }
            odata::project(&full, select.as_deref(), "site", None).ok()
        },
        if all { "sites/getAllSites" } else { "sites" },
        "sites",
    )
}

/// `GET /sites/delta` (v1.0 site-delta): without `token`, the current state of every site,
/// deleted ones (soft-deleted, still restorable) included with the `deleted` facet; purged ones
/// are no longer mentioned. With the token of a deltaLink, the sites changed since, deleted or
/// purged ones with the `deleted` facet; `token=latest` gives only a deltaLink. Next and delta
/// links both carry `token=`; an unreadable one answers 410 with a fresh enumeration's URL.
fn sites_delta(ctx: &Ctx<'_>) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let fresh = || {
        GraphError::new(
            410,
            "resyncChangesApplyDifferences",
            "The delta token is no longer valid. Start a new enumeration.",
        )
        .with_header("Location", format!("{}/sites/delta", ctx.base()))
    };
    let token = ctx.query.get("token").map(str::to_owned);
    let (since, upto, cursor) = match token.as_deref() {
        None => (None, state.seq, 0usize),
        Some(t) if t.eq_ignore_ascii_case("latest") => {
            let link = sites_delta_link(ctx, &json!({"s": state.seq}));
            return Ok(Reply::Json(
                200,
                odata::collection(ctx.context("sites"), Vec::new(), None, Some(link)),
            ));
        }
        Some(t) => {
            let v = odata::decode_token(t).ok_or_else(fresh)?;
            match v["u"].as_u64() {
                // A nextLink: the same round, further on.
                Some(upto) => (v["s"].as_u64(), upto, v["c"].as_u64().unwrap_or(0) as usize),
                // A deltaLink: the changes since its round.
                None => (Some(v["s"].as_u64().ok_or_else(fresh)?), state.seq, 0),
            }
        }
    };
    let top = ctx.query.top(PAGE_MAX)?.unwrap_or(200);
    let mut out = Vec::new();
    let mut next = None;
    for (i, site) in state.sites.iter().enumerate().skip(cursor) {
        if site.version > upto
            || since.is_some_and(|s| site.version <= s)
            || state.site_parents.contains_key(&(i as u32))
        {
            continue;
        }
        let value = match (since, site.life) {
            (_, Life::Active) => site_json(ctx.tenant, site),
            (None, Life::Purged) => continue,
            (_, Life::SoftDeleted(_)) => {
                let mut value = site_json(ctx.tenant, site);
                value["deleted"] = json!({"state": "deleted"});
                value
            }
            (Some(_), Life::Purged) => json!({
                "id": ctx.tenant.site_id(site),
                "name": site.url_name,
                "deleted": {"state": "deleted"},
            }),
        };
        if out.len() == top {
            next = Some(i);
            break;
        }
        out.push(value);
    }
    let (next_link, delta_link) = match next {
        Some(c) => (
            Some(sites_delta_link(
                ctx,
                &json!({"s": since, "u": upto, "c": c}),
            )),
            None,
        ),
        None => (None, Some(sites_delta_link(ctx, &json!({"s": upto})))),
    };
    Ok(Reply::Json(
        200,
        odata::collection(ctx.context("sites"), out, next_link, delta_link),
    ))
}

fn sites_delta_link(ctx: &Ctx<'_>, token: &Value) -> String {
    format!(
        "{}/sites/delta?token={}",
        ctx.base(),
        odata::encode_token(token)
    )
}

// ---------------------------------------------------------------------------------------------
// Delta

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::User => "users",
            Kind::Group => "groups",
        }
    }
    fn odata_type(self) -> &'static str {
        match self {
            Kind::User => "#microsoft.graph.user",
            Kind::Group => "#microsoft.graph.group",
        }
    }
}

fn delta(ctx: &Ctx<'_>, kind: Kind) -> GraphResult {
    let now = ctx.sim.now();
    let state = read(&ctx.tenant.state);
    let gone = |reason: &str| {
        GraphError::new(410, "resyncRequired", reason)
            .with_header("Location", format!("{}/{}/delta", ctx.base(), kind.name()))
    };
    // Round state: since (None = initial), upto (snapshot), cursor, selection, ids, issued.
    let (since, upto, cursor, select, ids, issued) = if let Some(token) =
        ctx.query.get("$skiptoken")
    {
        let v = odata::decode_token(token).ok_or_else(|| gone("The skip token is invalid."))?;
        (
            v["s"].as_u64(),
            v["u"].as_u64().unwrap_or(0),
            v["c"].as_u64().unwrap_or(0) as usize,
            strings(&v["sel"]),
            strings(&v["ids"]),
            v["t"].as_i64().unwrap_or(0),
        )
    } else if let Some(token) = ctx.query.get("$deltatoken") {
        if token.eq_ignore_ascii_case("latest") {
            let link = delta_link(ctx, kind, state.seq, None, None, now.timestamp());
            return Ok(Reply::Json(
                200,
                odata::collection(ctx.context(kind.name()), Vec::new(), None, Some(link)),
            ));
        }
        let v = odata::decode_token(token).ok_or_else(|| gone("The delta token is invalid."))?;
        let issued = v["t"].as_i64().unwrap_or(0);
        let since = v["s"].as_u64().unwrap_or(0);
        if now.timestamp() - issued > DELTA_TOKEN_DAYS * 86_400
            || since < state.directory_resync_floor
        {
            return Err(gone(
                "The delta token has expired. Start a new full synchronization.",
            ));
        }
        (
            Some(since),
            state.seq,
            0,
            strings(&v["sel"]),
            strings(&v["ids"]),
            now.timestamp(),
        )
    } else {
        if ctx.query.get("$top").is_some()
            || ctx.query.get("$expand").is_some()
            || ctx.query.get("$orderby").is_some()
        {
            return Err(GraphError::bad_request(
                "Request_UnsupportedQuery",
                "Unsupported query option for delta: only $select and $filter on id are supported.",
            ));
        }
        let ids = match filter_of(ctx)? {
            None => None,
            Some(filter) => Some(id_filter(&filter)?),
        };
        (None, state.seq, 0, ctx.query.select(), ids, now.timestamp())
    };
    let count = match kind {
        Kind::User => state.users.len(),
        Kind::Group => state.groups.len(),
    };
    let mut out = Vec::new();
    let mut next = None;
    for i in cursor..count {
        let (id, life, version, full) = match kind {
            Kind::User => {
                let u = &state.users[i];
                (
                    u.id.to_string(),
                    u.life,
                    u.version,
                    if u.life == Life::Active {
                        Some(user_json(ctx.tenant, u))
                    } else {
                        None
                    },
                )
            }
            Kind::Group => {
                let g = &state.groups[i];
                (
                    g.id.to_string(),
                    g.life,
                    g.version,
                    if g.life == Life::Active {
                        Some(group_json(ctx.tenant, g))
                    } else {
                        None
                    },
                )
            }
        };
        if version > upto
            || ids
                .as_ref()
                .is_some_and(|ids| !ids.iter().any(|x| x.eq_ignore_ascii_case(&id)))
        {
            continue;
        }
        let item = match (since, life, full) {
            (None, Life::Active, Some(full)) => full,
            // `@removed` appears in the initial round too (§2.2): soft-deleted objects come as
            // removed with reason `changed`; purged ones are not mentioned.
            (None, Life::SoftDeleted(_), _) => removed(kind.odata_type(), &id, "changed"),
            (None, _, _) => continue,
            (Some(s), _, _) if version <= s => continue,
            (Some(_), Life::Active, Some(full)) => full,
            (Some(_), Life::SoftDeleted(_), _) => removed(kind.odata_type(), &id, "changed"),
            (Some(_), _, _) => removed(kind.odata_type(), &id, "deleted"),
        };
        if out.len() == DELTA_PAGE {
            next = Some(i);
            break;
        }
        let item = if item.get("@removed").is_some() {
            item
        } else {
            odata::project(
                &item,
                select.as_deref(),
                if kind == Kind::User { "user" } else { "group" },
                if kind == Kind::User {
                    Some(USER_DEFAULT)
                } else {
                    None
                },
            )?
        };
        out.push(item);
    }
    let (next_link, delta) = match next {
        Some(c) => {
            let token = odata::encode_token(
                &json!({"s": since, "u": upto, "c": c, "sel": select, "ids": ids, "t": issued}),
            );
            (
                Some(format!(
                    "{}/{}/delta?$skiptoken={token}",
                    ctx.base(),
                    kind.name()
                )),
                None,
            )
        }
        None => (
            None,
            Some(delta_link(
                ctx,
                kind,
                upto,
                select.as_deref(),
                ids.as_deref(),
                now.timestamp(),
            )),
        ),
    };
    Ok(Reply::Json(
        200,
        odata::collection(ctx.context(kind.name()), out, next_link, delta),
    ))
}

fn delta_link(
    ctx: &Ctx<'_>,
    kind: Kind,
    since: u64,
    select: Option<&[String]>,
    ids: Option<&[String]>,
    issued: i64,
) -> String {
    let token = odata::encode_token(&json!({"s": since, "sel": select, "ids": ids, "t": issued}));
    format!("{}/{}/delta?$deltatoken={token}", ctx.base(), kind.name())
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    })
}

/// Delta accepts only `id eq '…' or id eq '…'`, at most 50 ids (§2.2).
fn id_filter(filter: &Filter) -> Result<Vec<String>, GraphError> {
    let unsupported = || {
        GraphError::bad_request(
            "Request_UnsupportedQuery",
            "Unsupported query: delta supports only $filter=id eq '...' joined with 'or'.",
        )
    };
    let ids = match filter {
        Filter::Eq(p, Value::String(id)) if p == "id" => vec![id.clone()],
        Filter::Or(parts) => parts
            .iter()
            .map(|p| match p {
                Filter::Eq(name, Value::String(id)) if name == "id" => Ok(id.clone()),
                _ => Err(unsupported()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(unsupported()),
    };
    if ids.len() > 50 {
        return Err(GraphError::bad_request(
            "Request_UnsupportedQuery",
            "Too many ids in the filter: at most 50 are allowed.",
        ));
    }
    Ok(ids)
}

// ---------------------------------------------------------------------------------------------
// Deleted items (§2.3)

fn deleted_items(ctx: &Ctx<'_>, kind: Kind) -> GraphResult {
    let select = ctx.query.select();
    let state = read(&ctx.tenant.state);
    match kind {
        Kind::User => page(
            ctx,
            &state.users,
            |u| {
                matches!(u.life, Life::SoftDeleted(_))
                    .then(|| {
                        odata::project(&user_json(ctx.tenant, u), select.as_deref(), "user", None)
                            .ok()
                    })
                    .flatten()
            },
            "directory/deletedItems/microsoft.graph.user",
            "directory/deletedItems/microsoft.graph.user",
        ),
        Kind::Group => page(
            ctx,
            &state.groups,
            |g| {
                matches!(g.life, Life::SoftDeleted(_))
                    .then(|| {
                        odata::project(&group_json(ctx.tenant, g), select.as_deref(), "group", None)
                            .ok()
                    })
                    .flatten()
            },
            "directory/deletedItems/microsoft.graph.group",
            "directory/deletedItems/microsoft.graph.group",
        ),
    }
}

fn deleted_item(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    if let Found::SoftDeleted(i) = state.find_user(id) {
        let mut value = user_json(ctx.tenant, &state.users[i as usize]);
        value["@odata.type"] = json!("#microsoft.graph.user");
        return Ok(Reply::Json(
            200,
            with_context(ctx, "directory/deletedItems/$entity", value),
        ));
    }
    if let Found::SoftDeleted(i) = state.find_group(id) {
        let mut value = group_json(ctx.tenant, &state.groups[i as usize]);
        value["@odata.type"] = json!("#microsoft.graph.group");
        return Ok(Reply::Json(
            200,
            with_context(ctx, "directory/deletedItems/$entity", value),
        ));
    }
    Err(GraphError::directory_not_found(id))
}

fn restore(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let mut state = write(&ctx.tenant.state);
    if let Found::SoftDeleted(i) = state.find_user(id) {
        state.restore_user(i);
        let mut value = user_json(ctx.tenant, &state.users[i as usize]);
        value["@odata.type"] = json!("#microsoft.graph.user");
        return Ok(Reply::Json(
            200,
            with_context(ctx, "directoryObjects/$entity", value),
        ));
    }
    if let Found::SoftDeleted(i) = state.find_group(id) {
        state.restore_group(i);
        let mut value = group_json(ctx.tenant, &state.groups[i as usize]);
        value["@odata.type"] = json!("#microsoft.graph.group");
        return Ok(Reply::Json(
            200,
            with_context(ctx, "directoryObjects/$entity", value),
        ));
    }
    Err(GraphError::directory_not_found(id))
}

fn purge(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let mut state = write(&ctx.tenant.state);
    if let Found::SoftDeleted(i) = state.find_user(id) {
        state.purge_user(i);
        return Ok(Reply::NoContent);
    }
    if let Found::SoftDeleted(i) = state.find_group(id) {
        state.purge_group(i);
        return Ok(Reply::NoContent);
    }
    Err(GraphError::directory_not_found(id))
}
