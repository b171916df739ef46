//! Creating messages for a restore without the import permission (graph-protocol.md §3.4): a
//! JSON `POST /users/{id}/mailFolders/{folder}/messages` whose `singleValueExtendedProperties`
//! set `PR_MESSAGE_FLAGS` (`Integer 0x0E07`) without the unsent bit, so the message is created
//! as received mail, not a draft (the flag is read-only after the first save: it must travel
//! with the create). Then file attachments: one `POST .../attachments` each under 3 MB, and from
//! 3 MB to 150 MB an attachment upload session (`attachment-createuploadsession`,
//! `outlook-large-attachments`): the session names the file and its size, the bytes go in order
//! to its pre-authenticated `uploadUrl` in ranges under 4 MB, the last answered `201` with the
//! attachment's URL in `Location`. It never PATCHes the flags afterwards: that silently does
//! nothing. It never sends the bearer token to an upload URL, nor logs that URL's query.

use bytes::Bytes;
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use crate::m365::client::TenantClient;
use crate::m365::error::GraphError;
use crate::m365::http::{GraphRequest, without_query};

/// A file attachment of a message to create.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub content_id: Option<String>,
    pub is_inline: bool,
}

/// Largest attachment one `POST /attachments` may carry (outlook-large-attachments: use an
/// upload session from 3 MB).
pub const MAX_SIMPLE_ATTACHMENT: usize = 3 * 1024 * 1024;

/// Largest attachment Outlook takes at all (through an upload session).
pub const MAX_ATTACHMENT: usize = 150 * 1024 * 1024;

/// Bytes per `PUT` of an attachment upload: Microsoft asks for ranges under 4 MB.
pub const ATTACHMENT_RANGE: usize = 3 * 1024 * 1024;

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
}

/// An open attachment upload session. Its URL carries its credential: never log it.
#[derive(Clone)]
pub struct AttachmentUpload {
    upload_url: Url,
    /// The mailbox's owner: ranges count against the mailbox's limits.
    user_id: String,
}

impl std::fmt::Debug for AttachmentUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentUpload")
            .field("upload_url", &without_query(&self.upload_url))
            .finish()
    }
}

