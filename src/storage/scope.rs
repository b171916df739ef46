//! Whose backups a read may reach. Every catalog query and repository read that takes an archive,
//! recovery point or item id also takes a [`TenantScope`], and answers *not found* for ids that
//! belong to another customer, so an id from a URL is never enough to read anything.
//!
//! Two kinds of scope exist: the signed-in user's [`CustomerScope`] (made only by
//! `Access::customer`), and a [`SystemScope`] that workers and ticks name explicitly when they act
//! for a customer on their own (a backup job, retention, the weekly check). The trait is sealed so
//! no other type, and in particular no bare id, can stand in for either.

use crate::accounts::access::CustomerScope;
use crate::ids::CustomerId;

mod sealed {
    pub trait Sealed {}
}

/// Proof of which customer a storage read acts for.
pub trait TenantScope: sealed::Sealed + Sync {
    /// The one customer whose archives this scope reaches.
    fn tenant(&self) -> CustomerId;
}

impl sealed::Sealed for CustomerScope {}

impl TenantScope for CustomerScope {
    fn tenant(&self) -> CustomerId {
        self.id()
    }
}

/// A worker or tick acting for a customer without a signed-in user. Made only with
/// [`SystemScope::worker`], which names why, so every use reads as a deliberate decision in review
/// and in a grep; web handlers never make one (they have the user's [`CustomerScope`]).
#[derive(Debug, Clone, Copy)]
pub struct SystemScope {
    customer: CustomerId,
    purpose: &'static str,
}

impl SystemScope {
    /// `purpose` says which worker acts (`"retention"`, `"plan deletion"`, …).
    pub fn worker(customer: CustomerId, purpose: &'static str) -> Self {
        Self { customer, purpose }
    }

    pub fn purpose(&self) -> &'static str {
        self.purpose
    }
}

impl sealed::Sealed for SystemScope {}

impl TenantScope for SystemScope {
    fn tenant(&self) -> CustomerId {
        self.customer
    }
}
