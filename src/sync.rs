//! Plan → Redis: turn the plan into stored definitions, diff them against
//! what Redis holds by fingerprint, and apply only the difference.
//!
//! An unchanged file costs one `HGET` (the plan fingerprint); a changed one
//! one `HGETALL` of the per-task fingerprints plus one transaction that
//! touches only added, changed and removed tasks. The reload rules of
//! DESIGN.md (removed → cancelled, edge-triggered `status`, Redis wins for
//! progress) live in `store/scripts/sync.lua`, so they hold atomically.

use std::collections::{HashMap, HashSet};

use crate::plan::Plan;
use crate::store::{Store, StoreError, SyncCounts, TaskDef};

/// Stored definitions for every task of the plan, in file order.
pub fn definitions(plan: &Plan) -> Vec<TaskDef> {
    let groups: HashSet<&str> = plan
        .tasks
        .iter()
        .filter_map(|t| t.parent.as_deref())
        .collect();
    plan.tasks
        .iter()
        .enumerate()
        .map(|(order, t)| {
            // A group runs a join step only when it names its own agent;
            // `default_agent` is for leaf work.
            let agent = if groups.contains(t.id.as_str()) {
                t.agent.clone()
            } else {
                plan.agent_for(t).map(String::from)
            };
            let mut def = TaskDef {
                id: t.id.clone(),
                fingerprint: String::new(),
                description: t.description.clone(),
                agent: agent.unwrap_or_default(),
                tags: t.tags.clone(),
                parent: t.parent.clone().unwrap_or_default(),
                depends_on: t.depends_on.clone(),
                priority: t.effective_priority(),
                order: order as u64,
                file_status: t.status.map(|s| s.as_str().to_string()).unwrap_or_default(),
                retries: t.retries.map(|r| r.to_string()).unwrap_or_default(),
                timeout_ms: t
                    .timeout
                    .as_deref()
                    .and_then(crate::plan::parse_duration)
                    .map(|d| d.as_millis().to_string())
                    .unwrap_or_default(),
                on_child_failure: t
                    .on_child_failure
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
            };
            def.fingerprint = fingerprint(&def);
            def
        })
        .collect()
}

/// Hash of everything a definition stores, order included, so a reorder is
/// a change too.
fn fingerprint(d: &TaskDef) -> String {
    let mut h = sha1_smol::Sha1::new();
    for part in [
        d.id.as_str(),
        &d.description,
        &d.agent,
        &d.tags.join("\u{1f}"),
        &d.parent,
        &d.depends_on.join("\u{1f}"),
        &d.priority.to_string(),
        &d.order.to_string(),
        &d.file_status,
        &d.retries,
        &d.timeout_ms,
        &d.on_child_failure,
    ] {
        h.update(part.as_bytes());
        // Separator so ("ab","c") and ("a","bc") differ.
        h.update(&[0x1e]);
    }
    h.digest().to_string()[..16].to_string()
}

fn plan_fingerprint(defs: &[TaskDef]) -> String {
    let mut h = sha1_smol::Sha1::new();
    for d in defs {
        h.update(d.fingerprint.as_bytes());
    }
    h.digest().to_string()[..16].to_string()
}

/// The difference between the plan and Redis.
#[derive(Debug, Default)]
pub struct Diff {
    pub upserts: Vec<TaskDef>,
    pub removed: Vec<String>,
    pub added: u64,
    pub changed: u64,
    pub unchanged: u64,
}

/// Compares definitions with stored fingerprints.
pub fn diff(defs: Vec<TaskDef>, stored: &HashMap<String, String>) -> Diff {
    let mut d = Diff::default();
    let ids: HashSet<&str> = defs.iter().map(|x| x.id.as_str()).collect();
    let mut removed: Vec<String> = stored
        .keys()
        .filter(|id| !ids.contains(id.as_str()))
        .cloned()
        .collect();
    removed.sort();
    for def in defs {
        match stored.get(&def.id) {
            Some(fp) if *fp == def.fingerprint => d.unchanged += 1,
            Some(_) => {
                d.changed += 1;
                d.upserts.push(def);
            }
            None => {
                d.added += 1;
                d.upserts.push(def);
            }
        }
    }
    d.removed = removed;
    d
}

/// Whether statuses the file names are applied (a user's edit) or only
/// recorded as seen (the file was just written by `tt sync pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopt {
    No,
    Yes,
}

