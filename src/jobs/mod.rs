//! Background work. For now: the maintenance ticks that keep the account tables tidy. The job
//! queue (syncs, backups, restores as rows claimed with leases) lives here too as it arrives.

pub mod ticks;
