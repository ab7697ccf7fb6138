//! Control messages (`control:<worker>`: `stop`, `shutdown`), read on a
//! dedicated connection of their own and handed to the serve loop and the
//! running attempt in order.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::notes::Notes;
use super::redis_retry::RedisRetry;
use crate::store::{BlockingConn, Control};

/// Longest single wait on the control list.
pub const CONTROL_WAIT: Duration = Duration::from_secs(5);

pub(super) async fn control_loop(
    mut conn: BlockingConn,
    worker: String,
    tx: mpsc::Sender<Control>,
    notes: Arc<Notes>,
) {
    let mut redis = RedisRetry::new(&notes);
    loop {
        match conn.next_control(&worker, CONTROL_WAIT).await {
            Ok(message) => {
                redis.answered("control messages");
                if let Some(message) = message
                    && tx.send(message).await.is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let retry_in = redis.failed("waiting for control messages", &e);
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

/// Control messages, with those looked at early (to decide whether a
/// report may take the next task) kept for their turn, in order.
pub(super) struct Controls {
    rx: mpsc::Receiver<Control>,
    early: std::collections::VecDeque<Control>,
}

impl Controls {
    pub(super) fn new(rx: mpsc::Receiver<Control>) -> Self {
        Controls {
            rx,
            early: std::collections::VecDeque::new(),
        }
    }

    /// The next message. Cancel-safe: one kept early is returned at the
    /// first poll, or not taken at all.
    pub(super) async fn recv(&mut self) -> Option<Control> {
        match self.early.pop_front() {
            Some(c) => Some(c),
            None => self.rx.recv().await,
        }
    }

    /// Whether a `shutdown` has arrived and is not handled yet.
    pub(super) fn shutdown_waiting(&mut self) -> bool {
        while let Ok(c) = self.rx.try_recv() {
            self.early.push_back(c);
        }
        self.early.iter().any(|c| matches!(c, Control::Shutdown))
    }
}

pub(super) fn describe(message: &Control) -> String {
    match message {
        Control::Stop { task, attempt } => {
            format!("stop `{task}` attempt {attempt}, which does not run here")
        }
        Control::Shutdown => "shutdown".into(),
        Control::Unknown(raw) => format!("unreadable: {raw}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shutdown_seen_early_is_still_handled_in_its_turn() {
        let (tx, rx) = mpsc::channel(8);
        let mut controls = Controls::new(rx);
        assert!(!controls.shutdown_waiting());
        let stop = Control::Stop {
            task: "a".into(),
            attempt: 1,
        };
        tx.send(stop.clone()).await.unwrap();
        tx.send(Control::Shutdown).await.unwrap();
        assert!(controls.shutdown_waiting());
        assert!(controls.shutdown_waiting(), "looking again takes nothing");
        assert_eq!(controls.recv().await, Some(stop));
        assert_eq!(controls.recv().await, Some(Control::Shutdown));
        assert!(!controls.shutdown_waiting());
    }
}
