//! Reloading tasks.toml under `tt run` without re-reading the whole plan
//! when a save changed one task.
//!
//! A full reload of a 100k-task file is a full parse (~0.75 s for 11 MB)
//! plus a diff of every definition against every stored fingerprint
//! (~0.3 s); the usual save changes one entry. So the runner keeps, beside
//! the plan it pushed last ([`Cache`]): that text, the byte offset of each
//! `[[tasks]]` header in it, and per task its fingerprint and whether it is
//! a group — about 2 MB at 100k tasks beside the text (11 MB).
//!
//! On a save, the common prefix and suffix of the old and the new text give
//! the changed byte range. When it lies inside one entry's region (from its
//! header to the next header, [`region_end`]), the new text *is* the old text
//! with that region replaced, so parsing the region alone as a document of
//! its own ([`plan::load_task_entry`]) gives that task exactly as a full
//! load would — provided the region is still exactly one clean `[[tasks]]`
//! table (any other header, top-level key or problem falls back, and so
//! does a region that no longer ends a line, since the next header must
//! start one). If its `id`, `parent` and `depends_on` are unchanged, no
//! check across tasks (duplicates, references, cycles, which tasks are
//! groups) can have changed either, so the plan is valid and only this
//! task's definition can differ: it is written alone, with the plan
//! fingerprint recomputed from the cached fingerprints (the value a full
//! push would record, so a later full push is a no-op).
//!
//! Redis is written only if it still holds the plan fingerprint this runner
//! pushed last, checked inside the sync script: a `tt sync push` from
//! elsewhere meanwhile makes the edit fall back to the full reload, which
//! diffs against what Redis really holds. Every other case — edits in
//! `[meta]`, `[agents]` or `[town]`, an added or removed entry, a changed
//! id, parent or dependency, any problem — is the full load and push as
//! before, which also reports the diagnostics; after it the cache is built
//! anew.

use std::path::Path;
use std::sync::Arc;

use crate::plan::{self, Plan, TaskSpec};
use crate::store::{Store, StoreError, SyncCounts, SyncGuard, TaskDef};
use crate::sync;

/// What the runner remembers of the texts it loaded.
#[derive(Default)]
pub struct LastLoad {
    /// The plan last pushed, if its text allows incremental reloads.
    cache: Option<Cache>,
    /// SHA-1 of the last good text when there is no cache, to skip a save
    /// that changed nothing.
    good: Option<[u8; 20]>,
    /// SHA-1 of the last text that did not load, so the same broken save is
    /// not reported twice. Cleared by a good one.
    bad: Option<[u8; 20]>,
}

/// What to do with a saved text.
#[derive(Debug)]
pub enum Edit {
    /// The same text as last time: nothing to do.
    Unchanged,
    /// One task's edit, already in Redis.
    Applied {
        counts: SyncCounts,
        touched: Vec<String>,
    },
    /// Load and push it in full; `digest` is its SHA-1 for [`LastLoad::failed`].
    Full { text: String, digest: [u8; 20] },
}

impl LastLoad {
    /// Handles a saved text incrementally if it can ([module docs](self)),
    /// else hands it back for the full load.
    pub async fn apply_edit(
        &mut self,
        store: &Store,
        path: &Path,
        mut text: String,
    ) -> Result<Edit, StoreError> {
        if let Some(cache) = &mut self.cache {
            if self.bad.is_none() && cache.text.as_str() == text {
                return Ok(Edit::Unchanged);
            }
            let new = Arc::new(text);
            if let Some(edit) = cache.plan_edit(path, &new)
                && let Some(counts) = cache.push(store, path, &edit).await?
            {
                let touched = if counts.changed > 0 {
                    vec![edit.def.id.clone()]
                } else {
                    Vec::new()
                };
                cache.commit(edit, new);
                self.bad = None;
                return Ok(Edit::Applied { counts, touched });
            }
            // Nothing else holds it now (the entry loads dropped theirs).
            text = Arc::try_unwrap(new).unwrap_or_else(|shared| (*shared).clone());
        }
        let digest = digest(&text);
        let last = if self.bad.is_some() {
            self.bad
        } else {
            self.good
        };
        if last == Some(digest) {
            return Ok(Edit::Unchanged);
        }
        Ok(Edit::Full { text, digest })
    }

