//! The backup check job: runs `storage::verify` on a customer's repository and turns its report
//! into the sentence Activities shows, naming the archives a damaged pack affects. A customer
//! without backups is never given a repository by a check: the catalog is asked first.

use std::collections::HashMap;

use crate::ids::CustomerId;
use crate::storage::catalog::{self, ArchiveId, ArchiveSummary};
use crate::storage::{BackupStorage, SystemScope, VerifyReport, VerifyScope, Workload, verify};

/// What Activities says of a check of a customer with no archive.
pub const NOTHING_TO_CHECK: &str = "No backups to check yet";

/// Rustic's findings listed in a failed check's outcome; the rest are counted.
const ERRORS_SHOWN: usize = 5;

/// How much a check reads, from the `check_read_percent` setting.
pub fn scope_for(read_percent: u64) -> VerifyScope {
    match read_percent {
        0 => VerifyScope::Structure,
        100.. => VerifyScope::AllData,
        percent => VerifyScope::SampledData {
            percent: percent as f64,
        },
    }
}

/// The console's name of a workload.
pub fn workload_label(workload: Workload) -> &'static str {
    match workload {
        Workload::Mailbox => "Mailbox",
        Workload::ArchiveMailbox => "Archive mailbox",
        Workload::OneDrive => "OneDrive",
        Workload::Site => "Site",
        Workload::GroupMailbox => "Group mailbox",
        Workload::Team => "Team",
    }
}

/// Checks the customer's backups: `Ok` with a one-line summary when nothing is damaged, `Err`
/// with a headline, one line per damaged pack naming the archives it affects, and rustic's errors.
pub async fn check_backups(
    storage: &BackupStorage,
    customer: CustomerId,
    scope: VerifyScope,
) -> Result<String, String> {
    let archives = catalog::list_archive_summaries(
        storage.db(),
        &SystemScope::worker(customer, "backup check"),
    )
    .await
    .map_err(|err| format!("Cannot read the backup catalog: {err}"))?;
    if archives.is_empty() {
        return Ok(NOTHING_TO_CHECK.into());
    }
    let report = verify::verify(storage, customer, scope)
        .await
        .map_err(|err| {
            format!(
                "The backup check could not run: {}",
                first_line(&err.to_string())
            )
        })?;
    if !report.ok {
        // The full findings, for whoever investigates; Activities shows their first lines.
        tracing::warn!(%customer, errors = ?report.errors, "backup check found damage");
    }
    outcome(&archives, &report)
}

fn outcome(archives: &[ArchiveSummary], report: &VerifyReport) -> Result<String, String> {
    let catalog_points: u64 = archives.iter().map(|a| a.recovery_points).sum();
    let checked = format!(
        "{}, {}",
        counted(report.snapshots_checked as u64, "recovery point"),
        counted(archives.len() as u64, "archive"),
    );
    let missing = catalog_points.saturating_sub(report.snapshots_checked as u64);
    if report.ok && missing == 0 {
        let read = match report.scope {
            VerifyScope::Structure => "structure only".to_string(),
            VerifyScope::SampledData { percent } => format!("{percent}% of the data read"),
            VerifyScope::AllData => "all data read".to_string(),
        };
        let warnings = match report.warnings.as_slice() {
            [] => String::new(),
            [only] => format!("; 1 warning: {only}"),
            [first, rest @ ..] => format!("; {} warnings, first: {first}", rest.len() + 1),
        };
        return Ok(format!(
            "Checked {checked} ({read}); no damage found{warnings}"
        ));
    }
    let names: HashMap<ArchiveId, String> = archives
        .iter()
        .map(|a| {
            let archive = &a.archive;
            let label = workload_label(archive.workload);
            (archive.id, format!("{} ({label})", archive.display_name))
        })
        .collect();
    let mut lines = vec![format!(
        "Damage found while checking {checked}: {}{}.",
        counted(report.damaged_packs.len() as u64, "damaged pack"),
        if report.errors.is_empty() {
            String::new()
        } else {
            format!(", {}", counted(report.errors.len() as u64, "error"))
        },
    )];
    if missing > 0 {
        lines.push(format!(
            "{} listed in the catalog {} missing from the repository.",
            counted(missing, "recovery point"),
            if missing == 1 { "is" } else { "are" },
        ));
    }
    for pack in &report.damaged_packs {
        let short: String = pack.pack_id.chars().take(12).collect();
        let affected: Vec<&str> = pack
            .affected_archives
            .iter()
            .map(|id| {
                names
                    .get(id)
                    .map_or("an archive no longer listed", String::as_str)
            })
            .collect();
        lines.push(if affected.is_empty() {
            format!("Pack {short}: no recovery point uses it.")
        } else {
            format!("Pack {short} affects {}.", affected.join(", "))
        });
    }
    lines.extend(
        report
            .errors
            .iter()
            .take(ERRORS_SHOWN)
            .map(|e| first_line(e)),
    );
    if report.errors.len() > ERRORS_SHOWN {
        lines.push(format!(
            "… and {} more.",
            counted((report.errors.len() - ERRORS_SHOWN) as u64, "error")
        ));
    }
    Err(lines.join("\n"))
}

/// A finding as one line: rustic's errors go on with context, causes and sometimes a backtrace,
/// which belong in the log, not in Activities.
fn first_line(finding: &str) -> String {
    const LONGEST: usize = 240;
    let line = finding
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    if line.chars().count() > LONGEST {
        format!("{}…", line.chars().take(LONGEST).collect::<String>())
    } else {
        line.to_string()
    }
}

fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
