//! Regressions in hostile plan files and text.
