//! What an API token may do: its scopes, and whether a token grants one.

use serde::Serialize;

use crate::store::tokens::ApiToken;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Upsert customers, invoices and payments.
    Ingest,
    /// Read the ledger, the action log, tasks and metrics.
    Read,
    /// Record disputes, promises, pauses; complete call tasks.
    Collect,
    /// Retry or cancel actions, run the rules for a customer; implies every other scope.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Collect, Scope::Admin];

    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Collect => "collect",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim())
            .ok_or_else(|| format!("unknown scope '{s}' (expected ingest, read, collect or admin)"))
    }
}

/// Parses `ingest,read` into scopes, sorted and without repeats.
///
/// # Errors
/// An unknown scope, or none.
pub fn parse_scopes(text: &str) -> Result<Vec<Scope>, String> {
    let mut scopes: Vec<Scope> = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err("at least one scope is needed (ingest, read, collect, admin)".into());
    }
    Ok(scopes)
}

/// Whether `token` grants `scope` (admin grants every scope; a revoked token none).
pub fn allows(token: &ApiToken, scope: Scope) -> bool {
    let has = |s: Scope| token.scopes.iter().any(|x| x == s.as_str());
    token.revoked_at.is_none() && (has(scope) || has(Scope::Admin))
}
