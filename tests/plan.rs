//! `tt plan`, `tt schema`, `tt init` and the loader on hostile input.

use crate::support::Tt;

const TEN_MISTAKES: &str = r#"[town]
name = "bad town"

[agents.dev]
command = ["true"]
count = 0

[[tasks]]
id = "auth"
depnds_on = ["x"]

[[tasks]]
id = "login"
parent = "auht"
status = "complete"

[[tasks]]
id = "login"

[[tasks]]
id = "a b"

[[tasks]]
description = "no id"

[[tasks]]
id = "x"
depends_on = ["x"]
priority = 9

[[tasks]]
id = "y"
depends_on = ["z"]

[[tasks]]
id = "z"
depends_on = ["y"]
"#;

#[test]
fn every_mistake_gets_its_own_diagnostic_with_its_line() {
    let out = Tt::new()
        .file("tasks.toml", TEN_MISTAKES)
        .args(["plan", "--json"])
        .run()
        .code(2);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let got: Vec<(String, u64)> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["code"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("tt::plan::")
                    .to_string(),
                p["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [
        ("bad-town", 2),
        ("out-of-range", 6),
        ("unknown-key", 10),
        ("unknown-task", 14),
        ("bad-status", 15),
        ("duplicate-id", 18),
        ("bad-id", 21),
        ("missing-id", 23),
        ("self-dependency", 28),
        ("out-of-range", 29),
        ("dependency-cycle", 33),
    ]
    .iter()
    .map(|(c, l)| (c.to_string(), *l))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn diagnostics_name_file_line_and_fix() {
    Tt::new()
        .file("tasks.toml", TEN_MISTAKES)
        .arg("plan")
        .run()
        .code(2)
        .stderr_contains("has 11 problems")
        .stderr_contains("tasks.toml:10:1")
        .stderr_contains("did you mean `depends_on`?")
        .stderr_contains("did you mean `auth`?")
        .stderr_contains("did you mean `completed`?")
        .stderr_contains("dependency cycle: y → z → y");
}

#[test]
fn parent_cycles_print_the_path() {
    Tt::new()
        .file(
            "tasks.toml",
            "[[tasks]]\nid = \"a\"\nparent = \"c\"\n[[tasks]]\nid = \"b\"\nparent = \"a\"\n[[tasks]]\nid = \"c\"\nparent = \"b\"\n",
        )
        .arg("plan")
        .run()
        .code(2)
        .stderr_contains("parent cycle: a → c → b → a");
}

#[test]
fn a_task_waiting_for_its_own_group_is_a_cycle() {
    Tt::new()
        .file(
            "tasks.toml",
            "[[tasks]]\nid = \"auth\"\n[[tasks]]\nid = \"login\"\nparent = \"auth\"\ndepends_on = [\"auth\"]\n",
        )
        .arg("plan")
        .run()
        .code(2)
        .stderr_contains("dependency cycle")
        .stderr_contains("group `auth` waits for its child `login`");
}

#[test]
fn syntax_errors_point_at_the_line() {
    Tt::new()
        .file(
            "tasks.toml",
            "[[tasks]]\nid = \"a\"\ndescription = \"unterminated\n",
        )
        .arg("plan")
        .run()
        .code(2)
        .stderr_contains("invalid TOML")
        .stderr_contains("tasks.toml:3:");
}

#[test]
fn unknown_agents_are_warnings_only_when_agents_are_declared() {
    let file = "[agents.dev]\ncommand = [\"true\"]\n[[tasks]]\nid = \"a\"\nagent = \"dve\"\n";
    Tt::new()
        .file("tasks.toml", file)
        .arg("plan")
        .run()
        .success()
        .stderr_contains("unknown agent `dve`")
        .stderr_contains("did you mean `dev`?");
    Tt::new()
        .file(
            "tasks.toml",
            "[[tasks]]\nid = \"a\"\nagent = \"elsewhere\"\n",
        )
        .arg("plan")
        .run()
        .success()
        .stderr_lacks("unknown agent");
}

#[test]
fn plan_shows_groups_waves_and_order() {
    let out = Tt::new()
        .file("tasks.toml", crate::example("shop.toml"))
        .arg("plan")
        .run()
        .success();
    let s = &out.stdout;
    assert!(s.contains("6 tasks, 1 group, 2 agents"), "{s}");
    assert!(s.contains("auth  (join step on reviewer)"), "{s}");
    assert!(s.contains("├─ login") && s.contains("└─ logout"), "{s}");
    assert!(s.contains("  1  schema, docs"), "{s}");
    assert!(s.contains("  2  login, logout"), "{s}");
    assert!(s.contains("  3  auth"), "{s}");
    assert!(s.contains("  4  checkout"), "{s}");
    assert!(
        s.contains("backend   schema → docs → login → logout → checkout"),
        "{s}"
    );
}

#[test]
fn plan_json_lists_waves_and_tasks() {
    let out = Tt::new()
        .file("tasks.toml", crate::example("shop.toml"))
        .args(["plan", "--json"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["town"], "shop");
    assert_eq!(v["waves"][0], serde_json::json!(["schema", "docs"]));
    assert_eq!(v["counts"]["tasks"], 6);
    let login = v["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == "login"))
        .cloned();
    assert_eq!(
        login.map(|l| l["agent"].clone()),
        Some(serde_json::json!("backend"))
    );
}

#[test]
fn every_example_and_the_project_plan_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.push(root.join("tasks.toml"));
    assert!(files.len() >= 4);
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let tt = Tt::new().file("tasks.toml", &text);
        // `workspace = "worktree"` plans need a git repository around them.
        let init = crate::support::command("git")
            .arg("-C")
            .arg(tt.dir())
            .args(["init", "-q"])
            .status()
            .expect("git must be installed to run this test");
        assert!(init.success());
        tt.arg("plan").run().success();
    }
}

#[test]
fn missing_file_says_how_to_start() {
    Tt::new()
        .arg("plan")
        .run()
        .code(2)
        .stderr_contains("cannot read `tasks.toml`")
        .stderr_contains("tt init");
}

#[test]
fn init_writes_a_valid_plan_and_ignores_state() {
    let tt = Tt::new().file(".gitignore", "target/\n");
    tt.run_with(["init"]).success();
    let dir = tt.dir();
    let gitignore = std::fs::read_to_string(dir.join(".gitignore")).expect("gitignore");
    assert_eq!(gitignore, "target/\n.tt/\n");
    let plan = std::fs::read_to_string(dir.join("tasks.toml")).expect("tasks.toml");
    assert!(plan.starts_with("#:schema ./schemas/tasks.schema.json"));
    assert!(dir.join("schemas/tasks.schema.json").exists());
    tt.run_with(["plan"]).success();
    tt.run_with(["init"])
        .code(2)
        .stderr_contains("already exists");
}

#[test]
fn committed_schema_is_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed =
        std::fs::read_to_string(root.join("schemas/tasks.schema.json")).unwrap_or_default();
    assert!(
        committed == tinytown::cli::schema_json(),
        "schemas/tasks.schema.json is stale: run `cargo run -- schema > schemas/tasks.schema.json`"
    );
    Tt::new()
        .arg("schema")
        .run()
        .success()
        .stdout_contains("\"depends_on\"");
}

/// Validates TOML text against the committed JSON schema.
fn schema_check(text: &str) -> Result<(), String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("schemas/tasks.schema.json")).expect("schema"),
    )
    .expect("schema is JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("tasks.schema.json", schema)
        .expect("add schema");
    let id = compiler
        .compile("tasks.schema.json", &mut schemas)
        .expect("schema compiles");
    let doc: serde_json::Value = toml::from_str(text).map_err(|e| e.to_string())?;
    schemas.validate(&doc, id).map_err(|e| format!("{e:#}"))
}

