//! `tt sync push|pull`, `tt tasks`, `tt task` against a private redis-server.

use crate::RedisExt;
use crate::support::{self, RedisServer, Tt, key};

const PLAN: &str = r#"# our plan
[town]
name = "shop"

[meta]
default_agent = "backend"

[[tasks]]
id = "auth"
description = "Auth"

[[tasks]]
id = "login"   # the login API
description = "Login"
parent = "auth"
depends_on = ["schema"]
tags = ["api"]

[[tasks]]
id = "schema"
description = "Schema"
"#;

fn push(tt: &Tt) -> String {
    tt.run_with(["sync", "push"]).success().stdout
}

#[test]
fn push_twice_writes_nothing_the_second_time() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    let first = push(&tt);
    assert!(
        first.contains("+3 added ~0 changed -0 removed =0 unchanged"),
        "{first}"
    );
    let writes = redis.write_calls();
    let second = push(&tt);
    assert!(
        second.contains("+0 added ~0 changed -0 removed =3 unchanged"),
        "{second}"
    );
    assert_eq!(redis.write_calls(), writes, "a no-op push must not write");
}

#[test]
fn an_edit_changes_only_the_edited_task() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    push(&tt);
    let before = redis.hgetall(&key("shop", "task:schema"));
    tt.write(
        "tasks.toml",
        PLAN.replace(
            "description = \"Login\"",
            "description = \"Login with OAuth\"",
        ),
    );
    let out = push(&tt);
    assert!(
        out.contains("+0 added ~1 changed -0 removed =2 unchanged"),
        "{out}"
    );
    assert_eq!(
        redis.hgetall(&key("shop", "task:login"))["description"],
        "Login with OAuth"
    );
    assert_eq!(
        redis.hgetall(&key("shop", "task:schema")),
        before,
        "untouched task kept every field"
    );
}

#[test]
fn removed_tasks_are_cancelled_and_kept_then_restored() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    push(&tt);
    let without_schema = PLAN
        .replace("[[tasks]]\nid = \"schema\"\ndescription = \"Schema\"\n", "")
        .replace("depends_on = [\"schema\"]\n", "");
    tt.write("tasks.toml", &without_schema);
    let out = push(&tt);
    assert!(out.contains("-1 removed"), "{out}");
    let schema = redis.hgetall(&key("shop", "task:schema"));
    assert_eq!(schema["status"], "cancelled");
    assert_eq!(schema["removed"], "1");
    let json = tt
        .run_with(["tasks", "--status", "cancelled", "--json"])
        .success()
        .stdout;
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v[0]["id"], "schema");
    // Back in the file: pending again.
    tt.write("tasks.toml", PLAN);
    push(&tt);
    assert_eq!(
        redis.hgetall(&key("shop", "task:schema"))["status"],
        "pending"
    );
}

#[test]
fn file_status_applies_only_when_the_file_changes_it() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    push(&tt);
    // The file says completed: the task is skipped.
    let done = PLAN.replace(
        "description = \"Schema\"",
        "description = \"Schema\"\nstatus = \"completed\"",
    );
    tt.write("tasks.toml", &done);
    push(&tt);
    assert_eq!(
        redis.hgetall(&key("shop", "task:schema"))["status"],
        "completed"
    );
    // Progress made in Redis wins while the file keeps saying the same.
    redis.cmd(&["HSET", &key("shop", "task:login"), "status", "completed"]);
    tt.write("tasks.toml", done.replace("\"Auth\"", "\"Auth work\""));
    push(&tt);
    assert_eq!(
        redis.hgetall(&key("shop", "task:login"))["status"],
        "completed"
    );
    // Setting pending runs a finished task again.
    tt.write(
        "tasks.toml",
        done.replace("status = \"completed\"", "status = \"pending\""),
    );
    push(&tt);
    assert_eq!(
        redis.hgetall(&key("shop", "task:schema"))["status"],
        "pending"
    );
}

#[test]
fn tasks_json_has_the_documented_fields() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    push(&tt);
    let out = tt.run_with(["tasks", "--json"]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let tasks = v.as_array().expect("array");
    assert_eq!(tasks.len(), 3);
    let login = tasks.iter().find(|t| t["id"] == "login").expect("login");
    for key in [
        "id",
        "description",
        "status",
        "agent",
        "parent",
        "tags",
        "depends_on",
        "attempt",
    ] {
        assert!(login.get(key).is_some(), "missing {key}: {login}");
    }
    assert_eq!(login["agent"], "backend");
    assert_eq!(login["parent"], "auth");
    assert_eq!(login["depends_on"], serde_json::json!(["schema"]));
    assert_eq!(login["waiting"], "waits for schema (pending)");
    let auth = tasks.iter().find(|t| t["id"] == "auth").expect("auth");
    assert_eq!(
        auth["agent"],
        serde_json::Value::Null,
        "a group without its own agent has no join step"
    );
    // Filters.
    let out = tt
        .run_with(["tasks", "--tag", "api", "--json"])
        .success()
        .stdout;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
}

#[test]
fn task_shows_one_task_and_rejects_unknown_ids() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    push(&tt);
    tt.run_with(["task", "login"])
        .success()
        .stdout_contains("waits for schema (pending)");
    tt.run_with(["task", "logn"])
        .code(2)
        .stderr_contains("no task `logn` in town `shop`")
        .stderr_contains("did you mean `login`?");
    tt.run_with(["task", "bad id"]).code(2);
}

