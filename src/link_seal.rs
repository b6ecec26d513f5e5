//! The debtor's portal links: a token that names a customer without showing who (its
//! content is encrypted and authenticated with ChaCha20-Poly1305 under a configured
//! key), carries its own dates (issued, expires) and the customer's link generation
//! (raised to revoke every link the customer was given), and names the key that sealed
//! it, so that keys can be rotated: the newest seals, every configured one opens.
//!
//! ```text
//! token = base64url( key id (1 byte) | nonce (12 bytes) | sealed claims (28 bytes) | tag (16 bytes) )
//! claims = customer id (i64) | generation (u32) | issued (u32, days since 1970-01-01) | expires (u32, days)
//!          | action id (i64, 0: none)
//! ```
//!
//! 76 characters (links made before the action id was added, 66 characters, still
//! open: they carry no action). Changing any character of a token makes it refused; so does a key
//! that is no longer configured. Pure: keys, claims and the nonce come from the caller.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// What a link says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// The customer's row id (never shown: it is sealed).
    pub customer: i64,
    /// The customer's link generation when the link was made.
    pub generation: u32,
    /// Days since 1970-01-01.
    pub issued: u32,
    pub expires: u32,
    /// The action whose message carried the link (its visits are shown on the action);
    /// `None` for a link made by hand.
    pub action: Option<i64>,
}

/// A key that seals and opens links.
#[derive(Clone)]
pub struct LinkKey {
    pub id: u8,
    pub secret: [u8; 32],
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkKey({}, [redacted])", self.id)
    }
}

/// Why a token is refused (for the log; the page the visitor sees is the same for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a token of this format (length, alphabet).
    Malformed,
    /// Sealed with a key that is not configured (any more).
    UnknownKey,
    /// Altered, or sealed with another key of the same id.
    Forged,
}

const CLAIMS_LEN: usize = 8 + 4 + 4 + 4 + 8;
const TOKEN_LEN: usize = 1 + 12 + CLAIMS_LEN + 16;
/// A token's length in characters.
pub const TOKEN_CHARS: usize = (TOKEN_LEN * 4).div_ceil(3);
/// The first format's length: the same claims without the action.
const TOKEN_LEN_V1: usize = TOKEN_LEN - 8;
/// What the key id and nonce are bound to: a token of another use never opens here.
const CONTEXT: &[u8] = b"relance portal link v1";

fn aad(id: u8) -> Vec<u8> {
    let mut a = CONTEXT.to_vec();
    a.push(id);
    a
}

/// Seals `claims` with `key` and `nonce` (12 random bytes, never reused with a key).
pub fn seal(key: &LinkKey, claims: &Claims, nonce: [u8; 12]) -> String {
    let mut plain = Vec::with_capacity(CLAIMS_LEN);
    plain.extend_from_slice(&claims.customer.to_be_bytes());
    plain.extend_from_slice(&claims.generation.to_be_bytes());
    plain.extend_from_slice(&claims.issued.to_be_bytes());
    plain.extend_from_slice(&claims.expires.to_be_bytes());
    plain.extend_from_slice(&claims.action.unwrap_or(0).to_be_bytes());
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.secret));
    let aad = aad(key.id);
    // Sealing a 20-byte message cannot fail (the limit is 256 GiB).
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    let mut token = Vec::with_capacity(TOKEN_LEN);
    token.push(key.id);
    token.extend_from_slice(&nonce);
    token.extend_from_slice(&sealed);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

/// Opens a token with the key it names among `keys`.
///
/// # Errors
/// [`Refused`]: malformed, sealed with an unknown key, altered.
pub fn open(keys: &[LinkKey], token: &str) -> Result<Claims, Refused> {
    if token.len() > 2 * TOKEN_LEN {
        return Err(Refused::Malformed);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| Refused::Malformed)?;
    if bytes.len() != TOKEN_LEN && bytes.len() != TOKEN_LEN_V1 {
        return Err(Refused::Malformed);
    }
    let id = bytes[0];
    let key = keys
        .iter()
        .find(|k| k.id == id)
        .ok_or(Refused::UnknownKey)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.secret));
    let aad = aad(id);
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&bytes[1..13]),
            Payload {
                msg: &bytes[13..],
                aad: &aad,
            },
        )
        .map_err(|_| Refused::Forged)?;
    let num = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&plain[r]);
        u32::from_be_bytes(b)
    };
    let long = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&plain[r]);
        i64::from_be_bytes(b)
    };
    let action = if plain.len() >= 28 { long(20..28) } else { 0 };
    Ok(Claims {
        customer: long(0..8),
        generation: num(8..12),
        issued: num(12..16),
        expires: num(16..20),
        action: (action != 0).then_some(action),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8, fill: u8) -> LinkKey {
        LinkKey {
            id,
            secret: [fill; 32],
        }
    }

    const CLAIMS: Claims = Claims {
        customer: 4242,
        generation: 3,
        issued: 20_000,
        expires: 20_060,
        action: Some(77),
    };

    #[test]
    fn a_sealed_link_opens_with_its_key_only_and_shows_no_customer_id() {
        let k1 = key(1, 7);
        let token = seal(&k1, &CLAIMS, [9; 12]);
        assert_eq!(token.len(), 76);
        assert!(!token.contains("4242"));
        let by_hand = Claims {
            action: None,
            ..CLAIMS
        };
        assert_eq!(
            open(std::slice::from_ref(&k1), &seal(&k1, &by_hand, [3; 12])),
            Ok(by_hand)
        );
        assert_eq!(open(std::slice::from_ref(&k1), &token), Ok(CLAIMS));
        // Rotation: a newer key seals, the old one still opens what it sealed.
        let k2 = key(2, 8);
        let both = [k2.clone(), k1.clone()];
        assert_eq!(open(&both, &token), Ok(CLAIMS));
        assert_eq!(open(&both, &seal(&k2, &CLAIMS, [1; 12])), Ok(CLAIMS));
        // The old key removed: its links are refused.
        assert_eq!(open(&[k2], &token), Err(Refused::UnknownKey));
        // Another secret under the same id.
        assert_eq!(open(&[key(1, 6)], &token), Err(Refused::Forged));
    }

    #[test]
    fn a_tampered_link_is_refused_whatever_character_changes() {
        let k = key(1, 7);
        let token = seal(&k, &CLAIMS, [9; 12]);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..token.len() {
            let mut t = token.clone().into_bytes();
            t[i] = *alphabet.iter().find(|c| **c != t[i]).unwrap();
            let t = String::from_utf8(t).unwrap();
            // The last character carries padding bits: changing only those may decode
            // to the same bytes, which is the same token.
            let same = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&t)
                .ok()
                == base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&token)
                    .ok();
            if !same {
                assert!(open(std::slice::from_ref(&k), &t).is_err(), "position {i}");
            }
        }
        for bad in [
            "",
            "x",
            &token[..75],
            &token[..66],
            &format!("{token}A"),
            "%%%",
            &"A".repeat(10_000),
        ] {
            assert!(open(std::slice::from_ref(&k), bad).is_err(), "{bad:.20}");
        }
    }
}
