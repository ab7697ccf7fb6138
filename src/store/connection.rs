//! Which Redis `tt` uses, and opening connections to it.
//!
//! The choice, first match wins: a non-empty `REDIS_URL`, then
//! `[town] redis_url` in tasks.toml, else the embedded server of the project
//! (see [`super::server`]). Commands share one [`Connection`] from
//! [`connect`], which reconnects by itself; every blocking loop (`BLMOVE`)
//! opens its own connection with [`connect_blocking`], because a blocking
//! call on a shared connection stalls every command queued behind it.
//!
//! A URL that lists several nodes separated by commas, or a server whose
//! `INFO` says `cluster_enabled:1`, is a Redis Cluster: both kinds of
//! connection are then cluster connections ([`super::cluster`]), which
//! route each command to the node of its keys' slot. The embedded server
//! is never a cluster.
//!
//! Connecting never hangs: an unreachable server fails within
//! [`CONNECT_DEADLINE`] with [`StoreError::Unreachable`].
//!
//! The password of a URL is the one in its user info (`redis://:pw@host`),
//! else a `password=` or `pass=` query parameter (how `unix://` and
//! `redis+unix://` URLs carry one), else the environment variable
//! `REDISCLI_AUTH` (as `redis-cli` reads it). `REDISCLI_AUTH` keeps the
//! password out of URLs, which end up in files, shell history and every
//! command's `REDIS_URL`; workers and their commands inherit it. Every node
//! of a cluster gets the same password.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value,
};

use super::error::is_error_reply;
use super::{StoreError, cluster, server};

/// Timeout of one attempt to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries after the first attempt fails; with the backoff below they take
/// well under a second against a server that refuses connections.
const CONNECT_RETRIES: usize = 3;
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(1);

/// Longest wait for the reply to one command (or one pipeline) on the
/// shared connection: a whole reload of a 100k-task plan is one
/// transaction. A server that dropped the connection is noticed at once
/// regardless; this only bounds waiting on a server that hangs.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound of the whole initial connection, whatever the network does
/// (a firewall that drops packets makes every attempt wait its timeout).
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// The environment variable with the password for a URL that has none.
pub const AUTH_ENV: &str = "REDISCLI_AUTH";

/// The oldest Redis with everything tt uses (`BLMOVE`, `GETDEL`, `XADD …
/// LIMIT`, `SET … GET`).
const MIN_REDIS: (u32, u32) = (6, 2);

/// Where tt's Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// A server the user runs, by URL (`redis://`, `rediss://`,
    /// `redis+unix://`, `valkey://`).
    Url(String),
    /// The project's own `redis-server`, kept in `state_dir` (`.tt/`).
    Embedded { state_dir: PathBuf },
}

impl RedisTarget {
    /// Chooses the Redis: `env_url` (`REDIS_URL`) if non-empty, then
    /// `file_url` (`[town] redis_url`) if non-empty, else the embedded
    /// server under `<project_dir>/.tt`.
    pub fn resolve(env_url: Option<&str>, file_url: Option<&str>, project_dir: &Path) -> Self {
        let given = |url: Option<&str>| {
            url.map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
        };
        match given(env_url).or_else(|| given(file_url)) {
            Some(url) => Self::Url(url),
            None => Self::Embedded {
                state_dir: project_dir.join(".tt"),
            },
        }
    }

    /// For messages: the URL with its password replaced by `***`, or where
    /// the embedded server listens.
    pub fn describe(&self) -> String {
        match self {
            Self::Url(url) => redact(url),
            Self::Embedded { state_dir } => format!(
                "embedded redis-server at {}",
                server::socket_path(state_dir).display()
            ),
        }
    }
}

/// `url` with every password replaced by `***`: the one in the user info
/// (`redis://user:pass@host`, `rediss://:pass@host`) and `password=` or
/// `pass=` query parameters (the latter is how `redis+unix://` URLs carry
/// one). Anything else, including a bare user name, is kept. A cluster's
/// list of nodes is redacted node by node.
pub fn redact(url: &str) -> String {
    match cluster::split_nodes(url) {
        Some(nodes) => nodes
            .iter()
            .map(|node| redact_one(node))
            .collect::<Vec<_>>()
            .join(","),
        None => redact_one(url),
    }
}

