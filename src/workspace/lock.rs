//! Turns: landings of a town take one at a time (`.tt/land.lock`), and so
//! do changes to the repository's list of worktrees (`.tt/worktree.lock`):
//! `git worktree prune` of one worker must not remove what `git worktree
//! add` of another is halfway through writing. An advisory `flock`, freed
//! by the kernel when its holder dies, so a killed worker never leaves a
//! lock behind.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Holds a lock until dropped.
pub struct Turn(#[allow(dead_code)] File);

/// Waits for and takes the lock `.tt/<name>.lock` of the project.
pub fn take(project_dir: &Path, name: &str) -> Result<Turn, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let state = crate::state_dir::path(project_dir);
    crate::state_dir::create_dir(&state)
        .map_err(|e| format!("cannot create `{}`: {e}", state.display()))?;
    let path = state.join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open the lock `{}`: {e}", path.display()))?;
    loop {
        // SAFETY: flock on a descriptor this function owns; it blocks
        // until the lock is ours and touches no memory.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Turn(file));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("cannot take the lock `{}`: {e}", path.display()));
        }
    }
}
