//! `tt towns` (every town sharing this Redis) and `tt down`.

use serde_json::json;

use super::task_view::TaskView;
use super::{CliError, Context, output};
use crate::Status;
use crate::store::{RedisTarget, Store, server};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let mut rows = Vec::new();
    let mut list = Vec::new();
    for name in store.towns().await? {
        let other = Store::with_connection_of(&store, &name);
        // One unreadable town must not hide the others.
        let town = match other.tasks().await {
            Ok(records) => TaskView::new(records),
            Err(e) if !e.is_connection_error() => {
                eprintln!("town `{name}` cannot be read: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let count = |s: Status| {
            (0..town.records.len())
                .filter(|&i| town.graph.status(i) == s)
                .count()
        };
        let counts: Vec<(Status, usize)> = Status::ALL.iter().map(|&s| (s, count(s))).collect();
        rows.push(
            std::iter::once(name.clone())
                .chain(std::iter::once(town.records.len().to_string()))
                .chain(counts.iter().map(|(_, n)| n.to_string()))
                .collect::<Vec<_>>(),
        );
        let map: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), json!(n)))
            .collect();
        list.push(json!({ "town": name, "tasks": town.records.len(), "counts": map }));
    }
    if args.json {
        output::json(&json!(list));
    } else if rows.is_empty() {
        println!("no towns in this Redis yet — `tt sync push` creates one");
    } else {
        let mut header = vec!["TOWN", "TASKS"];
        header.extend(Status::ALL.map(Status::as_str));
        let upper: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
        let header: Vec<&str> = upper.iter().map(String::as_str).collect();
        print!("{}", output::table(&header, &rows));
    }
    Ok(0)
}

pub async fn down(ctx: &Context) -> Result<u8, CliError> {
    let (_, url) = ctx.peek_town()?;
    match ctx.target(url.as_deref()) {
        RedisTarget::Embedded { state_dir } => {
            if server::stop(&state_dir).await? {
                println!("stopped the embedded redis-server in {}", state_dir.display());
            } else {
                println!("no embedded redis-server runs in {}", state_dir.display());
            }
            Ok(0)
        }
        target => Err(CliError::Usage {
            message: format!("this project uses {}, not the embedded server", target.describe()),
            help: "`tt down` stops only the server tt started itself; unset `REDIS_URL` / `[town] redis_url` to use it".into(),
        }),
    }
}
