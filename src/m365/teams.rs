//! Teams channel conversations (graph-protocol.md §4.6): a team's channels (standard, private
//! and shared), each channel's top-level posts, their replies, the channel's message delta and
//! the hosted contents (inline images) of posts and replies. A team's id is its group's id.
//!
//! Reading messages with application permissions is a *protected API*: Microsoft must approve
//! the app first (`teams-protected-apis`), and some models need a licence or billing
//! (`teams-licenses`). Those refusals come back as [`GraphError::ProtectedApi`] so a runner can
//! say plainly why the conversations are missing while the team's files still back up. It must
//! never retry such a refusal or hide it behind a generic "forbidden".

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::m365::client::TenantClient;
use crate::m365::delta::{DeltaItem, DeltaStart, DeltaStream, delta_pages};
use crate::m365::error::{GraphError, ProtectedApiReason, ProtectedApiRefusal};
use crate::m365::http::{ByteStream, GraphRequest, body_stream};
use crate::m365::paging::{ItemStream, paged};
use crate::m365::types::{DriveItem, IdentitySet};

/// Graph's page limit for channel messages and their delta (`$top` ≤ 50).
const MESSAGE_PAGE: &str = "50";

/// A channel of a team (`GET /teams/{id}/channels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// Like `19:…@thread.tacv2`.
    pub id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// `standard`, `private`, `shared` (or `unknownFutureValue`).
    pub membership_type: Option<String>,
    pub created_date_time: Option<DateTime<Utc>>,
    pub web_url: Option<String>,
    pub email: Option<String>,
    /// The tenant that hosts the channel; a shared channel may live in another tenant.
    pub tenant_id: Option<String>,
}

/// What kind of channel it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Standard,
    Private,
    Shared,
    Unknown,
}

impl Channel {
    pub fn kind(&self) -> ChannelKind {
        match self.membership_type.as_deref() {
            None => ChannelKind::Standard,
            Some(t) if t.eq_ignore_ascii_case("standard") => ChannelKind::Standard,
            Some(t) if t.eq_ignore_ascii_case("private") => ChannelKind::Private,
            Some(t) if t.eq_ignore_ascii_case("shared") => ChannelKind::Shared,
            Some(_) => ChannelKind::Unknown,
        }
    }
}

/// A channel post or reply (`chatMessage`). The commonly used properties are typed; `raw` is
/// the message exactly as Graph sent it (explicit `null`s included), which is what a backup
/// stores. Serializing gives the typed properties plus every other one Graph sent (`other`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    /// The post a reply answers; `None` on top-level posts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `message`, `systemEventMessage`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    /// Set on deleted messages; the delta feed reports deletions this way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IdentitySet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<MessageBody>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
    /// The message as Graph sent it.
    #[serde(skip)]
    pub raw: serde_json::Value,
}

/// The typed part of a `chatMessage`, read from the raw JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatMessageFields {
    id: String,
    #[serde(default)]
    reply_to_id: Option<String>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    message_type: Option<String>,
    #[serde(default)]
    created_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    last_modified_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    deleted_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    from: Option<IdentitySet>,
    #[serde(default)]
    body: Option<MessageBody>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for ChatMessage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        let fields = ChatMessageFields::deserialize(&raw).map_err(serde::de::Error::custom)?;
        Ok(ChatMessage {
            id: fields.id,
            reply_to_id: fields.reply_to_id,
            etag: fields.etag,
            message_type: fields.message_type,
            created_date_time: fields.created_date_time,
            last_modified_date_time: fields.last_modified_date_time,
            deleted_date_time: fields.deleted_date_time,
            subject: fields.subject,
            from: fields.from,
            body: fields.body,
            other: fields.other,
            raw,
        })
    }
}

/// `itemBody`: `text` or `html` content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageBody {
    pub content_type: Option<String>,
    pub content: Option<String>,
}

impl ChatMessage {
    pub fn is_reply(&self) -> bool {
        self.reply_to_id.is_some()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_date_time.is_some()
    }

    /// Ids of the hosted contents (inline images) the body points at
    /// (`…/hostedContents/{id}/$value`), in order, without repeats. Saves listing
    /// `hostedContents` for every message.
    pub fn hosted_content_ids(&self) -> Vec<String> {
        const MARKER: &str = "/hostedContents/";
        let Some(html) = self.body.as_ref().and_then(|b| b.content.as_deref()) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(at) = rest.find(MARKER) {
            rest = &rest[at + MARKER.len()..];
            let end = rest.find(['/', '"', '\'', '?', ' ']).unwrap_or(rest.len());
            let id = &rest[..end];
            if !id.is_empty() && !ids.iter().any(|known| known == id) {
                ids.push(id.to_string());
            }
            rest = &rest[end..];
        }
        ids
    }
}

