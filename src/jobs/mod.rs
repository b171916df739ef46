//! Background work: the job queue (directory syncs and backup checks, later backups and restores,
//! as rows claimed with leases), the workers that run jobs, and the ticks that queue scheduled work.

pub mod backup_check;
pub mod entities;
pub mod queue;
pub mod ticks;
pub mod worker;
