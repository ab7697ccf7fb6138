//! One attempt: start the task's command, watch it (its exit, the
//! agent's timeout, the heartbeat's fence, `stop` and `shutdown`), then
//! report how it ended with `finish.lua`, retrying while Redis fails.

use std::time::Duration;

use super::control::describe;
use super::heartbeat::{FENCE_CHECK, fence_grace};
use super::notes::Note;
use super::orphan::{orphan_note, runner_gone};
use super::pause;
use super::reading;
use super::redis_retry::RedisRetry;
use super::serve::Loop;
use super::workspace;
use crate::agent::adapter::stream::Follow;
use crate::agent::budget::Budget;
use crate::agent::command::TaskVars;
use crate::agent::process::{self, Ending, Launch, STOP_GRACE, TAIL_BYTES};
use crate::backoff::Policy;
use crate::state_dir::task_log;
use crate::store::{Claim, ClaimedTask, Control, Facts, RedisTarget, Report, StoreError};

/// Wait before a failed attempt is dispatched again: 2 s, doubling per
/// attempt, at most 5 minutes, with ±25 % jitter so tasks that failed
/// together (a flaky service) do not all come back at the same instant.
pub const TASK_RETRY: Policy =
    Policy::doubling(Duration::from_secs(2), Duration::from_secs(300)).jittered(0.25);

/// How running one task ended for the loop.
pub(super) enum Ran {
    /// Finished and reported; with the next message when the report took
    /// and claimed it.
    Done(Option<(String, Claim)>),
    /// Stopped by a shutdown: left for recovery, the worker exits.
    Interrupted,
}

