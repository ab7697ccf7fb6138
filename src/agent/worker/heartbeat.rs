//! The worker's heartbeat and its self-fencing (docs/PROTOCOL.md
//! "Fencing").
//!
//! A worker renews `alive:<worker>` every [`HEARTBEAT_INTERVAL`] for
//! [`HEARTBEAT_TTL`], from a task of its own, so renewals go on while a
//! command runs for hours. Recovery requeues a worker's task only once that
//! key has expired, so a worker that cannot renew it (Redis unreachable
//! from its host, or the worker itself stalled) must stop its command
//! *before* the key can expire: the [`Pulse`] remembers when the last
//! successful renewal was sent, and the attempt's loop stops the command
//! once that is [`FENCE_AFTER`] ago.
//!
//! The timing argument: a renewal sent at `t` (the worker's clock) is
//! executed by Redis at some `t' ≥ t`, and the key then lives until
//! `t' + TTL ≥ t + TTL`. The worker counts from `t`, SIGTERMs its command's
//! group at `t + FENCE_AFTER` (TTL − 2 s) and SIGKILLs what is left by
//! `t + TTL − FENCE_SLACK` (TTL − 1 s): the command is gone at least a second
//! before anyone can requeue its task. The clock is [`crate::os::awake_clock`],
//! which never goes back and counts time the worker spent frozen (SIGSTOP, a
//! suspended machine): a worker that wakes after a long gap stops its
//! command at once, before it renews anything. While it is frozen it cannot
//! act, and its command (a process of its own) runs on; such a command may
//! overlap the next attempt for as long as the freeze outlasts the TTL.
//!
//! Every other stop of a command (timeout, `stop`, shutdown) is bounded by
//! the same deadline ([`Pulse::kill_within`]), and a worker told to step
//! down (its id taken over, declared dead, or its records gone because
//! Redis lost its data) kills its command at once: its task may already
//! run elsewhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::notes::{Note, Notes};
use crate::os::awake_clock;
use crate::store::{Control, Heartbeat, Store, WorkerIdentity};

/// How often a worker renews its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// How long a heartbeat lasts: three missed renewals make a worker dead.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(6);
/// How long before the heartbeat could expire a worker starts stopping its
/// command.
pub const FENCE_MARGIN: Duration = Duration::from_secs(2);
/// Silence after which a worker stops its command: TTL − margin.
pub const FENCE_AFTER: Duration = HEARTBEAT_TTL.saturating_sub(FENCE_MARGIN);
/// What is left of the TTL once a fenced command has been SIGKILLed.
pub const FENCE_SLACK: Duration = Duration::from_secs(1);
/// How often a running attempt looks at the pulse.
pub const FENCE_CHECK: Duration = Duration::from_millis(250);
/// Pause before a failed renewal is tried again: several tries fit before
/// [`FENCE_AFTER`], so one lost reply does not stop a healthy command.
const RENEW_RETRY: Duration = Duration::from_millis(500);
/// Longest wait for one renewal's reply: a Redis that hangs must not hold
/// the loop past the next try.
const RENEW_TIMEOUT: Duration = Duration::from_secs(1);

const _: () =
    assert!(FENCE_AFTER.as_millis() + FENCE_SLACK.as_millis() < HEARTBEAT_TTL.as_millis());
const _: () = assert!(FENCE_AFTER.as_millis() >= 2 * HEARTBEAT_INTERVAL.as_millis());

/// When this worker last renewed its heartbeat, shared by the heartbeat
/// loop (which writes it) and the running attempt (which fences on it).
#[derive(Debug)]
pub struct Pulse {
    state: Mutex<PulseState>,
    /// Why Redis told this worker to step down, once it did.
    step_down: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Copy)]
struct PulseState {
    /// [`awake_clock`] when the last successful renewal was sent.
    last_ok: Duration,
    /// Gaps of [`FENCE_AFTER`] or more seen so far: a renewal after a gap
    /// must not hide the gap from an attempt that has not looked yet.
    lapses: u64,
    /// The current gap is counted in `lapses`.
    counted: bool,
}

/// What an attempt saw of the pulse when it started.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    lapses: u64,
}

impl Pulse {
    /// A pulse whose last renewal was sent at `sent` ([`awake_clock`]), e.g.
    /// just before registering.
    pub fn new(sent: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(PulseState {
                last_ok: sent,
                lapses: 0,
                counted: false,
            }),
            step_down: Mutex::new(None),
        })
    }

    /// Why the worker was told to step down (its id taken over, or declared
    /// dead while cut off), if it was.
    pub fn stepped_down(&self) -> Option<String> {
        self.step_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut PulseState) -> T) -> T {
        // A poisoned lock only means a panic elsewhere; the state is plain data.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// Called just before a renewal is sent; returns the send time. A gap
    /// of [`FENCE_AFTER`] or more is recorded first, so an attempt that
    /// looks only after this renewal succeeded still sees it.
    pub fn renewing(&self) -> Duration {
        let now = awake_clock();
        self.with(|s| {
            if now.saturating_sub(s.last_ok) >= FENCE_AFTER && !s.counted {
                s.lapses += 1;
                s.counted = true;
            }
        });
        now
    }

    /// A renewal sent at `sent` succeeded.
    pub fn renewed(&self, sent: Duration) {
        self.with(|s| {
            if sent > s.last_ok {
                s.last_ok = sent;
                s.counted = false;
            }
        });
    }

    pub fn mark(&self) -> Mark {
        Mark {
            lapses: self.with(|s| s.lapses),
        }
    }

    /// How long a command of this worker may still run: until
    /// [`FENCE_SLACK`] before its heartbeat can expire, counted from the
    /// last renewal; nothing once the worker was told to step down (its
    /// task may already run elsewhere). Every stop of a command is bounded
    /// by it, so a stop's grace never outlasts the fence.
    pub fn kill_within(&self) -> Duration {
        if self.stepped_down().is_some() {
            return Duration::ZERO;
        }
        let now = awake_clock();
        let last_ok = self.with(|s| s.last_ok);
        (last_ok + HEARTBEAT_TTL.saturating_sub(FENCE_SLACK)).saturating_sub(now)
    }

    /// How long the worker has gone without a renewal, if that is
    /// [`FENCE_AFTER`] or more now or was at any time since `mark`.
    pub fn lapsed(&self, mark: Mark) -> Option<Duration> {
        let now = awake_clock();
        self.with(|s| {
            let silent = now.saturating_sub(s.last_ok);
            (silent >= FENCE_AFTER || s.lapses > mark.lapses).then_some(silent.max(FENCE_AFTER))
        })
    }
}

