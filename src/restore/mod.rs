//! Getting backups back: browse, search, preview, download and restore. Everything here reads
//! through `storage` and takes the signed-in user's `CustomerScope` (or a worker's system scope).

pub mod search;
