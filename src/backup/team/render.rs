//! A channel thread as a self-contained HTML page a person can open without Skyvault: the
//! post, its replies, who wrote them and when, and the inline images, read from files stored
//! beside the page. Message bodies are Microsoft's HTML and hostile input: they are sanitized
//! with ammonia (no scripts, no styles, no event handlers), every image that is not one of the
//! message's own hosted contents is dropped, so opening the page loads nothing remote; every
//! other text is escaped. It must never emit markup it did not sanitize or escape.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::m365::{Channel, ChatMessage};

/// Where each hosted content of a thread is stored, relative to the page: by hosted-content id.
pub(crate) type HostedFiles = HashMap<String, String>;

/// The page of one thread. `replies` oldest first.
pub(crate) fn thread_html(
    team_name: &str,
    channel: &Channel,
    root: &ChatMessage,
    replies: &[ChatMessage],
    hosted: &HostedFiles,
) -> String {
    let channel_name = channel
        .display_name
        .as_deref()
        .unwrap_or("(unnamed channel)");
    let title = root
        .subject
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("Conversation in {channel_name}"));
    let cleaner = Cleaner::new(hosted);
    let mut page = String::with_capacity(4096);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Defence in depth: even a browser that met markup the sanitizer let through would run no
    // script and fetch nothing from the network.
    page.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         img-src 'self' file:; style-src 'unsafe-inline'\">\n",
    );
    page.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    page.push_str(&format!("<title>{}</title>\n", escape(&title)));
    page.push_str(STYLE);
    page.push_str("</head>\n<body>\n<header>\n");
    page.push_str(&format!(
        "<p class=\"where\">{} › {}{}</p>\n<h1>{}</h1>\n",
        escape(team_name),
        escape(channel_name),
        match channel.membership_type.as_deref() {
            Some(kind) if !kind.eq_ignore_ascii_case("standard") => {
                format!(" <span class=\"kind\">({})</span>", escape(kind))
            }
            _ => String::new(),
        },
        escape(&title)
    ));
    page.push_str("</header>\n<main>\n");
    message_html(&mut page, root, &cleaner, "post");
    if !replies.is_empty() {
        page.push_str(&format!(
            "<h2>{} {}</h2>\n",
            replies.len(),
            if replies.len() == 1 {
                "reply"
            } else {
                "replies"
            }
        ));
    }
    for reply in replies {
        message_html(&mut page, reply, &cleaner, "reply");
    }
    page.push_str(
        "</main>\n<footer>Backed up by Skyvault. The Graph JSON of this conversation is in \
         thread.json beside this page.</footer>\n</body>\n</html>\n",
    );
    page
}

const STYLE: &str = "<style>\
body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1b1b1f}\
.where{color:#5b5b66;margin:0}.kind{font-size:.9em}h1{font-size:1.4rem;margin:.3rem 0 1.2rem}\
h2{font-size:1rem;color:#5b5b66;margin:1.5rem 0 .5rem}\
article{border:1px solid #d8d8de;border-radius:6px;padding:.7rem 1rem;margin:.6rem 0}\
article.reply{margin-left:2rem}article.deleted{color:#777;font-style:italic}\
.meta{font-size:.85rem;color:#5b5b66;margin-bottom:.4rem}.meta b{color:#1b1b1f}\
.body img{max-width:100%;height:auto}.files{font-size:.85rem}\
footer{margin-top:2rem;font-size:.8rem;color:#777}</style>\n";

fn message_html(page: &mut String, message: &ChatMessage, cleaner: &Cleaner, class: &str) {
    let author = message
        .from
        .as_ref()
        .and_then(|from| from.display_name())
        .unwrap_or("(unknown)");
    let when = message
        .created_date_time
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let deleted = message.deleted_date_time.is_some();
    page.push_str(&format!(
        "<article class=\"{class}{}\" id=\"m{}\">\n<div class=\"meta\"><b>{}</b> · <time>{}</time>",
        if deleted { " deleted" } else { "" },
        escape(&message.id),
        escape(author),
        escape(&when)
    ));
    let edited = message
        .raw
        .get("lastEditedDateTime")
        .and_then(|v| v.as_str())
        .is_some();
    if edited && !deleted {
        page.push_str(" · edited");
    }
    page.push_str("</div>\n");
    if deleted {
        page.push_str("<div class=\"body\">This message was deleted.</div>\n");
    } else {
        let body = message.body.as_ref();
        let content = body.and_then(|b| b.content.as_deref()).unwrap_or_default();
        let is_html = body
            .and_then(|b| b.content_type.as_deref())
            .is_none_or(|t| t.eq_ignore_ascii_case("html"));
        let rendered = if is_html {
            cleaner.clean(content)
        } else {
            escape(content).replace('\n', "<br>")
        };
        page.push_str(&format!("<div class=\"body\">{rendered}</div>\n"));
        attachments_html(page, message);
    }
    page.push_str("</article>\n");
}

