//! `tt run` reloading a save that edits one task (`src/reload.rs` applies
//! it without a full load): Redis ends up exactly where a full reload
//! would put it, and everything else — changed links, broken edits, a
//! town changed from elsewhere — still goes through the full reload.

use std::time::Duration;

use crate::RedisExt;
use crate::support::{FileReads, RedisServer, Running, Tt, key, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);
const TASKS: usize = 30;

/// Groups of five: a group, its child, a task depending on the child, and
/// two free tasks.
fn plan() -> String {
    let mut out = String::from("[town]\nname = \"re\"\n\n[meta]\ndefault_agent = \"w\"\n\n");
    for i in 0..TASKS {
        out.push_str(&format!(
            "[[tasks]]\nid = \"t{i}\"\ndescription = \"Task {i}\"\n"
        ));
        match i % 5 {
            1 => out.push_str(&format!("parent = \"t{}\"\n", i - 1)),
            2 => out.push_str(&format!("depends_on = [\"t{}\"]\n", i - 1)),
            _ => {}
        }
        out.push('\n');
    }
    out
}

fn field(redis: &RedisServer, id: &str, name: &str) -> String {
    redis.task_field("re", id, name)
}

/// Saves the way editors do: a temp file renamed over.
fn save(tt: &Tt, text: &str) {
    let tmp = tt.dir().join(".tasks.toml.swp");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, tt.dir().join("tasks.toml")).expect("rename");
}

