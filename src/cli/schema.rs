//! `tt schema`: the JSON schema of tasks.toml.

use super::CliError;

/// The schema as pretty JSON, as committed in `schemas/tasks.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(crate::plan::PlanFile);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

pub fn run() -> Result<u8, CliError> {
    print!("{}", schema_json());
    Ok(0)
}
