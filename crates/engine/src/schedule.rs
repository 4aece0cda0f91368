//! Background sync timing and its one decision, as pure functions: the driver owns the timer
//! (a thread natively, `setTimeout` in the browser) and passes the random samples in.
//!
//! Both drivers (`tether-native`'s `Replica::background` and the JS package's `BackgroundSync`,
//! through the wasm) call [`Schedule::after`] once per sync and do what it says, so they stop,
//! back off and wait alike:
//!
//! ```
//! use tether_engine::schedule::{Next, Outcome, Schedule};
//! use tether_engine::ErrorKind;
//! let s = Schedule { jitter: 0.0, ..Schedule::default() };
//! let down = Outcome::Failed { kind: ErrorKind::Network, retry_after_ms: None };
//! assert_eq!(s.after(down, 0, 1.0), Next::Wait { ms: 5_000, failures: 1 });
//! assert_eq!(s.after(Outcome::Synced, 1, 0.5), Next::Wait { ms: s.interval_ms, failures: 0 });
//! let denied = Outcome::Failed { kind: ErrorKind::Auth, retry_after_ms: None };
//! assert_eq!(s.after(denied, 0, 0.5), Next::Stop(ErrorKind::Auth));
//! ```

use crate::error::{Error, ErrorKind};

/// The default time between background syncs: 15 minutes. Also the age after which a scope's
/// status recommends a sync, on every driver.
pub const DEFAULT_INTERVAL_MS: u64 = 15 * 60_000;

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
            interval_ms: DEFAULT_INTERVAL_MS,
            jitter: 0.1,
            backoff_base_ms: 5_000,
            backoff_cap_ms: 600_000,
        }
    }
}

/// How one background sync ended, as [`Schedule::after`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The sync completed.
    Synced,
    /// The sync failed with an error of `kind`; `retry_after_ms` is what the server asked for
    /// (`Retry-After`), if anything.
    Failed {
        /// The error's kind.
        kind: ErrorKind,
        /// The server's `Retry-After`, in milliseconds.
        retry_after_ms: Option<u64>,
    },
}

impl Outcome {
    /// The outcome of a sync's result.
    pub fn of<T>(result: &Result<T, Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Synced,
            Err(e) => Outcome::Failed {
                kind: e.kind(),
                retry_after_ms: e.retry_after_ms(),
            },
        }
    }
}

/// What a background driver does after a sync ([`Schedule::after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Stop for good: the error is one that syncing again cannot fix until the app acts (new
    /// credentials, another configuration). The driver reports it and ends.
    Stop(ErrorKind),
    /// Sync again after `ms` milliseconds; `failures` is the new count of consecutive
    /// retryable failures (0 after a success or an error that backing off does not help).
    Wait {
        /// The delay before the next sync.
        ms: u64,
        /// Consecutive retryable failures so far.
        failures: u32,
    },
}

