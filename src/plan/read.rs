//! Reading a plan file from disk: only a regular file (a symlink to one is
//! fine), and at most [`MAX_PLAN_BYTES`] of it. A device such as
//! `/dev/zero` would be read forever and a FIFO would block every command,
//! read-only ones included, so both are refused before anything is read.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::LoadError;

/// The largest plan read: far above a 100k-task file (11 MB), far below
/// what would strain memory.
pub const MAX_PLAN_BYTES: u64 = 64 * 1024 * 1024;

/// The text of the plan file at `path`.
pub fn read_plan(path: &Path) -> Result<String, LoadError> {
    let shown = || path.display().to_string();
    let read_err = |source| LoadError::Read {
        path: shown(),
        source,
    };
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer. It changes nothing for a regular file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    // The opened file is what is judged, so a swap after a check cannot
    // slip a device in.
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(LoadError::NotAFile {
            path: shown(),
            kind: kind_of(&meta.file_type()),
        });
    }
    if meta.len() > MAX_PLAN_BYTES {
        return Err(LoadError::TooLarge {
            path: shown(),
            size: meta.len(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read is still cut at the cap.
    file.take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        return Err(LoadError::TooLarge {
            path: shown(),
            size: bytes.len() as u64,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()),
        ))
    })
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}
