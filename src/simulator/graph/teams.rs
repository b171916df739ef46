//! Teams channel conversations on Graph v1.0 (graph-protocol.md §4.6): a team's channels
//! (standard, private, shared) and where a standard channel's files are (`filesFolder`),
//! top-level posts (`$top` ≤ 50), replies, the channel's post
//! delta (`$skiptoken` / `$deltatoken`, deleted posts carry `deletedDateTime`) and hosted
//! contents (inline images). Reading messages with application permissions is a protected API:
//! the control API can make the tenant refuse it as Microsoft does for an app that is not
//! approved (403) or lacks a licence or billing (402).
//!
//! Posts and replies are generated from the seed; posts added, edited or deleted through the
//! control API live in an overlay with their own change numbers. It must never decide who may
//! read a team beyond the app's permissions and the protected-API switch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::odata;
use super::{Ctx, GraphError, GraphResult, Reply};
use crate::simulator::generate::{self, Stream};
use crate::simulator::state::{Found, Life, Site, TenantState, lock, read, write};

/// Generated channels of every team: (name, membershipType).
const CHANNELS: &[(&str, &str)] = &[
    ("General", "standard"),
    ("Projects", "standard"),
    ("Leadership", "private"),
    ("Partners", "shared"),
];
/// Generated top-level posts per channel.
const POSTS: u32 = 8;
/// Graph's page limit for channel messages (default 20).
const PAGE_MAX: usize = 50;
const PAGE_DEFAULT: usize = 20;
/// Keys of posts and replies added through the control API start here.
const ADDED_BASE: u32 = 1_000_000;

/// Microsoft's answer to an app that is not approved for the protected API (observed wording;
/// `teams-protected-apis`).
const NOT_APPROVED: &str = "Invoked API requires Protected API access in application-only context when not using Resource Specific Consent. Visit https://docs.microsoft.com/en-us/graph/teams-protected-apis for more details.";

/// How the tenant refuses the protected API, when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 403: the app is not approved by Microsoft.
    Approval,
    /// 402: a licence or payment model is missing (wording is the simulator's own).
    Licence,
}

/// A message by position: team (group index), channel, post and, for replies, the reply.
type MessageKey = (u32, u8, u32, Option<u32>);

/// A post or reply as it is now: generated, or added or changed through the control API (then
/// kept in the overlay).
#[derive(Debug, Clone)]
struct Message {
    key: MessageKey,
    id: String,
    author: u32,
    body: String,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    deleted: Option<DateTime<Utc>>,
    /// Change number (0 for generated content); a post's is raised too when one of its replies
    /// changes (`TenantTeams::touched`).
    version: u64,
}

#[derive(Debug, Default)]
struct TenantTeams {
    refusal: Option<Refusal>,
    seq: u64,
    messages: BTreeMap<MessageKey, Message>,
    /// Posts touched by a change to one of their replies: (team, channel, post) → version.
    touched: HashMap<(u32, u8, u32), u64>,
    next_added: u32,
}

/// Teams overlays of every tenant, by tenant index.
#[derive(Debug, Default)]
pub struct TeamsState {
    tenants: Mutex<HashMap<usize, TenantTeams>>,
}

