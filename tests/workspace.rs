//! Workspaces (`workspace = "worktree"`): real git repositories in temp
//! dirs, real `tt run` processes, `sh -c` agents. Each worker works in its
//! own worktree on a branch per attempt, finished work lands on `tt/<town>`
//! by refs only, conflicts fail the attempt and keep its commit, a dead
//! attempt's changes end up in a commit, and the user's checkout is never
//! touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt, command, key, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

/// Runs git in `dir` with an identity of its own (the test environment
/// has none it may rely on); its stdout, trimmed. Fails the test with what
/// git said when it fails, or when git is missing.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = command("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=user", "-c", "user.email=user@example.com"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("git must be installed to run these tests: {e}"));
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A project that is a git repository: `tasks.toml` (committed with a
/// README and a `.gitignore` that ignores `.tt/`), on branch `main`.
/// `HOME` is empty, so no identity of the user's reaches tt's commits.
fn repo(plan: &str) -> (Tt, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let tt = Tt::new()
        .file("tasks.toml", plan)
        .file(".gitignore", ".tt/\nrun.out\n.env\n")
        .file("README", "base\n")
        .file("same.txt", "original\n")
        .env("HOME", home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1");
    git(tt.dir(), &["init", "-q", "-b", "main"]);
    git(tt.dir(), &["add", "-A"]);
    git(tt.dir(), &["commit", "-q", "-m", "initial"]);
    (tt, home)
}

/// A plan of town `w` with agent `dev` (`count` workers, worktrees) that
/// runs `script` through `sh -c`; `extra` goes into `[agents.dev]`,
/// `tasks` after it.
fn plan(script: &str, count: u32, extra: &str, tasks: &str) -> String {
    let script = script.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[town]\nname = \"w\"\nworkspace = \"worktree\"\n\n[agents.dev]\ncommand = [\"sh\", \"-c\", \"{script}\"]\ncount = {count}\n{extra}\n{tasks}"
    )
}

fn task(id: &str, extra: &str) -> String {
    format!("[[tasks]]\nid = \"{id}\"\ndescription = \"do {id}\"\nagent = \"dev\"\n{extra}\n")
}

/// Commits of the agents' own: git with an identity inside a task.
const AGENT_GIT: &str = "git -c user.name=agent -c user.email=agent@example.com";

/// A shell line that waits (up to ~20 s) until the other task of a pair
/// has started too, so both run at once; `$SYNC` is a directory outside
/// the repository.
const BARRIER: &str = "touch $SYNC/$TT_TASK_ID; i=0; while [ $(ls $SYNC | wc -l) -lt 2 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done";

/// Every file of the user's checkout but `.git/` and `.tt/`, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".git") || rel == Path::new(".tt") || rel == Path::new("run.out") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn task_json(tt: &Tt, id: &str) -> Value {
    let out = tt.run_with(["task", id, "--json"]).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn history(tt: &Tt, id: &str) -> Vec<Value> {
    tt.run_with(["history", "--task", id, "--json"])
        .success()
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn parallel_tasks_land_on_the_town_branch_and_the_users_checkout_is_untouched() {
    let redis = RedisServer::start();
    let sync = tempfile::tempdir().unwrap();
    let script = format!(
        "if [ $TT_TASK_ID = c ]; then cat a.txt b.txt > c.txt; exit 0; fi; {BARRIER}; echo \"$TT_TASK_ID $PWD $TT_WORKSPACE $TT_BRANCH\" > $TT_TASK_ID.txt"
    );
    let tasks = [
        task("a", ""),
        task("b", ""),
        task("c", "depends_on = [\"a\", \"b\"]"),
    ]
    .concat();
    let extra = format!("env = {{ SYNC = \"{}\" }}", sync.path().display());
    let (tt, _home) = repo(&plan(&script, 2, &extra, &tasks));
    let tt = tt.redis(&redis);
    // The user's own uncommitted work, in their checkout.
    tt.write("README", "base\nmy own edit\n");
    tt.write("notes.txt", "untracked, mine\n");
    let before = snapshot(tt.dir());
    let status_before = git(tt.dir(), &["status", "--porcelain"]);
    let head_before = git(tt.dir(), &["rev-parse", "HEAD"]);

    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("3 completed, 0 failed"), "{out}");

    assert_eq!(snapshot(tt.dir()), before, "the user's files changed");
    assert_eq!(git(tt.dir(), &["status", "--porcelain"]), status_before);
    assert_eq!(git(tt.dir(), &["rev-parse", "HEAD"]), head_before);
    assert_eq!(git(tt.dir(), &["symbolic-ref", "HEAD"]), "refs/heads/main");

    // Each ran in a worktree of its own, on its own branch.
    let a = git(tt.dir(), &["show", "tt/w:a.txt"]);
    let b = git(tt.dir(), &["show", "tt/w:b.txt"]);
    let field = |line: &str, i: usize| line.split(' ').nth(i).unwrap().to_string();
    assert!(field(&a, 1).contains("/.tt/worktrees/dev-"), "{a}");
    assert_ne!(field(&a, 1), field(&b, 1), "both ran in one worktree");
    assert_eq!(field(&a, 1), field(&a, 2), "TT_WORKSPACE is where it ran");
    assert_eq!(field(&a, 3), "tt/w@a/1");
    assert_eq!(field(&b, 3), "tt/w@b/1");
    // The dependant started from the landed work of both.
    let c = git(tt.dir(), &["show", "tt/w:c.txt"]);
    assert_eq!(c, format!("{a}\n{b}"));

    // The history of `tt/w` is the audit trail: a commit per task with
    // its trailers, a merge per landing.
    for id in ["a", "b", "c"] {
        let grep = format!("--grep=Tt-Task: {id}");
        let found = git(tt.dir(), &["log", "tt/w", &grep, "--format=%s"]);
        assert!(found.contains(&format!("{id}: do {id}")), "{found}");
        assert!(found.contains(&format!("Land {id}")), "{found}");
    }
    let author = git(tt.dir(), &["log", "-1", "tt/w", "--format=%an <%ae>"]);
    assert_eq!(
        author, "tinytown <tinytown@localhost>",
        "no identity configured"
    );

    let v = task_json(&tt, "a");
    let facts = &v["attempts"][0]["facts"];
    assert_eq!(facts["branch"], "tt/w@a/1", "{v}");
    assert_eq!(facts["landed"], true, "{v}");
    let landed = facts["commit"].as_str().unwrap();
    assert!(git(tt.dir(), &["log", "tt/w", "--format=%H"]).contains(landed));
    tt.run_with(["task", "a"])
        .success()
        .stdout_contains("tt/w@a/1")
        .stdout_contains(&format!("on `tt/w` as {}", &landed[..12]))
        .stdout_contains("1 file changed");

    // A clean exit leaves the worktrees clean, on no branch.
    let list = tt.run_with(["workspaces"]).success();
    for worker in ["dev-1", "dev-2"] {
        let line = list
            .stdout
            .lines()
            .find(|l| l.starts_with(worker))
            .unwrap_or_else(|| panic!("{list}"));
        assert!(line.contains("clean") && line.ends_with("yes"), "{list}");
        let wt = tt.dir().join(".tt/worktrees").join(worker);
        assert_eq!(git(&wt, &["status", "--porcelain"]), "");
    }
}

#[test]
fn parallel_changes_to_one_line_conflict_and_the_retry_lands_from_the_new_tip() {
    let redis = RedisServer::start();
    let sync = tempfile::tempdir().unwrap();
    let script = format!("{BARRIER}; echo $TT_TASK_ID > same.txt; echo $TT_ATTEMPT >> same.txt");
    let extra = format!(
        "retries = 1\nenv = {{ SYNC = \"{}\" }}",
        sync.path().display()
    );
    let tasks = [task("a", ""), task("b", "")].concat();
    let (tt, _home) = repo(&plan(&script, 2, &extra, &tasks));
    let tt = tt.redis(&redis);
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("2 completed, 0 failed"), "{out}");

    // One of them landed first; the other's first attempt conflicted.
    let retried: Vec<&str> = ["a", "b"]
        .into_iter()
        .filter(|id| redis.task_field("w", id, "attempt") == "2")
        .collect();
    assert_eq!(retried.len(), 1, "exactly one conflicted: {retried:?}");
    let loser = retried[0];
    let winner = if loser == "a" { "b" } else { "a" };
    let reason = history(&tt, loser)
        .into_iter()
        .find(|e| e["kind"] == "retried")
        .and_then(|e| e["reason"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(
        reason.contains(&format!("conflicts with `{winner}` in same.txt")),
        "{reason}"
    );
    let v = task_json(&tt, loser);
    assert_eq!(v["attempts"][0]["facts"]["conflicts"][0], "same.txt", "{v}");
    // Its work is still in a commit, on its attempt's branch.
    let kept = git(tt.dir(), &["show", &format!("tt/w@{loser}/1:same.txt")]);
    assert_eq!(kept, format!("{loser}\n1"));
    // The retry started from the new tip (the winner's line) and landed.
    let retry_base = v["attempts"][1]["facts"]["base"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        git(tt.dir(), &["show", &format!("{retry_base}:same.txt")]),
        format!("{winner}\n1")
    );
    assert_eq!(
        git(tt.dir(), &["show", "tt/w:same.txt"]),
        format!("{loser}\n2")
    );
    assert_eq!(git(tt.dir(), &["show", "main:same.txt"]), "original");
}

#[test]
fn rebase_gives_a_linear_history_and_branch_lands_nothing() {
    let redis = RedisServer::start();
    let sync = tempfile::tempdir().unwrap();
    let script = format!(
        "{BARRIER}; echo $TT_TASK_ID > $TT_TASK_ID.txt; {AGENT_GIT} add -A; {AGENT_GIT} commit -qm \"own $TT_TASK_ID\"; echo more > $TT_TASK_ID.more"
    );
    let extra = format!(
        "land = \"rebase\"\nenv = {{ SYNC = \"{}\" }}",
        sync.path().display()
    );
    let tasks = [task("a", ""), task("b", "")].concat();
    let (tt, _home) = repo(&plan(&script, 2, &extra, &tasks));
    let tt = tt.redis(&redis);
    tt.run_with(["run", "--until-done"]).success();
    assert_eq!(git(tt.dir(), &["rev-list", "--merges", "main..tt/w"]), "");
    let subjects = git(tt.dir(), &["log", "--format=%s", "main..tt/w"]);
    assert_eq!(
        subjects.lines().count(),
        4,
        "two commits per task: {subjects}"
    );
    for id in ["a", "b"] {
        assert!(subjects.contains(&format!("own {id}")), "{subjects}");
        assert!(subjects.contains(&format!("{id}: do {id}")), "{subjects}");
        git(tt.dir(), &["cat-file", "-e", &format!("tt/w:{id}.more")]);
        // The attempt's branch points at what landed.
        git(
            tt.dir(),
            &[
                "merge-base",
                "--is-ancestor",
                &format!("tt/w@{id}/1"),
                "tt/w",
            ],
        );
    }
    let trailers = git(
        tt.dir(),
        &[
            "log",
            "--format=%(trailers:key=Tt-Task,valueonly)",
            "main..tt/w",
        ],
    );
    assert_eq!(
        trailers.lines().filter(|l| !l.is_empty()).count(),
        4,
        "{trailers}"
    );

    // land = "branch": nothing lands, one branch per task.
    let redis = RedisServer::start();
    let script = "echo $TT_TASK_ID > $TT_TASK_ID.txt";
    let tasks = [task("a", ""), task("b", "")].concat();
    let (tt, _home) = repo(&plan(script, 1, "land = \"branch\"", &tasks));
    let tt = tt.redis(&redis);
    tt.run_with(["run", "--until-done"]).success();
    assert_eq!(
        git(tt.dir(), &["rev-parse", "tt/w"]),
        git(tt.dir(), &["rev-parse", "main"]),
        "nothing landed"
    );
    let branches = git(
        tt.dir(),
        &["branch", "--format=%(refname:short)", "--list", "tt/w@*"],
    );
    assert_eq!(branches, "tt/w@a/1\ntt/w@b/1");
    for id in ["a", "b"] {
        assert_eq!(
            git(tt.dir(), &["show", &format!("tt/w@{id}/1:{id}.txt")]),
            id
        );
        assert_eq!(task_json(&tt, id)["attempts"][0]["facts"]["landed"], false);
    }
    // Nothing of theirs landed, so prune keeps both branches.
    tt.run_with(["workspaces", "prune"]).success();
    assert_eq!(
        git(
            tt.dir(),
            &["branch", "--format=%(refname:short)", "--list", "tt/w@*"]
        ),
        "tt/w@a/1\ntt/w@b/1"
    );
}

#[test]
fn a_killed_worker_s_changes_end_up_in_a_commit_and_the_retry_runs_in_a_clean_worktree() {
    let redis = RedisServer::start();
    let sync = tempfile::tempdir().unwrap();
    let script = "git status --porcelain > $SYNC/status-$TT_ATTEMPT; if [ $TT_ATTEMPT = 1 ]; then echo half > partial.txt; echo changed >> README; touch $SYNC/started; while true; do sleep 0.05; done; fi; echo whole > done.txt";
    let extra = format!("env = {{ SYNC = \"{}\" }}", sync.path().display());
    let (tt, _home) = repo(&plan(script, 1, &extra, &task("job", "")));
    let tt = tt.redis(&redis);
    let run = Running::start(&tt, &["run"]);
    wait_until(DEADLINE, "attempt 1 has made its changes", || {
        sync.path().join("started").exists()
    });
    let pid: i32 = redis.hgetall(&key("w", "agent:dev-1"))["pid"]
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the worker process the runner started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    wait_until(DEADLINE, "the retry completes", || {
        redis.task_field("w", "job", "status") == "completed"
    });
    assert_eq!(run.stop(), 0);

    // Attempt 1's changes are in a commit on its branch, marked not landed.
    let message = git(tt.dir(), &["log", "-1", "--format=%B", "tt/w@job/1"]);
    assert!(message.contains("Tt-Landed: no"), "{message}");
    assert!(message.contains("Tt-Attempt: 1"), "{message}");
    assert_eq!(git(tt.dir(), &["show", "tt/w@job/1:partial.txt"]), "half");
    assert_eq!(
        git(tt.dir(), &["show", "tt/w@job/1:README"]),
        "base\nchanged"
    );
    // The retry started clean, from the tip, and landed without them.
    let status = std::fs::read_to_string(sync.path().join("status-2")).unwrap();
    assert_eq!(status, "", "the retry's worktree was dirty");
    git(tt.dir(), &["cat-file", "-e", "tt/w:done.txt"]);
    assert_eq!(git(tt.dir(), &["show", "tt/w:README"]), "base");
    assert!(
        git(tt.dir(), &["ls-tree", "--name-only", "tt/w"])
            .lines()
            .all(|f| f != "partial.txt")
    );

    let list = tt.run_with(["workspaces", "--json"]).success();
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list[0]["worker"], "dev-1", "{list}");
    assert_eq!(list[0]["task"], "job", "{list}");
    assert_eq!(list[0]["attempt"], 2, "{list}");
    assert_eq!(list[0]["changes"], 0, "{list}");
    assert_eq!(list[0]["landed"], true, "{list}");
    assert!(list[0]["size"].as_u64().unwrap() > 0, "{list}");

    // Prune: the worker still exists, so its worktree stays; the landed
    // branch goes, the unlanded one stays.
    let out = tt.run_with(["workspaces", "prune"]).success();
    assert!(out.stdout.contains("removed branch `tt/w@job/2`"), "{out}");
    let branches = git(
        tt.dir(),
        &["branch", "--format=%(refname:short)", "--list", "tt/w@*"],
    );
    assert_eq!(branches, "tt/w@job/1");
    let wt = tt.dir().join(".tt/worktrees/dev-1");
    assert!(wt.is_dir());

    // Its agent gone from the plan, a worktree with uncommitted work stays
    // (unless --force); once clean, it goes.
    tt.write(
        "tasks.toml",
        plan(script, 1, &extra, "").replace("agents.dev", "agents.ops"),
    );
    std::fs::write(wt.join("scratch.txt"), "not in any commit").unwrap();
    let out = tt.run_with(["workspaces", "prune"]).success();
    assert!(
        out.stdout
            .contains("kept worktree `dev-1`: 1 uncommitted change"),
        "{out}"
    );
    assert!(wt.join("scratch.txt").exists());
    std::fs::remove_file(wt.join("scratch.txt")).unwrap();
    let out = tt.run_with(["workspaces", "prune"]).success();
    assert!(out.stdout.contains("removed worktree `dev-1`"), "{out}");
    assert!(!wt.exists());
    assert_eq!(
        git(
            tt.dir(),
            &["branch", "--format=%(refname:short)", "--list", "tt/w@*"]
        ),
        "tt/w@job/1",
        "unlanded work is never pruned"
    );
}

#[test]
fn an_agent_s_own_commits_all_land_and_an_agent_that_changes_nothing_lands_nothing() {
    let redis = RedisServer::start();
    let script = format!(
        "if [ $TT_TASK_ID = noop ]; then exit 0; fi; echo 1 > one.txt; {AGENT_GIT} add one.txt; {AGENT_GIT} commit -qm one; echo 2 > two.txt; {AGENT_GIT} add two.txt; {AGENT_GIT} commit -qm two"
    );
    let tasks = [
        task("commits", ""),
        task("noop", "depends_on = [\"commits\"]"),
    ]
    .concat();
    let (tt, _home) = repo(&plan(&script, 1, "", &tasks));
    let tt = tt.redis(&redis);
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("2 completed, 0 failed"), "{out}");
    let subjects = git(tt.dir(), &["log", "--format=%s", "main..tt/w"]);
    assert_eq!(subjects, "Land commits: do commits\ntwo\none", "{subjects}");
    let v = task_json(&tt, "noop");
    let facts = &v["attempts"][0]["facts"];
    assert_eq!(facts["landed"], false, "{v}");
    assert_eq!(facts["head"], facts["base"], "{v}");
    tt.run_with(["task", "noop"])
        .success()
        .stdout_contains("nothing to land");
}

