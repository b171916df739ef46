//! Calendar events and contacts as Graph's own JSON (event-get.md, contact-get.md), kept beside
//! their full-fidelity export so a backup stays readable without Exchange. Each call counts
//! against the mailbox's Outlook limits and asks for immutable ids. It must never reshape the
//! JSON: what Graph said is what is stored.

use bytes::Bytes;

use crate::m365::client::TenantClient;
use crate::m365::error::GraphError;
use crate::m365::mailbox::IMMUTABLE_ID;

impl TenantClient {
    /// `GET /users/{id}/events/{id}`: the event's JSON exactly as Graph sent it.
    pub async fn event_json(&self, user_id: &str, event_id: &str) -> Result<Bytes, GraphError> {
        self.outlook_item_json(user_id, &["events", event_id]).await
    }

    /// `GET /users/{id}/contacts/{id}`: the contact's JSON exactly as Graph sent it.
    pub async fn contact_json(&self, user_id: &str, contact_id: &str) -> Result<Bytes, GraphError> {
        self.outlook_item_json(user_id, &["contacts", contact_id])
            .await
    }

    async fn outlook_item_json(&self, user_id: &str, item: &[&str]) -> Result<Bytes, GraphError> {
        let mut path = vec!["users", user_id];
        path.extend_from_slice(item);
        let request = self
            .request(&path, &[], self.mailbox(user_id))?
            .header("prefer", IMMUTABLE_ID);
        let body = self
            .executor()
            .get_bytes(self.tenant_id(), &request)
            .await?;
        // A 2xx that is not JSON would be stored as if it were the item.
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| GraphError::Decode {
            url: request.loggable_url(),
            message: e.to_string(),
        })?;
        Ok(body)
    }
}
