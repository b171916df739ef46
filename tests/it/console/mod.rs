//! The console foundation through HTTP: first-run setup, accounts, sessions, CSRF, tenancy and
//! isolation between customers; Backup storage and its backup checks.

mod access;
mod accounts;
mod infrastructure;
mod jobs;
mod organizations;
mod sessions;
mod setup;
pub mod storage;
