//! Background sync timing, as pure functions: the driver owns the timer (a thread natively,
//! `setTimeout` in the browser) and passes the random samples in.

/// Interval, jitter and backoff of background sync.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Time between successful syncs (default 15 minutes).
    pub interval_ms: u64,
    /// Fraction of the interval added or removed at random, in `[0, 1]` (default 0.1).
    pub jitter: f64,
    /// First retry delay after a retryable failure (default 5 s).
    pub backoff_base_ms: u64,
    /// Cap of the retry delay (default 10 minutes).
    pub backoff_cap_ms: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            interval_ms: 15 * 60_000,
            jitter: 0.1,
            backoff_base_ms: 5_000,
            backoff_cap_ms: 600_000,
        }
    }
}

impl Schedule {
    /// Delay before the next run. `failures` is the number of consecutive retryable failures
    /// (0 after a success), `retry_after_ms` what the server asked for, and `sample` a random
    /// number in `[0, 1)`.
    ///
    /// ```
    /// use tether_engine::schedule::Schedule;
    /// let s = Schedule::default();
    /// assert_eq!(s.next_delay(0, None, 0.5), s.interval_ms);
    /// assert!(s.next_delay(3, None, 0.5) > s.next_delay(1, None, 0.5));
    /// assert!(s.next_delay(50, None, 0.999) <= s.backoff_cap_ms);
    /// assert_eq!(s.next_delay(1, Some(60_000), 0.0), 60_000, "Retry-After is honoured");
    /// ```
    pub fn next_delay(&self, failures: u32, retry_after_ms: Option<u64>, sample: f64) -> u64 {
        let sample = sample.clamp(0.0, 1.0);
        if failures == 0 {
            let spread = self.interval_ms as f64 * self.jitter.clamp(0.0, 1.0);
            return (self.interval_ms as f64 + spread * (2.0 * sample - 1.0)).max(0.0) as u64;
        }
        let exp = self
            .backoff_base_ms
            .saturating_mul(1u64 << (failures - 1).min(32))
            .min(self.backoff_cap_ms);
        // "Equal jitter": half fixed, half random, so retries spread but never collapse to zero.
        let delay = exp / 2 + (exp as f64 / 2.0 * sample) as u64;
        delay
            .max(retry_after_ms.unwrap_or(0))
            .min(self.backoff_cap_ms.max(retry_after_ms.unwrap_or(0)))
    }
}
