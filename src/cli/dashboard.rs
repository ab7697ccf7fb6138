//! `tt dashboard` and `tt run --dashboard`: the town live in a browser.
//!
//! One small HTTP server (axum) serves one page, embedded in the binary,
//! and the JSON API it is built on. The API answers with the same
//! functions the commands print (`tt status --json`, `tt tasks --json`,
//! `tt task --json`, `tt retry`, `tt cancel`, `tt answer`), so the page and
//! the command line never disagree. docs/DASHBOARD.md documents it.
//!
//! Every start draws a new random token; the first line printed is the URL
//! carrying it. Requests without it are refused ([`auth`]).

mod api;
mod auth;
mod page;
mod server;
mod sse;
mod task_feed;

use std::net::SocketAddr;

use super::{CliError, Context};
use crate::store::RedisTarget;

pub use server::Dashboard;

/// Where the dashboard listens unless told otherwise: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7777";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one. Anything but a
    /// loopback address is reachable from other machines (a warning says so).
    #[arg(long, default_value = DEFAULT_ADDR, env = "TT_DASHBOARD_ADDR")]
    addr: SocketAddr,
    /// Open the page in the default browser (`xdg-open`, `open`).
    #[arg(long)]
    open: bool,
    /// Let reads (the page, `GET /api/…`) through without the token;
    /// actions (retry, cancel, answer) still need it.
    #[arg(long)]
    read_only_public: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let (_, url) = ctx.peek_town()?;
    let target: RedisTarget = ctx.target(url.as_deref());
    let dashboard =
        Dashboard::bind(ctx.clone(), store, target, args.addr, args.read_only_public).await?;
    announce(&dashboard);
    if args.open {
        open_in_browser(dashboard.url());
    }
    tokio::select! {
        r = dashboard.serve() => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(0)
}

/// Prints the URL (the first line on stdout: scripts read it) and warns
/// on stderr when the address is reachable from elsewhere.
pub fn announce(dashboard: &Dashboard) {
    use std::io::Write;
    println!("{}", dashboard.url());
    let _ = std::io::stdout().flush();
    let ip = dashboard.addr().ip();
    if !ip.is_loopback() {
        eprintln!(
            "warning: the dashboard listens on {ip}, reachable from other machines; \
             anyone who learns the URL with its token can retry, cancel and answer tasks \
             (listen on 127.0.0.1 unless that is what you want)"
        );
    }
}

/// Opens `url` in the desktop's browser; a failure is a warning only, the
/// URL is printed anyway.
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let started = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match started {
        // Reaped on a thread of its own, so it never lingers as a zombie.
        Ok(mut child) => drop(std::thread::spawn(move || child.wait())),
        Err(e) => {
            eprintln!("warning: cannot open a browser with `{opener}` ({e}); open the URL above")
        }
    }
}
