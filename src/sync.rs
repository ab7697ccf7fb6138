//! Plan → Redis: turn the plan into stored definitions, diff them against
//! what Redis holds by fingerprint, and apply only the difference.
//!
//! An unchanged file costs one `HGET` (the plan fingerprint); a changed one
//! one `HGETALL` of the per-task fingerprints plus one transaction that
//! touches only added, changed and removed tasks. The reload rules of
//! DESIGN.md (removed → cancelled, edge-triggered `status`, Redis wins for
//! progress) live in `store/scripts/sync.lua`, so they hold atomically.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::plan::{Plan, TaskSpec};
use crate::store::{
    Archive, Store, StoreError, SyncCounts, SyncGuard, SyncRefused, TaskDef, room_for,
};

/// Stored definitions for every task of the plan, in file order.
pub fn definitions(plan: &Plan) -> Vec<TaskDef> {
    let groups = group_ids(plan);
    let default_agent = plan.meta.default_agent.as_deref();
    plan.tasks
        .iter()
        .enumerate()
        .map(|(order, t)| definition(t, order, groups.contains(t.id.as_str()), default_agent))
        .collect()
}

/// Ids that some task names as its `parent`: the groups.
pub fn group_ids(plan: &Plan) -> HashSet<&str> {
    plan.tasks
        .iter()
        .filter_map(|t| t.parent.as_deref())
        .collect()
}

/// The stored definition of one task, given what it needs from the rest of
/// the plan: its position, whether it is a group, and `[meta]
/// default_agent`. [`definitions`] and the incremental reload
/// ([`crate::reload`]) both build definitions here, so they cannot differ.
pub fn definition(
    t: &TaskSpec,
    order: usize,
    is_group: bool,
    default_agent: Option<&str>,
) -> TaskDef {
    // A group runs a join step only when it names its own agent;
    // `default_agent` is for leaf work.
    let agent = if is_group {
        t.agent.clone()
    } else {
        t.agent.as_deref().or(default_agent).map(String::from)
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
        budget: budget_json(t),
    };
    def.fingerprint = fingerprint_hex(fingerprint(&def));
    def
}

/// A task's own budget as stored (`budget` field): JSON, "" for none.
fn budget_json(t: &TaskSpec) -> String {
    let mut m = serde_json::Map::new();
    if let Some(c) = t.max_cost_usd.and_then(serde_json::Number::from_f64) {
        m.insert("max_cost_usd".into(), serde_json::Value::Number(c));
    }
    if let Some(n) = t.max_turns {
        m.insert("max_turns".into(), n.into());
    }
    if m.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(m).to_string()
    }
}

/// Hash of everything a definition stores, order included, so a reorder is
/// a change too: the first 8 bytes of a SHA-1, stored in Redis as 16 hex
/// digits ([`fingerprint_hex`]).
pub fn fingerprint(d: &TaskDef) -> u64 {
    // Fed part by part, without building the joined lists and numbers as
    // strings: the bytes are those of `tags.join("\u{1f}")` and so on.
    let mut h = sha1_smol::Sha1::new();
    let mut digits = [0u8; 20];
    let list = |h: &mut sha1_smol::Sha1, items: &[String]| {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                h.update(&[0x1f]);
            }
            h.update(item.as_bytes());
        }
    };
    // Separator after each part, so ("ab","c") and ("a","bc") differ.
    let end = |h: &mut sha1_smol::Sha1| h.update(&[0x1e]);
    for part in [d.id.as_str(), &d.description, &d.agent] {
        h.update(part.as_bytes());
        end(&mut h);
    }
    list(&mut h, &d.tags);
    end(&mut h);
    h.update(d.parent.as_bytes());
    end(&mut h);
    list(&mut h, &d.depends_on);
    end(&mut h);
    h.update(decimal(u64::from(d.priority), &mut digits));
    end(&mut h);
    h.update(decimal(d.order, &mut digits));
    end(&mut h);
    for part in [
        &d.file_status,
        &d.retries,
        &d.timeout_ms,
        &d.on_child_failure,
    ] {
        h.update(part.as_bytes());
        end(&mut h);
    }
    // Only when set: the fingerprints of tasks without a budget stay what
    // they were before tasks could have one.
    if !d.budget.is_empty() {
        h.update(d.budget.as_bytes());
        end(&mut h);
    }
    let bytes = h.digest().bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(first)
}

/// `n` in decimal digits, written into the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// A fingerprint as Redis stores it: 16 lowercase hex digits.
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// The plan fingerprint: a hash of every task's fingerprint (as stored, in
/// hex) in file order. Computed from the numbers so the incremental reload
/// can recompute it from its cached fingerprints without any definitions.
pub fn plan_fingerprint_of(fps: &[u64]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut h = sha1_smol::Sha1::new();
    let mut buf = [0u8; 16];
    for fp in fps {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = HEX[((fp >> (60 - 4 * i)) & 0xf) as usize];
        }
        h.update(&buf);
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
    if stored.is_empty() {
        d.added = defs.len() as u64;
        d.upserts = defs;
        return d;
    }
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
    Ok(push_full(store, plan, adopt, Claim::Keep).await?.counts)
}

