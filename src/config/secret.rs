//! Secrets read from the configuration or the environment. `Debug` never shows them.

use std::fmt;

use serde::Deserialize;

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (a connection, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A database URL with any password hidden from `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(Secret);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(Secret::new(url))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with its password replaced by `***`, fit for logs.
    pub fn redacted(&self) -> String {
        let url = self.0.expose();
        if let Some((scheme, rest)) = url.split_once("://") {
            if let Some((userinfo, host)) = rest.split_once('@') {
                if let Some((user, _)) = userinfo.split_once(':') {
                    return format!("{scheme}://{user}:***@{host}");
                }
            }
        }
        url.to_string()
    }

    pub fn is_postgres(&self) -> bool {
        let u = self.0.expose();
        u.starts_with("postgres://") || u.starts_with("postgresql://")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let u = DatabaseUrl::new("postgres://app:hunter2@db:5432/relance");
        assert!(!format!("{u:?} {u}").contains("hunter2"));
        assert_eq!(u.redacted(), "postgres://app:***@db:5432/relance");
    }
}
