//! The page in a real headless Chromium over WebDriver, driven by
//! `browser.py` (Python selenium) against `tt run --dashboard`, which it
//! stops at the end to see the page say it is disconnected.
//!
//! Needs `chromium`, `chromedriver` and the Python module `selenium`
//! (`.ci/run` installs them); a missing one fails the test and says how to
//! install it.

use std::path::Path;

use super::http::Dashboard;
use crate::support::{self, Scenario};

/// Fails with how to install it when `tool` is not on PATH.
#[track_caller]
fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "the browser tests need `{tool}` on PATH: install it with `apt-get install -y {package}` (or run .ci/run)"
    );
}

/// Fails with how to install them when Chromium, its driver, Python or
/// selenium are missing.
#[track_caller]
pub(super) fn require_browser() {
    require_tool("chromium", "chromium");
    require_tool("chromedriver", "chromium-driver");
    require_tool("python3", "python3");
    require_selenium();
}

#[track_caller]
fn require_selenium() {
    let ok = support::command("python3")
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the browser tests need python3 with the `selenium` module: `pip install selenium` (or run .ci/run)"
    );
}

const PLAN: &str = r#"
[town]
name = "web"
[meta]
default_agent = "work"
[agents.work]
# `gate` runs until the test creates `go`; `flaky` fails once, then passes.
command = ["sh", "-c", "case $TT_TASK_ID in gate) while [ ! -e go ]; do sleep 0.02; done ;; flaky) if [ -e flaky.once ]; then exit 0; fi; touch flaky.once; exit 1 ;; esac"]
count = 3
retries = 0
[[tasks]]
id = "quick"
description = "Done at once"
[[tasks]]
id = "gate"
description = "Waits for the test"
[[tasks]]
id = "flaky"
description = "Fails the first time"
[[tasks]]
id = "group"
[[tasks]]
id = "child"
parent = "group"
depends_on = ["quick"]
[[tasks]]
id = "after"
depends_on = ["gate"]
"#;

#[test]
fn the_page_lists_every_task_updates_live_retries_and_says_when_it_is_disconnected() {
    require_browser();
    let town = Scenario::new().plan(PLAN).build();
    let d = Dashboard::of(town.start(&["run", "--dashboard", "127.0.0.1:0"]));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/browser.py");
    let out = support::command("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(&script)
        .arg(d.url())
        .arg(town.dir())
        .arg(d.run.pid().to_string())
        .output()
        .expect("python3 runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "browser checks failed:\n{printed}\n--- tt run:\n{}",
        d.run.output()
    );
    assert!(printed.contains("all browser checks passed"), "{printed}");
    assert_eq!(
        town.status("flaky"),
        "completed",
        "the retry button ran it again"
    );
    assert_eq!(town.status("after"), "completed");
}
