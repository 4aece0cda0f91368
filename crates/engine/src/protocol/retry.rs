//! The retry policy: what is retried, how long to wait, and `Retry-After`.

use std::sync::Mutex;

use super::{Endpoint, Failure};
use crate::schedule::Schedule;

/// How one call is retried. One policy for every transport; tests shrink the delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 4).
    pub retries: u32,
    /// First backoff delay; doubles per retry, with equal jitter ([`Schedule`]; default 500 ms).
    pub backoff_base_ms: u64,
    /// Cap of the backoff delay (default 8 s).
    pub backoff_cap_ms: u64,
    /// Longest single wait; a `Retry-After` above it is not waited out but returned in the
    /// error's `retry_after_ms` (default 10 s).
    pub max_wait_ms: u64,
    /// Time allowed from the end of the first attempt to the start of the last retry
    /// (default 30 s).
    pub budget_ms: u64,
    /// Time all retrying calls of one sync may spend retrying, summed over the calls (each
    /// call's share measured like `budget_ms`; default 120 s). Once it is spent, the rest of
    /// the sync's calls are made once each. A transport keeps the sum in a [`RunBudget`],
    /// reset by [`Remote::begin_run`](crate::Remote::begin_run).
    pub run_budget_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 4,
            backoff_base_ms: 500,
            backoff_cap_ms: 8_000,
            max_wait_ms: 10_000,
            budget_ms: 30_000,
            run_budget_ms: 120_000,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The backoff as a [`Schedule`] (only its backoff fields matter here).
    pub fn schedule(&self) -> Schedule {
        Schedule {
            backoff_base_ms: self.backoff_base_ms,
            backoff_cap_ms: self.backoff_cap_ms,
            ..Schedule::default()
        }
    }

    /// The wait before retry number `failures` (1 after the first failed attempt), or `None`
    /// when the call should give up: retries used up, a `Retry-After` longer than
    /// [`RetryPolicy::max_wait_ms`], or the budget spent (`elapsed_ms` since the first attempt).
    ///
    /// ```
    /// use tether_engine::protocol::RetryPolicy;
    /// let p = RetryPolicy::default();
    /// assert_eq!(p.wait(1, None, 0, 0.0), Some(250), "half the base, without jitter");
    /// assert_eq!(p.wait(1, Some(3_000), 0, 0.0), Some(3_000), "Retry-After is a floor");
    /// assert_eq!(p.wait(1, Some(60_000), 0, 0.0), None, "too long to wait inline");
    /// assert_eq!(p.wait(5, None, 0, 0.0), None, "4 retries");
    /// assert_eq!(p.wait(2, None, 29_900, 0.0), None, "over the 30 s budget");
    /// ```
    pub fn wait(
        &self,
        failures: u32,
        retry_after_ms: Option<u64>,
        elapsed_ms: i64,
        sample: f64,
    ) -> Option<u64> {
        if failures == 0 || failures > self.retries {
            return None;
        }
        if retry_after_ms.is_some_and(|ms| ms > self.max_wait_ms) {
            return None;
        }
        let wait = self
            .schedule()
            .next_delay(failures, retry_after_ms, sample)
            .min(self.max_wait_ms);
        let elapsed = u64::try_from(elapsed_ms).unwrap_or(0);
        (elapsed.saturating_add(wait) <= self.budget_ms).then_some(wait)
    }
}

/// The retry time a transport's calls have spent since the sync began (see
/// [`RetryPolicy::run_budget_ms`]). Shared by the calls of one remote; thread-safe.
///
/// ```
/// use tether_engine::protocol::RunBudget;
/// let budget = RunBudget::default();
/// budget.spend(1_500);
/// budget.spend(500);
/// assert_eq!(budget.spent_ms(), 2_000);
/// // A call still running when the next sync begins (its sync was cancelled) costs the next
/// // one nothing.
/// let run = budget.run();
/// budget.reset();
/// budget.spend_in(run, 700);
/// assert_eq!(budget.spent_ms(), 0);
/// ```
#[derive(Debug, Default)]
pub struct RunBudget {
    /// The run counted (one more at each reset) and what it spent.
    spent: Mutex<(u64, u64)>,
}