    /// A text that did not load: remembered so it is reported once.
    pub fn failed(&mut self, digest: [u8; 20]) {
        self.bad = Some(digest);
    }

    /// A plan loaded and pushed in full: the base of the next edits.
    pub fn loaded(&mut self, plan: &Plan, pushed_fingerprints: Vec<u64>, plan_fp: String) {
        self.bad = None;
        self.cache = Cache::new(plan, pushed_fingerprints, plan_fp);
        self.good = match self.cache {
            Some(_) => None,
            None => Some(digest(&plan.source)),
        };
    }
}

fn digest(text: &str) -> [u8; 20] {
    sha1_smol::Sha1::from(text).digest().bytes()
}

/// The plan last pushed, as much of it as an incremental reload needs.
struct Cache {
    text: Arc<String>,
    /// Byte offset of each task's `[[tasks]]` header, in file order.
    starts: Vec<usize>,
    /// Fingerprint of each task's stored definition, in file order.
    fingerprints: Vec<u64>,
    /// Whether each task is a group (another task names it as parent).
    groups: Vec<bool>,
    default_agent: Option<String>,
    /// The plan fingerprint this runner last wrote (or found) in Redis.
    plan_fp: String,
}

/// One task's new definition, not yet written.
#[derive(Debug)]
struct Planned {
    index: usize,
    /// Where the entry's header is in the new text: not always where its
    /// region began (a comment inserted before the header is in the region).
    start: usize,
    def: TaskDef,
    fingerprint: u64,
    plan_fp: String,
    /// Length of the new text minus the old.
    delta: isize,
}

impl Cache {
    /// `None` when the tasks are not all `[[tasks]]` headers in file order
    /// (e.g. `tasks = [{ … }]`), which the region logic relies on.
    fn new(plan: &Plan, fingerprints: Vec<u64>, plan_fp: String) -> Option<Cache> {
        let text = plan.source.clone();
        let starts: Vec<usize> = plan.tasks.iter().map(|t| t.spans.table.start).collect();
        let headers = starts
            .iter()
            .all(|&s| text.get(s..).is_some_and(|t| t.starts_with("[[")));
        let ordered = starts.windows(2).all(|w| w[0] < w[1]);
        if !headers || !ordered || fingerprints.len() != starts.len() {
            return None;
        }
        let group_ids = sync::group_ids(plan);
        let groups = plan
            .tasks
            .iter()
            .map(|t| group_ids.contains(t.id.as_str()))
            .collect();
        Some(Cache {
            text,
            starts,
            fingerprints,
            groups,
            default_agent: plan.meta.default_agent.clone(),
            plan_fp,
        })
    }

