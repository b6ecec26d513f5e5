//! relance: automated dunning of trade receivables.
//!
//! # Layout
//! - [`domain`]: money, customers, invoices, payments and their allocation, promises,
//!   business calendar. Pure, no I/O.
//! - [`config`]: `relance.yaml`, read raw then validated at once into [`config::Config`].
//! - [`store`]: the ledger's storage, one [`store::Store`] trait with SQLite and
//!   PostgreSQL implementations and one migrations folder per backend.
//! - [`import`]: CSV imports of customers, invoices and payments.
//! - [`scripting`]: rule scripts per segment (Rhai): facts in, decisions out.
//! - [`cli`]: the command line; `main.rs` only maps its outcome to an exit code.
//! - [`telemetry`]: logs, human or JSON.
//!
//! Data flows one way: ingest → ledger → (tick) facts → rule → decisions → outbox →
//! channel → delivery record.

pub mod cli;
pub mod config;
pub mod domain;
pub mod import;
pub mod sample;
pub mod scripting;
pub mod store;
pub mod telemetry;
