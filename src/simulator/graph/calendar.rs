//! Events and contacts on Graph v1.0 (graph-protocol.md §3.5): `GET /users/{id}/events` and
//! `/events/{id}` (recurrence, attendees, organizer), `GET /users/{id}/contacts` and
//! `/contacts/{id}` (emailAddresses, phones). Ids are the same the mailbox import/export API
//! gives these items, so a backup can fetch readable JSON beside the opaque stream.
//! It renders JSON only; content comes from `mailbox` and `record`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Ctx, GraphError, GraphResult, Reply, mail, odata};
use crate::simulator::generate::MailAddress;
use crate::simulator::mailbox::{self, ItemKey, MailboxKind, MailboxRef};
use crate::simulator::record::{ContactRecord, Content, EventRecord, ItemRecord};
use crate::simulator::state::{Found, mail_kind, read};

fn ts(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Outlook's `dateTimeTimeZone`: local time without offset, seven fractional digits.
fn date_time_zone(time: DateTime<Utc>) -> Value {
    let local = format!(
        "{}.{:07}",
        time.format("%Y-%m-%dT%H:%M:%S"),
        time.timestamp_subsec_nanos() / 100
    );
    json!({"dateTime": local, "timeZone": "UTC"})
}

fn email(a: &MailAddress) -> Value {
    json!({"name": a.name, "address": a.address})
}

pub fn route(ctx: &Ctx<'_>, segments: &[&str]) -> Option<GraphResult> {
    let ["users", user_key, kind @ ("events" | "contacts"), rest @ ..] = segments else {
        return None;
    };
    Some(serve(ctx, user_key, kind, rest))
}

fn serve(ctx: &Ctx<'_>, user_key: &str, kind: &str, rest: &[&str]) -> GraphResult {
    if ctx.method != "GET" {
        return Err(GraphError::new(
            405,
            "ErrorInvalidRequest",
            "The OData request is not supported.",
        ));
    }
    let state = read(&ctx.tenant.state);
    let user = match state.find_user(user_key) {
        Found::Active(i) if state.users[i as usize].licensed => i,
        Found::Active(_) | Found::SoftDeleted(_) => return Err(mail::mailbox_not_enabled()),
        Found::Missing => {
            return Err(GraphError::new(
                404,
                "ErrorInvalidUser",
                &format!("The requested user '{user_key}' is invalid."),
            ));
        }
    };
    let (item_kind, folder, type_name) = if kind == "events" {
        (mail_kind::EVENT, mailbox::CALENDAR, "event")
    } else {
        (mail_kind::CONTACT, mailbox::CONTACTS, "contact")
    };
    let render = |item: ItemKey| -> Option<Value> {
        let summary = mailbox::summary(ctx.tenant, &state, user, item)?;
        let record = mailbox::full_record(ctx.tenant, &state, user, item)?;
        let id = mailbox::item_id(ctx.tenant, user, item);
        let parent = mailbox::folder_id(
            ctx.tenant,
            MailboxRef {
                user,
                kind: MailboxKind::Primary,
            },
            summary.folder,
        );
        Some(match &record.content {
            Content::Event(event) => event_json(&id, &summary.change_key, &record, event),
            Content::Contact(contact) => {
                contact_json(&id, &summary.change_key, &parent, &record, contact)
            }
            _ => return None,
        })
    };
    let user_id = state.users[user as usize].id;
    match rest {
        [] => {
            let top = ctx.query.top(1000)?.unwrap_or(10);
            let skip = ctx
                .query
                .get("$skip")
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(0);
            let primary = MailboxRef {
                user,
                kind: MailboxKind::Primary,
            };
            let keys: Vec<ItemKey> = mailbox::folder_items(ctx.tenant, &state, primary, folder)
                .into_iter()
                .filter(|i| i.kind == item_kind)
                .collect();
            let page = keys
                .iter()
                .skip(skip)
                .take(top)
                .filter_map(|item| render(*item))
                .map(|v| odata::project(&v, ctx.query.select().as_deref(), type_name, None))
                .collect::<Result<Vec<_>, _>>()?;
            let next = (skip + top < keys.len()).then(|| {
                format!(
                    "{}/users/{user_id}/{kind}?$top={top}&$skip={}",
                    ctx.base(),
                    skip + top
                )
            });
            Ok(Reply::Json(
                200,
                odata::collection(
                    ctx.context(&format!("users('{user_id}')/{kind}")),
                    page,
                    next,
                    None,
                ),
            ))
        }
        [id] => {
            let value = mailbox::parse_item_id(ctx.tenant, user, id)
                .filter(|item| item.kind == item_kind)
                .and_then(render)
                .ok_or_else(|| not_found(id))?;
            let mut value = odata::project(&value, ctx.query.select().as_deref(), type_name, None)?;
            value["@odata.context"] =
                json!(ctx.context(&format!("users('{user_id}')/{kind}/$entity")));
            Ok(Reply::Json(200, value))
        }
        [first, ..] => Err(GraphError::segment_not_found(first)),
    }
}

fn not_found(id: &str) -> GraphError {
    if id.len() < 20 {
        GraphError::bad_request("ErrorInvalidIdMalformed", "Id is malformed.")
    } else {
        GraphError::new(
            404,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }
}

fn preview(html: &str) -> String {
    mail::strip_tags(html)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(255)
        .collect()
}

/// The `outlookItem` part every event and contact starts with.
fn outlook_item(id: &str, change_key: &str, record: &ItemRecord) -> serde_json::Map<String, Value> {
    let header = json!({
        "@odata.etag": format!("W/\"{change_key}\""),
        "id": id,
        "createdDateTime": ts(record.created),
        "lastModifiedDateTime": ts(record.modified),
        "changeKey": change_key,
        "categories": record.categories,
    });
    match header {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn with_header(mut header: serde_json::Map<String, Value>, rest: Value) -> Value {
    if let Value::Object(rest) = rest {
        header.extend(rest);
    }
    Value::Object(header)
}

fn event_json(id: &str, change_key: &str, record: &ItemRecord, event: &EventRecord) -> Value {
    let recurrence = event.recurrence.as_ref().map(|r| {
        json!({
            "pattern": {
                "type": r.pattern,
                "interval": r.interval,
                "month": 0,
                "dayOfMonth": 0,
                "daysOfWeek": r.days_of_week,
                "firstDayOfWeek": "sunday",
                "index": "first",
            },
            "range": {
                "type": r.range,
                "startDate": r.start_date.to_string(),
                "endDate": r.end_date.map_or("0001-01-01".to_owned(), |d| d.to_string()),
                "recurrenceTimeZone": "UTC",
                "numberOfOccurrences": r.occurrences,
            },
        })
    });
    let attendees: Vec<Value> = event
        .attendees
        .iter()
        .map(|a| {
            json!({
                "type": a.kind,
                "status": {"response": a.response, "time": "0001-01-01T00:00:00Z"},
                "emailAddress": email(&a.address),
            })
        })
        .collect();
    let location = json!({
        "displayName": event.location,
        "locationType": "default",
        "uniqueIdType": "unknown",
    });
    with_header(
        outlook_item(id, change_key, record),
        json!({
            "originalStartTimeZone": "UTC",
            "originalEndTimeZone": "UTC",
            "iCalUId": event.ical_uid,
            "reminderMinutesBeforeStart": event.reminder_minutes.unwrap_or(0),
            "isReminderOn": event.reminder_minutes.is_some(),
            "hasAttachments": false,
            "subject": event.subject,
            "bodyPreview": preview(&event.body_html),
            "importance": event.importance,
            "sensitivity": event.sensitivity,
            "isAllDay": event.is_all_day,
            "isCancelled": false,
            "isOrganizer": true,
            "responseRequested": true,
            "seriesMasterId": null,
            "showAs": event.show_as,
            "type": if recurrence.is_some() { "seriesMaster" } else { "singleInstance" },
            "webLink": format!("https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item", odata::escape(id)),
            "onlineMeetingUrl": null,
            "isOnlineMeeting": false,
            "onlineMeetingProvider": "unknown",
            "allowNewTimeProposals": true,
            "isDraft": false,
            "hideAttendees": false,
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "body": {"contentType": "html", "content": event.body_html},
            "start": date_time_zone(event.start),
            "end": date_time_zone(event.end),
            "location": location,
            "locations": [location],
            "recurrence": recurrence,
            "attendees": attendees,
            "organizer": {"emailAddress": email(&event.organizer)},
        }),
    )
}

fn contact_json(
    id: &str,
    change_key: &str,
    parent: &str,
    record: &ItemRecord,
    contact: &ContactRecord,
) -> Value {
    with_header(
        outlook_item(id, change_key, record),
        json!({
            "parentFolderId": parent,
            "birthday": contact.birthday.map(|d| format!("{d}T11:59:00Z")),
            "fileAs": "",
            "displayName": contact.display_name,
            "givenName": contact.given_name,
            "initials": null,
            "middleName": null,
            "nickName": null,
            "surname": contact.surname,
            "title": null,
            "generation": null,
            "imAddresses": [],
            "jobTitle": contact.job_title,
            "companyName": contact.company_name,
            "department": null,
            "officeLocation": null,
            "profession": null,
            "businessHomePage": null,
            "assistantName": null,
            "manager": null,
            "homePhones": contact.home_phones,
            "mobilePhone": contact.mobile_phone,
            "businessPhones": contact.business_phones,
            "spouseName": null,
            "personalNotes": contact.personal_notes,
            "children": [],
            "emailAddresses": contact.email_addresses.iter().map(email).collect::<Vec<_>>(),
            "homeAddress": {},
            "businessAddress": {},
            "otherAddress": {},
        }),
    )
}
