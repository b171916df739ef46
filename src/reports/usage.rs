//! The usage report a reseller bills from: per customer and calendar month (UTC), the users,
//! mailboxes, OneDrives, sites and teams Skyvault protected, and the storage used.
//!
//! How a month's figures are computed (the page says the same):
//! - an item counts as protected in a month when at least one of its backups of that workload
//!   succeeded in the month (from the job history), so an item backed up for one day counts once
//!   and an item never backed up does not count; *protected users* are the users with any of
//!   mailbox, archive mailbox or OneDrive backed up;
//! - storage used is what the customer's recovery points taken before the month's end (or now,
//!   for the current month) added to the repository, as the catalog counts it; points that
//!   retention removed since no longer count.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use super::{CHUNK, ReportResult};
use crate::ids::CustomerId;
use crate::jobs::entities::{job, job_item};
use crate::jobs::plan_run::ItemOutcome;
use crate::storage::catalog::{Workload, usage};

/// A calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    pub fn of(at: DateTime<Utc>) -> Self {
        Self {
            year: at.year(),
            month: at.month(),
        }
    }

    /// `2026-11`; none for anything else (or a year outside 2000–9999).
    pub fn parse(text: &str) -> Option<Self> {
        let (year, month) = text.trim().split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let month: u32 = month.parse().ok()?;
        ((2000..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    pub fn start(&self) -> DateTime<Utc> {
        first_of(self.year, self.month)
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.next().start()
    }

    pub fn next(&self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn previous(&self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// "November 2026".
    pub fn title(&self) -> String {
        self.start().format("%B %Y").to_string()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

fn first_of(year: i32, month: u32) -> DateTime<Utc> {
    let date = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or_default();
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// One customer's month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    pub customer: Uuid,
    pub customer_name: String,
    pub protected_users: u64,
    pub mailboxes: u64,
    pub archive_mailboxes: u64,
    pub onedrives: u64,
    pub group_mailboxes: u64,
    pub sites: u64,
    pub teams: u64,
    pub stored_bytes: u64,
}

/// The usage of each of `customers` (id and name, from the caller's access) in `month`, in the
/// order given.
pub async fn monthly_usage(
    db: &DatabaseConnection,
    customers: &[(Uuid, String)],
    month: Month,
    now: DateTime<Utc>,
) -> ReportResult<Vec<UsageRow>> {
    let (start, end) = (month.start(), month.end());
    let ids: Vec<Uuid> = customers.iter().map(|(id, _)| *id).collect();
    let mut per_workload: HashMap<(Uuid, String), u64> = HashMap::new();
    let mut users: HashMap<Uuid, u64> = HashMap::new();
    let user_workloads = [
        Workload::Mailbox.as_str(),
        Workload::ArchiveMailbox.as_str(),
        Workload::OneDrive.as_str(),
    ];
    for chunk in ids.chunks(CHUNK) {
        let backed_up = |by_workload: bool| {
            let mut query = Query::select();
            query
                .column((job::Entity, job::Column::CustomerId))
                .expr_as(
                    Func::count_distinct(Expr::col((job_item::Entity, job_item::Column::ItemId))),
                    "n",
                )
                .from(job_item::Entity)
                .inner_join(
                    job::Entity,
                    Expr::col((job::Entity, job::Column::Id))
                        .equals((job_item::Entity, job_item::Column::JobId)),
                )
                .and_where(
                    Expr::col((job::Entity, job::Column::CustomerId)).is_in(chunk.iter().copied()),
                )
                .and_where(
                    Expr::col((job_item::Entity, job_item::Column::Status))
                        .eq(ItemOutcome::BackedUp.as_str()),
                )
                .and_where(Expr::col((job_item::Entity, job_item::Column::FinishedAt)).gte(start))
                .and_where(Expr::col((job_item::Entity, job_item::Column::FinishedAt)).lt(end))
                .group_by_col((job::Entity, job::Column::CustomerId));
            if by_workload {
                query
                    .column((job_item::Entity, job_item::Column::Workload))
                    .group_by_col((job_item::Entity, job_item::Column::Workload));
            } else {
                query.and_where(
                    Expr::col((job_item::Entity, job_item::Column::Workload)).is_in(user_workloads),
                );
            }
            query.to_owned()
        };
        for row in db.query_all(&backed_up(true)).await? {
            let customer: Uuid = row.try_get("", "customer_id")?;
            let workload: String = row.try_get("", "workload")?;
            let n: i64 = row.try_get("", "n")?;
            per_workload.insert((customer, workload), u64::try_from(n).unwrap_or(0));
        }
        for row in db.query_all(&backed_up(false)).await? {
            let customer: Uuid = row.try_get("", "customer_id")?;
            let n: i64 = row.try_get("", "n")?;
            users.insert(customer, u64::try_from(n).unwrap_or(0));
        }
    }
    let customer_ids: Vec<CustomerId> = ids.iter().copied().map(CustomerId).collect();
    let stored = usage::stored_bytes(db, &customer_ids, Some(Ord::min(end, now))).await?;
    let count = |customer: Uuid, workload: Workload| {
        per_workload
            .get(&(customer, workload.as_str().to_string()))
            .copied()
            .unwrap_or(0)
    };
    Ok(customers
        .iter()
        .map(|(id, name)| UsageRow {
            customer: *id,
            customer_name: name.clone(),
            protected_users: users.get(id).copied().unwrap_or(0),
            mailboxes: count(*id, Workload::Mailbox),
            archive_mailboxes: count(*id, Workload::ArchiveMailbox),
            onedrives: count(*id, Workload::OneDrive),
            group_mailboxes: count(*id, Workload::GroupMailbox),
            sites: count(*id, Workload::Site),
            teams: count(*id, Workload::Team),
            stored_bytes: stored.get(&CustomerId(*id)).copied().unwrap_or(0),
        })
        .collect())
}

/// The CSV header, in the order of `csv_line`.
pub const CSV_HEADER: [&str; 11] = [
    "month",
    "customer_id",
    "customer",
    "protected_users",
    "mailboxes",
    "archive_mailboxes",
    "onedrives",
    "group_mailboxes",
    "sites",
    "teams",
    "storage_bytes",
];

/// The report of one or more months as CSV (RFC 4180: CRLF line ends, fields quoted when they hold a comma, a quote
/// or a line break, quotes doubled). A name that a spreadsheet would read as a formula is
/// prefixed with `'`, so opening the file never runs anything.
pub fn to_csv_months(months: &[(Month, Vec<UsageRow>)]) -> String {
    let mut out = String::new();
    out.push_str(&CSV_HEADER.join(","));
    out.push_str("\r\n");
    for (month, row) in months
        .iter()
        .flat_map(|(m, rows)| rows.iter().map(move |r| (m, r)))
    {
        let fields = [
            month.to_string(),
            row.customer.to_string(),
            csv_field(&spreadsheet_safe(&row.customer_name)),
            row.protected_users.to_string(),
            row.mailboxes.to_string(),
            row.archive_mailboxes.to_string(),
            row.onedrives.to_string(),
            row.group_mailboxes.to_string(),
            row.sites.to_string(),
            row.teams.to_string(),
            row.stored_bytes.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly_and_step_over_years() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(m.to_string(), "2026-12");
        assert_eq!(m.next().to_string(), "2027-01");
        assert_eq!(Month::parse("2027-01").unwrap().previous(), m);
        assert_eq!(m.end(), Month::parse("2027-01").unwrap().start());
        assert_eq!(m.title(), "December 2026");
        for bad in [
            "2026-13",
            "2026-00",
            "26-01",
            "2026-1",
            "x",
            "",
            "1999-01",
            "2026-01-01",
        ] {
            assert!(Month::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn csv_quotes_what_needs_it_and_defuses_formulas() {
        let row = UsageRow {
            customer_name: "Contoso, \"Ltd\"\nEurope".into(),
            mailboxes: 3,
            stored_bytes: 1024,
            ..UsageRow::default()
        };
        let formula = UsageRow {
            customer_name: "=HYPERLINK(\"x\")".into(),
            ..UsageRow::default()
        };
        let csv = to_csv_months(&[(Month::parse("2026-11").unwrap(), vec![row, formula])]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER.join(","));
        assert!(
            csv.contains("\"Contoso, \"\"Ltd\"\"\nEurope\",0,3,0,0,0,0,0,1024\r\n"),
            "{csv}"
        );
        assert!(csv.contains(",\"'=HYPERLINK(\"\"x\"\")\","), "{csv}");
        assert!(csv.ends_with("\r\n"));
    }
}