#[test]
fn every_example_validates_against_the_json_schema() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.push(root.join("tasks.toml"));
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        if let Err(e) = schema_check(&text) {
            panic!("{} does not match the schema: {e}", f.display());
        }
    }
    // The schema does reject what the loader rejects.
    assert!(schema_check("[[tasks]]\nid = \"a\"\ndepnds_on = []\n").is_err());
    assert!(schema_check("[[tasks]]\nid = \"a\"\npriority = 9\n").is_err());
    assert!(schema_check("[[tasks]]\nid = \"a b\"\n").is_err());
}

#[test]
fn completions_cover_every_command() {
    use clap::CommandFactory;
    let out = Tt::new().args(["completions", "bash"]).run().success();
    // Every command and subcommand clap knows, as the bash script's
    // `parent,name)` case that completes it.
    let mut missing = Vec::new();
    let mut stack = vec![("tt".to_string(), tinytown::cli::Cli::command())];
    let mut seen = 0;
    while let Some((parent, cmd)) = stack.pop() {
        for sub in cmd.get_subcommands() {
            let name = sub.get_name();
            if !out.stdout.contains(&format!("{parent},{name})")) {
                missing.push(format!("{parent} {name}"));
            }
            seen += 1;
            stack.push((format!("{parent}__subcmd__{name}"), sub.clone()));
        }
    }
    assert!(seen > 20, "only {seen} commands found");
    assert!(missing.is_empty(), "not completed: {missing:?}");
    Tt::new().args(["completions", "nosh"]).run().code(2);
}

#[test]
fn an_unknown_placeholder_is_an_error_with_a_did_you_mean_and_braces_escape() {
    let plan = r#"[agents.dev]
command = ["sh", "-c", "echo {descripton} ${HOME}", "{{id}}", "{ print $1 }"]

[[tasks]]
id = "build"
agent = "dev"
"#;
    let out = Tt::new()
        .file("tasks.toml", plan)
        .args(["plan"])
        .run()
        .code(2);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("unknown placeholder `{descripton}`"),
        "{text}"
    );
    assert!(text.contains("did you mean `{description}`?"), "{text}");
    assert!(text.contains("unknown placeholder `{HOME}`"), "{text}");
    assert!(text.contains("tasks.toml:2:"), "names the line: {text}");
    // `{{id}}` and a brace opening no name are fine: nothing else reported.
    assert_eq!(text.matches("unknown placeholder").count(), 2, "{text}");

    let fixed = plan.replace("{descripton} ${HOME}", "{description} ${{HOME}}");
    Tt::new()
        .file("tasks.toml", &fixed)
        .args(["plan"])
        .run()
        .success();
}

