//! Deterministic generated mailbox content besides mail: calendar events (some weekly with
//! attendees), contacts, tasks, sticky notes, the archive mailbox's old mail, and the
//! conversations of Microsoft 365 group mailboxes. Like `generate`, it keeps no state: the same
//! (seed, owner, key) always gives the same record, so nothing is held in memory until changed.
//! It must never read the clock or the tenant's mutable state.

use chrono::{Datelike, Duration, NaiveDate, Timelike};

use super::generate::{self, MailAddress, MailboxContext, Stream, content_epoch, words};
use super::record::{
    Attendee, ContactRecord, Content, EventRecord, ItemRecord, NoteRecord, Recurrence, TaskRecord,
};

/// How many items of each kind a mailbox with `messages` generated messages holds.
pub struct Counts {
    pub events: u32,
    pub contacts: u32,
    pub tasks: u32,
    pub notes: u32,
}

pub fn counts(messages: u32) -> Counts {
    if messages == 0 {
        return Counts {
            events: 0,
            contacts: 0,
            tasks: 0,
            notes: 0,
        };
    }
    Counts {
        events: (messages / 10).max(4),
        contacts: (messages / 15).max(3),
        tasks: (messages / 20).max(2),
        notes: 2,
    }
}

/// Generated users with an index ≡ 1 (mod 3) have an in-place archive; ≡ 1 (mod 6) also an
/// auxiliary (auto-expanded) archive holding the folder "2023".
pub fn has_archive(user: u32) -> bool {
    user % 3 == 1
}

pub fn has_auxiliary_archive(user: u32) -> bool {
    user % 6 == 1
}

/// Archived messages of a generated user with an archive.
pub fn archive_count(messages: u32) -> u32 {
    (messages / 3).max(6)
}

fn colleague(ctx: &MailboxContext, rng: &mut Stream) -> MailAddress {
    let mut other = rng.below(ctx.user_count.max(1) as u64) as u32;
    if other == ctx.user_index && ctx.user_count > 1 {
        other = (other + 1) % ctx.user_count;
    }
    let person = generate::person(ctx.seed, other, &ctx.organization);
    MailAddress {
        name: person.display_name,
        address: format!("{}@{}", person.nickname, ctx.domain),
    }
}

const PLACES: &[&str] = &[
    "Conf Room Rainier",
    "Conf Room Baker",
    "Microsoft Teams Meeting",
    "Café Zürich",
    "Building 20 / 1101",
];

/// How far back item `key` goes, bounded so any key gives a valid date.
fn age(key: u32) -> i64 {
    (key % 2_000) as i64
}