/// A clone counts on its own, from what the original had spent.
impl Clone for RunBudget {
    fn clone(&self) -> Self {
        RunBudget {
            spent: Mutex::new(*self.lock()),
        }
    }
}

impl RunBudget {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, u64)> {
        self.spent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds spent retrying since the last [`RunBudget::reset`].
    pub fn spent_ms(&self) -> u64 {
        self.lock().1
    }

    /// The sync counted now: a call notes it when it starts and spends with
    /// [`RunBudget::spend_in`].
    pub fn run(&self) -> u64 {
        self.lock().0
    }

    /// Adds the retry time of one call ([`Exchange::retry_ms`](super::Exchange::retry_ms)).
    pub fn spend(&self, ms: u64) {
        let mut spent = self.lock();
        spent.1 = spent.1.saturating_add(ms);
    }

    /// Adds the retry time of a call made for sync `run` ([`RunBudget::run`] when it started),
    /// unless another sync has begun since.
    pub fn spend_in(&self, run: u64, ms: u64) {
        let mut spent = self.lock();
        if spent.0 == run {
            spent.1 = spent.1.saturating_add(ms);
        }
    }

    /// A new sync begins.
    pub fn reset(&self) {
        let mut spent = self.lock();
        *spent = (spent.0.wrapping_add(1), 0);
    }
}

/// Whether an attempt at `endpoint` that ended with `outcome` (a status, or a transport
/// failure) is retried. GETs and pushes of identified mutations: every failure, 408, 429 and
/// 5xx but 501 and 505. Other pushes only when they cannot have been applied: not sent, 408,
/// 429, 503. A configuration failure never: the next attempt would fail the same way.
pub fn is_retried(endpoint: Endpoint, outcome: Result<u16, Failure>) -> bool {
    let idempotent = endpoint.is_idempotent();
    match outcome {
        Err(Failure::Config) => false,
        Err(failure) => idempotent || failure == Failure::NotSent,
        Ok(408 | 429 | 503) => true,
        Ok(501 | 505) => false,
        Ok(500..=599) => idempotent,
        Ok(_) => false,
    }
}

/// A `Retry-After` value in milliseconds from `now_ms`: delay-seconds, or an IMF-fixdate
/// (a date in the past is 0). Anything else is `None` (ignored).
///
/// ```
/// use tether_engine::protocol::retry_after_ms;
/// assert_eq!(retry_after_ms(" 120 ", 0), Some(120_000));
/// let now = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
/// assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(30_000));
/// assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(0));
/// assert_eq!(retry_after_ms("soon", now), None);
/// ```
pub fn retry_after_ms(value: &str, now_ms: i64) -> Option<u64> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only an overflow fails to parse, and that is "very long".
        return Some(v.parse::<u64>().unwrap_or(u64::MAX).saturating_mul(1000));
    }
    let at = parse_http_date(v)?;
    Some(u64::try_from(at.saturating_sub(now_ms)).unwrap_or(0))
}

/// An IMF-fixdate (RFC 9110 §5.6.7, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`) in milliseconds
/// since the Unix epoch. The weekday must be a weekday name but is not checked against the
/// date.
pub fn parse_http_date(s: &str) -> Option<i64> {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    if [7, 11, 16].iter().any(|&i| b[i] != b' ') || b[19] != b':' || b[22] != b':' {
        return None;
    }
    if !DAYS.contains(&&b[0..3]) {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == &b[8..11])? as i64 + 1;
    let (day, year) = (digits(&b[5..7])?, digits(&b[12..16])?);
    let (hour, min, sec) = (
        digits(&b[17..19])?,
        digits(&b[20..22])?,
        digits(&b[23..25])?,
    );
    if day < 1 || day > days_in_month(year, month) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + min) * 60 + sec) * 1000)
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
