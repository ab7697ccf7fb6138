//! tt on a real Redis Cluster (three masters on loopback, shared by these
//! tests; each test has towns of its own): the core of a run — sync,
//! dispatch, claim, finish, a killed worker's task recovered, a live
//! reload — passes; a town's keys share one slot and towns spread over
//! slots; one node's URL finds the whole cluster; a town whose slot moves
//! mid-run goes on; blocking reads neither time out nor stall the shared
//! connection; a dependency across towns on different nodes is honoured;
//! a TLS cluster works with its CA.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::Value;
use tinytown::store::{Keys, RedisTarget, StoreError, connection};

use crate::support::cluster::{Cluster, PASSWORD};
use crate::support::{RedisServer, Running, Tt, pid_running, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

/// An agent command that appends its task id to `order.log`, waiting for
/// `go-<id>` first when `gate-<id>` exists.
const AGENT: &str = r#"
[agents.w]
command = ["sh", "-c", "echo $$ > pid-$TT_TASK_ID-$TT_ATTEMPT; if [ -e gate-$TT_TASK_ID ]; then while [ ! -e go-$TT_TASK_ID ]; do sleep 0.05; done; fi; echo \"$TT_TASK_ID\" >> order.log"]
"#;

/// A project of town `town` with `tasks` (each `[[tasks]]` on agent `w`,
/// `b` after `a` when both are given), pointed at `url`.
fn project(town: &str, tasks: &[&str], url: &str) -> Tt {
    Tt::new()
        .file("tasks.toml", plan(town, tasks))
        .env("REDIS_URL", url)
}

fn plan(town: &str, tasks: &[&str]) -> String {
    let mut plan = format!("[town]\nname = \"{town}\"\n");
    let mut previous: Option<&str> = None;
    for id in tasks {
        plan.push_str(&format!("\n[[tasks]]\nid = \"{id}\"\nagent = \"w\"\n"));
        if let Some(previous) = previous {
            plan.push_str(&format!("depends_on = [\"{previous}\"]\n"));
        }
        previous = Some(id);
    }
    plan + AGENT
}

/// Task `id` of `town` as stored, read through the cluster.
fn task(cluster: &Cluster, town: &str, id: &str) -> HashMap<String, String> {
    cluster
        .conn()
        .hgetall(Keys::new(town).task(id))
        .unwrap_or_default()
}

fn status(cluster: &Cluster, town: &str, id: &str) -> String {
    task(cluster, town, id).remove("status").unwrap_or_default()
}

fn lines(tt: &Tt, name: &str) -> Vec<String> {
    std::fs::read_to_string(tt.dir().join(name))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn json_of(tt: &Tt, args: &[&str]) -> Value {
    let out = tt.run_with(args).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Every key of `town`, found by `SCAN` on every node.
fn town_keys(cluster: &Cluster, town: &str) -> Vec<String> {
    cluster.keys(&format!("{}*", Keys::new(town).prefix()))
}

#[test]
fn sync_run_and_status_agree_on_a_cluster() {
    let cluster = Cluster::shared();
    let town = "cl-run";
    let tt = project(town, &["a", "b", "c"], &cluster.url());
    tt.run_with(["sync", "push"]).success();
    assert_eq!(status(cluster, town, "a"), "pending");
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("3 completed"), "{out}");
    assert_eq!(lines(&tt, "order.log"), ["a", "b", "c"]);

    let tasks = json_of(&tt, &["tasks", "--json"]);
    let listed: Vec<(String, String)> = tasks
        .as_array()
        .unwrap_or_else(|| panic!("tt tasks --json is a list: {tasks}"))
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().into(),
                t["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let stored: Vec<(String, String)> = ["a", "b", "c"]
        .iter()
        .map(|id| (id.to_string(), status(cluster, town, id)))
        .collect();
    assert_eq!(listed, stored);
    let text = tt.run_with(["status"]).success().stdout;
    assert!(text.contains("completed 3"), "{text}");
}

#[test]
fn every_key_of_a_town_is_in_one_slot_and_towns_spread() {
    let cluster = Cluster::shared();
    // Names whose hash tags land on different masters.
    let towns = ["cl-slot-a", "cl-slot-b"];
    let slots: Vec<u16> = towns
        .iter()
        .map(|town| {
            let tt = project(town, &["x", "y"], &cluster.url());
            tt.run_with(["run", "--until-done"]).success();
            let keys = town_keys(cluster, town);
            // Tasks, the task set, events, a worker's record …
            assert!(keys.len() >= 5, "{town}: {keys:?}");
            let slots: Vec<u16> = keys.iter().map(|k| cluster.keyslot(k)).collect();
            assert!(
                slots.iter().all(|s| *s == slots[0]),
                "{town}: keys in several slots: {:?}",
                keys.iter().zip(&slots).collect::<Vec<_>>()
            );
            slots[0]
        })
        .collect();
    assert_ne!(slots[0], slots[1], "two towns in one slot");
    assert_ne!(
        cluster.owner(slots[0]),
        cluster.owner(slots[1]),
        "two towns on one node"
    );
}

#[test]
fn a_killed_worker_is_recovered_and_a_reload_runs_new_work_on_a_cluster() {
    let cluster = Cluster::shared();
    let town = "cl-live";
    let tt = project(town, &["job"], &cluster.url());
    tt.write("gate-job", "");
    let run = Running::start(&tt, &["run"]);
    wait_until(DEADLINE, "job's command runs", || {
        status(cluster, town, "job") == "running" && tt.dir().join("pid-job-1").exists()
    });
    let worker = task(cluster, town, "job").remove("worker").unwrap();
    let pid: i32 = cluster
        .conn()
        .hget::<_, _, String>(Keys::new(town).agent(&worker), "pid")
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the worker process the runner started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    wait_until(DEADLINE, "job is requeued and runs again", || {
        let t = task(cluster, town, "job");
        t.get("attempt").map(String::as_str) == Some("2")
            && t.get("status").map(String::as_str) == Some("running")
    });
    let first = tt.wait_pid("pid-job-1");
    assert!(!pid_running(first), "attempt 1's command still runs");
    tt.write("go-job", "");
    wait_until(DEADLINE, "job completes", || {
        status(cluster, town, "job") == "completed"
    });

    // A failover empties a node's script cache: the runner loads its
    // scripts again where they are missing.
    for i in 0..3 {
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut cluster.node_conn(i))
            .unwrap();
    }
    // Saving the file while the run runs adds the new task and runs it.
    tt.write("tasks.toml", plan(town, &["job", "more"]));
    wait_until(DEADLINE, "the reloaded task completes", || {
        status(cluster, town, "more") == "completed"
    });
    assert_eq!(lines(&tt, "order.log"), ["job", "more"]);
    assert!(pid_running(run.pid() as i32), "{}", run.output());
}

#[test]
fn one_nodes_url_finds_the_whole_cluster() {
    let cluster = Cluster::shared();
    let town = "cl-one";
    let slot = cluster.keyslot(&Keys::new(town).tasks());
    // A node that does not serve the town: every command is MOVED. Its
    // password comes from the environment, for every node.
    let other = (cluster.owner(slot) + 1) % 3;
    let tt = project(town, &["a", "b"], &cluster.node_url_without_password(other))
        .env("REDISCLI_AUTH", PASSWORD);
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("2 completed"), "{out}");
    assert_eq!(lines(&tt, "order.log"), ["a", "b"]);
}

#[test]
fn a_town_whose_slot_moves_mid_run_goes_on() {
    let cluster = Cluster::shared();
    let town = "cl-move";
    let tt = project(town, &["a", "b"], &cluster.url());
    tt.write("gate-a", "");
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    wait_until(DEADLINE, "a runs", || {
        status(cluster, town, "a") == "running"
    });
    let slot = cluster.keyslot(&Keys::new(town).tasks());
    let to = (cluster.owner(slot) + 1) % 3;
    cluster.move_slot(slot, to);
    assert_eq!(cluster.owner(slot), to);
    tt.write("go-a", "");
    assert_eq!(run.wait_exit(), 0, "{}", run.output());
    assert_eq!(lines(&tt, "order.log"), ["a", "b"]);
    assert_eq!(status(cluster, town, "b"), "completed");
}

#[tokio::test]
async fn blocking_reads_on_a_cluster_wait_and_stall_nothing() {
    let cluster = Cluster::shared();
    let target = RedisTarget::Url(cluster.url());
    let keys = Keys::new("cl-block");
    let mut shared = connection::connect(&target).await.unwrap();
    assert!(shared.is_cluster());
    let mut blocking = connection::connect_blocking(&target).await.unwrap();
    assert!(blocking.is_cluster());
    let (inbox, claimed) = (keys.inbox("w"), keys.claimed("w-1"));
    let started = Instant::now();
    let read = tokio::spawn(async move {
        let moved: Option<String> = redis::cmd("BLMOVE")
            .arg(&inbox)
            .arg(&claimed)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(1.5)
            .query_async(&mut blocking)
            .await
            .unwrap();
        moved
    });
    // The shared connection answers at once meanwhile, on the same node.
    let pong: String = tokio::time::timeout(
        Duration::from_millis(500),
        redis::cmd("GET").arg(keys.tasks()).query_async(&mut shared),
    )
    .await
    .expect("the shared connection is stalled")
    .map(|v: Option<String>| v.unwrap_or_default())
    .unwrap();
    assert_eq!(pong, "");
    assert_eq!(read.await.unwrap(), None);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "BLMOVE returned after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn scan_match_sees_the_keys_of_every_node() {
    let cluster = Cluster::shared();
    let target = RedisTarget::Url(cluster.url());
    let mut conn = connection::connect(&target).await.unwrap();
    let mut want = Vec::new();
    // Keys without a hash tag spread over the nodes.
    for i in 0..30 {
        let key = format!("cl-scan:{i}");
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        want.push(key);
    }
    want.sort();
    let owners: std::collections::HashSet<usize> = want
        .iter()
        .map(|k| cluster.owner(cluster.keyslot(k)))
        .collect();
    assert_eq!(owners.len(), 3, "the keys are on every node");
    let found = conn.scan_match("cl-scan:*", 10).await.unwrap();
    let found: Vec<String> = found
        .into_iter()
        .map(|k| String::from_utf8(k).unwrap())
        .collect();
    assert_eq!(found, want);
}

#[tokio::test]
async fn a_wrong_cluster_password_is_an_auth_error_without_the_password() {
    let cluster = Cluster::shared();
    let url = cluster.url().replacen(PASSWORD, "wrong-secret", 1);
    let err = connection::connect(&RedisTarget::Url(url))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Auth { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("wrong-secret"), "{shown}");
    let url = cluster.url().replacen(&format!(":{PASSWORD}@"), "", 1);
    let err = connection::connect(&RedisTarget::Url(url))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Auth { .. }),
        "no password: {err:?}"
    );
}