/// How long a fenced command gets between SIGTERM and SIGKILL after
/// `silent` without a renewal: whatever keeps the kill [`FENCE_SLACK`]
/// ahead of the heartbeat's expiry, and nothing once that is past.
pub fn fence_grace(silent: Duration) -> Duration {
    HEARTBEAT_TTL
        .saturating_sub(FENCE_SLACK)
        .saturating_sub(silent)
        .min(FENCE_MARGIN - FENCE_SLACK)
}

/// Renews the heartbeat until aborted. A renewal that is refused (the id
/// was taken over, or the worker was declared dead) sends `Shutdown` on
/// `control` and ends the loop.
pub(super) async fn heartbeat_loop(
    store: Store,
    identity: WorkerIdentity,
    pulse: Arc<Pulse>,
    notes: Arc<Notes>,
    control: mpsc::Sender<Control>,
) {
    // Renewals are retried at a fixed pause, not a growing one: the fence
    // is only a few tries away.
    let mut failing = false;
    loop {
        // A fixed pause from the end of the last try rather than an
        // interval: after a freeze, one renewal at once instead of a burst.
        let pause = if failing {
            RENEW_RETRY
        } else {
            HEARTBEAT_INTERVAL
        };
        tokio::time::sleep(pause).await;
        let sent = pulse.renewing();
        let renewal =
            tokio::time::timeout(RENEW_TIMEOUT, store.heartbeat(&identity, HEARTBEAT_TTL)).await;
        match renewal {
            Ok(Ok(Heartbeat::Alive)) => {
                pulse.renewed(sent);
                if std::mem::take(&mut failing) {
                    notes.emit(Note::RedisBack { doing: "heartbeat" });
                }
            }
            Ok(Ok(Heartbeat::StepDown(why))) => {
                notes.emit(Note::Stopping { why: why.clone() });
                *pulse.step_down.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                // The same path as `tt kill`: stop the command, then exit.
                let _ = control.send(Control::Shutdown).await;
                return;
            }
            failed => {
                // Report the first failure of a run; the loop retries anyway.
                if !failing {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no reply within {RENEW_TIMEOUT:?}"),
                    };
                    notes.emit(Note::RedisError {
                        doing: "renewing the heartbeat",
                        error,
                        retry_in: Some(RENEW_RETRY),
                    });
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_outlive_missed_renewals() {
        assert!(HEARTBEAT_TTL >= HEARTBEAT_INTERVAL * 3);
    }

    #[test]
    fn a_gap_stays_visible_after_the_next_renewal() {
        let long_ago = awake_clock().saturating_sub(FENCE_AFTER * 2);
        let pulse = Pulse::new(long_ago);
        let mark = pulse.mark();
        let sent = pulse.renewing();
        pulse.renewed(sent);
        assert!(pulse.lapsed(mark).is_some(), "the gap was seen");
        assert!(
            pulse.lapsed(pulse.mark()).is_none(),
            "a later attempt is fine"
        );
    }

    #[test]
    fn a_stop_must_end_before_the_heartbeat_can_expire() {
        let pulse = Pulse::new(awake_clock());
        let left = pulse.kill_within();
        assert!(left <= HEARTBEAT_TTL - FENCE_SLACK && left > FENCE_AFTER - FENCE_SLACK);
        let silent = Pulse::new(awake_clock().saturating_sub(HEARTBEAT_TTL));
        assert_eq!(silent.kill_within(), Duration::ZERO);
        *pulse.step_down.lock().unwrap() = Some("replaced".into());
        assert_eq!(pulse.kill_within(), Duration::ZERO, "stepped down");
    }

    #[test]
    fn a_fresh_pulse_has_not_lapsed() {
        let pulse = Pulse::new(awake_clock());
        assert!(pulse.lapsed(pulse.mark()).is_none());
    }

    #[test]
    fn the_fence_kills_before_the_heartbeat_can_expire() {
        assert_eq!(fence_grace(FENCE_AFTER), Duration::from_secs(1));
        assert!(FENCE_AFTER + fence_grace(FENCE_AFTER) + FENCE_SLACK <= HEARTBEAT_TTL);
        assert_eq!(fence_grace(HEARTBEAT_TTL), Duration::ZERO);
        assert_eq!(fence_grace(Duration::from_secs(60)), Duration::ZERO);
    }
}
