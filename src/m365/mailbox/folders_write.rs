//! Folders of the mailbox import/export API for restores: a folder's children
//! (`mailboxfolder-list-childfolders`, the top level from `GET .../folders`) and creating a folder
//! or child folder (`mailbox-post-folders`, `MailboxFolder.ReadWrite.All`). It never deletes or
//! renames a folder: a restore only adds.

use bytes::Bytes;
use futures::TryStreamExt;

use crate::m365::client::TenantClient;
use crate::m365::error::GraphError;
use crate::m365::paging::paged;

use super::{IMMUTABLE_ID, MailboxFolder, MailboxRef};

impl TenantClient {
    /// The folders directly under `parent` (`None`: the top of the mailbox).
    pub async fn mailbox_child_folders(
        &self,
        mailbox: &MailboxRef,
        parent: Option<&str>,
    ) -> Result<Vec<MailboxFolder>, GraphError> {
        let request = match parent {
            None => self.mailbox_api_request(mailbox, &["folders"], IMMUTABLE_ID)?,
            Some(id) => {
                self.mailbox_api_request(mailbox, &["folders", id, "childFolders"], IMMUTABLE_ID)?
            }
        };
        paged(self.executor().clone(), self.tenant_id(), request)
            .try_collect()
            .await
    }

    /// Creates a folder named `name` under `parent` (`None`: the top of the mailbox).
    pub async fn create_mailbox_folder(
        &self,
        mailbox: &MailboxRef,
        parent: Option<&str>,
        name: &str,
    ) -> Result<MailboxFolder, GraphError> {
        let request = match parent {
            None => self.mailbox_api_request(mailbox, &["folders"], IMMUTABLE_ID)?,
            Some(id) => {
                self.mailbox_api_request(mailbox, &["folders", id, "childFolders"], IMMUTABLE_ID)?
            }
        };
        let body = serde_json::json!({ "displayName": name });
        let request = request.post_json(Bytes::from(body.to_string())).creates();
        self.executor().get_json(self.tenant_id(), &request).await
    }
}
