//! The one integration-test binary: each area of Skyvault is a module.

// Test code: a failed unwrap is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod backup;
mod browser;

mod console;
mod m365;
mod restore;
mod simulator;
mod storage;
