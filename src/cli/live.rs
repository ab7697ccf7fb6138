//! The live summary `tt run` keeps at the bottom of a terminal: counts by
//! status, groups' progress, and what each agent runs. Transition lines
//! scroll above it. Without a terminal (CI, pipes) none of this is drawn.
//!
//! The summary is redrawn after events, never on a timer: an idle runner
//! draws nothing and costs nothing.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::task_view::TaskView;
use crate::Status;
use crate::escape::escape;
use crate::store::Store;

/// Lines printed above a footer that is erased and redrawn around them.
#[derive(Default)]
pub struct Screen {
    footer: Vec<String>,
}

impl Screen {
    fn erase(&self, out: &mut impl Write) {
        for _ in 0..self.footer.len() {
            // Up one line, clear it.
            let _ = write!(out, "\x1b[1A\x1b[2K");
        }
    }

    fn draw(&self, out: &mut impl Write) {
        for l in &self.footer {
            let _ = writeln!(out, "{}", escape(l));
        }
    }

    /// Prints a line above the footer.
    pub fn line(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        let _ = writeln!(out, "{}", escape(text));
        self.draw(&mut out);
        let _ = out.flush();
    }

    pub fn set_footer(&mut self, footer: Vec<String>) {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        self.footer = footer;
        self.draw(&mut out);
        let _ = out.flush();
    }

    /// Erases the footer: the run's summary follows in its place.
    pub fn finish(&mut self) {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        self.footer.clear();
        let _ = out.flush();
    }
}

/// Redraws the footer whenever `dirty` is notified, at most ~10 times a
/// second, from its own connection's view of the town.
pub async fn keep_drawing(store: Store, screen: Arc<Mutex<Screen>>, dirty: Arc<Notify>) {
    loop {
        dirty.notified().await;
        // Fold a burst of events into one redraw.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(records) = store.tasks().await else {
            continue;
        };
        let agents = store.agents().await.unwrap_or_default();
        let footer = render(&TaskView::new(records), &agents);
        if let Ok(mut s) = screen.lock() {
            s.set_footer(footer);
        }
    }
}

fn render(town: &TaskView, agents: &[crate::store::AgentInfo]) -> Vec<String> {
    let g = &town.graph;
    let count = |st: Status| {
        (0..town.records.len())
            .filter(|&i| g.status(i) == st && !g.is_group(i))
            .count()
    };
    let mut lines = vec![format!(
        "── {} pending · {} queued · {} running · {} completed · {} failed · {} cancelled",
        count(Status::Pending),
        count(Status::Assigned),
        count(Status::Running),
        count(Status::Completed),
        count(Status::Failed),
        count(Status::Cancelled),
    )];
    let groups: Vec<String> = (0..town.records.len())
        .filter(|&i| g.is_group(i))
        .take(6)
        .map(|i| {
            let p = g.progress(i);
            format!("{} {}/{}", town.records[i].id, p.completed, p.total)
        })
        .collect();
    if !groups.is_empty() {
        lines.push(format!("   groups: {}", groups.join(" · ")));
    }
    let busy: Vec<String> = agents
        .iter()
        .take(8)
        .map(|a| match &a.task {
            Some(t) => format!("{} → {t}", a.id),
            None => format!("{} {}", a.id, a.state),
        })
        .collect();
    if !busy.is_empty() {
        lines.push(format!("   agents: {}", busy.join(" · ")));
    }
    lines
}
