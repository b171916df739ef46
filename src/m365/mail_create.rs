//! Creating messages for a restore without the import permission (graph-protocol.md §3.4): a
//! JSON `POST /users/{id}/mailFolders/{folder}/messages` whose `singleValueExtendedProperties`
//! set `PR_MESSAGE_FLAGS` (`Integer 0x0E07`) without the unsent bit, so the message is created
//! as received mail, not a draft (the flag is read-only after the first save: it must travel
//! with the create). Then file attachments, one `POST .../attachments` each (under 3 MB). It
//! never PATCHes the flags afterwards: that silently does nothing.

use bytes::Bytes;
use serde::Deserialize;

use crate::m365::client::TenantClient;
use crate::m365::error::GraphError;

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

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
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
}
