//! Skyvault: a self-hosted, multi-tenant console that backs up Microsoft 365 into restic
//! repositories the operator owns. The binary (`src/main.rs`) is a thin command line over this
//! library; integration tests drive the same library.

pub mod accounts;
pub mod app;
pub mod backup;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod ids;
pub mod inventory;
pub mod jobs;
pub mod key_custody;
pub mod m365;
pub mod notify;
pub mod plans;
pub mod private_files;
pub mod reports;
pub mod restore;
pub mod simulator;
pub mod storage;
pub mod web;

/// Both rustls back ends are compiled into the dependency tree (sqlx, reqwest, opendal); rustls
/// refuses to pick one on its own and panics on the first TLS handshake. Call this once at start-up
/// and in tests; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