/// Whether a push may replace a town whose plan came from another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Refuse ([`StoreError::ForeignTown`]).
    Keep,
    /// Replace it, and record this file as the town's plan from now on
    /// (`tt sync push --take-over`).
    TakeOver,
}

/// Where a plan comes from, as a town records it: the host and the
/// canonical path of its file. Two projects that would share a town by
/// name (`p1/app`, `p2/app`) differ here; the same file pushed again, from
/// any command on this machine, does not.
pub fn origin_of(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("{}:{}", crate::os::hostname(), path.display())
}

/// What a full push did, and what it left in Redis: every task's
/// fingerprint in file order and the plan fingerprint, which the runner's
/// incremental reload ([`crate::reload`]) starts from.
#[derive(Debug)]
pub struct Pushed {
    pub counts: SyncCounts,
    /// Ids written (added, changed, removed, restored).
    pub touched: Vec<String>,
    /// Fingerprint of each task, in file order.
    pub fingerprints: Vec<u64>,
    pub plan_fp: String,
    /// Old events could not be moved into the archive first (the push was
    /// made anyway): for a warning.
    pub archive_error: Option<StoreError>,
}

/// Pushes the whole plan: diffed against the stored fingerprints, only the
/// difference written. A task record that is gone from Redis is written
/// again even when the fingerprints say nothing changed: the no-op check
/// counts the plan's records in the same round trip as it reads `plan_fp`.
///
/// A town that holds none of the plan's records and no fingerprint is
/// synced cold: the script reads nothing per task, and refuses if the town
/// has any task by the time it runs (a sync from elsewhere in between), in
/// which case the push starts again and reads them.
pub async fn push_full(
    store: &Store,
    plan: &Plan,
    adopt: Adopt,
    claim: Claim,
) -> Result<Pushed, StoreError> {
    let mut may_be_cold = true;
    loop {
        if let Some(pushed) = push_once(store, plan, adopt, claim, may_be_cold).await? {
            return Ok(pushed);
        }
        may_be_cold = false;
    }
}

/// One try of [`push_full`]; `None` when a cold sync was refused (only
/// when `may_be_cold`).
async fn push_once(
    store: &Store,
    plan: &Plan,
    adopt: Adopt,
    claim: Claim,
    may_be_cold: bool,
) -> Result<Option<Pushed>, StoreError> {
    let phase = crate::profile::phase("definitions, fingerprints");
    let groups = group_ids(plan);
    let default_agent = plan.meta.default_agent.as_deref();
    let mut fingerprints = Vec::with_capacity(plan.tasks.len());
    let defs: Vec<TaskDef> = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(order, t)| {
            let def = definition(t, order, groups.contains(t.id.as_str()), default_agent);
            // Its hex form, read back: cheaper than hashing again.
            fingerprints.push(
                u64::from_str_radix(&def.fingerprint, 16).unwrap_or_else(|_| fingerprint(&def)),
            );
            def
        })
        .collect();
    drop(groups);
    let plan_fp = plan_fingerprint_of(&fingerprints);
    let total = defs.len() as u64;
    let origin = origin_of(&plan.path);
    let ids: Vec<&str> = defs.iter().map(|d| d.id.as_str()).collect();
    drop(phase);
    let phase = crate::profile::phase("read the town's state");
    let state = store.sync_state(&ids).await?;
    drop(phase);
    if let Some(held) = &state.origin
        && *held != origin
        && claim == Claim::Keep
    {
        return Err(foreign(store, held, &origin));
    }
    if state.plan_fp.as_deref() == Some(plan_fp.as_str())
        && state.present == total
        && state.origin.as_deref() == Some(origin.as_str())
    {
        let counts = SyncCounts {
            unchanged: total,
            ..SyncCounts::default()
        };
        return Ok(Some(Pushed {
            counts,
            touched: Vec::new(),
            fingerprints,
            plan_fp,
            archive_error: None,
        }));
    }
    let phase = crate::profile::phase("read fingerprints");
    let mut stored = store.task_fingerprints().await?;
    // Records that are gone although their fingerprint matches: only these
    // are asked about one by one, and only when some record is missing.
    let mut missing = Vec::new();
    if state.present < total {
        let unchanged: Vec<&str> = defs
            .iter()
            .filter(|d| stored.get(&d.id) == Some(&d.fingerprint))
            .map(|d| d.id.as_str())
            .collect();
        missing = store.missing_records(&unchanged).await?;
        for id in &missing {
            stored.remove(id);
        }
    }
    drop(ids);
    let cold = may_be_cold && state.present == 0 && stored.is_empty();
    let diff = diff(defs, &stored);
    drop(stored);
    drop(phase);
    let phase = crate::profile::phase("archive events");
    // The sync adds one event per task it changes or removes, and one for
    // the whole sync: archive first what the stream's cap would otherwise
    // trim for them.
    let mut archive_error = None;
    if let Some(dir) = std::path::absolute(&plan.path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        let writes = diff.changed + diff.removed.len() as u64 + 2;
        match store
            .archive_events(&Archive::of(&dir, store.town()), room_for(writes))
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_connection_error() => return Err(e),
            // The push matters more than the archive: it goes on, and the
            // caller warns (what the cap then trims is counted as lost).
            Err(e) => archive_error = Some(e),
        }
    }
    drop(phase);
    let guard = SyncGuard {
        origin: &origin,
        take_over: claim == Claim::TakeOver,
        expected: None,
        cold,
    };
    let applied = match store
        .apply_sync(
            &diff.upserts,
            &diff.removed,
            &plan_fp,
            adopt == Adopt::Yes,
            &guard,
        )
        .await?
    {
        Ok(applied) => applied,
        Err(SyncRefused::Foreign(held)) => return Err(foreign(store, &held, &origin)),
        // Tasks came since the town was read.
        Err(SyncRefused::Stale) if cold => return Ok(None),
        // Without an expected fingerprint a warm sync is never stale.
        Err(SyncRefused::Stale) => SyncCounts::default(),
    };
    let restored = missing.len() as u64;
    let counts = SyncCounts {
        // The script counts a task as added when no record existed; one
        // restored from history (removed earlier) counts as changed there,
        // but the user added it back to the file, so report the file's view.
        added: diff.added - restored,
        changed: diff.changed,
        removed: applied.removed,
        unchanged: diff.unchanged,
        restored,
        skipped: applied.skipped,
    };
    let touched = diff
        .upserts
        .into_iter()
        .map(|d| d.id)
        .chain(diff.removed)
        .collect();
    Ok(Some(Pushed {
        counts,
        touched,
        fingerprints,
        plan_fp,
        archive_error,
    }))
}