    /// The definition a full load would give the one task `new` changed,
    /// or `None` when the change is not confined to one task ([module
    /// docs](self)).
    fn plan_edit(&self, path: &Path, new: &Arc<String>) -> Option<Planned> {
        let (old, new_text) = (self.text.as_str(), new.as_str());
        let prefix = common_prefix(old.as_bytes(), new_text.as_bytes());
        let most = old.len().min(new_text.len()) - prefix;
        let suffix = common_suffix(old.as_bytes(), new_text.as_bytes(), most);
        let index = self
            .starts
            .partition_point(|&s| s <= prefix)
            .checked_sub(1)?;
        let start = self.starts[index];
        let end = region_end(old, start);
        if old.len() - suffix > end {
            return None;
        }
        // `end >= old.len() - suffix` and `suffix <= new.len()`: no underflow.
        let new_end = end + new_text.len() - old.len();
        // The next header must still start a line.
        if new_end < new_text.len() && !new_text.get(..new_end).is_some_and(|t| t.ends_with('\n')) {
            return None;
        }
        let before = plan::load_task_entry(path, self.text.clone(), start..end).ok()?;
        let after = plan::load_task_entry(path, new.clone(), start..new_end).ok()?;
        if !same_links(&before, &after) {
            return None;
        }
        let def = sync::definition(
            &after,
            index,
            self.groups[index],
            self.default_agent.as_deref(),
        );
        let fingerprint = sync::fingerprint(&def);
        let mut fingerprints = self.fingerprints.clone();
        fingerprints[index] = fingerprint;
        let plan_fp = sync::plan_fingerprint_of(&fingerprints);
        Some(Planned {
            index,
            start: after.spans.table.start,
            def,
            fingerprint,
            plan_fp,
            delta: new_text.len() as isize - old.len() as isize,
        })
    }

    /// Writes the edit if Redis still holds the plan this runner pushed:
    /// `None` when it does not (the caller falls back to a full push).
    async fn push(
        &self,
        store: &Store,
        path: &Path,
        edit: &Planned,
    ) -> Result<Option<SyncCounts>, StoreError> {
        let total = self.fingerprints.len() as u64;
        if edit.fingerprint == self.fingerprints[edit.index] {
            // Nothing to write (a comment, spacing) — as long as Redis is
            // where a full push would also find nothing to do.
            let stored = store.plan_fingerprint().await?;
            return Ok(
                (stored.as_deref() == Some(self.plan_fp.as_str())).then(|| SyncCounts {
                    unchanged: total,
                    ..SyncCounts::default()
                }),
            );
        }
        let origin = sync::origin_of(path);
        let guard = SyncGuard {
            origin: &origin,
            take_over: false,
            expected: Some(&self.plan_fp),
            cold: false,
        };
        let applied = store
            .apply_sync(
                std::slice::from_ref(&edit.def),
                &[],
                &edit.plan_fp,
                false,
                &guard,
            )
            .await?;
        // Refused (stale or foreign): the full push decides and reports.
        Ok(applied.ok().map(|c| SyncCounts {
            changed: 1 - c.skipped,
            skipped: c.skipped,
            unchanged: total - 1,
            ..SyncCounts::default()
        }))
    }

    fn commit(&mut self, edit: Planned, new: Arc<String>) {
        self.text = new;
        self.fingerprints[edit.index] = edit.fingerprint;
        self.starts[edit.index] = edit.start;
        self.plan_fp = edit.plan_fp;
        for s in &mut self.starts[edit.index + 1..] {
            *s = s.saturating_add_signed(edit.delta);
        }
    }
}

/// Where the region of the entry whose header is at `start` ends: at the
/// next line that begins (after spaces) with `[`, else at the end of the
/// text. That is the next header — of a task or of any other table, so a
/// `[agents]` table after the last task does not widen its region — unless
/// it sits inside a multi-line string or array; then the region cut there
/// does not parse as an entry and the edit falls back to the full load.
fn region_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut at = start;
    while let Some(nl) = bytes[at..].iter().position(|&b| b == b'\n') {
        let line = at + nl + 1;
        let indent = bytes[line..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if bytes.get(line + indent) == Some(&b'[') {
            return line;
        }
        at = line;
    }
    text.len()
}

/// Whether two versions of a task relate to the others the same way. An
/// entry naming `<town>:<task>` never is taken alone: whether that town is
/// this one (then the dependency is local) is for the full load to decide.
fn same_links(a: &TaskSpec, b: &TaskSpec) -> bool {
    a.id == b.id
        && a.parent == b.parent
        && a.depends_on == b.depends_on
        && !b.depends_on.iter().any(|d| d.contains(':'))
}