/// Files shared in a message live in SharePoint; the page names them and links to them.
fn attachments_html(page: &mut String, message: &ChatMessage) {
    let Some(list) = message.raw.get("attachments").and_then(|a| a.as_array()) else {
        return;
    };
    let files: Vec<String> = list
        .iter()
        .filter_map(|a| {
            let name = a.get("name").and_then(|n| n.as_str())?;
            let url = a
                .get("contentUrl")
                .and_then(|u| u.as_str())
                .filter(|u| u.starts_with("https://"));
            Some(match url {
                Some(url) => format!(
                    "<li><a href=\"{}\" rel=\"noopener noreferrer\">{}</a></li>",
                    escape(url),
                    escape(name)
                ),
                None => format!("<li>{}</li>", escape(name)),
            })
        })
        .collect();
    if !files.is_empty() {
        page.push_str(&format!("<ul class=\"files\">{}</ul>\n", files.concat()));
    }
}

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// ammonia, set up for Teams bodies: links keep working, images only from the stored hosted
/// contents.
struct Cleaner {
    builder: ammonia::Builder<'static>,
}

impl Cleaner {
    fn new(hosted: &HostedFiles) -> Self {
        let hosted = Arc::new(hosted.clone());
        let mut builder = ammonia::Builder::default();
        builder
            .url_schemes(HashSet::from(["http", "https", "mailto"]))
            .link_rel(Some("noopener noreferrer"))
            .attribute_filter(move |element, attribute, value| {
                if element == "img" && attribute == "src" {
                    // The stored copy of a hosted content, or nothing: a remote image would be
                    // fetched by whoever opens the page.
                    return hosted_id_in(value)
                        .and_then(|id| hosted.get(id))
                        .map(|file| Cow::Owned(file.clone()));
                }
                Some(Cow::Borrowed(value))
            });
        Self { builder }
    }

    fn clean(&self, html: &str) -> String {
        self.builder.clean(html).to_string()
    }
}

/// The hosted-content id in `…/hostedContents/{id}/$value`.
fn hosted_id_in(url: &str) -> Option<&str> {
    const MARKER: &str = "/hostedContents/";
    let at = url.find(MARKER)? + MARKER.len();
    let rest = &url[at..];
    let end = rest.find(['/', '?', '"']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: serde_json::Value) -> ChatMessage {
        serde_json::from_value(json).unwrap()
    }

    fn channel() -> Channel {
        serde_json::from_value(serde_json::json!({
            "id": "19:c@thread.tacv2", "displayName": "Gen<eral>", "membershipType": "private"
        }))
        .unwrap()
    }

    #[test]
    fn bodies_are_sanitized_and_images_point_at_stored_copies() {
        let root = message(serde_json::json!({
            "id": "1", "createdDateTime": "2026-10-01T10:00:00Z",
            "from": {"user": {"displayName": "Ann <admin>"}},
            "body": {"contentType": "html", "content":
                "<p onclick=\"x()\">Hello <b>team</b></p><script>alert(1)</script>\
                 <img src=\"https://graph.microsoft.com/v1.0/teams/t/channels/c/messages/1/hostedContents/aWQ/$value\">\
                 <img src=\"https://evil.example/track.gif\"><style>body{}</style>\
                 <a href=\"javascript:alert(1)\">x</a><a href=\"https://example.com/\">site</a>"},
            "attachments": [{"name": "plan<1>.docx", "contentUrl": "https://contoso.sharepoint.com/plan.docx"}]
        }));
        let reply = message(serde_json::json!({
            "id": "2", "replyToId": "1", "deletedDateTime": "2026-10-02T10:00:00Z",
            "body": {"contentType": "html", "content": ""}
        }));
        let hosted = HostedFiles::from([("aWQ".to_string(), "hosted/abc".to_string())]);
        let page = thread_html("Team & Co", &channel(), &root, &[reply], &hosted);
        assert!(page.contains("Hello <b>team</b>"), "{page}");
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("alert(1)</script>"));
        assert!(!page.contains("onclick"));
        assert!(!page.contains("javascript:"));
        assert!(!page.contains("evil.example"));
        assert!(!page.contains("body{}</style>"));
        assert!(page.contains("src=\"hosted/abc\""));
        assert!(page.contains("href=\"https://example.com/\""));
        assert!(page.contains("Ann &lt;admin&gt;"));
        assert!(page.contains("Team &amp; Co › Gen&lt;eral&gt;"));
        assert!(page.contains("plan&lt;1&gt;.docx"));
        assert!(page.contains("This message was deleted."));
        assert!(page.contains("1 reply"));
    }

    #[test]
    fn plain_text_bodies_are_escaped() {
        let root = message(serde_json::json!({
            "id": "1", "body": {"contentType": "text", "content": "<img src=x onerror=alert(1)>\nline"}
        }));
        let page = thread_html("T", &channel(), &root, &[], &HostedFiles::new());
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;<br>line"));
    }
}
