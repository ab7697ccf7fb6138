//! `tt migrate`: move towns written by the old key layout (`tt:<town>:…`)
//! to the hash-tagged one (`tt:{<town>}:…`); see `store::migrate`.

use serde_json::json;

use super::{CliError, Context, output};
use crate::escape::escape;
use crate::store::{Migration, StoreError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Every town of this Redis (every town that ever synced), not only
    /// this project's (or `--town`'s).
    #[arg(long)]
    all: bool,
    /// Say what would move; move nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store_as_is().await?;
    if !args.all {
        // One town: a refusal is the command's error.
        let m = store.migrate(args.dry_run).await?;
        if args.json {
            output::json(&json!({ "migrated": [m], "refused": [] }));
        } else {
            println!("{}", describe(&m));
        }
        return Ok(0);
    }
    let (done, refused): (Vec<_>, Vec<_>) = store
        .migrate_all(args.dry_run)
        .await?
        .into_iter()
        .partition(|(_, r)| r.is_ok());
    let done: Vec<Migration> = done.into_iter().filter_map(|(_, r)| r.ok()).collect();
    let refused: Vec<(String, StoreError)> = refused
        .into_iter()
        .filter_map(|(town, r)| r.err().map(|e| (town, e)))
        .collect();
    let code = if refused.is_empty() { 0 } else { 1 };
    if args.json {
        let refused: Vec<_> = refused
            .iter()
            .map(|(town, e)| json!({ "town": town, "error": e.to_string() }))
            .collect();
        output::json(&json!({ "migrated": done, "refused": refused }));
        return Ok(code);
    }
    if done.is_empty() && refused.is_empty() {
        println!("no towns in this Redis");
    }
    for m in &done {
        println!("{}", describe(m));
    }
    for (_, e) in refused {
        output::print_error(CliError::Store(e));
    }
    Ok(code)
}

/// One line for a town migrated (or that would be, or needed nothing);
/// `tt run` prints it too when it migrates its town at start.
pub(super) fn describe(m: &Migration) -> String {
    let town = escape(&m.town);
    match (m.keys, m.dry_run) {
        (0, _) => format!("town {town} already uses the cluster-safe key layout"),
        (n, false) => format!("migrated town {town} to the cluster-safe key layout ({n} keys)"),
        (n, true) => format!("would migrate town {town} to the cluster-safe key layout ({n} keys)"),
    }
}
