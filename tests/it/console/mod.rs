//! The console foundation through HTTP: first-run setup, accounts, sessions, CSRF, tenancy and
//! isolation between customers.

mod access;
mod accounts;
mod jobs;
mod organizations;
mod setup;
