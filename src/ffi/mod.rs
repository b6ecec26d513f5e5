//! Every call relance makes into C, in one place: SQLite's interface (its process-wide
//! options, bulk inserts on a connection sqlx holds) and two settings of the process.
//! The rest of the crate denies `unsafe` code; each `unsafe` block here says why it is
//! sound, and each function it exports is safe to call.
#![allow(unsafe_code)]

pub mod process;
pub mod sqlite;