fn start(redis: &RedisServer) -> (Tt, Running) {
    let tt = Tt::new().file("tasks.toml", plan()).redis(redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    wait_until(DEADLINE, "the plan is in redis", || {
        field(redis, &format!("t{}", TASKS - 1), "description") == format!("Task {}", TASKS - 1)
    });
    (tt, run)
}

/// A full `tt sync push` of the file finds nothing to do: what the runner
/// wrote is what a full load writes, plan fingerprint included.
fn assert_full_push_is_a_no_op(tt: &Tt, redis: &RedisServer) {
    let before = redis.changes();
    let out = tt.run_with(["sync", "push"]).success().stdout;
    assert!(
        out.contains(&format!(
            "+0 added ~0 changed -0 removed ={TASKS} unchanged"
        )),
        "{out}"
    );
    assert_eq!(redis.changes(), before, "a no-op push wrote something");
}

#[test]
fn edited_description_priority_and_status_reach_redis() {
    let redis = RedisServer::start();
    let (tt, run) = start(&redis);

    let text = plan().replace("\"Task 10\"", "\"Task 10, now with \\\"quotes\\\" and é\"");
    save(&tt, &text);
    wait_until(DEADLINE, "the new description", || {
        field(&redis, "t10", "description") == "Task 10, now with \"quotes\" and é"
    });
    run.wait_output("reloaded tasks.toml: +0 ~1 -0");

    // Written in place this time.
    let text = text.replace(
        "description = \"Task 13\"\n",
        "description = \"Task 13\"\npriority = 0\n",
    );
    tt.write("tasks.toml", &text);
    wait_until(DEADLINE, "the new priority", || {
        field(&redis, "t13", "priority") == "0"
    });

    let text = text.replace(
        "description = \"Task 14\"\n",
        "description = \"Task 14\"\nstatus = \"completed\"\n",
    );
    save(&tt, &text);
    wait_until(DEADLINE, "the file's status applied", || {
        field(&redis, "t14", "status") == "completed"
    });
    assert_eq!(field(&redis, "t14", "file_status"), "completed");

    assert_full_push_is_a_no_op(&tt, &redis);
    run.stop();
}

#[test]
fn changed_ids_parents_and_dependencies_reload_in_full() {
    let redis = RedisServer::start();
    let (tt, run) = start(&redis);

    // A new id: the old task is removed (cancelled), the new one added.
    let text = plan().replace("id = \"t4\"", "id = \"t4b\"");
    save(&tt, &text);
    run.wait_output("reloaded tasks.toml: +1 ~0 -1");
    assert_eq!(field(&redis, "t4", "status"), "cancelled");
    assert_eq!(field(&redis, "t4b", "description"), "Task 4");

    // t9 joins group t5; t8 no longer waits for t7.
    let text = text.replace(
        "description = \"Task 9\"\n",
        "description = \"Task 9\"\nparent = \"t5\"\n",
    );
    save(&tt, &text);
    wait_until(DEADLINE, "t9's new parent", || {
        field(&redis, "t9", "parent") == "t5"
    });
    // t5 became a group: with no agent of its own it has none in redis.
    assert_eq!(field(&redis, "t5", "agent"), "");
    let text = text.replace("depends_on = [\"t6\"]", "depends_on = [\"t4b\", \"t0\"]");
    save(&tt, &text);
    wait_until(DEADLINE, "t7's new dependencies", || {
        field(&redis, "t7", "depends_on") == r#"["t4b","t0"]"#
    });

    assert_full_push_is_a_no_op(&tt, &redis);
    run.stop();
}

#[test]
fn a_broken_edit_is_reported_at_its_line_and_the_last_good_plan_keeps_running() {
    let redis = RedisServer::start();
    let (tt, run) = start(&redis);

    let text = plan().replace(
        "description = \"Task 20\"",
        "description = \"Task 20\"\npriority = 9",
    );
    let line = text
        .lines()
        .position(|l| l == "priority = 9")
        .map_or(0, |i| i + 1);
    save(&tt, &text);
    run.wait_output(&format!("tasks.toml:{line}:12"));
    assert!(run.output().contains("the last good plan keeps running"));
    assert_eq!(field(&redis, "t20", "priority"), "2");

    // A cycle through one entry is found by the full load too.
    let cycle = plan().replace(
        "description = \"Task 5\"\n",
        "description = \"Task 5\"\ndepends_on = [\"t6\"]\n",
    );
    save(&tt, &cycle);
    run.wait_output("cycle");
    assert_eq!(field(&redis, "t5", "depends_on"), "[]");

    // The next good edit applies, against the last good plan.
    let fixed = plan().replace("\"Task 20\"", "\"Task 20, fixed\"");
    save(&tt, &fixed);
    wait_until(DEADLINE, "the fixed description", || {
        field(&redis, "t20", "description") == "Task 20, fixed"
    });
    assert_full_push_is_a_no_op(&tt, &redis);
    run.stop();
}

#[test]
fn a_town_synced_from_elsewhere_meanwhile_gets_a_full_reload() {
    let redis = RedisServer::start();
    let (tt, run) = start(&redis);

    // As if another `tt sync push` of another version of the file ran:
    // t1 differs, and so does the plan fingerprint.
    redis.cmd(&[
        "HSET",
        &key("re", "task:t1"),
        "description",
        "from elsewhere",
    ]);
    redis.cmd(&["HSET", &key("re", "fingerprints"), "t1", "0000000000000000"]);
    redis.cmd(&["HSET", &key("re", "meta"), "plan_fp", "0000000000000000"]);

    save(&tt, &plan().replace("\"Task 3\"", "\"Task 3, edited\""));
    wait_until(DEADLINE, "the edit", || {
        field(&redis, "t3", "description") == "Task 3, edited"
    });
    // Only a full reload diffs t1 against the file and puts it back.
    assert_eq!(field(&redis, "t1", "description"), "Task 1");
    run.wait_output("reloaded tasks.toml: +0 ~2 -0");
    run.stop();
}

#[test]
fn a_file_read_between_truncation_and_write_is_not_an_empty_plan() {
    use std::io::Write;
    let redis = RedisServer::start();
    let (tt, run) = start(&redis);
    // Written in place, slowly: the truncation and the close of the first
    // open both wake the runner while the file is empty; the data follows
    // only once the runner has read the empty file.
    let path = tt.dir().join("tasks.toml");
    let reads = FileReads::watch(&path);
    let mut file = std::fs::File::create(&path).expect("truncate");
    drop(std::fs::OpenOptions::new().append(true).open(&path));
    reads.wait(DEADLINE, "the runner reads the empty file");
    let text = plan().replace("\"Task 7\"", "\"Task 7, edited\"");
    file.write_all(text.as_bytes()).expect("write");
    drop(file);
    wait_until(DEADLINE, "the edit", || {
        field(&redis, "t7", "description") == "Task 7, edited"
    });
    assert_ne!(
        field(&redis, "t0", "status"),
        "cancelled",
        "{}",
        run.output()
    );
    assert!(!run.output().contains("-30"), "{}", run.output());
    run.stop();
}
