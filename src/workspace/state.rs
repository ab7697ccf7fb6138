//! What a worktree last did, kept beside it in `.tt/worktrees/<worker>.json`:
//! git alone cannot say which task and attempt a worktree worked on once
//! its branch is no longer checked out, and `tt workspaces` and salvage
//! need to know.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The last attempt a worktree ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptState {
    pub task: String,
    pub attempt: u32,
    pub worker: String,
    pub branch: String,
    /// The tip of `into` the attempt started from.
    pub base: String,
    pub into: String,
    /// `None` while it runs (or when it died running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landed: Option<bool>,
    /// The commit it landed on `into`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// `<worktree>.json`.
pub fn path_of(worktree: &Path) -> PathBuf {
    let mut name = worktree.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    worktree.with_file_name(name)
}

/// The state of `worktree`; `None` when there is none or it is unreadable.
pub fn read(worktree: &Path) -> Option<AttemptState> {
    let text = std::fs::read_to_string(path_of(worktree)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the state of `worktree` (mode 0600, replacing it atomically).
pub fn write(worktree: &Path, state: &AttemptState) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = path_of(worktree);
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    let written = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    written.map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// Removes the state of `worktree`, if any.
pub fn remove(worktree: &Path) {
    let _ = std::fs::remove_file(path_of(worktree));
}
