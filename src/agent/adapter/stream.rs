//! Following a command's stdout as it is written: every byte goes to the
//! attempt's log unchanged (the log keeps the raw stream), and each
//! complete line goes to the format's [`Parser`]. What it learned so far
//! is published after every event ([`Follow::latest`]), so the worker can
//! hold budgets while the command runs.

use std::fs::File;
use std::io::Write;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::ChildStdout;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Format, Line, Parser, Progress, Transcript};

/// A longer line is not parsed (it is still logged): the worker's memory
/// is not the command's to fill.
const MAX_LINE: usize = 4 << 20;
/// How long, once the command is gone, its output may take to end: a
/// process it left behind may hold the pipe open.
pub const DRAIN: Duration = Duration::from_secs(2);

/// What the stream said so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub progress: Progress,
    pub transcript: Transcript,
}

/// A stdout being followed.
pub struct Follow {
    latest: watch::Receiver<Snapshot>,
    task: JoinHandle<Snapshot>,
}

impl Follow {
    /// Starts following `stdout` in `format`, appending it to `log`.
    pub fn start(stdout: ChildStdout, log: File, format: Format) -> Self {
        let (tx, latest) = watch::channel(Snapshot::default());
        let task = tokio::spawn(pump(stdout, log, Parser::new(format), tx));
        Self { latest, task }
    }

    /// Updates, for `select!`: resolves when the stream reported more.
    pub fn latest(&mut self) -> &mut watch::Receiver<Snapshot> {
        &mut self.latest
    }

    /// Waits up to `drain` for the output to end, and returns all it said.
    /// Output still coming after that is cut off (and what it said so far
    /// returned).
    pub async fn finish(mut self, drain: Duration) -> Snapshot {
        match tokio::time::timeout(drain, &mut self.task).await {
            Ok(Ok(snapshot)) => snapshot,
            _ => {
                self.task.abort();
                self.latest.borrow().clone()
            }
        }
    }
}

async fn pump(
    mut stdout: ChildStdout,
    mut log: File,
    mut parser: Parser,
    tx: watch::Sender<Snapshot>,
) -> Snapshot {
    let mut now = Snapshot::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    let mut number = 0u64;
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // The log is for people and best effort, as every log write.
        let _ = log.write_all(&buf[..n]);
        let mut rest = &buf[..n];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            if !too_long {
                line.extend_from_slice(&rest[..end]);
            }
            number += 1;
            let long = too_long || line.len() > MAX_LINE;
            one_line(&mut parser, &line, long, number, &mut now, &mut log, &tx);
            line.clear();
            too_long = false;
            rest = &rest[end + 1..];
        }
        if !too_long {
            line.extend_from_slice(rest);
            if line.len() > MAX_LINE {
                too_long = true;
                line.clear();
            }
        }
    }
    // A stream cut off mid-line (the command crashed): what there is.
    if too_long || !line.is_empty() {
        number += 1;
        let _ = log.write_all(b"\n");
        one_line(
            &mut parser,
            &line,
            too_long,
            number,
            &mut now,
            &mut log,
            &tx,
        );
    }
    parser.end(&mut now.progress, &mut now.transcript);
    tx.send_replace(now.clone());
    now
}

fn one_line(
    parser: &mut Parser,
    line: &[u8],
    too_long: bool,
    number: u64,
    now: &mut Snapshot,
    log: &mut File,
    tx: &watch::Sender<Snapshot>,
) {
    let before = now.progress.clone();
    let kind = if too_long {
        now.progress.malformed += 1;
        Line::Malformed
    } else {
        let text = String::from_utf8_lossy(line);
        parser.line(&text, &mut now.progress, &mut now.transcript)
    };
    if kind == Line::Malformed {
        let _ = log.write_all(
            format!(
                "[tt] output line {number} is not {} JSON; skipped\n",
                parser.format().name()
            )
            .as_bytes(),
        );
    }
    if kind == Line::Event || now.progress != before {
        tx.send_replace(now.clone());
    }
}
