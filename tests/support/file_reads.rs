//! Proof that another process read a file: inotify reports every close of a
//! file opened without write access (`IN_CLOSE_NOWRITE`), so a test can
//! wait until `tt run` has read a save before asserting what the save did,
//! instead of sleeping and hoping it has.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Closes of one file after reading, by any process (the test's own reads
/// count too: start watching after them).
pub struct FileReads {
    fd: OwnedFd,
    name: OsString,
}

impl FileReads {
    /// Watches `path`'s directory, so saves that rename a new file over
    /// `path` are still seen.
    pub fn watch(path: &Path) -> Self {
        let dir = path.parent().expect("a file in a directory");
        let name = path.file_name().expect("a file name").to_owned();
        // SAFETY: plain syscalls; the descriptor is owned from here on.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let c_dir = CString::new(dir.as_os_str().as_bytes()).expect("no NUL in the path");
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(fd.as_raw_fd(), c_dir.as_ptr(), libc::IN_CLOSE_NOWRITE)
        };
        assert!(
            wd >= 0,
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        );
        FileReads { fd, name }
    }

    /// How many reads finished since the last call.
    pub fn take(&self) -> usize {
        let mut count = 0;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer of the length given.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return count;
            }
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n as usize {
                // SAFETY: the kernel wrote whole events; read unaligned.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let name = &buf[at + header..at + header + event.len as usize];
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                if event.mask & libc::IN_CLOSE_NOWRITE != 0 && name == self.name.as_bytes() {
                    count += 1;
                }
                at += header + event.len as usize;
            }
        }
    }

    /// Waits until the file was read at least once since the last call.
    pub fn wait(&self, deadline: Duration, what: &str) {
        super::wait_until(deadline, what, || self.take() > 0);
    }
}
