//! The tools `tt mcp` serves. Each calls the code of the matching command
//! and answers with JSON; a refusal is a tool error (`isError`) whose text
//! is the command's message and its help line.

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::in_task::{InAgent, InTask};
use super::super::lookup::check_task_id;
use super::super::task_view::TaskView;
use super::super::{CliError, Context, ask, assign, progress, send};
use super::brief;
use crate::Status;
use crate::store::Store;

/// What every tool call needs: the command context, the store, and which
/// task and agent this server speaks for.
#[derive(Clone)]
pub struct Tools {
    inner: Arc<Inner>,
    tool_router: ToolRouter<Self>,
}

struct Inner {
    ctx: Context,
    store: Store,
    task: InTask,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GetTask {
    /// Task id; default: the task this agent runs.
    id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListTasks {
    /// pending, assigned, running, completed, failed or cancelled.
    status: Option<String>,
    /// Only tasks for this agent.
    agent: Option<String>,
    /// Only tasks with this tag.
    tag: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AddTask {
    /// What to do: the prompt its agent gets.
    description: String,
    /// Agent that runs it; default: this agent.
    agent: Option<String>,
    /// Task id; default: the next free `adhoc-<n>`.
    id: Option<String>,
    /// Group it belongs to; default: the current task.
    parent: Option<String>,
    /// Tasks that must complete first; `<town>:<task>` for a task of
    /// another town.
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// 0 (first) to 4 (last); default 2.
    priority: Option<u8>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReportProgress {
    /// Where the work stands, in a line.
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Ask {
    /// The question for a person.
    question: String,
    /// Answers to pick from; none: free text.
    #[serde(default)]
    choices: Vec<String>,
    /// Give up after this long, like `30m`; default: wait.
    timeout: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SendMessage {
    /// Agent name, or `supervisor` (the person running the town).
    to: String,
    message: String,
    /// Put it at the head of the inbox.
    #[serde(default)]
    urgent: bool,
}

#[tool_router]
impl Tools {
    pub fn new(ctx: Context, store: Store, task: InTask) -> Self {
        Self {
            inner: Arc::new(Inner { ctx, store, task }),
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "A task (default: yours): description, parent, dependencies with their results, children, and the messages sent to you (each returned once)."
    )]
    async fn get_task(
        &self,
        Parameters(p): Parameters<GetTask>,
    ) -> Result<CallToolResult, ErrorData> {
        reply(self.get_task_json(p.id).await)
    }

    #[tool(description = "Tasks of the town, filtered by status, agent or tag.")]
    async fn list_tasks(
        &self,
        Parameters(p): Parameters<ListTasks>,
    ) -> Result<CallToolResult, ErrorData> {
        reply(self.list_tasks_json(p).await)
    }

    #[tool(
        description = "Add a task (as `tt assign`), by default a subtask of yours: your task completes only when it does."
    )]
    async fn add_task(
        &self,
        Parameters(p): Parameters<AddTask>,
    ) -> Result<CallToolResult, ErrorData> {
        reply(self.add_task_json(p).await)
    }

    #[tool(description = "Record where your task stands (shown to the people running the town).")]
    async fn report_progress(
        &self,
        Parameters(p): Parameters<ReportProgress>,
    ) -> Result<CallToolResult, ErrorData> {
        let done = async {
            let (task, attempt) = self.inner.task.resolve("mcp")?;
            progress::record(&self.inner.store, &task, attempt, &p.text).await?;
            Ok(json!({ "task": task, "attempt": attempt, "progress": p.text }))
        };
        reply(done.await)
    }

    #[tool(
        description = "Ask a person and wait for the answer (minutes or hours); returns the answer text."
    )]
    async fn ask(
        &self,
        Parameters(p): Parameters<Ask>,
        rc: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        match self.ask_text(p, rc).await {
            Ok(answer) => Ok(CallToolResult::success(vec![ContentBlock::text(answer)])),
            Err(e) => Ok(tool_error(&e)),
        }
    }

    #[tool(description = "Send a message to another agent's inbox, or to `supervisor`.")]
    async fn send_message(
        &self,
        Parameters(p): Parameters<SendMessage>,
    ) -> Result<CallToolResult, ErrorData> {
        let sent = async {
            let from = send::sender();
            let out = send::Outgoing {
                agent: &p.to,
                from: &from,
                body: &p.message,
                urgent: p.urgent,
                create: false,
            };
            let d = send::deliver(&self.inner.ctx, &out).await?;
            Ok(json!({ "to": p.to, "waiting": d.waiting }))
        };
        reply(sent.await)
    }
}

impl Tools {
    async fn get_task_json(&self, id: Option<String>) -> Result<Value, CliError> {
        let (id, mine) = match id {
            Some(id) => {
                check_task_id(&id)?;
                let mine = self.inner.task.resolve("mcp").is_ok_and(|(t, _)| t == id);
                (id, mine)
            }
            None => (self.inner.task.resolve("mcp")?.0, true),
        };
        let store = &self.inner.store;
        let town = TaskView::new(store.tasks().await?);
        let mut v = brief::task(&town, store, &id)?;
        if mine {
            // Messages for this agent, taken once: its worker will not
            // deliver them again.
            let messages = match InAgent::from_env() {
                Ok(me) => me.take_messages(store).await?,
                Err(_) => Vec::new(),
            };
            v["messages"] = json!(messages);
        }
        Ok(v)
    }

    async fn list_tasks_json(&self, p: ListTasks) -> Result<Value, CliError> {
        let status = match &p.status {
            Some(s) => Some(Status::parse(s).ok_or_else(|| CliError::Usage {
                message: format!("`{s}` is not a status"),
                help: format!("use one of: {}", Status::ALL.map(Status::as_str).join(", ")),
            })?),
            None => None,
        };
        let town = TaskView::new(self.inner.store.tasks().await?);
        let tasks: Vec<Value> = (0..town.records.len())
            .filter(|&i| {
                let r = &town.records[i];
                status.is_none_or(|s| town.graph.status(i) == s)
                    && p.agent
                        .as_deref()
                        .is_none_or(|a| r.agent.as_deref() == Some(a))
                    && p.tag
                        .as_deref()
                        .is_none_or(|t| r.tags.iter().any(|x| x == t))
            })
            .map(|i| brief::row(&town, i))
            .collect();
        Ok(json!({ "tasks": tasks }))
    }

    async fn add_task_json(&self, p: AddTask) -> Result<Value, CliError> {
        let current = self.inner.task.resolve("mcp").ok().map(|(t, _)| t);
        let agent = match p
            .agent
            .or_else(|| InAgent::from_env().ok().map(|a| a.agent))
        {
            Some(a) => a,
            None => {
                return Err(CliError::Usage {
                    message: "no agent named for the task".into(),
                    help: "give `agent`, or call this from a task (TT_AGENT names its agent)"
                        .into(),
                });
            }
        };
        let args = assign::Args {
            agent,
            description: p.description,
            id: p.id,
            parent: p.parent.or(current),
            tags: p.tags,
            depends_on: p.depends_on,
            priority: p.priority.unwrap_or(crate::plan::DEFAULT_PRIORITY),
            json: true,
        };
        if args.priority > 4 {
            return Err(CliError::Usage {
                message: format!("priority {} is out of range", args.priority),
                help: "use 0 (first) to 4 (last)".into(),
            });
        }
        let (store, id) = assign::create(&self.inner.ctx, &args).await?;
        let record = store.task(&id).await?;
        Ok(json!({ "id": id, "task": record }))
    }

    async fn ask_text(&self, p: Ask, rc: RequestContext<RoleServer>) -> Result<String, CliError> {
        let (task, attempt) = self.inner.task.resolve("mcp")?;
        let timeout: Option<Duration> = match &p.timeout {
            Some(t) => Some(
                super::super::time::duration_arg(t).map_err(|e| CliError::Usage {
                    message: format!("`timeout`: {e}"),
                    help: "a duration like `30m`, `1h`, `90s`".into(),
                })?,
            ),
            None => None,
        };
        let q = ask::Question {
            task: &task,
            attempt,
            text: &p.question,
            choices: &p.choices,
            timeout,
        };
        // A client that cancels the call takes the question back.
        let stop = async {
            rc.ct.cancelled().await;
            0
        };
        match ask::ask_and_wait(&self.inner.ctx, &self.inner.store, &q, || {}, stop).await? {
            ask::Reply::Answer(a) => Ok(a),
            ask::Reply::Stopped(_) => Err(CliError::Refused {
                message: "the call was cancelled; the question is withdrawn".into(),
                help: "ask again".into(),
            }),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("tinytown", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "tinytown: the task you run, the town's other tasks, subtasks, progress notes, questions for a person, and messages to other agents.",
            )
    }
}

/// A tool's JSON, or its error as a tool error.
fn reply(r: Result<Value, CliError>) -> Result<CallToolResult, ErrorData> {
    Ok(match r {
        Ok(v) => CallToolResult::structured(v),
        Err(e) => tool_error(&e),
    })
}

/// The error as `tt` prints it: the message, then its help line.
fn tool_error(e: &CliError) -> CallToolResult {
    use miette::Diagnostic;
    let mut text = e.to_string();
    if let Some(help) = e.help() {
        text.push_str(&format!("\nhelp: {help}"));
    }
    CallToolResult::error(vec![ContentBlock::text(text)])
}
