//! `.tt/`, the project's private state directory, and the files tt writes
//! in it: where an attempt's output ([`task_log`]) and a worker's journal
//! ([`journal_path`]) go.
//!
//! Task output, worker journals and the embedded server's data are private
//! to the user who runs tt, whichever Redis is used: every directory tt
//! creates under `.tt/` is mode 0700 and every file 0600, whatever the
//! umask, and [`secure`] tightens a `.tt/` made by anything else (an older
//! tt, `mkdir`) before a worker writes into it. Modes are set at creation
//! and never widened; files someone made readable by hand are left alone.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The name of the state directory inside the project directory.
const NAME: &str = ".tt";

/// Mode of every directory tt creates in the state directory.
const DIR_MODE: u32 = 0o700;
/// Mode of every file tt creates in the state directory.
const FILE_MODE: u32 = 0o600;

/// `<project_dir>/.tt`.
pub fn path(project_dir: &Path) -> PathBuf {
    project_dir.join(NAME)
}

/// Creates `dir` (and missing parents) with mode 0700, and makes `dir`
/// itself 0700 if it exists with another mode.
pub fn secure(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o777 != DIR_MODE {
        std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Creates `dir` and missing parents with mode 0700, leaving existing ones
/// as they are. The common cases come first: a task's log directory is new
/// (first attempt) or exists (a retry); its parents nearly always exist.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) => DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir),
    }
}

/// Opens a log for appending (and reading), creating it with mode 0600 and
/// its directory with [`create_dir`].
pub fn open_log(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Where one attempt's output goes: `<project>/.tt/logs/<task>/<attempt>.log`.
/// The ids `.` and `..` (valid, but path components) are spelled `%2E`,
/// and a character no valid id has (a hand-made Redis key) becomes `_`, so
/// the path never leaves `.tt/logs`.
pub fn task_log(project_dir: &Path, task: &str, attempt: u32) -> PathBuf {
    let dir = if task.is_empty() {
        "_".to_string()
    } else if task.bytes().all(|b| b == b'.') {
        task.replace('.', "%2E")
    } else {
        task.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    logs_dir(project_dir)
        .join(dir)
        .join(format!("{attempt}.log"))
}

/// A worker's own log (its journal): `<project>/.tt/logs/agents/<id>.log`.
pub fn journal_path(project_dir: &Path, worker: &str) -> PathBuf {
    logs_dir(project_dir)
        .join("agents")
        .join(format!("{worker}.log"))
}

/// Where the workers' git worktrees are: `<project>/.tt/worktrees`.
pub fn worktrees_dir(project_dir: &Path) -> PathBuf {
    path(project_dir).join("worktrees")
}

/// `<project>/.tt/logs`.
pub fn logs_dir(project_dir: &Path) -> PathBuf {
    path(project_dir).join("logs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn logs_and_their_directories_are_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let state = path(tmp.path());
        let log = state.join("logs").join("t").join("1.log");
        open_log(&log).unwrap();
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("logs")), 0o700);
        assert_eq!(mode(log.parent().unwrap()), 0o700);
        assert_eq!(mode(&log), 0o600);
    }

    #[test]
    fn secure_tightens_an_existing_state_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let state = path(tmp.path());
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, Permissions::from_mode(0o755)).unwrap();
        secure(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
    }

    #[test]
    fn log_paths() {
        let p = Path::new("/p");
        assert_eq!(
            task_log(p, "login", 2),
            Path::new("/p/.tt/logs/login/2.log")
        );
        assert_eq!(task_log(p, "..", 1), Path::new("/p/.tt/logs/%2E%2E/1.log"));
        assert_eq!(task_log(p, "a..b", 1), Path::new("/p/.tt/logs/a..b/1.log"));
        assert_eq!(task_log(p, "../x", 1), Path::new("/p/.tt/logs/.._x/1.log"));
        assert_eq!(task_log(p, "", 1), Path::new("/p/.tt/logs/_/1.log"));
        assert_eq!(
            journal_path(p, "dev-1"),
            Path::new("/p/.tt/logs/agents/dev-1.log")
        );
    }
}
