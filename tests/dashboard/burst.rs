//! The page in a town of 2,000 tasks under a burst of events: `burst.py`
//! (headless Chromium) loads it, the test cancels a group of four groups
//! (405 events from one script), then cancels and retries another (200
//! more), and every task's `data-status` on the page must then be what
//! `tt tasks --json` says, within a deadline — the changed groups'
//! elements patched, not drawn anew.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::browser::require_browser;
use super::dashboard;
use crate::support::{self, Scenario};

/// Groups of a hundred tasks (the group and 99 children, chained by
/// threes), more than the 500 above which the page collapses groups; the
/// first four in a group `batch`.
const GROUPS: usize = 20;
const TASKS: usize = GROUPS * 100 + 1;

fn plan() -> String {
    let mut s = String::from(
        "[town]\nname = \"burst\"\n[meta]\ndefault_agent = \"work\"\n[[tasks]]\nid = \"batch\"\n",
    );
    for g in 0..GROUPS {
        s.push_str(&format!("[[tasks]]\nid = \"g{g}\"\n"));
        if g < 4 {
            s.push_str("parent = \"batch\"\n");
        }
        for c in 0..99 {
            s.push_str(&format!(
                "[[tasks]]\nid = \"t{g}_{c}\"\nparent = \"g{g}\"\n"
            ));
            if c % 3 != 0 {
                s.push_str(&format!("depends_on = [\"t{g}_{}\"]\n", c - 1));
            }
        }
    }
    s
}

#[test]
fn after_a_burst_of_events_every_task_shows_its_status_and_only_changed_ones_were_touched() {
    require_browser();
    let town = Scenario::new().plan(plan()).pushed().build();
    let d = dashboard(&town, &[]);
    // The groups drawn at the top level that change.
    let changed = ["batch", "g4"];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/burst.py");
    let mut browser = support::command("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(&script)
        .arg(d.url())
        .arg(TASKS.to_string())
        .arg(changed.join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let (tx, printed) = mpsc::channel();
    let stdout = browser.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match printed.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line == "loaded" => break,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = browser.kill();
                let out = browser.wait_with_output().unwrap();
                panic!(
                    "the page never loaded: {seen:?}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    town.tt(["cancel", "batch"]).success();
    town.tt(["cancel", "g4"]).success();
    town.tt(["retry", "g4"]).success();
    let expected: Map<String, Value> = d
        .get("/api/tasks")
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_string(), t["status"].clone()))
        .collect();
    assert_eq!(expected["t1_5"], "cancelled", "cancelled with its group");
    assert_eq!(expected["t4_5"], "pending", "retried with its group");
    let mut stdin = browser.stdin.take().unwrap();
    writeln!(stdin, "check {}", Value::Object(expected)).unwrap();
    drop(stdin);

    let out = browser.wait_with_output().unwrap();
    while let Ok(line) = printed.recv_timeout(Duration::from_secs(5)) {
        seen.push(line);
    }
    let printed = format!(
        "{}\n{}",
        seen.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "burst checks failed:\n{printed}");
    assert!(printed.contains("all burst checks passed"), "{printed}");
}
