//! What needs a person, as `tt status` opens with it (and the dashboard
//! shows first): questions running tasks wait on, failed tasks, and tasks
//! blocked by a failure. Empty when all is well.

use serde_json::{Value, json};

use super::task_view::TaskView;
use super::time::duration;
use crate::Status;
use crate::graph::{Readiness, Wait};
use crate::store::{Store, StoreError, TaskRecord};

/// Failed tasks read in full (for their error); the rest are counted.
const FAILED_READ: usize = 50;

/// What needs a person, read at one moment.
#[derive(Debug, Default)]
pub struct Attention {
    /// Running tasks with an open question (full records).
    pub questions: Vec<TaskRecord>,
    /// Failed tasks (full records, at most [`FAILED_READ`]), and how many
    /// there are in all.
    pub failed: Vec<TaskRecord>,
    pub failed_total: usize,
    /// Tasks blocked by a failed or cancelled dependency: (task, why).
    pub blocked: Vec<(String, String)>,
    /// Running tasks (full records), for their progress notes.
    pub running: Vec<TaskRecord>,
}

impl Attention {
    /// Reads the records `town` (read with light fields) points at.
    pub async fn read(store: &Store, town: &TaskView) -> Result<Self, StoreError> {
        let ids_where = |f: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..town.records.len())
                .filter(|&i| f(i))
                .map(|i| town.records[i].id.clone())
                .collect()
        };
        let running = ids_where(&|i| town.records[i].status == Status::Running);
        let failed =
            ids_where(&|i| town.records[i].status == Status::Failed && !town.graph.is_group(i));
        let running = store.records(&running).await?;
        let failed_total = failed.len();
        let failed = store
            .records(&failed[..failed.len().min(FAILED_READ)])
            .await?;
        let blocked = (0..town.records.len())
            .filter_map(|i| match town.graph.readiness(i) {
                Readiness::Waiting(w @ Wait::Blocked { .. }) => {
                    Some((town.records[i].id.clone(), w.to_string()))
                }
                _ => None,
            })
            .collect();
        Ok(Self {
            questions: running
                .iter()
                .filter(|r| r.question.is_some())
                .cloned()
                .collect(),
            failed,
            failed_total,
            blocked,
            running,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.questions.is_empty() && self.failed_total == 0 && self.blocked.is_empty()
    }

    pub fn json(&self, now: u64) -> Value {
        json!({
            "questions": self.questions.iter().filter_map(|r| {
                let q = r.question.as_ref()?;
                Some(json!({
                    "task": r.id,
                    "worker": r.worker,
                    "agent": r.agent,
                    "question": q.text,
                    "choices": q.choices,
                    "asked_at": q.at,
                    "waiting_ms": now.saturating_sub(q.at),
                }))
            }).collect::<Vec<_>>(),
            "failed": self.failed.iter().map(|r| json!({
                "task": r.id,
                "error": r.error,
                "reason": r.reason,
            })).collect::<Vec<_>>(),
            "failed_total": self.failed_total,
            "blocked": self.blocked.iter().map(|(id, why)| json!({ "task": id, "reason": why })).collect::<Vec<_>>(),
        })
    }

    /// Rows for the text view: what, the task, the detail, the command
    /// that helps.
    pub fn rows(&self, now: u64) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for r in &self.questions {
            let Some(q) = &r.question else { continue };
            let mut text = q.text.clone();
            if !q.choices.is_empty() {
                let listed: Vec<String> = q
                    .choices
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{}: {c}", i + 1))
                    .collect();
                text.push_str(&format!(" [{}]", listed.join(", ")));
            }
            rows.push(vec![
                "question".into(),
                r.id.clone(),
                format!(
                    "{} asks ({}): {text}",
                    r.worker.as_deref().unwrap_or("?"),
                    duration(now.saturating_sub(q.at))
                ),
                format!("tt answer {} …", r.id),
            ]);
        }
        for r in &self.failed {
            let why = r
                .error
                .as_deref()
                .or(r.reason.as_deref())
                .unwrap_or("failed");
            rows.push(vec![
                "failed".into(),
                r.id.clone(),
                why.to_string(),
                format!("tt task {} · tt retry {}", r.id, r.id),
            ]);
        }
        if self.failed_total > self.failed.len() {
            rows.push(vec![
                "failed".into(),
                format!("… {} more", self.failed_total - self.failed.len()),
                String::new(),
                "tt tasks --status failed".into(),
            ]);
        }
        for (id, why) in &self.blocked {
            rows.push(vec![
                "blocked".into(),
                id.clone(),
                why.clone(),
                String::new(),
            ]);
        }
        rows
    }

    /// The latest progress note of the running task on `worker`.
    pub fn progress_of(&self, worker: &str) -> Option<&str> {
        self.running
            .iter()
            .find(|r| r.worker.as_deref() == Some(worker))
            .and_then(|r| r.progress.as_ref().filter(|p| p.attempt == r.attempt))
            .map(|p| p.text.as_str())
    }
}
