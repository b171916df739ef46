//! Getting backups back: restores into Microsoft 365 run as jobs (`job`), through the mailbox
//! engine (`mailbox`) and the drive engine (`drive`).

pub mod drive;
pub mod job;
pub mod mailbox;
