//! A test's world in one expression — a plan, a private Redis, agents —
//! and a [`Town`] handle to run `tt` in it and read what happened, so a
//! test states its setup once and then reads as the behaviour it pins
//! (casey/just's `tests/test.rs` builder is the model):
//!
//! ```ignore
//! let town = Scenario::new()
//!     .plan(r#"[town]
//! name = "f"
//! [[tasks]]
//! id = "job"
//! agent = "w""#)
//!     .agent("w", r#"command = ["sh", "-c", "exit 1"]"#)
//!     .build();
//! town.tt(["run", "--until-done"]).code(1);
//! assert_eq!(town.status("job"), "failed");
//! ```
//!
//! The town's name comes from the plan's `[town] name`, so a test names
//! tasks and workers, never key prefixes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::ops::Index;
use std::path::Path;

use super::{Output, RUN_DEADLINE, RedisServer, Running, Tt, wait_until};

/// What a test's town is made of; [`Scenario::build`] makes it.
#[derive(Default)]
pub struct Scenario {
    plan: String,
    redis_args: Vec<String>,
    url_in_plan: bool,
    env: Vec<(String, String)>,
    files: Vec<(String, Vec<u8>)>,
    push: bool,
}

impl Scenario {
    pub fn new() -> Self {
        Self::default()
    }

    /// The text of `tasks.toml` (agents added with [`Scenario::agent`]
    /// follow it).
    pub fn plan(mut self, text: impl Into<String>) -> Self {
        self.plan = text.into();
        self
    }

    /// Declares agent `name`: `body` is its `[agents.<name>]` table.
    pub fn agent(mut self, name: &str, body: &str) -> Self {
        self.plan
            .push_str(&format!("\n[agents.{name}]\n{}\n", body.trim_end()));
        self
    }

    /// Extra arguments for the private `redis-server`, e.g.
    /// `["--appendonly", "yes"]`.
    pub fn redis_args(mut self, args: &[&str]) -> Self {
        self.redis_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Names the server in the plan (`[town] redis_url`) instead of
    /// `REDIS_URL`: `tt` and its agents then know it from the file alone.
    pub fn redis_url_in_plan(mut self) -> Self {
        self.url_in_plan = true;
        self
    }

    /// An environment variable for every `tt` the town runs.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Another file in the project.
    pub fn file(mut self, rel_path: &str, contents: impl AsRef<[u8]>) -> Self {
        self.files
            .push((rel_path.to_owned(), contents.as_ref().to_vec()));
        self
    }

    /// Pushes the plan (`tt sync push`) as the last step of
    /// [`Scenario::build`], as a town whose tasks are in Redis.
    pub fn pushed(mut self) -> Self {
        self.push = true;
        self
    }

    /// Starts the server, writes the project, and (if [`Scenario::pushed`])
    /// pushes the plan.
    #[track_caller]
    pub fn build(self) -> Town {
        let redis = if self.redis_args.is_empty() {
            RedisServer::start()
        } else {
            let args: Vec<&str> = self.redis_args.iter().map(String::as_str).collect();
            RedisServer::start_with(&args)
        };
        let mut plan = self.plan;
        let name = town_name(&plan);
        let mut tt = Tt::new();
        if self.url_in_plan {
            assert!(
                plan.contains("[town]\n"),
                "redis_url_in_plan needs a `[town]` table in the plan"
            );
            plan = plan.replacen(
                "[town]\n",
                &format!("[town]\nredis_url = \"{}\"\n", redis.url()),
                1,
            );
        } else {
            tt = tt.redis(&redis);
        }
        for (key, value) in &self.env {
            tt = tt.env(key, value);
        }
        tt = tt.file("tasks.toml", plan);
        for (path, contents) in &self.files {
            tt = tt.file(path, contents);
        }
        let town = Town { name, tt, redis };
        if self.push {
            town.tt(["sync", "push"]).success();
        }
        town
    }
}

/// `[town] name` of `plan`; a scenario without one cannot name its keys.
#[track_caller]
fn town_name(plan: &str) -> String {
    let table: toml::Table = plan
        .parse()
        .unwrap_or_else(|e| panic!("a scenario's plan must be valid TOML: {e}\n{plan}"));
    table
        .get("town")
        .and_then(|town| town.get("name"))
        .and_then(|name| name.as_str())
        .unwrap_or_else(|| panic!("a scenario's plan must name its town (`[town] name`):\n{plan}"))
        .to_owned()
}

/// A scenario's town: the project (`tt` runs in it) and its private Redis.
/// Dropping it stops the server after the project.
pub struct Town {
    name: String,
    tt: Tt,
    redis: RedisServer,
}

impl Town {
    /// The town's name, as in `[town] name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The project, for [`Tt`]'s own helpers.
    pub fn project(&self) -> &Tt {
        &self.tt
    }

    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    /// The server, to kill and start it again.
    pub fn redis_mut(&mut self) -> &mut RedisServer {
        &mut self.redis
    }

