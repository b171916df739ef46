//! The words of each e-mail: an alert that opened (what happened, whether Skyvault retries, what
//! to do, a link to the console), an alert that resolved (briefly), and the daily summary. Plain
//! text only: no HTML to render wrongly or to be abused, and it reads the same in every client.
//! Pure functions over what the mailer read; nothing here touches the database.

use chrono::{DateTime, Utc};

use crate::inventory::failure::SyncFailure;
use crate::jobs::alerts::{AlertCause, entities::alert};
use crate::jobs::queue::JobKind;

/// A composed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub body: String,
}

fn at(when: DateTime<Utc>) -> String {
    when.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Whether Skyvault tries again by itself, per cause.
fn retry_sentence(cause: Option<AlertCause>) -> &'static str {
    match cause {
        Some(AlertCause::BackupFailed | AlertCause::BackupPartial) => {
            "Yes: the plan runs again at its next daily start time, and the alert resolves by itself after a good run."
        }
        Some(AlertCause::NotBackedUp) => {
            "Yes, at every run of its plan; the alert resolves with the item's next good backup."
        }
        Some(AlertCause::CheckDamage) => {
            "The next backup writes the missing data again; the weekly check looks again."
        }
        Some(AlertCause::StorageUnreachable) => {
            "Yes: backups and checks try the storage again at their next run."
        }
        Some(AlertCause::ConsentRevoked) => {
            "No: nothing can be backed up from this organization until consent is given again."
        }
        Some(AlertCause::AppSecretExpiring) => {
            "No: Skyvault cannot renew the secret itself. When it expires, every backup and sync fails."
        }
        None => "Skyvault looks again at its next evaluation.",
    }
}

/// Where an alert is read in the console.
fn alert_url(public_url: &str, row: &alert::Model) -> String {
    match &row.link {
        Some(link) => format!("{public_url}{link}"),
        None if row.customer_id.is_nil() => format!("{public_url}/email"),
        None => format!("{public_url}/c/{}/alerts", row.customer_id),
    }
}

fn whose(customer_name: Option<&str>) -> String {
    match customer_name {
        Some(name) => name.to_string(),
        None => "this Skyvault installation".to_string(),
    }
}

/// An item whose backup failed in the run an alert points at: its name and, in plain words,
/// what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedItem {
    pub name: String,
    pub what: &'static str,
}

/// The e-mail sent when an alert opens; `failed` lists the run's failed items (the first few).
pub fn alert_opened(
    public_url: &str,
    row: &alert::Model,
    customer_name: Option<&str>,
    failed: &[FailedItem],
) -> Composed {
    let cause = AlertCause::parse(&row.cause);
    let title = cause.map_or("Alert", AlertCause::title);
    let action = cause.map_or("Open the alert in the console.", AlertCause::action);
    let who = whose(customer_name);
    let subject = format!("[Skyvault] {title}: {} ({who})", row.subject);
    let alerts_page = if row.customer_id.is_nil() {
        format!("{public_url}/email")
    } else {
        format!("{public_url}/c/{}/alerts", row.customer_id)
    };
    let mut message = row.message.clone();
    for item in failed {
        message.push_str(&format!("\n- {}: {}", item.name, item.what));
    }
    let (whose_line, chosen_for) = match customer_name {
        Some(name) => (
            format!("Customer: {name}"),
            format!("alert e-mails of {name} or of its partner"),
        ),
        None => (
            "Applies to: this Skyvault installation".to_string(),
            "alert e-mails of this installation's operator".to_string(),
        ),
    };
    let body = format!(
        "{title}\n\
         {subject_line}\n\
         {whose_line}\n\
         Since: {since}\n\
         \n\
         What happened\n{message}\n\
         \n\
         Will Skyvault try again?\n{retry}\n\
         \n\
         What to do\n{action}\n\
         \n\
         See the details: {link}\n\
         All alerts: {alerts_page}\n\
         \n\
         --\n\
         Skyvault sends one e-mail when an alert opens and a short one when it resolves; repeats of the same cause do not send more. \
         You receive it because you were chosen for {chosen_for}; change that in the console (Settings › Alert e-mail).\n",
        subject_line = row.subject,
        since = at(row.first_seen),
        retry = retry_sentence(cause),
        link = alert_url(public_url, row),
    );
    Composed { subject, body }
}

