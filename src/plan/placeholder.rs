//! The placeholder syntax of argv templates (`command = [...]`, presets):
//! `{name}` is a placeholder, `{{` and `}}` are a literal brace.
//!
//! It lives in `plan` so the loader can reject an unknown `{name}` at load
//! time (with a did-you-mean) and the agent ([`crate::agent::command`])
//! substitutes the same grammar; one reader of the syntax means the two
//! never disagree on what a template says.
//!
//! A `{` that does not open a name (`{ print $1 }`, `a{b`, a lone `{`) is
//! text: awk and shell snippets keep working. `{name}` with a name of
//! letters, digits and `_` is always a placeholder, so a typo such as
//! `{descripton}` or a shell `${HOME}` is reported instead of passed on
//! as text nobody meant.

/// Every placeholder, in the order the docs list them.
pub const NAMES: &[&str] = &["id", "description", "tags", "parent", "attempt", "prompt"];

/// A piece of one template argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text as is (escapes already resolved).
    Text(&'a str),
    /// `{name}`, known or not.
    Name(&'a str),
}

/// Splits `arg` into text and placeholders, left to right.
pub fn pieces(arg: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let bytes = arg.as_bytes();
    let (mut i, mut text_start) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'}' if bytes.get(i + 1) == Some(&bytes[i]) => {
                // An escaped brace: the text so far, then one brace.
                push_text(&mut out, &arg[text_start..i + 1]);
                i += 2;
                text_start = i;
            }
            b'{' => match name_at(&arg[i + 1..]) {
                Some(name) => {
                    push_text(&mut out, &arg[text_start..i]);
                    out.push(Piece::Name(name));
                    i += name.len() + 2;
                    text_start = i;
                }
                None => i += 1,
            },
            _ => i += 1,
        }
    }
    push_text(&mut out, &arg[text_start..]);
    out
}

/// The names in `arg` that are not placeholders.
pub fn unknown(arg: &str) -> Vec<&str> {
    pieces(arg)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Name(n) if !NAMES.contains(&n) => Some(n),
            _ => None,
        })
        .collect()
}

/// How to fix `{name}`, an unknown placeholder.
pub fn hint(name: &str) -> String {
    let literal = format!("for a literal brace write `{{{{{name}}}}}`");
    match super::did_you_mean(name, NAMES.iter().copied()) {
        Some(near) => format!("did you mean `{{{near}}}`? ({literal})"),
        None => {
            let known: Vec<String> = NAMES.iter().map(|n| format!("{{{n}}}")).collect();
            format!(
                "placeholders: {}; {literal}, and a shell variable as `$VAR` or `${{{{VAR}}}}`",
                known.join(", ")
            )
        }
    }
}

/// `name}` at the start of `rest`: a name of at least one letter, digit or
/// `_`, closed by `}`.
fn name_at(rest: &str) -> Option<&str> {
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    (end > 0 && rest[end..].starts_with('}')).then(|| &rest[..end])
}

fn push_text<'a>(out: &mut Vec<Piece<'a>>, text: &'a str) {
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Piece::{Name, Text};

    #[test]
    fn names_and_text_are_split() {
        assert_eq!(
            pieces("--tags={tags}/{id}"),
            [Text("--tags="), Name("tags"), Text("/"), Name("id")]
        );
        assert_eq!(pieces(""), []);
        assert_eq!(pieces("{id}"), [Name("id")]);
    }

    #[test]
    fn doubled_braces_are_one_literal_brace() {
        assert_eq!(pieces("{{id}}"), [Text("{"), Text("id}")]);
        assert_eq!(pieces("a{{b"), [Text("a{"), Text("b")]);
        assert_eq!(pieces("}}"), [Text("}")]);
        assert_eq!(pieces("{{{id}}}"), [Text("{"), Name("id"), Text("}")]);
    }

    #[test]
    fn braces_that_open_no_name_are_text() {
        for s in ["{", "}", "{}", "a{b", "{id", "{ print $1 }", "{a-b}", "é{x"] {
            let joined: String = pieces(s)
                .iter()
                .map(|p| match p {
                    Text(t) => *t,
                    Name(_) => panic!("{s:?} has no name"),
                })
                .collect();
            assert_eq!(joined, s);
        }
    }

    #[test]
    fn unknown_names_are_found() {
        assert_eq!(unknown("{descripton} {id} ${HOME}"), ["descripton", "HOME"]);
        assert!(unknown("{{nope}}").is_empty());
    }

    #[test]
    fn hints_name_the_near_placeholder_or_list_them() {
        assert_eq!(
            hint("descripton"),
            "did you mean `{description}`? (for a literal brace write `{{descripton}}`)"
        );
        let far = hint("HOME");
        assert!(far.contains("{id}, {description}"), "{far}");
        assert!(
            far.contains("`${{HOME}}`") || far.contains("`${{VAR}}`"),
            "{far}"
        );
    }
}
