//! A closed standard output ends a command quietly.
//!
//! `tt tasks | head` closes the pipe before `tt` is done printing. Rust
//! ignores SIGPIPE (so that a dropped Redis socket is an error, not a
//! death), therefore the next `println!` fails with `EPIPE` and std turns
//! that into a panic. A reader that stopped reading is not an error:
//! the command exits at once with 141 (128 + SIGPIPE, what a shell shows
//! for any tool killed by a closed pipe) and prints nothing.

/// The exit code of a command whose standard output was closed.
pub const CLOSED_STDOUT: i32 = 128 + libc::SIGPIPE;

/// Ends the command because its standard output was closed.
pub fn closed_stdout() -> ! {
    std::process::exit(CLOSED_STDOUT)
}

/// Installs the panic hook that turns std's "failed printing to stdout:
/// Broken pipe" into a quiet exit; every other panic is reported as before.
pub fn exit_quietly_when_stdout_closes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            closed_stdout();
        }
        report(info);
    }));
}
