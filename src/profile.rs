//! `TT_PROFILE=1`: where a command's time goes, phase by phase. Code marks
//! a phase with [`phase`]; the command prints what was recorded
//! ([`take`]) on stderr when it ends. Unset, a mark costs one load of a
//! flag and records nothing, so phases can stay in hot paths.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

static ENABLED: LazyLock<AtomicBool> =
    LazyLock::new(|| AtomicBool::new(std::env::var_os("TT_PROFILE").is_some_and(|v| v != "0")));

static PHASES: Mutex<Vec<(&'static str, Duration)>> = Mutex::new(Vec::new());

/// Whether phases are recorded (`TT_PROFILE` set, and not `0`).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A phase that is recorded, with the time it took, when dropped.
#[must_use = "the phase ends when this is dropped"]
pub struct Phase {
    name: &'static str,
    started: Option<Instant>,
}

/// Starts timing the phase `name` (when profiling is on).
pub fn phase(name: &'static str) -> Phase {
    Phase {
        name,
        started: enabled().then(Instant::now),
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some(started) = self.started {
            let took = started.elapsed();
            if let Ok(mut phases) = PHASES.lock() {
                phases.push((self.name, took));
            }
        }
    }
}

/// The phases recorded so far, in the order they ended; cleared.
pub fn take() -> Vec<(&'static str, Duration)> {
    PHASES
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_is_recorded_only_when_enabled() {
        ENABLED.store(false, Ordering::Relaxed);
        drop(phase("off"));
        ENABLED.store(true, Ordering::Relaxed);
        drop(phase("on"));
        ENABLED.store(false, Ordering::Relaxed);
        let names: Vec<_> = take().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"on"), "{names:?}");
        assert!(!names.contains(&"off"), "{names:?}");
    }
}
