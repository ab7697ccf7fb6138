//! What an attempt reads from its agent's output, for the worker: which
//! session a retry resumes, the stream followed while the command runs,
//! and, once it ended, the facts it learned, its readable transcript and
//! whether its output turned a clean exit into a failure.

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
    let mut learned = snapshot.progress.facts();
    if let Some(s) = resumed {
        learned.insert("resumed".into(), s.into());
        // A resumed run that died before saying its session is still in
        // the one it resumed: the next retry goes on there.
        learned
            .entry("session")
            .or_insert_with(|| s.to_string().into());
    }
    facts.extend(learned);
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

/// How long an interrupted attempt's facts may take to reach Redis: the
/// worker is shutting down.
const KEEP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

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