fn foreign(store: &Store, held: &str, ours: &str) -> StoreError {
    StoreError::ForeignTown {
        town: store.town().to_string(),
        held: held.to_string(),
        ours: ours.to_string(),
    }
}

impl std::fmt::Display for SyncCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "+{} added ~{} changed -{} removed ={} unchanged",
            self.added, self.changed, self.removed, self.unchanged
        )?;
        if self.restored > 0 {
            write!(f, " ({} restored: missing from Redis)", self.restored)?;
        }
        if self.skipped > 0 {
            write!(
                f,
                " ({} skipped: their key in Redis is not a hash; `tt status` names it)",
                self.skipped
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The plan fingerprint as it was first defined: a hash of the stored
    /// hex fingerprints in file order.
    fn plan_fingerprint_from_hex(defs: &[TaskDef]) -> String {
        let mut h = sha1_smol::Sha1::new();
        for d in defs {
            h.update(d.fingerprint.as_bytes());
        }
        h.digest().to_string()[..16].to_string()
    }

    #[test]
    fn plan_fingerprint_from_numbers_equals_the_hex_one() {
        let defs = definitions(&plan(BASE));
        let fps: Vec<u64> = defs.iter().map(fingerprint).collect();
        assert_eq!(plan_fingerprint_of(&fps), plan_fingerprint_from_hex(&defs));
        for (d, fp) in defs.iter().zip(&fps) {
            assert_eq!(d.fingerprint, fingerprint_hex(*fp));
            assert_eq!(d.fingerprint.len(), 16);
        }
    }

    /// The fingerprint as first defined, from joined strings: stored
    /// fingerprints must not change.
    fn fingerprint_from_strings(d: &TaskDef) -> u64 {
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
            h.update(&[0x1e]);
        }
        if !d.budget.is_empty() {
            h.update(d.budget.as_bytes());
            h.update(&[0x1e]);
        }
        u64::from_be_bytes(h.digest().bytes()[..8].try_into().unwrap())
    }

    #[test]
    fn fingerprint_is_the_one_of_the_joined_fields() {
        let mut defs = definitions(&plan(BASE));
        let mut d = defs[1].clone();
        d.tags = vec!["a".into(), "bc".into(), String::new()];
        d.depends_on = vec!["x".into(), "y".into()];
        d.priority = 4;
        d.order = 1_234_567_890;
        d.budget = "{\"max_turns\":3}".into();
        defs.push(d);
        for d in &defs {
            assert_eq!(fingerprint(d), fingerprint_from_strings(d), "{d:?}");
        }
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