/// Pushes the plan into Redis, writing only what changed.
pub async fn push(store: &Store, plan: &Plan, adopt: Adopt) -> Result<SyncCounts, StoreError> {
    Ok(push_touched(store, plan, adopt).await?.0)
}

/// [`push`], also returning the ids it wrote (added, changed, removed), so
/// a runner knows which tasks to look at again.
pub async fn push_touched(
    store: &Store,
    plan: &Plan,
    adopt: Adopt,
) -> Result<(SyncCounts, Vec<String>), StoreError> {
    let defs = definitions(plan);
    let plan_fp = plan_fingerprint(&defs);
    let total = defs.len() as u64;
    if store.plan_fingerprint().await?.as_deref() == Some(plan_fp.as_str()) {
        let counts = SyncCounts {
            unchanged: total,
            ..SyncCounts::default()
        };
        return Ok((counts, Vec::new()));
    }
    let stored = store.task_fingerprints().await?;
    let diff = diff(defs, &stored);
    let applied = store
        .apply_sync(&diff.upserts, &diff.removed, &plan_fp, adopt == Adopt::Yes)
        .await?;
    let counts = SyncCounts {
        // The script counts a task as added when no record existed; one
        // restored from history (removed earlier) counts as changed there,
        // but the user added it back to the file, so report the file's view.
        added: diff.added,
        changed: diff.changed,
        removed: applied.removed,
        unchanged: diff.unchanged,
    };
    let touched = diff
        .upserts
        .into_iter()
        .map(|d| d.id)
        .chain(diff.removed)
        .collect();
    Ok((counts, touched))
}

impl std::fmt::Display for SyncCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "+{} added ~{} changed -{} removed ={} unchanged",
            self.added, self.changed, self.removed, self.unchanged
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(text: &str) -> Plan {
        match crate::plan::load(Path::new("tasks.toml"), text.to_string()) {
            Ok(p) => p,
            Err(e) => panic!("{e:?}"),
        }
    }

    const BASE: &str = r#"
[meta]
default_agent = "dev"

[[tasks]]
id = "auth"
description = "Auth"

[[tasks]]
id = "login"
description = "Login"
parent = "auth"

[[tasks]]
id = "docs"
description = "Docs"
"#;

    fn stored(defs: &[TaskDef]) -> HashMap<String, String> {
        defs.iter()
            .map(|d| (d.id.clone(), d.fingerprint.clone()))
            .collect()
    }

    #[test]
    fn groups_get_no_default_agent() {
        let defs = definitions(&plan(BASE));
        assert_eq!(defs[0].agent, "", "auth is a group without its own agent");
        assert_eq!(defs[1].agent, "dev");
        assert_eq!(defs[1].parent, "auth");
    }

    #[test]
    fn same_plan_diffs_to_nothing() {
        let defs = definitions(&plan(BASE));
        let d = diff(definitions(&plan(BASE)), &stored(&defs));
        assert!(d.upserts.is_empty() && d.removed.is_empty());
        assert_eq!(d.unchanged, 3);
    }

    #[test]
    fn an_edit_changes_only_that_task() {
        let before = definitions(&plan(BASE));
        let edited = BASE.replace("description = \"Docs\"", "description = \"Write docs\"");
        let d = diff(definitions(&plan(&edited)), &stored(&before));
        assert_eq!(
            d.upserts.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
            ["docs"]
        );
        assert_eq!((d.added, d.changed, d.unchanged), (0, 1, 2));
    }

    #[test]
    fn added_and_removed_tasks_are_found() {
        let before = definitions(&plan(BASE));
        let edited = format!("{BASE}\n[[tasks]]\nid = \"deploy\"\n")
            .replace("[[tasks]]\nid = \"docs\"\ndescription = \"Docs\"\n", "");
        let d = diff(definitions(&plan(&edited)), &stored(&before));
        assert_eq!(d.removed, ["docs"]);
        assert_eq!(d.added, 1);
        // `deploy` took the file position `docs` had, so nothing else moved.
        assert_eq!(d.changed, 0);
    }

    #[test]
    fn fingerprint_separates_fields() {
        let mut a = definitions(&plan(BASE)).remove(2);
        let mut b = a.clone();
        a.tags = vec!["ab".into(), "c".into()];
        b.tags = vec!["a".into(), "bc".into()];
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
