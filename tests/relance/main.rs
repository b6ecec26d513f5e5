//! Integration tests: the storage story on both backends through the library's public
//! API, and the command line through the real binary.
//!
//! PostgreSQL runs are enabled by `RELANCE_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); each test gets its own database.

mod api;
mod camt;
mod channels;
mod cli;
mod collectors_cli;
mod config;
mod console;
mod cookbook;
mod daemon;
mod documents;
mod dunning_state;
mod einvoice;
mod experiments;
mod explain;
mod fec;
mod helpers;
mod import;
mod in_process;
mod leases;
mod monitoring;
mod outbox_messages;
mod portal;
mod portal_page;
mod postgres_tls;
mod properties;
mod read_only;
mod references;
mod report_figures;
mod report_mail;
mod reports;
mod retention;
mod rule_checks;
mod rule_reload;
mod rule_safety;
mod rules;
mod rules_backtest;
mod rules_diff;
mod secrets;
mod store_story;
mod traces;