#[test]
fn pull_writes_statuses_and_keeps_comments() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    push(&tt);
    redis.cmd(&["HSET", &key("shop", "task:login"), "status", "completed"]);
    tt.run_with(["sync", "pull"])
        .success()
        .stdout_contains("1 status pulled");
    let text = tt.read("tasks.toml");
    assert_eq!(
        text,
        PLAN.replace(
            "tags = [\"api\"]\n",
            "tags = [\"api\"]\nstatus = \"completed\"\n"
        ),
        "only the status line is new"
    );
    // The pulled file is what Redis already knows: pushing it changes no status.
    redis.cmd(&["HSET", &key("shop", "task:login"), "status", "running"]);
    push(&tt);
    assert_eq!(
        redis.hgetall(&key("shop", "task:login"))["status"],
        "running"
    );
}

#[test]
fn a_tinytown_0_10_file_loads_and_pushes() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("tasks.toml", crate::example("tinytown-0.10.toml"))
        .env("TT_TOWN", "legacy")
        .redis(&redis);
    tt.run_with(["plan"]).success();
    push(&tt);
    let login = redis.hgetall(&key("legacy", "task:login"));
    assert_eq!(login["priority"], "1", "P1 tag is the priority");
    assert_eq!(
        redis.hgetall(&key("legacy", "task:signup"))["status"],
        "completed"
    );
}

#[test]
fn two_towns_in_one_redis_do_not_touch_each_other() {
    let redis = RedisServer::start();
    let a = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    let b = Tt::new()
        .file(
            "tasks.toml",
            PLAN.replace("name = \"shop\"", "name = \"farm\""),
        )
        .redis(&redis);
    push(&a);
    push(&b);
    let shop_keys = redis.keys(&key("shop", "*"));
    let farm_keys = redis.keys(&key("farm", "*"));
    assert!(!shop_keys.is_empty() && shop_keys.len() == farm_keys.len());
    // Remove every task from farm: shop is untouched.
    let shop_before: Vec<_> = shop_keys.iter().map(|k| redis.dump(k)).collect();
    b.write("tasks.toml", "[town]\nname = \"farm\"\n");
    push(&b);
    assert_eq!(
        redis.hgetall(&key("farm", "task:login"))["status"],
        "cancelled"
    );
    let shop_after: Vec<_> = shop_keys.iter().map(|k| redis.dump(k)).collect();
    assert_eq!(shop_before, shop_after);
    let towns = a.run_with(["towns", "--json"]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&towns).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2));
}

#[test]
fn an_invalid_file_never_reaches_redis() {
    let redis = RedisServer::start();
    Tt::new()
        .file(
            "tasks.toml",
            "[[tasks]]\nid = \"a\"\ndepends_on = [\"nope\"]\n",
        )
        .redis(&redis)
        .args(["sync", "push"])
        .run()
        .code(2)
        .stderr_contains("unknown task `nope`");
    assert!(redis.keys("tt:*").is_empty());
}

#[test]
fn unreachable_redis_is_a_clear_error() {
    let out = Tt::new()
        .file("tasks.toml", PLAN)
        .env("REDIS_URL", "redis://127.0.0.1:1/0")
        .args(["sync", "push"])
        .run()
        .code(1);
    assert!(
        out.stderr
            .contains("cannot reach Redis at `redis://127.0.0.1:1/0`"),
        "{}",
        out.stderr
    );
}

#[test]
fn redis_passwords_never_appear_in_errors() {
    let out = Tt::new()
        .file("tasks.toml", PLAN)
        .env("REDIS_URL", "redis://user:s3cret@127.0.0.1:1/0")
        .args(["tasks"])
        .run()
        .code(1)
        // The error names the server, with the password masked.
        .stderr_contains("cannot reach Redis at `redis://user:***@127.0.0.1:1/0`");
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
}

/// A throwaway CA and a server certificate for `localhost`, made with the
/// `openssl` command: (dir, ca.pem, server.pem, server.key).
fn tls_files(dir: &std::path::Path) -> (String, String, String) {
    let run = |args: &[&str]| {
        let ok = support::command("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs")
            .success();
        assert!(ok, "openssl {args:?}");
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=tt test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
    let p = |f: &str| dir.join(f).display().to_string();
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

#[test]
fn rediss_urls_connect_over_tls_with_a_password() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(certs.path());
    // A free loopback port for the TLS listener (never 6379).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let _redis = RedisServer::start_with(&[
        "--tls-port",
        &port,
        "--bind",
        "127.0.0.1",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "s3cret",
    ]);
    let tt = Tt::new()
        .file("tasks.toml", PLAN)
        .env("REDIS_URL", format!("rediss://:s3cret@localhost:{port}/0"))
        .env("SSL_CERT_FILE", &ca);
    let out = tt.run_with(["sync", "push"]).success();
    assert!(out.stdout.contains("+3 added"), "{out}");
    // Without the CA the server is not trusted: a clear error, no password shown.
    let out = Tt::new()
        .file("tasks.toml", PLAN)
        .env("REDIS_URL", format!("rediss://:s3cret@localhost:{port}/0"))
        .env("SSL_CERT_FILE", certs.path().join("server.csr"))
        .args(["tasks"])
        .run()
        .code(1)
        .stderr_contains(&format!(
            "cannot reach Redis at `rediss://:***@localhost:{port}/0`"
        ));
    assert!(!out.stderr.contains("s3cret"), "{out}");
}
