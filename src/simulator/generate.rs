//! Deterministic tenant content from a seed: people, groups, sites, and — lazily, one item at a
//! time — messages and files. Nothing here keeps state: the same (seed, owner, key) always gives
//! the same bytes, so a tenant of a million messages costs no memory until something changes it.
//! Content is deliberately shared the way a real company shares it (all-staff mail, forwarded
//! attachments, copies of the same document) so deduplication has something to find.
//! This module must never read the clock or the tenant's mutable state.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// All generated dates count back from this instant, so content does not depend on when it runs.
pub fn content_epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A hash of several numbers: the root of every generated choice.
pub fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x5EED_u64, |acc, part| splitmix(acc ^ splitmix(*part)))
}

/// A small deterministic random stream (no allocation, no global state).
#[derive(Debug, Clone)]
pub struct Stream(u64);

impl Stream {
    pub fn new(parts: &[u64]) -> Self {
        Self(hash(parts))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn percent(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn uuid(&mut self) -> Uuid {
        let bytes = ((self.next_u64() as u128) << 64) | self.next_u64() as u128;
        uuid::Builder::from_random_bytes(bytes.to_be_bytes()).into_uuid()
    }
}

const GIVEN: &[&str] = &[
    "Adele",
    "Alex",
    "Allan",
    "Diego",
    "Grady",
    "Henrietta",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Zoë",
    "José",
    "Łukasz",
    "Søren",
    "Chloé",
    "Björn",
    "Anaïs",
    "Renée",
    "Tomás",
    "Ngozi",
    "Yuki",
    "Priya",
    "Mateo",
    "Fatima",
    "Olivia",
];
const SURNAMES: &[&str] = &[
    "Vance",
    "Wilber",
    "Deyoung",
    "Soto",
    "Archie",
    "Cerveny",
    "Langer",
    "Lauer",
    "Sherman",
    "Gu",
    "Holloway",
    "Robbins",
    "Bowen",
    "Graham",
    "Wilke",
    "Fernandez",
    "Gupta",
    "Müller",
    "Núñez",
    "Kowalczyk",
    "Østergaard",
    "Dubois",
    "Åberg",
    "Okafor",
    "Tanaka",
    "Iyer",
    "García",
    "Haddad",
];
const JOBS: &[(&str, &str)] = &[
    ("Sales", "Account Manager"),
    ("Sales", "Sales Director"),
    ("Finance", "Accountant"),
    ("Finance", "Controller"),
    ("Engineering", "Software Engineer"),
    ("Engineering", "Engineering Manager"),
    ("Marketing", "Marketing Specialist"),
    ("Legal", "Counsel"),
    ("Operations", "Operations Lead"),
    ("Human Resources", "HR Partner"),
];
const OFFICES: &[&str] = &["12/1110", "18/2111", "20/1101", "131/1104", "Remote"];
const TOPICS: &[&str] = &[
    "Mark 8",
    "Contoso Pharmaceuticals",
    "Retail",
    "Digital Initiative",
    "Sales and Marketing",
    "Finance Team",
    "Legal Review",
    "Product Launch",
    "Engineering",
    "Design",
    "Europe Expansion",
    "Customer Success",
    "Workplace",
    "Security",
    "Northwind Deal",
    "Fabrikam Partnership",
];
const WORDS: &[&str] = &[
    "budget",
    "forecast",
    "review",
    "customer",
    "launch",
    "timeline",
    "contract",
    "proposal",
    "meeting",
    "quarter",
    "revenue",
    "design",
    "prototype",
    "feedback",
    "schedule",
    "invoice",
    "résumé",
    "naïve",
    "café",
    "roadmap",
    "milestone",
    "deliverable",
    "team",
    "partner",
    "update",
    "draft",
    "approval",
    "strategy",
    "analysis",
    "report",
    "pipeline",
    "Zürich",
    "São Paulo",
];

/// Lower-case ASCII form of a name for addresses (`Zoë` → `zoe`).
pub fn ascii_fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        let folded = match ch {
            'à' | 'á' | 'â' | 'ä' | 'å' | 'Å' | 'Á' | 'À' => "a",
            'ç' => "c",
            'è' | 'é' | 'ê' | 'ë' | 'É' => "e",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'ñ' => "n",
            'ò' | 'ó' | 'ô' | 'ö' | 'ø' | 'Ø' => "o",
            'ù' | 'ú' | 'û' | 'ü' => "u",
            'ł' | 'Ł' => "l",
            _ if ch.is_ascii_alphanumeric() => {
                out.push(ch.to_ascii_lowercase());
                continue;
            }
            _ => continue,
        };
        out.push_str(folded);
    }
    out
}