impl DeltaItem for ChatMessage {
    fn delta_id(&self) -> &str {
        &self.id
    }
    /// The channel delta reports a deleted post with `deletedDateTime` set, not `@removed`.
    fn is_deleted(&self) -> bool {
        ChatMessage::is_deleted(self)
    }
}

/// An inline image or other content hosted in a message (`chatMessageHostedContent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedContent {
    pub id: String,
    pub content_type: Option<String>,
}

/// Where a message lives: a post, or a reply to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    pub team_id: &'a str,
    pub channel_id: &'a str,
    /// The top-level post.
    pub message_id: &'a str,
    /// The reply, when the message is one.
    pub reply_id: Option<&'a str>,
}

impl MessageRef<'_> {
    fn segments(&self) -> Vec<&str> {
        let mut segments = vec![
            "teams",
            self.team_id,
            "channels",
            self.channel_id,
            "messages",
            self.message_id,
        ];
        if let Some(reply) = self.reply_id {
            segments.extend(["replies", reply]);
        }
        segments
    }
}

/// Turns Microsoft's refusal of a protected API into [`GraphError::ProtectedApi`]: 403 means
/// the app is not approved, 402 that a licence or payment model is missing. Other errors pass
/// through unchanged.
fn protected(api: &'static str) -> impl Fn(GraphError) -> GraphError + Clone + Send + 'static {
    move |error| {
        let reason = match error.status() {
            Some(403) => ProtectedApiReason::NotApproved,
            Some(402) => ProtectedApiReason::LicenceRequired,
            _ => return error,
        };
        let GraphError::Service(service) = error else {
            return error;
        };
        GraphError::ProtectedApi(Box::new(ProtectedApiRefusal {
            reason,
            api: api.to_string(),
            status: service.status,
            code: service.code,
            message: service.message,
            request_id: service.request_id,
        }))
    }
}

impl TenantClient {
    /// A team's channels: standard, private and shared (`membershipType`). Not a protected API.
    pub fn team_channels(&self, team_id: &str) -> ItemStream<Channel> {
        match self.request(&["teams", team_id, "channels"], &[], self.directory()) {
            Ok(request) => paged(self.executor().clone(), self.tenant_id(), request),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    /// Where a channel's files are: a folder of a drive (`parentReference.driveId`). A standard
    /// channel's folder is in the team's site library; private and shared channels have sites
    /// of their own, so their folder is in another drive. `None` when it cannot be found.
    pub async fn channel_files_folder(
        &self,
        team_id: &str,
        channel_id: &str,
    ) -> Result<Option<DriveItem>, GraphError> {
        let request = self.request(
            &["teams", team_id, "channels", channel_id, "filesFolder"],
            &[],
            self.files(),
        )?;
        self.get_optional(request).await
    }

    /// A channel's top-level posts, without replies (protected API).
    pub fn channel_messages(&self, team_id: &str, channel_id: &str) -> ItemStream<ChatMessage> {
        self.protected_listing(
            &["teams", team_id, "channels", channel_id, "messages"],
            "channel messages",
        )
    }

    /// One post or reply, as it is now (protected API); `None` when it is gone.
    pub async fn channel_message(
        &self,
        message: MessageRef<'_>,
    ) -> Result<Option<ChatMessage>, GraphError> {
        let request = self.request(&message.segments(), &[], self.directory())?;
        self.get_optional(request)
            .await
            .map_err(protected("channel messages"))
    }

    /// The replies to one post (protected API).
    pub fn message_replies(
        &self,
        team_id: &str,
        channel_id: &str,
        message_id: &str,
    ) -> ItemStream<ChatMessage> {
        self.protected_listing(
            &[
                "teams", team_id, "channels", channel_id, "messages", message_id, "replies",
            ],
            "channel message replies",
        )
    }

    /// The channel's post delta (`messages/delta`, protected API): a first round lists every
    /// post, later rounds the posts created or changed since the stored link; a deleted post
    /// comes as a removal. A new reply changes its post, so fetch the replies of every post the
    /// round returns. Microsoft keeps about eight months in the delta; older posts come from
    /// [`channel_messages`](Self::channel_messages).
    pub fn channel_messages_delta(
        &self,
        team_id: &str,
        channel_id: &str,
        start: DeltaStart,
    ) -> DeltaStream<ChatMessage> {
        match self.request(
            &[
                "teams", team_id, "channels", channel_id, "messages", "delta",
            ],
            &[("$top", MESSAGE_PAGE)],
            self.directory(),
        ) {
            Ok(initial) => Box::pin(
                delta_pages(self.executor().clone(), self.tenant_id(), initial, start)
                    .map_err(protected("channel messages")),
            ),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    /// The hosted contents of a post or reply (protected API).
    pub fn hosted_contents(&self, message: MessageRef<'_>) -> ItemStream<HostedContent> {
        let mut segments = message.segments();
        segments.push("hostedContents");
        self.protected_listing(&segments, "message hosted contents")
    }

    /// The bytes of one hosted content (`…/hostedContents/{id}/$value`), streamed.
    pub async fn hosted_content(
        &self,
        message: MessageRef<'_>,
        hosted_content_id: &str,
    ) -> Result<ByteStream, GraphError> {
        let mut segments = message.segments();
        segments.extend(["hostedContents", hosted_content_id, "$value"]);
        let request = self.request(&segments, &[], self.directory())?;
        let response = self
            .executor()
            .send(self.tenant_id(), &request)
            .await
            .map_err(protected("message hosted contents"))?;
        if !response.status().is_success() {
            return Err(GraphError::Decode {
                url: request.url.to_string(),
                message: format!("unexpected status {} for hosted content", response.status()),
            });
        }
        Ok(body_stream(response.response, response.permit))
    }

    fn protected_listing<T>(&self, segments: &[&str], api: &'static str) -> ItemStream<T>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let request: Result<GraphRequest, GraphError> =
            self.request(segments, &[("$top", MESSAGE_PAGE)], self.directory());
        match request {
            Ok(request) => Box::pin(
                paged(self.executor().clone(), self.tenant_id(), request).map_err(protected(api)),
            ),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) }).boxed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m365::error::ErrorKind;

    #[test]
    fn messages_keep_unknown_properties_and_find_hosted_contents() {
        let json = serde_json::json!({
            "id": "1616963377068",
            "replyToId": null,
            "etag": "1616963377068",
            "messageType": "message",
            "createdDateTime": "2021-03-28T20:29:37.068Z",
            "importance": "normal",
            "from": {"user": {"id": "8ea0", "displayName": "Robin Kline", "userIdentityType": "aadUser"}},
            "body": {"contentType": "html", "content": "<img src=\"https://graph.microsoft.com/v1.0/teams/t/channels/19:c@thread.tacv2/messages/1616963377068/hostedContents/aWQ9eF8w/$value\"><img src=\"https://graph.microsoft.com/v1.0/teams/t/channels/c/messages/1/hostedContents/aWQ9eF8x/$value\">"},
            "reactions": []
        });
        let message: ChatMessage = serde_json::from_value(json.clone()).unwrap();
        assert!(!message.is_reply());
        assert_eq!(message.hosted_content_ids(), vec!["aWQ9eF8w", "aWQ9eF8x"]);
        assert_eq!(
            message.from.as_ref().and_then(|f| f.display_name()),
            Some("Robin Kline")
        );
        let back = serde_json::to_value(&message).unwrap();
        assert_eq!(back["importance"], "normal");
        assert_eq!(back["reactions"], serde_json::json!([]));
        assert_eq!(
            message.raw, json,
            "the raw message is kept exactly, nulls included"
        );
    }

    #[test]
    fn refusals_of_protected_apis_are_typed() {
        let body = br#"{"error":{"code":"Forbidden","message":"Invoked API requires Protected API access in application-only context when not using Resource Specific Consent."}}"#;
        let refused = protected("channel messages")(GraphError::from_response(
            403,
            Some("r1".into()),
            None,
            None,
            body,
        ));
        let refusal = refused.protected_api_refusal().unwrap();
        assert_eq!(refusal.reason, ProtectedApiReason::NotApproved);
        assert!(refusal.explanation().contains("channel messages"));
        assert!(refusal.explanation().contains("Protected API access"));
        assert_eq!(refused.kind(), ErrorKind::Forbidden);
        assert!(!refused.is_retryable());
        assert_eq!(refused.request_id(), Some("r1"));

        let unpaid = protected("channel messages")(GraphError::from_response(
            402,
            None,
            None,
            None,
            br#"{"error":{"code":"PaymentRequired","message":"m"}}"#,
        ));
        assert_eq!(
            unpaid.protected_api_refusal().map(|r| r.reason),
            Some(ProtectedApiReason::LicenceRequired)
        );
        let missing =
            protected("channel messages")(GraphError::from_response(404, None, None, None, b"{}"));
        assert!(missing.protected_api_refusal().is_none());
    }

    #[test]
    fn channel_kinds() {
        let channel = |t: Option<&str>| Channel {
            id: "19:x@thread.tacv2".into(),
            display_name: None,
            description: None,
            membership_type: t.map(str::to_string),
            created_date_time: None,
            web_url: None,
            email: None,
            tenant_id: None,
        };
        assert_eq!(channel(None).kind(), ChannelKind::Standard);
        assert_eq!(channel(Some("private")).kind(), ChannelKind::Private);
        assert_eq!(channel(Some("shared")).kind(), ChannelKind::Shared);
        assert_eq!(
            channel(Some("unknownFutureValue")).kind(),
            ChannelKind::Unknown
        );
    }
}
