//! `tt init`: a commented starter tasks.toml, the schema for editors, and
//! `.tt/` in .gitignore.
//!
//! The schema goes to `schemas/tasks.schema.json` beside the plan, a path
//! meant to be committed: the `#:schema` line must work in every clone, and
//! `.tt/` is ignored. `tt schema > schemas/tasks.schema.json` refreshes it
//! after an upgrade.

use std::path::Path;

use super::{CliError, Context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Overwrite an existing tasks.toml.
    #[arg(long)]
    force: bool,
}

/// Where the schema goes, relative to the plan's directory; the starter's
/// `#:schema` line names the same path.
const SCHEMA: &str = "schemas/tasks.schema.json";

const STARTER: &str = r#"#:schema ./schemas/tasks.schema.json
# tinytown plan. `tt plan` checks it, `tt run` runs it; saving reloads it.

[meta]
description = "What this plan is for"
default_agent = "dev"          # agent for tasks that name none

# Agents that `tt run` starts. `cli` picks a preset (claude, codex, …);
# `command` runs your own argv with {id} {description} {tags} {parent}.
[agents.dev]
command = ["sh", "-c", "echo working on: $TT_TASK_DESCRIPTION"]
count = 1                      # replicas dev-1 … dev-N share the inbox
timeout = "30m"
retries = 1

[[tasks]]
id = "design"
description = "Write the design"

[[tasks]]
id = "build"                   # a group: done when its children are
description = "Build it"

[[tasks]]
id = "api"
description = "Implement the API"
parent = "build"
depends_on = ["design"]

[[tasks]]
id = "ui"
description = "Implement the UI"
parent = "build"
depends_on = ["design"]

[[tasks]]
id = "release"
description = "Release"
depends_on = ["build"]
priority = 1                   # 0 first … 4 last; ties keep file order
"#;

pub fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let io = |what: String| move |source| CliError::Io { what, source };
    if ctx.file.exists() && !args.force {
        return Err(CliError::Usage {
            message: format!("`{}` already exists", ctx.file.display()),
            help: "pass `--force` to overwrite it, or `-f OTHER.toml` to write another file".into(),
        });
    }
    std::fs::create_dir_all(&ctx.project_dir)
        .map_err(io(format!("cannot create `{}`", ctx.project_dir.display())))?;
    std::fs::write(&ctx.file, STARTER)
        .map_err(io(format!("cannot write `{}`", ctx.file.display())))?;
    let schema = ctx.project_dir.join(SCHEMA);
    if let Some(dir) = schema.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create `{}`", dir.display())))?;
    }
    std::fs::write(&schema, super::schema::schema_json())
        .map_err(io(format!("cannot write `{}`", schema.display())))?;
    let ignored = ignore_state_dir(&ctx.project_dir.join(".gitignore"))
        .map_err(io("cannot update `.gitignore`".into()))?;
    println!("wrote {} and {SCHEMA}", ctx.file.display());
    if ignored {
        println!("added .tt/ to .gitignore");
    }
    println!("next: `tt plan` to check it, `tt run` to run it");
    Ok(0)
}

/// Adds `.tt/` to .gitignore unless it is there. Returns whether it wrote.
fn ignore_state_dir(path: &Path) -> std::io::Result<bool> {
    let current = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    if current
        .lines()
        .any(|l| matches!(l.trim(), ".tt" | ".tt/" | "/.tt" | "/.tt/"))
    {
        return Ok(false);
    }
    let mut next = current;
    if !next.is_empty() && !next.ends_with('\n') {
        next.push('\n');
    }
    next.push_str(".tt/\n");
    std::fs::write(path, next)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_starter_links_the_schema_it_writes() {
        let first = super::STARTER.lines().next().unwrap_or_default();
        assert_eq!(first, format!("#:schema ./{}", super::SCHEMA));
    }

    #[test]
    fn the_starter_plan_is_valid() {
        let plan = crate::plan::load(std::path::Path::new("tasks.toml"), super::STARTER.into());
        assert!(plan.is_ok(), "{plan:?}");
    }
}
