//! `tt ask "<question>"`: records a question on the running attempt, waits
//! for `tt answer`, and prints the answer on standard output (exit 0).
//!
//! It waits on the task's answer list with `BLPOP` in slices of
//! [`CHECK_EVERY`]; between slices it checks the attempt is still the
//! running one, so a cancelled or finished task ends the wait (exit 1) even
//! when this process was started outside the task's process group. At
//! `--timeout`, or on SIGINT/SIGTERM, the question is withdrawn (no person
//! is left answering into the void) and it exits 1 (130/143 on a signal).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::signal::unix::SignalKind;

use super::in_task::InTask;
use super::{CliError, Context};
use crate::Status;
use crate::backoff::{Backoff, Policy};
use crate::os::SignalStream;
use crate::store::{Asked, BlockingConn, Store};

/// How often the wait checks that the attempt still runs.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Pauses between tries while Redis does not answer.
const RECONNECT: Policy =
    Policy::doubling(Duration::from_millis(250), Duration::from_secs(5)).jittered(0.25);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The question for a person.
    question: String,
    /// An answer to pick from (repeat for each); without any, the answer is
    /// free text.
    #[arg(long = "choice", value_name = "ANSWER")]
    choices: Vec<String>,
    /// Give up after this long (like `30m`, `1h`); default: wait until
    /// answered, or until the task is cancelled or ends.
    #[arg(long, value_parser = super::time::duration_arg)]
    timeout: Option<Duration>,
    #[command(flatten)]
    task: InTask,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let (task, attempt) = args.task.resolve("ask")?;
    let store = ctx.store().await?;
    let question = Question {
        task: &task,
        attempt,
        text: &args.question,
        choices: &args.choices,
        timeout: args.timeout,
    };
    let mut interrupt = SignalStream::new(SignalKind::interrupt());
    let mut terminate = SignalStream::new(SignalKind::terminate());
    let stop = async {
        tokio::select! {
            _ = interrupt.recv() => 130,
            _ = terminate.recv() => 143,
        }
    };
    let waiting = || eprintln!("tt ask: waiting for `tt answer {task} \"…\"`");
    match ask_and_wait(ctx, &store, &question, waiting, stop).await? {
        Reply::Answer(answer) => {
            println!("{answer}");
            Ok(0)
        }
        Reply::Stopped(code) => {
            eprintln!("tt ask: stopped while waiting; the question is withdrawn");
            Ok(code)
        }
    }
}

/// A question to ask from inside a task.
pub(super) struct Question<'a> {
    pub task: &'a str,
    pub attempt: u32,
    pub text: &'a str,
    pub choices: &'a [String],
    pub timeout: Option<Duration>,
}

/// How [`ask_and_wait`] ended, when not with an error.
pub(super) enum Reply {
    Answer(String),
    /// `stop` fired first (its value): the question is withdrawn.
    Stopped(u8),
}

/// Records the question on the running attempt, calls `asked`, and waits
/// for its answer, until `stop` completes (then the question is withdrawn),
/// the attempt ends or the timeout passes (errors, with the question
/// withdrawn at the timeout). `tt ask` and the MCP `ask` tool both wait here.
pub(super) async fn ask_and_wait(
    ctx: &Context,
    store: &Store,
    q: &Question<'_>,
    asked: impl FnOnce(),
    stop: impl Future<Output = u8>,
) -> Result<Reply, CliError> {
    let (task, attempt) = (q.task, q.attempt);
    let qid = format!(
        "{attempt}-{}-{}-{}",
        std::process::id(),
        crate::os::now_ms(),
        NEXT_QUESTION.fetch_add(1, Ordering::Relaxed)
    );
    if let Asked::NotRunning { reason } = store.ask(task, attempt, &qid, q.text, q.choices).await? {
        return Err(CliError::Refused {
            message: format!("cannot ask: {reason}"),
            help: "a question is asked by the attempt that is running".into(),
        });
    }
    asked();
    let deadline = q.timeout.map(|t| Instant::now() + t);
    let wait = Wait {
        store,
        target: ctx.redis_target()?,
        task,
        attempt,
        qid: &qid,
        deadline,
    };
    let ended = tokio::select! {
        r = wait.run() => r?,
        code = stop => Ended::Signal(code),
    };
    match ended {
        Ended::Answered(answer) => Ok(Reply::Answer(answer)),
        Ended::Gone(why) => Err(CliError::Refused {
            message: format!("no answer will come: {why}"),
            help: "the question ended with its attempt".into(),
        }),
        Ended::TimedOut(after) => {
            // The timeout as given: the time measured has nanoseconds.
            let after = q.timeout.unwrap_or(after);
            let why = format!("no answer within {}", humantime::format_duration(after));
            store.withdraw(task, &qid, &why).await?;
            Err(CliError::Refused {
                message: format!("{why}; the question is withdrawn"),
                help: "ask again, with a longer --timeout".into(),
            })
        }
        Ended::Signal(code) => {
            let _ = store
                .withdraw(task, &qid, "the asking process was stopped")
                .await;
            Ok(Reply::Stopped(code))
        }
    }
}

/// Tells apart the questions one process asks within a millisecond (an
/// MCP server may ask again at once after a withdrawn question).
static NEXT_QUESTION: AtomicU64 = AtomicU64::new(0);

enum Ended {
    Answered(String),
    /// The attempt ended, or the question was taken back.
    Gone(String),
    TimedOut(Duration),
    Signal(u8),
}

struct Wait<'a> {
    store: &'a Store,
    target: crate::store::RedisTarget,
    task: &'a str,
    attempt: u32,
    qid: &'a str,
    deadline: Option<Instant>,
}

impl Wait<'_> {
    async fn run(&self) -> Result<Ended, CliError> {
        let started = Instant::now();
        let mut conn = BlockingConn::open(self.store, &self.target).await?;
        let mut backoff = Backoff::new(RECONNECT);
        loop {
            let left = self
                .deadline
                .map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(Ended::TimedOut(started.elapsed()));
            }
            let slice = left.map_or(CHECK_EVERY, |l| l.min(CHECK_EVERY));
            match conn.next_answer(self.task, slice).await {
                Ok(Some((qid, answer))) if qid == self.qid => return Ok(Ended::Answered(answer)),
                // An answer to an earlier question of this task: not ours.
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) if e.is_connection_error() => {
                    tokio::time::sleep(backoff.failed()).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            backoff.reset();
            if let Some(why) = self.gone().await? {
                return Ok(Ended::Gone(why));
            }
        }
    }

    /// Why the question can no longer be answered, if it cannot.
    async fn gone(&self) -> Result<Option<String>, CliError> {
        let record = match self.store.task(self.task).await {
            Ok(r) => r,
            Err(e) if e.is_connection_error() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(r) = record else {
            return Ok(Some(format!("task `{}` is gone", self.task)));
        };
        if r.status != Status::Running || r.attempt != self.attempt {
            return Ok(Some(format!(
                "task `{}` is {} (attempt {})",
                self.task, r.status, r.attempt
            )));
        }
        match &r.question {
            Some(q) if q.id == self.qid => Ok(None),
            _ => Ok(Some("the question was withdrawn or replaced".into())),
        }
    }
}
