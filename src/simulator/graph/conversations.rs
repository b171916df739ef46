//! Microsoft 365 group mailboxes on Graph v1.0: `GET /groups/{id}/conversations`,
//! `/conversations/{id}/threads`, `/groups/{id}/threads`, `/threads/{id}` and
//! `/threads/{id}/posts`, with Microsoft's shapes (topic, preview, uniqueSenders,
//! lastDeliveredDateTime; post body, from, sender, receivedDateTime, changeKey). Content is
//! generated on demand from the seed (`pim::group_conversation`); nothing is stored.
//! Security groups have no mailbox.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Ctx, GraphError, GraphResult, Reply, odata};
use crate::simulator::generate::MailAddress;
use crate::simulator::pim::{self, GROUP_CONVERSATIONS, GroupConversation};
use crate::simulator::state::{Found, Tenant, mail_kind, read};

fn ts(time: chrono::DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn route(ctx: &Ctx<'_>, segments: &[&str]) -> Option<GraphResult> {
    let [
        "groups",
        group_key,
        kind @ ("threads" | "conversations"),
        rest @ ..,
    ] = segments
    else {
        return None;
    };
    Some(serve(ctx, group_key, kind, rest))
}

struct GroupMailbox<'a> {
    tenant: &'a Tenant,
    group: u32,
    group_id: String,
    members: Vec<MailAddress>,
}

impl GroupMailbox<'_> {
    fn conversation(&self, key: u32) -> GroupConversation {
        pim::group_conversation(self.tenant.spec.seed, self.group, key, &self.members)
    }

    fn id(&self, kind: u8, key: u32, index: u32) -> String {
        self.tenant.mail_id(kind, self.group, key, index)
    }

    /// The conversation key behind a conversation or thread id of this group.
    fn key(&self, kind: u8, id: &str) -> Result<u32, GraphError> {
        match self.tenant.parse_mail_id(id) {
            Some((k, group, key, 0))
                if k == kind && group == self.group && key < GROUP_CONVERSATIONS =>
            {
                Ok(key)
            }
            _ => Err(GraphError::new(
                404,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            )),
        }
    }

    fn senders(c: &GroupConversation) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for post in &c.posts {
            if !names.contains(&post.from.name) {
                names.push(post.from.name.clone());
            }
        }
        names
    }

    fn preview(c: &GroupConversation) -> String {
        c.posts.last().map_or_else(String::new, |p| {
            super::mail::strip_tags(&p.body_html)
                .chars()
                .take(255)
                .collect()
        })
    }

    fn last_delivered(c: &GroupConversation) -> String {
        c.posts.last().map_or_else(String::new, |p| ts(p.received))
    }

    fn conversation_json(&self, key: u32) -> Value {
        let c = self.conversation(key);
        json!({
            "id": self.id(mail_kind::CONVERSATION, key, 0),
            "topic": c.topic,
            "hasAttachments": c.posts.iter().any(|p| p.has_attachments),
            "lastDeliveredDateTime": Self::last_delivered(&c),
            "uniqueSenders": Self::senders(&c),
            "preview": Self::preview(&c),
        })
    }

    fn thread_json(&self, key: u32) -> Value {
        let c = self.conversation(key);
        let group_address =
            json!({"emailAddress": {"name": self.group_id, "address": self.group_id}});
        json!({
            "id": self.id(mail_kind::THREAD, key, 0),
            "toRecipients": [group_address],
            "topic": c.topic,
            "hasAttachments": c.posts.iter().any(|p| p.has_attachments),
            "lastDeliveredDateTime": Self::last_delivered(&c),
            "uniqueSenders": Self::senders(&c),
            "ccRecipients": [],
            "preview": Self::preview(&c),
            "isLocked": false,
        })
    }

    fn posts_json(&self, key: u32) -> Vec<Value> {
        let c = self.conversation(key);
        c.posts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let change_key = crate::simulator::graph::mail::change_key(i as u64, key);
                let from =
                    json!({"emailAddress": {"name": p.from.name, "address": p.from.address}});
                json!({
                    "@odata.etag": format!("W/\"{change_key}\""),
                    "id": self.id(mail_kind::POST, key, i as u32),
                    "createdDateTime": ts(p.received),
                    "lastModifiedDateTime": ts(p.received),
                    "changeKey": change_key,
                    "categories": [],
                    "receivedDateTime": ts(p.received),
                    "hasAttachments": p.has_attachments,
                    "body": {"contentType": "html", "content": p.body_html},
                    "from": from,
                    "sender": from,
                    "conversationThreadId": self.id(mail_kind::THREAD, key, 0),
                    "conversationId": self.id(mail_kind::CONVERSATION, key, 0),
                    "newParticipants": [],
                })
            })
            .collect()
    }
}

