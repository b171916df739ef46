//! The Microsoft 365 client: identity (admin consent, app-only tokens), directory, mail, drives,
//! sites and the throttling governor. It knows nothing of actix-web or sea-orm, and it shares
//! no code with `crate::simulator` (two independent readings of Microsoft's documentation).
//!
//! Protocol references in comments (`§2.2`) are sections of `reference/graph-protocol.md`.
//!
//! How the console uses it:
//! - one [`GraphClient`] per process: `GraphClient::new(M365Settings::new(id, secret, redirect),
//!   clock)`; with the simulator, `.with_base_url(&sim_url)` on the settings;
//! - *Add organization*: redirect the browser to [`GraphClient::admin_consent_url`]
//!   (`ConsentTenant::Organizations`, a fresh `state`); on the callback,
//!   [`parse_consent_callback`]`(query, state)` gives a [`ConsentGrant`] or a [`ConsentError`]
//!   with Microsoft's description; then [`GraphClient::prove_tenant`] gives the
//!   [`TenantProof`] (organization name, default and initial domains) or the reason it failed;
//! - *Discovery*: [`GraphClient::tenant`] gives a [`TenantClient`]: `users()`, `groups()`
//!   (`is_microsoft365`, `is_team`, `is_mail_enabled`), `sites()`, `sites_with_deleted()`
//!   (`sites/delta`, deleted sites marked), `deleted_users()`, `deleted_groups()`,
//!   `probe_mailbox(user)` and `user_drive(user)` (or both: `user_workloads(user)`),
//!   `sharepoint_licence_count()` (from `subscribedSkus`, for
//!   [`throttle::files_resource_units_for_licences`] and
//!   [`GraphClient::set_tenant_files_limit`]), `users_delta` / `groups_delta` with
//!   [`collect_round`];
//! - *Backup*: `mail_folders`, `message_delta`, `message_mime`; `user_drive`, `group_drive`,
//!   `site_drives`, `drive_delta`, `download` / `download_from` (resume at an offset, try the
//!   delta's download URL first) checked with [`verify_quick_xor`] ([`QuickXorHasher`]);
//!   `site`, `site_tree` (a site and its subsites), `group_site`, `site_lists`, `list_items`;
//!   `team_channels`, `channel_messages`, `message_replies`, `channel_messages_delta`,
//!   `hosted_contents`, `hosted_content` (protected APIs: a refusal is
//!   [`GraphError::ProtectedApi`]);
//! - *Mailboxes at full fidelity* ([`mailbox`]): `exchange_mailboxes(user)` gives the primary and
//!   archive ids ([`ExchangeMailboxes::primary_ref`] / `archive_ref` make a [`MailboxRef`]);
//!   `mailbox_folders_delta`, `mailbox_items_delta`, `export_mailbox_items` (20 per request);
//!   restore with `create_import_session` and `import_mailbox_item`; `event_json`,
//!   `contact_json`; group conversations with `group_threads` and `thread_posts`;
//! - *Throttling view*: [`GraphClient::throttle_log`] (recent events, live subscription) and
//!   [`GraphClient::paused_resources`];
//! - errors are [`GraphError`]: `is_retryable()`, `kind()`, `status()`, `code()`, `request_id()`.

mod client;
mod conversations;
pub mod delta;
mod directory;
mod download;
mod drive;
pub mod error;
mod http;
pub mod identity;
mod mail;
pub mod mail_create;
pub mod mailbox;
mod outlook_items;
pub mod paging;
pub mod quickxor;
pub mod settings;
mod sites;
mod teams;
pub mod throttle;
pub mod types;
pub mod upload;

pub use client::{GraphClient, GraphClientBuilder, TenantClient, TenantProof};
pub use conversations::{ConversationThread, Post};
pub use delta::{
    DeltaChange, DeltaLink, DeltaPage, DeltaRound, DeltaStart, DeltaStream, RemovedReason,
    collect_round,
};
pub use directory::{MailboxStatus, SiteListing, UserWorkloads};
pub use download::verify_quick_xor;
pub use error::{
    ErrorKind, GraphError, ProtectedApiReason, ProtectedApiRefusal, ServiceError, TokenError,
    TokenErrorKind,
};
pub use http::ByteStream;
pub use identity::{
    AdminSignInError, AdminSignInStart, CONSENTING_ROLES, ConsentError, ConsentGrant,
    ConsentRefusal, ConsentTenant, ProvenAdmin, parse_consent_callback, parse_sign_in_callback,
};
pub use mailbox::{
    EXPORT_BATCH, ExchangeMailboxes, ExportedData, ExportedItem, ImportSession, ImportedItem,
    ItemError, MailboxApi, MailboxFolder, MailboxItem, MailboxRef, import_target_mailbox,
};
pub use paging::ItemStream;
pub use quickxor::{QuickXorHasher, quick_xor_hash, same_quick_xor_hash};
pub use settings::{GovernorLimits, M365Settings, RetryPolicy};
pub use sites::{ListInfo, ListItem, SiteList};
pub use teams::{Channel, ChannelKind, ChatMessage, HostedContent, MessageBody, MessageRef};
pub use throttle::{Resource, Sleeper, ThrottleEvent, ThrottleLog, TokioSleeper};
pub use types::TenantId;
