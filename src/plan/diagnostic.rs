//! Problems found in a tasks.toml, as miette diagnostics that point at the
//! offending span with a label and a help line, and [`did_you_mean`], the
//! suggestion those help lines (and the commands' unknown-id errors) share.
//!
//! A file can hold what miette's graphical handler cannot draw: it panics
//! on a span past column 65535, and a line of a million characters, or one
//! with control characters, is no snippet to print. Such a problem hands
//! miette no source at all and says where it is in its message instead
//! (`file:line:col`). Text from the file inside a message is escaped and a
//! long quoted fragment shortened, and a report shows the first [`SHOWN`]
//! problems of a file, so output stays readable whatever the file holds.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};
use serde::Serialize;

use super::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in the file.
#[derive(Debug, Clone)]
pub struct Problem {
    pub severity: Severity,
    /// Stable machine-readable kind, e.g. `tt::plan::unknown-key`.
    pub code: &'static str,
    pub message: String,
    /// Labels under the source; the first is the primary one.
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
    source: NamedSource<Arc<String>>,
    /// Whether miette may draw the snippet: decided once, when first shown.
    drawable: OnceLock<bool>,
}

/// How many problems of a file a report shows; the rest are counted.
pub const SHOWN: usize = 20;

/// The widest line drawn in a snippet, in columns (a tab counts 8); far
/// below where miette fails, well above any line a person writes.
const DRAWN_COLUMNS: usize = 1000;

/// The most lines of one label's snippet; a longer span is shown plainly.
const DRAWN_LINES: usize = 40;

/// The longest `quoted` fragment of a message; longer ones are cut.
const QUOTED_CHARS: usize = 40;

impl Problem {
    pub(crate) fn new(
        source: &NamedSource<Arc<String>>,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: tidy(message.into()),
            labels: vec![(span, tidy(label.into()))],
            help: None,
            source: source.clone(),
            drawable: OnceLock::new(),
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(tidy(help.into()));
        self
    }

    pub(crate) fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    pub(crate) fn label(mut self, span: Span, label: impl Into<String>) -> Self {
        self.labels.push((span, tidy(label.into())));
        self
    }

    /// Whether every label's snippet is something miette can draw and a
    /// terminal can show: short lines without control characters.
    fn drawable(&self) -> bool {
        *self.drawable.get_or_init(|| {
            let text = self.source.inner().as_str();
            self.labels
                .iter()
                .all(|(span, _)| snippet_is_drawable(text, span))
        })
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// 1-based line and column of the primary span.
    pub fn line_col(&self) -> (usize, usize) {
        let offset = self.labels.first().map_or(0, |(s, _)| s.start);
        line_col(self.source.inner(), offset)
    }

    /// Flat, serializable forms for `--json` output, in one walk over the
    /// text for problems in file order (each position counted from the
    /// start of the file would make 20k problems quadratic).
    pub fn to_json_all(problems: &[Problem]) -> Vec<serde_json::Value> {
        let mut cursor: Option<Cursor<'_>> = None;
        problems
            .iter()
            .map(|p| {
                let text = p.source.inner().as_str();
                let offset = p.labels.first().map_or(0, |(s, _)| s.start);
                let c = match cursor.take() {
                    Some(c) if std::ptr::eq(c.text, text) && c.pos <= offset => c,
                    _ => Cursor::new(text),
                };
                let c = cursor.insert(c);
                let (line, column) = c.advance(offset);
                p.to_json_at(line, column)
            })
            .collect()
    }

    fn to_json_at(&self, line: usize, column: usize) -> serde_json::Value {
        serde_json::json!({
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.source.name(),
            "line": line,
            "column": column,
            "help": self.help,
        })
    }
}

/// Walks a text forward, counting lines and columns as [`line_col`] does.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    column: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
            column: 1,
        }
    }

    fn advance(&mut self, offset: usize) -> (usize, usize) {
        let mut to = offset.min(self.text.len());
        while !self.text.is_char_boundary(to) {
            to -= 1;
        }
        if to > self.pos {
            for c in self.text[self.pos..to].chars() {
                if c == '\n' {
                    self.line += 1;
                    self.column = 1;
                } else {
                    self.column += 1;
                }
            }
            self.pos = to;
        }
        (self.line, self.column)
    }
}

