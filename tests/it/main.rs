//! The one integration-test binary: each area of Skyvault is a module.

mod support;

mod console;
mod m365;
mod simulator;
mod storage;
