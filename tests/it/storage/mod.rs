//! Integration tests for `skyvault::storage`: real repositories in temporary folders, the real
//! catalog database (SQLite, or PostgreSQL with `SKYVAULT_TEST_DATABASE_URL`), and Debian's
//! `restic` reading what Skyvault wrote.

// Test helpers outside `#[test]` functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup;
mod contract;
mod feed;
pub(crate) mod fixture;
pub(crate) mod interop;
mod lifecycle;
mod locks;
mod s3;
mod scope;
