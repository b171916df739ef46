//! Protection plans: which workloads of which items of one Microsoft 365 organization are backed
//! up, how long recovery points are kept, and the daily start time Skyvault chose for the plan
//! (`schedule`). A plan names items one by one or a whole kind ("All users"); one item's
//! workload is in at most one plan. Every function takes a `CustomerScope`; only the job system
//! reads plans without one (`plan_for_run`), to run them. Plans never back anything up
//! themselves: `jobs` runs them.

pub mod entities;
pub mod schedule;
mod store;

use chrono::{DateTime, Utc};

pub use store::{
    CHOOSABLE_ITEMS, Coverage, PlanTarget, choosable_items, coverage, create_plan, delete_plan,
    encrypted_repository_for, find_plan, item_names, list_plans, plan_for_run, plan_targets,
    protect_items, record_run, set_enabled, update_plan,
};

use crate::ids::{CustomerId, ItemId, OrgId, PlanId};
use crate::inventory::ItemKind;
use crate::jobs::backup_check::workload_label;
use crate::storage::catalog::Workload;
use crate::storage::{EncryptedRepositoryId, RetentionRule};

/// The most recovery points, and days, a plan may keep.
pub const MAX_RETENTION_POINTS: u32 = 9_999;
pub const MAX_RETENTION_DAYS: u32 = 3_650;
/// Seconds one item's backup is assumed to take until a run has measured it.
pub const DEFAULT_SECONDS_PER_ITEM: i32 = 60;
/// The longest plan name.
pub const MAX_NAME_CHARS: usize = 100;
/// The shortest and longest customer encryption password. It is also the restic password of
/// the plan's repository, so it guards the backups on their own: 12 characters at least.
pub const MIN_ENCRYPTION_PASSWORD_CHARS: usize = 12;
pub const MAX_ENCRYPTION_PASSWORD_CHARS: usize = 256;

/// The workloads an item of `kind` can have.
pub fn workloads_of(kind: ItemKind) -> &'static [Workload] {
    match kind {
        ItemKind::User => &[
            Workload::Mailbox,
            Workload::ArchiveMailbox,
            Workload::OneDrive,
        ],
        ItemKind::Group => &[Workload::GroupMailbox, Workload::Site],
        ItemKind::Site => &[Workload::Site],
        ItemKind::Team => &[Workload::Team],
    }
}

/// "All users", "All groups"…
pub fn all_label(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::User => "All users",
        ItemKind::Group => "All groups",
        ItemKind::Site => "All sites",
        ItemKind::Team => "All teams",
    }
}

/// A plan form as submitted: every field as text, validated by `create_plan`/`update_plan`
/// with a message per field. Its `Debug` never shows the encryption password.
#[derive(Clone, Default)]
pub struct PlanDraft {
    pub name: String,
    pub org: String,
    pub workloads: Vec<String>,
    pub all_kinds: Vec<String>,
    pub items: Vec<String>,
    /// "points" or "days".
    pub retention_kind: String,
    pub retention_value: String,
    /// The version the form was opened at (edits only).
    pub version: String,
    /// "on" when a new plan is to be encrypted with the customer's password.
    pub encrypt: String,
    /// The password, twice (new plans only; never filled back into a form).
    pub encryption_password: String,
    pub encryption_password_again: String,
}

impl std::fmt::Debug for PlanDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanDraft")
            .field("name", &self.name)
            .field("org", &self.org)
            .field("workloads", &self.workloads)
            .field("all_kinds", &self.all_kinds)
            .field("items", &self.items)
            .field("retention", &(&self.retention_kind, &self.retention_value))
            .field("version", &self.version)
            .field("encrypt", &self.encrypt)
            .finish_non_exhaustive()
    }
}

/// Why a customer encryption password is refused, if it is.
pub fn encryption_password_problem(password: &str, again: &str) -> Option<FieldError> {
    let message = |text: String| {
        Some(FieldError {
            field: "encryption",
            message: text,
        })
    };
    let length = password.chars().count();
    if length == 0 {
        return message("Enter the encryption password, or untick encryption.".into());
    }
    if length < MIN_ENCRYPTION_PASSWORD_CHARS {
        return message(format!(
            "Use at least {MIN_ENCRYPTION_PASSWORD_CHARS} characters for the encryption password."
        ));
    }
    if length > MAX_ENCRYPTION_PASSWORD_CHARS {
        return message(format!(
            "Keep the encryption password to {MAX_ENCRYPTION_PASSWORD_CHARS} characters."
        ));
    }
    if password.chars().any(char::is_control) {
        return message("The encryption password cannot contain control characters.".into());
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return message(
            "This password repeats a few characters; choose one that is harder to guess, such as four unrelated words."
                .into(),
        );
    }
    if password != again {
        return message("The two passwords are not the same. Enter it twice, exactly.".into());
    }
    None
}

