//! Watching tasks.toml for saves.
//!
//! Editors save in different ways — write in place, write a temp file and
//! rename it over (vim, VS Code, `sed -i`), delete and recreate, `git
//! checkout` — and a watch on the file itself goes silent after the first
//! rename. So the *directory* is watched and events are filtered on the file
//! name. Events are debounced on the trailing edge ([`DEBOUNCE`]) so one save
//! that touches the file several times is one reload; the runner then
//! compares contents, so a save that changed nothing writes nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// Quiet time after the last event before a reload: long enough to fold an
/// editor's burst of writes and renames into one, short enough to feel live.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

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
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = abs
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let err = |source| WatchError {
        dir: dir.clone(),
        file: name.to_string_lossy().into_owned(),
        source,
    };
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let wanted = name.clone();
    // notify calls this on its own thread; an unbounded send never blocks it.
    let handler = move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else {
            // A watcher error (e.g. queue overflow) may have hidden a save:
            // reload to be safe.
            let _ = raw_tx.send(());
            return;
        };
        if changes_content(&event.kind)
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(wanted.as_os_str()))
        {
            let _ = raw_tx.send(());
        }
    };
    let mut watcher = notify::recommended_watcher(handler).map_err(err)?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(err)?;
    // Trailing-edge debounce on a timer that exists only while events come
    // in: an idle runner has no wake-ups at all (a polling debouncer ticked
    // 40 times a second, most of an idle runner's CPU; README
    // "Performance").
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            loop {
                tokio::select! {
                    more = raw_rx.recv() => if more.is_none() { return },
                    () = tokio::time::sleep(DEBOUNCE) => break,
                }
            }
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok((Watcher { _watcher: watcher }, rx))
}

/// Whether an event may mean new contents. Opening and reading the file is
/// not: the runner reads it on every reload, and counting those reads as
/// saves made an idle `tt run` reload forever, once per debounce period
/// (README "Performance"). Closing a file opened for writing is a save.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}
