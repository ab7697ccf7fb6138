//! Watching tasks.toml for saves.
//!
//! Editors save in different ways — write in place, write a temp file and
//! rename it over (vim, VS Code, `sed -i`), delete and recreate, `git
//! checkout` — and a watch on the file itself goes silent after the first
//! rename. So the *directory* is watched and events are filtered on the file
//! name.
//!
//! Two kinds of event end a save: the file renamed into place
//! (`IN_MOVED_TO`: its whole new text is there in one step) and the file
//! closed after writing (`IN_CLOSE_WRITE`: the writer is done). After one,
//! the reload waits only [`SETTLE`] of quiet — long enough to see a writer
//! that goes on at once (a second write in place would otherwise be read
//! truncated), far shorter than a debounce. Every other change (a write
//! still in progress, a create, a remove) is debounced on the trailing edge
//! ([`DEBOUNCE`]), so a save that touches the file several times is one
//! reload, and a writer that never closes is still seen. The runner then
//! compares contents, so a save that changed nothing writes nothing.
//! The save → Redis latency budget is 100 ms (README "Performance") and a
//! debounce period after every save would spend most of it; therefore a
//! save that ends cleanly waits only [`SETTLE`].
//!
//! A tasks.toml that is a symlink is watched at both ends: the link's
//! directory (the link replaced or re-pointed) and the directory of the file
//! it resolves to when the watch starts (saves to the real file, which may
//! live elsewhere). The link is resolved once: a town's plan is one file
//! (its origin is the canonical path, see `sync::origin_of`), so a link
//! re-pointed at another file is not followed to its new directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// Quiet time after the last event that does not end a save (see the
/// module docs) before a reload: long enough to fold a burst of writes, a
/// delete and its re-create into one, short enough to feel live. Saves by
/// rename or by write-and-close do not wait for it.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Quiet time after an event that ends a save before the reload.
pub const SETTLE: Duration = Duration::from_millis(10);

/// What an event of the file asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// A save just completed: reload after [`SETTLE`].
    Now,
    /// The file is changing: reload once it has been quiet for [`DEBOUNCE`].
    Later,
}

/// Keeps the watch alive; dropping it stops watching (and ends the
/// debouncing task, whose channel closes).
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot watch `{dir}` for changes to `{file}`: {source}")]
#[diagnostic(
    code(tt::watch),
    help(
        "check that the directory exists and is readable; on Linux, raise fs.inotify.max_user_watches if it is exhausted"
    )
)]
pub struct WatchError {
    dir: PathBuf,
    file: String,
    #[source]
    source: notify::Error,
}

/// Watches `file`; each debounced change sends `()` on the returned channel.
pub fn watch(file: &Path) -> Result<(Watcher, mpsc::UnboundedReceiver<()>), WatchError> {
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(file)
    };
    let mut places = vec![place(&abs)];
    let is_link = std::fs::symlink_metadata(&abs).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && let Ok(target) = std::fs::canonicalize(&abs) {
        places.push(place(&target));
    }
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<Wake>();
    let wanted: Vec<std::ffi::OsString> = places.iter().map(|(_, name)| name.clone()).collect();
    // notify calls this on its own thread; an unbounded send never blocks it.
    let handler = move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else {
            // A watcher error (e.g. queue overflow) may have hidden a save:
            // reload to be safe.
            let _ = raw_tx.send(Wake::Later);
            return;
        };
        let ours = |p: &PathBuf| p.file_name().is_some_and(|n| wanted.iter().any(|w| w == n));
        if let Some(wake) = wake_for(&event.kind, &event.paths, ours) {
            let _ = raw_tx.send(wake);
        }
    };
    let err = |(dir, name): &(PathBuf, std::ffi::OsString), source| WatchError {
        dir: dir.clone(),
        file: name.to_string_lossy().into_owned(),
        source,
    };
    let mut watcher = notify::recommended_watcher(handler).map_err(|e| err(&places[0], e))?;
    for (i, p) in places.iter().enumerate() {
        // A link to a file beside it: one watch covers both names.
        if places[..i].iter().any(|(dir, _)| *dir == p.0) {
            continue;
        }
        watcher
            .watch(&p.0, RecursiveMode::NonRecursive)
            .map_err(|e| err(p, e))?;
    }
    // Trailing-edge debounce on a timer that exists only while events come
    // in. A debouncer that polls wakes many times a second, and those
    // wake-ups would be most of an idle runner's CPU; therefore an idle
    // runner has no wake-ups at all (docs/PERFORMANCE.md).
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(mut last) = raw_rx.recv().await {
            // The last event decides how long the file must stay quiet.
            loop {
                let quiet = match last {
                    Wake::Now => SETTLE,
                    Wake::Later => DEBOUNCE,
                };
                tokio::select! {
                    more = raw_rx.recv() => match more {
                        Some(w) => last = w,
                        None => return,
                    },
                    () = tokio::time::sleep(quiet) => break,
                }
            }
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok((Watcher { _watcher: watcher }, rx))
}

/// The directory to watch for `path`, and the file name to look for there.
fn place(path: &Path) -> (PathBuf, std::ffi::OsString) {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    (dir, name)
}

/// What an event asks for, if it concerns the file (`ours`) at all.
///
/// Opening and reading the file is nothing: the runner reads it on every
/// reload, so a read counted as a save would make an idle `tt run` reload
/// forever, once per debounce period; therefore access events are ignored.
/// Closing the file after writing it, or renaming something onto it, ends a
/// save.
fn wake_for(
    kind: &notify::EventKind,
    paths: &[PathBuf],
    ours: impl Fn(&PathBuf) -> bool,
) -> Option<Wake> {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            paths.iter().any(&ours).then_some(Wake::Now)
        }
        EventKind::Access(_) => None,
        // `paths` is [from, to]: renamed onto ours, or ours moved away.
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
            if paths.last().is_some_and(&ours) =>
        {
            Some(Wake::Now)
        }
        _ => paths.iter().any(ours).then_some(Wake::Later),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode,
    };

    fn wake(kind: EventKind, paths: &[&str]) -> Option<Wake> {
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        wake_for(&kind, &paths, |p| {
            p.file_name() == Some("tasks.toml".as_ref())
        })
    }

    #[test]
    fn a_completed_save_reloads_now() {
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(wake(closed, &["/p/tasks.toml"]), Some(Wake::Now));
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(wake(to, &["/p/tasks.toml"]), Some(Wake::Now));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            wake(both, &["/p/.tasks.toml.swp", "/p/tasks.toml"]),
            Some(Wake::Now)
        );
    }

    #[test]
    fn a_change_in_progress_waits_for_quiet() {
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert_eq!(wake(write, &["/p/tasks.toml"]), Some(Wake::Later));
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(wake(create, &["/p/tasks.toml"]), Some(Wake::Later));
        let remove = EventKind::Remove(RemoveKind::File);
        assert_eq!(wake(remove, &["/p/tasks.toml"]), Some(Wake::Later));
        // Moved away: gone, or about to be replaced.
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            wake(both, &["/p/tasks.toml", "/p/tasks.toml.bak"]),
            Some(Wake::Later)
        );
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(wake(from, &["/p/tasks.toml"]), Some(Wake::Later));
    }

    #[test]
    fn reads_and_other_files_are_nothing() {
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert_eq!(wake(read, &["/p/tasks.toml"]), None);
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert_eq!(wake(open, &["/p/tasks.toml"]), None);
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(wake(closed, &["/p/other.toml"]), None);
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(wake(to, &["/p/tasks.toml.tmp"]), None);
    }
}