impl Loop<'_> {
    /// Runs one claimed task: starts its command with its log, watches it
    /// and reports how it ended.
    pub(super) async fn run_task(&mut self, task: ClaimedTask, raw: &str) -> Ran {
        let config = &self.worker.config;
        let log = task_log(&self.worker.project_dir, &task.id, task.attempt);
        let vars = TaskVars {
            id: task.id.clone(),
            description: task.description.clone(),
            tags: task.tags.clone(),
            parent: task.parent.clone(),
            attempt: task.attempt,
        };
        // What the agent's output tells (reading.rs): the session a retry
        // resumes, the budget held while it runs.
        let resumed = reading::resume_session(config, &task);
        let budget = reading::budget(config, &task);
        let argv = config.argv_for(&vars, &budget, resumed.as_deref());
        let mut env = self.env(&task);
        let log = process::Log::open(&log);
        // The worktree of `workspace = "worktree"` (see `workspace`).
        let place = workspace::prepare(self.worker, &task, &log).await;
        let workdir = place.workdir(&config.workdir);
        env.extend(place.env());
        log.note(&format!(
            "task `{}` attempt {} on worker `{}`: running `{}` in {}",
            task.id,
            task.attempt,
            self.identity.id,
            config.program(),
            workdir.display()
        ));
        let launch = Launch {
            argv: &argv,
            env: &env,
            workdir: &workdir,
            log: &log,
            capture: config.output().is_some(),
        };
        // What the attempt learns on the way (its workspace, what the
        // agent's output says), reported with how it ended.
        let mut facts = Facts::new();
        let mut follow = None;
        let started = match place.failure() {
            Some(why) => Err(why),
            None => process::start(launch),
        };
        let ending = match started {
            Err(why) => Ending::NotStarted(why),
            Ok(mut running) => {
                follow = reading::follow(config, &mut running, &log);
                // Recorded so that if this worker dies, whoever recovers its
                // task on this host can stop the orphaned command first.
                // Raced with the fence in `watch`, not awaited before it: a
                // store still reconnecting must not hold the fence off.
                let (store, identity) = (self.store, self.identity);
                let record = store.record_command(&identity.id, running.pid(), running.start());
                self.notes.emit(Note::Started {
                    task: task.id.clone(),
                    attempt: task.attempt,
                    pid: running.pid(),
                    log: log.path().to_path_buf(),
                });
                let mut live =
                    reading::LiveFacts::new(self.store, &identity.id, &task, resumed.as_deref());
                let watched = self
                    .watch(
                        &task,
                        &log,
                        &mut running,
                        record,
                        (follow.as_mut(), &budget, &mut live),
                    )
                    .await;
                match watched {
                    Some(ending) => ending,
                    None => {
                        let ran = self.interrupted(&task, &log, &mut running).await;
                        reading::keep(self.store, &self.identity.id, &task, &log, follow, resumed)
                            .await;
                        workspace::abandon(&place, &task, &log).await;
                        return ran;
                    }
                }
            }
        };
        let (ending, read) =
            reading::finish(follow, resumed.as_deref(), &budget, ending, &mut facts).await;
        let ending = workspace::conclude(&place, &task, ending, &log, &mut facts).await;
        self.report(&task, raw, &log, ending, &facts, read.transcript)
            .await
    }

    /// Waits for the command to end: by itself, fenced when the heartbeat
    /// lapsed, at its timeout, over its budget (as its followed output
    /// says), or stopped by `stop`. `None` at shutdown
    /// (a `shutdown` message or a signal), when the caller leaves the task
    /// for recovery.
    async fn watch(
        &mut self,
        task: &ClaimedTask,
        log: &process::Log,
        running: &mut process::Running,
        record: impl Future<Output = Result<(), StoreError>>,
        (mut follow, budget, live): (Option<&mut Follow>, &Budget, &mut reading::LiveFacts),
    ) -> Option<Ending> {
        tokio::pin!(record);
        let mut reading = follow.is_some();
        let mut recorded = false;
        let mark = self.pulse.mark();
        let mut fence = tokio::time::interval(FENCE_CHECK);
        fence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let timeout = task.timeout.or(self.worker.config.timeout);
        let started = tokio::time::Instant::now();
        let timer = tokio::time::sleep(timeout.unwrap_or(Duration::MAX / 4));
        tokio::pin!(timer);
        // Time spent waiting for answers, already added to the deadline.
        let mut paused = Duration::ZERO;
        loop {
            tokio::select! {
                ending = running.wait() => return Some(ending),
                more = progressed(&mut follow), if reading => {
                    let over = follow.as_mut().and_then(|f| {
                        let progress = &f.latest().borrow().progress;
                        live.offer(progress);
                        budget.exceeded(progress)
                    });
                    if let Some(why) = over {
                        log.note(&format!("{why}; stopping its process group"));
                        running.stop_by(STOP_GRACE, || self.pulse.kill_within()).await;
                        return Some(Ending::OverBudget(why));
                    }
                    reading = more;
                }
                r = &mut record, if !recorded => {
                    recorded = true;
                    if let Err(e) = r {
                        self.notes.emit(Note::RedisError {
                            doing: "recording the command's pid",
                            error: e.to_string(),
                            retry_in: None,
                        });
                    }
                }
                _ = fence.tick() => {
                    // The output's last words, noted once they are due.
                    if let Some(f) = follow.as_mut() {
                        live.offer(&f.latest().borrow().progress);
                    }
                    let Some(silent) = self.pulse.lapsed(mark) else {
                        continue;
                    };
                    // Recovery may requeue the task once the
                    // heartbeat expires: the command must be gone
                    // before that (see `heartbeat`).
                    log.note(&format!(
                        "no heartbeat renewed for {}; stopping its process group before the task can run elsewhere",
                        humantime::format_duration(round_ms(silent))
                    ));
                    running.stop(fence_grace(silent)).await;
                    return Some(Ending::Fenced(round_ms(silent)));
                }
                _ = &mut timer, if timeout.is_some() => {
                    let after = timeout.unwrap_or_default();
                    if let Some(waited) = self.question_wait(task, paused).await {
                        paused = waited;
                        timer.as_mut().reset(started + after + paused);
                        continue;
                    }
                    log.note(&format!(
                        "timed out after {}; stopping its process group",
                        humantime::format_duration(after)
                    ));
                    running.stop_by(STOP_GRACE, || self.pulse.kill_within()).await;
                    return Some(Ending::TimedOut(after));
                }
                Some(message) = self.control.recv() => match message {
                    Control::Stop { task: t, attempt: a } if t == task.id && a == task.attempt => {
                        log.note("stop requested; stopping its process group");
                        running.stop_by(STOP_GRACE, || self.pulse.kill_within()).await;
                        return Some(Ending::Stopped);
                    }
                    Control::Shutdown => {
                        self.notes.emit(Note::Stopping { why: "shutdown requested".into() });
                        return None;
                    }
                    other => self.notes.emit(Note::IgnoredControl { what: describe(&other) }),
                },
                _ = self.shutdown.changed() => {
                    self.notes.emit(Note::Stopping { why: "signal received".into() });
                    return None;
                }
            }
        }
    }

    /// Reports how the attempt ended (`finish.lua`), taking the next
    /// message in the same call when the worker goes on, and retries while
    /// Redis fails.
    async fn report(
        &mut self,
        task: &ClaimedTask,
        raw: &str,
        log: &process::Log,
        ending: Ending,
        facts: &Facts,
        transcript: Option<String>,
    ) -> Ran {
        let config = &self.worker.config;
        log.note(&match &ending {
            Ending::Exited(code) => format!("exited with code {code}"),
            other => other.error().unwrap_or_default(),
        });
        // An agent's readable transcript, else the end of its log.
        let output = transcript.unwrap_or_else(|| log.tail(TAIL_BYTES));
        let log_text = log.path().display().to_string();
        let error = ending.error();
        let report = Report {
            worker: &self.identity.id,
            raw,
            task: &task.id,
            attempt: task.attempt,
            exit_code: ending.exit_code(),
            error: error.as_deref(),
            output: &output,
            log: &log_text,
            retries: task.retries.unwrap_or(config.retries),
            backoff: TASK_RETRY.after(task.attempt),
            requeue: matches!(ending, Ending::Fenced(_)),
            facts: Some(facts),
        };
        let mut redis = RedisRetry::new(self.notes);
        loop {
            // Not when this worker is about to stop: what it takes, it runs.
            // Nor when a `shutdown` (`tt kill`) is waiting: the next task
            // would be started only to be stopped and left for recovery.
            let take = (!self.worker.once
                && !*self.shutdown.borrow()
                && !runner_gone()
                && !self.control.shutdown_waiting())
            .then_some(self.identity);
            match self
                .store
                .finish_and_take(&report, redis.again(), take, &self.logs)
                .await
            {
                Ok((result, next)) => {
                    redis.answered("finish");
                    self.notes.emit(Note::Finished {
                        task: task.id.clone(),
                        attempt: task.attempt,
                        ending,
                        result,
                    });
                    return Ran::Done(next);
                }
                Err(e) => {
                    let retry_in = redis.failed("reporting how the task ended", &e);
                    // At shutdown, or orphaned and cut off, the report is
                    // given up: the task stays running in `claimed`, and
                    // recovery runs it again.
                    if redis.orphan_gives_up() {
                        self.notes.emit(orphan_note(&format!(
                            "reporting `{}` attempt {}",
                            task.id, task.attempt
                        )));
                        return Ran::Interrupted;
                    }
                    if pause(&mut self.shutdown, retry_in).await {
                        return Ran::Interrupted;
                    }
                }
            }
        }
    }

    /// At the timeout: the attempt's time waiting for answers when it grew
    /// beyond `paused` and does not count toward the timeout (the deadline
    /// moves by the difference); `None` when the timeout holds. A Redis that
    /// cannot say holds it.
    async fn question_wait(&self, task: &ClaimedTask, paused: Duration) -> Option<Duration> {
        if self.worker.config.timeout_counts_questions {
            return None;
        }
        let waited = self
            .store
            .question_wait(&task.id, task.attempt)
            .await
            .ok()?;
        (waited > paused).then_some(waited)
    }

    async fn interrupted(
        &self,
        task: &ClaimedTask,
        log: &process::Log,
        running: &mut process::Running,
    ) -> Ran {
        log.note("the worker is shutting down; stopping its process group");
        running
            .stop_by(STOP_GRACE, || self.pulse.kill_within())
            .await;
        log.note("stopped; the task is left for recovery");
        self.notes.emit(Note::LeftForRecovery {
            task: task.id.clone(),
            attempt: task.attempt,
        });
        Ran::Interrupted
    }

    /// The command's environment: the agent's `env`, then tt's variables
    /// (which win).
    fn env(&self, task: &ClaimedTask) -> Vec<(String, String)> {
        let w = self.worker;
        let mut env: Vec<(String, String)> = w
            .config
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend([
            ("TT_TOWN".to_string(), w.town.clone()),
            ("TT_AGENT".to_string(), w.config.name.clone()),
            ("TT_WORKER".to_string(), w.id.clone()),
            ("TT_TASK_ID".to_string(), task.id.clone()),
            ("TT_TASK_DESCRIPTION".to_string(), task.description.clone()),
            (
                "TT_TASK_TAGS".to_string(),
                serde_json::Value::from(task.tags.clone()).to_string(),
            ),
            ("TT_TASK_PARENT".to_string(), task.parent.clone()),
            ("TT_ATTEMPT".to_string(), task.attempt.to_string()),
        ]);
        if let RedisTarget::Url(url) = &w.target {
            env.push(("REDIS_URL".to_string(), url.clone()));
        }
        if let Some(file) = &w.plan_file {
            env.push(("TT_FILE".to_string(), file.display().to_string()));
        }
        env
    }
}

/// Waits until the followed output said more; `false` once it ended
/// (nothing more will come).
async fn progressed(follow: &mut Option<&mut Follow>) -> bool {
    match follow {
        Some(f) => f.latest().changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// `d` to whole milliseconds, for messages.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_retries_wait_the_documented_pauses() {
        let within = |d: Duration, secs: f64| {
            let s = d.as_secs_f64();
            assert!(
                s >= secs * 0.75 && s <= secs * 1.25,
                "{s} not around {secs}"
            );
        };
        within(TASK_RETRY.after(1), 2.0);
        within(TASK_RETRY.after(2), 4.0);
        within(TASK_RETRY.after(3), 8.0);
        within(TASK_RETRY.after(50), 300.0);
        within(TASK_RETRY.after(0), 2.0);
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| TASK_RETRY.after(1).as_nanos()).collect();
        assert!(samples.len() > 1, "jitter varies");
    }
}
