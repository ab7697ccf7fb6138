//! `[town]` of a file without loading it: read-only commands (`tt status`,
//! `tt task`, …) need only the town's name and Redis, and parsing a
//! 100k-task file takes about half a second; therefore only `[town]` is
//! read (README "Performance").
//!
//! The usual file has `[town]` near the top, before any multi-line string:
//! then the text up to the end of that table is a TOML document of its own
//! and is all that is parsed. Anything less plain — a `town` key written
//! another way, a header that only looks like one, a multi-line string
//! before or inside the table, a prefix that does not parse — falls back to
//! parsing the whole file, so the answer is always the full parser's.

use toml::de::{DeTable, DeValue};

/// `[town] name` and `redis_url` from a file that may be invalid.
pub fn peek_town(text: &str) -> (Option<String>, Option<String>) {
    let parsed = match town_prefix(text) {
        Some(Prefix::NoTown) => return (None, None),
        Some(Prefix::Until(end)) => {
            let (root, errors) = DeTable::parse_recoverable(&text[..end]);
            if errors.is_empty() {
                Some(town_fields(root.get_ref()))
            } else {
                None
            }
        }
        None => None,
    };
    parsed.unwrap_or_else(|| {
        let (root, _) = DeTable::parse_recoverable(text);
        town_fields(root.get_ref())
    })
}

fn town_fields(root: &DeTable<'_>) -> (Option<String>, Option<String>) {
    let Some(town) = root.get("town") else {
        return (None, None);
    };
    let DeValue::Table(t) = town.get_ref() else {
        return (None, None);
    };
    let string = |k: &str| match t.get(k).map(|v| v.get_ref()) {
        Some(DeValue::String(s)) => Some(s.to_string()),
        _ => None,
    };
    (string("name"), string("redis_url"))
}

/// What a line scan can tell for sure.
#[derive(Debug, PartialEq, Eq)]
enum Prefix {
    /// Nothing in the file can define `town`.
    NoTown,
    /// `[town]` is a real header, and `text[..end]` ends with its table.
    Until(usize),
}

/// `None` when only the full parser can tell. Every line is looked at (a
/// plain scan of an 11 MB file takes milliseconds): a second `town`
/// anywhere, even one that may sit inside a string, sends the question to
/// the full parser.
fn town_prefix(text: &str) -> Option<Prefix> {
    // The parser skips a byte-order mark; a line scan would not see
    // `[town]` behind one.
    if text.starts_with('\u{feff}') {
        return None;
    }
    // A multi-line string opened before the end of `[town]`'s table.
    let mut multiline = false;
    let mut section: Option<usize> = None;
    let mut end: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if section.is_some() && end.is_none() {
                end = Some(start);
            }
            match town_header(trimmed) {
                TownHeader::Not => {}
                TownHeader::Plain if section.is_none() && !multiline => section = Some(start),
                _ => return None,
            }
        } else if names_town(trimmed) {
            return None;
        }
        if end.is_none() && (line.contains("\"\"\"") || line.contains("'''")) {
            multiline = true;
        }
    }
    match section {
        Some(_) if multiline => None,
        Some(_) => Some(Prefix::Until(end.unwrap_or(text.len()))),
        None => Some(Prefix::NoTown),
    }
}

enum TownHeader {
    Not,
    /// `[town]`, spaces and a comment allowed.
    Plain,
    /// Any other header that starts with `town` (`[town.x]`, `["town"]`,
    /// `[[town]]`): left to the full parser.
    Other,
}

fn town_header(line: &str) -> TownHeader {
    let inner = line.trim_start_matches('[').trim_start();
    if inner.starts_with('"') && inner.contains('\\') {
        // An escape in a quoted key may spell `town`.
        return TownHeader::Other;
    }
    let key = inner.trim_start_matches(['"', '\'']);
    let Some(rest) = key.strip_prefix("town") else {
        return TownHeader::Not;
    };
    if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        // `[towns]`, `[town_hall]`: another table.
        return TownHeader::Not;
    }
    let plain = line.starts_with("[town")
        && !line.starts_with("[[")
        && rest
            .trim_start()
            .strip_prefix(']')
            .is_some_and(|after| after.trim().is_empty() || after.trim_start().starts_with('#'));
    if plain {
        TownHeader::Plain
    } else {
        TownHeader::Other
    }
}