/// A generated person: the directory fields of user `index` of a tenant.
#[derive(Debug, Clone)]
pub struct Person {
    pub given_name: String,
    pub surname: String,
    pub display_name: String,
    pub nickname: String,
    pub department: String,
    pub job_title: String,
    pub office: String,
    pub mobile_phone: String,
    pub business_phone: String,
}

pub fn person(seed: u64, index: u32, organization: &str) -> Person {
    if index == 0 {
        return Person {
            given_name: organization.to_owned(),
            surname: "Administrator".to_owned(),
            display_name: format!("{organization} Administrator"),
            nickname: "admin".to_owned(),
            department: "IT".to_owned(),
            job_title: "Global Administrator".to_owned(),
            office: OFFICES[0].to_owned(),
            mobile_phone: "+1 425 555 0100".to_owned(),
            business_phone: "+1 425 555 0101".to_owned(),
        };
    }
    let mut rng = Stream::new(&[seed, 1, index as u64]);
    let given = *rng.pick(GIVEN);
    let surname = *rng.pick(SURNAMES);
    let (department, job) = *rng.pick(JOBS);
    // The index keeps nicknames unique however the names collide.
    let nickname = format!("{}.{}{}", ascii_fold(given), ascii_fold(surname), index);
    Person {
        given_name: given.to_owned(),
        surname: surname.to_owned(),
        display_name: format!("{given} {surname}"),
        nickname,
        department: department.to_owned(),
        job_title: job.to_owned(),
        office: rng.pick(OFFICES).to_string(),
        mobile_phone: format!("+1 425 555 {:04}", rng.below(10_000)),
        business_phone: format!("+1 425 555 {:04}", rng.below(10_000)),
    }
}

/// Name of Microsoft 365 group `index` (also the name of its site).
pub fn group_name(seed: u64, index: u32) -> (String, String) {
    let topic = TOPICS[(index as usize) % TOPICS.len()];
    let round = index as usize / TOPICS.len();
    let display = if round == 0 {
        topic.to_owned()
    } else {
        format!("{topic} {}", round + 1)
    };
    let _ = seed;
    let nickname = display
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>();
    (display, nickname)
}

pub fn communication_site_name(index: u32) -> (String, String) {
    const NAMES: &[&str] = &[
        "Company News",
        "Human Resources",
        "Brand Central",
        "IT Help Desk",
        "Benefits",
    ];
    let base = NAMES[(index as usize) % NAMES.len()];
    let round = index as usize / NAMES.len();
    let display = if round == 0 {
        base.to_owned()
    } else {
        format!("{base} {}", round + 1)
    };
    let url = display
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>();
    (display, url)
}

