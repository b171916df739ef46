//! RFC 5322/MIME for the simulated mailboxes: renders a message as Exchange exports it through
//! `/$value` (multipart/mixed > related > alternative, quoted-printable text, base64 parts,
//! RFC 2047 headers), and reads an uploaded MIME message into the simulator's message fields.
//! It must never decide folders, ids or drafts: callers do.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};

use super::generate::{
    AttachmentBytes, AttachmentSpec, MailAddress, MessageMeta, hash, pool_bytes,
};

/// The bytes of an attachment.
pub fn attachment_bytes(seed: u64, spec: &AttachmentSpec) -> Arc<Vec<u8>> {
    match &spec.bytes {
        AttachmentBytes::Pool(pool) => Arc::new(pool_bytes(seed, *pool)),
        AttachmentBytes::Stored(bytes) => bytes.clone(),
    }
}

fn encode_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!(
            "=?utf-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

fn address_header(list: &[MailAddress]) -> String {
    list.iter()
        .map(|a| {
            if a.name.is_empty() {
                format!("<{}>", a.address)
            } else if a.name.is_ascii() {
                format!("\"{}\" <{}>", a.name, a.address)
            } else {
                format!("{} <{}>", encode_word(&a.name), a.address)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted_printable(text: &str) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for line in text.split("\r\n") {
        for &byte in line.as_bytes() {
            let piece = if (byte.is_ascii_graphic() && byte != b'=') || byte == b' ' {
                (byte as char).to_string()
            } else {
                format!("={byte:02X}")
            };
            if line_len + piece.len() > 75 {
                out.push_str("=\r\n");
                line_len = 0;
            }
            line_len += piece.len();
            out.push_str(&piece);
        }
        out.push_str("\r\n");
        line_len = 0;
    }
    out
}

fn base64_lines(bytes: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

fn rfc2822(date: DateTime<Utc>) -> String {
    date.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// Renders a message as RFC 822/MIME (deterministic: boundaries come from the message id).
pub fn render(seed: u64, meta: &MessageMeta) -> Vec<u8> {
    let tag = hash(&[
        seed,
        meta.internet_message_id.len() as u64,
        meta.conversation_id,
        meta.received.timestamp() as u64,
    ]);
    let boundary = |level: u32| format!("_{level:03}_SIM{tag:016X}_");
    let mut out = String::new();
    out.push_str(&format!(
        "From: {}\r\n",
        address_header(std::slice::from_ref(&meta.from))
    ));
    if !meta.to.is_empty() {
        out.push_str(&format!("To: {}\r\n", address_header(&meta.to)));
    }
    if !meta.cc.is_empty() {
        out.push_str(&format!("CC: {}\r\n", address_header(&meta.cc)));
    }
    out.push_str(&format!("Subject: {}\r\n", encode_word(&meta.subject)));
    out.push_str(&format!(
        "Thread-Topic: {}\r\n",
        encode_word(meta.subject.trim_start_matches("RE: "))
    ));
    out.push_str(&format!("Date: {}\r\n", rfc2822(meta.sent)));
    out.push_str(&format!("Message-ID: {}\r\n", meta.internet_message_id));
    if let Some(parent) = &meta.in_reply_to {
        out.push_str(&format!(
            "In-Reply-To: {parent}\r\nReferences: {parent}\r\n"
        ));
    }
    if meta.importance == "high" {
        out.push_str("Importance: high\r\nX-Priority: 1\r\n");
    }
    out.push_str("Content-Language: en-US\r\nX-MS-Has-Attach: ");
    let attachments: Vec<&AttachmentSpec> =
        meta.attachments.iter().filter(|a| !a.is_inline).collect();
    let inline: Vec<&AttachmentSpec> = meta.attachments.iter().filter(|a| a.is_inline).collect();
    out.push_str(if attachments.is_empty() {
        "\r\n"
    } else {
        "yes\r\n"
    });
    out.push_str("MIME-Version: 1.0\r\n");

    let alternative = format!(
        "Content-Type: multipart/alternative;\r\n\tboundary=\"{b}\"\r\n\r\n--{b}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{text}\r\n--{b}\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{html}\r\n--{b}--\r\n",
        b = boundary(3),
        text = quoted_printable(&meta.body_text),
        html = quoted_printable(&meta.body_html),
    );
    let related = if inline.is_empty() {
        alternative
    } else {
        let b = boundary(2);
        let mut part = format!(
            "Content-Type: multipart/related;\r\n\tboundary=\"{b}\";\r\n\ttype=\"multipart/alternative\"\r\n\r\n--{b}\r\n{alternative}"
        );
        for spec in inline {
            part.push_str(&format!("\r\n--{b}\r\n{}", attachment_part(seed, spec)));
        }
        part.push_str(&format!("\r\n--{b}--\r\n"));
        part
    };
    if attachments.is_empty() {
        out.push_str(&related);
    } else {
        let b = boundary(1);
        out.push_str(&format!(
            "Content-Type: multipart/mixed;\r\n\tboundary=\"{b}\"\r\n\r\n--{b}\r\n{related}"
        ));
        for spec in attachments {
            out.push_str(&format!("\r\n--{b}\r\n{}", attachment_part(seed, spec)));
        }
        out.push_str(&format!("\r\n--{b}--\r\n"));
    }
    out.into_bytes()
}

fn attachment_part(seed: u64, spec: &AttachmentSpec) -> String {
    let bytes = attachment_bytes(seed, spec);
    let name = encode_word(&spec.name);
    let disposition = if spec.is_inline {
        "inline"
    } else {
        "attachment"
    };
    let mut part = format!(
        "Content-Type: {}; name=\"{name}\"\r\nContent-Description: {name}\r\nContent-Disposition: {disposition}; filename=\"{name}\"; size={}\r\nContent-Transfer-Encoding: base64\r\n",
        spec.content_type,
        bytes.len()
    );
    if let Some(cid) = &spec.content_id {
        part.push_str(&format!("Content-ID: <{cid}>\r\n"));
    }
    part.push_str("\r\n");
    part.push_str(&base64_lines(&bytes));
    part
}

/// Why an uploaded MIME message was refused.
#[derive(Debug, thiserror::Error)]
pub enum MimeError {
    #[error("Invalid base64 string for MIME content.")]
    InvalidBase64,
    #[error("The MIME content could not be parsed.")]
    Unparseable,
}

/// Decodes `POST .../messages` with `Content-Type: text/plain` (base64 of the MIME message).
pub fn decode_base64_mime(body: &[u8]) -> Result<Vec<u8>, MimeError> {
    let cleaned: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if cleaned.is_empty() {
        return Err(MimeError::InvalidBase64);
    }
    base64::engine::general_purpose::STANDARD
        .decode(&cleaned)
        .map_err(|_| MimeError::InvalidBase64)
}

fn addresses(list: Option<&mail_parser::Address<'_>>) -> Vec<MailAddress> {
    list.map(|address| {
        address
            .iter()
            .filter_map(|a| {
                a.address().map(|addr| MailAddress {
                    name: a.name().unwrap_or_default().to_owned(),
                    address: addr.to_owned(),
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Reads the fields Graph derives from a MIME message. `now` is used when the message has no date.
pub fn parse(raw: &[u8], now: DateTime<Utc>) -> Result<MessageMeta, MimeError> {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or(MimeError::Unparseable)?;
    if message.headers().is_empty() {
        return Err(MimeError::Unparseable);
    }
    let sent = message
        .date()
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
        .unwrap_or(now);
    let mut attachments = Vec::new();
    for part in message.attachments() {
        use mail_parser::MimeHeaders;
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_owned(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        attachments.push(AttachmentSpec {
            name: part.attachment_name().unwrap_or("attachment").to_owned(),
            content_type,
            bytes: AttachmentBytes::Stored(Arc::new(part.contents().to_vec())),
            is_inline: part
                .content_disposition()
                .is_some_and(|d| d.ctype() == "inline"),
            content_id: part.content_id().map(str::to_owned),
        });
    }
    let body_text = message
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let body_html = message
        .body_html(0)
        .map(|t| t.into_owned())
        .unwrap_or_else(|| {
            format!(
                "<html><body><pre>{}</pre></body></html>",
                super::generate::html_escape(&body_text)
            )
        });
    let from = addresses(message.from())
        .into_iter()
        .next()
        .unwrap_or(MailAddress {
            name: String::new(),
            address: String::new(),
        });
    Ok(MessageMeta {
        subject: message.subject().unwrap_or_default().to_owned(),
        from,
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        received: sent,
        sent,
        body_html,
        body_text,
        internet_message_id: message
            .message_id()
            .map(|id| format!("<{id}>"))
            .unwrap_or_else(|| {
                format!(
                    "<{:x}@simulator>",
                    hash(&[raw.len() as u64, sent.timestamp() as u64])
                )
            }),
        conversation_id: hash(&[
            message.subject().unwrap_or_default().len() as u64,
            sent.timestamp() as u64,
        ]),
        in_reply_to: message.in_reply_to().as_text().map(|id| format!("<{id}>")),
        is_read: false,
        is_draft: true,
        importance: "normal".to_owned(),
        categories: Vec::new(),
        attachments,
        flagged: false,
    })
}
