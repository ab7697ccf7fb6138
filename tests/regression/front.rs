//! Regressions in the main job, the test harness and the benchmarks.
