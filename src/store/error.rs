//! Errors of the Redis layer: finding or starting a server, connecting, and
//! reading what is stored.
//!
//! Each variant says what went wrong and how to fix it; URLs in messages are
//! always redacted (see [`super::connection::redact`]), because errors end up
//! in terminals, logs and bug reports.

use std::path::PathBuf;

/// Something went wrong between `tt` and Redis.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StoreError {
    /// The embedded default needs `redis-server`, and there is none.
    #[error("`{program}` was not found on PATH")]
    #[diagnostic(
        code(tt::store::no_redis_server),
        help(
            "tt starts a private Redis for this project by default: install it \
             (`apt-get install redis-server` or `brew install redis`), or set \
             `REDIS_URL` (or `[town] redis_url` in tasks.toml) to use a Redis you already run"
        )
    )]
    NoRedisServer { program: String },

    /// The embedded server was started but never answered.
    #[error("the embedded `redis-server` in `{dir}` did not start: {reason}{log_tail}")]
    #[diagnostic(
        code(tt::store::server_start),
        help(
            "read `{}`; `tt down` stops a half-started server, and setting `REDIS_URL` \
             uses another Redis instead",
            .dir.join("redis.log").display()
        )
    )]
    ServerStart {
        dir: PathBuf,
        reason: String,
        /// The last lines of the server's log (or its stderr), each line
        /// indented, starting with a newline; empty when there was no output.
        log_tail: String,
    },

    /// The embedded server would not stop.
    #[error("the embedded `redis-server` in `{dir}` did not stop: {reason}{log_tail}")]
    #[diagnostic(
        code(tt::store::server_stop),
        help(
            "read `{}`; the server's pid is in `{}`",
            .dir.join("redis.log").display(),
            .dir.join("redis.pid").display()
        )
    )]
    ServerStop {
        dir: PathBuf,
        reason: String,
        log_tail: String,
    },

    /// No Redis answered at the address.
    #[error("cannot reach Redis at `{url}`")]
    #[diagnostic(
        code(tt::store::unreachable),
        help(
            "check that the URL is right and that the server runs and accepts connections \
             from here (try `redis-cli -u <url> ping`); unset `REDIS_URL` to use the \
             embedded server"
        )
    )]
    Unreachable {
        /// Redacted.
        url: String,
        #[source]
        source: redis::RedisError,
    },

    /// Something answered at the address, but not in Redis' protocol.
    #[error("`{url}` answered, but not like a Redis server")]
    #[diagnostic(
        code(tt::store::not_redis),
        help("check the host and port in the URL: something else listens there")
    )]
    NotRedis {
        /// Redacted.
        url: String,
        #[source]
        source: redis::RedisError,
    },

    /// The server refused the credentials.
    #[error("Redis at `{url}` refused the credentials")]
    #[diagnostic(
        code(tt::store::auth),
        help(
            "check the user name and password in the URL \
             (`redis://user:password@host:port`), or put the password in \
             `REDISCLI_AUTH` to keep it out of the URL"
        )
    )]
    Auth {
        /// Redacted.
        url: String,
        #[source]
        source: redis::RedisError,
    },

    /// `REDIS_URL` or `[town] redis_url` is not a Redis URL.
    #[error("`{url}` is not a usable Redis URL: {reason}")]
    #[diagnostic(
        code(tt::store::invalid_url),
        help(
            "use `redis://[user:password@]host[:port][/db]` or \
             `redis+unix:///path/to/redis.sock`"
        )
    )]
    InvalidUrl {
        /// Redacted.
        url: String,
        reason: String,
    },

    /// The server is too old for the commands tt uses.
    #[error("Redis at `{url}` is version {version}; tt needs Redis 6.2 or newer, or Valkey")]
    #[diagnostic(
        code(tt::store::unsupported_server),
        help(
            "upgrade the server, or unset `REDIS_URL` to let tt start its own \
             `redis-server`"
        )
    )]
    UnsupportedServer {
        /// Redacted.
        url: String,
        version: String,
    },

    /// A command failed.
    #[error("a Redis command failed: {0}")]
    #[diagnostic(
        code(tt::store::redis),
        help("if this repeats, check the server's log and that it is not out of memory")
    )]
    Redis(redis::RedisError),

    /// A node of a Redis Cluster answered `MOVED`, `ASK` or `CROSSSLOT` on
    /// a connection tt took for a single server: the server refused the
    /// `INFO` that tells.
    #[error("the server is a node of a Redis Cluster, but tt took it for a single server: {0}")]
    #[diagnostic(
        code(tt::store::cluster_redirect),
        help(
            "name the cluster by listing its nodes in the URL, separated by commas \
             (`redis://host:7000,host:7001`; the same endpoint twice will do for a managed \
             cluster behind one address): tt then uses a cluster connection. tt asks `INFO` to \
             tell by itself; this user may not run it"
        )
    )]
    ClusterRedirect(redis::RedisError),

    /// A file of the embedded server could not be read or written.
    #[error("cannot {what}")]
    #[diagnostic(code(tt::store::io))]
    Io {
        /// What tt was doing, e.g. "create `.tt`".
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// A value in Redis that tt cannot read, e.g. edited by hand.
    #[error("the value of `{key}` in Redis is not what tt wrote: {what}")]
    #[diagnostic(
        code(tt::store::corrupt),
        help("fix or delete the key with `redis-cli` (`tt sync push` writes task records again)")
    )]
    Corrupt { key: String, what: String },

    /// The town's plan comes from another file: a second project with the
    /// same town name (by default the directory name) on a shared Redis.
    #[error(
        "town `{town}` holds the plan of `{held}`, not of `{ours}`: pushing would replace its tasks"
    )]
    #[diagnostic(
        code(tt::store::foreign_town),
        help(
            "give this project its own town with `[town] name = \"…\"` in tasks.toml or \
             `--town NAME`; if this file is now the town's plan (the project moved), take the \
             town over once with `tt sync push --take-over`"
        )
    )]
    ForeignTown {
        town: String,
        /// Where the town's plan comes from (`host:path`).
        held: String,
        /// Where this plan comes from.
        ours: String,
    },

    /// Migration refused: a runner of an older tt holds the town's lease
    /// in the old layout and would go on writing old keys.
    #[error(
        "town `{town}` is run by an older tinytown ({holder} holds `{key}`): its keys were not migrated"
    )]
    #[diagnostic(
        code(tt::store::old_runner),
        help(
            "stop that `tt run` (and the town's workers of the older version), or wait for it to \
             exit, then run `tt migrate --town {town}`; `tt run` of this version migrates the town \
             itself when it starts"
        )
    )]
    OldRunner {
        town: String,
        /// The old lease key.
        key: String,
        /// Who holds it, e.g. `pid 42 on build-host`.
        holder: String,
    },

    /// Migration refused: keys of the town exist in both layouts.
    #[error(
        "town `{town}` has keys in both layouts: {count} old key(s) whose new name exists already \
         ({examples}); nothing was migrated"
    )]
    #[diagnostic(
        code(tt::store::migration_conflict),
        help(
            "a newer tt wrote the town before its old keys were migrated; keep one side: to keep \
             the new keys delete the old ones (`redis-cli --scan --pattern 'tt:{town}:*' | xargs \
             redis-cli del`), or delete the new ones (pattern `tt:{{{town}}}:*`) and run \
             `tt migrate --town {town}` again"
        )
    )]
    MigrationConflict {
        town: String,
        count: usize,
        /// The first conflicting pairs, formatted.
        examples: String,
    },

    /// Migration refused: the server is a cluster, where the old keys of a
    /// town lie in different slots and no one script may move them.
    #[error(
        "the old-layout keys of town `{town}` lie in different cluster slots: they cannot be migrated in one step"
    )]
    #[diagnostic(
        code(tt::store::migration_across_slots),
        help(
            "tinytown's old key layout never ran on Redis Cluster: migrate on the standalone server \
             the town came from (`tt migrate --town {town}` with `REDIS_URL` pointing at it) before \
             moving its data to the cluster"
        )
    )]
    MigrationAcrossSlots { town: String },
}

