//! How failed deliveries are retried: exponential backoff with jitter, capped, then a
//! dead letter after the last attempt (`dispatch.*` in the configuration; insurer
//! handovers have a policy of their own).

use std::time::Duration;

/// Retry policy.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: i64,
    pub base: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(30),
            max_delay: Duration::from_secs(6 * 3600),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1`: base × 2^(attempt-1), capped, ±20 % jitter.
    pub fn delay(&self, attempt: i64, jitter_seed: u64) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let raw = self
            .base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max_delay);
        // Cheap, deterministic per action and attempt: enough to spread retries apart.
        let spread = (jitter_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % 401; // 0..=400
        let factor = 800 + spread; // 0.8 .. 1.2
        Duration::from_millis((raw.as_millis() as u64).saturating_mul(factor) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        let d1 = p.delay(1, 7).as_secs_f64();
        let d3 = p.delay(3, 7).as_secs_f64();
        assert!((24.0..=36.0).contains(&d1), "{d1}");
        assert!((96.0..=144.0).contains(&d3), "{d3}");
        assert!(p.delay(40, 1) <= Duration::from_secs_f64(6.0 * 3600.0 * 1.2));
        assert_ne!(p.delay(2, 1), p.delay(2, 2), "jitter spreads retries");
    }
}
