//! Redis Cluster: telling a cluster's URL from a single server's, opening
//! the redis crate's cluster client, and the one thing tt does on every
//! node rather than on the node of a key (`SCAN`).
//!
//! A cluster is named by its nodes, separated by commas:
//! `redis://10.0.0.1:7000,redis://10.0.0.2:7001`. A node after the first
//! may be a bare `host:port`: it takes the scheme, user info, database and
//! query of the first (`rediss://:pw@a:7000,b:7001,c:7002`). One node is
//! enough, the client learns the others from it; more are only fallbacks
//! for when that one is down. A single URL names a cluster too when the
//! server says so (`INFO` has `cluster_enabled:1`, see
//! [`super::connection`]).
//!
//! The client routes each command by the slot of its keys, follows
//! `MOVED` and `ASK` (resharding, failover), waits and retries on
//! `TRYAGAIN` and `CLUSTERDOWN`, and loads a script on every node when a
//! node answers `NOSCRIPT` (`SCRIPT LOAD` goes to all of them). All of a
//! town's keys share one slot (`tt:{town}:…`), so every script, `MULTI`
//! and pipeline of a town goes to one node.

use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{ConnectionInfo, RedisError, RedisResult, Value};

/// Retries of a command that failed for a reason a cluster gets over by
/// itself (a node that just failed over, a slot being migrated), with
/// waits between [`RETRY_MIN_WAIT`] and [`RETRY_MAX_WAIT`]. `MOVED` and
/// `ASK` are followed at once.
const RETRIES: u32 = 8;
const RETRY_MIN_WAIT: Duration = Duration::from_millis(50);
const RETRY_MAX_WAIT: Duration = Duration::from_secs(1);

/// The nodes of a cluster URL as written, or `None` for the URL of one
/// server. The URL is a list when every part after a comma is a node: a
/// URL of its own (`redis://b:7001`) or a bare `host[:port]`. So a comma
/// in a password (`redis://:a,b@host`) or a query (`?x=a,b=c`) leaves one
/// URL; in a list, such a comma is written `%2C`.
pub(super) fn split_nodes(url: &str) -> Option<Vec<&str>> {
    if !url.contains(',') {
        return None;
    }
    let parts: Vec<&str> = url.split(',').map(str::trim).collect();
    let is_node = |part: &&str| {
        part.contains("://")
            || part.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
            })
    };
    parts[1..].iter().all(is_node).then_some(parts)
}

/// The node URLs of a cluster URL (see [`split_nodes`]), each complete: a
/// bare `host:port` gets the scheme, user info, database and query of the
/// first node. `None` for the URL of one server.
pub(super) fn node_urls(url: &str) -> Option<Result<Vec<String>, String>> {
    let nodes = split_nodes(url)?;
    Some(expand(&nodes))
}

fn expand(nodes: &[&str]) -> Result<Vec<String>, String> {
    let Some(first) = nodes.first() else {
        return Err("no node".into());
    };
    if nodes.iter().any(|n| n.is_empty()) {
        return Err("an empty node between commas".into());
    }
    if !first.contains("://") {
        return Err(format!(
            "the first node `{}` needs a scheme (`redis://` or `rediss://`)",
            super::connection::redact(first)
        ));
    }
    let parsed = redis::parse_redis_url(first).ok_or_else(|| {
        format!(
            "the first node `{}` is not a URL",
            super::connection::redact(first)
        )
    })?;
    let userinfo = match (parsed.username(), parsed.password()) {
        ("", None) => String::new(),
        (user, None) => format!("{user}@"),
        (user, Some(password)) => format!("{user}:{password}@"),
    };
    let path = match parsed.path() {
        "" | "/" => String::new(),
        path => path.to_owned(),
    };
    let query = parsed.query().map(|q| format!("?{q}")).unwrap_or_default();
    let fragment = parsed
        .fragment()
        .map(|f| format!("#{f}"))
        .unwrap_or_default();
    Ok(nodes
        .iter()
        .map(|node| {
            if node.contains("://") {
                (*node).to_owned()
            } else {
                format!(
                    "{}://{userinfo}{node}{path}{query}{fragment}",
                    parsed.scheme()
                )
            }
        })
        .collect())
}

/// Whether `INFO` (its `cluster` section) says the server is a cluster node.
pub(super) fn is_cluster_node(info: &str) -> bool {
    info.lines().any(|line| line.trim() == "cluster_enabled:1")
}

