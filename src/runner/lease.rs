//! The runner's side of the town's lease ([`crate::store`] keeps the
//! value and its scripts): what this runner writes as holder, taking the
//! lease at start (repairing one no runner can renew, taking over from a
//! holder on this host that died, waiting with `--wait`), and renewing it
//! every third of its TTL.

use std::time::Duration;

use super::wake::Signals;
use super::{RunError, Runner, RunnerNote};
use crate::os::{hostname, now_ms};
use crate::store::Store;

/// How long the lease lives without renewal; renewed every third of it.
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// What this runner writes as the lease value.
pub(super) fn holder() -> String {
    let host = hostname();
    serde_json::json!({
        "id": format!("{host}:{}", std::process::id()),
        "host": host,
        "pid": std::process::id(),
        "since": now_ms(),
    })
    .to_string()
}

/// Whether a lease value names a process on this host that no longer runs.
fn holder_is_dead_here(value: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(value) else {
        return false;
    };
    let (Some(host), Some(pid)) = (v["host"].as_str(), v["pid"].as_u64()) else {
        return false;
    };
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if host != hostname() || pid <= 0 || pid == std::process::id() as libc::pid_t {
        return false;
    }
    !crate::os::pid_alive(pid)
}

/// Describes a lease value for messages.
fn describe_holder(value: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(v) => format!(
            "pid {} on {}",
            v["pid"].as_u64().unwrap_or(0),
            v["host"].as_str().unwrap_or("?")
        ),
        Err(_) => value.to_string(),
    }
}

/// Takes the town's lease for `holder`. `Ok(false)`: a signal came while
/// waiting for another runner's lease (`wait`).
pub(super) async fn take(
    store: &Store,
    holder: &str,
    town: &str,
    wait: bool,
    signals: &mut Signals,
    report: &mut impl FnMut(RunnerNote),
) -> Result<bool, RunError> {
    // A lease that no runner could renew or release (garbage, no expiry)
    // would refuse every runner for ever.
    if let Some(note) = store.repair_lease(LEASE_TTL).await? {
        report(RunnerNote::LeaseRepaired(note));
    }
    loop {
        match store.acquire_lease(holder, LEASE_TTL).await? {
            None => return Ok(true),
            // A runner on this machine that died without releasing it
            // (kill -9): no need to wait for the TTL.
            Some(other)
                if holder_is_dead_here(&other)
                    && store.take_over_lease(&other, holder, LEASE_TTL).await? =>
            {
                return Ok(true);
            }
            Some(other) if wait => {
                report(RunnerNote::WaitingForLease(describe_holder(&other)));
                tokio::select! {
                    _ = tokio::time::sleep(LEASE_TTL / 3) => {}
                    _ = signals.recv() => return Ok(false),
                }
            }
            Some(other) => {
                return Err(RunError::LeaseHeld {
                    town: town.to_string(),
                    holder: describe_holder(&other),
                });
            }
        }
    }
}

impl<F: FnMut(RunnerNote)> Runner<F> {
    /// Renews the lease; another runner holding it now ends this one.
    pub(super) async fn renew_lease(&mut self) -> Result<(), RunError> {
        match self.store.acquire_lease(&self.holder, LEASE_TTL).await {
            Ok(None) => Ok(()),
            Ok(Some(other)) => Err(RunError::LeaseLost {
                town: self.opts.town.clone(),
                holder: describe_holder(&other),
            }),
            // Redis away: keep going, the connection manager reconnects.
            Err(e) if e.is_connection_error() => {
                self.contact.lost();
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
