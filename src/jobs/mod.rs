//! Background work: the job queue (directory syncs, plan runs with their retention, prune and
//! backup checks, as rows claimed with fenced leases), the workers that run jobs, and the ticks
//! that queue scheduled work.

pub mod activities;
pub mod alerts;
pub mod backup_check;
pub mod entities;
pub mod plan_run;
pub mod progress;
pub mod queue;
pub mod throttling;
pub mod ticks;
pub mod worker;