pub fn words(rng: &mut Stream, count: usize) -> String {
    let mut out = String::new();
    for i in 0..count {
        if i > 0 {
            out.push(' ');
        }
        let word: &&str = rng.pick(WORDS);
        out.push_str(word);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Mail

/// Folder keys of the generated mailbox layout (stable across runs; ids are derived from them).
pub mod folder {
    pub const ROOT: u16 = 0;
    pub const INBOX: u16 = 1;
    pub const DRAFTS: u16 = 2;
    pub const SENT: u16 = 3;
    pub const DELETED: u16 = 4;
    pub const JUNK: u16 = 5;
    pub const OUTBOX: u16 = 6;
    pub const ARCHIVE: u16 = 7;
    pub const CONVERSATION_HISTORY: u16 = 8;
    pub const PROJECTS: u16 = 9;
    pub const PROJECTS_2025: u16 = 10;
    pub const RECEIPTS: u16 = 11;
    pub const HIDDEN_SETTINGS: u16 = 12;
    /// Folders created later get keys from here.
    pub const FIRST_CREATED: u16 = 100;
}

/// A folder of the generated layout: (key, parent, display name, well-known name, hidden).
pub const FOLDERS: &[(u16, u16, &str, Option<&str>, bool)] = &[
    (
        folder::ROOT,
        folder::ROOT,
        "Top of Information Store",
        Some("msgfolderroot"),
        false,
    ),
    (folder::INBOX, folder::ROOT, "Inbox", Some("inbox"), false),
    (
        folder::DRAFTS,
        folder::ROOT,
        "Drafts",
        Some("drafts"),
        false,
    ),
    (
        folder::SENT,
        folder::ROOT,
        "Sent Items",
        Some("sentitems"),
        false,
    ),
    (
        folder::DELETED,
        folder::ROOT,
        "Deleted Items",
        Some("deleteditems"),
        false,
    ),
    (
        folder::JUNK,
        folder::ROOT,
        "Junk Email",
        Some("junkemail"),
        false,
    ),
    (
        folder::OUTBOX,
        folder::ROOT,
        "Outbox",
        Some("outbox"),
        false,
    ),
    (
        folder::ARCHIVE,
        folder::ROOT,
        "Archive",
        Some("archive"),
        false,
    ),
    (
        folder::CONVERSATION_HISTORY,
        folder::ROOT,
        "Conversation History",
        Some("conversationhistory"),
        false,
    ),
    (folder::PROJECTS, folder::INBOX, "Projects", None, false),
    (folder::PROJECTS_2025, folder::PROJECTS, "2025", None, false),
    (
        folder::RECEIPTS,
        folder::INBOX,
        "Reçus & factures",
        None,
        false,
    ),
    (
        folder::HIDDEN_SETTINGS,
        folder::ROOT,
        "Conversation Action Settings",
        None,
        true,
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailAddress {
    pub name: String,
    pub address: String,
}

/// Where an attachment's bytes come from.
#[derive(Debug, Clone)]
pub enum AttachmentBytes {
    /// One of the company's shared documents: the same bytes wherever it is attached.
    Pool(u32),
    Stored(Arc<Vec<u8>>),
}

/// Serialised as base64 of the bytes. A company document has no bytes of its own here (they
/// depend on the tenant's seed): callers materialise it first, and serialising one fails.
impl Serialize for AttachmentBytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        match self {
            AttachmentBytes::Stored(bytes) => serializer
                .serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes.as_slice())),
            AttachmentBytes::Pool(_) => Err(serde::ser::Error::custom(
                "company documents are materialised before serialising",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for AttachmentBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(|bytes| AttachmentBytes::Stored(Arc::new(bytes)))
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentSpec {
    pub name: String,
    pub content_type: String,
    pub bytes: AttachmentBytes,
    pub is_inline: bool,
    pub content_id: Option<String>,
}

/// Everything about a message except its folder; generated or created, rendered to JSON and MIME.
/// Serialisable for the mailbox export stream (`record`), where attachments travel as base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageMeta {
    pub subject: String,
    pub from: MailAddress,
    pub to: Vec<MailAddress>,
    pub cc: Vec<MailAddress>,
    pub received: DateTime<Utc>,
    pub sent: DateTime<Utc>,
    pub body_html: String,
    pub body_text: String,
    pub internet_message_id: String,
    pub conversation_id: u64,
    pub in_reply_to: Option<String>,
    pub is_read: bool,
    pub is_draft: bool,
    pub importance: String,
    pub categories: Vec<String>,
    pub attachments: Vec<AttachmentSpec>,
    pub flagged: bool,
}

/// What a generated mailbox needs to know about its owner and tenant.
#[derive(Debug, Clone)]
pub struct MailboxContext {
    pub seed: u64,
    pub user_index: u32,
    pub user_count: u32,
    pub owner: MailAddress,
    pub domain: String,
    pub organization: String,
}

const ALL_STAFF_EVERY: u32 = 25;
const SHARED_ATTACHMENTS: u32 = 24;

/// Whether a generated message starts read (cheap: folder counts ask this for every key).
pub fn generated_is_read(seed: u64, user_index: u32, key: u32) -> bool {
    key.is_multiple_of(ALL_STAFF_EVERY)
        || hash(&[seed, 10, user_index as u64, key as u64]) % 100 < 70
}

/// The folder a generated message starts in (cheap: listing a folder asks this for every key).
pub fn generated_folder(seed: u64, user_index: u32, key: u32) -> u16 {
    if key.is_multiple_of(ALL_STAFF_EVERY) {
        return folder::INBOX;
    }
    match hash(&[seed, 7, user_index as u64, key as u64]) % 100 {
        0..=59 => folder::INBOX,
        60..=74 => folder::SENT,
        75..=83 => folder::ARCHIVE,
        84..=90 => folder::PROJECTS,
        91..=93 => folder::PROJECTS_2025,
        94..=95 => folder::RECEIPTS,
        96..=97 => folder::DELETED,
        _ => folder::JUNK,
    }
}

fn address_of(ctx: &MailboxContext, index: u32) -> MailAddress {
    let person = person(ctx.seed, index, &ctx.organization);
    MailAddress {
        name: person.display_name,
        address: format!("{}@{}", person.nickname, ctx.domain),
    }
}

fn message_id(seed: u64, parts: &[u64], domain: &str) -> String {
    let mut all = vec![seed, 11];
    all.extend_from_slice(parts);
    format!(
        "<{:016x}{:04x}@{}>",
        hash(&all),
        parts.len(),
        domain.replace(".onmicrosoft.com", ".mail.onmicrosoft.com")
    )
}

/// Generated message `key` of a mailbox.
pub fn generated_message(ctx: &MailboxContext, key: u32) -> MessageMeta {
    let epoch = content_epoch();
    if key.is_multiple_of(ALL_STAFF_EVERY) {
        return all_staff_message(ctx, key, epoch);
    }
    let mut rng = Stream::new(&[ctx.seed, 3, ctx.user_index as u64, key as u64]);
    let folder = generated_folder(ctx.seed, ctx.user_index, key);
    let colleague = if ctx.user_count > 1 {
        let mut other = rng.below(ctx.user_count as u64) as u32;
        if other == ctx.user_index {
            other = (other + 1) % ctx.user_count;
        }
        address_of(ctx, other)
    } else {
        MailAddress {
            name: "Northwind Traders".into(),
            address: "orders@northwindtraders.example".into(),
        }
    };
    let (from, to) = if folder == folder::SENT {
        (ctx.owner.clone(), vec![colleague])
    } else if folder == folder::JUNK {
        (
            MailAddress {
                name: "Prize Département".into(),
                address: "winner@lottery.example".into(),
            },
            vec![ctx.owner.clone()],
        )
    } else {
        (colleague, vec![ctx.owner.clone()])
    };
    // Threads: three consecutive keys share a conversation; later ones are replies.
    let thread = key / 3;
    let position = key % 3;
    let mut topic_rng = Stream::new(&[ctx.seed, 4, ctx.user_index as u64, thread as u64]);
    let topic = topic_rng.pick(TOPICS).to_string();
    let base_subject = format!("{} {}", topic, words(&mut topic_rng, 3));
    let subject = if position == 0 {
        base_subject.clone()
    } else {
        format!("RE: {base_subject}")
    };
    let minutes = key as i64 * 437 + rng.below(120) as i64;
    let received = epoch - Duration::minutes(minutes);
    let sent = received - Duration::seconds(5 + rng.below(50) as i64);
    let length = 24 + rng.below(60) as usize;
    let paragraph = words(&mut rng, length);
    let greeting = to
        .first()
        .map(|a| a.name.split(' ').next().unwrap_or("").to_owned())
        .unwrap_or_default();
    let body_text = format!(
        "Hi {greeting},\r\n\r\n{paragraph}.\r\n\r\nBest regards,\r\n{}\r\n",
        from.name
    );
    let inline_logo = rng.percent(30);
    let mut attachments = Vec::new();
    if inline_logo {
        attachments.push(AttachmentSpec {
            name: "image001.png".into(),
            content_type: "image/png".into(),
            bytes: AttachmentBytes::Pool(u32::MAX),
            is_inline: true,
            content_id: Some(format!("image001.png@{:08x}", hash(&[ctx.seed, 5]) as u32)),
        });
    }
    if rng.percent(25) {
        let pool = rng.below(SHARED_ATTACHMENTS as u64) as u32;
        let (name, content_type) = pool_document_name(pool);
        attachments.push(AttachmentSpec {
            name,
            content_type,
            bytes: AttachmentBytes::Pool(pool),
            is_inline: false,
            content_id: None,
        });
    }
    let logo_html = match attachments.first().and_then(|a| a.content_id.as_ref()) {
        Some(cid) => {
            format!("<p><img src=\"cid:{cid}\" alt=\"logo\" width=\"64\" height=\"16\"></p>")
        }
        None => String::new(),
    };
    let body_html = format!(
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><div dir=\"ltr\"><p>Hi {greeting},</p><p>{paragraph}.</p><p>Best regards,<br>{}</p>{logo_html}</div></body></html>",
        html_escape(&from.name)
    );
    let in_reply_to = (position > 0).then(|| {
        message_id(
            ctx.seed,
            &[ctx.user_index as u64, key as u64 - 1],
            &ctx.domain,
        )
    });
    MessageMeta {
        subject,
        from,
        to,
        cc: Vec::new(),
        received,
        sent,
        body_html,
        body_text,
        internet_message_id: message_id(
            ctx.seed,
            &[ctx.user_index as u64, key as u64],
            &ctx.domain,
        ),
        conversation_id: hash(&[ctx.seed, 6, ctx.user_index as u64, thread as u64]),
        in_reply_to,
        is_read: generated_is_read(ctx.seed, ctx.user_index, key),
        is_draft: false,
        importance: if rng.percent(5) {
            "high".into()
        } else {
            "normal".into()
        },
        categories: if rng.percent(10) {
            vec!["Blue category".into()]
        } else {
            Vec::new()
        },
        attachments,
        flagged: rng.percent(5),
    }
}

/// Company-wide mail: the same message, byte for byte, in every mailbox.
fn all_staff_message(ctx: &MailboxContext, key: u32, epoch: DateTime<Utc>) -> MessageMeta {
    let mut rng = Stream::new(&[ctx.seed, 8, key as u64]);
    let subject = format!("[All staff] {} — {}", rng.pick(TOPICS), words(&mut rng, 2));
    let paragraph = words(&mut rng, 80);
    let pool = rng.below(SHARED_ATTACHMENTS as u64) as u32;
    let (name, content_type) = pool_document_name(pool);
    let ceo = address_of(ctx, 0);
    let received = epoch - Duration::minutes(key as i64 * 437);
    MessageMeta {
        subject,
        from: ceo.clone(),
        to: vec![MailAddress {
            name: "All Company".into(),
            address: format!("allcompany@{}", ctx.domain),
        }],
        cc: Vec::new(),
        received,
        sent: received - Duration::seconds(3),
        body_html: format!(
            "<html><body><h1>Company update</h1><p>{paragraph}.</p><p>Thank you,<br>{}</p></body></html>",
            html_escape(&ceo.name)
        ),
        body_text: format!(
            "Company update\r\n\r\n{paragraph}.\r\n\r\nThank you,\r\n{}\r\n",
            ceo.name
        ),
        internet_message_id: message_id(ctx.seed, &[u64::MAX, key as u64], &ctx.domain),
        conversation_id: hash(&[ctx.seed, 9, key as u64]),
        in_reply_to: None,
        is_read: true,
        is_draft: false,
        importance: "normal".into(),
        categories: Vec::new(),
        attachments: vec![AttachmentSpec {
            name,
            content_type,
            bytes: AttachmentBytes::Pool(pool),
            is_inline: false,
            content_id: None,
        }],
        flagged: false,
    }
}

pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------------------------
// Documents shared by the whole company (attachments and file copies)

const POOL_DOCUMENTS: &[(&str, FileKind)] = &[
    ("Employee Handbook 2026", FileKind::Docx),
    ("Q3 Budget", FileKind::Xlsx),
    ("Brand Guidelines", FileKind::Pdf),
    ("Sales Playbook", FileKind::Docx),
    ("Travel Policy", FileKind::Pdf),
    ("Org Chart", FileKind::Png),
    ("Price List", FileKind::Csv),
    ("Board Minutes", FileKind::Docx),
];

pub fn pool_document_name(pool: u32) -> (String, String) {
    let (base, kind) = POOL_DOCUMENTS[(pool as usize) % POOL_DOCUMENTS.len()];
    let round = pool as usize / POOL_DOCUMENTS.len();
    let name = if round == 0 {
        format!("{base}.{}", kind.extension())
    } else {
        format!("{base} v{}.{}", round + 1, kind.extension())
    };
    (name, kind.mime_type().to_owned())
}

/// Bytes of a company document (or the inline logo for `u32::MAX`).
pub fn pool_bytes(seed: u64, pool: u32) -> Vec<u8> {
    if pool == u32::MAX {
        return png(hash(&[seed, 12]), 64, 16);
    }
    let (_, kind) = POOL_DOCUMENTS[(pool as usize) % POOL_DOCUMENTS.len()];
    let size = 6_000 + (hash(&[seed, 13, pool as u64]) % 60_000) as u32;
    file_bytes(kind, hash(&[seed, 14, pool as u64]), size)
}

// ---------------------------------------------------------------------------------------------
// Files

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Docx,
    Xlsx,
    Pdf,
    Png,
    Csv,
    Txt,
}

impl FileKind {
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Docx => "docx",
            FileKind::Xlsx => "xlsx",
            FileKind::Pdf => "pdf",
            FileKind::Png => "png",
            FileKind::Csv => "csv",
            FileKind::Txt => "txt",
        }
    }
    pub fn mime_type(self) -> &'static str {
        match self {
            FileKind::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            FileKind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            FileKind::Pdf => "application/pdf",
            FileKind::Png => "image/png",
            FileKind::Csv => "text/csv",
            FileKind::Txt => "text/plain",
        }
    }
}

