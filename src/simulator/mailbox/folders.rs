//! Folder layouts of the primary mailbox (mail folders plus Calendar, Contacts, Tasks, Notes),
//! the archive and the auxiliary archive, and folder ids (mail folders keep `mailFolders` ids).

use super::super::generate::{FOLDERS, folder};
use super::super::pim;
use super::super::state::{Tenant, TenantState, mail_kind};
use super::{MailboxKind, MailboxRef};

pub const CALENDAR: u16 = 20;
pub const CONTACTS: u16 = 21;
pub const TASKS: u16 = 22;
pub const NOTES: u16 = 23;
pub(super) const ARCHIVE_2024: u16 = 30;
/// The archive folder whose content lives in the auxiliary archive (an "expanded folder").
pub const EXPANDED: u16 = 31;

/// Non-mail folders of the primary mailbox: (key, name, well-known name, class).
const PIM_FOLDERS: &[(u16, &str, &str, &str)] = &[
    (CALENDAR, "Calendar", "calendar", "IPF.Appointment"),
    (CONTACTS, "Contacts", "contacts", "IPF.Contact"),
    (TASKS, "Tasks", "tasks", "IPF.Task"),
    (NOTES, "Notes", "notes", "IPF.StickyNote"),
];

/// Folders of the archive: (key, parent, name). Well-known names are not served for archives.
const ARCHIVE_FOLDERS: &[(u16, u16, &str)] = &[
    (folder::ROOT, folder::ROOT, "Top of Information Store"),
    (folder::INBOX, folder::ROOT, "Inbox"),
    (folder::SENT, folder::ROOT, "Sent Items"),
    (folder::DELETED, folder::ROOT, "Deleted Items"),
    (ARCHIVE_2024, folder::ROOT, "2024"),
    (EXPANDED, folder::ROOT, "2023"),
];

#[derive(Debug, Clone)]
pub struct Folder {
    pub key: u16,
    pub parent: u16,
    pub name: String,
    pub well_known: Option<&'static str>,
    pub class: &'static str,
}

/// Every folder of a mailbox, the root included.
pub fn folders(state: &TenantState, mailbox: MailboxRef) -> Vec<Folder> {
    match mailbox.kind {
        MailboxKind::Primary => {
            let mut out: Vec<Folder> = FOLDERS
                .iter()
                .map(|&(key, parent, name, well_known, _)| Folder {
                    key,
                    parent,
                    name: name.to_owned(),
                    well_known,
                    class: "IPF.Note",
                })
                .collect();
            if let Some(overlay) = state.mailboxes.get(&mailbox.user) {
                out.extend(
                    overlay
                        .created_folders
                        .iter()
                        .filter(|f| !f.deleted)
                        .map(|f| Folder {
                            key: f.key,
                            parent: f.parent,
                            name: f.display_name.clone(),
                            well_known: None,
                            class: "IPF.Note",
                        }),
                );
            }
            out.extend(
                PIM_FOLDERS
                    .iter()
                    .map(|&(key, name, well_known, class)| Folder {
                        key,
                        parent: folder::ROOT,
                        name: name.to_owned(),
                        well_known: Some(well_known),
                        class,
                    }),
            );
            out
        }
        MailboxKind::Archive | MailboxKind::Auxiliary => ARCHIVE_FOLDERS
            .iter()
            .filter(|(key, ..)| {
                let in_auxiliary = *key == folder::ROOT || *key == EXPANDED;
                mailbox.kind == MailboxKind::Archive
                    && (*key != EXPANDED || pim::has_auxiliary_archive(mailbox.user))
                    || mailbox.kind == MailboxKind::Auxiliary && in_auxiliary
            })
            .map(|&(key, parent, name)| Folder {
                key,
                parent,
                name: name.to_owned(),
                well_known: None,
                class: "IPF.Note",
            })
            .collect(),
    }
}

/// Folder ids: the primary mailbox's mail folders keep the ids `mailFolders` gives them.
pub fn folder_id(tenant: &Tenant, mailbox: MailboxRef, key: u16) -> String {
    let kind = match mailbox.kind {
        MailboxKind::Primary => mail_kind::FOLDER,
        MailboxKind::Archive | MailboxKind::Auxiliary => mail_kind::ARCHIVE_FOLDER,
    };
    tenant.mail_id(kind, mailbox.user, key as u32, 0)
}

/// A folder of the mailbox by id (or, for the primary mailbox, by well-known name).
pub fn find_folder(
    tenant: &Tenant,
    state: &TenantState,
    mailbox: MailboxRef,
    id: &str,
) -> Option<Folder> {
    let all = folders(state, mailbox);
    if mailbox.kind == MailboxKind::Primary
        && let Some(found) = all
            .iter()
            .find(|f| f.well_known.is_some_and(|w| w.eq_ignore_ascii_case(id)))
    {
        return Some(found.clone());
    }
    all.into_iter()
        .find(|f| folder_id(tenant, mailbox, f.key) == id)
}

/// Whether a folder of the main archive physically lives in the auxiliary archive.
pub fn is_expanded(mailbox: MailboxRef, key: u16) -> bool {
    mailbox.kind == MailboxKind::Archive
        && key == EXPANDED
        && pim::has_auxiliary_archive(mailbox.user)
}