/// Event `key` of a mailbox's calendar: every third one repeats weekly with attendees.
pub fn event(ctx: &MailboxContext, key: u32) -> ItemRecord {
    let mut rng = Stream::new(&[ctx.seed, 300, ctx.user_index as u64, key as u64]);
    let epoch = content_epoch();
    let day = epoch - Duration::days(age(key) * 3) + Duration::days(rng.below(10) as i64);
    let start = day
        .with_hour(9 + rng.below(8) as u32)
        .and_then(|t| t.with_minute(if rng.percent(50) { 0 } else { 30 }))
        .unwrap_or(day);
    let end = start + Duration::minutes(30 * (1 + rng.below(3) as i64));
    let recurring = key.is_multiple_of(3);
    let attendees: Vec<Attendee> = if recurring || rng.percent(50) {
        (0..1 + rng.below(3))
            .map(|i| Attendee {
                address: colleague(ctx, &mut rng),
                kind: if i == 0 { "required" } else { "optional" }.to_owned(),
                response: (*rng.pick(&["accepted", "tentativelyAccepted", "none", "declined"]))
                    .to_owned(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let weekday = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][start.weekday().num_days_from_monday() as usize];
    let recurrence = recurring.then(|| Recurrence {
        pattern: "weekly".to_owned(),
        interval: 1 + (key % 2),
        days_of_week: vec![weekday.to_owned()],
        start_date: start.date_naive(),
        range: if key.is_multiple_of(2) {
            "numbered"
        } else {
            "noEnd"
        }
        .to_owned(),
        end_date: None,
        occurrences: if key.is_multiple_of(2) { 10 } else { 0 },
    });
    let topic = words(&mut rng, 3);
    let created = start - Duration::days(7);
    ItemRecord {
        created,
        modified: created + Duration::hours(1),
        categories: if rng.percent(20) {
            vec!["Green category".to_owned()]
        } else {
            Vec::new()
        },
        content: Content::Event(EventRecord {
            subject: if recurring {
                format!("Weekly {topic}")
            } else {
                format!("Meeting: {topic}")
            },
            body_html: format!(
                "<html><body><p>Agenda: {}.</p></body></html>",
                generate::html_escape(&words(&mut rng, 12))
            ),
            start,
            end,
            is_all_day: false,
            location: (*rng.pick(PLACES)).to_owned(),
            organizer: ctx.owner.clone(),
            attendees,
            recurrence,
            show_as: "busy".to_owned(),
            importance: "normal".to_owned(),
            sensitivity: "normal".to_owned(),
            reminder_minutes: Some(15),
            ical_uid: format!(
                "040000008200E00074C5B7101A82E008{:016X}",
                generate::hash(&[ctx.seed, 301, ctx.user_index as u64, key as u64])
            ),
        }),
    }
}

/// Contact `key` of a mailbox: colleagues first, then outside people.
pub fn contact(ctx: &MailboxContext, key: u32) -> ItemRecord {
    let mut rng = Stream::new(&[ctx.seed, 310, ctx.user_index as u64, key as u64]);
    let outside = key % 2 == 1;
    let person = generate::person(ctx.seed, 1000 + key + ctx.user_index * 7, &ctx.organization);
    let domain = if outside {
        "fabrikam.example".to_owned()
    } else {
        ctx.domain.clone()
    };
    let address = format!(
        "{}@{domain}",
        generate::ascii_fold(&person.display_name.replace(' ', "."))
    );
    let created = content_epoch() - Duration::days(200 + age(key) * 5);
    ItemRecord {
        created,
        modified: created + Duration::days(rng.below(30) as i64),
        categories: Vec::new(),
        content: Content::Contact(ContactRecord {
            given_name: person.given_name.clone(),
            surname: person.surname.clone(),
            display_name: person.display_name.clone(),
            company_name: Some(if outside {
                "Fabrikam".to_owned()
            } else {
                ctx.organization.clone()
            }),
            job_title: Some(person.job_title.clone()),
            email_addresses: vec![MailAddress {
                name: person.display_name,
                address,
            }],
            business_phones: vec![person.business_phone],
            home_phones: if rng.percent(30) {
                vec![format!("+1 206 555 {:04}", rng.below(10_000))]
            } else {
                Vec::new()
            },
            mobile_phone: Some(person.mobile_phone),
            birthday: NaiveDate::from_ymd_opt(
                1960 + rng.below(40) as i32,
                1 + rng.below(12) as u32,
                1 + rng.below(28) as u32,
            ),
            personal_notes: if rng.percent(40) {
                format!("Met at {}.", rng.pick(PLACES))
            } else {
                String::new()
            },
        }),
    }
}

pub fn task(ctx: &MailboxContext, key: u32) -> ItemRecord {
    let mut rng = Stream::new(&[ctx.seed, 320, ctx.user_index as u64, key as u64]);
    let created = content_epoch() - Duration::days(20 + age(key) * 4);
    let done = key % 3 == 2;
    ItemRecord {
        created,
        modified: created + Duration::days(1),
        categories: Vec::new(),
        content: Content::Task(TaskRecord {
            subject: format!("Follow up: {}", words(&mut rng, 3)),
            body_text: words(&mut rng, 15),
            status: if done { "completed" } else { "notStarted" }.to_owned(),
            importance: if key.is_multiple_of(4) {
                "high"
            } else {
                "normal"
            }
            .to_owned(),
            due: Some(created + Duration::days(14)),
            completed: done.then(|| created + Duration::days(3)),
        }),
    }
}

pub fn note(ctx: &MailboxContext, key: u32) -> ItemRecord {
    let mut rng = Stream::new(&[ctx.seed, 330, ctx.user_index as u64, key as u64]);
    let created = content_epoch() - Duration::days(60 + age(key) * 11);
    ItemRecord {
        created,
        modified: created,
        categories: Vec::new(),
        content: Content::Note(NoteRecord {
            text: format!("Remember: {}", words(&mut rng, 8)),
            color: (*rng.pick(&["yellow", "blue", "green", "pink"])).to_owned(),
        }),
    }
}

/// Archived message `key`: old mail, generated from a context of its own so it never repeats a
/// message of the primary mailbox.
pub fn archived_message(ctx: &MailboxContext, key: u32) -> generate::MessageMeta {
    let archive = MailboxContext {
        seed: generate::hash(&[ctx.seed, 340]),
        ..ctx.clone()
    };
    let mut meta = generate::generated_message(&archive, key);
    meta.received -= Duration::days(730);
    meta.sent -= Duration::days(730);
    meta.is_read = true;
    meta
}

// ---------------------------------------------------------------------------------------------
// Group mailboxes

/// Conversations per Microsoft 365 group (one thread each).
pub const GROUP_CONVERSATIONS: u32 = 5;

/// One post of a group conversation thread.
pub struct GroupPost {
    pub from: MailAddress,
    pub received: chrono::DateTime<chrono::Utc>,
    pub body_html: String,
    pub has_attachments: bool,
}

pub struct GroupConversation {
    pub topic: String,
    pub posts: Vec<GroupPost>,
}

/// Conversation `key` of group `group`; `members` are the people who write (must not be empty).
pub fn group_conversation(
    seed: u64,
    group: u32,
    key: u32,
    members: &[MailAddress],
) -> GroupConversation {
    let mut rng = Stream::new(&[seed, 350, group as u64, key as u64]);
    let topic = format!(
        "{} {}",
        rng.pick(&["Planning", "Question about", "Notes from", "Kick-off:"]),
        words(&mut rng, 3)
    );
    let count = 1 + rng.below(4) as u32;
    let start = content_epoch() - Duration::days(age(key) * 9 + 2);
    let posts = (0..count)
        .map(|i| {
            let from = members[rng.below(members.len() as u64) as usize].clone();
            GroupPost {
                from,
                received: start + Duration::hours(i as i64 * 5),
                body_html: format!(
                    "<html><body><div>{}.</div></body></html>",
                    generate::html_escape(&words(&mut rng, 20))
                ),
                has_attachments: false,
            }
        })
        .collect();
    GroupConversation { topic, posts }
}