/// Generated folders of every drive: (key, parent key, name). Key 0 is the root.
pub const DRIVE_FOLDERS: &[(u32, u32, &str)] = &[
    (1, 0, "Projects"),
    (2, 0, "Shared"),
    (3, 1, "Archive 2025"),
    (4, 0, "Reports"),
];
pub const FIRST_FILE_KEY: u32 = 16;

#[derive(Debug, Clone)]
pub struct FileSpec {
    pub name: String,
    pub parent: u32,
    pub kind: FileKind,
    pub content_seed: u64,
    pub target_size: u32,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

/// Generated file `key` (≥ `FIRST_FILE_KEY`) of drive `drive`.
pub fn generated_file(seed: u64, drive: u32, key: u32, max_size: u32) -> FileSpec {
    let mut rng = Stream::new(&[seed, 20, drive as u64, key as u64]);
    let parent = match rng.below(10) {
        0..=3 => 0,
        4..=5 => 1,
        6 => 2,
        7 => 3,
        _ => 4,
    };
    let created = content_epoch() - Duration::minutes(key as i64 * 611 + rng.below(600) as i64);
    let modified = created + Duration::minutes(rng.below(5_000) as i64);
    // A quarter of all files are copies of company documents: same name, same bytes.
    if rng.percent(25) {
        let pool = rng.below(SHARED_ATTACHMENTS as u64) as u32;
        let (name, _) = pool_document_name(pool);
        let (_, kind) = POOL_DOCUMENTS[(pool as usize) % POOL_DOCUMENTS.len()];
        let size = 6_000 + (hash(&[seed, 13, pool as u64]) % 60_000) as u32;
        return FileSpec {
            name: format!(
                "{} ({key}).{}",
                name.rsplit_once('.').map_or(name.as_str(), |(b, _)| b),
                kind.extension()
            ),
            parent,
            kind,
            content_seed: hash(&[seed, 14, pool as u64]),
            target_size: size,
            created,
            modified,
        };
    }
    let kind = *rng.pick(&[
        FileKind::Docx,
        FileKind::Docx,
        FileKind::Xlsx,
        FileKind::Pdf,
        FileKind::Png,
        FileKind::Csv,
        FileKind::Txt,
    ]);
    let topic = rng.pick(TOPICS).to_string();
    let name = format!("{topic} {} {key}.{}", words(&mut rng, 1), kind.extension());
    // Log-uniform between 1 KiB and max: most files are small, a few are large.
    let max = max_size.max(2048) as f64;
    let fraction = (rng.below(10_000) as f64) / 10_000.0;
    let target = (1024.0 * (max / 1024.0).powf(fraction * fraction)) as u32;
    FileSpec {
        name,
        parent,
        kind,
        content_seed: rng.next_u64(),
        target_size: target,
        created,
        modified,
    }
}

/// The bytes of a generated file (office files are real zip packages; PNGs decode).
pub fn file_bytes(kind: FileKind, content_seed: u64, target_size: u32) -> Vec<u8> {
    let mut rng = Stream::new(&[content_seed]);
    match kind {
        FileKind::Txt | FileKind::Csv => {
            text_of_size(&mut rng, target_size as usize, kind == FileKind::Csv)
        }
        FileKind::Pdf => pdf(&mut rng, target_size as usize),
        FileKind::Png => {
            let side = ((target_size as f64 / 4.0).sqrt() as u32).clamp(8, 1024);
            png(content_seed, side, side)
        }
        FileKind::Docx | FileKind::Xlsx => office(&mut rng, kind, target_size as usize),
    }
}

fn text_of_size(rng: &mut Stream, size: usize, csv: bool) -> Vec<u8> {
    let mut out = String::with_capacity(size + 64);
    if csv {
        out.push_str("Date,Customer,Product,Quantity,Amount\r\n");
    }
    let mut line = 0u32;
    while out.len() < size {
        if csv {
            out.push_str(&format!(
                "2026-{:02}-{:02},{},{},{},{}.{:02}\r\n",
                1 + rng.below(12),
                1 + rng.below(28),
                rng.pick(TOPICS),
                rng.pick(WORDS),
                1 + rng.below(40),
                rng.below(9_999),
                rng.below(100)
            ));
        } else {
            out.push_str(&words(rng, 12));
            out.push_str(".\n");
        }
        line += 1;
    }
    let _ = line;
    out.into_bytes()
}

fn pdf(rng: &mut Stream, size: usize) -> Vec<u8> {
    let mut text = String::new();
    while text.len() + 400 < size {
        text.push_str(&format!("({}) Tj T* ", words(rng, 8)));
    }
    let stream = format!("BT /F1 11 Tf 72 720 Td 14 TL {text}ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn office(rng: &mut Stream, kind: FileKind, size: usize) -> Vec<u8> {
    use std::io::Write;
    let mut body = String::new();
    // Deflate shrinks word soup about 3×; aim the XML at three times the target.
    while body.len() < size * 3 {
        match kind {
            FileKind::Xlsx => body.push_str(&format!(
                "<row><c t=\"inlineStr\"><is><t>{}</t></is></c><c><v>{}</v></c></row>",
                words(rng, 2),
                rng.below(100_000)
            )),
            _ => body.push_str(&format!(
                "<w:p><w:r><w:t>{}.</w:t></w:r></w:p>",
                words(rng, 14)
            )),
        }
    }
    let (main_path, main_type, main_xml) = match kind {
        FileKind::Xlsx => (
            "xl/worksheets/sheet1.xml",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>{body}</sheetData></worksheet>"
            ),
        ),
        _ => (
            "word/document.xml",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
            ),
        ),
    };
    let content_types = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/{main_path}\" ContentType=\"{main_type}\"/></Types>"
    );
    let rels = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"{main_path}\"/></Relationships>"
    );
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    let parts = [
        ("[Content_Types].xml", content_types),
        ("_rels/.rels", rels),
        (main_path, main_xml),
    ];
    for (path, text) in parts {
        if writer.start_file(path, options).is_err() || writer.write_all(text.as_bytes()).is_err() {
            return text_of_size(rng, size, false);
        }
    }
    match writer.finish() {
        Ok(cursor) => cursor.into_inner(),
        Err(_) => text_of_size(rng, size, false),
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid PNG (stored, uncompressed deflate blocks): a gradient coloured by the seed.
pub fn png(seed: u64, width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::with_capacity(((width * 3 + 1) * height) as usize);
    let (r, g, b) = (
        (seed & 0xFF) as u32,
        ((seed >> 8) & 0xFF) as u32,
        ((seed >> 16) & 0xFF) as u32,
    );
    for y in 0..height {
        raw.push(0);
        for x in 0..width {
            raw.push(((r + x * 3) & 0xFF) as u8);
            raw.push(((g + y * 5) & 0xFF) as u8);
            raw.push(((b + x + y) & 0xFF) as u8);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(chunk);
    }
    let (mut a, mut b2) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + byte as u32) % 65_521;
        b2 = (b2 + a) % 65_521;
    }
    zlib.extend_from_slice(&((b2 << 16) | a).to_be_bytes());
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    for (kind, data) in [(*b"IHDR", ihdr), (*b"IDAT", zlib), (*b"IEND", Vec::new())] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(&data);
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_content() {
        let a = file_bytes(FileKind::Docx, 42, 20_000);
        let b = file_bytes(FileKind::Docx, 42, 20_000);
        assert_eq!(a, b);
        assert!(a.starts_with(b"PK"));
    }
}
