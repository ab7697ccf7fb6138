//! How long to wait before trying again, for everything tinytown retries.
//!
//! A [`Policy`] is a first pause that doubles with each failure in a row up
//! to a cap, optionally with jitter; a [`Backoff`] counts the failures of one
//! thing being retried. Each caller names its policy as a constant beside
//! the code that retries:
//!
//! - a failed task's next attempt: `TASK_RETRY` in
//!   `agent/worker/attempt.rs` (2 s, doubling, at most 5 min, ±25 % so tasks
//!   that failed together do not all come back at once);
//! - a worker's Redis call that failed: `REDIS_RETRY` in
//!   `agent/worker/redis_retry.rs` (250 ms up to a heartbeat interval);
//! - restarting a replica `tt run` supervises: `RESTART` in
//!   `runner/supervisor.rs` (500 ms up to 30 s).

use std::time::Duration;

/// Pauses that start at `first` and double with each failure in a row, up
/// to `max`, each then moved at random by up to ± `jitter` of itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub first: Duration,
    pub max: Duration,
    /// A fraction in [0, 1): 0.25 spreads each pause over ±25 %.
    pub jitter: f64,
}

impl Policy {
    /// `first`, doubling up to `max`, without jitter.
    pub const fn doubling(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            jitter: 0.0,
        }
    }

    /// This policy with each pause spread over ± `fraction` of itself.
    pub const fn jittered(self, fraction: f64) -> Self {
        Self {
            jitter: fraction,
            ..self
        }
    }

    /// The pause after `failures` failures in a row (1: the first; 0 counts
    /// as 1): `first` doubled `failures − 1` times, at most `max`, jittered.
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let plain = self.first.saturating_mul(1 << doublings).min(self.max);
        if self.jitter == 0.0 {
            return plain;
        }
        plain.mul_f64(1.0 - self.jitter + 2.0 * self.jitter * unit_random())
    }
}

/// The failures in a row of one thing being retried under a [`Policy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    failures: u32,
}

impl Backoff {
    pub const fn new(policy: Policy) -> Self {
        Self {
            policy,
            failures: 0,
        }
    }

    /// Records a failure; returns the pause before the next try.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy.after(self.failures)
    }

    /// Records a success: the next failure pauses [`Policy::first`] again.
    /// Returns whether this ended a run of failures.
    pub fn succeeded(&mut self) -> bool {
        std::mem::take(&mut self.failures) > 0
    }

    /// Starts over: the next failure pauses [`Policy::first`] again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A number in [0, 1) from a freshly keyed std hasher (each `RandomState`
/// gets new keys): enough for jitter, without a random-number crate.
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::os::now_ms());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap() {
        let p = Policy::doubling(Duration::from_millis(500), Duration::from_secs(30));
        let pauses: Vec<u128> = (1..=9).map(|n| p.after(n).as_millis()).collect();
        assert_eq!(
            pauses,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(p.after(0), p.first);
        assert_eq!(p.after(u32::MAX), p.max);
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_varies() {
        let p = Policy::doubling(Duration::from_secs(2), Duration::from_secs(300)).jittered(0.25);
        for (n, secs) in [(1, 2.0), (2, 4.0), (3, 8.0), (50, 300.0)] {
            let s = p.after(n).as_secs_f64();
            assert!(
                s >= secs * 0.75 && s <= secs * 1.25,
                "{s} not around {secs}"
            );
        }
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| p.after(1).as_nanos()).collect();
        assert!(samples.len() > 1, "jitter varies");
    }

    #[test]
    fn a_success_starts_the_pauses_over() {
        let mut b = Backoff::new(Policy::doubling(
            Duration::from_millis(250),
            Duration::from_secs(2),
        ));
        assert!(!b.succeeded(), "no failures to end");
        assert_eq!(b.failed(), Duration::from_millis(250));
        assert_eq!(b.failed(), Duration::from_millis(500));
        assert!(b.succeeded());
        assert_eq!(b.failed(), Duration::from_millis(250));
    }
}
