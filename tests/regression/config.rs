//! Regressions in agent settings, privacy and what commands show.