/// Whether the lines miette draws for `span` (its own, and one of context
/// either side) are few, short and free of control characters.
fn snippet_is_drawable(text: &str, span: &Span) -> bool {
    let floor = |mut at: usize| {
        at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let (start, end) = (floor(span.start), floor(span.end.max(span.start)));
    let line_start = |at: usize| text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = |at: usize| text[at..].find('\n').map_or(text.len(), |i| at + i);
    let first = line_start(start);
    let from = if first == 0 { 0 } else { line_start(first - 1) };
    let last = line_end(end);
    let to = if last == text.len() {
        last
    } else {
        line_end(last + 1)
    };
    let mut lines = 0;
    text[from..to].split('\n').all(|line| {
        lines += 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let tabs = line.bytes().filter(|&b| b == b'\t').count();
        lines <= DRAWN_LINES
            && line.len() + 7 * tabs <= DRAWN_COLUMNS
            && !line
                .chars()
                .any(|c| c != '\t' && crate::escape::needs_escape(c))
    })
}

/// A message, label or help made safe to print: control characters
/// escaped, each `quoted` fragment longer than [`QUOTED_CHARS`] cut.
fn tidy(text: String) -> String {
    let escaped = match crate::escape::escape(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => s,
    };
    if escaped.len() <= QUOTED_CHARS {
        return escaped;
    }
    let mut out = String::with_capacity(escaped.len().min(4 * QUOTED_CHARS));
    for (i, part) in escaped.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        let chars = part.chars().count();
        if i % 2 == 1 && chars > QUOTED_CHARS {
            out.extend(part.chars().take(QUOTED_CHARS - 1));
            out.push_str(&format!("… ({chars} characters)"));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// 1-based line and column of a byte offset (column counts characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

impl fmt::Display for Problem {
    /// The message; where miette gets no snippet, also where the problem is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.drawable() {
            let (line, column) = self.line_col();
            write!(f, "\nat {}:{line}:{column}", self.source.name())?;
            if let Some((_, label)) = self.labels.first() {
                write!(f, ": {label}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        if !self.drawable() {
            return None;
        }
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if !self.drawable() {
            return None;
        }
        Some(Box::new(self.labels.iter().enumerate().map(
            |(i, (span, label))| {
                let len = span.end.saturating_sub(span.start);
                if i == 0 {
                    LabeledSpan::new_primary_with_span(Some(label.clone()), (span.start, len))
                } else {
                    LabeledSpan::new_with_span(Some(label.clone()), (span.start, len))
                }
            },
        )))
    }
}

/// Everything wrong with a file: reading it failed, or it has problems.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is {kind}, not a regular file")]
    NotAFile { path: String, kind: &'static str },
    #[error(
        "`{path}` is {} MiB, over the {} MiB a plan file may have",
        .size.div_ceil(1024 * 1024),
        super::MAX_PLAN_BYTES / (1024 * 1024)
    )]
    TooLarge { path: String, size: u64 },
    #[error("`{file}` has {} problem{}", errors_in(.problems), plural(errors_in(.problems)))]
    Invalid {
        file: String,
        /// Errors and warnings, in file order.
        problems: Vec<Problem>,
    },
}

fn errors_in(problems: &[Problem]) -> usize {
    problems.iter().filter(|p| p.is_error()).count()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl LoadError {
    /// Problems a report leaves out after the first [`SHOWN`].
    pub fn hidden(&self) -> usize {
        self.problems().len().saturating_sub(SHOWN)
    }

    pub fn problems(&self) -> &[Problem] {
        match self {
            LoadError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

impl Diagnostic for LoadError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(match self {
            LoadError::Read { .. } => "tt::plan::read",
            LoadError::NotAFile { .. } => "tt::plan::not-a-file",
            LoadError::TooLarge { .. } => "tt::plan::too-large",
            LoadError::Invalid { .. } => "tt::plan::invalid",
        }))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self {
            LoadError::Read { .. } => Some(Box::new(
                "run `tt init` to create a tasks.toml, or pass `-f PATH`",
            )),
            LoadError::NotAFile { .. } | LoadError::TooLarge { .. } => Some(Box::new(
                "point `-f` (or `TT_FILE`) at the tasks.toml, a regular text file",
            )),
            LoadError::Invalid { .. } => None,
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self {
            LoadError::Invalid { problems, .. } => Some(Box::new(
                problems.iter().take(SHOWN).map(|p| p as &dyn Diagnostic),
            )),
            _ => None,
        }
    }
}

/// The closest candidate, if it is close enough to be what was meant: a
/// couple of typos (edits or swapped letters) or a near-identical spelling.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .filter_map(|c| {
            let edits = strsim::damerau_levenshtein(word, c);
            let close =
                edits <= c.chars().count().max(3) / 3 || strsim::jaro_winkler(word, c) > 0.85;
            close.then_some((edits, c))
        })
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a\nbc\né = 1";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 2));
        assert_eq!(line_col(text, text.len()), (3, 6));
    }

    #[test]
    fn json_positions_in_one_walk_match_line_col() {
        let text = Arc::new("a\nbc\né = 1\n\nlast".to_string());
        let src = NamedSource::new("t.toml", text.clone());
        // Out of order on purpose: the walk starts again when it must.
        let problems: Vec<Problem> = [0, 3, 9, 2, text.len()]
            .iter()
            .map(|&at| Problem::new(&src, "tt::test", at..at, "m", "l"))
            .collect();
        for (p, v) in problems.iter().zip(Problem::to_json_all(&problems)) {
            let (line, column) = p.line_col();
            assert_eq!(
                (v["line"].as_u64(), v["column"].as_u64()),
                (Some(line as u64), Some(column as u64))
            );
        }
    }

    #[test]
    fn messages_are_escaped_and_long_quotes_cut() {
        let long = "k".repeat(500);
        let tidied = tidy(format!("unknown key `{long}` in `x\u{1b}`"));
        assert!(
            tidied.ends_with("… (500 characters)` in `x\\u{1b}`"),
            "{tidied}"
        );
        assert!(tidied.len() < 100);
    }
}
