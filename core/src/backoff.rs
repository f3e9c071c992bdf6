//! Capped exponential backoff with jitter, for retrying transient failures.
//!
//! The delay before retry `n` (counting from 1) is drawn uniformly from
//! `[d/2, d]` where `d = min(cap, base * 2^(n-1))` ("equal jitter": never a
//! hammering zero, yet devices that failed together spread out). A server's
//! `Retry-After` is a floor: we never come back sooner than asked, though a
//! very long one is capped at [`Backoff::max_retry_after`].

use std::time::Duration;

/// Backoff settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay (before jitter).
    pub base: Duration,
    /// The longest delay (before jitter).
    pub cap: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(attempt, retry_after, fastrand::f64())
    }

    /// The longest delay [`Backoff::delay`] can give.
    pub fn longest(&self) -> Duration {
        self.cap.max(self.max_retry_after)
    }

    /// [`Backoff::delay`] with the random draw `unit` in `[0, 1)` given.
    fn delay_with(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let full = self.base.saturating_mul(1u32 << exp.min(31)).min(self.cap);
        let jittered = full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        match retry_after {
            Some(ra) => jittered.max(ra.min(self.max_retry_after)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_then_caps() {
        let b = Backoff::default();
        assert_eq!(b.delay_with(1, None, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay_with(2, None, 1.0), Duration::from_secs(4));
        assert_eq!(b.delay_with(5, None, 1.0), Duration::from_secs(32));
        assert_eq!(b.delay_with(20, None, 1.0), b.cap);
        assert_eq!(b.delay_with(u32::MAX, None, 1.0), b.cap);
        assert_eq!(b.delay_with(20, None, 0.0), b.cap / 2);
    }

    #[test]
    fn is_jittered() {
        let b = Backoff::default();
        let draws: std::collections::BTreeSet<_> = (0..50).map(|_| b.delay(6, None)).collect();
        assert!(
            draws.len() > 10,
            "50 draws gave only {} values",
            draws.len()
        );
    }

    #[test]
    fn honours_retry_after_as_a_floor_within_reason() {
        let b = Backoff::default();
        assert_eq!(
            b.delay_with(1, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            b.delay_with(1, Some(Duration::from_secs(86_400)), 0.0),
            b.max_retry_after
        );
        // A short Retry-After does not shorten a long backoff.
        assert_eq!(b.delay_with(20, Some(Duration::from_secs(1)), 1.0), b.cap);
    }

    proptest! {
        #[test]
        fn always_within_half_to_full_of_the_capped_delay(attempt in 0u32..100, unit in 0.0f64..1.0) {
            let b = Backoff::default();
            let d = b.delay_with(attempt, None, unit);
            prop_assert!(d <= b.cap);
            let full = b.base.saturating_mul(1 << attempt.saturating_sub(1).min(31)).min(b.cap);
            prop_assert!(d >= full / 2);
            prop_assert!(d <= full);
        }
    }
}
