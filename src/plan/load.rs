//! tasks.toml text → [`Plan`], walking the spanned TOML tree by hand so that
//! every problem in the file is reported in one pass (serde stops at the
//! first), each with the span of the value at fault.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use miette::NamedSource;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::did_you_mean;
use super::model::{
    AgentSpec, ChildFailure, Land, Meta, Mode, Parsed, Span, Status, TaskSpans, TaskSpec,
    TownConfig, WorkspaceSpec, agent_keys, meta_keys, task_keys, top_keys, town_keys,
};
use super::{
    ID_HELP, LoadError, Plan, Problem, Settings, id_problem, placeholder, presets, remote,
    town_name, valid_id, validate, workdir, workspace,
};

/// Reads and loads a file.
pub fn load_file(path: &Path) -> Result<Plan, LoadError> {
    let text = {
        let _p = crate::profile::phase("read the file");
        super::read_plan(path)?
    };
    load(path, text)
}

/// Loads a plan from text. `path` names the file in messages and is where
/// relative paths in it start.
pub fn load(path: &Path, text: String) -> Result<Plan, LoadError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let source = Arc::new(text);
    let named = NamedSource::new(name.clone(), source.clone());
    let mut loader = Loader {
        src: named,
        offset: 0,
        problems: Vec::new(),
        with_tasks: true,
    };
    let parse = crate::profile::phase("parse TOML");
    let (root, syntax_errors) = DeTable::parse_recoverable(source.as_str());
    drop(parse);
    let had_syntax_errors = !syntax_errors.is_empty();
    loader.syntax_errors(syntax_errors);
    let walk = crate::profile::phase("check entries");
    let mut file = loader.file(root.get_ref());
    remote::localize(&mut file);
    drop(walk);
    if !had_syntax_errors {
        let _p = crate::profile::phase("check references, cycles");
        validate::references(&mut loader.problems, &loader.src, &file);
        workdir::check(&mut loader.problems, &loader.src, root.get_ref(), path);
        workspace::check(&mut loader.problems, &loader.src, root.get_ref(), path);
    }
    let free = crate::profile::phase("free the TOML tree");
    drop(root);
    drop(free);
    let mut problems = loader.problems;
    problems.sort_by_key(|p| p.labels.first().map_or(0, |(s, _)| s.start));
    if problems.iter().any(Problem::is_error) {
        return Err(LoadError::Invalid {
            file: name,
            problems,
        });
    }
    Ok(Plan {
        path: path.to_path_buf(),
        source,
        town: file.town,
        meta: file.meta,
        agents: file.agents,
        tasks: file.tasks,
        warnings: problems,
    })
}

/// Loads `[town]`, `[meta]` and `[agents]` from `source[..end]` with the
/// same checks and spans as [`load`] (the text starts at the file's start),
/// walking no task and checking no reference to one.
pub(super) fn load_settings_text(
    path: &Path,
    source: &Arc<String>,
    end: usize,
) -> Result<Settings, LoadError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut loader = Loader {
        src: NamedSource::new(name.clone(), source.clone()),
        offset: 0,
        problems: Vec::new(),
        with_tasks: false,
    };
    let text = source.get(..end).unwrap_or(source.as_str());
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let had_syntax_errors = !syntax_errors.is_empty();
    loader.syntax_errors(syntax_errors);
    let mut file = loader.file(root.get_ref());
    remote::localize(&mut file);
    if !had_syntax_errors {
        workdir::check(&mut loader.problems, &loader.src, root.get_ref(), path);
        workspace::check(&mut loader.problems, &loader.src, root.get_ref(), path);
    }
    let mut problems = loader.problems;
    if !problems.iter().any(Problem::is_error) {
        return Ok(Settings {
            path: path.to_path_buf(),
            town: file.town,
            meta: file.meta,
            agents: file.agents,
        });
    }
    problems.sort_by_key(|p| p.labels.first().map_or(0, |(s, _)| s.start));
    Err(LoadError::Invalid {
        file: name,
        problems,
    })
}

