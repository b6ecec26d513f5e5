//! Rule scripts: one Rhai script per customer segment decides, from a customer's
//! facts, which dunning actions to take.
//!
//! - [`engine`]: the sandboxed engine and the rule API registered in it.
//! - [`facts`]: what a script sees (`today`, `customer`), precomputed in Rust.
//! - [`actions`]: what a script returns, built with `email(...)`, `sms(...)`...
//! - [`decide`]: the engine's guarantees applied to a script's requests (idempotent
//!   steps, blocked invoices) giving [`Decision`]s.
//! - [`lint`]: static checks (names not in the rule API, with the nearest known one;
//!   option values; numbers compared with quoted text).
//! - [`probe`]: trying a new script on sample customers before it runs.
//! - [`registry`]: compiling, checking, hashing and hot-reloading scripts.
//! - [`evaluate`]: one customer, end to end (a portfolio is evaluated in parallel by
//!   the scheduler's pipeline, `scheduler::pipeline`).
//! - [`explain`]: one customer's evaluation told in full, with the conditions the script
//!   evaluated and their values ("why, and why not").
//! - [`testing`]: `relance rules test` fixtures.

pub mod actions;
pub mod decide;
pub mod diagnostics;
pub mod engine;
pub mod evaluate;
pub mod explain;
pub mod facts;
pub mod lint;
pub mod probe;
pub mod registry;
pub mod testing;

pub use decide::{Decision, DecisionStatus, RuleRef};
pub use diagnostics::Diagnostic;
pub use engine::Limits;
pub use evaluate::{Evaluator, Outcome};
pub use facts::{CustomerFacts, FactSettings, FactsSnapshot};
pub use registry::{RuleError, RuleRegistry, RuleSet};