/// How a range was taken.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// More is expected, from this byte on.
    Continue { next: u64 },
    /// Every byte is there: the attachment exists, with this id when `Location` named it.
    Attached { attachment_id: Option<String> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    upload_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RangeStatus {
    #[serde(default)]
    next_expected_ranges: Vec<String>,
}

/// The start of the next range: Outlook answers a single start (`"2097152"`), OneDrive a
/// range (`"2097152-"`); both read the same.
fn next_start(ranges: &[String]) -> Option<u64> {
    ranges
        .first()
        .and_then(|r| r.split('-').next())
        .and_then(|start| start.trim().parse().ok())
}

/// `…/Attachments('AAMk…')` → `AAMk…`.
fn attachment_id_of(location: &str) -> Option<String> {
    let rest = location.rsplit_once("Attachments('")?.1;
    let id = rest.split_once("')")?.0;
    (!id.is_empty()).then(|| id.to_string())
}

impl TenantClient {
    /// Creates `message` (a Graph message resource as JSON, its extended properties included)
    /// in `folder_id`; answers the new message's id.
    pub async fn create_message_json(
        &self,
        user_id: &str,
        folder_id: &str,
        message: &serde_json::Value,
    ) -> Result<String, GraphError> {
        let request = self
            .request(
                &["users", user_id, "mailFolders", folder_id, "messages"],
                &[],
                self.mailbox(user_id),
            )?
            .header("prefer", "IdType=\"ImmutableId\"")
            .post_json(Bytes::from(message.to_string()))
            .creates();
        let created: Created = self.executor().get_json(self.tenant_id(), &request).await?;
        Ok(created.id)
    }

    /// Adds a file attachment (under [`MAX_SIMPLE_ATTACHMENT`]) to a message.
    pub async fn add_file_attachment(
        &self,
        user_id: &str,
        message_id: &str,
        attachment: &NewAttachment,
    ) -> Result<(), GraphError> {
        use base64::Engine;
        let mut body = serde_json::json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": attachment.name,
            "contentType": attachment.content_type,
            "contentBytes": base64::engine::general_purpose::STANDARD.encode(&attachment.bytes),
            "isInline": attachment.is_inline,
        });
        if let Some(id) = &attachment.content_id {
            body["contentId"] = serde_json::json!(id);
        }
        let request = self
            .request(
                &["users", user_id, "messages", message_id, "attachments"],
                &[],
                self.mailbox(user_id),
            )?
            .header("prefer", "IdType=\"ImmutableId\"")
            .post_json(Bytes::from(body.to_string()))
            .creates();
        let _: serde_json::Value = self.executor().get_json(self.tenant_id(), &request).await?;
        Ok(())
    }

    /// Opens an upload session for a file attachment of 3 MB to 150 MB on a message.
    pub async fn create_attachment_upload(
        &self,
        user_id: &str,
        message_id: &str,
        attachment: &NewAttachment,
    ) -> Result<AttachmentUpload, GraphError> {
        let mut item = serde_json::json!({
            "attachmentType": "file",
            "name": attachment.name,
            "size": attachment.bytes.len(),
            "contentType": attachment.content_type,
            "isInline": attachment.is_inline,
        });
        if let Some(id) = &attachment.content_id {
            item["contentId"] = serde_json::json!(id);
        }
        let body = serde_json::json!({ "AttachmentItem": item });
        let request = self
            .request(
                &[
                    "users",
                    user_id,
                    "messages",
                    message_id,
                    "attachments",
                    "createUploadSession",
                ],
                &[],
                self.mailbox(user_id),
            )?
            .post_json(Bytes::from(body.to_string()))
            .creates();
        let answer: SessionAnswer = self.executor().get_json(self.tenant_id(), &request).await?;
        let upload_url = Url::parse(&answer.upload_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http") && url.host().is_some())
            .ok_or_else(|| GraphError::Decode {
                url: request.loggable_url(),
                message: "uploadUrl is not an http(s) URL".into(),
            })?;
        Ok(AttachmentUpload {
            upload_url,
            user_id: user_id.to_string(),
        })
    }

    /// Sends bytes `start..start + range.len()` of an attachment of `total` bytes.
    pub async fn upload_attachment_range(
        &self,
        session: &AttachmentUpload,
        start: u64,
        total: u64,
        range: Bytes,
    ) -> Result<RangeAnswer, GraphError> {
        let end = start + range.len() as u64 - 1;
        let mut request =
            GraphRequest::get(session.upload_url.clone(), self.mailbox(&session.user_id))
                .pre_authenticated()
                .header("content-range", &format!("bytes {start}-{end}/{total}"))
                .header("content-type", "application/octet-stream");
        request.method = Method::PUT;
        request.body = Some(range);
        let response = self.executor().send(self.tenant_id(), &request).await?;
        if response.status() == reqwest::StatusCode::CREATED {
            let attachment_id = response
                .response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(attachment_id_of);
            return Ok(RangeAnswer::Attached { attachment_id });
        }
        let body = response.bytes().await?;
        let status: RangeStatus =
            serde_json::from_slice(&body).map_err(|e| GraphError::Decode {
                url: request.loggable_url(),
                message: e.to_string(),
            })?;
        let next = next_start(&status.next_expected_ranges).ok_or_else(|| GraphError::Decode {
            url: request.loggable_url(),
            message: "an upload range answered without nextExpectedRanges".into(),
        })?;
        Ok(RangeAnswer::Continue { next })
    }

    /// Attaches a file of 3 MB to 150 MB through an upload session, range by range in order.
    pub async fn add_large_file_attachment(
        &self,
        user_id: &str,
        message_id: &str,
        attachment: &NewAttachment,
    ) -> Result<(), GraphError> {
        let session = self
            .create_attachment_upload(user_id, message_id, attachment)
            .await?;
        let bytes = Bytes::from(attachment.bytes.clone());
        let total = bytes.len() as u64;
        let mut start: u64 = 0;
        while start < total {
            let end = (start as usize + ATTACHMENT_RANGE).min(bytes.len());
            let range = bytes.slice(start as usize..end);
            match self
                .upload_attachment_range(&session, start, total, range)
                .await?
            {
                RangeAnswer::Attached { .. } => return Ok(()),
                // Resumes where the service says it is, never backwards.
                RangeAnswer::Continue { next } if next > start && next <= total => start = next,
                RangeAnswer::Continue { next } => {
                    return Err(GraphError::Decode {
                        url: without_query(&session.upload_url),
                        message: format!(
                            "the upload session expects byte {next} after a range from {start}"
                        ),
                    });
                }
            }
        }
        Err(GraphError::Decode {
            url: without_query(&session.upload_url),
            message: "every byte was sent but the attachment was not created".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlook_and_onedrive_ranges_read_the_same() {
        assert_eq!(next_start(&["2097152".into()]), Some(2_097_152));
        assert_eq!(next_start(&["2097152-".into()]), Some(2_097_152));
        assert_eq!(next_start(&[]), None);
    }

    #[test]
    fn the_attachment_id_comes_from_the_location() {
        assert_eq!(
            attachment_id_of(
                "https://outlook.office.com/api/v2.0/Users('a@b')/Messages('AAMk=')/Attachments('AAMkADI5=')"
            )
            .as_deref(),
            Some("AAMkADI5=")
        );
        assert_eq!(attachment_id_of("https://example.com/x"), None);
    }
}
