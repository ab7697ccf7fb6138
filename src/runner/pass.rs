//! One turn of the runner's work between two wakes: a resync when Redis
//! may have lost records, a dispatch pass over what changed, and with
//! `--until-done` the check whether anything can still move.

use std::collections::{HashMap, HashSet};

use super::plan_file::Reloaded;
use super::summary::RunSummary;
use super::{RunError, Runner, RunnerNote};
use crate::Status;
use crate::dispatch::{AgentSlot, Snapshot};
use crate::os::{now_ms, release_free_memory};
use crate::store::{LIGHT_FIELDS, StoreError};

/// What the loop does after a pass.
pub(super) enum Pass {
    /// Wait for the next wake.
    Wait,
    /// Pass again at once: a resync wrote records back.
    Again,
    /// `--until-done` and nothing can move any more.
    Done(RunSummary),
}

impl<F: FnMut(RunnerNote)> Runner<F> {
    /// Resyncs if needed, dispatches unless dispatch is held, and with
    /// `--until-done` says whether the run is over.
    pub(super) async fn pass(&mut self) -> Result<Pass, RunError> {
        // Only once Redis answers: during an outage the event reader fails
        // every second, and each resync reads and parses the file.
        if self.resync && self.store.ping().await.is_ok() {
            match self.resync().await {
                Ok(_) => {}
                Err(RunError::Store(e)) if e.is_connection_error() => {}
                Err(e) => return Err(e),
            }
        }
        // Held after the event reader failed (see `Runner::events_failed`).
        if now_ms() < self.dispatch_hold {
            self.retry_wake = Some(self.dispatch_hold);
            return Ok(Pass::Wait);
        }
        match self.dispatch().await {
            Ok(next) => self.retry_wake = next,
            Err(e) if e.is_connection_error() => {
                self.contact.lost();
                return Ok(Pass::Wait);
            }
            Err(e) => return Err(e.into()),
        }
        if !self.opts.until_done {
            return Ok(Pass::Wait);
        }
        self.until_done().await
    }

    /// Whether nothing can move any more: done, unless Redis lost records
    /// of the plan (then they are pending again, and run).
    async fn until_done(&mut self) -> Result<Pass, RunError> {
        let Some(s) = &self.snapshot else {
            return Ok(Pass::Wait);
        };
        // Live workers only add to what may go on, so the check that
        // usually settles it needs no Redis round trips.
        let slots = self.runnable_slots();
        // A spent town budget leaves ready work where it is: only work in
        // flight goes on.
        let spent = self.budget.stopped().is_some();
        let moves = |live: &HashSet<String>| match spent {
            true => s.in_flight_active(&slots, live),
            false => s.active(&slots, live),
        };
        if moves(&HashSet::new()) {
            return Ok(Pass::Wait);
        }
        let live = self.store.live_agent_names().await.unwrap_or_default();
        // Work that waits for another town moves when that town does.
        if moves(&live) || s.graph.waits_on_other_towns() {
            return Ok(Pass::Wait);
        }
        let finished = match spent {
            // What waits for the budget is stuck (`explain` says why).
            true => self.summary(s, &HashMap::new(), &HashSet::new(), false),
            false => self.summary(s, &slots, &live, false),
        };
        // A file that did not load is read again at its next save, not on
        // every pass.
        let resynced = if self.await_save {
            Ok(Reloaded::NotLoaded)
        } else {
            self.resync().await
        };
        match resynced {
            Ok(Reloaded::Nothing) => Ok(Pass::Done(finished)),
            Ok(Reloaded::NotLoaded) if self.plan_present() => Ok(Pass::Done(finished)),
            // Records are gone and the file cannot restore them: not done;
            // the next save reloads.
            Ok(Reloaded::NotLoaded) => {
                self.await_save = true;
                Ok(Pass::Wait)
            }
            Ok(Reloaded::Wrote) => Ok(Pass::Again),
            Err(RunError::Store(e)) if e.is_connection_error() => Ok(Pass::Wait),
            Err(e) => Err(e),
        }
    }

