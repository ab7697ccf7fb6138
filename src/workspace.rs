//! Workspaces: with `workspace = "worktree"`, every worker of an agent
//! works in a git worktree of its own (`.tt/worktrees/<worker>`), each
//! attempt on a fresh branch from the tip of the town's branch `into`, and
//! a finished attempt's work lands on `into` by refs only — the user's own
//! checkout is never touched.
//!
//! - [`mode`]: the settings (`workspace`, `land`) as the file names them.
//! - [`git`]: running git as a process, with an identity when none is set.
//! - [`probe`]: what is checked at load (a git repository, a git new
//!   enough for the commands below).
//! - [`names`]: branch names of towns and attempts.
//! - [`worktree`]: a worker's worktree, made ready for one attempt.
//! - [`salvage`]: uncommitted work of a dead attempt, kept in a commit.
//! - [`landing`]: a finished attempt's commits onto `into`, one at a time.
//! - [`listing`]: what `tt workspaces` shows, and `prune`.
//! - `lock`: one landing at a time, one change to the worktree list at a time.
//!
//! This module knows git and the file system, nothing of Redis or the
//! plan's types: the agent layer hands it [`Options`], and the plan's
//! checks ask [`probe`] about the repository.

pub mod git;
pub mod landing;
pub mod listing;
mod lock;
pub mod mode;
pub mod names;
pub mod probe;
pub mod salvage;
mod state;
pub mod worktree;

pub use git::{Git, GitError};
pub use landing::{Landed, LandingError};
pub use listing::{Pruned, WorkspaceInfo, list, prune};
pub use mode::{Land, Mode};
pub use state::AttemptState;
pub use worktree::{Attempt, Options, Workspace};
