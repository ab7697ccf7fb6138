//! `tt dashboard` and `tt run --dashboard`: the URL with its token, the
//! token rules, every endpoint of the JSON API agreeing with the command
//! it stands for, the event stream resumed with `Last-Event-ID`, and the
//! page in a real headless Chromium (`dashboard/browser.rs`), also under a
//! burst of events in a town of 2,000 tasks (`dashboard/burst.rs`).

mod browser;
mod burst;
mod http;

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Scenario, Town};
use http::{Dashboard, EventStream};

/// Tasks that stay put (no runner): two ready, one waiting, a group.
const PLAN: &str = r#"
[town]
name = "dash"
[meta]
default_agent = "backend"
[[tasks]]
id = "schema"
description = "Design the schema"
[[tasks]]
id = "auth"
[[tasks]]
id = "login"
parent = "auth"
depends_on = ["schema"]
tags = ["api"]
[[tasks]]
id = "docs"
"#;

fn town() -> Town {
    Scenario::new().plan(PLAN).pushed().build()
}

/// `n` messages to `backend`: events beside the push's one `synced`.
fn notes(town: &Town, n: usize) {
    for i in 0..n {
        town.tt(["send", "backend", &format!("note {i}")]).success();
    }
}

fn dashboard(town: &Town, extra: &[&str]) -> Dashboard {
    let mut args = vec!["dashboard"];
    if !extra.contains(&"--addr") {
        args.extend(["--addr", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    Dashboard::of(town.start(&args))
}

fn cli_json(town: &Town, args: &[&str]) -> Value {
    let out = town.tt(args).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn the_first_line_is_the_url_with_a_fresh_token_and_loopback_is_the_default() {
    let town = town();
    let a = dashboard(&town, &[]);
    let b = dashboard(&town, &[]);
    assert!(a.host.starts_with("127.0.0.1:"), "{}", a.host);
    assert_ne!(a.host, b.host, "port 0 picks a free port each time");
    assert_ne!(a.token, b.token, "a new token on every start");
    assert!(!a.run.output().contains("warning"), "{}", a.run.output());
    let page = a.call("GET", &format!("/?token={}", a.token), None, "");
    assert_eq!(page.status, 200);
    assert!(page.headers.contains("text/html"), "{}", page.headers);
    assert!(page.body.contains("<title>tt dashboard</title>"));
    assert!(page.body.contains("disconnected — retrying"));
    assert!(!page.body.contains("/*APP_JS*/"), "the script is inlined");
}

#[test]
fn listening_beyond_loopback_warns() {
    let town = town();
    let d = dashboard(&town, &["--addr", "0.0.0.0:0"]);
    d.run.wait_output("reachable from other machines");
}

#[test]
fn requests_without_the_right_token_are_refused() {
    let town = town();
    let d = dashboard(&town, &[]);
    for path in [
        "/",
        "/api/town",
        "/api/tasks",
        "/api/tasks/login",
        "/api/events",
        "/api/history",
    ] {
        assert_eq!(d.call("GET", path, None, "").status, 401, "GET {path}");
        let wrong = d.call("GET", path, Some("0123456789abcdef0123456789abcdef"), "");
        assert_eq!(wrong.status, 403, "GET {path} with a wrong token");
        let wrong_query = d.call("GET", &format!("{path}?token=nope"), None, "");
        assert_eq!(wrong_query.status, 403, "GET {path}?token=nope");
    }
    let r = d.call("GET", "/api/town", None, "");
    assert!(
        r.json()["help"].as_str().unwrap().contains("X-TT-Token"),
        "{}",
        r.body
    );
    // Actions: not without the token, not with it in the URL only.
    assert_eq!(
        d.call("POST", "/api/tasks/docs/cancel", None, "").status,
        401
    );
    let in_url = d.call(
        "POST",
        &format!("/api/tasks/docs/cancel?token={}", d.token),
        None,
        "",
    );
    assert_eq!(in_url.status, 403, "{}", in_url.body);
    assert!(in_url.body.contains("header"), "{}", in_url.body);
    assert_eq!(town.status("docs"), "pending", "nothing was cancelled");
    // Reads take the token in the URL too.
    let q = d.call("GET", &format!("/api/town?token={}", d.token), None, "");
    assert_eq!(q.status, 200, "{}", q.body);
}

#[test]
fn read_only_public_opens_reads_but_not_actions() {
    let town = town();
    let d = dashboard(&town, &["--read-only-public"]);
    assert_eq!(d.call("GET", "/api/tasks", None, "").status, 200);
    assert_eq!(d.call("GET", "/", None, "").status, 200);
    assert_eq!(
        d.call("POST", "/api/tasks/docs/cancel", None, "").status,
        401
    );
    let wrong = d.call("POST", "/api/tasks/docs/cancel", Some("nope"), "");
    assert_eq!(wrong.status, 403);
    assert_eq!(town.status("docs"), "pending");
    assert_eq!(d.post("/api/tasks/docs/cancel", "").status, 200);
    assert_eq!(town.status("docs"), "cancelled");
}

#[test]
fn the_api_returns_what_the_commands_print() {
    let town = town();
    // The push is one event; messages make the history longer than 2.
    notes(&town, 2);
    let d = dashboard(&town, &[]);
    assert_eq!(d.get("/api/town"), cli_json(&town, &["status", "--json"]));
    assert_eq!(d.get("/api/tasks"), cli_json(&town, &["tasks", "--json"]));
    assert_eq!(
        d.get("/api/tasks?status=pending&tag=api"),
        cli_json(
            &town,
            &["tasks", "--json", "--status", "pending", "--tag", "api"]
        )
    );
    assert_eq!(
        d.get("/api/tasks/login"),
        cli_json(&town, &["task", "login", "--json"])
    );
    let town_json = d.get("/api/town");
    assert_eq!(town_json["counts"]["pending"], 4, "{town_json}");
    assert_eq!(town_json["runner"], Value::Null);
    let login = d.get("/api/tasks/login");
    assert_eq!(login["waiting"], "waits for schema (pending)", "{login}");
    assert_eq!(login["attempts"], json!([]));

    let unknown = d.call("GET", "/api/tasks/logn", Some(&d.token), "");
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.body.contains("did you mean `login`"),
        "{}",
        unknown.body
    );
    let bad = d.call("GET", "/api/tasks?status=done", Some(&d.token), "");
    assert_eq!(bad.status, 400, "{}", bad.body);

    let history = d.get("/api/history?limit=2");
    assert_eq!(history["events"].as_array().unwrap().len(), 2, "{history}");
    let out = town.tt(["history", "--limit", "2", "--json"]).success();
    let newest: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        history["events"][1], newest,
        "the newest event, as tt history --json prints it"
    );
}

#[test]
fn retry_cancel_and_answer_act_like_the_commands() {
    let town = town();
    let d = dashboard(&town, &[]);
    let r = d.post("/api/tasks/docs/cancel", r#"{"reason": "not now"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!([{ "id": "docs", "before": "pending", "cancelled": true }])
    );
    assert_eq!(town.status("docs"), "cancelled");
    assert_eq!(town.field("docs", "reason"), "not now");
    let again = d.post("/api/tasks/docs/cancel", "");
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("already cancelled"), "{}", again.body);

    let r = d.post("/api/tasks/docs/retry", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!([{ "id": "docs", "before": "cancelled", "status": "pending" }])
    );
    assert_eq!(town.status("docs"), "pending");
    let not_failed = d.post("/api/tasks/docs/retry", "");
    assert_eq!(not_failed.status, 400);
    assert!(
        not_failed.body.contains("has not failed"),
        "{}",
        not_failed.body
    );

    // A group takes its unfinished children along, as `tt cancel` does.
    let r = d.post("/api/tasks/auth/cancel", "");
    let cancelled = r.json();
    let ids: Vec<&str> = cancelled
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["auth", "login"], "{}", r.body);

    let no_question = d.post("/api/tasks/schema/answer", r#"{"text": "yes"}"#);
    assert_eq!(no_question.status, 409, "{}", no_question.body);
    assert!(no_question.body.contains("has no open question"));
    let empty = d.post("/api/tasks/schema/answer", "");
    assert_eq!(empty.status, 400);
    let garbage = d.post("/api/tasks/schema/answer", "{not json");
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    assert_eq!(d.post("/api/tasks/nope/retry", "").status, 404);
    assert_eq!(d.post("/api/tasks/bad%20id/retry", "").status, 400);
}

#[test]
fn an_answer_from_the_api_reaches_the_asking_task() {
    const TT: &str = env!("CARGO_BIN_EXE_tt");
    let plan = format!(
        r#"
[town]
name = "ask"
[agents.dev]
command = ["sh", "-c", "a=$(\"$TT\" ask 'Ship it?' --choice yes --choice no) || exit 7; printf '%s' \"$a\" > got.txt"]
env = {{ TT = "{TT}" }}
[[tasks]]
id = "ship"
agent = "dev"
"#
    );
    let town = Scenario::new().plan(plan).build();
    let _run = town.start(&["run"]);
    let d = dashboard(&town, &[]);
    town.wait_until("the question is open", || {
        d.get("/api/town")["needs_you"]["questions"]
            .as_array()
            .is_some_and(|q| !q.is_empty())
    });
    let r = d.post("/api/tasks/ship/answer", r#"{"choice": 3}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = d.post("/api/tasks/ship/answer", r#"{"choice": 2}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({ "question": "Ship it?", "answer": "no" }));
    town.wait_status("ship", "completed");
    assert_eq!(town.read("got.txt"), "no");
}

#[test]
fn the_event_stream_resumes_after_last_event_id() {
    let town = town();
    notes(&town, 4);
    let d = dashboard(&town, &[]);
    let history = d.get("/api/history?limit=100");
    let ids: Vec<String> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 4, "{history}");
    let within = Duration::from_secs(10);
    let auth = format!("X-TT-Token: {}", d.token);

    let mut resumed = EventStream::open(
        &d,
        "/api/events",
        &[auth.clone(), format!("Last-Event-ID: {}", ids[1])],
    );
    assert_eq!(resumed.status, 200);
    for want in &ids[2..] {
        let e = resumed.next(within);
        assert_eq!(&e.id, want);
        assert_eq!(e.data["id"], json!(want), "the data is the event's JSON");
    }
    // `?after=` does the same for a first connection (the page's).
    let mut after = EventStream::open(
        &d,
        &format!("/api/events?token={}&after={}", d.token, ids[2]),
        &[],
    );
    assert_eq!(after.next(within).id, ids[3]);

    // Without either, what happens next.
    let mut live = EventStream::open(&d, "/api/events", &[auth]);
    town.tt(["cancel", "docs"]).success();
    let e = live.next(within);
    assert_eq!(e.data["kind"], "cancelled", "{:?}", e);
    assert_eq!(e.data["task"], "docs");
    assert_eq!(resumed.next(within).id, e.id, "an open stream gets it too");

    let bad = http::request(
        &d.host,
        "GET",
        "/api/events",
        &[
            format!("X-TT-Token: {}", d.token),
            "Last-Event-ID: yesterday".into(),
        ],
        "",
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn the_page_feed_follows_the_other_towns_its_tasks_wait_on() {
    let b = Scenario::new()
        .plan(
            "[town]\nname = \"b\"\n[[tasks]]\nid = \"login\"\nagent = \"w\"\ndepends_on = [\"a:schema\"]\n[agents.w]\ncommand = [\"true\"]\n",
        )
        .pushed()
        .build();
    // Town `a`, on the same Redis, has the task `login` waits for.
    let a = crate::support::Tt::new().redis(b.redis()).file(
        "tasks.toml",
        "[town]\nname = \"a\"\n[[tasks]]\nid = \"schema\"\nagent = \"w\"\n[agents.w]\ncommand = [\"true\"]\n",
    );
    a.run_with(["sync", "push"]).success();
    let d = dashboard(&b, &[]);
    let within = Duration::from_secs(10);
    let mut feed = EventStream::open(&d, &format!("/api/events?tasks=1&token={}", d.token), &[]);
    let login = |v: &Value| {
        v["tasks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["id"] == "login").cloned())
            .unwrap_or(Value::Null)
    };
    let first = feed.next_tasks(within);
    assert_eq!(first["full"], true, "{first}");
    let waiting = login(&first)["waiting"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        waiting.contains("a:schema") && waiting.contains("pending"),
        "{first}"
    );
    // Only town `a` changes: the feed of `b` says what that does to `login`.
    a.run_with(["cancel", "schema"]).success();
    let next = feed.next_tasks(within);
    let now = login(&next);
    assert_ne!(now, Value::Null, "{next}");
    assert_ne!(
        now["waiting"].as_str().unwrap_or_default(),
        waiting,
        "{next}"
    );
    assert!(
        now.to_string().contains("cancelled"),
        "the dependency's new state: {next}"
    );
    // And agrees with the command.
    let cli = cli_json(&b, &["tasks", "--json"]);
    let cli_login = cli
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == "login").cloned())
        .unwrap_or(Value::Null);
    assert_eq!(cli_login["waiting"], now["waiting"], "{cli}");
}

#[test]
fn tt_run_serves_the_dashboard_and_prints_its_url_first() {
    let town = Scenario::new()
        .plan(PLAN.replace(
            "default_agent = \"backend\"",
            "default_agent = \"backend\"\n[agents.backend]\ncommand = [\"true\"]",
        ))
        .build();
    let d = Dashboard::of(town.start(&["run", "--dashboard", "127.0.0.1:0"]));
    town.wait_until("every task completed, as the API says", || {
        let t = d.get("/api/town");
        t["counts"]["completed"] == 4
    });
    assert!(d.get("/api/town")["runner"].is_object());
}
