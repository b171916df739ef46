//! SharePoint site contents on Graph v1.0 besides drives (graph-protocol.md §2.1, §4.1):
//! subsites (`/sites/{id}/sites`), lists (`/sites/{id}/lists`, document libraries included with
//! template `documentLibrary`) and list items with their column values
//! (`/sites/{id}/lists/{list}/items?$expand=fields`). Generic lists and their items are
//! generated from the tenant's seed; a library's items are its drive's files. It must never
//! change a site, only describe it.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::odata;
use super::{Ctx, GraphError, GraphResult, Reply};
use crate::simulator::generate::{self, Stream};
use crate::simulator::state::{Life, TenantState, read};

/// Generic lists every site has, with how many items each holds.
const GENERIC_LISTS: &[(&str, &str, u32)] = &[
    ("Tasks", "genericList", 7),
    ("Announcements", "genericList", 4),
];
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 999;

fn ts(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn list_not_found() -> GraphError {
    GraphError::new(404, "itemNotFound", "The specified list was not found")
}

pub fn route(ctx: &Ctx<'_>, segments: &[&str]) -> Option<GraphResult> {
    if ctx.method != "GET" {
        return None;
    }
    let result = match segments {
        ["sites", site, "sites"] => subsites(ctx, site),
        ["sites", site, "lists"] => lists(ctx, site),
        ["sites", site, "lists", list] => one_list(ctx, site, list),
        ["sites", site, "lists", list, "items"] => items(ctx, site, list),
        ["sites", site, "lists", list, "items", item] => one_item(ctx, site, list, item),
        _ => return None,
    };
    Some(result)
}

/// One list of a site: a document library (one per drive) or a generated generic list.
#[derive(Clone)]
struct ListView {
    id: String,
    name: String,
    display_name: String,
    template: &'static str,
    created: DateTime<Utc>,
    kind: ListKind,
}

#[derive(Clone, Copy)]
enum ListKind {
    Library { drive: u32 },
    Generic { index: u32, items: u32 },
}

fn site_lists(ctx: &Ctx<'_>, state: &TenantState, site: u32) -> Vec<ListView> {
    let s = &state.sites[site as usize];
    let seed = ctx.tenant.spec.seed;
    let mut out: Vec<ListView> = s
        .drives
        .iter()
        .map(|&drive| {
            let name = &state.drives[drive as usize].name;
            ListView {
                id: Stream::new(&[seed, 500, drive as u64]).uuid().to_string(),
                name: if name == "Documents" {
                    "Shared Documents".to_owned()
                } else {
                    name.replace(' ', "")
                },
                display_name: name.clone(),
                template: "documentLibrary",
                created: s.created,
                kind: ListKind::Library { drive },
            }
        })
        .collect();
    for (index, (name, template, items)) in GENERIC_LISTS.iter().enumerate() {
        out.push(ListView {
            id: Stream::new(&[seed, 501, site as u64, index as u64])
                .uuid()
                .to_string(),
            name: (*name).to_owned(),
            display_name: (*name).to_owned(),
            template,
            created: s.created + Duration::hours(index as i64 + 1),
            kind: ListKind::Generic {
                index: index as u32,
                items: *items,
            },
        });
    }
    out
}

fn list_json(ctx: &Ctx<'_>, state: &TenantState, site: u32, list: &ListView) -> Value {
    let s = &state.sites[site as usize];
    let base = ctx.tenant.site_url(s);
    let web_url = match list.kind {
        ListKind::Library { .. } => format!("{base}/{}", list.name),
        ListKind::Generic { .. } => format!("{base}/Lists/{}", list.name),
    };
    json!({
        "@odata.etag": format!("\"{},1\"", list.id),
        "id": list.id,
        "createdDateTime": ts(list.created),
        "lastModifiedDateTime": ts(list.created + Duration::days(2)),
        "name": list.name,
        "displayName": list.display_name,
        "description": "",
        "webUrl": web_url,
        "createdBy": {"user": {"displayName": "System Account"}},
        "parentReference": {"siteId": ctx.tenant.site_id(s)},
        "list": {"contentTypesEnabled": false, "hidden": false, "template": list.template},
    })
}

fn active_site(ctx: &Ctx<'_>, state: &TenantState, id: &str) -> Result<u32, GraphError> {
    super::directory::active_site(ctx.tenant, state, id)
}

fn find_list(
    ctx: &Ctx<'_>,
    state: &TenantState,
    site: u32,
    id: &str,
) -> Result<ListView, GraphError> {
    site_lists(ctx, state, site)
        .into_iter()
        .find(|l| l.id.eq_ignore_ascii_case(id) || l.display_name.eq_ignore_ascii_case(id))
        .ok_or_else(list_not_found)
}

/// A page of `values` by `$top` and `$skiptoken`; the next link repeats the query.
fn paged(ctx: &Ctx<'_>, values: Vec<Value>, context: &str) -> GraphResult {
    let top = ctx.query.top(PAGE_MAX)?.unwrap_or(PAGE_DEFAULT);
    paged_with(ctx, values, context, top)
}

/// The request's URL with the same query and a `$skiptoken` for position `next`.
pub(super) fn next_page_link(ctx: &Ctx<'_>, next: usize) -> String {
    let mut params: Vec<String> = ctx
        .query
        .pairs
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
        .map(|(k, v)| format!("{}={}", odata::escape(k), odata::escape(v)))
        .collect();
    params.push(format!(
        "$skiptoken={}",
        odata::encode_token(&json!({"i": next}))
    ));
    format!(
        "{}{}?{}",
        ctx.sim.base_url,
        ctx.req.path(),
        params.join("&")
    )
}

/// A page of `top` of `values` from `$skiptoken` on; the next link repeats the query.
pub(super) fn paged_with(
    ctx: &Ctx<'_>,
    values: Vec<Value>,
    context: &str,
    top: usize,
) -> GraphResult {
    let start = match ctx.query.get("$skiptoken") {
        Some(token) => odata::decode_token(token)
            .and_then(|v| v["i"].as_u64())
            .ok_or_else(|| GraphError::bad_request("invalidRequest", "Invalid skip token."))?
            as usize,
        None => 0,
    };
    let next = (start + top < values.len()).then(|| next_page_link(ctx, start + top));
    let page = values.into_iter().skip(start).take(top).collect();
    Ok(Reply::Json(
        200,
        odata::collection(ctx.context(context), page, next, None),
    ))
}

fn subsites(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let site = active_site(ctx, &state, id)?;
    let select = ctx.query.select();
    let values = state
        .site_parents
        .iter()
        .filter(|(child, parent)| {
            **parent == site && state.sites[**child as usize].life == Life::Active
        })
        .map(|(child, _)| *child)
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .map(|child| {
            odata::project(
                &super::directory::site_json(ctx.tenant, &state.sites[child as usize]),
                select.as_deref(),
                "site",
                None,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    paged(ctx, values, "sites")
}

fn lists(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let site = active_site(ctx, &state, id)?;
    let select = ctx.query.select();
    let values = site_lists(ctx, &state, site)
        .iter()
        .map(|l| {
            odata::project(
                &list_json(ctx, &state, site, l),
                select.as_deref(),
                "list",
                None,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    paged(ctx, values, "lists")
}

fn one_list(ctx: &Ctx<'_>, site: &str, list: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let site = active_site(ctx, &state, site)?;
    let list = find_list(ctx, &state, site, list)?;
    Ok(Reply::Json(
        200,
        odata::project(
            &list_json(ctx, &state, site, &list),
            ctx.query.select().as_deref(),
            "list",
            None,
        )?,
    ))
}

/// The items of a list, each with `fields` when `$expand=fields` asks for them.
fn list_items(ctx: &Ctx<'_>, state: &TenantState, site: u32, list: &ListView) -> Vec<Value> {
    let expand = ctx
        .query
        .get("$expand")
        .is_some_and(|e| e.split(',').any(|p| p.trim().starts_with("fields")));
    let web = ctx.tenant.site_url(&state.sites[site as usize]);
    let people: Vec<&str> = state
        .users
        .iter()
        .take(8)
        .map(|u| u.display_name.as_str())
        .collect();
    let mut out = Vec::new();
    match list.kind {
        ListKind::Library { drive } => {
            for (n, (id, name, modified)) in super::drive::library_files(ctx.tenant, state, drive)
                .into_iter()
                .enumerate()
            {
                let mut item = json!({
                    "id": (n + 1).to_string(),
                    "eTag": format!("\"{id},1\""),
                    "createdDateTime": ts(modified),
                    "lastModifiedDateTime": ts(modified),
                    "webUrl": format!("{web}/{}/{}", list.name, odata::escape(&name)),
                    "contentType": {"id": "0x0101", "name": "Document"},
                });
                if expand {
                    item["fields"] = json!({"FileLeafRef": name, "id": (n + 1).to_string()});
                }
                out.push(item);
            }
        }
        ListKind::Generic { index, items } => {
            for n in 1..=items {
                let mut rng = Stream::new(&[
                    ctx.tenant.spec.seed,
                    502,
                    site as u64,
                    index as u64,
                    n as u64,
                ]);
                let created = list.created + Duration::hours(n as i64 * 5);
                let modified = created + Duration::minutes(rng.below(3_000) as i64);
                let author = people
                    .get(rng.below(people.len().max(1) as u64) as usize)
                    .copied()
                    .unwrap_or("System Account");
                let title = generate::words(&mut rng, 4);
                let fields = if index == 0 {
                    json!({
                        "Title": title,
                        "Status": *rng.pick(&["Not Started", "In Progress", "Completed"]),
                        "Priority": *rng.pick(&["(1) High", "(2) Normal", "(3) Low"]),
                        "PercentComplete": rng.below(11) as f64 / 10.0,
                        "DueDate": ts(modified + Duration::days(14)),
                        "AssignedTo": author,
                    })
                } else {
                    json!({
                        "Title": title,
                        "Body": format!("<div>{}</div>", generate::html_escape(&generate::words(&mut rng, 20))),
                        "Expires": ts(modified + Duration::days(30)),
                    })
                };
                let mut item = json!({
                    "@odata.etag": format!("\"{},{}\"", list.id, n),
                    "id": n.to_string(),
                    "eTag": format!("\"{},{}\"", list.id, n),
                    "createdDateTime": ts(created),
                    "lastModifiedDateTime": ts(modified),
                    "webUrl": format!("{web}/Lists/{}/{n}_.000", list.name),
                    "createdBy": {"user": {"displayName": author}},
                    "lastModifiedBy": {"user": {"displayName": author}},
                    "contentType": {"id": "0x0100", "name": "Item"},
                    "parentReference": {"siteId": ctx.tenant.site_id(&state.sites[site as usize])},
                });
                if expand {
                    let mut fields = fields;
                    fields["id"] = json!(n.to_string());
                    fields["Modified"] = json!(ts(modified));
                    fields["Created"] = json!(ts(created));
                    item["fields"] = fields;
                }
                out.push(item);
            }
        }
    }
    out
}

fn items(ctx: &Ctx<'_>, site: &str, list: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let site = active_site(ctx, &state, site)?;
    let list = find_list(ctx, &state, site, list)?;
    let values = list_items(ctx, &state, site, &list);
    paged(ctx, values, "listItems")
}

fn one_item(ctx: &Ctx<'_>, site: &str, list: &str, item: &str) -> GraphResult {
    let state = read(&ctx.tenant.state);
    let site = active_site(ctx, &state, site)?;
    let list = find_list(ctx, &state, site, list)?;
    list_items(ctx, &state, site, &list)
        .into_iter()
        .find(|v| v["id"] == item)
        .map(|v| Reply::Json(200, v))
        .ok_or_else(|| {
            GraphError::new(404, "itemNotFound", "The specified list item was not found")
        })
}
