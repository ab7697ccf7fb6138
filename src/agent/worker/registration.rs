//! Registration: who this worker is ([`WorkerIdentity`]) and taking its id
//! in Redis, waiting out the heartbeat of an earlier process with the same
//! id (a restart right after a crash) and stopping the command that process
//! left running.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use super::notes::{Note, Notes};
use super::{HEARTBEAT_TTL, Worker, pause};
use crate::agent::AgentError;
use crate::store::{Registered, Store, WorkerIdentity};

pub(super) fn identity(worker: &Worker) -> WorkerIdentity {
    let pid = std::process::id();
    let host = crate::os::hostname();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    WorkerIdentity {
        id: worker.id.clone(),
        agent: worker.config.name.clone(),
        pid,
        token: format!("{pid}@{host}/{started}"),
        host,
        backlog: worker.config.backlog,
    }
}

/// Registers, waiting out the heartbeat of an earlier process with the
/// same id (a restart right after a crash) but not a live one. Returns when
/// the registration that set the first heartbeat was sent
/// ([`crate::os::awake_clock`]).
pub(super) async fn register(
    store: &Store,
    identity: &WorkerIdentity,
    notes: &Notes,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Duration, AgentError> {
    let deadline = Instant::now() + HEARTBEAT_TTL + Duration::from_secs(1);
    let mut told = false;
    loop {
        // The last process with this id died mid-task: its command must not
        // run alongside the retry that registering is about to requeue.
        if let Some((pgid, start)) = store.orphaned_command(identity).await? {
            crate::os::signal_group_if_same(pgid, start, libc::SIGKILL);
        }
        let sent = crate::os::awake_clock();
        match store.register_worker(identity, HEARTBEAT_TTL).await? {
            Registered::Ok { returned, requeued } => {
                notes.emit(Note::Registered {
                    worker: identity.id.clone(),
                    agent: identity.agent.clone(),
                    town: store.town().to_string(),
                    pid: identity.pid,
                    returned,
                    requeued,
                });
                return Ok(sent);
            }
            Registered::Busy { holder } => {
                if Instant::now() >= deadline {
                    return Err(AgentError::IdInUse {
                        id: identity.id.clone(),
                        holder,
                    });
                }
                if !told {
                    notes.emit(Note::WaitingForId {
                        worker: identity.id.clone(),
                        holder,
                    });
                    told = true;
                }
                if pause(shutdown, Duration::from_millis(250)).await {
                    return Err(AgentError::IdInUse {
                        id: identity.id.clone(),
                        holder: "gave up waiting at shutdown".into(),
                    });
                }
            }
        }
    }
}