/// A message shown beside one field of the plan form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("not found")]
    NotFound,
    #[error("you do not have permission to do that")]
    Forbidden,
    #[error("the plan has mistakes: {}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "))]
    Invalid(Vec<FieldError>),
    #[error(
        "This plan was changed by someone else after you opened it, so your changes were not saved. Reload it to see the current plan, then make your changes again."
    )]
    Stale,
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("backup storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

impl From<crate::accounts::AccountError> for PlanError {
    fn from(err: crate::accounts::AccountError) -> Self {
        match err {
            crate::accounts::AccountError::Forbidden => PlanError::Forbidden,
            crate::accounts::AccountError::Database(db) => PlanError::Database(db),
            _ => PlanError::NotFound,
        }
    }
}

impl From<crate::inventory::InventoryError> for PlanError {
    fn from(err: crate::inventory::InventoryError) -> Self {
        use crate::inventory::InventoryError;
        match err {
            InventoryError::Forbidden => PlanError::Forbidden,
            InventoryError::Database(db) => PlanError::Database(db),
            _ => PlanError::NotFound,
        }
    }
}

/// A protection plan as the rest of Skyvault sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: PlanId,
    pub customer: CustomerId,
    pub org: OrgId,
    pub name: String,
    pub enabled: bool,
    pub workloads: Vec<Workload>,
    pub all_kinds: Vec<ItemKind>,
    /// Items chosen one by one.
    pub items: Vec<ItemId>,
    pub retention: RetentionRule,
    pub start_minute: i32,
    pub estimated_load: i64,
    pub seconds_per_item: i32,
    pub next_run_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub version: i32,
    /// Set when the plan has a customer encryption password: its backups live in this
    /// repository, whose restic password is the customer's.
    pub encrypted_repository: Option<EncryptedRepositoryId>,
}

impl Plan {
    fn from_row(row: entities::plan::Model, items: Vec<ItemId>) -> Plan {
        let retention_value = u32::try_from(row.retention_value).unwrap_or(1).max(1);
        Plan {
            id: PlanId(row.id),
            customer: CustomerId(row.customer_id),
            org: OrgId(row.org_id),
            name: row.name,
            enabled: row.enabled,
            workloads: split(&row.workloads)
                .filter_map(|w| w.parse().ok())
                .collect(),
            all_kinds: split(&row.all_kinds).filter_map(ItemKind::parse).collect(),
            items,
            retention: if row.retention_kind == "days" {
                RetentionRule::KeepYoungerThanDays(retention_value)
            } else {
                RetentionRule::KeepLast(retention_value)
            },
            start_minute: row.start_minute,
            estimated_load: row.estimated_load,
            seconds_per_item: row.seconds_per_item,
            next_run_at: row.next_run_at,
            last_run_at: row.last_run_at,
            version: row.version,
            encrypted_repository: row.encrypted_repository_id.map(EncryptedRepositoryId),
        }
    }

    /// "Runs daily at 02:15 UTC, chosen by Skyvault to spread load".
    pub fn schedule_sentence(&self) -> String {
        schedule::schedule_sentence(self.start_minute)
    }

    /// "Keeps the last 30 recovery points" / "Keeps recovery points for 90 days".
    pub fn retention_sentence(&self) -> String {
        match self.retention {
            RetentionRule::KeepLast(1) => "Keeps the last recovery point".into(),
            RetentionRule::KeepLast(n) => format!("Keeps the last {n} recovery points"),
            RetentionRule::KeepYoungerThanDays(1) => "Keeps recovery points for 1 day".into(),
            RetentionRule::KeepYoungerThanDays(n) => format!("Keeps recovery points for {n} days"),
        }
    }

    /// "Mailbox, OneDrive".
    pub fn workloads_sentence(&self) -> String {
        self.workloads
            .iter()
            .map(|w| workload_label(*w))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// "All users, 3 chosen items".
    pub fn items_sentence(&self) -> String {
        let mut parts: Vec<String> = self
            .all_kinds
            .iter()
            .map(|k| all_label(*k).to_string())
            .collect();
        match self.items.len() {
            0 => {}
            1 => parts.push("1 chosen item".into()),
            n => parts.push(format!("{n} chosen items")),
        }
        parts.join(", ")
    }

    /// The plan as its edit form starts.
    pub fn draft(&self) -> PlanDraft {
        let (kind, value) = match self.retention {
            RetentionRule::KeepLast(n) => ("points", n),
            RetentionRule::KeepYoungerThanDays(n) => ("days", n),
        };
        PlanDraft {
            name: self.name.clone(),
            org: self.org.to_string(),
            workloads: self
                .workloads
                .iter()
                .map(|w| w.as_str().to_string())
                .collect(),
            all_kinds: self
                .all_kinds
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            items: self.items.iter().map(ItemId::to_string).collect(),
            retention_kind: kind.into(),
            retention_value: value.to_string(),
            version: self.version.to_string(),
            encrypt: if self.encrypted_repository.is_some() {
                "on".into()
            } else {
                String::new()
            },
            encryption_password: String::new(),
            encryption_password_again: String::new(),
        }
    }
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::encryption_password_problem;

    #[test]
    fn encryption_passwords_are_long_varied_and_entered_twice() {
        let good = "correct horse battery staple";
        assert_eq!(encryption_password_problem(good, good), None);
        for (password, again, says) in [
            ("", "", "Enter the encryption password"),
            ("short", "short", "at least 12"),
            ("aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa", "harder to guess"),
            (good, "correct horse battery stable", "not the same"),
            (
                "tab\there and more",
                "tab\there and more",
                "control characters",
            ),
        ] {
            let problem = encryption_password_problem(password, again).expect(password);
            assert_eq!(problem.field, "encryption");
            assert!(problem.message.contains(says), "{}", problem.message);
        }
        let long = "x1".repeat(200);
        assert!(encryption_password_problem(&long, &long).is_some());
    }
}
