//! How `tt` prints: diagnostics through miette, tables, and JSON.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use super::CliError;
use crate::escape::escape;
use crate::plan::{LoadError, Problem, SHOWN};
use crate::runner::RunError;

pub fn install_error_hook() {
    let stderr_tty = std::io::stderr().is_terminal();
    let color = stderr_tty && std::env::var_os("NO_COLOR").is_none();
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .force_graphical(true)
                .color(color)
                .unicode(stderr_tty)
                .terminal_links(false)
                .context_lines(1)
                .build(),
        )
    }));
}

pub fn print_error(e: CliError) {
    let hidden = match &e {
        CliError::Plan(l) | CliError::Run(RunError::Plan(l)) => l.hidden(),
        _ => 0,
    };
    let report = miette::Report::new(e);
    eprintln!("{report:?}");
    print_hidden(hidden, "problem");
}

/// Prints a file's problems: the first [`SHOWN`] of them, then how many more.
pub fn print_load_error(e: LoadError) {
    let hidden = e.hidden();
    let report = miette::Report::new(e);
    eprintln!("{report:?}");
    print_hidden(hidden, "problem");
}

/// Prints a plan's warnings: the first [`SHOWN`] of them, then how many more.
pub fn print_warnings(warnings: &[Problem]) {
    for w in warnings.iter().take(SHOWN) {
        eprintln!("{:?}", miette::Report::new(w.clone()));
    }
    print_hidden(warnings.len().saturating_sub(SHOWN), "warning");
}

fn print_hidden(n: usize, what: &str) {
    if n > 0 {
        let s = if n == 1 { "" } else { "s" };
        eprintln!(
            "and {} more {what}{s} (`tt plan --json` lists them all)",
            thousands(n)
        );
    }
}

/// `19980` as `19,980`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints a JSON value on stdout.
pub fn json(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
/// Cells are escaped for the terminal ([`crate::escape`]).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape(cell)).collect())
        .collect();
    let cols = header.len();
    let mut width = header.iter().map(|h| h.chars().count()).collect::<Vec<_>>();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == cols {
                l.push_str(cell);
            } else {
                l.push_str(cell);
                let pad = width[i].saturating_sub(cell.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(|c| c.as_ref()));
    }
    out
}

/// Cuts text to `max` characters on one line.
pub fn short(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut s: String = one_line.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}