fn redact_one(url: &str) -> String {
    let (main, fragment) = match url.split_once('#') {
        Some((main, fragment)) => (main, Some(fragment)),
        None => (url, None),
    };
    let (before_query, query) = match main.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (main, None),
    };

    let mut out = String::with_capacity(url.len());
    match before_query.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            // The last `@` ends the user info: a password with an unescaped
            // `@` or `/` is still hidden entirely.
            match rest.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(rest),
            }
        }
        None => out.push_str(before_query),
    }

    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _))
                    if key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("pass") =>
                {
                    format!("{key}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// An open connection: to one server, or to a Redis Cluster. Every call
/// site sends commands, pipelines and scripts through it alike
/// ([`ConnectionLike`]); clones share the connection.
#[derive(Clone)]
pub enum Connection {
    /// The shared connection to one server ([`connect`]); it reconnects by
    /// itself.
    Managed(ConnectionManager),
    /// A connection to one server for one blocking loop
    /// ([`connect_blocking`]).
    Dedicated(MultiplexedConnection),
    /// A cluster: each command goes to the node of its keys' slot.
    Cluster(ClusterConnection),
}

impl Connection {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Every key matching `pattern` (a `SCAN MATCH` pattern), `count` per
    /// call, on every primary of a cluster: `SCAN` on a cluster connection
    /// would scan one node only. Names are bytes (a key written by hand
    /// need not be UTF-8); sorted, without the duplicates `SCAN` may give.
    pub async fn scan_match(
        &mut self,
        pattern: &str,
        count: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        if let Self::Cluster(conn) = self {
            return Ok(cluster::scan(conn, pattern, count).await?);
        }
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, found): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(count)
                .query_async(self)
                .await?;
            keys.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Managed(_) => "Connection::Managed",
            Self::Dedicated(_) => "Connection::Dedicated",
            Self::Cluster(_) => "Connection::Cluster",
        })
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Managed(c) => c.req_packed_command(cmd),
            Self::Dedicated(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Dedicated(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Managed(c) => c.get_db(),
            Self::Dedicated(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// How to reach `target`: one server's client (starting the embedded
/// server if needed), or the nodes of a cluster URL.
enum Endpoint {
    Server(Box<Client>),
    Cluster(Vec<ConnectionInfo>),
}

fn invalid_url(target: &RedisTarget, reason: impl ToString) -> StoreError {
    StoreError::InvalidUrl {
        url: target.describe(),
        reason: reason.to_string(),
    }
}

async fn endpoint(target: &RedisTarget) -> Result<Endpoint, StoreError> {
    match target {
        RedisTarget::Url(url) => {
            let env_password = std::env::var(AUTH_ENV).ok();
            if let Some(nodes) = cluster::node_urls(url) {
                let nodes = nodes.map_err(|reason| invalid_url(target, reason))?;
                let infos = nodes
                    .iter()
                    .map(|node| connection_info(node, env_password.as_deref()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid_url(target, e))?;
                return Ok(Endpoint::Cluster(infos));
            }
            let info = connection_info(url, env_password.as_deref())
                .map_err(|e| invalid_url(target, e))?;
            Client::open(info)
                .map(|client| Endpoint::Server(Box::new(client)))
                .map_err(|e| invalid_url(target, e))
        }
        RedisTarget::Embedded { state_dir } => {
            let sock = server::ensure_running(state_dir).await?;
            // Built from the path, not a URL, so no path needs escaping.
            Client::open(ConnectionAddr::Unix(sock))
                .map(|client| Endpoint::Server(Box::new(client)))
                .map_err(|e| invalid_url(target, e))
        }
    }
}

/// What redis-rs makes of `url`, with the password redis-rs does not read
/// itself: a `password=` query parameter, else `env_password`
/// ([`AUTH_ENV`]) when the URL has no password at all.
fn connection_info(url: &str, env_password: Option<&str>) -> redis::RedisResult<ConnectionInfo> {
    let info = url.into_connection_info()?;
    if info.redis_settings().password().is_some() {
        return Ok(info);
    }
    let from_query = redis::parse_redis_url(url).and_then(|parsed| {
        parsed
            .query_pairs()
            .find(|(key, _)| key == "password")
            .map(|(_, value)| value.into_owned())
    });
    match from_query.or_else(|| env_password.filter(|p| !p.is_empty()).map(str::to_owned)) {
        Some(password) => {
            let settings = info.redis_settings().clone().set_password(password);
            Ok(info.set_redis_settings(settings))
        }
        None => Ok(info),
    }
}

/// The error for a failed connection attempt.
fn connect_error(target: &RedisTarget, source: RedisError) -> StoreError {
    let url = target.describe();
    match source.kind() {
        ErrorKind::AuthenticationFailed => StoreError::Auth { url, source },
        ErrorKind::Parse => StoreError::NotRedis { url, source },
        // Also what redis-rs reports for `rediss://` without TLS support.
        ErrorKind::InvalidClientConfig => StoreError::InvalidUrl {
            url,
            reason: source.to_string(),
        },
        _ => StoreError::Unreachable { url, source },
    }
}

fn deadline_error(target: &RedisTarget) -> StoreError {
    StoreError::Unreachable {
        url: target.describe(),
        source: RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection within {CONNECT_DEADLINE:?}"),
        )),
    }
}

/// Opens a cluster connection from `nodes`, within [`CONNECT_DEADLINE`].
async fn open_cluster(
    target: &RedisTarget,
    nodes: &[ConnectionInfo],
    response_timeout: Option<Duration>,
) -> Result<Connection, StoreError> {
    if nodes
        .iter()
        .any(|node| matches!(node.addr(), ConnectionAddr::Unix(_)))
    {
        return Err(invalid_url(
            target,
            "a Redis Cluster is reached over TCP only (its nodes announce each other by \
             host and port): name its nodes as `redis://host:port`",
        ));
    }
    tokio::time::timeout(
        CONNECT_DEADLINE,
        cluster::open(nodes, CONNECT_TIMEOUT, response_timeout),
    )
    .await
    .map_err(|_| deadline_error(target))?
    .map(Connection::Cluster)
    .map_err(|e| connect_error(target, e))
}

/// Opens the shared connection to `target` (starting the embedded server
/// if that is the target), checks that the server is Redis ≥ 6.2 or
/// Valkey, and switches to a cluster connection when the server is a
/// cluster node.
///
/// The connection reconnects by itself after it drops. Commands get
/// [`RESPONSE_TIMEOUT`], not redis-rs' default of 500 ms: the sync
/// transaction of a 100k-task plan takes Redis about a second (see README
/// "Performance"), and failed as "timed out" with the default. Never send a
/// blocking command on it, use [`connect_blocking`].
pub async fn connect(target: &RedisTarget) -> Result<Connection, StoreError> {
    let client = match endpoint(target).await? {
        Endpoint::Cluster(nodes) => {
            check_nodes(target, &nodes).await?;
            return open_cluster(target, &nodes, Some(RESPONSE_TIMEOUT)).await;
        }
        Endpoint::Server(client) => client,
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(CONNECT_RETRIES)
        .set_min_delay(RETRY_MIN_DELAY)
        .set_max_delay(RETRY_MAX_DELAY)
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let manager = tokio::time::timeout(
        CONNECT_DEADLINE,
        ConnectionManager::new_with_config((*client).clone(), config),
    )
    .await
    .map_err(|_| deadline_error(target))?
    .map_err(|e| connect_error(target, e))?;
    let mut conn = Connection::Managed(manager);
    if probe(&mut conn, target).await? == Mode::Cluster {
        let nodes = [client.get_connection_info().clone()];
        return open_cluster(target, &nodes, Some(RESPONSE_TIMEOUT)).await;
    }
    Ok(conn)
}

/// Opens a connection of its own for one blocking loop (`BLMOVE … 5`),
/// with no response timeout: redis-rs' default of 500 ms would fail every
/// blocking call that waits longer. On a cluster it is a cluster
/// connection of its own, so a blocking read stalls no other command on
/// the same node.
///
/// It does not reconnect by itself; on an error for which
/// [`StoreError::is_connection_error`] holds, open a new one.
pub async fn connect_blocking(target: &RedisTarget) -> Result<Connection, StoreError> {
    let client = match endpoint(target).await? {
        Endpoint::Cluster(nodes) => {
            check_nodes(target, &nodes).await?;
            return open_cluster(target, &nodes, None).await;
        }
        Endpoint::Server(client) => client,
    };
    let mut conn = dedicated(target, &client).await?;
    if probe(&mut conn, target).await? == Mode::Cluster {
        let nodes = [client.get_connection_info().clone()];
        return open_cluster(target, &nodes, None).await;
    }
    Ok(conn)
}

/// A connection to one server without response timeout.
async fn dedicated(target: &RedisTarget, client: &Client) -> Result<Connection, StoreError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None);
    tokio::time::timeout(
        CONNECT_DEADLINE,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| deadline_error(target))?
    .map(Connection::Dedicated)
    .map_err(|e| connect_error(target, e))
}

/// Checks the first node of a cluster URL that answers, on a connection
/// of its own: the cluster client reports a refused password, or
/// something that is no Redis, only as text, and cannot tell an old server
/// or one that is no cluster node.
async fn check_nodes(target: &RedisTarget, nodes: &[ConnectionInfo]) -> Result<(), StoreError> {
    let mut unreachable = None;
    for node in nodes {
        let client = Client::open(node.clone()).map_err(|e| invalid_url(target, e))?;
        let mut conn = match dedicated(target, &client).await {
            Ok(conn) => conn,
            Err(e) if e.is_connection_error() => {
                unreachable = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        return match probe(&mut conn, target).await? {
            Mode::Single => Err(invalid_url(
                target,
                format!(
                    "it lists several nodes, but `{}` is no cluster node (its INFO says \
                     `cluster_enabled:0`); a single server is named by one URL",
                    node.addr()
                ),
            )),
            Mode::Cluster | Mode::Unknown => Ok(()),
        };
    }
    Err(unreachable.unwrap_or_else(|| deadline_error(target)))
}

/// What `INFO` told of a server.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Single,
    Cluster,
    /// `INFO` was refused.
    Unknown,
}

/// Reads `INFO`: fails if the server is too old, and says whether it is a
/// cluster node. A server that refuses `INFO` (ACLs on a managed Redis)
/// passes, taken for a single server: the commands tt needs fail clearly
/// if they are missing, and a cluster can still be named by listing its
/// nodes.
async fn probe(conn: &mut Connection, target: &RedisTarget) -> Result<Mode, StoreError> {
    let info: String = match redis::cmd("INFO").query_async(conn).await {
        Ok(info) => info,
        // A server with a password that was given none answers NOAUTH to
        // everything: say so now rather than at the first command.
        Err(e) if e.code() == Some("NOAUTH") => {
            return Err(StoreError::Auth {
                url: target.describe(),
                source: e,
            });
        }
        Err(e) if is_error_reply(&e) => {
            tracing::debug!(error = %e, "cannot check the Redis version");
            return Ok(Mode::Unknown);
        }
        Err(e) => return Err(connect_error(target, e)),
    };
    if let Some(version) = unsupported_version(&info) {
        return Err(StoreError::UnsupportedServer {
            url: target.describe(),
            version,
        });
    }
    Ok(if cluster::is_cluster_node(&info) {
        Mode::Cluster
    } else {
        Mode::Single
    })
}

/// The server's version if `INFO server` shows a Redis older than 6.2.
/// Valkey (which reports `valkey_version`, and a `redis_version` of 7.2
/// for compatibility) and servers that report no version pass.
fn unsupported_version(info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines().find_map(|line| {
            line.trim()
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
        })
    };
    if field("valkey_version").is_some() {
        return None;
    }
    let version = field("redis_version")?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next().flatten()?;
    let minor = parts.next().flatten().unwrap_or(0);
    ((major, minor) < MIN_REDIS).then(|| version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords() {
        let cases = [
            (
                "redis://user:secret@host:6379/0",
                "redis://user:***@host:6379/0",
            ),
            ("rediss://:secret@host", "rediss://:***@host"),
            ("redis://:p@ss/w:rd@host:1", "redis://:***@host:1"),
            (
                "redis://host:6379?password=secret&db=1",
                "redis://host:6379?password=***&db=1",
            ),
            (
                "redis+unix:///run/redis.sock?pass=secret",
                "redis+unix:///run/redis.sock?pass=***",
            ),
            (
                "redis://u:x@h/?protocol=3&Password=y#f",
                "redis://u:***@h/?protocol=3&Password=***#f",
            ),
            (
                "rediss://:secret@a:7000,b:7001,redis://u:s2@c:7002",
                "rediss://:***@a:7000,b:7001,redis://u:***@c:7002",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want, "{url}");
        }
    }

    #[test]
    fn passwords_come_from_the_url_then_its_query_then_the_environment() {
        let password = |url: &str, env: Option<&str>| {
            connection_info(url, env)
                .unwrap()
                .redis_settings()
                .password()
                .map(str::to_owned)
        };
        let pw = |s: &str| Some(s.to_owned());
        assert_eq!(password("redis://:a@h", Some("env")), pw("a"));
        assert_eq!(
            password("unix:///s.sock?password=b%26c", Some("env")),
            pw("b&c")
        );
        assert_eq!(password("redis+unix:///s.sock?pass=d", None), pw("d"));
        assert_eq!(password("redis://h?password=e", None), pw("e"));
        assert_eq!(password("redis://h", Some("env")), pw("env"));
        assert_eq!(password("redis://h", Some("")), None);
        assert_eq!(password("redis://h", None), None);
    }

    #[test]
    fn redact_keeps_urls_without_passwords() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "redis://default@host",
            "redis+unix:///tmp/x/redis.sock",
            "valkey://h?protocol=resp3",
            "not a url",
            "",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    #[test]
    fn resolve_prefers_env_then_file_then_embedded() {
        let dir = Path::new("/p");
        let url = |s: &str| RedisTarget::Url(s.to_owned());
        assert_eq!(
            RedisTarget::resolve(Some("redis://e"), Some("redis://f"), dir),
            url("redis://e")
        );
        assert_eq!(
            RedisTarget::resolve(Some(""), Some("redis://f"), dir),
            url("redis://f")
        );
        assert_eq!(
            RedisTarget::resolve(None, Some("redis://f"), dir),
            url("redis://f")
        );
        assert_eq!(
            RedisTarget::resolve(Some(" "), Some(""), dir),
            RedisTarget::Embedded {
                state_dir: PathBuf::from("/p/.tt")
            }
        );
    }

    #[test]
    fn describe_redacts_and_names_the_socket() {
        let url = RedisTarget::Url("redis://:pw@h".into());
        assert_eq!(url.describe(), "redis://:***@h");
        let embedded = RedisTarget::Embedded {
            state_dir: PathBuf::from("/nonexistent-tt-test/.tt"),
        };
        assert_eq!(
            embedded.describe(),
            "embedded redis-server at /nonexistent-tt-test/.tt/redis.sock"
        );
    }

    #[test]
    fn versions_below_6_2_are_unsupported() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        assert_eq!(unsupported_version(&info("7.0.15")), None);
        assert_eq!(unsupported_version(&info("6.2.0")), None);
        assert_eq!(unsupported_version(&info("6.0.9")), Some("6.0.9".into()));
        assert_eq!(unsupported_version(&info("5.0.7")), Some("5.0.7".into()));
        let valkey = "# Server\r\nredis_version:7.2.4\r\nvalkey_version:8.0.1\r\n";
        assert_eq!(unsupported_version(valkey), None);
        assert_eq!(unsupported_version("# Server\r\n"), None);
    }
}
