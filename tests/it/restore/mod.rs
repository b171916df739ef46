//! Restores into Microsoft 365 against the simulator: the mailbox and drive engines reading a
//! real repository and writing through the Graph client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod jobs;
