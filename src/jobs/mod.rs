//! Background work: the job queue (syncs, and later backups, restores and checks, as rows claimed
//! with leases), the workers that run jobs, and the ticks that queue scheduled work.

pub mod entities;
pub mod queue;
pub mod ticks;
pub mod worker;
