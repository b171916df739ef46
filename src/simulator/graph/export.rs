//! `POST .../mailboxes/{id}/exportItems` (at most 20 ids; per item either the opaque stream or an
//! error: not found, a failure set through the control API, or the auxiliary archive's
//! `ErrorArchiveFolderMovedPermanently`) and `POST .../mailboxes/{id}/createImportSession`
//! (a pre-authenticated `importUrl` served by `crate::simulator::import`).
//! It renders JSON only; content comes from `mailbox` and `record`.

use chrono::{Duration, SecondsFormat};
use serde_json::{Value, json};

use super::{Ctx, GraphError, GraphResult, Reply};
use crate::simulator::import::{self, ImportSession};
use crate::simulator::mailbox::{self, MailboxKind, MailboxRef};
use crate::simulator::record;
use crate::simulator::state::read;

/// The documented ceiling of ids in one `exportItems` call.
pub const MAX_EXPORT_ITEMS: usize = 20;

fn item_error(id: &str, code: &str, message: &str) -> Value {
    json!({"itemId": id, "error": {"code": code, "message": message}})
}

pub fn export_items(ctx: &Ctx<'_>, mb: MailboxRef) -> GraphResult {
    let body: Value = serde_json::from_slice(ctx.body).map_err(|_| {
        GraphError::bad_request("RequestBodyRead", "The request body is not valid JSON.")
    })?;
    let ids: Vec<&str> = match body["itemIds"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    GraphError::bad_request("ErrorInvalidRequest", "itemIds must be strings.")
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(GraphError::bad_request(
                "ErrorInvalidRequest",
                "The parameter 'itemIds' is missing or empty.",
            ));
        }
    };
    if ids.len() > MAX_EXPORT_ITEMS {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            &format!(
                "The number of items ({}) exceeds the maximum of {MAX_EXPORT_ITEMS} items per request.",
                ids.len()
            ),
        ));
    }
    let state = read(&ctx.tenant.state);
    let tenant = ctx.tenant;
    let auxiliary = MailboxRef {
        user: mb.user,
        kind: MailboxKind::Auxiliary,
    };
    let values = ids
        .iter()
        .map(|id| {
            let found = mailbox::parse_item_id(tenant, mb.user, id)
                .and_then(|item| Some((item, mailbox::summary(tenant, &state, mb.user, item)?)));
            let Some((item, summary)) = found else {
                return item_error(
                    id,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            };
            let here = mailbox::folder_items(tenant, &state, mb, summary.folder).contains(&item);
            if !here {
                if mailbox::is_expanded(mb, summary.folder) {
                    let url = format!(
                        "{}/admin/exchange/mailboxes/{}/exportItems",
                        ctx.base(),
                        mailbox::mailbox_id(tenant, auxiliary)
                    );
                    return item_error(id, "ErrorArchiveFolderMovedPermanently", &url);
                }
                return item_error(
                    id,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            }
            if mailbox::export_fails(&state, mb.user, id) {
                return item_error(
                    id,
                    "ErrorInternalServerError",
                    "An internal server error occurred. The operation failed.",
                );
            }
            match mailbox::full_record(tenant, &state, mb.user, item) {
                Some(full) => json!({
                    "itemId": id,
                    "changeKey": summary.change_key,
                    "data": record::encode(&full),
                }),
                None => item_error(
                    id,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                ),
            }
        })
        .collect();
    Ok(Reply::Json(
        200,
        json!({
            "@odata.context": ctx.context("Collection(microsoft.graph.exportItemResponse)"),
            "value": Value::Array(values),
        }),
    ))
}

/// How long an `importUrl` stays valid.
pub fn import_session_lifetime() -> Duration {
    Duration::hours(1)
}

pub fn create_import_session(ctx: &Ctx<'_>, mb: MailboxRef) -> GraphResult {
    let expires = ctx.sim.now() + import_session_lifetime();
    let mailbox_id = mailbox::mailbox_id(ctx.tenant, mb);
    let token = import::open_session(
        ctx.sim,
        ImportSession {
            tenant: ctx.tenant.index,
            mailbox: mb,
            app_id: ctx.claims.app_id.clone(),
            expires,
        },
    );
    let version = if ctx.is_beta() { "gbeta" } else { "gv1.0" };
    Ok(Reply::Json(
        201,
        json!({
            "@odata.context": ctx.context("microsoft.graph.mailboxItemImportSession"),
            "importUrl": format!(
                "{}/{}/api/{version}/Mailboxes('{mailbox_id}')/importItem?authtoken={token}",
                ctx.sim.base_url,
                import::PATH_PREFIX
            ),
            "expirationDateTime": expires.to_rfc3339_opts(SecondsFormat::Millis, true),
        }),
    ))
}
