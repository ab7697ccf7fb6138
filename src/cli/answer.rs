//! `tt answer <task> "<text>"` (or `--choice N`): answers the question a
//! running task waits on; the `tt ask` that asked prints the answer.

use super::lookup::check_task_id;
use super::{CliError, Context};
use crate::escape::escape;
use crate::store::Answered;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task whose question to answer.
    task: String,
    /// The answer.
    #[arg(required_unless_present = "choice", conflicts_with = "choice")]
    text: Option<String>,
    /// Pick the question's N-th choice (from 1).
    #[arg(long, value_name = "N")]
    choice: Option<usize>,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    check_task_id(&args.task)?;
    let store = ctx.store().await?;
    let Some(record) = store.task(&args.task).await? else {
        return Err(CliError::UnknownTask {
            id: args.task.clone(),
            town: store.town().into(),
            help: "`tt status` lists the questions waiting for an answer".into(),
        });
    };
    let Some(question) = record.question.as_ref() else {
        return Err(CliError::Refused {
            message: format!(
                "task `{}` ({}) has no open question",
                args.task, record.status
            ),
            help: "`tt status` lists the questions waiting for an answer".into(),
        });
    };
    let listed = || {
        question
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}: {c}", i + 1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let answer = match (&args.text, args.choice) {
        (_, Some(n)) => match n.checked_sub(1).and_then(|i| question.choices.get(i)) {
            Some(c) => c.clone(),
            None if question.choices.is_empty() => {
                return Err(CliError::Usage {
                    message: "the question has no choices".into(),
                    help: format!("answer with text: tt answer {} \"…\"", args.task),
                });
            }
            None => {
                return Err(CliError::Usage {
                    message: format!("there is no choice {n}"),
                    help: format!("the choices are {}", listed()),
                });
            }
        },
        (Some(text), None) => {
            if !question.choices.is_empty() && !question.choices.contains(text) {
                return Err(CliError::Usage {
                    message: format!("`{text}` is not one of the choices"),
                    help: format!("the choices are {} (or --choice N)", listed()),
                });
            }
            text.clone()
        }
        (None, None) => unreachable_answer()?,
    };
    let by = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "someone".into()),
        crate::os::hostname()
    );
    match store
        .answer_question(&args.task, &question.id, &answer, &by)
        .await?
    {
        Answered::Answered { question } => {
            println!(
                "answered `{}`: {} → {}",
                args.task,
                escape(&question),
                escape(&answer)
            );
            Ok(0)
        }
        Answered::NoQuestion { status } => Err(CliError::Refused {
            message: format!(
                "task `{}` ({status}) no longer waits on that question",
                args.task
            ),
            help: "it was answered, withdrawn or ended meanwhile; `tt task` shows what happened"
                .into(),
        }),
    }
}

/// clap requires the text or `--choice`; this only keeps the match total.
fn unreachable_answer() -> Result<String, CliError> {
    Err(CliError::Usage {
        message: "no answer given".into(),
        help: "give the answer as text, or --choice N".into(),
    })
}
