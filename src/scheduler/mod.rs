//! Scheduling: ticks of each segment on its cron schedule, and the tick itself.

pub mod tick;

pub use tick::{action_key, run_tick, TickReport};