#[test]
fn worktree_settings_are_checked_at_load() {
    // Not a git repository.
    let tt = Tt::new().file(
        "tasks.toml",
        "[agents.dev]\ncommand = [\"true\"]\nworkspace = \"worktree\"\n",
    );
    tt.run_with(["plan"])
        .code(2)
        .stderr_contains("needs a git repository")
        .stderr_contains("git init");
    // Bad values, each at its place.
    let (tt, _home) = repo(
        "[town]\nworkspace = \"worktre\"\nland = \"squash\"\n[agents.dev]\ncommand = [\"true\"]\n",
    );
    tt.run_with(["plan"])
        .code(2)
        .stderr_contains("did you mean `worktree`?")
        .stderr_contains("`squash` is not a way to land work");
    let (tt, _home) = repo(
        "[town]\nworkspace = \"worktree\"\ninto = \"bad..name\"\n[agents.dev]\ncommand = [\"true\"]\npush = \"origin\"\n",
    );
    tt.run_with(["plan"])
        .code(2)
        .stderr_contains("`into = \"bad..name\"` is not a valid branch name")
        .stderr_contains("`push` with `land = \"merge\"` is not supported");
    let (tt, _home) = repo(
        "[town]\nworkspace = \"worktree\"\nland = \"branch\"\npush = \"nowhere\"\n[agents.dev]\ncommand = [\"true\"]\n",
    );
    tt.run_with(["plan"])
        .code(2)
        .stderr_contains("no remote `nowhere`");
}

