//! Previews of backed-up content: a message's headers, body and attachment list; a calendar
//! item's, a contact's or a post's fields; a file's details. HTML from a backup is hostile until
//! proven otherwise: it is cleaned by ammonia (no script, no event handler, no `javascript:` link,
//! no SVG, no remote image, no stylesheet) and then shown only in a sandboxed frame served with a
//! Content-Security-Policy that lets nothing load (see `web::backups`). Reading content is for
//! administrators; the caller checks that and writes the audit log.

use std::collections::HashSet;

use serde_json::Value;

use crate::storage::TenantScope;
use crate::storage::catalog::{self, CatalogEntry, ItemKind, RecoveryPointId};
use crate::storage::{BackupStorage, read};

use super::{RestoreError, RestoreResult};

/// Items larger than this are not previewed (they can be downloaded).
pub const PREVIEW_LIMIT: u64 = 25 << 20;

/// One line of a preview's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

/// How the body of a preview is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    None,
    /// Plain text, shown escaped in the page.
    Text(String),
    /// Cleaned HTML, shown in the sandboxed frame (never inline in the console page).
    Html,
}

#[derive(Debug, Clone)]
pub struct Preview {
    pub entry: CatalogEntry,
    /// What the item is, in words: "Message", "Calendar item", "Contact", "File", …
    pub what: &'static str,
    pub title: String,
    pub fields: Vec<Field>,
    pub attachments: Vec<AttachmentInfo>,
    pub body: Body,
    /// Set when the item is too large or of a kind that has no readable preview.
    pub note: Option<&'static str>,
}

/// The preview of one item of a recovery point.
pub async fn preview(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    path: &str,
) -> RestoreResult<Preview> {
    let entry = catalog::find_item(storage.db(), scope, point, path).await?;
    let readable = matches!(
        entry.kind,
        ItemKind::Message | ItemKind::Event | ItemKind::Contact | ItemKind::Post
    ) || is_json(&entry)
        || is_html(&entry);
    if !readable || entry.size > PREVIEW_LIMIT {
        return Ok(details_only(entry, readable));
    }
    let bytes = read::read_item_to_vec(storage, scope, point, path).await?;
    Ok(if entry.kind == ItemKind::Message {
        message_preview(entry, &bytes)
    } else if is_html(&entry) {
        Preview {
            what: "Page",
            title: entry.name.clone(),
            fields: file_fields(&entry),
            attachments: Vec::new(),
            body: Body::Html,
            note: None,
            entry,
        }
    } else {
        json_preview(entry, &bytes)
    })
}

/// The cleaned HTML body of a message, post or page, for the sandboxed frame.
pub async fn sanitized_body(
    storage: &BackupStorage,
    scope: &dyn TenantScope,
    point: RecoveryPointId,
    path: &str,
) -> RestoreResult<String> {
    let entry = catalog::find_item(storage.db(), scope, point, path).await?;
    if entry.size > PREVIEW_LIMIT {
        return Err(RestoreError::Unsupported("too large to preview".into()));
    }
    let bytes = read::read_item_to_vec(storage, scope, point, path).await?;
    let html = if entry.kind == ItemKind::Message {
        let message = mail_parser::MessageParser::default().parse(&bytes[..]);
        message
            .as_ref()
            .and_then(|m| {
                (m.html_body_count() > 0)
                    .then(|| m.body_html(0))
                    .flatten()
                    .map(|h| h.into_owned())
            })
            .unwrap_or_default()
    } else if is_html(&entry) {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| html_content(&v))
            .unwrap_or_default()
    };
    Ok(sanitize_html(&html))
}

fn is_json(entry: &CatalogEntry) -> bool {
    entry.name.ends_with(".json")
}

fn is_html(entry: &CatalogEntry) -> bool {
    entry.name.ends_with(".html") || entry.name.ends_with(".htm")
}

fn details_only(entry: CatalogEntry, readable: bool) -> Preview {
    Preview {
        what: kind_words(&entry),
        title: entry.subject.clone().unwrap_or_else(|| entry.name.clone()),
        fields: file_fields(&entry),
        attachments: Vec::new(),
        body: Body::None,
        note: Some(if readable {
            "This item is too large to preview. Download it to open it."
        } else {
            "This item has no preview. Download it to open it."
        }),
        entry,
    }
}

/// The words for an item's kind.
pub fn kind_words(entry: &CatalogEntry) -> &'static str {
    match entry.kind {
        ItemKind::Message => "Message",
        ItemKind::MailboxItem => "Mailbox item (full fidelity)",
        ItemKind::Event => "Calendar item",
        ItemKind::Contact => "Contact",
        ItemKind::Post => "Post",
        ItemKind::File => "File",
        ItemKind::Other if is_json(entry) => "Conversation",
        ItemKind::Other => "Item",
    }
}

