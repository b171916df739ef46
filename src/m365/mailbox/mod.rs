//! Exchange Online mailboxes through Microsoft's mailbox import/export API
//! (`/admin/exchange/mailboxes/{id}`, GA in v1.0; archive mailboxes in beta only): which
//! mailboxes a user has, their folders and items as delta feeds, full-fidelity export of items
//! (`export`) and import back (`import`). Every call counts against the owning user's (or
//! group's) Outlook limits, like the rest of the mail calls.
//!
//! Auxiliary archives (auto-expanding archives) are followed transparently: a `308 Permanent
//! Redirect` to another mailbox on the Graph origin is followed with the same request, and an
//! exported item answered with `ErrorArchiveFolderMovedPermanently` is exported again from the
//! URL the service named (handle-archive-mailbox-redirects.md). The caller keeps addressing the
//! main archive's [`MailboxRef`]; the delta links it stores already point wherever the service
//! redirected. It must never follow a redirect off the Graph origin: the bearer token goes with it.

mod export;
mod folders_write;
mod import;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::m365::client::TenantClient;
use crate::m365::delta::{DeltaItem, DeltaStart, DeltaStream, delta_pages};
use crate::m365::error::GraphError;
use crate::m365::http::GraphRequest;

pub use export::{EXPORT_BATCH, ExportedData, ExportedItem, ItemError};
pub use import::{ImportSession, ImportedItem, import_target_mailbox};

/// Kept on every call, as the rest of the mail client does, so ids stay stable when items move.
/// The mailbox API's pages do not mention the header; `Prefer` is advisory, so a service that
/// ignores it answers as without it.
pub(crate) const IMMUTABLE_ID: &str = "IdType=\"ImmutableId\"";

/// Which Graph version serves a mailbox. Archive mailboxes are reachable only in beta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailboxApi {
    V1,
    Beta,
}

/// A mailbox of the import/export API, and whom it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxRef {
    /// The opaque mailbox id (`MBX:e0643f21@a7809c93`).
    pub id: String,
    /// The owning user's or group's object id: Outlook throttles per app and mailbox owner, so
    /// a primary and its archive share one budget.
    pub owner: String,
    pub api: MailboxApi,
}

/// A user's mailboxes (`exchangeSettings`). `None` where the user has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeMailboxes {
    pub primary: Option<String>,
    /// The In-Place Archive, from beta (`inPlaceArchiveMailboxId`).
    pub archive: Option<String>,
}

impl ExchangeMailboxes {
    /// The primary mailbox, addressed through v1.0.
    pub fn primary_ref(&self, owner: &str) -> Option<MailboxRef> {
        self.primary.as_ref().map(|id| MailboxRef {
            id: id.clone(),
            owner: owner.to_string(),
            api: MailboxApi::V1,
        })
    }

    /// The archive mailbox, addressed through beta (the only version that serves it).
    pub fn archive_ref(&self, owner: &str) -> Option<MailboxRef> {
        self.archive.as_ref().map(|id| MailboxRef {
            id: id.clone(),
            owner: owner.to_string(),
            api: MailboxApi::Beta,
        })
    }
}

/// A folder of a mailbox (`mailboxFolder`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxFolder {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    pub parent_folder_id: Option<String>,
    pub child_folder_count: Option<i64>,
    pub total_item_count: Option<i64>,
    /// The folder class: `IPF.Note`, `IPF.Appointment`, `IPF.Contact`, ...
    #[serde(rename = "type")]
    pub folder_type: Option<String>,
    /// `inbox`, `sentitems`, `archive`, ... for folders Outlook made; `None` for the user's own.
    pub well_known_name: Option<String>,
}

/// An item of a mailbox folder (`mailboxItem`): a message, event, contact, task or note.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxItem {
    pub id: String,
    /// The item's version; a changed key means the item changed.
    pub change_key: Option<String>,
    #[serde(rename = "createdDateTime")]
    pub created: Option<DateTime<Utc>>,
    #[serde(rename = "lastModifiedDateTime")]
    pub last_modified: Option<DateTime<Utc>>,
    /// Bytes.
    pub size: Option<u64>,
    /// The message class: `IPM.Note`, `IPM.Appointment`, `IPM.Contact`, `IPM.Task`, ...
    #[serde(rename = "type")]
    pub item_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub categories: Vec<String>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

impl DeltaItem for MailboxFolder {
    fn delta_id(&self) -> &str {
        &self.id
    }
}

impl DeltaItem for MailboxItem {
    fn delta_id(&self) -> &str {
        &self.id
    }
}

/// `exchangeSettings` as v1.0 and beta answer it. Beta's generated page also shows it wrapped in
/// a `value` collection; both shapes are read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExchangeSettings {
    primary_mailbox_id: Option<String>,
    in_place_archive_mailbox_id: Option<String>,
    #[serde(default)]
    value: Vec<ExchangeSettings>,
}

impl ExchangeSettings {
    fn into_single(mut self) -> ExchangeSettings {
        if self.primary_mailbox_id.is_none()
            && self.in_place_archive_mailbox_id.is_none()
            && !self.value.is_empty()
        {
            return self.value.swap_remove(0);
        }
        self
    }
}

