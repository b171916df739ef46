//! The content of a mailbox item, whatever its type (message, event, contact, task, note), and the
//! simulator's own opaque full-fidelity stream that `exportItems` hands out and an import session
//! takes back. The stream stands in for Exchange's FastTransfer stream: it carries every property
//! needed to re-create the item exactly (content, flags, categories, read state, dates, message
//! class) and nothing about the folder it lives in; it is deliberately not MIME.
//!
//! Stream layout (before base64): `SVFT` magic, version byte `1`, one byte of message-class tag,
//! a big-endian u64 check of the payload, then the payload (the record as JSON). A stream whose
//! magic, version, tag or check does not match is refused as corrupt.
//! This module never decides ids, folders or versions.

use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::generate::{self, AttachmentBytes, MailAddress, MessageMeta};

const MAGIC: &[u8; 4] = b"SVFT";
const VERSION: u8 = 1;

/// One mailbox item's full content, independent of its folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRecord {
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub categories: Vec<String>,
    pub content: Content,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Content {
    Message(MessageMeta),
    Event(EventRecord),
    Contact(ContactRecord),
    Task(TaskRecord),
    Note(NoteRecord),
}

impl Content {
    /// The Exchange message class (`mailboxItem.type`).
    pub fn class(&self) -> &'static str {
        match self {
            Content::Message(_) => "IPM.Note",
            Content::Event(_) => "IPM.Appointment",
            Content::Contact(_) => "IPM.Contact",
            Content::Task(_) => "IPM.Task",
            Content::Note(_) => "IPM.StickyNote",
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Content::Message(_) => 1,
            Content::Event(_) => 2,
            Content::Contact(_) => 3,
            Content::Task(_) => 4,
            Content::Note(_) => 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attendee {
    pub address: MailAddress,
    /// `required`, `optional` or `resource`.
    pub kind: String,
    /// `none`, `accepted`, `tentativelyAccepted`, `declined`, `notResponded`.
    pub response: String,
}

/// A weekly or daily recurrence as Graph's `patternedRecurrence` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    /// `daily` or `weekly`.
    pub pattern: String,
    pub interval: u32,
    pub days_of_week: Vec<String>,
    pub start_date: NaiveDate,
    /// `endDate`, `numbered` or `noEnd`.
    pub range: String,
    pub end_date: Option<NaiveDate>,
    pub occurrences: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    pub subject: String,
    pub body_html: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub is_all_day: bool,
    pub location: String,
    pub organizer: MailAddress,
    pub attendees: Vec<Attendee>,
    pub recurrence: Option<Recurrence>,
    pub show_as: String,
    pub importance: String,
    pub sensitivity: String,
    pub reminder_minutes: Option<i32>,
    pub ical_uid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactRecord {
    pub given_name: String,
    pub surname: String,
    pub display_name: String,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    pub email_addresses: Vec<MailAddress>,
    pub business_phones: Vec<String>,
    pub home_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub personal_notes: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRecord {
    pub subject: String,
    pub body_text: String,
    /// `notStarted`, `inProgress` or `completed`.
    pub status: String,
    pub importance: String,
    pub due: Option<DateTime<Utc>>,
    pub completed: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRecord {
    pub text: String,
    pub color: String,
}

/// Why an import stream was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    #[error("the data is not valid base64")]
    Base64,
    #[error("the data is not an exported item stream")]
    Corrupt,
}

/// Encodes a record as the base64 text `exportItems` returns in `data`.
pub fn encode(record: &ItemRecord) -> String {
    let payload = serde_json::to_vec(record).unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(record.content.tag());
    out.extend_from_slice(&check(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Decodes `Data` of an import request.
pub fn decode(data: &str) -> Result<ItemRecord, StreamError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| StreamError::Base64)?;
    if bytes.len() < 14 || &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return Err(StreamError::Corrupt);
    }
    let expected = u64::from_be_bytes(bytes[6..14].try_into().map_err(|_| StreamError::Corrupt)?);
    let payload = &bytes[14..];
    if check(payload) != expected {
        return Err(StreamError::Corrupt);
    }
    let record: ItemRecord = serde_json::from_slice(payload).map_err(|_| StreamError::Corrupt)?;
    if record.content.tag() != bytes[5] {
        return Err(StreamError::Corrupt);
    }
    Ok(record)
}

fn check(payload: &[u8]) -> u64 {
    payload.chunks(8).fold(0x5356_4654, |acc, chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        generate::hash(&[acc, u64::from_be_bytes(word), chunk.len() as u64])
    })
}

/// A message's record: company documents attached are materialised, so the stream carries
/// every byte and imports elsewhere lose nothing.
pub fn from_message(seed: u64, meta: &MessageMeta, modified: DateTime<Utc>) -> ItemRecord {
    let mut message = meta.clone();
    for attachment in &mut message.attachments {
        if matches!(attachment.bytes, AttachmentBytes::Pool(_)) {
            attachment.bytes =
                AttachmentBytes::Stored(super::mime::attachment_bytes(seed, attachment));
        }
    }
    ItemRecord {
        created: meta.received,
        modified,
        categories: meta.categories.clone(),
        content: Content::Message(message),
    }
}

/// The message fields of a message record (the header's categories are the item's).
pub fn to_message(record: &ItemRecord, message: &MessageMeta) -> MessageMeta {
    MessageMeta {
        categories: record.categories.clone(),
        ..message.clone()
    }
}

/// The length Exchange would report as `size`, without materialising attachments.
pub fn approximate_message_size(seed: u64, meta: &MessageMeta) -> u64 {
    let attachments: u64 = meta
        .attachments
        .iter()
        .map(|a| match &a.bytes {
            AttachmentBytes::Stored(bytes) => bytes.len() as u64,
            AttachmentBytes::Pool(pool) => {
                6_000 + generate::hash(&[seed, 13, *pool as u64]) % 60_000
            }
        })
        .sum();
    (meta.subject.len() + meta.body_html.len() + meta.body_text.len()) as u64 + attachments + 1_024
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> ItemRecord {
        ItemRecord {
            created: generate::content_epoch(),
            modified: generate::content_epoch(),
            categories: vec!["Red category".to_owned()],
            content: Content::Note(NoteRecord {
                text: "Call Zoë about the café".to_owned(),
                color: "yellow".to_owned(),
            }),
        }
    }

    #[test]
    fn a_stream_decodes_to_the_same_record() {
        let record = note();
        let decoded = decode(&encode(&record)).map(|r| serde_json::to_value(r).unwrap());
        assert_eq!(decoded, Ok(serde_json::to_value(record).unwrap()));
    }

    #[test]
    fn a_changed_byte_or_foreign_data_is_refused() {
        let encoded = encode(&note());
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(&encoded)
            .unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        let tampered = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(decode(&tampered).err(), Some(StreamError::Corrupt));
        assert_eq!(decode("not base64!").err(), Some(StreamError::Base64));
        let mime = base64::engine::general_purpose::STANDARD.encode("From: a@b\r\n\r\nhi");
        assert_eq!(decode(&mime).err(), Some(StreamError::Corrupt));
    }
}