#[tokio::test]
async fn a_list_of_servers_that_are_no_cluster_is_refused_clearly() {
    let (one, two) = (RedisServer::start(), RedisServer::start());
    let url = format!("{},{}", one.url(), two.url());
    let err = connection::connect(&RedisTarget::Url(url))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err:?}");
    assert!(err.to_string().contains("no cluster node"), "{err}");
}

#[test]
fn a_tls_cluster_works_with_its_ca_and_fails_clearly_without() {
    let cluster = Cluster::start_tls();
    let town = "cl-tls";
    let tt = project(town, &["a"], &cluster.url()).env("SSL_CERT_FILE", cluster.ca());
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("1 completed"), "{out}");
    let untrusted = project(town, &["a"], &cluster.url()).env_remove("SSL_CERT_FILE");
    let out = untrusted.run_with(["status"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("certificate"), "{out}");
}

#[test]
fn a_dependency_across_towns_on_different_nodes_is_honoured() {
    let cluster = Cluster::shared();
    let (a, b) = ("cl-api", "cl-web");
    let slot = |town: &str| cluster.keyslot(&Keys::new(town).tasks());
    assert_ne!(
        cluster.owner(slot(a)),
        cluster.owner(slot(b)),
        "pick town names on different nodes"
    );
    let upstream = project(a, &["schema"], &cluster.url());
    upstream.write("gate-schema", "");
    let downstream = Tt::new()
        .file(
            "tasks.toml",
            format!(
                "[town]\nname = \"{b}\"\n\n[[tasks]]\nid = \"login\"\nagent = \"w\"\n\
                 depends_on = [\"{a}:schema\"]\n{AGENT}"
            ),
        )
        .env("REDIS_URL", cluster.url());
    let _up = Running::start(&upstream, &["run"]);
    let mut down = Running::start(&downstream, &["run", "--until-done"]);
    wait_until(DEADLINE, "schema runs", || {
        status(cluster, a, "schema") == "running"
    });
    wait_until(DEADLINE, "tt status says what login waits for", || {
        let out = downstream.run_with(["status"]).stdout;
        out.contains(&format!("{a}:schema"))
    });
    assert_eq!(status(cluster, b, "login"), "pending");
    upstream.write("go-schema", "");
    assert_eq!(down.wait_exit(), 0, "{}", down.output());
    assert_eq!(lines(&downstream, "order.log"), ["login"]);
}