    /// The project directory.
    pub fn dir(&self) -> &Path {
        self.tt.dir()
    }

    /// Runs `tt <args>` in the project to its end ([`Tt::run_bounded`]).
    #[track_caller]
    pub fn tt<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.tt.run_bounded(args)
    }

    /// Starts `tt <args>` (`run`, `agent` …) in the background.
    pub fn start(&self, args: &[&str]) -> Running {
        Running::start(&self.tt, args)
    }

    /// Writes a file of the project (a plan edit, a file a command waits for).
    pub fn write(&self, rel_path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        self.tt.write(rel_path, contents);
    }

    /// Reads a file of the project.
    pub fn read(&self, rel_path: impl AsRef<Path>) -> String {
        self.tt.read(rel_path)
    }

    /// Whether a file of the project exists.
    pub fn exists(&self, rel_path: impl AsRef<Path>) -> bool {
        self.tt.dir().join(rel_path).exists()
    }

    /// The pid a test command wrote to `rel_path` ([`Tt::wait_pid`]).
    #[track_caller]
    pub fn wait_pid(&self, rel_path: impl AsRef<Path>) -> i32 {
        self.tt.wait_pid(rel_path)
    }

    /// The town's key `rest` ([`super::key`]).
    pub fn key(&self, rest: &str) -> String {
        super::key(&self.name, rest)
    }

    /// Task `id`'s record, every field.
    pub fn task(&self, id: &str) -> HashMap<String, String> {
        self.hash(&self.key(&format!("task:{id}")))
    }

    /// One field of task `id`'s record, "" when absent.
    pub fn field(&self, id: &str, field: &str) -> String {
        self.task(id).remove(field).unwrap_or_default()
    }

    pub fn status(&self, id: &str) -> String {
        self.field(id, "status")
    }

    /// Worker `id`'s record (`agent:<id>`).
    pub fn worker(&self, id: &str) -> HashMap<String, String> {
        self.hash(&self.key(&format!("agent:{id}")))
    }

    /// Whether worker `id`'s heartbeat key is set.
    pub fn alive(&self, id: &str) -> bool {
        self.redis.exists(&self.key(&format!("alive:{id}")))
    }

    /// The town's list `rest` (an inbox, a claimed list …),
    /// head first.
    pub fn list(&self, rest: &str) -> Vec<String> {
        self.redis.lrange(&self.key(rest))
    }

    /// Runs a Redis command and ignores its reply: to play another party
    /// (the runner's dispatch, a dead worker) by writing its keys.
    pub fn redis_cmd(&self, args: &[&str]) {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let _: redis::Value = cmd.query(&mut self.redis.conn()).unwrap();
    }

    fn hash(&self, key: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut self.redis.conn())
            .unwrap()
    }

    /// Every event of the town, oldest first.
    pub fn events(&self) -> Vec<Event> {
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(self.key("events"))
            .arg("-")
            .arg("+")
            .query(&mut self.redis.conn())
            .unwrap();
        entries
            .into_iter()
            .map(|(_, fields)| Event(fields))
            .collect()
    }

    /// The town's events of `kind`, oldest first.
    pub fn events_of(&self, kind: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    /// Waits (up to [`RUN_DEADLINE`]) until `done` holds.
    #[track_caller]
    pub fn wait_until(&self, what: &str, done: impl FnMut() -> bool) {
        wait_until(RUN_DEADLINE, what, done);
    }

    /// Waits until task `id` has `status`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, status: &str) {
        wait_until(RUN_DEADLINE, &format!("`{id}` is {status}"), || {
            self.status(id) == status
        });
    }
}

/// One event of a town's stream, its fields by name (`kind`, `task`,
/// `attempt`, `agent`, …); a field it does not have reads as "".
#[derive(Debug, Clone)]
pub struct Event(HashMap<String, String>);

impl Index<&str> for Event {
    type Output = String;

    fn index(&self, field: &str) -> &String {
        static ABSENT: String = String::new();
        self.0.get(field).unwrap_or(&ABSENT)
    }
}