fn serve(ctx: &Ctx<'_>, group_key: &str, kind: &str, rest: &[&str]) -> GraphResult {
    if ctx.method != "GET" {
        return Err(GraphError::new(
            405,
            "ErrorInvalidRequest",
            "The OData request is not supported.",
        ));
    }
    let mailbox = {
        let state = read(&ctx.tenant.state);
        let group = match state.find_group(group_key) {
            Found::Active(i) => i,
            _ => return Err(GraphError::directory_not_found(group_key)),
        };
        let g = &state.groups[group as usize];
        if !g.unified {
            return Err(GraphError::new(
                404,
                "ResourceNotFound",
                "Resource could not be discovered: the group has no mailbox.",
            ));
        }
        let mut members: Vec<MailAddress> = g
            .members
            .iter()
            .filter_map(|m| state.users.get(*m as usize))
            .map(|u| MailAddress {
                name: u.display_name.clone(),
                address: u.user_principal_name.clone(),
            })
            .collect();
        let group_address = format!("{}@{}", g.mail_nickname, ctx.tenant.domain);
        if members.is_empty() {
            members.push(MailAddress {
                name: g.display_name.clone(),
                address: group_address.clone(),
            });
        }
        GroupMailbox {
            tenant: ctx.tenant,
            group,
            group_id: group_address,
            members,
        }
    };
    let context = |fragment: &str| ctx.context(&format!("groups('{group_key}')/{fragment}"));
    let list = |values: Vec<Value>, fragment: &str| -> GraphResult {
        let select = ctx.query.select();
        let values = values
            .iter()
            .map(|v| odata::project(v, select.as_deref(), "conversationThread", None))
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or(values);
        Ok(Reply::Json(
            200,
            odata::collection(context(fragment), values, None, None),
        ))
    };
    match (kind, rest) {
        ("conversations", []) => list(
            (0..GROUP_CONVERSATIONS)
                .map(|k| mailbox.conversation_json(k))
                .collect(),
            "conversations",
        ),
        ("conversations", [id]) => Ok(Reply::Json(
            200,
            mailbox.conversation_json(mailbox.key(mail_kind::CONVERSATION, id)?),
        )),
        ("conversations", [id, "threads"]) => {
            let key = mailbox.key(mail_kind::CONVERSATION, id)?;
            list(vec![mailbox.thread_json(key)], "threads")
        }
        ("conversations", [id, "threads", thread, "posts"]) => {
            let key = mailbox.key(mail_kind::CONVERSATION, id)?;
            if mailbox.key(mail_kind::THREAD, thread)? != key {
                return Err(GraphError::new(
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                ));
            }
            list(mailbox.posts_json(key), "posts")
        }
        ("threads", []) => list(
            (0..GROUP_CONVERSATIONS)
                .map(|k| mailbox.thread_json(k))
                .collect(),
            "threads",
        ),
        ("threads", [id]) => Ok(Reply::Json(
            200,
            mailbox.thread_json(mailbox.key(mail_kind::THREAD, id)?),
        )),
        ("threads", [id, "posts"]) => list(
            mailbox.posts_json(mailbox.key(mail_kind::THREAD, id)?),
            "posts",
        ),
        (_, [first, ..]) => Err(GraphError::segment_not_found(first)),
        _ => Err(GraphError::segment_not_found(kind)),
    }
}
