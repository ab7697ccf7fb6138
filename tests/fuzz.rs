//! The loader on hostile input: arbitrary bytes, mutated valid files, huge
//! and deep plans. Each must load or produce diagnostics — never panic.

use std::path::Path;

use proptest::prelude::*;

fn load(text: String) -> Result<tinytown::plan::Plan, tinytown::plan::LoadError> {
    tinytown::plan::load(Path::new("tasks.toml"), text)
}

/// Either a plan, or at least one error with a position inside the text.
fn check(text: String) {
    let len = text.len();
    match load(text) {
        Ok(_) => {}
        Err(e) => {
            let problems = e.problems();
            assert!(
                problems.iter().any(|p| p.is_error()),
                "invalid without an error"
            );
            for (i, p) in problems.iter().enumerate() {
                for (span, _) in &p.labels {
                    assert!(
                        span.start <= span.end && span.end <= len,
                        "span {span:?} outside the text"
                    );
                }
                let _ = p.line_col();
                // What `tt` prints (the first few): miette's graphical
                // handler must be able to draw whatever a problem hands it.
                if i >= tinytown::plan::SHOWN {
                    continue;
                }
                let mut shown = String::new();
                miette::GraphicalReportHandler::new()
                    .render_report(&mut shown, p)
                    .expect("render");
            }
        }
    }
}

fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<String> = std::fs::read_dir(root.join("examples"))
        .expect("examples")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    out.push(std::fs::read_to_string(root.join("tasks.toml")).expect("tasks.toml"));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn toml_ish_text_never_panics(text in r#"(\[\[tasks\]\]\n|\[agents\.[a-z]{1,3}\]\n|\[town\]\n|[a-z_]{1,10} = ("[a-z ]{0,6}"|[0-9-]{1,4}|\[("[a-z]{1,3}",? ?){0,3}\]|true|\{\})\n|#[^\n]{0,5}\n){0,40}"#) {
        check(text);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        seed in 0usize..16,
        edits in proptest::collection::vec((any::<usize>(), 0u8..3, any::<char>()), 1..12),
    ) {
        let seeds = seeds();
        let mut text: Vec<char> = seeds[seed % seeds.len()].chars().collect();
        for (at, op, c) in edits {
            if text.is_empty() {
                text.push(c);
                continue;
            }
            let i = at % text.len();
            match op {
                0 => text.insert(i, c),
                1 => { text.remove(i); }
                _ => text[i] = c,
            }
        }
        check(text.into_iter().collect());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A run of 70k characters (past the column miette can draw) put
    /// anywhere in a valid file, diagnostics drawn included.
    #[test]
    fn a_line_past_column_65535_never_panics(
        seed in 0usize..16,
        at in any::<usize>(),
        fill in prop::sample::select(vec![' ', 'x', '[', '"', '\u{1b}']),
    ) {
        let seeds = seeds();
        let text = &seeds[seed % seeds.len()];
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let long: String = std::iter::repeat_n(fill, 70_000).collect();
        check(format!("{}{long}{}", &text[..at], &text[at..]));
    }
}

#[test]
fn a_hundred_thousand_tasks_load() {
    let mut text = String::from("[meta]\ndefault_agent = \"dev\"\n");
    for i in 0..100_000 {
        text.push_str(&format!(
            "[[tasks]]\nid = \"t{i}\"\ndescription = \"task {i}\"\nparent = \"g{}\"\ndepends_on = [\"{}\"]\n",
            i / 100,
            if i > 0 { format!("t{}", i - 1) } else { "g0x".into() }
        ));
    }
    for g in 0..1000 {
        text.push_str(&format!("[[tasks]]\nid = \"g{g}\"\n"));
    }
    text.push_str("[[tasks]]\nid = \"g0x\"\n");
    let plan = load(text).expect("valid");
    assert_eq!(plan.tasks.len(), 101_001);
}

#[test]
fn a_ten_thousand_level_parent_chain_loads_and_a_cycle_in_it_is_found() {
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!("[[tasks]]\nid = \"t{i}\"\n"));
        if i > 0 {
            text.push_str(&format!("parent = \"t{}\"\n", i - 1));
        }
    }
    let plan = load(text.clone()).expect("a deep chain is valid");
    let graph = tinytown::graph::Graph::from_plan(&plan);
    // Only the innermost task runs: the rest are groups without agents.
    assert_eq!(graph.waves(), vec![vec![9_999]]);
    // Close the chain into a loop.
    let looped = text.replacen("id = \"t0\"\n", "id = \"t0\"\nparent = \"t9999\"\n", 1);
    let err = load(looped).expect_err("a cycle");
    assert!(
        err.problems()
            .iter()
            .any(|p| p.message.starts_with("parent cycle: t0 → t9999 → ")
                && p.message.contains("more) →"))
    );
}