fn ts_ms(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn forbidden(message: &str) -> GraphError {
    GraphError::new(403, "Forbidden", message)
}

fn not_found(what: &str) -> GraphError {
    GraphError::new(404, "NotFound", &format!("{what} not found."))
}

/// A resolved channel.
#[derive(Clone, Copy)]
struct ChannelRef {
    team: u32,
    channel: u8,
}

pub fn route(ctx: &Ctx<'_>, segments: &[&str]) -> Option<GraphResult> {
    let ["teams", team, rest @ ..] = segments else {
        return None;
    };
    if ctx.method != "GET" {
        return Some(Err(GraphError::new(
            405,
            "MethodNotAllowed",
            "The simulator's Teams surface is read-only.",
        )));
    }
    Some(team_route(ctx, team, rest))
}

fn team_route(ctx: &Ctx<'_>, team: &str, rest: &[&str]) -> GraphResult {
    let team = find_team(ctx, team)?;
    match rest {
        [] => team_json(ctx, team).map(|v| Reply::Json(200, v)),
        ["channels"] => {
            let values = (0..CHANNELS.len() as u8)
                .map(|c| channel_json(ctx, ChannelRef { team, channel: c }))
                .collect();
            Ok(Reply::Json(
                200,
                odata::collection(ctx.context("teams('id')/channels"), values, None, None),
            ))
        }
        ["channels", channel, messages @ ..] => {
            let at = ChannelRef {
                team,
                channel: find_channel(ctx, team, channel)?,
            };
            match messages {
                [] => Ok(Reply::Json(200, channel_json(ctx, at))),
                ["filesFolder"] => files_folder(ctx, at),
                ["messages", ..] => {
                    check_protected(ctx)?;
                    messages_route(ctx, at, &messages[1..])
                }
                [first, ..] => Err(GraphError::segment_not_found(first)),
            }
        }
        [first, ..] => Err(GraphError::segment_not_found(first)),
    }
}

fn messages_route(ctx: &Ctx<'_>, at: ChannelRef, rest: &[&str]) -> GraphResult {
    match rest {
        [] => list_posts(ctx, at),
        ["delta" | "delta()" | "microsoft.graph.delta()"] => delta(ctx, at),
        [post, tail @ ..] => {
            let post = find_message(ctx, at, post, None)?;
            match tail {
                [] => message_reply(ctx, at, (post, None)),
                ["replies"] => list_replies(ctx, at, post),
                ["replies", reply, more @ ..] => {
                    let reply = find_message(ctx, at, reply, Some(post))?;
                    hosted_or_message(ctx, at, (post, Some(reply)), more)
                }
                more => hosted_or_message(ctx, at, (post, None), more),
            }
        }
    }
}

fn hosted_or_message(
    ctx: &Ctx<'_>,
    at: ChannelRef,
    message: (u32, Option<u32>),
    rest: &[&str],
) -> GraphResult {
    match rest {
        [] => message_reply(ctx, at, message),
        ["hostedContents"] => {
            let values = hosted_ids(ctx, at, message)
                .into_iter()
                .map(|id| json!({"id": id, "contentBytes": null, "contentType": null}))
                .collect();
            Ok(Reply::Json(
                200,
                odata::collection(ctx.context("chatMessageHostedContents"), values, None, None),
            ))
        }
        ["hostedContents", id, "$value"]
            if hosted_ids(ctx, at, message).iter().any(|h| h == id) =>
        {
            Ok(Reply::Bytes {
                status: 200,
                content_type: "image/png".to_owned(),
                body: Bytes::from(hosted_png(ctx, at, message)),
                headers: Vec::new(),
            })
        }
        ["hostedContents", ..] => Err(not_found("Hosted content")),
        [first, ..] => Err(GraphError::segment_not_found(first)),
    }
}

/// Where a channel's files are. A standard channel's are a folder of the team's site library.
/// A private or shared channel has a site of its own, with its files in a folder named after the
/// channel in that site's library (channels Microsoft has since moved answer the library's root
/// instead; Skyvault reads the whole library either way). The simulator makes that site the
/// first time the channel's files are asked for, as Microsoft provisions it on first use.
fn files_folder(ctx: &Ctx<'_>, at: ChannelRef) -> GraphResult {
    let (name, membership) = CHANNELS[at.channel as usize];
    let drive = if membership == "standard" {
        let state = read(&ctx.tenant.state);
        state.groups[at.team as usize]
            .site
            .and_then(|site| state.sites[site as usize].drives.first().copied())
    } else {
        let mut state = write(&ctx.tenant.state);
        channel_site_drive(&mut state, at, name)
    };
    match drive {
        Some(drive) => super::drive::channel_folder(ctx, drive, name),
        None => Err(GraphError::new(
            404,
            "itemNotFound",
            "The channel's files location could not be found.",
        )),
    }
}

/// The library of a private or shared channel's own site, made on first use.
fn channel_site_drive(state: &mut TenantState, at: ChannelRef, name: &str) -> Option<u32> {
    if let Some(&site) = state.channel_sites.get(&(at.team, at.channel)) {
        return state.sites[site as usize].drives.first().copied();
    }
    let team = &state.groups[at.team as usize];
    let site = Site {
        collection_id: uuid::Uuid::new_v4(),
        web_id: uuid::Uuid::new_v4(),
        url_name: format!("{}-{name}", team.mail_nickname),
        display_name: format!("{} - {name}", team.display_name),
        description: format!("Files of the {name} channel of {}", team.display_name),
        is_root: false,
        group: None,
        created: generate::content_epoch(),
        drives: Vec::new(),
        life: Life::Active,
        version: 0,
    };
    let index = state.add_site(site, &["Documents"], 0);
    state.channel_sites.insert((at.team, at.channel), index);
    state.sites[index as usize].drives.first().copied()
}

/// The protected-API approval and the message permission of an application token.
fn check_protected(ctx: &Ctx<'_>) -> Result<(), GraphError> {
    if ctx.claims.user.is_some() || ctx.claims.app_id == "_sim" {
        return Ok(());
    }
    let refusal = lock(&ctx.sim.teams.tenants)
        .get(&ctx.tenant.index)
        .and_then(|t| t.refusal);
    match refusal {
        Some(Refusal::Approval) => return Err(forbidden(NOT_APPROVED)),
        Some(Refusal::Licence) => {
            return Err(GraphError::new(
                402,
                "PaymentRequired",
                "This API requires a licence or a payment model that the tenant does not have.",
            ));
        }
        None => {}
    }
    let allowed = ctx
        .claims
        .roles
        .iter()
        .any(|r| r.eq_ignore_ascii_case("ChannelMessage.Read.All"));
    if allowed {
        Ok(())
    } else {
        Err(forbidden(
            "Missing role permissions on the request. API requires one of 'ChannelMessage.Read.All, ChannelMessage.Read.Group'.",
        ))
    }
}

fn find_team(ctx: &Ctx<'_>, id: &str) -> Result<u32, GraphError> {
    let state = read(&ctx.tenant.state);
    match state.find_group(id) {
        Found::Active(g) if state.groups[g as usize].team => Ok(g),
        _ => Err(not_found(&format!("No team found with Group Id {id}"))),
    }
}

fn channel_id(ctx: &Ctx<'_>, team: u32, channel: u8) -> String {
    let mut rng = Stream::new(&[ctx.tenant.spec.seed, 600, team as u64, channel as u64]);
    let hex = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    if channel == 0 {
        format!("19:{hex}@thread.skype")
    } else {
        format!("19:{hex}@thread.tacv2")
    }
}

fn find_channel(ctx: &Ctx<'_>, team: u32, id: &str) -> Result<u8, GraphError> {
    (0..CHANNELS.len() as u8)
        .find(|&c| channel_id(ctx, team, c).eq_ignore_ascii_case(id))
        .ok_or_else(|| not_found("Channel"))
}

fn team_json(ctx: &Ctx<'_>, team: u32) -> Result<Value, GraphError> {
    let state = read(&ctx.tenant.state);
    let group = &state.groups[team as usize];
    Ok(json!({
        "id": group.id.to_string(),
        "displayName": group.display_name,
        "description": group.description,
        "visibility": group.visibility.to_lowercase(),
        "isArchived": false,
        "tenantId": ctx.tenant.id.to_string(),
        "createdDateTime": ts_ms(group.created),
    }))
}

fn channel_json(ctx: &Ctx<'_>, at: ChannelRef) -> Value {
    let state = read(&ctx.tenant.state);
    let group = &state.groups[at.team as usize];
    let (name, membership) = CHANNELS[at.channel as usize];
    let id = channel_id(ctx, at.team, at.channel);
    json!({
        "id": id,
        "createdDateTime": ts_ms(group.created + Duration::hours(at.channel as i64)),
        "displayName": name,
        "description": if at.channel == 0 { group.description.clone() } else { format!("{name} of {}", group.display_name) },
        "isFavoriteByDefault": null,
        "email": "",
        "tenantId": ctx.tenant.id.to_string(),
        "webUrl": format!("https://teams.microsoft.com/l/channel/{}/{}?groupId={}&tenantId={}", odata::escape(&id), odata::escape(name), group.id, ctx.tenant.id),
        "membershipType": membership,
    })
}

fn generated_replies(seed: u64, at: ChannelRef, post: u32) -> u32 {
    (generate::hash(&[seed, 601, at.team as u64, at.channel as u64, post as u64]) % 4) as u32
}

fn generated_message(
    ctx: &Ctx<'_>,
    state: &TenantState,
    at: ChannelRef,
    post: u32,
    reply: Option<u32>,
) -> Message {
    let seed = ctx.tenant.spec.seed;
    let mut rng = Stream::new(&[
        seed,
        602,
        at.team as u64,
        at.channel as u64,
        post as u64,
        reply.map_or(0, |r| r as u64 + 1),
    ]);
    let group = &state.groups[at.team as usize];
    let post_time = generate::content_epoch() - Duration::days(40)
        + Duration::minutes((at.channel as i64) * 97 + post as i64 * 1_441);
    let created = match reply {
        None => post_time,
        Some(r) => post_time + Duration::minutes(17 * (r as i64 + 1)),
    } + Duration::milliseconds(rng.below(1_000) as i64);
    let author = if group.members.is_empty() {
        0
    } else {
        group.members[rng.below(group.members.len() as u64) as usize]
    };
    let mut body = format!(
        "<p>{}</p>",
        generate::html_escape(&generate::words(&mut rng, 12))
    );
    if reply.is_none() && post % 3 == 1 {
        let key = (at.team, at.channel, post, None);
        body.push_str(&format!(
            "<p><img src=\"{}/teams/{}/channels/{}/messages/{}/hostedContents/{}/$value\" width=\"48\" height=\"32\"></p>",
            ctx.base(),
            group.id,
            channel_id(ctx, at.team, at.channel),
            created.timestamp_millis(),
            hosted_id(key)
        ));
    }
    Message {
        key: (at.team, at.channel, post, reply),
        id: created.timestamp_millis().to_string(),
        author,
        body,
        created,
        modified: created,
        deleted: None,
        version: 0,
    }
}

fn hosted_id(key: MessageKey) -> String {
    let text = format!(
        "id=x_0-sim-{}-{}-{}-{},type=1",
        key.0,
        key.1,
        key.2,
        key.3.map_or(-1, |r| r as i64)
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn hosted_ids(ctx: &Ctx<'_>, at: ChannelRef, message: (u32, Option<u32>)) -> Vec<String> {
    let marker = "/hostedContents/";
    let Some(view) = message_view(ctx, at, message.0, message.1) else {
        return Vec::new();
    };
    view.body
        .split(marker)
        .skip(1)
        .filter_map(|rest| rest.split('/').next())
        .map(str::to_owned)
        .collect()
}

fn hosted_png(ctx: &Ctx<'_>, at: ChannelRef, message: (u32, Option<u32>)) -> Vec<u8> {
    generate::png(
        generate::hash(&[
            ctx.tenant.spec.seed,
            603,
            at.team as u64,
            at.channel as u64,
            message.0 as u64,
        ]),
        48,
        32,
    )
}

/// Every message key of a channel (posts, or the replies of `post`), generated and added.
fn keys(ctx: &Ctx<'_>, at: ChannelRef, post: Option<u32>) -> Vec<MessageKey> {
    let seed = ctx.tenant.spec.seed;
    let mut out: Vec<MessageKey> = match post {
        None => (0..POSTS).map(|p| (at.team, at.channel, p, None)).collect(),
        Some(p) if p < ADDED_BASE => (0..generated_replies(seed, at, p))
            .map(|r| (at.team, at.channel, p, Some(r)))
            .collect(),
        Some(_) => Vec::new(),
    };
    let teams = lock(&ctx.sim.teams.tenants);
    if let Some(t) = teams.get(&ctx.tenant.index) {
        for key in t.messages.keys() {
            let added = match post {
                None => key.3.is_none() && key.2 >= ADDED_BASE,
                Some(p) => key.2 == p && key.3.is_some_and(|r| r >= ADDED_BASE),
            };
            if added && key.0 == at.team && key.1 == at.channel {
                out.push(*key);
            }
        }
    }
    out
}

fn message_view(ctx: &Ctx<'_>, at: ChannelRef, post: u32, reply: Option<u32>) -> Option<Message> {
    let key = (at.team, at.channel, post, reply);
    let overlay = lock(&ctx.sim.teams.tenants)
        .get(&ctx.tenant.index)
        .and_then(|t| t.messages.get(&key).cloned());
    if overlay.is_some() {
        return overlay;
    }
    let state = read(&ctx.tenant.state);
    let generated_exists = match reply {
        None => post < POSTS,
        Some(r) => post < POSTS && r < generated_replies(ctx.tenant.spec.seed, at, post),
    };
    generated_exists.then(|| generated_message(ctx, &state, at, post, reply))
}

fn find_message(
    ctx: &Ctx<'_>,
    at: ChannelRef,
    id: &str,
    post: Option<u32>,
) -> Result<u32, GraphError> {
    keys(ctx, at, post)
        .into_iter()
        .find(|k| message_view(ctx, at, k.2, k.3).is_some_and(|v| v.id == id))
        .map(|k| k.3.unwrap_or(k.2))
        .ok_or_else(|| not_found("Message"))
}

fn message_json(ctx: &Ctx<'_>, at: ChannelRef, view: &Message) -> Value {
    let state = read(&ctx.tenant.state);
    let group = &state.groups[at.team as usize];
    let channel = channel_id(ctx, at.team, at.channel);
    let post_id = match view.key.3 {
        Some(_) => message_view(ctx, at, view.key.2, None).map(|p| p.id),
        None => None,
    };
    let user = state.users.get(view.author as usize);
    let from = match (user, view.deleted) {
        (Some(u), None) => json!({"application": null, "device": null, "user": {
            "@odata.type": "#microsoft.graph.teamworkUserIdentity",
            "id": u.id.to_string(), "displayName": u.display_name,
            "userIdentityType": "aadUser", "tenantId": ctx.tenant.id.to_string()}}),
        _ => Value::Null,
    };
    let edited =
        (view.modified > view.created && view.deleted.is_none()).then(|| ts_ms(view.modified));
    json!({
        "@odata.type": "#microsoft.graph.chatMessage",
        "id": view.id,
        "replyToId": post_id,
        "etag": view.modified.timestamp_millis().to_string(),
        "messageType": "message",
        "createdDateTime": ts_ms(view.created),
        "lastModifiedDateTime": ts_ms(view.deleted.unwrap_or(view.modified)),
        "lastEditedDateTime": edited,
        "deletedDateTime": view.deleted.map(ts_ms),
        "subject": null,
        "summary": null,
        "chatId": null,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": format!("https://teams.microsoft.com/l/message/{}/{}?groupId={}&tenantId={}&createdTime={}&parentMessageId={}",
            odata::escape(&channel), view.id, group.id, ctx.tenant.id, view.id, post_id.clone().unwrap_or_else(|| view.id.clone())),
        "policyViolation": null,
        "eventDetail": null,
        "from": from,
        "body": {"contentType": "html", "content": if view.deleted.is_some() { String::new() } else { view.body.clone() }},
        "channelIdentity": {"teamId": group.id.to_string(), "channelId": channel},
        "attachments": [],
        "mentions": [],
        "reactions": [],
    })
}

fn message_reply(ctx: &Ctx<'_>, at: ChannelRef, message: (u32, Option<u32>)) -> GraphResult {
    let view = message_view(ctx, at, message.0, message.1).ok_or_else(|| not_found("Message"))?;
    Ok(Reply::Json(200, message_json(ctx, at, &view)))
}

fn page_of(ctx: &Ctx<'_>, values: Vec<Value>, context: &str) -> GraphResult {
    let top = ctx.query.top(PAGE_MAX)?.unwrap_or(PAGE_DEFAULT);
    super::sites::paged_with(ctx, values, context, top)
}

fn list_posts(ctx: &Ctx<'_>, at: ChannelRef) -> GraphResult {
    let mut views: Vec<Message> = keys(ctx, at, None)
        .into_iter()
        .filter_map(|k| message_view(ctx, at, k.2, None))
        .collect();
    // Newest first, as Teams lists a channel.
    views.sort_by_key(|v| std::cmp::Reverse(v.created));
    let values = views.iter().map(|v| message_json(ctx, at, v)).collect();
    page_of(ctx, values, "teams('id')/channels('id')/messages")
}

fn list_replies(ctx: &Ctx<'_>, at: ChannelRef, post: u32) -> GraphResult {
    let mut views: Vec<Message> = keys(ctx, at, Some(post))
        .into_iter()
        .filter_map(|k| message_view(ctx, at, k.2, k.3))
        .collect();
    views.sort_by_key(|v| std::cmp::Reverse(v.created));
    let values = views.iter().map(|v| message_json(ctx, at, v)).collect();
    page_of(
        ctx,
        values,
        "teams('id')/channels('id')/messages('id')/replies",
    )
}

/// The version a post has now: its own or that of its latest changed reply.
fn post_version(ctx: &Ctx<'_>, at: ChannelRef, post: u32) -> u64 {
    let teams = lock(&ctx.sim.teams.tenants);
    let Some(t) = teams.get(&ctx.tenant.index) else {
        return 0;
    };
    let own = t
        .messages
        .get(&(at.team, at.channel, post, None))
        .map_or(0, |o| o.version);
    own.max(
        t.touched
            .get(&(at.team, at.channel, post))
            .copied()
            .unwrap_or(0),
    )
}

/// `messages/delta`: the first round lists every live post, later rounds the posts created or
/// changed (a reply added or edited changes its post; a deleted post has `deletedDateTime`).
fn delta(ctx: &Ctx<'_>, at: ChannelRef) -> GraphResult {
    let seq = lock(&ctx.sim.teams.tenants)
        .get(&ctx.tenant.index)
        .map_or(0, |t| t.seq);
    let expired = || {
        GraphError::new(
            410,
            "SyncStateNotFound",
            "The sync state generation is not found. Start a new round of synchronization.",
        )
    };
    let token = ctx
        .query
        .get("$skiptoken")
        .or_else(|| ctx.query.get("$deltatoken"));
    let (since, upto, cursor, top) = match token {
        None => (
            None,
            seq,
            0usize,
            ctx.query.top(PAGE_MAX)?.unwrap_or(PAGE_DEFAULT),
        ),
        Some(token) => {
            let v = odata::decode_token(token).ok_or_else(expired)?;
            let top = v["t"].as_u64().unwrap_or(PAGE_DEFAULT as u64) as usize;
            match v["u"].as_u64() {
                Some(upto) => (
                    v["s"].as_u64(),
                    upto,
                    v["c"].as_u64().unwrap_or(0) as usize,
                    top,
                ),
                None => (Some(v["s"].as_u64().ok_or_else(expired)?), seq, 0, top),
            }
        }
    };
    let mut posts: Vec<Message> = keys(ctx, at, None)
        .into_iter()
        .filter_map(|k| message_view(ctx, at, k.2, None))
        .filter(|v| {
            let version = post_version(ctx, at, v.key.2);
            version <= upto
                && match since {
                    None => v.deleted.is_none(),
                    Some(s) => version > s,
                }
        })
        .collect();
    posts.sort_by_key(|v| v.created);
    let base = format!(
        "{}/teams/{}/channels/{}/messages/delta",
        ctx.base(),
        read(&ctx.tenant.state).groups[at.team as usize].id,
        odata::escape(&channel_id(ctx, at.team, at.channel))
    );
    let values: Vec<Value> = posts
        .iter()
        .skip(cursor)
        .take(top)
        .map(|v| message_json(ctx, at, v))
        .collect();
    let more = cursor + top < posts.len();
    let (next, delta_link) = if more {
        let token =
            odata::encode_token(&json!({"s": since, "u": upto, "c": cursor + top, "t": top}));
        (Some(format!("{base}?$skiptoken={token}")), None)
    } else {
        let token = odata::encode_token(&json!({"s": upto, "t": top}));
        (None, Some(format!("{base}?$deltatoken={token}")))
    };
    Ok(Reply::Json(
        200,
        odata::collection(
            ctx.context("Collection(chatMessage)"),
            values,
            next,
            delta_link,
        ),
    ))
}

/// The control API under `/_sim/tenants/{t}/teams/...`:
/// - `PUT protected-api` `{"refusal": "approval" | "licence" | null}`: how the tenant answers
///   an application reading messages (403 not approved, 402 licence; `null` allows it);
/// - `POST {team}/channels/{channel}/messages` `{"body": "<p>…</p>", "replyTo": "<post id>",
///   "from": "<user id or UPN>"}`: a new post, or a reply;
/// - `PATCH {team}/channels/{channel}/messages/{id}` `{"body": …}` and `DELETE` (soft delete:
///   `deletedDateTime` is set), for posts and replies alike.
pub fn control(ctx: &Ctx<'_>, rest: &[&str]) -> GraphResult {
    match (ctx.method, rest) {
        ("PUT", ["protected-api"]) => {
            let body: Value = serde_json::from_slice(ctx.body)
                .map_err(|_| GraphError::bad_request("invalidRequest", "Invalid JSON."))?;
            let refusal = match body["refusal"].as_str() {
                None => None,
                Some("approval") => Some(Refusal::Approval),
                Some("licence" | "license") => Some(Refusal::Licence),
                Some(other) => {
                    return Err(GraphError::bad_request(
                        "invalidRequest",
                        &format!("Unknown refusal {other}: use approval, licence or null."),
                    ));
                }
            };
            lock(&ctx.sim.teams.tenants)
                .entry(ctx.tenant.index)
                .or_default()
                .refusal = refusal;
            Ok(Reply::Json(200, json!({"refusal": body["refusal"]})))
        }
        (method, [team, "channels", channel, "messages", tail @ ..]) => {
            let team = find_team(ctx, team)?;
            let at = ChannelRef {
                team,
                channel: find_channel(ctx, team, channel)?,
            };
            match (method, tail) {
                ("POST", []) => add_message(ctx, at),
                ("PATCH" | "DELETE", [id]) => change_message(ctx, at, id),
                _ => Err(GraphError::new(405, "MethodNotAllowed", "Not supported.")),
            }
        }
        _ => Err(GraphError::segment_not_found(
            rest.first().unwrap_or(&"teams"),
        )),
    }
}

fn add_message(ctx: &Ctx<'_>, at: ChannelRef) -> GraphResult {
    let body: Value = serde_json::from_slice(ctx.body)
        .map_err(|_| GraphError::bad_request("invalidRequest", "Invalid JSON."))?;
    let text = body["body"]
        .as_str()
        .unwrap_or("<p>New message</p>")
        .to_owned();
    let post = match body["replyTo"].as_str() {
        Some(id) => Some(find_message(ctx, at, id, None)?),
        None => None,
    };
    let author = {
        let state = read(&ctx.tenant.state);
        match body["from"].as_str().map(|u| state.find_user(u)) {
            Some(Found::Active(u)) => u,
            Some(_) => {
                return Err(GraphError::directory_not_found(
                    body["from"].as_str().unwrap_or(""),
                ));
            }
            None => state.groups[at.team as usize]
                .members
                .first()
                .copied()
                .unwrap_or(0),
        }
    };
    let now = ctx.sim.now();
    let key = {
        let mut teams = lock(&ctx.sim.teams.tenants);
        let t = teams.entry(ctx.tenant.index).or_default();
        t.seq += 1;
        let version = t.seq;
        let n = ADDED_BASE + t.next_added;
        t.next_added += 1;
        // Ids are creation times in milliseconds; keep them unique when added in one tick.
        let created = now + Duration::milliseconds(t.next_added as i64);
        let key = match post {
            None => (at.team, at.channel, n, None),
            Some(p) => (at.team, at.channel, p, Some(n)),
        };
        t.messages.insert(
            key,
            Message {
                key,
                id: created.timestamp_millis().to_string(),
                author,
                body: text,
                created,
                modified: created,
                deleted: None,
                version,
            },
        );
        if let Some(p) = post {
            t.touched.insert((at.team, at.channel, p), version);
        }
        key
    };
    let view = message_view(ctx, at, key.2, key.3).ok_or_else(|| not_found("Message"))?;
    Ok(Reply::Json(201, message_json(ctx, at, &view)))
}

fn change_message(ctx: &Ctx<'_>, at: ChannelRef, id: &str) -> GraphResult {
    // A post, or else a reply of any post.
    let key = match find_message(ctx, at, id, None) {
        Ok(post) => (at.team, at.channel, post, None),
        Err(_) => keys(ctx, at, None)
            .into_iter()
            .find_map(|p| {
                find_message(ctx, at, id, Some(p.2))
                    .ok()
                    .map(|r| (at.team, at.channel, p.2, Some(r)))
            })
            .ok_or_else(|| not_found("Message"))?,
    };
    let view = message_view(ctx, at, key.2, key.3).ok_or_else(|| not_found("Message"))?;
    let body: Value = if ctx.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(ctx.body)
            .map_err(|_| GraphError::bad_request("invalidRequest", "Invalid JSON."))?
    };
    let now = ctx.sim.now();
    {
        let mut teams = lock(&ctx.sim.teams.tenants);
        let t = teams.entry(ctx.tenant.index).or_default();
        t.seq += 1;
        let version = t.seq;
        let mut overlay = Message {
            modified: now.max(view.created + Duration::milliseconds(1)),
            version,
            ..view
        };
        if ctx.method == "DELETE" {
            overlay.deleted = Some(overlay.modified);
        } else if let Some(text) = body["body"].as_str() {
            overlay.body = text.to_owned();
        }
        t.messages.insert(key, overlay);
        if key.3.is_some() {
            t.touched.insert((key.0, key.1, key.2), version);
        }
    }
    if ctx.method == "DELETE" {
        return Ok(Reply::NoContent);
    }
    let view = message_view(ctx, at, key.2, key.3).ok_or_else(|| not_found("Message"))?;
    Ok(Reply::Json(200, message_json(ctx, at, &view)))
}
