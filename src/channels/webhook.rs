//! Signed HTTP posts per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com/>): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one signature per
//! configured secret so a receiver can rotate its secret without missing a message.
//! The id is the action's idempotency key: a resend carries the same id.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{http_error, DeliveryError};
use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The key bytes of a `whsec_<base64>` secret.
///
/// # Errors
/// When the secret is not `whsec_` followed by base64.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("not base64: {e}"))
}

/// The `webhook-signature` header value for `body` sent as message `id` at `timestamp`.
pub fn sign(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| decode_secret(s.expose()).ok())
        .filter_map(|key| {
            let mut mac = HmacSha256::new_from_slice(&key).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            let sig = mac.finalize().into_bytes();
            Some(format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(sig)
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A webhook-id: the idempotency key, in the characters receivers accept.
pub fn message_id(key: &str) -> String {
    format!("msg_{}", key.replace(':', "_"))
}

/// What a signed post returned: status, body and `Retry-After`.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<Duration>,
}

/// Posts `body` (JSON) signed with `secrets` and returns whatever the server answered;
/// only a transport failure (network, timeout) is an error, temporary.
///
/// # Errors
/// [`DeliveryError::Temporary`] when no answer came.
pub async fn post_raw(
    client: &reqwest::Client,
    url: &str,
    secrets: &[Secret],
    id: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, DeliveryError> {
    super::transmitting("webhook").await?;
    let timestamp = chrono::Utc::now().timestamp();
    let response = client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(secrets, id, timestamp, body))
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| DeliveryError::Temporary {
            message: format!(
                "POST {}: {}",
                crate::config::redact_url(url),
                super::describe_reqwest(&e)
            ),
            retry_after: None,
        })?;
    let status = response.status().as_u16();
    let retry_after = super::retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    Ok(Response {
        status,
        body,
        retry_after,
    })
}

/// Posts `body` (JSON) signed with `secrets`, classifying failures: network errors, 429
/// and 5xx are temporary (honouring `Retry-After`), other 4xx permanent.
///
/// # Errors
/// A [`DeliveryError`] as above.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    secrets: &[Secret],
    id: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, DeliveryError> {
    let r = post_raw(client, url, secrets, id, body, timeout).await?;
    if (200..300).contains(&r.status) {
        Ok(r)
    } else {
        Err(http_error(url, r.status, &r.body, r.retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_signs() {
        let a = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let b = Secret::new("whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=");
        let sig = sign(&[a, b], "msg_1", 1, b"{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
    }
}