#[test]
fn a_command_flag_with_an_unknown_placeholder_is_refused_before_starting() {
    let out = Tt::new()
        .args(["agent", "dev", "--once", "--command", "echo", "{nope}"])
        .run()
        .code(2);
    assert!(
        out.stderr.contains("unknown placeholder `{nope}`"),
        "{}",
        out.stderr
    );
}

/// Checks `text` is Mermaid of the subset `tt plan --format mermaid`
/// writes: a `flowchart`, nodes `tN["label"]`, balanced `subgraph … end`,
/// edges between defined ids, and `classDef`/`class` lines. Returns the
/// labels by id and the edges.
fn mermaid_subset(
    text: &str,
) -> (
    std::collections::HashMap<String, String>,
    Vec<(String, String)>,
) {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("flowchart TD"), "{text}");
    let (mut labels, mut edges, mut depth) = (std::collections::HashMap::new(), Vec::new(), 0i32);
    let node = |s: &str| -> Option<(String, String)> {
        let (id, rest) = s.split_once('[')?;
        let label = rest.strip_prefix('"')?.strip_suffix("\"]")?;
        let ok_id = id.trim_end().len() > 1
            && id.starts_with('t')
            && id.trim_end()[1..].chars().all(|c| c.is_ascii_digit());
        (ok_id && !label.contains('"')).then(|| (id.trim_end().to_string(), label.to_string()))
    };
    for line in lines {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("subgraph ") {
            let (id, label) = node(rest).unwrap_or_else(|| panic!("bad subgraph: {line}"));
            labels.insert(id, label);
            depth += 1;
        } else if l == "end" {
            depth -= 1;
            assert!(depth >= 0, "unbalanced end: {text}");
        } else if let Some((a, b)) = l.split_once(" --> ") {
            edges.push((a.to_string(), b.to_string()));
        } else if l.starts_with("classDef ") || l.starts_with("class ") {
            assert_eq!(l.split_whitespace().count(), 3, "{line}");
        } else {
            let (id, label) = node(l).unwrap_or_else(|| panic!("not in the subset: {line}"));
            labels.insert(id, label);
        }
    }
    assert_eq!(depth, 0, "unclosed subgraph: {text}");
    for (a, b) in &edges {
        assert!(
            labels.contains_key(a) && labels.contains_key(b),
            "edge to nowhere: {a} --> {b}"
        );
    }
    (labels, edges)
}

#[test]
fn plan_as_mermaid_has_groups_as_subgraphs_dependencies_as_edges_and_statuses() {
    let redis = crate::support::RedisServer::start();
    let plan = crate::example("shop.toml");
    let tt = Tt::new().file("tasks.toml", &plan).redis(&redis);
    let out = tt
        .run_with(["plan", "--format", "mermaid"])
        .success()
        .stdout;
    let (labels, edges) = mermaid_subset(&out);
    let by_label = |l: &str| {
        labels
            .iter()
            .find(|(_, v)| v.as_str() == l)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| panic!("no node {l}: {out}"))
    };
    assert!(
        out.contains(&format!("subgraph {} [\"auth\"]", by_label("auth"))),
        "{out}"
    );
    assert!(
        edges.contains(&(by_label("schema"), by_label("login"))),
        "{out}"
    );
    assert!(
        edges.contains(&(by_label("auth"), by_label("checkout"))),
        "{out}"
    );
    // With the town in Redis, each node says its status.
    tt.run_with(["sync", "push"]).success();
    let out = tt
        .run_with(["plan", "--format", "mermaid"])
        .success()
        .stdout;
    let (labels, _) = mermaid_subset(&out);
    assert!(labels.values().any(|l| l == "schema · pending"), "{out}");
    assert!(out.contains("classDef pending"), "{out}");
}

#[test]
fn plan_as_dot_is_read_by_graphviz() {
    let plan = crate::example("shop.toml");
    let tt = Tt::new().file("tasks.toml", &plan);
    let out = tt.run_with(["plan", "--format", "dot"]).success().stdout;
    assert!(out.contains("subgraph cluster_"), "{out}");
    tt.write("plan.dot", &out);
    let svg = crate::support::command("dot")
        .arg("-Tsvg")
        .arg(tt.dir().join("plan.dot"))
        .output()
        .unwrap_or_else(|e| {
            panic!("`dot` (Graphviz) is needed for this test: apt-get install graphviz ({e})")
        });
    assert!(
        svg.status.success(),
        "dot rejected it: {}\n{out}",
        String::from_utf8_lossy(&svg.stderr)
    );
    let svg = String::from_utf8_lossy(&svg.stdout);
    for id in ["schema", "login", "auth", "checkout"] {
        assert!(svg.contains(&format!(">{id}<")), "{id} drawn: {svg}");
    }
}
