//! The Microsoft 365 client: identity (admin consent, app-only tokens), directory, mail, drives,
//! sites and the throttling governor. It knows nothing of actix-web or sea-orm, and it shares
//! no code with `crate::simulator` (two independent readings of Microsoft's documentation).
//!
//! Start with [`GraphClient::new`]; [`GraphClient::tenant`] gives a [`TenantClient`] whose
//! methods are the Graph calls for one consented tenant. Protocol references in comments
//! (`§2.2`) are sections of `reference/graph-protocol.md`.

mod client;
pub mod delta;
mod directory;
mod drive;
pub mod error;
mod http;
pub mod identity;
mod mail;
pub mod paging;
pub mod settings;
pub mod throttle;
pub mod types;

pub use client::{GraphClient, GraphClientBuilder, TenantClient, TenantProof};
pub use delta::{
    DeltaChange, DeltaLink, DeltaPage, DeltaRound, DeltaStart, DeltaStream, RemovedReason,
    collect_round,
};
pub use directory::{MailboxStatus, SiteListing, UserWorkloads};
pub use error::{ErrorKind, GraphError, ServiceError, TokenError, TokenErrorKind};
pub use http::ByteStream;
pub use identity::{
    ConsentError, ConsentGrant, ConsentRefusal, ConsentTenant, parse_consent_callback,
};
pub use paging::ItemStream;
pub use settings::{GovernorLimits, M365Settings, RetryPolicy};
pub use throttle::{Resource, Sleeper, ThrottleEvent, ThrottleLog, TokioSleeper};
pub use types::TenantId;
