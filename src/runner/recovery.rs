//! Putting back the work of dead workers (docs/PROTOCOL.md "recover"):
//! heartbeat keys expire silently (keyspace notifications are off on many
//! servers), so the runner looks for dead workers on a timer — one
//! `SMEMBERS` and a pipeline every heartbeat interval — and acts on what it
//! finds only while its own contact with Redis is steady ([`Contact`]).

use std::time::Duration;

use super::{Runner, RunnerNote};
use crate::os::hostname;
use crate::store::StoreError;

/// Whether this runner's view of heartbeats can be trusted. A heartbeat
/// that expired while the runner itself could not reach Redis (an outage, a
/// Redis that hung, a partition of this host) says nothing about its worker:
/// the worker could not renew it either, and is likely renewing it now with
/// an undelivered report in hand. So dead workers are recovered only once
/// the runner has had prompt answers for a whole heartbeat TTL — which also
/// holds from the runner's start — giving every live worker time to renew
/// and report first. Times are [`crate::os::awake_clock`]'s, and a gap
/// between answers longer than a recovery interval and [`Contact::SLOW`]
/// counts as contact lost: a runner that was frozen or suspended (with its
/// workers, whose keys expired meanwhile) judges nothing on its first tick.
#[derive(Debug, Default)]
pub(super) struct Contact {
    /// Since when Redis has answered promptly; `None` after trouble.
    since: Option<Duration>,
    /// When Redis last answered promptly.
    last: Option<Duration>,
}

impl Contact {
    /// An answer longer than this counts as trouble.
    const SLOW: Duration = Duration::from_secs(1);
    /// Longest gap between answers that is not trouble: one recovery
    /// interval, and a slow answer.
    const GAP: Duration = crate::agent::worker::HEARTBEAT_INTERVAL.saturating_add(Self::SLOW);

    pub(super) fn lost(&mut self) {
        self.since = None;
    }

    /// A call sent at `asked` ([`crate::os::awake_clock`]) was answered now.
    fn answered(&mut self, asked: Duration) {
        self.answered_at(asked, crate::os::awake_clock());
    }

    fn answered_at(&mut self, asked: Duration, now: Duration) {
        let slow = now.saturating_sub(asked) > Self::SLOW;
        let gap = self.last.is_some_and(|l| now.saturating_sub(l) > Self::GAP);
        if self.since.is_none() || slow || gap {
            self.since = Some(now);
        }
        self.last = Some(now);
    }

    fn steady(&self) -> bool {
        self.steady_at(crate::os::awake_clock())
    }

    fn steady_at(&self, now: Duration) -> bool {
        self.since
            .is_some_and(|t| now.saturating_sub(t) >= crate::agent::worker::HEARTBEAT_TTL)
    }
}

impl<F: FnMut(RunnerNote)> Runner<F> {
    /// Looks for dead workers once their interval is due; trouble reaching
    /// Redis only makes the contact unsteady.
    pub(super) async fn recovery_due(&mut self) -> Result<(), StoreError> {
        match self.recover().await {
            Err(e) if e.is_connection_error() => {
                self.contact.lost();
                Ok(())
            }
            other => other,
        }
    }

    /// Recovers dead workers' work, once this runner has reached Redis
    /// steadily for a heartbeat TTL (see [`Contact`]).
    async fn recover(&mut self) -> Result<(), StoreError> {
        let asked = crate::os::awake_clock();
        let dead = self.store.dead_workers().await?;
        self.contact.answered(asked);
        if dead.is_empty() || !self.contact.steady() {
            return Ok(());
        }
        for r in self.store.recover(&dead).await? {
            if let Some((pgid, start)) = r.orphan_on(&hostname()) {
                crate::os::signal_group_if_same(pgid, start, libc::SIGKILL);
            }
            if self.agents.owns(&r.worker) {
                self.agents.kick(&r.worker, r.pid);
            }
            (self.report)(RunnerNote::Recovered(r));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_is_steady_only_after_a_ttl_of_prompt_answers_without_a_gap() {
        let s = Duration::from_secs;
        let ttl = crate::agent::worker::HEARTBEAT_TTL;
        let mut c = Contact::default();
        c.answered_at(s(100), s(100));
        assert!(!c.steady_at(s(100)));
        for t in (102..=110).step_by(2) {
            c.answered_at(s(t), s(t));
        }
        assert!(c.steady_at(s(110)));
        // A freeze: the next answer is prompt, but long after the last.
        c.answered_at(s(140), s(140));
        assert!(!c.steady_at(s(140)), "a gap is trouble");
        assert!(c.steady_at(s(140) + ttl));
    }
}