/// Opens a cluster connection from `nodes` (one is enough). Each command
/// waits at most `response_timeout` for its node's reply, and at most
/// that long in all with its retries; `None` for a connection of blocking
/// reads, which wait as long as they ask to.
pub(super) async fn open(
    nodes: &[ConnectionInfo],
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
) -> RedisResult<ClusterConnection> {
    let mut builder = ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(connect_timeout)
        .retries(RETRIES)
        .min_retry_wait(millis(RETRY_MIN_WAIT))
        .max_retry_wait(millis(RETRY_MAX_WAIT))
        .overall_response_timeout(response_timeout);
    if let Some(timeout) = response_timeout {
        builder = builder.response_timeout(timeout);
    }
    builder.build()?.get_async_connection().await
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Every key matching `pattern` on every primary of the cluster: a `SCAN`
/// sent through the client would go to one node only. Each node is
/// scanned to its end with its own cursor; a key moved by a resharding
/// meanwhile may be seen twice or (rarely) not at all, as `SCAN` on one
/// server may miss keys written meanwhile.
pub(super) async fn scan(
    conn: &mut ClusterConnection,
    pattern: &str,
    count: usize,
) -> RedisResult<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    let first = conn
        .route_command(
            scan_cmd("0", pattern, count),
            RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
        )
        .await?;
    let Value::Map(nodes) = first else {
        return Err(unexpected("SCAN on every primary", &first));
    };
    for (node, reply) in nodes {
        let node: String = redis::from_redis_value(node)?;
        let (host, port) = node
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
            .ok_or_else(|| unexpected("a node address", &Value::SimpleString(node.clone())))?;
        let (mut cursor, found): (String, Vec<Vec<u8>>) = redis::from_redis_value(reply)?;
        keys.extend(found);
        while cursor != "0" {
            let reply = conn
                .route_command(
                    scan_cmd(&cursor, pattern, count),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    }),
                )
                .await?;
            let (next, found): (String, Vec<Vec<u8>>) = redis::from_redis_value(reply)?;
            keys.extend(found);
            cursor = next;
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

fn scan_cmd(cursor: &str, pattern: &str, count: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count);
    cmd
}

fn unexpected(what: &str, reply: &Value) -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        format!("{what}: {reply:?}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_list_is_a_cluster() {
        assert_eq!(
            split_nodes("redis://a:7000,redis://b:7001"),
            Some(vec!["redis://a:7000", "redis://b:7001"])
        );
        assert_eq!(
            split_nodes("redis://a:7000, b:7001 ,c:7002"),
            Some(vec!["redis://a:7000", "b:7001", "c:7002"])
        );
        assert_eq!(split_nodes("redis://a,b"), Some(vec!["redis://a", "b"]));
        assert_eq!(split_nodes("redis://a:7000"), None);
    }

    #[test]
    fn a_comma_in_a_password_or_query_is_one_url() {
        assert_eq!(split_nodes("redis://:pa,ss@host:6379"), None);
        assert_eq!(split_nodes("redis://:1,2,3@host:6379"), None);
        assert_eq!(split_nodes("redis://host:6379/0?x=a,b=c"), None);
        assert_eq!(split_nodes("redis+unix:///s.sock?x=a,b/c"), None);
    }

    #[test]
    fn bare_nodes_take_the_first_nodes_scheme_credentials_and_query() {
        let urls =
            node_urls("rediss://u:p%2Cw@a:7000/0?protocol=resp3#insecure,b:7001,redis://c:1")
                .unwrap()
                .unwrap();
        assert_eq!(
            urls,
            [
                "rediss://u:p%2Cw@a:7000/0?protocol=resp3#insecure",
                "rediss://u:p%2Cw@b:7001/0?protocol=resp3#insecure",
                "redis://c:1",
            ]
        );
        let plain = node_urls("redis://a:1,b:2").unwrap().unwrap();
        assert_eq!(plain, ["redis://a:1", "redis://b:2"]);
    }

    #[test]
    fn a_list_needs_a_scheme_first_and_no_empty_node() {
        assert!(expand(&["a:1", "redis://b:2"]).is_err());
        assert!(node_urls("redis://a:1,,b:2").unwrap().is_err());
        assert!(node_urls("redis://a:1,").unwrap().is_err());
    }

    #[test]
    fn info_tells_a_cluster_node() {
        assert!(is_cluster_node("# Cluster\r\ncluster_enabled:1\r\n"));
        assert!(!is_cluster_node("# Cluster\r\ncluster_enabled:0\r\n"));
        assert!(!is_cluster_node("# Server\r\nredis_version:7.0.15\r\n"));
    }
}
