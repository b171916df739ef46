//! The console foundation through HTTP: first-run setup, accounts, sessions, CSRF, tenancy and
//! isolation between customers; Backup storage and its backup checks.

mod access;
mod accounts;
mod jobs;
pub mod organizations;
mod people;
mod setup;
pub mod storage;
mod tables;
