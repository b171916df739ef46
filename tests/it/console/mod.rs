//! The console foundation through HTTP: first-run setup, accounts, sessions, CSRF, tenancy and
//! isolation between customers; Backup storage and its backup checks; the master key and demo
//! mode across restarts.

pub(crate) mod access;
mod accounts;
mod activities;
mod audit;
mod demo;
mod discovery;
mod email;
mod encrypted_plans;
mod hostile;
mod infrastructure;
mod input;
mod jobs;
mod master_key;
pub mod organizations;
mod overview;
pub mod partners;
mod people;
mod plans;
mod restore;
pub(crate) mod routes;
mod search;
mod sessions;
mod setup;
pub mod storage;
mod tables;
mod worker_process;