fn file_fields(entry: &CatalogEntry) -> Vec<Field> {
    let mut fields = vec![
        Field {
            label: "Path",
            value: entry.path.clone(),
        },
        Field {
            label: "Size",
            value: bytesize::ByteSize::b(entry.size).to_string(),
        },
    ];
    if let Some(modified) = entry.last_modified {
        fields.push(Field {
            label: "Modified",
            value: modified.format("%Y-%m-%d %H:%M UTC").to_string(),
        });
    }
    if let Some(author) = &entry.sender {
        fields.push(Field {
            label: "Author",
            value: author.clone(),
        });
    }
    if let Some(class) = &entry.item_class {
        fields.push(Field {
            label: "Class",
            value: class.clone(),
        });
    }
    fields
}

fn message_preview(entry: CatalogEntry, bytes: &[u8]) -> Preview {
    use mail_parser::MimeHeaders;
    let Some(message) = mail_parser::MessageParser::default().parse(bytes) else {
        return details_only(entry, false);
    };
    let addresses = |list: Option<&mail_parser::Address<'_>>| -> String {
        list.map(|a| {
            a.iter()
                .filter_map(|addr| match (addr.name(), addr.address()) {
                    (Some(name), Some(address)) => Some(format!("{name} <{address}>")),
                    (None, Some(address)) => Some(address.to_string()),
                    (Some(name), None) => Some(name.to_string()),
                    (None, None) => None,
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    let mut fields = Vec::new();
    for (label, value) in [
        ("From", addresses(message.from())),
        ("To", addresses(message.to())),
        ("Cc", addresses(message.cc())),
        ("Bcc", addresses(message.bcc())),
        (
            "Date",
            message.date().map(|d| d.to_rfc822()).unwrap_or_default(),
        ),
    ] {
        if !value.is_empty() {
            fields.push(Field { label, value });
        }
    }
    let attachments = message
        .attachments()
        .map(|part| AttachmentInfo {
            name: part.attachment_name().unwrap_or("attachment").to_string(),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: part.contents().len() as u64,
        })
        .collect();
    let body = if message.html_body_count() > 0 {
        Body::Html
    } else {
        message
            .body_text(0)
            .map_or(Body::None, |text| Body::Text(text.into_owned()))
    };
    Preview {
        what: "Message",
        title: message
            .subject()
            .map(str::to_string)
            .unwrap_or_else(|| "(no subject)".into()),
        fields,
        attachments,
        body,
        note: None,
        entry,
    }
}

/// Calendar items, contacts, posts and Teams threads are kept as Graph JSON: their fields read
/// as a form, their HTML body goes through the sandboxed frame.
/// A labelled field of a readable item, when it has a value.
type MaybeField = (&'static str, Option<String>);

fn json_preview(entry: CatalogEntry, bytes: &[u8]) -> Preview {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return details_only(entry, false);
    };
    let text = |pointer: &str| -> Option<String> {
        value.pointer(pointer).and_then(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Bool(b) => Some(if *b { "Yes" } else { "No" }.into()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let list = |pointer: &str, inner: &str| -> Option<String> {
        let items: Vec<String> = value
            .pointer(pointer)?
            .as_array()?
            .iter()
            .filter_map(|v| {
                if inner.is_empty() {
                    v.as_str().map(str::to_string)
                } else {
                    v.pointer(inner).and_then(Value::as_str).map(str::to_string)
                }
            })
            .collect();
        (!items.is_empty()).then(|| items.join(", "))
    };
    let when = |pointer: &str| -> Option<String> {
        let at = text(&format!("{pointer}/dateTime"))?;
        Some(match text(&format!("{pointer}/timeZone")) {
            Some(zone) => format!("{at} ({zone})"),
            None => at,
        })
    };
    let (what, title, candidates): (&'static str, Option<String>, Vec<MaybeField>) = match entry
        .kind
    {
        ItemKind::Event => (
            "Calendar item",
            text("/subject"),
            vec![
                ("Starts", when("/start")),
                ("Ends", when("/end")),
                ("All day", text("/isAllDay")),
                ("Location", text("/location/displayName")),
                ("Organizer", text("/organizer/emailAddress/address")),
                ("Attendees", list("/attendees", "/emailAddress/address")),
                ("Recurrence", text("/recurrence/pattern/type")),
            ],
        ),
        ItemKind::Contact => (
            "Contact",
            text("/displayName"),
            vec![
                ("E-mail", list("/emailAddresses", "/address")),
                ("Mobile", text("/mobilePhone")),
                ("Business phone", list("/businessPhones", "")),
                ("Home phone", list("/homePhones", "")),
                ("Company", text("/companyName")),
                ("Job title", text("/jobTitle")),
                ("Department", text("/department")),
            ],
        ),
        _ => (
            if entry.kind == ItemKind::Post {
                "Post"
            } else {
                kind_words(&entry)
            },
            text("/subject")
                .or_else(|| text("/topic"))
                .or_else(|| entry.subject.clone()),
            vec![
                (
                    "From",
                    text("/from/emailAddress/address").or_else(|| text("/from/user/displayName")),
                ),
                (
                    "Date",
                    text("/receivedDateTime").or_else(|| text("/createdDateTime")),
                ),
            ],
        ),
    };
    let fields = candidates
        .into_iter()
        .filter_map(|(label, value)| value.map(|value| Field { label, value }))
        .collect();
    let body = if html_content(&value).is_some() {
        Body::Html
    } else if let Some(content) = text("/body/content").or_else(|| text("/personalNotes")) {
        Body::Text(content)
    } else if entry.kind == ItemKind::Other || entry.kind == ItemKind::Post {
        // A thread or other JSON without a body of its own reads best as indented JSON.
        Body::Text(serde_json::to_string_pretty(&value).unwrap_or_default())
    } else {
        Body::None
    };
    Preview {
        what,
        title: title.unwrap_or_else(|| entry.name.clone()),
        fields,
        attachments: Vec::new(),
        body,
        note: None,
        entry,
    }
}

/// The HTML body of a Graph item (`body.contentType` = `html`), if it has one.
fn html_content(value: &Value) -> Option<String> {
    let body = value.get("body")?;
    let html = body
        .get("contentType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    html.then(|| body.get("content").and_then(Value::as_str))
        .flatten()
        .map(str::to_string)
}

/// CSS properties kept in `style` attributes: layout and typography only, none that can take a
/// `url()` (backgrounds, list images, cursors), so nothing can be fetched from a stylesheet.
const STYLE_PROPERTIES: [&str; 30] = [
    "color",
    "background-color",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "line-height",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "vertical-align",
    "white-space",
    "margin",
    "margin-top",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "padding",
    "padding-top",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "border",
    "border-collapse",
    "border-color",
    "width",
    "height",
    "display",
];

/// Cleans HTML from a backup so it is inert: ammonia keeps known-safe tags and attributes only
/// (no script, style element, event handler, SVG, form or frame; links only to http, https and
/// mailto), `style` attributes keep only the properties above, and every `src` is dropped, so
/// images are never fetched from a sender's server (the frame's CSP would refuse them too).
pub fn sanitize_html(html: &str) -> String {
    ammonia::Builder::default()
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        .add_generic_attributes(["style", "align", "valign", "bgcolor"])
        .filter_style_properties(HashSet::from(STYLE_PROPERTIES))
        .attribute_filter(|_element, attribute, value| match attribute {
            "src" | "srcset" | "background" => None,
            "style" => Some(inert_style(value).into()),
            _ => Some(value.into()),
        })
        .clean(html)
        .to_string()
}

/// Drops every declaration of a `style` attribute whose value calls a function or escapes
/// characters (`expression(…)`, `url(…)`, `\75rl(…)`): the kept properties are plain values.
fn inert_style(style: &str) -> String {
    style
        .split(';')
        .filter(|declaration| {
            let value = declaration.split_once(':').map_or("", |(_, v)| v);
            !value.contains('(') && !value.contains('\\') && !value.contains("/*")
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_html_comes_out_inert() {
        let hostile = r#"<p onclick="steal()" style="color:red;background:url(http://evil.example/x);width:expression(alert(1))">Hi</p>
<script>alert(1)</script><img src="http://evil.example/track.gif" onerror="alert(2)" alt="logo">
<a href="javascript:alert(3)">click</a><a href="https://example.com/ok">ok</a>
<svg onload="alert(4)"><circle r="5"/></svg><style>body{background:url(http://evil.example/css)}</style>
<iframe src="http://evil.example"></iframe><form action="http://evil.example"><input></form>
<div style="behavior:url(x.htc);-moz-binding:url(x)">x</div><object data="x.swf"></object>"#;
        let clean = sanitize_html(hostile).to_lowercase();
        for bad in [
            "<script",
            "onclick",
            "onerror",
            "onload",
            "javascript:",
            "<svg",
            "<style",
            "<iframe",
            "<form",
            "<object",
            "evil.example",
            "expression",
            "url(",
            "behavior",
            "binding",
        ] {
            assert!(!clean.contains(bad), "{bad} survived: {clean}");
        }
        assert!(
            clean.contains("color:red") || clean.contains("color: red"),
            "{clean}"
        );
        assert!(
            clean.contains(r#"href="https://example.com/ok""#),
            "{clean}"
        );
        assert!(clean.contains("alt=\"logo\""), "{clean}");
    }
}
