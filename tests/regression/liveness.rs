//! Regressions in workers, heartbeats, fencing and recovery.
