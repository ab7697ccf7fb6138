//! Facts about this machine and its processes, in one place: whether a pid
//! is alive, when a process started, signalling a process or a process
//! group, listening for signals, the host name, the wall clock, a clock
//! that counts time while the process is frozen, and handing freed memory
//! back to the kernel.
//!
//! Every part of tinytown that asks the OS such a question asks it here, so
//! they cannot disagree (a zombie is dead everywhere, a pid we may not
//! signal is alive everywhere).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::watch;

/// Whether `pid` is a running process. A zombie counts as dead (it has
/// exited; only its parent has not reaped it yet), and a process we may not
/// signal (EPERM) as alive.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat).is_none_or(|f| f.first() != Some(&"Z")),
        // No /proc (not Linux) or it exited meanwhile: kill(2) said it exists.
        Err(_) => true,
    }
}

/// When process `pid` started, in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`); `None` when it does not exist or there is no
/// `/proc`. With the pid, it names one process: a reused pid has another
/// start time.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name start at field 3 (the state), so field
    // 22 is at index 19.
    stat_fields(&stat)?.get(19)?.parse().ok()
}

/// The fields of a `/proc/<pid>/stat` line after the parenthesized command
/// name (which may itself contain spaces and parentheses).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// Sends `sig` to the process group `pgid`. Group ids 0 and 1 (our own
/// group, init) are never signalled.
pub fn signal_group(pgid: u32, sig: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg only sends a signal; it has no memory preconditions.
    unsafe {
        libc::killpg(pgid, sig);
    }
}

/// Sends `sig` to the process `pid` alone. Pids 0 and below (a group, every
/// process) and 1 (init) are never signalled.
pub fn signal_process(pid: i32, sig: libc::c_int) {
    if pid <= 1 {
        return;
    }
    // SAFETY: kill only sends a signal; it has no memory preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether any process is still in group `pgid` (one we may signal). Group
/// ids 0 and 1 are never ours to ask about.
pub fn group_exists(pgid: u32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    // SAFETY: signal 0 checks for existence and sends nothing.
    pgid > 1 && unsafe { libc::killpg(pgid, 0) } == 0
}

/// Sends `sig` to the process group `pgid` only if its leader is still the
/// process that started at `start` ([`process_start`]): a recorded group id
/// whose process exited may since have been reused by an unrelated one.
/// Returns whether it signalled.
pub fn signal_group_if_same(pgid: u32, start: u64, sig: libc::c_int) -> bool {
    if process_start(pgid) != Some(start) || !pid_alive(pgid as i32) {
        return false;
    }
    signal_group(pgid, sig);
    true
}

/// This machine's name, as workers record it and runners compare it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes
    // at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Milliseconds since the epoch by this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One Unix signal as a stream; one that never fires when the platform
/// refuses to deliver it, so a loop may always wait on it.
pub struct SignalStream(Option<Signal>);

impl SignalStream {
    /// Listens for `kind` from now on.
    pub fn new(kind: SignalKind) -> Self {
        Self(tokio::signal::unix::signal(kind).ok())
    }

    /// Waits for the next delivery.
    pub async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// A shutdown flag that turns true on the first SIGINT, SIGTERM or SIGHUP.
/// Fails when the signals cannot be listened for.
pub fn shutdown_on_signals() -> std::io::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::signal;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(true);
        // Keep the sender: a dropped one reads as "shut down" too, but
        // only this one means it.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

/// Hands memory freed after a burst back to the kernel. glibc keeps the
/// pages of freed allocations in the heap; a runner that just dropped the
/// parse trees of a large plan (~350 MiB for 100k tasks) would otherwise
/// stay at that peak while idle (docs/PERFORMANCE.md). Elsewhere a no-op.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A clock that never goes back and, unlike tokio's (`CLOCK_MONOTONIC`),
/// keeps counting while the machine is suspended (`CLOCK_BOOTTIME` on
/// Linux): what measures how long a worker went without a heartbeat, frozen
/// or not.
pub fn awake_clock() -> Duration {
    #[cfg(target_os = "linux")]
    const CLOCK: libc::clockid_t = libc::CLOCK_BOOTTIME;
    #[cfg(not(target_os = "linux"))]
    const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    if unsafe { libc::clock_gettime(CLOCK, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_has_a_start_time() {
        let me = std::process::id();
        assert!(pid_alive(me as i32));
        assert!(process_start(me).is_some());
        assert!(!pid_alive(0));
        assert!(!pid_alive(-5));
    }

    #[test]
    fn a_zombie_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Not reaped yet: a zombie once it exited.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while pid_alive(pid) {
            assert!(std::time::Instant::now() < deadline, "still alive");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        child.wait().unwrap();
    }

    #[test]
    fn a_process_is_signalled_alone_and_init_never() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        signal_process(child.id() as i32, libc::SIGKILL);
        assert!(!child.wait().unwrap().success());
        signal_process(1, libc::SIGKILL);
        signal_process(0, libc::SIGKILL);
        assert!(pid_alive(std::process::id() as i32));
    }

    #[test]
    fn init_is_alive_though_we_may_not_signal_it() {
        assert!(pid_alive(1));
    }

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 0";
        let f = stat_fields(stat).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[19], "777");
    }

    #[test]
    fn the_awake_clock_moves_forward() {
        let a = awake_clock();
        std::thread::sleep(Duration::from_millis(5));
        assert!(awake_clock() > a);
    }
}