impl TenantClient {
    /// A GET of `admin/exchange/mailboxes/{id}/{segments...}` in the mailbox's Graph version,
    /// counted against its owner's mailbox budget, following archive redirects, with `prefer`
    /// (which should keep [`IMMUTABLE_ID`]).
    pub(crate) fn mailbox_api_request(
        &self,
        mailbox: &MailboxRef,
        segments: &[&str],
        prefer: &str,
    ) -> Result<GraphRequest, GraphError> {
        let mut path = vec!["admin", "exchange", "mailboxes", mailbox.id.as_str()];
        path.extend_from_slice(segments);
        let url = match mailbox.api {
            MailboxApi::V1 => self.url(&path, &[])?,
            MailboxApi::Beta => self.beta_url(&path, &[])?,
        };
        Ok(GraphRequest::get(url, self.mailbox(&mailbox.owner))
            .header("prefer", prefer)
            .follow_permanent_redirects())
    }

    /// The user's mailboxes: the primary from v1.0, the In-Place Archive from beta (v1.0's
    /// `exchangeSettings` has no archive). A user without a mailbox Graph can reach (404, e.g.
    /// `MailboxNotEnabledForRESTAPI`) has neither.
    pub async fn exchange_mailboxes(&self, user_id: &str) -> Result<ExchangeMailboxes, GraphError> {
        let segments = ["users", user_id, "settings", "exchange"];
        let resource = || self.mailbox(user_id);
        let v1 = GraphRequest::get(self.url(&segments, &[])?, resource());
        let primary = match self.exchange_settings(&v1).await? {
            Some(settings) => settings.primary_mailbox_id,
            None => {
                return Ok(ExchangeMailboxes {
                    primary: None,
                    archive: None,
                });
            }
        };
        let beta = GraphRequest::get(self.beta_url(&segments, &[])?, resource());
        let archive = self
            .exchange_settings(&beta)
            .await?
            .and_then(|s| s.in_place_archive_mailbox_id)
            .filter(|id| !id.is_empty());
        Ok(ExchangeMailboxes {
            primary: primary.filter(|id| !id.is_empty()),
            archive,
        })
    }

    async fn exchange_settings(
        &self,
        request: &GraphRequest,
    ) -> Result<Option<ExchangeSettings>, GraphError> {
        match self
            .executor()
            .get_json::<ExchangeSettings>(self.tenant_id(), request)
            .await
        {
            Ok(settings) => Ok(Some(settings.into_single())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every folder of the mailbox, the whole hierarchy, as a delta feed
    /// (`folders/delta`, mailboxfolder-delta.md).
    pub fn mailbox_folders_delta(
        &self,
        mailbox: &MailboxRef,
        start: DeltaStart,
    ) -> DeltaStream<MailboxFolder> {
        match self.mailbox_api_request(mailbox, &["folders", "delta"], IMMUTABLE_ID) {
            Ok(initial) => delta_pages(self.executor().clone(), self.tenant_id(), initial, start),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    /// The items of one folder as a delta feed (`folders/{id}/items/delta`,
    /// mailboxitem-delta.md), at most `page_size` per page (`Prefer: odata.maxpagesize`).
    pub fn mailbox_items_delta(
        &self,
        mailbox: &MailboxRef,
        folder_id: &str,
        start: DeltaStart,
        page_size: u32,
    ) -> DeltaStream<MailboxItem> {
        let prefer = format!("{IMMUTABLE_ID}, odata.maxpagesize={}", page_size.max(1));
        let initial =
            self.mailbox_api_request(mailbox, &["folders", folder_id, "items", "delta"], &prefer);
        match initial {
            Ok(initial) => delta_pages(self.executor().clone(), self.tenant_id(), initial, start),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_read_as_the_docs_show_them() {
        let item: MailboxItem = serde_json::from_value(serde_json::json!({
            "@odata.type": "#microsoft.graph.mailboxItem",
            "@odata.etag": "W/\"CQAAABYAAACQ2fKdhq8oSKEDSVrdi3lRAAFR+6ZT\"",
            "createdDateTime": "2021-10-19T06:30:30Z",
            "lastModifiedDateTime": "2021-10-19T07:17:06Z",
            "changeKey": "CQAAABYAAACQ2fKdhq8oSKEDSVrdi3lRAAFR+6ZT",
            "categories": null,
            "type": "IPM.Note",
            "size": 75329,
            "id": "AAMkAGUwNjQ4ZyTAACQ2fKdhq8oSKEDSVrdi3lRAAFSX03WAAA="
        }))
        .unwrap();
        assert_eq!(item.item_type.as_deref(), Some("IPM.Note"));
        assert_eq!(item.size, Some(75329));
        assert!(item.categories.is_empty());
        assert_eq!(
            item.last_modified.unwrap().to_rfc3339(),
            "2021-10-19T07:17:06+00:00"
        );
    }

    #[test]
    fn exchange_settings_read_in_both_shapes() {
        let plain: ExchangeSettings = serde_json::from_value(serde_json::json!({
            "primaryMailboxId": "MBX:e0643f21@a7809c93",
            "inPlaceArchiveMailboxId": "MBX:4eba5149@a7809c93"
        }))
        .unwrap();
        let plain = plain.into_single();
        assert_eq!(
            plain.in_place_archive_mailbox_id.unwrap(),
            "MBX:4eba5149@a7809c93"
        );
        let wrapped: ExchangeSettings = serde_json::from_value(serde_json::json!({
            "value": [{"primaryMailboxId": "MBX:a@b", "id": "9bdc8e3d"}]
        }))
        .unwrap();
        assert_eq!(wrapped.into_single().primary_mailbox_id.unwrap(), "MBX:a@b");
    }
}
