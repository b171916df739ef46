//! Getting backups back: browsing, previews, downloads, and who may do which.

pub(crate) mod console;
mod eml;
