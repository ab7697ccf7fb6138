//! Town names: a project directory whose name is not a valid town name is
//! slugified into one; a name given by `--town`, `TT_TOWN` or `[town] name`
//! that could reach another town's keys (`:`, `{`, `}`, `*`, whitespace) is
//! an error that says where it came from and what to use.

use crate::support::{RedisServer, Tt, key};

const TASK: &str = "[[tasks]]\nid = \"a\"\n";

#[test]
fn a_directory_with_an_unsafe_name_gives_a_slugified_town() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("my shop:{x}*/tasks.toml", TASK)
        .current_dir("my shop:{x}*")
        .redis(&redis);
    tt.run_with(["sync", "push"]).success();
    assert!(
        redis.exists(&key("my-shop--x--", "task:a")),
        "{:?}",
        redis.keys("*")
    );
    tt.run_with(["tasks"]).success().stdout_contains("a");
}

#[test]
fn unsafe_town_names_from_the_command_line_are_refused() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", TASK).redis(&redis);
    for (name, why) in [
        ("shop:x", "contains `:`"),
        ("{shop}", "contains `{` and `}`"),
        ("sh*p", "contains `*`"),
        ("my shop", "contains a space"),
    ] {
        let out = tt.run_with(["--town", name, "sync", "push"]).code(2);
        assert!(
            out.stderr.contains(&format!(
                "town name `{name}` given by `--town` is not valid: it {why}"
            )) && out.stderr.contains("A-Z a-z 0-9 . _ -"),
            "{out}"
        );
    }
    let tt = tt.env("TT_TOWN", "a\tb");
    let out = tt.run_with(["status"]).code(2);
    assert!(out.stderr.contains("given by `TT_TOWN`"), "{out}");
    assert!(out.stderr.contains("contains a tab"), "{out}");
    assert!(redis.keys("*").is_empty(), "{:?}", redis.keys("*"));
}

#[test]
fn an_unsafe_town_name_in_the_file_is_refused_by_every_command() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("tasks.toml", format!("[town]\nname = \"shop:x\"\n{TASK}"))
        .redis(&redis);
    // Commands that load the plan point at the value…
    let out = tt.run_with(["sync", "push"]).code(2);
    assert!(
        out.stderr.contains("tt::plan::bad-town")
            && out
                .stderr
                .contains("town name `shop:x` is not valid: it contains `:`")
            && out.stderr.contains("tasks.toml:2:8"),
        "{out}"
    );
    // …and those that only peek at `[town]` refuse it too, instead of
    // falling back to the directory's town.
    let out = tt.run_with(["status"]).code(2);
    assert!(
        out.stderr
            .contains("town name `shop:x` in `[town] name` of `tasks.toml` is not valid"),
        "{out}"
    );
    assert!(out.stderr.contains("--town NAME"), "{out}");
    assert!(redis.keys("*").is_empty(), "{:?}", redis.keys("*"));
    // `--town` overrides the file's name.
    tt.run_with(["--town", "shop", "status"]).success();
}
