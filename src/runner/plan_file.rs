//! The runner and tasks.toml: after a save, the file is read and either
//! one edited task is applied on its own ([`crate::reload`]) or the plan
//! is loaded and pushed in full ([`crate::sync::push_full`]); a resync
//! pushes it in full whatever changed, restoring records Redis lost.

use std::path::PathBuf;

use super::{RunError, Runner, RunnerNote};
use crate::os::release_free_memory;
use crate::plan::{self, LoadError, Plan};
use crate::reload::{self, Edit};
use crate::sync::{self, Adopt, Claim};

/// Tasks touched by one reload above which the runner re-reads the town
/// instead of following events: well under the events stream's cap
/// (`MAXLEN ~ 100000`), so no event of a smaller reload is trimmed unread.
const RELOAD_REREAD: u64 = 20_000;

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reloaded {
    /// Redis was written.
    Wrote,
    /// The file loaded and Redis already held it.
    Nothing,
    /// The file could not be loaded (gone, mid-save, invalid): the last
    /// good plan stays.
    NotLoaded,
}

impl<F: FnMut(RunnerNote)> Runner<F> {
    /// Pushes the file in full, whatever the reload state says: restores
    /// records Redis lost (`sync::push_full` counts them).
    pub(super) async fn resync(&mut self) -> Result<Reloaded, RunError> {
        self.resync = true;
        self.last_load = reload::LastLoad::default();
        let wrote = self.reload().await?;
        self.resync = false;
        Ok(wrote)
    }

    /// Reloads the file after a save.
    pub(super) async fn reload(&mut self) -> Result<Reloaded, RunError> {
        let text = match plan::read_plan(&self.opts.file) {
            Ok(t) => t,
            Err(LoadError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                // Mid-save (delete and recreate) or really gone: keep the
                // last plan; the next save reloads.
                (self.report)(RunnerNote::FileGone);
                return Ok(Reloaded::NotLoaded);
            }
            Err(e) => {
                (self.report)(RunnerNote::Invalid(e));
                return Ok(Reloaded::NotLoaded);
            }
        };
        // An empty file is a write in place caught between its truncation
        // and its data (saves reload without a debounce now): as a plan it
        // would cancel every task. The writer's close reloads again.
        if text.is_empty() {
            return Ok(Reloaded::NotLoaded);
        }
        // One edited task is applied on its own (`reload`); the rest is
        // loaded and pushed in full.
        let (text, fp) = match self
            .last_load
            .apply_edit(&self.store, &self.opts.file, text)
            .await?
        {
            Edit::Unchanged => return Ok(Reloaded::Nothing),
            Edit::Applied { counts, touched } => {
                self.dirty.extend(touched);
                (self.report)(RunnerNote::Reloaded(counts));
                return Ok(Reloaded::Nothing);
            }
            Edit::Full { text, digest } => (text, digest),
        };
        let plan = match plan::load(&self.opts.file, text) {
            Ok(p) => p,
            Err(e) => {
                (self.report)(RunnerNote::Invalid(e));
                // Remember it so the same broken text is not reported twice.
                self.last_load.failed(fp);
                return Ok(Reloaded::NotLoaded);
            }
        };
        let sync::Pushed {
            counts,
            touched,
            fingerprints,
            plan_fp,
            archive_error,
        } = sync::push_full(&self.store, &plan, Adopt::No, Claim::Keep).await?;
        if let Some(e) = archive_error {
            (self.report)(RunnerNote::ArchiveFailed(e.to_string()));
        }
        let wrote = !touched.is_empty();
        // The next pass must judge touched tasks by their new definition,
        // not wait for their events; a reload so large is read in full.
        if counts.added + counts.changed + counts.removed > RELOAD_REREAD {
            self.snapshot = None;
        } else {
            self.dirty.extend(touched);
        }
        self.own_plan_fp.clone_from(&plan_fp);
        self.last_load.loaded(&plan, fingerprints, plan_fp);
        self.plan_ids = plan.tasks.iter().map(|t| t.id.clone()).collect();
        self.plan = only_agents(plan);
        // A replica that cannot start failed to load this same file: one
        // that loads now may have been fixed (a `workdir` created), so its
        // agent counts as runnable again, and says so again if still broken.
        self.cannot_start.clear();
        if !self.opts.no_agents {
            self.agents.apply(&self.plan.agents).await;
        }
        release_free_memory();
        // A resync that found everything in place is no news.
        if wrote || !self.resync {
            (self.report)(RunnerNote::Reloaded(counts));
        }
        Ok(if wrote {
            Reloaded::Wrote
        } else {
            Reloaded::Nothing
        })
    }
}

/// What the runner keeps of a plan once it is in Redis: `[agents]` (and
/// the rest of the small tables). The tasks live in Redis and the snapshot;
/// their specs with spans, and the source (what reload needs of it is in `Runner::last_load`),
/// were most of a 100k-task runner's memory (README "Performance").
pub(super) fn only_agents(mut plan: Plan) -> Plan {
    plan.tasks = Vec::new();
    plan.warnings = Vec::new();
    plan.source = std::sync::Arc::new(String::new());
    plan
}

pub(super) fn empty_plan() -> Plan {
    Plan {
        path: PathBuf::new(),
        source: std::sync::Arc::new(String::new()),
        town: Default::default(),
        meta: Default::default(),
        agents: Vec::new(),
        tasks: Vec::new(),
        warnings: Vec::new(),
    }
}
