//! Abuse limits kept in memory: fixed windows per key (an IP address, a
//! phone). Approximate across replicas by design; the durable limits (OTP
//! sends per phone) live in the database.

use dashmap::DashMap;
use glassguard_protocol::ErrorCode;
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// Counters per (limit name, key).
#[derive(Debug, Default)]
pub struct Limiter {
    windows: DashMap<(&'static str, String), (Instant, u32)>,
}

impl Limiter {
    /// Counts one event; refuses with 429 and Retry-After past `max` per `window`.
    pub fn check(
        &self,
        name: &'static str,
        key: &str,
        max: u32,
        window: Duration,
    ) -> Result<(), ApiError> {
        if self.windows.len() > 200_000 {
            self.windows
                .retain(|_, (start, _)| start.elapsed() < window);
        }
        let mut e = self
            .windows
            .entry((name, key.to_string()))
            .or_insert((Instant::now(), 0));
        let (start, count) = e.value_mut();
        if start.elapsed() >= window {
            *start = Instant::now();
            *count = 0;
        }
        if *count >= max {
            let retry = window.saturating_sub(start.elapsed()).as_secs().max(1);
            return Err(ApiError::TooMany(
                ErrorCode::RateLimited,
                "too many requests from this address".into(),
                retry,
            ));
        }
        *count += 1;
        Ok(())
    }
}
