//! Identifier newtypes. A `CustomerId` can never be passed where an `OrgId` is expected, which is
//! the first line of defence against reaching another tenant's data by mixing up ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

id_type!(
    /// A partner (reseller): owns customers and sub-partners.
    PartnerId
);
id_type!(
    /// A customer: owns console users, Microsoft 365 organizations, plans and backups.
    CustomerId
);
id_type!(
    /// A console user (of a partner or of a customer).
    UserId
);
id_type!(
    /// A Microsoft 365 organization added to a customer.
    OrgId
);
id_type!(
    /// A protected item of an organization: a user, group, site or team.
    ItemId
);
id_type!(
    /// A protection plan.
    PlanId
);
id_type!(
    /// A job in the queue (sync, backup, restore, verify).
    JobId
);