#[test]
fn a_cluster_node_taken_for_a_single_server_is_a_clear_error() {
    let cluster = Cluster::shared();
    let town = "cl-noinfo";
    // A user who may not run INFO (as on some managed services): tt cannot
    // tell the node is a cluster's, and its commands are redirected.
    for i in 0..3 {
        let () = redis::cmd("ACL")
            .arg(
                &[
                    "SETUSER",
                    "noinfo",
                    "on",
                    ">noinfo-pw",
                    "~*",
                    "&*",
                    "+@all",
                    "-info",
                ][..],
            )
            .query(&mut cluster.node_conn(i))
            .unwrap();
    }
    let slot = cluster.keyslot(&Keys::new(town).tasks());
    let other = (cluster.owner(slot) + 1) % 3;
    let url = cluster
        .node_url_without_password(other)
        .replace("://", "://noinfo:noinfo-pw@");
    let tt = project(town, &["a"], &url);
    let out = tt.run_with(["sync", "push"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("node of a Redis Cluster")
            && out.stderr.contains("separated by commas")
            && !out.stderr.contains("noinfo-pw"),
        "{out}"
    );
    // Listing the node twice makes it a cluster URL: the same user works.
    let tt = project(
        town,
        &["a"],
        &format!("{url},{}", url.rsplit('@').next().unwrap_or_default()),
    );
    tt.run_with(["sync", "push"]).success();
}