/// Why [`load_task_entry`] gave no task.
#[derive(Debug)]
pub enum EntryError {
    /// The text is not one `[[tasks]]` table and nothing else (a second
    /// header, a key outside the table, no table at all).
    NotOneEntry,
    /// It is one entry, with problems; spans point into the whole file.
    Invalid(Vec<Problem>),
}

/// Loads one `[[tasks]]` entry: `file[range]`, parsed as a document of its
/// own with the same checks as in [`load`], its spans and diagnostics
/// pointing into `file`. Checks across tasks (duplicates, references,
/// cycles) are not made: the caller must know they cannot have changed.
/// `path` names the file in messages.
pub fn load_task_entry(
    path: &Path,
    file: Arc<String>,
    range: std::ops::Range<usize>,
) -> Result<TaskSpec, EntryError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let Some(text) = file.get(range.clone()) else {
        return Err(EntryError::NotOneEntry);
    };
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let mut loader = Loader {
        src: NamedSource::new(name, file.clone()),
        offset: range.start,
        problems: Vec::new(),
        with_tasks: true,
    };
    loader.syntax_errors(syntax_errors);
    let root = root.get_ref();
    let Some(value) = root.get("tasks").filter(|_| root.len() == 1) else {
        return Err(EntryError::NotOneEntry);
    };
    // A header (`[[tasks]]`), not `tasks = [{ … }]`: in the file, a key
    // would belong to the table above it.
    let header = |item: &Value<'_>| text[item.span().start..].starts_with("[[");
    match value.get_ref() {
        DeValue::Array(items) if items.len() == 1 && items.iter().all(header) => {}
        _ => return Err(EntryError::NotOneEntry),
    }
    let mut tasks = Vec::with_capacity(1);
    loader.tasks(value, &mut tasks);
    if !loader.problems.is_empty() {
        return Err(EntryError::Invalid(loader.problems));
    }
    let Some(mut task) = tasks.pop() else {
        return Err(EntryError::NotOneEntry);
    };
    shift_spans(&mut task.spans, range.start);
    Ok(task)
}

fn shift_spans(spans: &mut TaskSpans, by: usize) {
    let shift = |s: &mut Span| *s = s.start + by..s.end + by;
    shift(&mut spans.table);
    shift(&mut spans.id);
    spans.agent.iter_mut().for_each(shift);
    spans.parent.iter_mut().for_each(shift);
    spans.depends_on.iter_mut().for_each(shift);
}

struct Loader {
    src: NamedSource<Arc<String>>,
    /// Where the parsed text starts in `src`: 0 for a whole file, the
    /// entry's offset for [`load_task_entry`], so spans point into the file.
    offset: usize,
    problems: Vec<Problem>,
    /// Whether `[[tasks]]` are walked; [`load_settings_text`] leaves them.
    with_tasks: bool,
}

type Value<'i> = Spanned<DeValue<'i>>;

impl Loader {
    fn syntax_errors(&mut self, errors: Vec<toml::de::Error>) {
        for err in errors {
            let span = err.span().unwrap_or(0..0);
            let message = err.message().trim().to_string();
            self.error(
                "tt::plan::syntax",
                span,
                format!("invalid TOML: {message}"),
                "here",
                Some("fix the TOML syntax; see https://toml.io for the format"),
            );
        }
    }

    fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<&str>,
    ) {
        let span = span.start + self.offset..span.end + self.offset;
        let mut p = Problem::new(&self.src, code, span, message, label);
        if let Some(h) = help {
            p = p.help(h);
        }
        self.problems.push(p);
    }

    fn file(&mut self, root: &DeTable<'_>) -> Parsed {
        let mut parsed = Parsed {
            town: TownConfig::default(),
            town_spans: HashMap::new(),
            meta: Meta::default(),
            default_agent_span: None,
            agents: Vec::new(),
            agents_declared: false,
            tasks: Vec::new(),
        };
        self.check_keys(root, &top_keys(), "the top level", TOP_ALIASES);
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "town" => {
                    if let Some(t) = self.table(value, "[town]") {
                        self.town(t, &mut parsed);
                    }
                }
                "meta" => {
                    if let Some(t) = self.table(value, "[meta]") {
                        self.meta(t, &mut parsed);
                    }
                }
                "agents" => {
                    if let Some(t) = self.table(value, "[agents]") {
                        parsed.agents_declared = true;
                        for (name, spec) in t {
                            if let Some(agent) = self.agent(name, spec) {
                                parsed.agents.push((name.get_ref().to_string(), agent));
                            }
                        }
                    }
                }
                "tasks" if self.with_tasks => self.tasks(value, &mut parsed.tasks),
                "$schema" => {
                    self.string(value, "`$schema`");
                }
                _ => {}
            }
        }
        parsed
    }

    fn town(&mut self, t: &DeTable<'_>, parsed: &mut Parsed) {
        self.check_keys(t, &town_keys(), "[town]", &[]);
        if let Some(v) = t.get("name")
            && let Some((name, span)) = self.string(v, "`[town] name`")
        {
            if let Some(why) = town_name::problem(&name) {
                self.error(
                    "tt::plan::bad-town",
                    span.clone(),
                    format!("town name `{name}` is not valid: it {why}"),
                    "invalid town name",
                    Some(town_name::HELP),
                );
            }
            parsed.town_spans.insert("name", span);
            parsed.town.name = Some(name);
        }
        if let Some(v) = t.get("redis_url")
            && let Some((url, span)) = self.string(v, "`[town] redis_url`")
        {
            let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
                .iter()
                .any(|s| url.starts_with(s));
            if !scheme_ok {
                self.error(
                    "tt::plan::bad-redis-url",
                    span.clone(),
                    "`redis_url` is not a Redis URL",
                    "expected redis://, rediss://, redis+unix:// or unix://",
                    Some("for example: redis_url = \"redis://127.0.0.1:6379/0\""),
                );
            }
            parsed.town_spans.insert("redis_url", span);
            parsed.town.redis_url = Some(url);
        }
        parsed.town.max_cost_usd = self.dollars(t.get("max_cost_usd"), "`[town] max_cost_usd`");
        parsed.town.workspace = self.workspace(t);
    }

    /// `workspace`, `into`, `land`, `include` and `push` of `[town]` or
    /// an agent; what they mean together is checked in `workspace::check`.
    fn workspace(&mut self, t: &DeTable<'_>) -> WorkspaceSpec {
        let mut spec = WorkspaceSpec::default();
        if let Some(v) = t.get("workspace")
            && let Some((s, span)) = self.string(v, "`workspace`")
        {
            match Mode::parse(&s) {
                Some(m) => spec.workspace = Some(m),
                None => {
                    let names = Mode::ALL.map(Mode::as_str);
                    let label = did_you_mean(&s, names.iter().copied())
                        .map_or("unknown workspace".into(), |h| {
                            format!("did you mean `{h}`?")
                        });
                    self.error(
                        "tt::plan::bad-workspace",
                        span,
                        format!("`{s}` is not a workspace"),
                        label,
                        Some("use `shared` (run in `workdir`, the default) or `worktree` (a git worktree per worker)"),
                    );
                }
            }
        }
        if let Some(v) = t.get("into") {
            spec.into = self.string(v, "`into`").map(|(s, _)| s);
        }
        if let Some(v) = t.get("land")
            && let Some((s, span)) = self.string(v, "`land`")
        {
            match Land::parse(&s) {
                Some(l) => spec.land = Some(l),
                None => {
                    let names = Land::ALL.map(Land::as_str);
                    let label = did_you_mean(&s, names.iter().copied())
                        .map_or("unknown way to land".into(), |h| {
                            format!("did you mean `{h}`?")
                        });
                    self.error(
                        "tt::plan::bad-land",
                        span,
                        format!("`{s}` is not a way to land work"),
                        label,
                        Some("use `merge` (a merge commit per task, the default), `rebase` (linear history) or `branch` (leave the branch)"),
                    );
                }
            }
        }
        if let Some(v) = t.get("include")
            && let Some(paths) = self.string_array(v, "`include`")
        {
            spec.include = Some(paths.into_iter().map(|(s, _)| s).collect());
        }
        if let Some(v) = t.get("push") {
            spec.push = self.string(v, "`push`").map(|(s, _)| s);
        }
        spec
    }

    fn meta(&mut self, t: &DeTable<'_>, parsed: &mut Parsed) {
        self.check_keys(t, &meta_keys(), "[meta]", &[]);
        if let Some(v) = t.get("description") {
            parsed.meta.description = self.string(v, "`[meta] description`").map(|(s, _)| s);
        }
        if let Some(v) = t.get("default_agent")
            && let Some((name, span)) = self.string(v, "`default_agent`")
        {
            self.check_id(&name, span.clone(), "agent name");
            parsed.default_agent_span = Some(span);
            parsed.meta.default_agent = Some(name);
        }
    }

    fn agent(
        &mut self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Value<'_>,
    ) -> Option<AgentSpec> {
        let agent_name = name.get_ref().as_ref();
        let ok_name = self.check_id(agent_name, name.span(), "agent name");
        let section = format!("[agents.{agent_name}]");
        let t = self.table(value, &section)?;
        self.check_keys(t, &agent_keys(), &section, AGENT_ALIASES);
        let mut spec = AgentSpec::default();
        if let Some(v) = t.get("cli")
            && let Some((cli, span)) = self.string(v, "`cli`")
        {
            if presets::preset(&cli).is_none() {
                let hint = did_you_mean(&cli, presets::names().into_iter());
                self.error(
                    "tt::plan::unknown-preset",
                    span,
                    format!("unknown agent cli `{cli}`"),
                    hint.as_deref()
                        .map_or("not a preset".into(), |h| format!("did you mean `{h}`?")),
                    Some(&format!(
                        "presets: {}; or give `command = [\"prog\", \"{{description}}\"]`",
                        presets::names().join(", ")
                    )),
                );
            }
            spec.cli = Some(cli);
        }
        if let Some(v) = t.get("command")
            && let Some(argv) = self.string_array(v, "`command`")
        {
            if argv.is_empty() {
                self.error(
                    "tt::plan::empty-command",
                    v.span(),
                    "`command` is empty",
                    "needs at least the program",
                    Some("for example: command = [\"make\", \"{id}\"]"),
                );
            }
            for (arg, span) in &argv {
                self.check_placeholders(arg, span.clone());
            }
            spec.command = Some(argv.into_iter().map(|(s, _)| s).collect());
        }
        if spec.cli.is_some() && spec.command.is_some() {
            self.error(
                "tt::plan::cli-and-command",
                value.span(),
                format!("agent `{agent_name}` has both `cli` and `command`"),
                "keep one",
                Some("`cli` picks a preset command line; `command` gives your own"),
            );
        } else if spec.cli.is_none() && spec.command.is_none() {
            self.error(
                "tt::plan::no-command",
                name.span(),
                format!("agent `{agent_name}` has neither `cli` nor `command`"),
                "what should this agent run?",
                Some("add `cli = \"claude\"` (a preset) or `command = [\"prog\", \"{description}\"]`"),
            );
        }
        spec.count = self.int_in(t.get("count"), "`count`", 1, 256);
        spec.retries = self.int_in(t.get("retries"), "`retries`", 0, 100);
        spec.prefetch = self.int_in(t.get("prefetch"), "`prefetch`", 1, 1000);
        if let Some(v) = t.get("timeout")
            && let Some((s, span)) = self.string(v, "`timeout`")
        {
            self.check_duration(&s, span);
            spec.timeout = Some(s);
        }
        if let Some(v) = t.get("env")
            && let Some(env) = self.table(v, "`env`")
        {
            for (k, val) in env {
                if let Some((s, _)) = self.string(val, &format!("`env.{}`", k.get_ref())) {
                    spec.env.insert(k.get_ref().to_string(), s);
                }
            }
        }
        if let Some(v) = t.get("workdir") {
            spec.workdir = self.string(v, "`workdir`").map(|(s, _)| s);
        }
        if let Some(v) = t.get("backlog") {
            spec.backlog = self.boolean(v, "`backlog`");
        }
        if let Some(v) = t.get("permissions")
            && let Some((p, span)) = self.string(v, "`permissions`")
        {
            let preset = spec.cli.as_deref().and_then(presets::preset);
            if let Some(preset) = preset.filter(|p| p.permissions.is_none()) {
                self.error(
                    "tt::plan::no-permission-flag",
                    span,
                    format!("the `{}` preset has no permission flag", preset.name),
                    "not used by this preset",
                    Some("leave `permissions` out; the CLI's own configuration decides"),
                );
            } else if spec.command.is_some() {
                self.error(
                    "tt::plan::permissions-with-command",
                    span,
                    "`permissions` is for presets",
                    "not used with `command`",
                    Some("put the flag into `command` itself"),
                );
            }
            spec.permissions = Some(p);
        }
        if let Some(v) = t.get("args")
            && let Some(args) = self.string_array(v, "`args`")
        {
            spec.args = args.into_iter().map(|(s, _)| s).collect();
        }
        spec.max_cost_usd = self.dollars(t.get("max_cost_usd"), "`max_cost_usd`");
        spec.max_turns = self.int_in(t.get("max_turns"), "`max_turns`", 1, 100_000);
        if let Some(v) = t.get("resume") {
            spec.resume = self.boolean(v, "`resume`");
        }
        if let Some(v) = t.get("timeout_counts_questions") {
            spec.timeout_counts_questions = self.boolean(v, "`timeout_counts_questions`");
        }
        if let Some(v) = t.get("mcp") {
            spec.mcp = self.boolean(v, "`mcp`");
        }
        spec.workspace = self.workspace(t);
        ok_name.then_some(spec)
    }

    fn tasks(&mut self, value: &Value<'_>, out: &mut Vec<TaskSpec>) {
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                "tt::plan::bad-type",
                value.span(),
                "`tasks` must be an array of tables",
                "not [[tasks]]",
                Some("write each task as a `[[tasks]]` table"),
            );
            return;
        };
        let keys = task_keys();
        for item in items.iter() {
            let Some(t) = self.table(item, "[[tasks]]") else {
                continue;
            };
            self.check_keys(t, &keys, "[[tasks]]", TASK_ALIASES);
            let mut task = TaskSpec {
                spans: TaskSpans {
                    table: item.span(),
                    ..Default::default()
                },
                ..Default::default()
            };
            match t.get("id") {
                Some(v) => {
                    if let Some((id, span)) = self.string(v, "`id`") {
                        self.check_id(&id, span.clone(), "task id");
                        task.id = id;
                        task.spans.id = span;
                    }
                }
                None => self.error(
                    "tt::plan::missing-id",
                    header_span(item.span(), &self.src.inner()[self.offset..]),
                    "task has no `id`",
                    "this [[tasks]] entry",
                    Some("add a unique `id = \"…\"` ([A-Za-z0-9._-], up to 128 characters)"),
                ),
            }
            if let Some(v) = t.get("description")
                && let Some((d, _)) = self.string(v, "`description`")
            {
                task.description = d;
            }
            if let Some(v) = t.get("agent")
                && let Some((a, span)) = self.string(v, "`agent`")
            {
                self.check_id(&a, span.clone(), "agent name");
                task.agent = Some(a);
                task.spans.agent = Some(span);
            }
            if let Some(v) = t.get("status")
                && let Some((s, span)) = self.string(v, "`status`")
            {
                match Status::parse(&s) {
                    Some(st) => task.status = Some(st),
                    None => {
                        let names = Status::ALL.map(Status::as_str);
                        let label = did_you_mean(&s, names.iter().copied())
                            .map_or("unknown status".into(), |h| format!("did you mean `{h}`?"));
                        self.error(
                            "tt::plan::bad-status",
                            span,
                            format!("`{s}` is not a task status"),
                            label,
                            Some(&format!("use one of: {}", names.join(", "))),
                        );
                    }
                }
            }
            if let Some(v) = t.get("tags")
                && let Some(tags) = self.string_array(v, "`tags`")
            {
                task.tags = tags.into_iter().map(|(s, _)| s).collect();
            }
            if let Some(v) = t.get("parent")
                && let Some((p, span)) = self.string(v, "`parent`")
            {
                task.parent = Some(p);
                task.spans.parent = Some(span);
            }
            if let Some(v) = t.get("depends_on") {
                let deps = match v.get_ref() {
                    DeValue::String(s) => Some(vec![(s.to_string(), v.span())]),
                    _ => self.string_array(v, "`depends_on`"),
                };
                for (d, span) in deps.unwrap_or_default() {
                    task.depends_on.push(d);
                    task.spans.depends_on.push(span);
                }
            }
            task.priority = self.int_in(t.get("priority"), "`priority`", 0, 4);
            task.retries = self.int_in(t.get("retries"), "`retries`", 0, 100);
            if let Some(v) = t.get("timeout")
                && let Some((s, span)) = self.string(v, "`timeout`")
            {
                self.check_duration(&s, span);
                task.timeout = Some(s);
            }
            if let Some(v) = t.get("on_child_failure")
                && let Some((s, span)) = self.string(v, "`on_child_failure`")
            {
                match ChildFailure::parse(&s) {
                    Some(c) => task.on_child_failure = Some(c),
                    None => self.error(
                        "tt::plan::bad-policy",
                        span,
                        format!("`{s}` is not a child failure policy"),
                        "unknown policy",
                        Some("use `wait` (default), `fail` or `continue`"),
                    ),
                }
            }
            task.max_cost_usd = self.dollars(t.get("max_cost_usd"), "`max_cost_usd`");
            task.max_turns = self.int_in(t.get("max_turns"), "`max_turns`", 1, 100_000);
            out.push(task);
        }
    }

    fn check_duration(&mut self, s: &str, span: Span) {
        match parse_duration(s) {
            None => self.error(
                "tt::plan::bad-duration",
                span,
                format!("`{s}` is not a duration"),
                "expected a duration",
                Some("write it like \"90s\", \"30m\" or \"1h 30m\""),
            ),
            // A timeout of nothing would stop every command as it starts.
            Some(d) if d.is_zero() => self.error(
                "tt::plan::zero-timeout",
                span,
                format!("a `timeout` of `{s}` stops every command at once"),
                "no time at all",
                Some("give a positive duration like \"30m\", or leave `timeout` out for no limit"),
            ),
            Some(_) => {}
        }
    }

    /// Every `{name}` in a `command` argument must be a placeholder.
    fn check_placeholders(&mut self, arg: &str, span: Span) {
        for name in placeholder::unknown(arg) {
            let help = placeholder::hint(name);
            self.error(
                "tt::plan::unknown-placeholder",
                span.clone(),
                format!("unknown placeholder `{{{name}}}` in `command`"),
                "not a placeholder",
                Some(&help),
            );
        }
    }

    fn check_id(&mut self, id: &str, span: Span, what: &str) -> bool {
        if valid_id(id) {
            return true;
        }
        let why = id_problem(id).unwrap_or_default();
        self.error(
            "tt::plan::bad-id",
            span,
            format!("{what} `{id}` {why}"),
            format!("invalid {what}"),
            Some(ID_HELP),
        );
        false
    }

    fn check_keys(
        &mut self,
        t: &DeTable<'_>,
        allowed: &[String],
        section: &str,
        aliases: &[(&str, &str)],
    ) {
        for key in t.keys() {
            let k = key.get_ref().as_ref();
            if allowed.iter().any(|a| a == k) {
                continue;
            }
            let suggestion = aliases
                .iter()
                .find(|(alias, _)| *alias == k)
                .map(|(_, real)| real.to_string())
                .or_else(|| did_you_mean(k, allowed.iter().map(String::as_str)));
            let label = suggestion.as_deref().map_or_else(
                || "unknown key".to_string(),
                |s| format!("did you mean `{s}`?"),
            );
            let help = format!("keys allowed in {section}: {}", allowed.join(", "));
            self.error(
                "tt::plan::unknown-key",
                key.span(),
                format!("unknown key `{k}` in {section}"),
                label,
                Some(&help),
            );
        }
    }

    fn table<'a, 'i>(&mut self, v: &'a Value<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.type_error(v.span(), what, "a table", other);
                None
            }
        }
    }

    fn string(&mut self, v: &Value<'_>, what: &str) -> Option<(String, Span)> {
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            other => {
                self.type_error(v.span(), what, "a string", other);
                None
            }
        }
    }

    fn boolean(&mut self, v: &Value<'_>, what: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.type_error(v.span(), what, "true or false", other);
                None
            }
        }
    }

    fn string_array(&mut self, v: &Value<'_>, what: &str) -> Option<Vec<(String, Span)>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.type_error(v.span(), what, "an array of strings", v.get_ref());
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            // The message is built only for an item that is wrong.
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                _ => {
                    out.push(self.string(item, &format!("each item of {what}"))?);
                }
            }
        }
        Some(out)
    }

    fn int_in<T: TryFrom<i64>>(
        &mut self,
        v: Option<&Value<'_>>,
        what: &str,
        min: i64,
        max: i64,
    ) -> Option<T> {
        let v = v?;
        let DeValue::Integer(i) = v.get_ref() else {
            self.type_error(v.span(), what, "an integer", v.get_ref());
            return None;
        };
        let n = i64::from_str_radix(i.as_str(), i.radix()).ok();
        match n.filter(|n| (min..=max).contains(n)) {
            Some(n) => T::try_from(n).ok(),
            None => {
                self.error(
                    "tt::plan::out-of-range",
                    v.span(),
                    format!("{what} must be between {min} and {max}"),
                    "out of range",
                    None,
                );
                None
            }
        }
    }

    /// An amount of US dollars: a number, zero or more.
    fn dollars(&mut self, v: Option<&Value<'_>>, what: &str) -> Option<f64> {
        let v = v?;
        let n: Option<f64> = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
            other => {
                self.type_error(v.span(), what, "a number of US dollars", other);
                return None;
            }
        };
        match n.filter(|n| n.is_finite() && *n >= 0.0) {
            Some(n) => Some(n),
            None => {
                self.error(
                    "tt::plan::out-of-range",
                    v.span(),
                    format!("{what} must be a number of US dollars, zero or more"),
                    "not an amount",
                    Some("for example: max_cost_usd = 2.50"),
                );
                None
            }
        }
    }

    fn type_error(&mut self, span: Span, what: &str, expected: &str, found: &DeValue<'_>) {
        self.error(
            "tt::plan::bad-type",
            span,
            format!("{what} must be {expected}, not {}", type_name(found)),
            format!("expected {expected}"),
            None,
        );
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The first line of a table's span, so a label sits under `[[tasks]]`
/// rather than under the whole entry.
fn header_span(span: Span, text: &str) -> Span {
    let body = text.get(span.clone()).unwrap_or("");
    let end = body.find('\n').map_or(span.end, |i| span.start + i);
    span.start..end
}

/// Names people write for our keys, with the key they meant.
const TASK_ALIASES: &[(&str, &str)] = &[
    ("dependencies", "depends_on"),
    ("deps", "depends_on"),
    ("depends", "depends_on"),
    ("needs", "depends_on"),
    ("after", "depends_on"),
    ("assignee", "agent"),
    ("owner", "agent"),
    ("title", "description"),
    ("name", "id"),
    ("group", "parent"),
    ("convoy", "parent"),
    ("state", "status"),
    ("prio", "priority"),
];
const AGENT_ALIASES: &[(&str, &str)] = &[
    ("replicas", "count"),
    ("instances", "count"),
    ("cmd", "command"),
    ("preset", "cli"),
    ("cwd", "workdir"),
    ("dir", "workdir"),
    ("retry", "retries"),
    ("environment", "env"),
    ("worktree", "workspace"),
    ("branch", "into"),
    ("target", "into"),
    ("copy", "include"),
];
const TOP_ALIASES: &[(&str, &str)] = &[("task", "tasks"), ("agent", "agents"), ("project", "town")];

/// Durations as people write them: `90s`, `30m`, `1h 30m`, `1h30m`.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    humantime::parse_duration(s.trim()).ok()
}
