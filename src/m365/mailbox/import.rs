//! Full-fidelity import (`mailbox: createImportSession`, import-exchange-mailbox-item.md): a
//! session gives a pre-authenticated `importUrl` (on `outlook.office365.com`, its token in the
//! query string, valid until `expirationDateTime`), and each exported item is POSTed there. It
//! owns that exchange; it must never send the bearer token to the import URL, never write the
//! URL's query to a log, an error or `Debug`, and never send an import twice unless the service
//! surely did not act on the first (an import creates an item).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use url::Url;

use crate::m365::client::TenantClient;
use crate::m365::error::GraphError;
use crate::m365::http::{GraphRequest, without_query};

use super::{IMMUTABLE_ID, MailboxRef};

/// A place to import items into one mailbox, until `expires`. Create a new one when it has
/// expired (the import then answers 401/403).
#[derive(Clone, PartialEq, Eq)]
pub struct ImportSession {
    /// Pre-authenticated: its query holds the credential. Never log it.
    pub import_url: Url,
    pub expires: DateTime<Utc>,
    /// The mailbox the session imports into; its owner's Outlook budget pays for each import.
    pub mailbox: MailboxRef,
}

impl std::fmt::Debug for ImportSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportSession")
            .field("import_url", &without_query(&self.import_url))
            .field("expires", &self.expires)
            .field("mailbox", &self.mailbox)
            .finish()
    }
}

/// What an import created (`importMailboxItemResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportedItem {
    pub item_id: String,
    pub change_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    import_url: String,
    expiration_date_time: DateTime<Utc>,
}

/// The mailbox an import must go to instead, when the import answered 409 because the folder
/// lives in an auxiliary archive ("Invalid import session. The target session is expected in
/// mailbox MBX:…", handle-archive-mailbox-redirects.md). Create a session for a [`MailboxRef`]
/// with that id (same owner and API) and import there.
pub fn import_target_mailbox(error: &GraphError) -> Option<String> {
    let GraphError::Service(e) = error else {
        return None;
    };
    if e.status != 409 {
        return None;
    }
    let start = e.message.find("MBX:")?;
    let id: String = e.message[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    Some(id.trim_end_matches('.').to_string()).filter(|id| id.len() > "MBX:".len())
}

impl TenantClient {
    /// Creates an import session for the mailbox. Its URL must be http(s); anything else is
    /// refused rather than sent the mailbox's items.
    pub async fn create_import_session(
        &self,
        mailbox: &MailboxRef,
    ) -> Result<ImportSession, GraphError> {
        let request = self
            .mailbox_api_request(mailbox, &["createImportSession"], IMMUTABLE_ID)?
            // No body is documented; an empty one still says `Content-Length: 0`.
            .post_json(Bytes::new());
        let answer: SessionAnswer = self.executor().get_json(self.tenant_id(), &request).await?;
        let import_url = Url::parse(&answer.import_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http") && url.host().is_some())
            .ok_or_else(|| GraphError::Decode {
                url: request.loggable_url(),
                message: "importUrl is not an http(s) URL".into(),
            })?;
        Ok(ImportSession {
            import_url,
            expires: answer.expiration_date_time,
            mailbox: mailbox.clone(),
        })
    }

    /// Imports one exported item (its [`ExportedData::data`](super::ExportedData)) as a new item
    /// in `folder_id` (`Mode: create`).
    pub async fn import_mailbox_item(
        &self,
        session: &ImportSession,
        folder_id: &str,
        data: &[u8],
    ) -> Result<ImportedItem, GraphError> {
        let body = serde_json::json!({
            "FolderId": folder_id,
            "Mode": "create",
            "Data": base64_of(data),
        });
        self.import(session, &body).await
    }

    /// Imports an exported item over an existing one (`Mode: update`): the item with `item_id`
    /// at version `change_key` in `folder_id` becomes `data`.
    pub async fn replace_mailbox_item(
        &self,
        session: &ImportSession,
        folder_id: &str,
        item_id: &str,
        change_key: &str,
        data: &[u8],
    ) -> Result<ImportedItem, GraphError> {
        let body = serde_json::json!({
            "FolderId": folder_id,
            "Mode": "update",
            "Data": base64_of(data),
            "ItemId": item_id,
            "ChangeKey": change_key,
        });
        self.import(session, &body).await
    }

    async fn import(
        &self,
        session: &ImportSession,
        body: &serde_json::Value,
    ) -> Result<ImportedItem, GraphError> {
        let request = GraphRequest::get(
            session.import_url.clone(),
            self.mailbox(&session.mailbox.owner),
        )
        .pre_authenticated()
        .creates()
        .post_json(Bytes::from(body.to_string()));
        self.executor().get_json(self.tenant_id(), &request).await
    }
}

fn base64_of(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrong_mailbox_answer_names_the_right_one() {
        let error = GraphError::from_response(
            409,
            None,
            None,
            None,
            br#"{"Message": "Invalid import session. The target session is expected in mailbox MBX:f10964a6-4fd0-4f74-8@4d2e-9e48-109351d094ab."}"#,
        );
        assert_eq!(
            import_target_mailbox(&error).as_deref(),
            Some("MBX:f10964a6-4fd0-4f74-8@4d2e-9e48-109351d094ab")
        );
        let other = GraphError::from_response(404, None, None, None, b"{}");
        assert_eq!(import_target_mailbox(&other), None);
    }

    #[test]
    fn debug_hides_the_token() {
        let session = ImportSession {
            import_url: Url::parse(
                "https://outlook.office365.com/api/gv1.0/Mailboxes('MBX:e0643f21@a7809c93')/importItem?authtoken=eyJhbGciOiJSUzI1NiIsImtpZCI6IjFTeXQ1b",
            )
            .unwrap(),
            expires: Utc::now(),
            mailbox: MailboxRef {
                id: "MBX:e0643f21@a7809c93".into(),
                owner: "u".into(),
                api: super::super::MailboxApi::V1,
            },
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("eyJhbGci"), "{shown}");
        assert!(shown.contains("outlook.office365.com"));
    }
}
