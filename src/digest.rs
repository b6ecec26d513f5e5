//! SHA-256 digests in lowercase hex: rule script versions, facts snapshots, action keys,
//! archived documents, imported files and API token secrets.

use sha2::{Digest, Sha256};

/// The SHA-256 of `bytes`, 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// HMAC-SHA256 of `message` under `key`, 64 lowercase hex digits.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    match <Hmac<Sha256>>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            hex(&mac.finalize().into_bytes())
        }
        // HMAC takes a key of any length.
        Err(_) => String::new(),
    }
}

/// The first 8 bytes of the SHA-256 of `bytes`, as a number: a stable, evenly spread
/// hash (variant assignment).
pub fn sha256_u64(bytes: &[u8]) -> u64 {
    let d = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// 32 random bytes from the operating system, base64url without padding: session
/// secrets, form tokens, salts.
///
/// # Errors
/// The system's random source cannot be read.
pub fn random_token() -> std::io::Result<String> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes()?))
}

/// 32 random bytes from the operating system.
///
/// # Errors
/// The system's random source cannot be read.
pub fn random_bytes() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// `bytes` in lowercase hex, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
