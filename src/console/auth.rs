//! Who is signed in to the console: users' roles, passwords hashed with Argon2id,
//! sessions kept in the database by the SHA-256 of a random secret held in an HttpOnly,
//! SameSite=Strict cookie, a per-session token on every form (CSRF), and sign-in
//! attempts limited per user name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// What a user may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Works its own call tasks and customers: pauses, disputes, promises, outcomes.
    Collector,
    /// Everything a collector does, on every customer; reports and rules.
    CreditManager,
    /// Everything, including retrying and cancelling actions.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Viewer,
        Role::Collector,
        Role::CreditManager,
        Role::Admin,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Collector => "collector",
            Role::CreditManager => "credit_manager",
            Role::Admin => "admin",
        }
    }

    /// Whether the role may change the ledger (pauses, disputes, promises, outcomes).
    pub fn may_collect(&self) -> bool {
        *self >= Role::Collector
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| {
                format!("unknown role '{s}' (expected viewer, collector, credit_manager or admin)")
            })
    }
}

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

/// Hashes `password` with Argon2id (default parameters: 19 MiB, 2 passes) and a random
/// salt, as a PHC string.
///
/// # Errors
/// A password too short or too long, or no random source.
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!("a password has at least {MIN_PASSWORD} characters"));
    }
    if password.len() > 1024 {
        return Err("a password has at most 1,024 bytes".into());
    }
    let raw = crate::digest::random_bytes().map_err(|e| format!("no random source: {e}"))?;
    let salt = SaltString::encode_b64(&raw[..16]).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that an unknown name takes
/// as long to refuse as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

/// Failed sign-ins allowed per user name in [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed sign-in attempts by user name.
#[derive(Default)]
pub struct Attempts {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Attempts {
    /// How long `user` must wait before trying again, if it is locked out.
    pub fn locked(&self, user: &str) -> Option<Duration> {
        let map = self.failures.lock().ok()?;
        let (n, since) = map.get(&user.to_lowercase())?;
        let elapsed = since.elapsed();
        (*n >= MAX_FAILURES && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    pub fn failed(&self, user: &str) {
        if let Ok(mut map) = self.failures.lock() {
            if map.len() > 100_000 {
                map.retain(|_, (_, t)| t.elapsed() < WINDOW);
            }
            let e = map
                .entry(user.to_lowercase())
                .or_insert((0, Instant::now()));
            if e.1.elapsed() >= WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }

    pub fn succeeded(&self, user: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&user.to_lowercase());
        }
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_salted_and_verified() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse battery!", &h));
        assert_ne!(h, hash_password("correct horse battery").unwrap());
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn five_failures_lock_a_name_out() {
        let a = Attempts::default();
        for _ in 0..4 {
            a.failed("Alice");
        }
        assert!(a.locked("alice").is_none());
        a.failed("alice");
        assert!(a.locked("ALICE").is_some());
        assert!(a.locked("bruno").is_none());
    }
}
