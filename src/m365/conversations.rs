//! Microsoft 365 group conversations (group-list-threads.md, conversationthread-list-posts.md):
//! a group's threads and each thread's posts, with their attachments expanded so a post is
//! whole in one answer. A group mailbox is a mailbox: calls count against the group's Outlook
//! limits. Posts keep Graph's JSON as it came, beside the few fields a backup looks at.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::m365::client::TenantClient;
use crate::m365::paging::{ItemStream, paged};

/// A thread of a group's conversations (`conversationThread`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationThread {
    pub id: String,
    pub topic: Option<String>,
    pub has_attachments: Option<bool>,
    #[serde(rename = "lastDeliveredDateTime")]
    pub last_delivered: Option<DateTime<Utc>>,
    #[serde(default)]
    pub unique_senders: Option<Vec<String>>,
    pub preview: Option<String>,
    pub is_locked: Option<bool>,
}

/// A post of a thread. `raw` is the post as Graph sent it (attachments included); the other
/// fields are read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub id: String,
    pub change_key: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub last_modified: Option<DateTime<Utc>>,
    pub received: Option<DateTime<Utc>>,
    pub has_attachments: Option<bool>,
    pub conversation_id: Option<String>,
    pub conversation_thread_id: Option<String>,
    pub raw: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostFields {
    id: String,
    change_key: Option<String>,
    created_date_time: Option<DateTime<Utc>>,
    last_modified_date_time: Option<DateTime<Utc>>,
    received_date_time: Option<DateTime<Utc>>,
    has_attachments: Option<bool>,
    conversation_id: Option<String>,
    conversation_thread_id: Option<String>,
}

impl<'de> Deserialize<'de> for Post {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        let fields = PostFields::deserialize(&raw).map_err(serde::de::Error::custom)?;
        Ok(Post {
            id: fields.id,
            change_key: fields.change_key,
            created: fields.created_date_time,
            last_modified: fields.last_modified_date_time,
            received: fields.received_date_time,
            has_attachments: fields.has_attachments,
            conversation_id: fields.conversation_id,
            conversation_thread_id: fields.conversation_thread_id,
            raw,
        })
    }
}

impl TenantClient {
    /// Every thread of a group (`GET /groups/{id}/threads`), page by page.
    pub fn group_threads(&self, group_id: &str) -> ItemStream<ConversationThread> {
        match self.request(
            &["groups", group_id, "threads"],
            &[],
            self.mailbox(group_id),
        ) {
            Ok(request) => paged(self.executor().clone(), self.tenant_id(), request),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    /// Every post of a thread with its attachments (`$expand=attachments`; the page allows one
    /// expanded relationship).
    pub fn thread_posts(&self, group_id: &str, thread_id: &str) -> ItemStream<Post> {
        match self.request(
            &["groups", group_id, "threads", thread_id, "posts"],
            &[("$expand", "attachments")],
            self.mailbox(group_id),
        ) {
            Ok(request) => paged(self.executor().clone(), self.tenant_id(), request),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_keeps_its_json() {
        let json = serde_json::json!({
            "@odata.etag": "W/\"CwAAABYAAADE9kXbLjqkSJUGeLzs6eumAAB601tS\"",
            "id": "AQMkAGI5MWY5ZmUyLTJiNzYtNDE0ZC04OWEwLWM3M2FjYmM3NwAzZWYARgAAA_b2VnUAiWNLj0xeSOs499YHAMT2RdsuOqRIlQZ4vOzp66YAAAIBDAAAAMT2RdsuOqRIlQZ4vOzp66YAAAINKgAAAA==",
            "createdDateTime": "2017-07-31T18:59:04Z",
            "changeKey": "CwAAABYAAADE9kXbLjqkSJUGeLzs6eumAAB601tS",
            "hasAttachments": false,
            "body": {"contentType": "html", "content": "<html><body>Meeting</body></html>"},
            "sender": {"emailAddress": {"name": "Joni Sherman", "address": "JoniS@M365x214355.onmicrosoft.com"}}
        });
        let post: Post = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(post.raw, json);
        assert_eq!(post.has_attachments, Some(false));
        assert_eq!(
            post.created.unwrap().to_rfc3339(),
            "2017-07-31T18:59:04+00:00"
        );
    }
}
