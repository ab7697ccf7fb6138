//! Problems found in a tasks.toml, as miette diagnostics that point at the
//! offending span with a label and a help line.

use std::fmt;
use std::sync::Arc;

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
}

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
            message: message.into(),
            labels: vec![(span, label.into())],
            help: None,
            source: source.clone(),
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    pub(crate) fn label(mut self, span: Span, label: impl Into<String>) -> Self {
        self.labels.push((span, label.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// 1-based line and column of the primary span.
    pub fn line_col(&self) -> (usize, usize) {
        let offset = self.labels.first().map_or(0, |(s, _)| s.start);
        line_col(self.source.inner(), offset)
    }

    /// A flat, serializable form for `--json` output.
    pub fn to_json(&self) -> serde_json::Value {
        let (line, column) = self.line_col();
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
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
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
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
            LoadError::Invalid { problems, .. } => {
                Some(Box::new(problems.iter().map(|p| p as &dyn Diagnostic)))
            }
            _ => None,
        }
    }
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
}
