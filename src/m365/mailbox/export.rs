//! Full-fidelity export (`mailbox: exportItems`, mailbox-exportitems.md): up to 20 items per
//! request, each answered with its opaque base64 stream or its own error. It owns batching,
//! decoding, and re-exporting items the service says moved to an auxiliary archive
//! (`ErrorArchiveFolderMovedPermanently`, whose message is the URL to ask instead). It must
//! never parse the stream (Microsoft: "isn't intended for parsing") nor send an item's export
//! anywhere but the Graph origin.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde::Deserialize;

use crate::m365::client::TenantClient;
use crate::m365::error::GraphError;
use crate::m365::http::GraphRequest;
use crate::m365::paging::Page;

use super::{IMMUTABLE_ID, MailboxRef};

/// The most item ids one `exportItems` request may carry.
pub const EXPORT_BATCH: usize = 20;

/// The service's answer for an item that moved to an auxiliary archive.
const MOVED_TO_AUXILIARY_ARCHIVE: &str = "ErrorArchiveFolderMovedPermanently";
/// Auxiliary archives named in one export before giving up on an item.
const MAX_ARCHIVE_HOPS: usize = 3;

/// One requested item: its export or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedItem {
    pub item_id: String,
    pub result: Result<ExportedData, ItemError>,
}

/// An item's export, base64-decoded. Opaque (FastTransfer stream): store it, import it back.
#[derive(Clone, PartialEq, Eq)]
pub struct ExportedData {
    /// The version exported.
    pub change_key: Option<String>,
    pub data: Bytes,
}

impl std::fmt::Debug for ExportedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedData")
            .field("change_key", &self.change_key)
            .field("data", &format_args!("{} bytes", self.data.len()))
            .finish()
    }
}

/// The error the service gave for one item (`mailTipsError`), e.g. `ErrorItemNotFound`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ItemError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Code for an item the service did not answer for at all.
pub(crate) const ITEM_NOT_RETURNED: &str = "ItemNotReturned";

/// `exportItemResponse`. The archive-redirect page spells the error `Error`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportItemResponse {
    item_id: Option<String>,
    change_key: Option<String>,
    data: Option<String>,
    #[serde(alias = "Error")]
    error: Option<ItemError>,
}

/// Base64 as Graph writes it, padded or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl ExportItemResponse {
    fn into_result(self) -> Result<ExportedData, ItemError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let Some(data) = self.data else {
            return Err(ItemError {
                code: ITEM_NOT_RETURNED.into(),
                message: "the export answer has neither data nor error".into(),
            });
        };
        let data = BASE64.decode(data.trim()).map_err(|e| ItemError {
            code: "InvalidExportData".into(),
            message: format!("the export data is not base64: {e}"),
        })?;
        Ok(ExportedData {
            change_key: self.change_key,
            data: Bytes::from(data),
        })
    }
}

impl TenantClient {
    /// Exports items of one mailbox, in requests of at most [`EXPORT_BATCH`] ids (more ids are
    /// sent as several requests, one after another). Answers one [`ExportedItem`] per requested
    /// id, in the order asked; an id the service did not answer for gets an `ItemNotReturned`
    /// error. Items in an auxiliary archive are fetched from there.
    pub async fn export_mailbox_items(
        &self,
        mailbox: &MailboxRef,
        item_ids: &[String],
    ) -> Result<Vec<ExportedItem>, GraphError> {
        let first = self.mailbox_api_request(mailbox, &["exportItems"], IMMUTABLE_ID)?;
        let mut answers: HashMap<String, Result<ExportedData, ItemError>> = HashMap::new();
        for batch in item_ids.chunks(EXPORT_BATCH) {
            let mut pending: Vec<(GraphRequest, Vec<String>)> =
                vec![(first.clone(), batch.to_vec())];
            for hop in 0..=MAX_ARCHIVE_HOPS {
                let mut moved: HashMap<String, Vec<String>> = HashMap::new();
                for (request, ids) in pending.drain(..) {
                    for (id, result) in self.export_batch(&request, &ids).await? {
                        match result {
                            Err(e)
                                if e.code == MOVED_TO_AUXILIARY_ARCHIVE
                                    && hop < MAX_ARCHIVE_HOPS =>
                            {
                                moved
                                    .entry(e.message.trim().to_string())
                                    .or_default()
                                    .push(id);
                            }
                            other => {
                                answers.entry(id).or_insert(other);
                            }
                        }
                    }
                }
                for (url, ids) in moved {
                    match self.executor().graph_link(&url) {
                        Ok(url) if url.path().ends_with("/exportItems") => {
                            pending.push((first.with_url(url), ids));
                        }
                        // A URL off the Graph origin would take the token along: keep the error.
                        _ => {
                            for id in ids {
                                answers.entry(id).or_insert_with(|| {
                                    Err(ItemError {
                                        code: MOVED_TO_AUXILIARY_ARCHIVE.into(),
                                        message: url.clone(),
                                    })
                                });
                            }
                        }
                    }
                }
                if pending.is_empty() {
                    break;
                }
            }
        }
        Ok(item_ids
            .iter()
            .map(|id| ExportedItem {
                item_id: id.clone(),
                result: answers.get(id).cloned().unwrap_or_else(|| {
                    Err(ItemError {
                        code: ITEM_NOT_RETURNED.into(),
                        message: "the export answer did not mention this item".into(),
                    })
                }),
            })
            .collect())
    }

    /// One `exportItems` request for at most [`EXPORT_BATCH`] ids.
    async fn export_batch(
        &self,
        request: &GraphRequest,
        ids: &[String],
    ) -> Result<Vec<(String, Result<ExportedData, ItemError>)>, GraphError> {
        let body = serde_json::to_vec(&serde_json::json!({ "itemIds": ids })).map_err(|e| {
            GraphError::Decode {
                url: request.loggable_url(),
                message: e.to_string(),
            }
        })?;
        let request = request.clone().post_json(Bytes::from(body));
        let page: Page<ExportItemResponse> =
            self.executor().get_json(self.tenant_id(), &request).await?;
        Ok(page
            .value
            .into_iter()
            .filter_map(|answer| {
                let id = answer.item_id.clone()?;
                Some((id, answer.into_result()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_decoded_and_errors_kept() {
        let ok: ExportItemResponse = serde_json::from_value(serde_json::json!({
            "itemId": "a", "changeKey": "ck",
            "data": "VGhpcyBpcyBhIHRlc3QgZGF0YSB0aGF0IHdpbGwgYmUgY29udmVydGVkIHRvIGEgQmFzZTY0IHN0cmVhbQ=="
        }))
        .unwrap();
        let data = ok.into_result().unwrap();
        assert_eq!(
            &data.data[..],
            b"This is a test data that will be converted to a Base64 stream"
        );
        assert!(!format!("{data:?}").contains("This is"));
        let moved: ExportItemResponse = serde_json::from_value(serde_json::json!({
            "itemId": "b",
            "Error": {"message": "https://graph.microsoft.com/beta/admin/exchange/mailboxes/MBX:x@y/exportItems",
                      "code": "ErrorArchiveFolderMovedPermanently"}
        }))
        .unwrap();
        assert_eq!(
            moved.into_result().unwrap_err().code,
            MOVED_TO_AUXILIARY_ARCHIVE
        );
        let unpadded: ExportItemResponse =
            serde_json::from_value(serde_json::json!({"itemId": "c", "data": "AQID"})).unwrap();
        assert_eq!(&unpadded.into_result().unwrap().data[..], &[1, 2, 3]);
    }
}
