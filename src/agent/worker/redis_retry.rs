//! Retrying a worker's Redis call until it answers: the pauses
//! ([`REDIS_RETRY`]), the notes when Redis fails and when it answers again,
//! whether a script may already have run, and when an orphaned worker gives
//! up ([`super::orphan`]).

use std::time::Duration;

use tokio::time::Instant;

use super::HEARTBEAT_INTERVAL;
use super::notes::{Note, Notes};
use super::orphan::orphan_gives_up;
use crate::backoff::{Backoff, Policy};
use crate::store::StoreError;

/// Pauses before retrying after a Redis error. At most a heartbeat
/// interval: once Redis is back, a report that waited out an outage gets
/// through well before a runner that was cut off too starts recovering (it
/// waits a heartbeat TTL after reconnecting).
const REDIS_RETRY: Policy = Policy::doubling(Duration::from_millis(250), HEARTBEAT_INTERVAL);

/// One call (or loop of calls) being retried.
pub(super) struct RedisRetry<'a> {
    notes: &'a Notes,
    backoff: Backoff,
    again: bool,
    orphaned: Option<Instant>,
}

impl<'a> RedisRetry<'a> {
    pub(super) fn new(notes: &'a Notes) -> Self {
        Self {
            notes,
            backoff: Backoff::new(REDIS_RETRY),
            again: false,
            orphaned: None,
        }
    }

    /// Whether a script may have run on an earlier try with only its reply
    /// lost (the connection broke): the next try says so, and the script
    /// does not act twice.
    pub(super) fn again(&self) -> bool {
        self.again
    }

    /// The call answered: notes that Redis is back (`back` names the call)
    /// if it had failed.
    pub(super) fn answered(&mut self, back: &'static str) {
        if self.backoff.succeeded() {
            self.notes.emit(Note::RedisBack { doing: back });
        }
    }

    /// The call failed while `doing`: notes it, and returns the pause before
    /// the next try.
    pub(super) fn failed(&mut self, doing: &'static str, e: &StoreError) -> Duration {
        self.again = self.again || e.is_connection_error();
        let retry_in = self.backoff.failed();
        self.notes.emit(Note::RedisError {
            doing,
            error: e.to_string(),
            retry_in: Some(retry_in),
        });
        retry_in
    }

    /// Whether an orphaned worker has now failed long enough to give up
    /// ([`super::ORPHAN_PATIENCE`]).
    pub(super) fn orphan_gives_up(&mut self) -> bool {
        orphan_gives_up(&mut self.orphaned)
    }
}