    /// [`Runner::slots`] without the agents that cannot start.
    pub(super) fn runnable_slots(&self) -> HashMap<String, AgentSlot> {
        let mut slots = self.slots();
        slots.retain(|name, _| !self.cannot_start.contains_key(name));
        slots
    }

    /// Window and backlog flag of every declared agent.
    pub(super) fn slots(&self) -> HashMap<String, AgentSlot> {
        self.plan
            .agents
            .iter()
            .map(|(name, a)| {
                (
                    name.clone(),
                    AgentSlot {
                        window: a.prefetch.unwrap_or(1).max(1) * a.count.unwrap_or(1).max(1),
                        backlog: a.backlog.unwrap_or(false),
                    },
                )
            })
            .collect()
    }

    /// One dispatch pass. Re-reads only the records events named since the
    /// last pass (all of them the first time), so its cost follows what
    /// changed, not the size of the town. Returns when the next task waiting
    /// for its retry backoff becomes due.
    async fn dispatch(&mut self) -> Result<Option<u64>, StoreError> {
        // Taken out, so an error below leaves `None`: the next pass reads
        // everything again rather than trust a half-updated view.
        let mut snapshot = match self.snapshot.take() {
            Some(mut s) => {
                if !self.dirty.is_empty() {
                    let ids: Vec<String> = self.dirty.drain().collect();
                    let records = self.store.records_with(&ids, &LIGHT_FIELDS).await?;
                    self.note_corrupt(&records);
                    s.refresh(records);
                }
                s
            }
            None => {
                self.dirty.clear();
                let records = self.store.tasks_with(&LIGHT_FIELDS).await?;
                self.note_corrupt(&records);
                let s = Snapshot::new(records);
                release_free_memory();
                s
            }
        };
        match self.others.update(&self.store, &mut snapshot).await {
            Ok(notes) => {
                for note in notes {
                    (self.report)(RunnerNote::Remote(note));
                }
            }
            Err(e) if e.is_connection_error() => return Err(e),
            // Another town's keys hold what tt never writes: its
            // dependants keep waiting, this town goes on.
            Err(e) => self.redis_trouble("reading another town", e),
        }
        let doomed = snapshot.fail_fast();
        if !doomed.is_empty() {
            self.store.cancel(&doomed).await?;
            let ids: Vec<String> = doomed.into_iter().map(|(id, _)| id).collect();
            snapshot.refresh(self.store.records_with(&ids, &LIGHT_FIELDS).await?);
        }
        if self.town_budget_spent().await? {
            self.snapshot = Some(snapshot);
            return Ok(None);
        }
        let (batch, next_retry) = snapshot.plan_dispatch(&self.slots(), now_ms());
        let mut lost = false;
        if !batch.is_empty() {
            let out = self.store.dispatch(&batch).await?;
            for id in out.sent {
                // The `dispatched` event brings the full record later.
                snapshot.set_status(&id, Status::Assigned);
            }
            lost = !out.missing.is_empty();
        }
        if lost {
            // Restore what the file has from it, then read the town again:
            // a record that is gone and not in the file (`tt assign`) must
            // leave the snapshot rather than be offered on every pass.
            self.resync = true;
        } else {
            self.snapshot = Some(snapshot);
        }
        Ok(next_retry)
    }

    /// Reports each corrupt record once, and forgets those fixed since.
    fn note_corrupt(&mut self, records: &[crate::store::TaskRecord]) {
        for r in records {
            match &r.corrupt {
                Some(what) if self.corrupt.get(&r.id) != Some(what) => {
                    self.corrupt.insert(r.id.clone(), what.clone());
                    (self.report)(RunnerNote::Corrupt {
                        task: r.id.clone(),
                        what: what.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    self.corrupt.remove(&r.id);
                }
            }
        }
    }

    /// Whether every task of the last plan that loaded has a record in the
    /// snapshot.
    fn plan_present(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|s| {
            self.plan_ids
                .iter()
                .all(|id| s.graph.index_of(id).is_some())
        })
    }
}
