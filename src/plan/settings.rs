//! What a worker needs from tasks.toml — `[town]`, `[meta]` and
//! `[agents]` — without loading its tasks. Each worker of a `tt run` reads
//! the file to find its agent's settings; parsing and validating every task
//! for that made each idle worker of a 100k-task plan hold ~218 MiB
//! (README "Performance").
//!
//! The usual file declares its tables before the first `[[tasks]]` entry.
//! Then the text up to that line is a TOML document of its own, and after
//! it only task entries follow: when every header after the cut is
//! `[[tasks]]`, the prefix is all that is parsed, with the same checks and
//! spans as a full load. Anything else — a table after the tasks, a line
//! in a task that only looks like a header, a prefix that does not parse —
//! falls back to parsing the whole file (still without walking its tasks),
//! so the settings are always the full parser's.
//!
//! Mistakes inside `[[tasks]]` entries are `tt run`'s and `tt plan`'s to
//! report: a worker starts on a file whose tasks are invalid.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::load::load_settings_text;
use super::{AgentSpec, LoadError, Meta, TownConfig};

/// `[town]`, `[meta]` and the declared agents of a plan file, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub town: TownConfig,
    pub meta: Meta,
    /// Declared agents, in file order.
    pub agents: Vec<(String, AgentSpec)>,
}

impl Settings {
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// The file name shown in messages.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// Reads a file and loads its settings.
pub fn load_settings_file(path: &Path) -> Result<Settings, LoadError> {
    load_settings(path, super::read_plan(path)?)
}

/// The settings of a plan's text; `path` names the file in messages and is
/// where relative paths start.
pub fn load_settings(path: &Path, text: String) -> Result<Settings, LoadError> {
    let source = Arc::new(text);
    if let Some(end) = tasks_start(&source)
        && let Ok(settings) = load_settings_text(path, &source, end)
    {
        return Ok(settings);
    }
    load_settings_text(path, &source, source.len())
}

/// Where the first `[[tasks]]` line starts, if every header-like line from
/// there on is `[[tasks]]` too; `None` when there is no such line or
/// something after it may open another table.
fn tasks_start(text: &str) -> Option<usize> {
    let mut start = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let at = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        if !trimmed.starts_with('[') {
            continue;
        }
        if is_tasks_header(trimmed) {
            start.get_or_insert(at);
        } else if start.is_some() {
            return None;
        }
    }
    start
}

/// `[[tasks]]`, spaces and a comment allowed after it.
fn is_tasks_header(line: &str) -> bool {
    line.strip_prefix("[[tasks]]").is_some_and(|rest| {
        let rest = rest.trim();
        rest.is_empty() || rest.starts_with('#')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(text: &str) -> Result<Settings, LoadError> {
        load_settings(Path::new("tasks.toml"), text.to_string())
    }

    fn full(text: &str) -> Result<Settings, LoadError> {
        let source = Arc::new(text.to_string());
        load_settings_text(Path::new("tasks.toml"), &source, source.len())
    }

    fn fields(s: &Settings) -> String {
        format!("{:?} {:?} {:?}", s.town, s.meta, s.agents)
    }

    #[test]
    fn the_prefix_before_the_tasks_is_enough_when_only_tasks_follow() {
        let text = "[town]\nname = \"a\"\n[agents.dev]\ncli = \"shell\"\n\n[[tasks]] # first\nid = \"x\"\n[[tasks]]\nid = \"y\"\n";
        assert_eq!(tasks_start(text), text.find("[[tasks]] # first"));
        let s = quick(text).unwrap();
        assert_eq!(s.town.name.as_deref(), Some("a"));
        assert_eq!(s.agent("dev").and_then(|a| a.cli.as_deref()), Some("shell"));
    }

    #[test]
    fn a_table_after_the_tasks_sends_the_question_to_the_full_parser() {
        let text = "[[tasks]]\nid = \"x\"\n[agents.dev]\ncli = \"shell\"\n";
        assert_eq!(tasks_start(text), None);
        assert!(quick(text).unwrap().agent("dev").is_some());
        // A header-like line inside a task, too.
        let text = "[[tasks]]\nid = \"x\"\ndescription = \"\"\"\n[agents.dev]\n\"\"\"\n";
        assert_eq!(tasks_start(text), None);
    }

    #[test]
    fn mistakes_in_tasks_do_not_stop_a_worker_but_mistakes_in_its_tables_do() {
        let text = "[agents.dev]\ncli = \"shell\"\n[[tasks]]\nid = \"x\"\nparent = \"nope\"\nstatus = \"bogus\"\n[[tasks]]\nid = \"x\"\n";
        assert!(quick(text).is_ok());
        let text = "[agents.dev]\ncli = \"shel\"\n[[tasks]]\nid = \"x\"\n";
        match quick(text) {
            Err(LoadError::Invalid { problems, .. }) => {
                assert!(
                    format!("{problems:?}").contains("unknown-preset"),
                    "{problems:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        /// Files made of pieces that put tables, tasks and header-like
        /// lines in every order: whenever the full parser finds valid
        /// settings, the quick answer is the same.
        #[test]
        fn any_arrangement_reads_as_the_full_parser_reads_it(
            pieces in proptest::collection::vec(0usize..PIECES.len(), 0..8)
        ) {
            let text: String = pieces.iter().map(|&i| PIECES[i]).collect();
            if let Ok(f) = full(&text) {
                let q = quick(&text);
                proptest::prop_assert!(q.is_ok(), "{text}");
                proptest::prop_assert_eq!(fields(&q.unwrap()), fields(&f));
            }
        }
    }

    const PIECES: &[&str] = &[
        "[town]\nname = \"a\"\n",
        "[meta]\ndefault_agent = \"dev\"\n",
        "[agents.dev]\ncli = \"shell\"\n",
        "[agents.ops]\ncommand = [\n  \"make\",\n]\n",
        "[[tasks]]\nid = \"t\"\n",
        "[[tasks]]\nid = \"u\"\ndescription = \"\"\"\n",
        "\"\"\"\n",
        "[agents.dev]\n",
        "tags = [\n[\"x\"],\n]\n",
        "# [[tasks]]\n",
        "[[tasks]]\n",
    ];
}