/// Length of the common prefix, compared a block at a time (memcmp) before
/// byte by byte: an 11 MB file is a few hundred microseconds.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Length of the common suffix, at most `most` bytes.
fn common_suffix(a: &[u8], b: &[u8], most: usize) -> usize {
    const BLOCK: usize = 4096;
    let (la, lb) = (a.len(), b.len());
    let mut i = 0;
    while i + BLOCK <= most && a[la - i - BLOCK..la - i] == b[lb - i - BLOCK..lb - i] {
        i += BLOCK;
    }
    while i < most && a[la - i - 1] == b[lb - i - 1] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load(text: &str) -> Result<Plan, plan::LoadError> {
        plan::load(Path::new("tasks.toml"), text.to_string())
    }

    fn cache_of(text: &str) -> Cache {
        let plan = load(text).unwrap_or_else(|e| panic!("{e:?}"));
        let fps: Vec<u64> = sync::definitions(&plan)
            .iter()
            .map(sync::fingerprint)
            .collect();
        let plan_fp = sync::plan_fingerprint_of(&fps);
        Cache::new(&plan, fps, plan_fp).unwrap_or_else(|| panic!("no cache for {text}"))
    }

    fn edit(cache: &Cache, new: &str) -> Option<Planned> {
        cache.plan_edit(Path::new("tasks.toml"), &Arc::new(new.to_string()))
    }

    /// The fast path, where it is taken, gives exactly what a full load
    /// gives: the edited task's definition, every other one unchanged, and
    /// the same plan fingerprint. Returns whether it was taken.
    fn check(old: &str, new: &str) -> bool {
        let cache = cache_of(old);
        let Some(e) = edit(&cache, new) else {
            return false;
        };
        let full =
            load(new).unwrap_or_else(|err| panic!("fast path took an invalid file: {err:?}"));
        let old_defs = sync::definitions(&load(old).unwrap_or_else(|err| panic!("{err:?}")));
        let defs = sync::definitions(&full);
        assert_eq!(defs.len(), old_defs.len());
        assert_eq!(defs[e.index], e.def);
        for (i, (d, o)) in defs.iter().zip(&old_defs).enumerate() {
            if i != e.index {
                assert_eq!(d, o, "task {i} changed");
            }
        }
        let fps: Vec<u64> = defs.iter().map(sync::fingerprint).collect();
        assert_eq!(e.fingerprint, fps[e.index]);
        assert_eq!(e.plan_fp, sync::plan_fingerprint_of(&fps));
        // Committed, the cache is what a fresh one of the new text is.
        let mut cache = cache;
        cache.commit(e, Arc::new(new.to_string()));
        let fresh = cache_of(new);
        assert_eq!(cache.starts, fresh.starts);
        assert_eq!(cache.fingerprints, fresh.fingerprints);
        assert_eq!(cache.plan_fp, fresh.plan_fp);
        true
    }

    const BASE: &str = r#"[meta]
default_agent = "dev"

[[tasks]]
id = "auth"
description = "Auth"

[[tasks]]
id = "login"
description = "Login"
parent = "auth"
tags = ["api"]

[[tasks]]
id = "docs"
description = "Docs"
depends_on = ["login"]
"#;

    #[test]
    fn field_edits_take_the_fast_path() {
        for (from, to) in [
            (
                "description = \"Login\"",
                "description = \"Log in, with 2FA\"",
            ),
            (
                "description = \"Auth\"",
                "description = \"Auth\"\nagent = \"sec\"",
            ),
            ("tags = [\"api\"]", "tags = [\"api\", \"P0\"]"),
            ("tags = [\"api\"]", "priority = 4"),
            (
                "description = \"Docs\"",
                "description = \"Docs\"\nstatus = \"completed\"",
            ),
            (
                "description = \"Docs\"",
                "description = \"Docs\" # soon\ntimeout = \"5m\"",
            ),
            (
                "description = \"Docs\"",
                "description = \"\"\"\n[[tasks]]\nid = \"x\"\n\"\"\"",
            ),
            (
                "description = \"Auth\"",
                "# the group\ndescription = \"Auth\"",
            ),
        ] {
            let new = BASE.replace(from, to);
            assert_ne!(new, BASE);
            assert!(check(BASE, &new), "not incremental: {to}");
        }
    }

    #[test]
    fn a_save_that_changes_nothing_stored_is_still_one_entry() {
        let new = BASE.replace("id = \"docs\"", "id = \"docs\"   # same");
        let e = edit(&cache_of(BASE), &new).expect("incremental");
        assert_eq!(e.fingerprint, cache_of(BASE).fingerprints[2]);
        assert!(check(BASE, &new));
    }

    #[test]
    fn a_comment_inserted_before_a_header_keeps_the_header_where_it_is() {
        let new = BASE.replace(
            "[[tasks]]\nid = \"docs\"",
            "# docs\n[[tasks]]\nid = \"docs\"",
        );
        assert_ne!(new, BASE);
        // `check` compares the committed cache, header offsets included,
        // with a fresh one of the new text.
        assert!(check(BASE, &new));
    }

    #[test]
    fn everything_else_falls_back() {
        let cases = [
            // Links to other tasks.
            BASE.replace("id = \"docs\"", "id = \"docs2\""),
            BASE.replace("parent = \"auth\"", ""),
            BASE.replace("depends_on = [\"login\"]", "depends_on = [\"auth\"]"),
            BASE.replace("depends_on = [\"login\"]", ""),
            BASE.replace(
                "description = \"Docs\"",
                "description = \"Docs\"\nparent = \"auth\"",
            ),
            // Other tables, entries added or removed.
            BASE.replace("default_agent = \"dev\"", "default_agent = \"ops\""),
            format!("{BASE}\n[[tasks]]\nid = \"more\"\n"),
            BASE.replace(
                "description = \"Login\"",
                "description = \"Login\"\n\n[[tasks]]\nid = \"x\"",
            ),
            BASE.replace(
                "[[tasks]]\nid = \"docs\"\ndescription = \"Docs\"\ndepends_on = [\"login\"]\n",
                "",
            ),
            format!("{BASE}\n[agents.dev]\ncommand = [\"true\"]\n"),
            // Problems: the full load reports them.
            BASE.replace("description = \"Docs\"", "description = Docs"),
            BASE.replace("description = \"Docs\"", "descripton = \"Docs\""),
            BASE.replace("description = \"Docs\"", "priority = 9"),
            BASE.replace("description = \"Docs\"", "status = \"done\""),
            BASE.replace("description = \"Docs\"", "agent = \"not an id\""),
            BASE.replace("description = \"Docs\"", "description = \"\"\"open"),
            // A key that would belong to the entry above, not a header.
            BASE.replace(
                "[[tasks]]\nid = \"docs\"",
                "tasks = [{ id = \"docs\" }]\n[[x]]\nid = \"docs\"",
            ),
            // The next header would no longer start a line.
            BASE.replace("tags = [\"api\"]\n\n", "tags = [\"api\"]"),
        ];
        let cache = cache_of(BASE);
        for new in cases {
            assert_ne!(new, BASE);
            assert!(edit(&cache, &new).is_none(), "taken for:\n{new}");
        }
    }

    #[test]
    fn tables_after_the_tasks_bound_the_last_entry() {
        let old = format!("{BASE}\n[agents.dev]\ncommand = [\"true\"]\n");
        let new = old.replace("description = \"Docs\"", "description = \"Docs!\"");
        assert!(check(&old, &new));
        assert!(check(&old, &old.replace("\"Login\"", "\"Log in\"")));
        // An edit of the table after the entry is no edit of the entry.
        let agents = old.replace("[\"true\"]", "[\"false\"]");
        assert!(edit(&cache_of(&old), &agents).is_none());
    }

    #[test]
    fn a_line_like_a_header_inside_a_string_falls_back_correctly() {
        let old = BASE.replace(
            "description = \"Login\"",
            "description = \"\"\"\n  [not a header]\n\"\"\"",
        );
        let new = old.replace("not a header", "still not one");
        // The region is cut at the line inside the string: no fast path,
        // and nothing wrong.
        assert!(!check(&old, &new));
        assert!(check(&old, &old.replace("\"Docs\"", "\"Docs!\"")));
    }

    #[test]
    fn inline_task_arrays_get_no_cache() {
        let plan =
            load("tasks = [{ id = \"a\" }, { id = \"b\" }]\n").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(Cache::new(&plan, vec![0, 0], String::new()).is_none());
    }

    #[test]
    fn entry_diagnostics_point_into_the_file() {
        let new = BASE.replace("description = \"Docs\"", "priority = 9");
        let start = new.find("[[tasks]]\nid = \"docs\"").unwrap_or(0);
        let Err(plan::EntryError::Invalid(problems)) = plan::load_task_entry(
            Path::new("tasks.toml"),
            Arc::new(new.clone()),
            start..new.len(),
        ) else {
            panic!("expected a problem");
        };
        let span = problems[0].labels[0].0.clone();
        assert_eq!(&new[span], "9");
        let full = match load(&new) {
            Err(plan::LoadError::Invalid { problems, .. }) => problems,
            other => panic!("{other:?}"),
        };
        assert_eq!(full[0].labels, problems[0].labels);
    }

    #[derive(Debug, Clone)]
    struct Task {
        id: String,
        description: String,
        agent: Option<String>,
        parent: Option<usize>,
        deps: Vec<usize>,
        tags: Vec<String>,
        priority: Option<u8>,
        status: Option<&'static str>,
    }

    fn render(default_agent: bool, tasks: &[Task]) -> String {
        let mut out = String::new();
        if default_agent {
            out.push_str("[meta]\ndefault_agent = \"dev\"\n\n");
        }
        for t in tasks {
            out.push_str(&entry(t, tasks));
        }
        out
    }

    fn entry(t: &Task, tasks: &[Task]) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut out = format!(
            "[[tasks]]\nid = {}\ndescription = {}\n",
            q(&t.id),
            q(&t.description)
        );
        if let Some(a) = &t.agent {
            out.push_str(&format!("agent = {}\n", q(a)));
        }
        if let Some(p) = t.parent {
            out.push_str(&format!("parent = {}\n", q(&tasks[p].id)));
        }
        if !t.deps.is_empty() {
            let deps: Vec<String> = t.deps.iter().map(|&d| q(&tasks[d].id)).collect();
            out.push_str(&format!("depends_on = [{}]\n", deps.join(", ")));
        }
        if !t.tags.is_empty() {
            let tags: Vec<String> = t.tags.iter().map(|s| q(s)).collect();
            out.push_str(&format!("tags = [{}]\n", tags.join(", ")));
        }
        if let Some(p) = t.priority {
            out.push_str(&format!("priority = {p}\n"));
        }
        if let Some(s) = t.status {
            out.push_str(&format!("status = {}\n", q(s)));
        }
        out.push('\n');
        out
    }

    fn tasks_strategy() -> impl Strategy<Value = Vec<Task>> {
        (2usize..10).prop_flat_map(|n| {
            proptest::collection::vec(
                (
                    "[a-zA-Z0-9 \"\\\\é→\n]{0,12}",
                    proptest::option::of("[a-c]"),
                    any::<prop::sample::Index>(),
                    any::<bool>(),
                    proptest::collection::vec("P[0-4]|api|x", 0..3),
                    proptest::option::of(0u8..5),
                    proptest::option::of(prop::sample::select(vec!["pending", "completed"])),
                ),
                n,
            )
            .prop_map(|raw| {
                raw.into_iter()
                    .enumerate()
                    .map(
                        |(i, (description, agent, link, has_link, tags, priority, status))| {
                            // Links only point backwards: no cycles.
                            let target = (i > 0).then(|| link.index(i));
                            Task {
                                id: format!("t{i}"),
                                description,
                                agent,
                                parent: target.filter(|_| has_link && i % 3 == 1),
                                deps: target
                                    .filter(|_| has_link && i % 3 == 2)
                                    .into_iter()
                                    .collect(),
                                tags,
                                priority,
                                status,
                            }
                        },
                    )
                    .collect()
            })
        })
    }

    /// A change to one entry: (kind, new text for fields).
    fn edited(tasks: &[Task], k: usize, kind: u8, text: &str, n: u8) -> (Vec<Task>, bool) {
        let mut tasks = tasks.to_vec();
        let t = &mut tasks[k];
        // Whether a full load must be the only way.
        let links = match kind {
            0 => {
                t.description = text.to_string();
                false
            }
            1 => {
                t.priority = Some(n % 5);
                false
            }
            2 => {
                t.status = Some(["pending", "completed", "cancelled"][usize::from(n % 3)]);
                false
            }
            3 => {
                t.tags = vec![
                    format!("P{}", n % 5),
                    text.chars().filter(char::is_ascii_alphanumeric).collect(),
                ];
                false
            }
            4 => {
                t.agent = Some(format!("a{n}"));
                false
            }
            5 => {
                t.id = format!("new{n}");
                true
            }
            6 => {
                t.parent = if t.parent.is_some() || k == 0 {
                    None
                } else {
                    Some(0)
                };
                true
            }
            _ => {
                t.deps = if t.deps.is_empty() && k > 0 {
                    vec![0]
                } else {
                    Vec::new()
                };
                true
            }
        };
        (tasks, links)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn one_entry_edits_equal_a_full_load(
            tasks in tasks_strategy(),
            default_agent in any::<bool>(),
            k in any::<prop::sample::Index>(),
            kind in 0u8..8,
            text in "[a-zA-Z0-9 \"\\\\é\n]{0,16}",
            n in any::<u8>(),
        ) {
            let old = render(default_agent, &tasks);
            let k = k.index(tasks.len());
            let (new_tasks, links) = edited(&tasks, k, kind, &text, n);
            let new = render(default_agent, &new_tasks);
            let taken = check(&old, &new);
            // Field edits are always incremental; changed links never are
            // (unless the change is no change, like a parent removed from
            // the first task, which never had one).
            let same = old == new;
            prop_assert!(taken || links || same, "fallback for a field edit:\n{old}\n->\n{new}");
            if links && !same {
                let old_t = &tasks[k];
                let new_t = &new_tasks[k];
                let changed = old_t.id != new_t.id || old_t.parent != new_t.parent || old_t.deps != new_t.deps;
                prop_assert!(!(taken && changed), "fast path for a changed link:\n{new}");
            }
        }

        #[test]
        fn arbitrary_one_place_edits_match_a_full_load_or_fall_back(
            tasks in tasks_strategy(),
            at in any::<prop::sample::Index>(),
            del in 0usize..6,
            insert in "[a-z=\"\\[\\]#\n ]{0,8}",
            agents_after in any::<bool>(),
        ) {
            let mut old = render(true, &tasks);
            if agents_after {
                old.push_str("[agents.dev]\ncommand = [\"true\", \"[x]\"]\n");
            }
            let mut at = at.index(old.len());
            while !old.is_char_boundary(at) { at -= 1; }
            let mut end = (at + del).min(old.len());
            while !old.is_char_boundary(end) { end += 1; }
            let new = format!("{}{}{}", &old[..at], insert, &old[end..]);
            // `check` panics if a fast path result differs from a full load.
            check(&old, &new);
        }
    }
}