impl From<redis::RedisError> for StoreError {
    /// A redirect, or keys of several slots in one command, can only reach
    /// tt from a cluster node it took for a single server: a cluster
    /// connection follows redirects and splits such commands itself.
    fn from(e: redis::RedisError) -> Self {
        if matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::Moved
                    | redis::ServerErrorKind::Ask
                    | redis::ServerErrorKind::CrossSlot
            )
        ) {
            StoreError::ClusterRedirect(e)
        } else {
            StoreError::Redis(e)
        }
    }
}

/// [`StoreError::Corrupt`] naming `key` when a command on it failed with
/// `WRONGTYPE` (the key holds another type than `expected`, e.g. edited by
/// hand); any other error unchanged.
pub(crate) fn name_key(e: redis::RedisError, key: &str, expected: &str) -> StoreError {
    if e.code() == Some("WRONGTYPE") {
        StoreError::Corrupt {
            key: key.to_string(),
            what: format!("it is not a {expected}"),
        }
    } else {
        StoreError::Redis(e)
    }
}

impl StoreError {
    /// Whether the connection (not the command) failed, so that retrying
    /// once the server is back could succeed.
    ///
    /// Decided by the error's kind, never by its message text: messages
    /// change between redis-rs and server versions.
    pub fn is_connection_error(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Redis(e) => {
                e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_io_error()
            }
            _ => false,
        }
    }
}

/// Whether `e` is an error reply of the server (`ERR …`, `NOPERM …`,
/// `NOAUTH …`), as opposed to a failure to talk to it.
pub(crate) fn is_error_reply(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// Formats the last `lines` lines of `text` for [`StoreError::ServerStart`]:
/// each indented, after a newline, or nothing for empty text.
pub(crate) fn log_tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = all.len().saturating_sub(lines);
    all[start..].iter().map(|l| format!("\n    {l}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines_indented() {
        assert_eq!(log_tail("", 3), "");
        assert_eq!(log_tail("a\nb\n\nc\nd\n", 2), "\n    c\n    d");
    }

    #[test]
    fn connection_errors_are_decided_by_kind() {
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(StoreError::Redis(refused).is_connection_error());
        let wrong_type =
            redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "not a hash"));
        assert!(!StoreError::Redis(wrong_type).is_connection_error());
        let corrupt = StoreError::Corrupt {
            key: "k".into(),
            what: "x".into(),
        };
        assert!(!corrupt.is_connection_error());
    }
}
