//! Turning an argv template into the argv of one task.
//!
//! Placeholders are replaced inside each argument on its own and the result
//! is executed directly, never through a shell: a description with quotes,
//! `$(…)`, `;` or newlines stays one argument with exactly that text, so
//! what a task says can never become a command. (A template that itself
//! runs `sh -c '…' sh {description}` passes the text as `$1`, which is
//! safe; splicing `{description}` into the script of `sh -c` is not, and
//! is only what the `shell` preset does on purpose.)
//!
//! Placeholders: `{id}`, `{description}`, `{tags}` (comma-joined),
//! `{parent}` (empty without one), `{attempt}`, and `{prompt}` (the
//! description, a blank line, and a line naming the task; what the AI
//! presets pass). `{{` and `}}` are literal braces; a `{name}` that is no
//! placeholder is a load-time error ([`crate::plan::placeholder`]), and a
//! brace that opens no name is text. Substitution is one pass: a
//! description containing `{id}` is not expanded again.

use crate::plan::placeholder::{self, Piece};

/// What a task gives its command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskVars {
    pub id: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Empty without a parent.
    pub parent: String,
    pub attempt: u32,
}

impl TaskVars {
    /// The prompt an AI CLI receives: the description, then the task id so
    /// the agent can name it (in commits, in `tt send`).
    pub fn prompt(&self) -> String {
        format!("{}\n\n(tinytown task `{}`)", self.description, self.id)
    }

    fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            "id" => self.id.clone(),
            "description" => self.description.clone(),
            "tags" => self.tags.join(","),
            "parent" => self.parent.clone(),
            "attempt" => self.attempt.to_string(),
            "prompt" => self.prompt(),
            // One arm per name in `placeholder::NAMES` (a test checks it).
            _ => return None,
        })
    }
}

/// The argv of one task: each template argument with its placeholders
/// replaced.
pub fn render(template: &[String], vars: &TaskVars) -> Vec<String> {
    template.iter().map(|arg| substitute(arg, vars)).collect()
}

/// Replaces the placeholders in one argument, in one left-to-right pass
/// ([`crate::plan::placeholder`] is the syntax). An unknown name, which
/// the loader reports, stays as written.
pub fn substitute(arg: &str, vars: &TaskVars) -> String {
    let mut out = String::with_capacity(arg.len());
    for piece in placeholder::pieces(arg) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Name(name) => match vars.value(name) {
                Some(v) => out.push_str(&v),
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(description: &str) -> TaskVars {
        TaskVars {
            id: "login".into(),
            description: description.into(),
            tags: vec!["api".into(), "P1".into()],
            parent: "auth".into(),
            attempt: 2,
        }
    }

    fn argv(template: &[&str], v: &TaskVars) -> Vec<String> {
        let template: Vec<String> = template.iter().map(|s| s.to_string()).collect();
        render(&template, v)
    }

    #[test]
    fn placeholders_are_replaced_per_argument() {
        let v = vars("Implement login");
        assert_eq!(
            argv(
                &["make", "{id}", "--tags={tags}", "{parent}/{id}#{attempt}"],
                &v
            ),
            ["make", "login", "--tags=api,P1", "auth/login#2"]
        );
    }

    #[test]
    fn hostile_descriptions_stay_one_argument_verbatim() {
        for d in [
            r#"say "hi" and 'bye'"#,
            "$(rm -rf /)",
            "`reboot`; echo pwned && exit 1 | tee x",
            "line one\nline two\n\n  indented",
            "",
            "   ",
            "* ? [a-z] ~ $HOME %s",
        ] {
            let out = argv(&["agent", "-p", "{description}"], &vars(d));
            assert_eq!(out.len(), 3, "{d:?}");
            assert_eq!(out[2], d);
        }
    }

    #[test]
    fn substitution_is_one_pass() {
        let out = argv(&["{description}"], &vars("use {id} and {tags}"));
        assert_eq!(out, ["use {id} and {tags}"]);
    }

    #[test]
    fn unknown_names_and_stray_braces_are_kept_and_doubled_braces_escape() {
        let v = vars("d");
        assert_eq!(
            argv(&["{", "}", "{}", "{nope}", "{{id}}", "a{b", "{id"], &v),
            ["{", "}", "{}", "{nope}", "{id}", "a{b", "{id"]
        );
    }

    #[test]
    fn every_documented_placeholder_has_a_value() {
        let v = vars("d");
        for name in placeholder::NAMES {
            assert!(v.value(name).is_some(), "{name}");
        }
    }

    #[test]
    fn empty_values() {
        let v = TaskVars {
            id: "x".into(),
            ..Default::default()
        };
        assert_eq!(argv(&["{tags}", "{parent}"], &v), ["", ""]);
    }

    #[test]
    fn the_prompt_is_the_description_then_the_id() {
        let v = vars("Do it\nwell");
        assert_eq!(v.prompt(), "Do it\nwell\n\n(tinytown task `login`)");
        assert_eq!(argv(&["{prompt}"], &v), [v.prompt()]);
    }
}