/// Whether a line could be a key `town` (`town = …`, `town.name = …`,
/// quoted), anywhere: the scan does not know which lines are inside
/// strings, so it never guesses that one is not.
fn names_town(line: &str) -> bool {
    if line.starts_with('"') && line.contains('\\') {
        // An escape in a quoted key may spell `town`.
        return true;
    }
    let key = line.trim_start_matches(['"', '\'']);
    key.strip_prefix("town").is_some_and(|rest| {
        rest.trim_start_matches(['"', '\''])
            .trim_start()
            .starts_with(['=', '.'])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &str) -> (Option<String>, Option<String>) {
        let (root, _) = DeTable::parse_recoverable(text);
        town_fields(root.get_ref())
    }

    const TASKS: &str = "[[tasks]]\nid = \"a\"\n";

    #[test]
    fn a_plain_town_table_is_read_from_the_prefix() {
        let text = format!(
            "[meta]\ndefault_agent = \"dev\"\n\n[town]  # here\nname = \"shop\"\nredis_url = \"redis://x\"\n\n{TASKS}"
        );
        let end = text.find("[[tasks]]").unwrap();
        assert_eq!(town_prefix(&text), Some(Prefix::Until(end)));
        assert_eq!(
            peek_town(&text),
            (Some("shop".into()), Some("redis://x".into()))
        );
    }

    #[test]
    fn a_file_without_town_needs_no_parse() {
        let text = format!("[meta]\ndescription = \"a town_hall\"\n{TASKS}");
        assert_eq!(town_prefix(&text), Some(Prefix::NoTown));
        assert_eq!(peek_town(&text), (None, None));
    }

    #[test]
    fn anything_less_plain_is_left_to_the_full_parser() {
        for text in [
            // Dotted and inline keys.
            "town.name = \"a\"\n[[tasks]]\nid = \"x\"\n".to_string(),
            "town = { name = \"a\" }\n".to_string(),
            "\"town\".name = \"a\"\n".to_string(),
            // Other headers of the town table.
            "[town.extra]\nx = 1\n".to_string(),
            "[ \"town\" ]\nname = \"a\"\n".to_string(),
            // A multi-line string before the header: it may be inside it.
            format!(
                "[meta]\ndescription = \"\"\"\n[town]\nname = \"fake\"\n\"\"\"\n[town]\nname = \"real\"\n{TASKS}"
            ),
            // A byte-order mark, and escapes that spell `town`.
            "\u{feff}[town]\nname = \"a\"\n".to_string(),
            "[\"\\u0074own\"]\nname = \"a\"\n".to_string(),
            "\"\\u0074own\".name = \"a\"\n".to_string(),
            // A multi-line string inside the table.
            "[town]\nname = \"a\"\nnote = '''\n[x]\n'''\n".to_string(),
        ] {
            assert_eq!(town_prefix(&text), None, "{text}");
            assert_eq!(peek_town(&text), full(&text), "{text}");
        }
    }

    #[test]
    fn the_answer_is_always_the_full_parsers() {
        for text in [
            "[town]\nname = \"a\"\n".to_string(),
            "[town]\nname = \"a\"\nlist = [\n  [1, 2],\n]\n".to_string(),
            format!("[towns]\nname = \"no\"\n{TASKS}"),
            format!("[town]\nname = 5\n{TASKS}"),
            "[town\nname = \"broken\"\n".to_string(),
            String::new(),
        ] {
            assert_eq!(peek_town(&text), full(&text), "{text}");
        }
    }

    proptest::proptest! {
        /// Files made of pieces that put `town` in every place the scan
        /// must notice: the quick answer never differs from the full one.
        #[test]
        fn any_arrangement_reads_as_the_full_parser_reads_it(
            pieces in proptest::collection::vec(0usize..PIECES.len(), 0..8)
        ) {
            let text: String = pieces.iter().map(|&i| PIECES[i]).collect();
            proptest::prop_assert_eq!(peek_town(&text), full(&text));
        }
    }

    const PIECES: &[&str] = &[
        "[town]\nname = \"a\"\n",
        "[town]\nredis_url = \"redis://b\"\n",
        "[meta]\ndescription = \"\"\"\n",
        "\"\"\"\n",
        "[town.more]\nx = 1\n",
        "town.name = \"c\"\n",
        "[[tasks]]\nid = \"t\"\n",
        "note = '''\n[town]\nname = \"d\"\n'''\n",
        "[agents.dev]\ncli = \"claude\"\n",
        "# [town]\n",
        "name = \"e\"\n",
    ];
}
