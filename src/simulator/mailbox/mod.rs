//! A user's mailboxes as the mailbox import/export API sees them: the primary mailbox (mail
//! folders plus Calendar, Contacts, Tasks and Notes), the in-place archive and its auxiliary
//! (auto-expanded) archive. It owns mailbox ids (`MBX:{mailbox guid}@{tenant guid}`), folder and
//! item ids, the folder layouts, which items live where, and every change to an item (add,
//! update, move, delete, import). Messages of the primary mailbox stay in the mail overlay so the
//! message endpoints and this API see one item under one id. It must never speak HTTP.
//!
//! Layout: this file (mailbox kinds and ids), `folders` (layouts and folder ids), `items`
//! (which items live where, their summaries and delta changes), `changes` (writes).

mod changes;
mod folders;
mod items;

pub use changes::*;
pub use folders::*;
pub use items::*;

use uuid::Uuid;

use super::generate;
use super::pim;
use super::state::{Tenant, TenantState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxKind {
    Primary,
    Archive,
    Auxiliary,
}

impl MailboxKind {
    fn tag(self) -> u8 {
        match self {
            MailboxKind::Primary => 1,
            MailboxKind::Archive => 2,
            MailboxKind::Auxiliary => 3,
        }
    }
}

/// One mailbox of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxRef {
    pub user: u32,
    pub kind: MailboxKind,
}

/// `MBX:{guid}@{tenant id}`: the guid carries the user and the mailbox kind, checked by a hash.
pub fn mailbox_id(tenant: &Tenant, mailbox: MailboxRef) -> String {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&mailbox.user.to_be_bytes());
    bytes[4] = mailbox.kind.tag();
    let check = generate::hash(&[
        tenant.spec.seed,
        200,
        tenant.index as u64,
        mailbox.user as u64,
        mailbox.kind.tag() as u64,
    ]);
    bytes[8..].copy_from_slice(&check.to_be_bytes());
    format!("MBX:{}@{}", Uuid::from_bytes(bytes), tenant.id)
}

/// A mailbox id of this tenant (another tenant's id is not found here).
pub fn parse_mailbox_id(tenant: &Tenant, id: &str) -> Option<MailboxRef> {
    let (guid, tenant_part) = id.strip_prefix("MBX:")?.split_once('@')?;
    if !tenant_part.eq_ignore_ascii_case(&tenant.id.to_string()) {
        return None;
    }
    let bytes = Uuid::parse_str(guid).ok()?.into_bytes();
    let user = u32::from_be_bytes(bytes[..4].try_into().ok()?);
    let kind = match bytes[4] {
        1 => MailboxKind::Primary,
        2 => MailboxKind::Archive,
        3 => MailboxKind::Auxiliary,
        _ => return None,
    };
    let mailbox = MailboxRef { user, kind };
    (mailbox_id(tenant, mailbox).eq_ignore_ascii_case(id)).then_some(mailbox)
}

/// Whether the user has this mailbox at all (archives exist for some generated users only).
pub fn exists(tenant: &Tenant, state: &TenantState, mailbox: MailboxRef) -> bool {
    let generated = mailbox.user < tenant.spec.users.max(1)
        && state
            .users
            .get(mailbox.user as usize)
            .is_some_and(|u| u.generated_messages > 0);
    match mailbox.kind {
        MailboxKind::Primary => (mailbox.user as usize) < state.users.len(),
        MailboxKind::Archive => generated && pim::has_archive(mailbox.user),
        MailboxKind::Auxiliary => generated && pim::has_auxiliary_archive(mailbox.user),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::TenantSpec;

    #[test]
    fn mailbox_ids_parse_back_only_in_their_own_tenant() {
        let contoso = Tenant::generate(0, &TenantSpec::small("Contoso", 3));
        let fabrikam = Tenant::generate(1, &TenantSpec::small("Fabrikam", 3));
        for kind in [
            MailboxKind::Primary,
            MailboxKind::Archive,
            MailboxKind::Auxiliary,
        ] {
            let mailbox = MailboxRef { user: 4, kind };
            let id = mailbox_id(&contoso, mailbox);
            assert!(id.starts_with("MBX:") && id.ends_with(&format!("@{}", contoso.id)));
            assert_eq!(parse_mailbox_id(&contoso, &id), Some(mailbox));
            assert_eq!(parse_mailbox_id(&fabrikam, &id), None);
        }
        let id = mailbox_id(
            &contoso,
            MailboxRef {
                user: 4,
                kind: MailboxKind::Primary,
            },
        );
        let forged = id
            .replacen("MBX:0", "MBX:1", 1)
            .replacen("MBX:00000004", "MBX:00000005", 1);
        assert_eq!(parse_mailbox_id(&contoso, &forged), None);
        assert_eq!(parse_mailbox_id(&contoso, "MBX:e0643f21@a7809c93"), None);
    }
}