/// The e-mail sent when an alert resolves by itself.
pub fn alert_resolved(
    public_url: &str,
    row: &alert::Model,
    customer_name: Option<&str>,
) -> Composed {
    let cause = AlertCause::parse(&row.cause);
    let title = cause.map_or("Alert", AlertCause::title);
    let who = whose(customer_name);
    let resolved = row.resolved_at.map(at).unwrap_or_default();
    Composed {
        subject: format!("[Skyvault] Resolved: {title}: {} ({who})", row.subject),
        body: format!(
            "Resolved: {title}\n\
             {subject_line}\n\
             Customer: {who}\n\
             \n\
             The cause is gone (resolved {resolved}, open since {since}). Nothing more to do.\n\
             \n\
             {link}\n",
            subject_line = row.subject,
            since = at(row.first_seen),
            link = alert_url(public_url, row),
        ),
    }
}

/// One customer's last 24 hours, as the summary lists it.
#[derive(Debug, Clone, Default)]
pub struct CustomerDay {
    pub id: uuid::Uuid,
    pub name: String,
    /// (kind label, succeeded, failed) per kind of job that finished.
    pub runs: Vec<(&'static str, u64, u64)>,
    /// (kind label, when, what went wrong).
    pub failures: Vec<(&'static str, DateTime<Utc>, String)>,
    /// (title, subject, since).
    pub open_alerts: Vec<(&'static str, String, DateTime<Utc>)>,
}

impl CustomerDay {
    fn needs_attention(&self) -> bool {
        !self.failures.is_empty() || !self.open_alerts.is_empty()
    }
}

/// A failure's first words: sync failures are recorded with their cause's code.
pub fn failure_line(error: &str) -> String {
    let line = if error.starts_with('[') {
        SyncFailure::decode(error).cause.what().to_string()
    } else {
        error.lines().next().unwrap_or_default().to_string()
    };
    let mut line: String = line.chars().take(200).collect();
    if line.is_empty() {
        line = "No reason recorded.".into();
    }
    line
}

pub fn job_label(kind: &str) -> &'static str {
    JobKind::label(kind)
}

/// The daily summary of `days` (one customer's, or every customer below a partner).
pub fn daily_summary(
    public_url: &str,
    owner_name: &str,
    until: DateTime<Utc>,
    days: &[CustomerDay],
) -> Composed {
    let attention = days.iter().filter(|d| d.needs_attention()).count();
    let headline = match (days.len(), attention) {
        (0, _) => "No customers yet.".to_string(),
        (1, 0) => "All is well.".to_string(),
        (1, _) => "Something needs attention.".to_string(),
        (n, 0) => format!("{n} customers, all well."),
        (n, a) => format!("{n} customers: {a} need attention."),
    };
    let mut body = format!(
        "Skyvault daily summary for {owner_name}\nThe 24 hours to {}.\n\n{headline}\n",
        at(until)
    );
    // Customers with trouble first, then by name.
    let mut ordered: Vec<&CustomerDay> = days.iter().collect();
    ordered.sort_by(|a, b| {
        b.needs_attention()
            .cmp(&a.needs_attention())
            .then_with(|| a.name.cmp(&b.name))
    });
    for day in ordered {
        body.push_str(&format!("\n{}\n", day.name));
        if day.runs.is_empty() {
            body.push_str("  Nothing ran.\n");
        }
        for (label, succeeded, failed) in &day.runs {
            body.push_str(&format!(
                "  {label}: {succeeded} succeeded, {failed} failed\n"
            ));
        }
        if !day.failures.is_empty() {
            body.push_str("  Failures:\n");
            for (label, when, what) in day.failures.iter().take(10) {
                body.push_str(&format!("    - {label}, {}: {what}\n", at(*when)));
            }
            if day.failures.len() > 10 {
                body.push_str(&format!("    … and {} more\n", day.failures.len() - 10));
            }
        }
        if day.open_alerts.is_empty() {
            body.push_str("  Open alerts: none\n");
        } else {
            body.push_str("  Open alerts:\n");
            for (title, subject, since) in &day.open_alerts {
                body.push_str(&format!(
                    "    - {title}: {subject} (since {})\n",
                    at(*since)
                ));
            }
        }
        body.push_str(&format!("  {public_url}/c/{}/activities\n", day.id));
    }
    body.push_str(
        "\n--\nYou receive this summary because you were chosen for it; change that in the console (Settings › Alert e-mail).\n",
    );
    Composed {
        subject: format!(
            "[Skyvault] Daily summary for {owner_name}: {}",
            headline.trim_end_matches('.')
        ),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(cause: &str) -> alert::Model {
        let at = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
        alert::Model {
            id: uuid::Uuid::nil(),
            customer_id: uuid::Uuid::from_u128(7),
            cause: cause.into(),
            subject_key: "plan:1".into(),
            subject: "Plan “Mailboxes”".into(),
            message: "Microsoft 365 refused to let Skyvault read this item.".into(),
            link: Some("/c/x/activities/y".into()),
            open_key: None,
            first_seen: at,
            last_seen: at,
            occurrences: 1,
            acknowledged_by: None,
            acknowledged_at: None,
            resolved_at: Some(at),
            mail_state: "pending".into(),
            mail_attempts: 0,
            mail_next_at: None,
            mail_error: None,
            resolution_mailed: false,
        }
    }

    #[test]
    fn an_alert_mail_says_what_happened_whether_skyvault_retries_and_what_to_do() {
        let failed = [FailedItem {
            name: "Adele Vance".into(),
            what: "Microsoft 365 refused to let Skyvault read this item.",
        }];
        let mail = alert_opened(
            "https://backup.example",
            &row("backup_failed"),
            Some("Contoso"),
            &failed,
        );
        assert!(mail.body.contains("\n- Adele Vance: Microsoft 365 refused"));
        assert_eq!(
            mail.subject,
            "[Skyvault] Backup failed: Plan “Mailboxes” (Contoso)"
        );
        assert!(mail.body.contains("refused to let Skyvault read"));
        assert!(mail.body.contains("Will Skyvault try again?\nYes"));
        assert!(mail.body.contains("Run now tries at once"));
        assert!(
            mail.body
                .contains("https://backup.example/c/x/activities/y")
        );
    }

    #[test]
    fn a_summary_puts_customers_needing_attention_first() {
        let until = Utc.with_ymd_and_hms(2026, 11, 3, 6, 0, 0).unwrap();
        let days = [
            CustomerDay {
                name: "Alpha".into(),
                runs: vec![("Backup", 2, 0)],
                ..CustomerDay::default()
            },
            CustomerDay {
                name: "Zulu".into(),
                runs: vec![("Backup", 0, 1)],
                failures: vec![("Backup", until, "Storage unreachable".into())],
                ..CustomerDay::default()
            },
        ];
        let mail = daily_summary("http://x", "Northwind", until, &days);
        assert!(mail.subject.ends_with("2 customers: 1 need attention"));
        let zulu = mail.body.find("\nZulu\n").unwrap();
        let alpha = mail.body.find("\nAlpha\n").unwrap();
        assert!(zulu < alpha, "{}", mail.body);
        assert!(mail.body.contains("Backup: 0 succeeded, 1 failed"));
    }
}
