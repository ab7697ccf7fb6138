//! `tt history`: the town's events, filtered and followed.

use super::{json, shop};

#[test]
fn history_prints_events_in_order_and_filters_by_task() {
    let town = shop();
    town.tt(["cancel", "login"]).success();
    town.tt(["send", "backend", "hi there"]).success();
    let out = town.tt(["history"]).success().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "synced, cancelled, message:\n{out}");
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{out}"))
    };
    // The sync that added the five tasks is one event.
    assert!(pos("synced      -") < pos("cancelled   login"));
    assert!(lines[0].contains("added=5"), "{out}");
    assert!(
        lines[1].contains("reason=\"cancelled from the command line\""),
        "{out}"
    );
    assert!(lines[2].contains("from ann: hi there"), "{out}");
    assert!(
        lines[0].starts_with("20") && lines[0].contains('T'),
        "{out}"
    );

    let login = town.tt(["history", "--task", "login"]).success().stdout;
    assert_eq!(login.lines().count(), 1, "{login}");
    assert!(login.lines().all(|l| l.contains(" login ")), "{login}");

    let last = town.tt(["history", "--limit", "2"]).success().stdout;
    assert_eq!(last.lines().count(), 2);
    assert!(
        last.lines().next().is_some_and(|l| l.contains("cancelled")),
        "{last}"
    );

    let json_lines = town.tt(["history", "--json"]).success().stdout;
    let first = json(json_lines.lines().next().unwrap());
    assert_eq!(
        (&first["kind"], &first["added"]),
        (&"synced".into(), &"5".into()),
        "{first}"
    );
    town.tt(["history", "--task", "lgin"])
        .code(2)
        .stderr_contains("did you mean `login`?");
}

#[test]
fn history_follow_prints_new_events_as_they_happen() {
    let town = shop();
    let follow = town.start(&["history", "--follow"]);
    follow.wait_output_until("the past events", |o| o.contains("synced      -"));
    town.tt(["send", "backend", "hello follower"]).success();
    follow.wait_output_until("the new message", |o| {
        o.contains("from ann: hello follower")
    });
    // Only once: the past is not printed again.
    assert_eq!(follow.output().matches("synced      -").count(), 1);
}
