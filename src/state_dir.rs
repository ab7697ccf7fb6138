//! `.tt/`, the project's private state directory, and the files tt writes
//! in it.
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
}
