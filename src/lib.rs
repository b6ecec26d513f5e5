//! relance: automated dunning of trade receivables.
//!
//! # Layout
//! Modules by layer, lowest first: a module uses only modules of lower layers
//! (`tests/architecture.rs` checks it; `docs/architecture.md` explains it).
//! - Utilities: [`digest`] (SHA-256 in hex, for rule versions, facts, keys and
//!   documents), [`panics`] (a panic in one unit of work contained to it), [`metrics`]
//!   (counters for `/metrics`), [`telemetry`] (logs, human or JSON), [`ffi`] (every call
//!   into C: SQLite's interface and two process settings; the only module allowed
//!   `unsafe` code).
//! - [`domain`]: money, customers, invoices, payments and their allocation, promises,
//!   business calendar, locale formatting. Pure, no I/O.
//! - [`config`]: `relance.yaml`, read raw then validated at once into [`config::Config`];
//!   retry and interrupted-send policies.
//! - [`store`]: the ledger's storage, one [`store::Store`] trait with SQLite and
//!   PostgreSQL implementations and one migrations folder per backend.
//! - On the store: [`import`] (CSV imports), [`scripting`] (rule scripts per segment:
//!   facts in, decisions out; no I/O), [`documents`] (formal notices and statements as
//!   PDF, the evidence archive), [`templates`] (email and SMS messages), [`reports`],
//!   [`call_outcomes`] (a call's outcome applied to the ledger), [`collect`] (disputes,
//!   pauses and promises recorded by collectors); then [`sample`]
//!   (generated portfolios).
//! - [`channels`]: delivery transports behind one trait, and the documents they send.
//! - [`outbox`]: claiming, delivering and retrying planned actions; [`scheduler`]: cron
//!   slots, catch-up, leader election, and the tick (the pass over the ledger, the
//!   decisions written to the action log idempotently).
//! - [`api`]: the HTTP API of `relance serve` (`/v1`, health, metrics, token scopes);
//!   [`console`]: the web console for credit managers and collectors (users, sessions,
//!   pages rendered on the server); [`portal`]: the debtor's self-service page, on its
//!   own listener (see [`portal_links`] for the links that open it).
//! - [`runtime`]: the composition root: [`runtime::launch`] builds the service from its
//!   configuration and runs its loops with graceful shutdown.
//! - [`cli`]: the command line; `main.rs` only maps its outcome to an exit code.
//!
//! Data flows one way: ingest → ledger → (tick) facts → rule → decisions → outbox →
//! channel → delivery record.

#![deny(unsafe_code)]
// The store's shared SQL (`store/shared/`) is compiled once per backend, on purpose.
#![allow(clippy::duplicate_mod)]

pub mod api;
pub mod call_outcomes;
pub mod channels;
pub mod charts;
pub mod cli;
pub mod collect;
pub mod config;
pub mod console;
pub mod digest;
pub mod documents;
pub mod domain;
pub mod ffi;
pub mod import;
pub mod link_seal;
pub mod metrics;
pub mod outbox;
pub mod panics;
pub mod portal;
pub mod portal_links;
pub mod reports;
pub mod retention;
pub mod runtime;
pub mod sample;
pub mod scheduler;
pub mod scripting;
pub mod store;
pub mod telemetry;
pub mod templates;
