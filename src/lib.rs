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
//! - [`scheduler`]: ticks: decisions written to the action log, idempotently.
//! - [`outbox`]: claiming, delivering and retrying planned actions.
//! - [`channels`]: delivery transports behind one trait.
//! - [`runtime`]: `relance serve`: the loops, wired with graceful shutdown.
//! - [`cli`]: the command line; `main.rs` only maps its outcome to an exit code.
//! - [`api`]: the HTTP API of `relance serve` (`/v1`, health, metrics).
//! - [`telemetry`]: logs, human or JSON; [`metrics`]: counters for `/metrics`.
//! - [`digest`]: SHA-256 in hex, for rule versions, facts, keys and documents.
//! - [`panics`]: a panic in one unit of work (a customer, a delivery) contained to it.
//! - [`ffi`]: every call into C (SQLite's interface, two process settings); the only
//!   module allowed `unsafe` code.
//!
//! Data flows one way: ingest → ledger → (tick) facts → rule → decisions → outbox →
//! channel → delivery record.

#![deny(unsafe_code)]

pub mod api;
pub mod call_outcomes;
pub mod channels;
pub mod cli;
pub mod config;
pub mod digest;
pub mod documents;
pub mod domain;
pub mod ffi;
pub mod import;
pub mod metrics;
pub mod outbox;
pub mod panics;
pub mod reports;
pub mod runtime;
pub mod sample;
pub mod scheduler;
pub mod scripting;
pub mod store;
pub mod telemetry;
pub mod templates;
