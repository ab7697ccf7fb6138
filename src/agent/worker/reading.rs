//! What an attempt reads from its agent's output, for the worker: which
//! session a retry resumes, the stream followed while the command runs,
//! and, once it ended, the facts it learned, its readable transcript and
//! whether its output turned a clean exit into a failure.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::agent::adapter::Progress;
use crate::agent::adapter::stream::{DRAIN, Follow, Snapshot};
use crate::agent::budget::Budget;
use crate::agent::config::AgentConfig;
use crate::agent::process::{self, Ending, Running};
use crate::store::{ClaimedTask, Facts, Store};

/// The session a retry of `task` continues: the previous attempt's, when
/// the agent resumes and that attempt reported one.
pub(super) fn resume_session(config: &AgentConfig, task: &ClaimedTask) -> Option<String> {
    if !config.resumes() || task.attempt <= 1 {
        return None;
    }
    task.previous
        .get("session")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// The budget of one attempt of `task`: the agent's, with the task's own
/// limits where it sets them (a stored budget tt cannot read is none).
pub(super) fn budget(config: &AgentConfig, task: &ClaimedTask) -> Budget {
    let own = crate::store::parse_facts(&task.budget);
    config.budget.overridden_by(Budget {
        max_cost_usd: own.get("max_cost_usd").and_then(|v| v.as_f64()),
        max_turns: own.get("max_turns").and_then(|v| v.as_u64()),
    })
}

/// Starts following the command's stdout, when the agent's output is read.
pub(super) fn follow(
    config: &AgentConfig,
    running: &mut Running,
    log: &process::Log,
) -> Option<Follow> {
    let format = config.output()?;
    let stdout = running.take_stdout()?;
    Some(Follow::start(stdout, log.share()?, format))
}

/// What the attempt read, once its command is gone.
pub(super) struct Read {
    /// The readable end of the run, for the task's output; `None` when
    /// there is none (then the log's tail is).
    pub transcript: Option<String>,
}

/// Ends following the stream and puts what it said into `facts`; the
/// ending becomes a failure when the output reported an error, or went
/// over `budget` (also when the command exited before the worker could
/// stop it: whether a budget held does not depend on who was quicker).
pub(super) async fn finish(
    follow: Option<Follow>,
    resumed: Option<&str>,
    budget: &Budget,
    ending: Ending,
    facts: &mut Facts,
) -> (Ending, Read) {
    let snapshot = match follow {
        Some(f) => f.finish(DRAIN).await,
        None => Snapshot::default(),
    };
    facts.extend(learned(&snapshot.progress, resumed));
    let over = budget.exceeded(&snapshot.progress);
    let ending = match (ending, over) {
        (Ending::Exited(_), Some(why)) => Ending::OverBudget(why),
        (Ending::Exited(code), None) if snapshot.progress.is_error == Some(true) => {
            let said = snapshot
                .progress
                .result
                .as_deref()
                .and_then(|r| r.lines().find(|l| !l.trim().is_empty()))
                .map(|l| format!(": {}", short(l, 200)))
                .unwrap_or_default();
            Ending::AgentFailed {
                code,
                why: format!("the agent reported an error{said}"),
            }
        }
        (other, _) => other,
    };
    let transcript = (!snapshot.transcript.is_empty()).then(|| snapshot.transcript.render());
    (ending, Read { transcript })
}

/// The facts `progress` gives an attempt that resumed session `resumed`.
fn learned(progress: &Progress, resumed: Option<&str>) -> Facts {
    let mut learned = progress.facts();
    if let Some(s) = resumed {
        learned.insert("resumed".into(), s.into());
        // A resumed run that died before saying its session is still in
        // the one it resumed: the next retry goes on there.
        learned
            .entry("session")
            .or_insert_with(|| s.to_string().into());
    }
    learned
}

/// How often, at most, a running attempt's facts so far are noted again
/// on its task; its session is noted as soon as the output says it.
const NOTE_EVERY: Duration = Duration::from_secs(5);
/// How long one note may take before it is given up (the next is sent
/// when it is due).
const NOTE_WAIT: Duration = Duration::from_secs(5);

/// Notes what a running attempt's output said so far on its task
/// (`Store::note_facts`): a worker killed outright (SIGKILL, the machine
/// gone) reports nothing and cannot [`keep`] anything, and the session
/// noted here is what its retry resumes, the tokens what recovery counts.
/// One note at a time, in the background: the attempt never waits on
/// Redis for it.
pub(super) struct LiveFacts {
    store: Store,
    worker: String,
    task: String,
    attempt: u32,
    resumed: Option<String>,
    noted: Facts,
    at: Option<Instant>,
    writing: Option<JoinHandle<()>>,
}

impl LiveFacts {
    pub(super) fn new(
        store: &Store,
        worker: &str,
        task: &ClaimedTask,
        resumed: Option<&str>,
    ) -> Self {
        Self {
            store: store.clone(),
            worker: worker.to_string(),
            task: task.id.clone(),
            attempt: task.attempt,
            resumed: resumed.map(String::from),
            noted: Facts::new(),
            at: None,
            writing: None,
        }
    }

    /// Notes `progress` when it says something new and a note is due: a
    /// new session at once, anything else at most every [`NOTE_EVERY`].
    /// Called when the output said more and on the worker's ticks, so the
    /// last of it is noted too.
    pub(super) fn offer(&mut self, progress: &Progress) {
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        let facts = learned(progress, self.resumed.as_deref());
        if facts.is_empty() || facts == self.noted {
            return;
        }
        let new_session = facts.get("session") != self.noted.get("session");
        let due = self.at.is_none_or(|at| at.elapsed() >= NOTE_EVERY);
        if !(new_session || due) {
            return;
        }
        let (store, worker, task, attempt) = (
            self.store.clone(),
            self.worker.clone(),
            self.task.clone(),
            self.attempt,
        );
        let noting = facts.clone();
        // A note that fails is not retried as such: the next one, due in
        // NOTE_EVERY, carries everything it had.
        self.writing = Some(tokio::spawn(async move {
            let _ = tokio::time::timeout(
                NOTE_WAIT,
                store.note_facts(&worker, &task, attempt, &noting),
            )
            .await;
        }));
        self.noted = facts;
        self.at = Some(Instant::now());
    }
}

/// How long an interrupted attempt's facts may take to reach Redis: the
/// worker is shutting down.
const KEEP_WAIT: Duration = Duration::from_secs(2);

/// Keeps what an interrupted attempt (stopped at shutdown, left for
/// recovery) read on its task: the attempt that recovery's requeue leads
/// to resumes its session. Best effort, within [`KEEP_WAIT`]: without it
/// the next attempt starts afresh.
pub(super) async fn keep(
    store: &Store,
    worker: &str,
    task: &ClaimedTask,
    log: &process::Log,
    follow: Option<Follow>,
    resumed: Option<String>,
) {
    if follow.is_none() {
        return;
    }
    let mut facts = Facts::new();
    let none = Budget::default();
    let _ = finish(
        follow,
        resumed.as_deref(),
        &none,
        Ending::Stopped,
        &mut facts,
    )
    .await;
    let Some(session) = facts
        .get("session")
        .and_then(|s| s.as_str())
        .map(String::from)
    else {
        return;
    };
    let kept = tokio::time::timeout(
        KEEP_WAIT,
        store.keep_facts(worker, &task.id, task.attempt, &facts),
    )
    .await;
    log.note(&match kept {
        Ok(Ok(true)) => format!("kept session {session} for the next attempt to resume"),
        Ok(Ok(false)) => "the task moved on; its session is not kept".into(),
        Ok(Err(e)) => format!("could not keep session {session}: {e}"),
        Err(_) => format!("could not keep session {session}: Redis did not answer in time"),
    });
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}
