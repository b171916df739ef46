//! The console foundation through HTTP: first-run setup, accounts, sessions, CSRF, tenancy and
//! isolation between customers; Backup storage and its backup checks.

mod access;
mod accounts;
mod discovery;
mod jobs;
mod organizations;
mod setup;
pub mod storage;
