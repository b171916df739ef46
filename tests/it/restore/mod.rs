//! Getting backups back: browsing, previews, downloads, and who may do which; restores into
//! Microsoft 365 against the simulator, the mailbox and drive engines reading a real repository.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod console;
mod eml;
mod jobs;
mod large_attachments;
mod places;
mod teams_console;
