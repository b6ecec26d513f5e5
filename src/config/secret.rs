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

    /// The URL with its password (and any secret query parameter, such as
    /// `?password=`) replaced by `***`, fit for logs. The user name is kept.
    pub fn redacted(&self) -> String {
        let url = self.0.expose();
        if let Some((scheme, rest)) = url.split_once("://") {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            if let Some(at) = rest[..end].rfind('@') {
                let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
                let user = match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***"),
                    None => userinfo.to_string(),
                };
                return redact_url(&format!("{scheme}://{host}")).replacen(
                    "://",
                    &format!("://{user}@"),
                    1,
                );
            }
        }
        redact_url(url)
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

/// Query parameters whose value is a credential, compared without case, `-` or `_`.
const SECRET_KEYS: &[&str] = &[
    "apikey",
    "key",
    "token",
    "accesstoken",
    "secret",
    "password",
    "pass",
    "passwd",
    "pwd",
    "signature",
    "sig",
    "auth",
    "authorization",
    "credentials",
    "code",
    "session",
    "sessionid",
];

/// Whether a key (a query parameter, a configuration key, a header) names a secret:
/// `api_key`, `access_token`, `X-Api-Key`, `client_secret`, `password`, `sig`, …
pub fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-' && *c != '.')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEYS.contains(&k.as_str())
        || [
            "token",
            "secret",
            "passw",
            "apikey",
            "signature",
            "credential",
        ]
        .iter()
        .any(|w| k.contains(w))
        || k.ends_with("key")
        || k.starts_with("auth")
}

/// Whether a configuration path holds a secret: a key such as `password`, `secret`,
/// `secrets`, `auth_token`, `api_key`, or a header value (`headers.Authorization`).
pub fn is_secret_path(path: &str) -> bool {
    path.split('.')
        .map(|seg| seg.split('[').next().unwrap_or(seg))
        .enumerate()
        .any(|(i, seg)| is_secret_key(seg) || (seg == "headers" && i + 1 < path.split('.').count()))
}

/// Replaces the values of secret-looking `key=value` pairs of a query or fragment.
fn redact_pairs(pairs: &str) -> String {
    pairs
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() && is_secret_key(&percent_decoded(k)) => {
                format!("{k}=***")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `%5F` and `+` decoded, enough to recognise a key such as `api%5Fkey`.
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL fit for logs, error messages, the database and command output: its user-info
/// (`user:password@`) and the values of secret-looking query parameters (`api_key`,
/// `token`, `access_token`, `secret`, `password`, `signature`, `sig`, `auth`, …) are
/// replaced by `***`. Text that is not a URL comes back unchanged, except for a
/// user-info before its first `/`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}{authority}");
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(&redact_pairs(query));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(&redact_pairs(f));
    }
    out
}

/// Free text (an error message, a response excerpt) with every URL in it redacted as
/// by [`redact_url`].
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let start = rest[..pos]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '.' || c == '-'))
            .map_or(0, |i| i + 1);
        let end = rest[pos..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']' | '}')
            })
            .map_or(rest.len(), |i| pos + i);
        // Punctuation ending a sentence is not part of the URL.
        let end = start
            + rest[start..end]
                .trim_end_matches([':', ',', '.', ';', '!', '?'])
                .len();
        let end = end.max(pos + 3);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
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

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("http://user:hunter2@host:8080/claims?api_key=abc123&x=1#frag"),
            "http://***@host:8080/claims?api_key=***&x=1#frag"
        );
        assert_eq!(
            redact_url("https://h/p?Token=t1&access_token=t2&sig=s&Signature=s2&page=2"),
            "https://h/p?Token=***&access_token=***&sig=***&Signature=***&page=2"
        );
        assert_eq!(
            redact_url("https://h/p?password=p&pass=q&secret=r&auth=a&apikey=k&key=v"),
            "https://h/p?password=***&pass=***&secret=***&auth=***&apikey=***&key=***"
        );
        assert_eq!(
            redact_url("https://h/p?api%5Fkey=k"),
            "https://h/p?api%5Fkey=***"
        );
        assert_eq!(redact_url("https://h/p"), "https://h/p");
        assert_eq!(redact_url("u:p@h/x"), "***@h/x");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(
            redact_text("POST http://a:b@h/x?token=t: failed (see 'https://h2/?key=k')"),
            "POST http://***@h/x?token=***: failed (see 'https://h2/?key=***')"
        );
        let u = DatabaseUrl::new("postgres://app:pw@db/r?sslmode=require&password=pw");
        assert_eq!(
            u.redacted(),
            "postgres://app:***@db/r?sslmode=require&password=***"
        );
    }
}