impl Schedule {
    /// The decision after one background sync. `failures` is the count of consecutive
    /// retryable failures before it (what the previous [`Next::Wait`] said, 0 at first) and
    /// `sample` a random number in `[0, 1)`:
    ///
    /// - synced: wait the interval (with jitter);
    /// - `Network` (the only retryable kind: the server or the path to it may come back):
    ///   back off exponentially, honouring `Retry-After`;
    /// - `Auth` (the credentials were refused) and `InvalidInput` (a bad remote URL, options or
    ///   wasm location): stop, since every later sync would fail the same way;
    /// - `Protocol`, `Integrity`, `Storage`, `Cancelled`: wait the interval, as after a
    ///   success. The engine has already retried, repaired or re-downloaded what it could
    ///   within the sync; a fixed server, freed disk space or a released lock may make the
    ///   next one succeed, and an interval apart the retries cost nothing.
    pub fn after(&self, outcome: Outcome, failures: u32, sample: f64) -> Next {
        let failures = match outcome {
            Outcome::Synced => 0,
            Outcome::Failed { kind, .. } => match kind {
                ErrorKind::Network => failures.saturating_add(1),
                ErrorKind::Auth | ErrorKind::InvalidInput => return Next::Stop(kind),
                _ => 0,
            },
        };
        let retry_after_ms = match outcome {
            Outcome::Failed { retry_after_ms, .. } if failures > 0 => retry_after_ms,
            _ => None,
        };
        Next::Wait {
            ms: self.next_delay(failures, retry_after_ms, sample),
            failures,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(kind: ErrorKind) -> Outcome {
        Outcome::Failed {
            kind,
            retry_after_ms: None,
        }
    }

    fn fixed() -> Schedule {
        Schedule {
            jitter: 0.0,
            ..Schedule::default()
        }
    }

    #[test]
    fn the_default_interval_is_the_one_constant() {
        assert_eq!(Schedule::default().interval_ms, DEFAULT_INTERVAL_MS);
        assert_eq!(DEFAULT_INTERVAL_MS, 900_000);
    }

    #[test]
    fn auth_and_invalid_input_stop_and_nothing_else_does() {
        let s = fixed();
        for kind in ErrorKind::ALL {
            let next = s.after(failed(kind), 3, 0.5);
            let stops = matches!(kind, ErrorKind::Auth | ErrorKind::InvalidInput);
            assert_eq!(next == Next::Stop(kind), stops, "{kind:?}: {next:?}");
        }
    }

    #[test]
    fn network_failures_back_off_and_a_success_resets_them() {
        let s = fixed();
        let mut failures = 0;
        let mut delays = vec![];
        for _ in 0..10 {
            let Next::Wait { ms, failures: f } = s.after(failed(ErrorKind::Network), failures, 1.0)
            else {
                panic!("a network error never stops background sync");
            };
            assert_eq!(f, failures + 1);
            failures = f;
            delays.push(ms);
        }
        assert_eq!(&delays[..4], &[5_000, 10_000, 20_000, 40_000]);
        assert!(delays.iter().all(|&d| d <= s.backoff_cap_ms));
        assert_eq!(delays[9], s.backoff_cap_ms);
        assert_eq!(
            s.after(Outcome::Synced, failures, 0.5),
            Next::Wait {
                ms: s.interval_ms,
                failures: 0
            }
        );
    }

    #[test]
    fn other_errors_wait_the_interval_and_reset_the_backoff() {
        let s = fixed();
        for kind in [
            ErrorKind::Protocol,
            ErrorKind::Integrity,
            ErrorKind::Storage,
            ErrorKind::Cancelled,
        ] {
            assert_eq!(
                s.after(failed(kind), 4, 0.5),
                Next::Wait {
                    ms: s.interval_ms,
                    failures: 0
                },
                "{kind:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_only_for_a_retryable_failure() {
        let s = fixed();
        let slow_down = Outcome::Failed {
            kind: ErrorKind::Network,
            retry_after_ms: Some(120_000),
        };
        assert_eq!(
            s.after(slow_down, 0, 0.0),
            Next::Wait {
                ms: 120_000,
                failures: 1
            }
        );
        let odd = Outcome::Failed {
            kind: ErrorKind::Protocol,
            retry_after_ms: Some(1),
        };
        assert_eq!(
            s.after(odd, 0, 0.0),
            Next::Wait {
                ms: s.interval_ms,
                failures: 0
            }
        );
    }

    #[test]
    fn outcome_of_a_result() {
        assert_eq!(Outcome::of(&Ok::<(), Error>(())), Outcome::Synced);
        let e = Error::Network {
            message: "slow down".into(),
            status: Some(429),
            retry_after_ms: Some(3_000),
            detail: None,
            source: None,
        };
        assert_eq!(
            Outcome::of(&Err::<(), _>(e)),
            Outcome::Failed {
                kind: ErrorKind::Network,
                retry_after_ms: Some(3_000)
            }
        );
    }

    #[test]
    fn failures_saturate() {
        assert_eq!(
            fixed().after(failed(ErrorKind::Network), u32::MAX, 0.0),
            Next::Wait {
                ms: 300_000,
                failures: u32::MAX
            }
        );
    }
}
