//! The integration tests: one binary (it links faster than one per file),
//! one module per feature, and the shared harness in [`support`].

mod support;

mod adapters;
mod agent;
mod cluster;
mod cold_sync;
mod commands;
mod crosstown;
mod dashboard;
mod doctor;
mod facts;
mod faults;
mod fuzz;
mod mcp;
mod migrate;
mod plan;
mod regression;
mod reload;
mod run;
mod scripts;
mod store;
mod sync;
mod talk;
mod town_names;
mod workspace;

use std::collections::HashMap;

/// The text of a file in `examples/`.
pub fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads and pokes at a test server's data.
pub trait RedisExt {
    fn hgetall(&self, key: &str) -> HashMap<String, String>;
    /// Runs a command and ignores its reply.
    fn cmd(&self, args: &[&str]);
    /// The serialized value of a key, to compare before and after.
    fn dump(&self, key: &str) -> Option<Vec<u8>>;
    /// One field of task `id`'s hash in `town`, "" when absent.
    fn task_field(&self, town: &str, id: &str, field: &str) -> String {
        self.hgetall(&support::key(town, &format!("task:{id}")))
            .remove(field)
            .unwrap_or_default()
    }
}

impl RedisExt for support::RedisServer {
    fn hgetall(&self, key: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut self.conn())
            .unwrap()
    }

    fn cmd(&self, args: &[&str]) {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        let _: redis::Value = c.query(&mut self.conn()).unwrap();
    }

    fn dump(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("DUMP").arg(key).query(&mut self.conn()).unwrap()
    }
}