#[test]
fn land_branch_with_push_sends_each_attempt_s_branch_to_the_remote() {
    let redis = RedisServer::start();
    let remote = tempfile::tempdir().unwrap();
    git(remote.path(), &["init", "-q", "--bare"]);
    let (tt, _home) = repo(&plan(
        "echo $TT_TASK_ID > out.txt",
        1,
        "land = \"branch\"\npush = \"origin\"",
        &task("a", ""),
    ));
    git(
        tt.dir(),
        &[
            "remote",
            "add",
            "origin",
            &remote.path().display().to_string(),
        ],
    );
    let tt = tt.redis(&redis);
    tt.run_with(["run", "--until-done"]).success();
    assert_eq!(git(remote.path(), &["show", "tt/w@a/1:out.txt"]), "a");
}

#[test]
fn landing_refuses_a_branch_that_a_checkout_has_checked_out() {
    let redis = RedisServer::start();
    let (tt, _home) = repo(&plan(
        "echo x > x.txt",
        1,
        "into = \"main\"",
        &task("a", ""),
    ));
    let tt = tt.redis(&redis);
    let before = git(tt.dir(), &["rev-parse", "main"]);
    tt.run_with(["run", "--until-done"]).code(1);
    assert_eq!(git(tt.dir(), &["rev-parse", "main"]), before);
    let error = redis.task_field("w", "a", "error");
    assert!(
        error.contains("cannot land on `main`: it is checked out in"),
        "{error}"
    );
    assert_eq!(
        git(tt.dir(), &["show", "tt/w@a/1:x.txt"]),
        "x",
        "its work is kept"
    );
}

