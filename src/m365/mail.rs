//! Mail calls for one mailbox (graph-protocol.md §3): folders recursively including hidden ones,
//! message delta per folder with immutable ids, and MIME export as a byte stream. Every call
//! counts against that mailbox's Outlook limits (four at once, 10,000 per 10 minutes). It must
//! never send a request without `Prefer: IdType="ImmutableId"` where ids are returned, or ids
//! would change when a user moves a message.

use std::collections::VecDeque;

use futures::TryStreamExt;

use crate::m365::client::TenantClient;
use crate::m365::delta::{DeltaStart, DeltaStream, delta_pages};
use crate::m365::error::GraphError;
use crate::m365::http::{ByteStream, GraphRequest, body_stream};
use crate::m365::paging::paged;
use crate::m365::types::{MailFolder, Message};

/// Immutable ids stay stable when a message moves between folders (§3.2).
const IMMUTABLE_ID: &str = "IdType=\"ImmutableId\"";
const FOLDER_FIELDS: &str =
    "id,displayName,parentFolderId,childFolderCount,totalItemCount,unreadItemCount,isHidden";
/// What a backup needs to know of a message before fetching its MIME.
const MESSAGE_FIELDS: &str = "id,changeKey,subject,from,sender,toRecipients,ccRecipients,receivedDateTime,sentDateTime,\
lastModifiedDateTime,internetMessageId,hasAttachments,isRead,isDraft,parentFolderId";

impl TenantClient {
    fn mail_request(
        &self,
        user_id: &str,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<GraphRequest, GraphError> {
        let mut path = vec!["users", user_id];
        path.extend_from_slice(segments);
        Ok(self
            .request(&path, query, self.mailbox(user_id))?
            .header("prefer", IMMUTABLE_ID))
    }

    /// Every mail folder of the mailbox, hidden ones included, parents before children.
    /// `mailFolders` only lists the root's children, so each folder with children is listed in
    /// turn (§3.1).
    pub async fn mail_folders(&self, user_id: &str) -> Result<Vec<MailFolder>, GraphError> {
        let query = [
            ("includeHiddenFolders", "true"),
            ("$select", FOLDER_FIELDS),
            ("$top", "250"),
        ];
        let mut folders = Vec::new();
        let mut pending: VecDeque<Option<String>> = VecDeque::from([None]);
        while let Some(parent) = pending.pop_front() {
            let request = match &parent {
                None => self.mail_request(user_id, &["mailFolders"], &query)?,
                Some(id) => {
                    self.mail_request(user_id, &["mailFolders", id, "childFolders"], &query)?
                }
            };
            let children: Vec<MailFolder> =
                paged(self.executor().clone(), self.tenant_id(), request)
                    .try_collect()
                    .await?;
            for child in children {
                if child.child_folder_count > 0 {
                    pending.push_back(Some(child.id.clone()));
                }
                folders.push(child);
            }
        }
        Ok(folders)
    }

    /// Message delta for one folder (§3.2), `page_size` messages per page at most
    /// (`Prefer: odata.maxpagesize`, resent on every page).
    pub fn message_delta(
        &self,
        user_id: &str,
        folder_id: &str,
        start: DeltaStart,
        page_size: u32,
    ) -> DeltaStream<Message> {
        let prefer = format!("{IMMUTABLE_ID}, odata.maxpagesize={}", page_size.max(1));
        let initial = self
            .request(
                &[
                    "users",
                    user_id,
                    "mailFolders",
                    folder_id,
                    "messages",
                    "delta",
                ],
                &[("$select", MESSAGE_FIELDS)],
                self.mailbox(user_id),
            )
            .map(|r| r.header("prefer", &prefer));
        match initial {
            Ok(initial) => delta_pages(self.executor().clone(), self.tenant_id(), initial, start),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    /// The message as RFC 822 MIME (`$value`, §3.3), streamed. The stream holds one of the
    /// mailbox's four request slots until it is dropped.
    pub async fn message_mime(
        &self,
        user_id: &str,
        message_id: &str,
    ) -> Result<ByteStream, GraphError> {
        let request = self.mail_request(user_id, &["messages", message_id, "$value"], &[])?;
        let response = self.executor().send(self.tenant_id(), &request).await?;
        if !response.status().is_success() {
            return Err(GraphError::Decode {
                url: request.url.to_string(),
                message: format!("unexpected status {} for MIME content", response.status()),
            });
        }
        Ok(body_stream(response.response, response.permit))
    }
}
