//! Text from a file, a command line or Redis, made safe to show on a
//! terminal. Task text may hold control characters (TOML's `\u001b`
//! escapes, `tt assign`, a hand-written record); printed raw, an ESC
//! sequence recolours, moves the cursor or retitles the window. Every
//! human-readable view goes through [`escape`]; JSON output does not (serde
//! escapes it, and it must stay exact).

use std::borrow::Cow;

/// Whether `c` is shown escaped: C0 and C1 controls and DEL (newline and
/// tab excepted), and the Unicode controls that reorder text on screen.
pub fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with each character of [`needs_escape`] written as Rust writes it
/// (`\u{1b}`, `\r`); borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape("a\u{1b}[31mb\r\u{7}\u{9b}"),
            "a\\u{1b}[31mb\\r\\u{7}\\u{9b}"
        );
        assert_eq!(escape("é\tline\nnext"), "é\tline\nnext");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("\u{202e}x"), "\\u{202e}x");
    }
}