#[test]
fn include_copies_ignored_files_into_each_worktree_and_no_hook_runs() {
    let redis = RedisServer::start();
    let (tt, _home) = repo(&plan(
        "cat .env > seen.txt",
        1,
        "include = [\".env\"]",
        &task("a", ""),
    ));
    tt.write(".env", "SECRET=1\n");
    // The repository's hooks are not run by tt's own checkouts and commits.
    let hooked = tt.dir().join("hooked");
    let hook = tt.dir().join(".git/hooks/post-checkout");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", hooked.display())).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let tt = tt.redis(&redis);
    tt.run_with(["run", "--until-done"]).success();
    assert!(!hooked.exists(), "a hook ran");
    assert_eq!(git(tt.dir(), &["show", "tt/w:seen.txt"]), "SECRET=1");
    let files = git(tt.dir(), &["ls-tree", "-r", "--name-only", "tt/w"]);
    assert!(!files.lines().any(|f| f == ".env"), "{files}");
}

#[test]
fn stopping_tt_run_mid_task_leaves_the_worktree_clean_and_its_work_in_a_commit() {
    let redis = RedisServer::start();
    let sync = tempfile::tempdir().unwrap();
    let script = "if [ $TT_ATTEMPT = 1 ]; then echo half > partial.txt; touch $SYNC/started; while true; do sleep 0.05; done; fi; echo whole > done.txt";
    let extra = format!("env = {{ SYNC = \"{}\" }}", sync.path().display());
    let (tt, _home) = repo(&plan(script, 1, &extra, &task("job", "")));
    let tt = tt.redis(&redis);
    let run = Running::start(&tt, &["run"]);
    wait_until(DEADLINE, "attempt 1 has made its changes", || {
        sync.path().join("started").exists()
    });
    assert_eq!(run.stop(), 0);
    let wt = tt.dir().join(".tt/worktrees/dev-1");
    assert_eq!(git(&wt, &["status", "--porcelain"]), "", "left dirty");
    assert_eq!(git(tt.dir(), &["show", "tt/w@job/1:partial.txt"]), "half");
    let message = git(tt.dir(), &["log", "-1", "--format=%B", "tt/w@job/1"]);
    assert!(message.contains("Tt-Landed: no"), "{message}");
    // The next run picks the task up again and lands the retry.
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("1 completed"), "{out}");
    git(tt.dir(), &["cat-file", "-e", "tt/w:done.txt"]);
}

#[test]
fn a_timed_out_attempt_s_changes_are_kept_in_a_commit_on_its_branch() {
    let redis = RedisServer::start();
    let script = "echo started > wip.txt; while true; do sleep 0.05; done";
    let (tt, _home) = repo(&plan(script, 1, "timeout = \"1s\"", &task("slow", "")));
    let tt = tt.redis(&redis);
    tt.run_with(["run", "--until-done"]).code(1);
    assert!(redis.task_field("w", "slow", "error").contains("timed out"));
    assert_eq!(git(tt.dir(), &["show", "tt/w@slow/1:wip.txt"]), "started");
    assert_eq!(
        git(tt.dir(), &["rev-parse", "tt/w"]),
        git(tt.dir(), &["rev-parse", "main"]),
        "nothing landed"
    );
    let wt = tt.dir().join(".tt/worktrees/dev-1");
    assert_eq!(git(&wt, &["status", "--porcelain"]), "");
    tt.run_with(["task", "slow"])
        .success()
        .stdout_contains("tt/w@slow/1")
        .stdout_contains("no (its work is on the branch)");
}
