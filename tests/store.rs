//! The Redis layer through the library: connecting by URL, the embedded
//! server's lifecycle, and the errors users see when Redis is missing or
//! unreachable.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use tempfile::TempDir;
use tinytown::store::server::{self, Launcher};
use tinytown::store::{RedisTarget, StoreError, connect, connection};

use crate::support::{RedisServer, Tt, key, stop_embedded};

/// A temp project whose embedded server (if a test starts one) is stopped
/// on drop, so no test leaves a daemon behind, even when it fails.
struct Project {
    dir: TempDir,
    state_dir: PathBuf,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tt-store-")
            .tempdir_in("/tmp")
            .unwrap();
        let state_dir = dir.path().join(".tt");
        Self { dir, state_dir }
    }

    /// A project whose `.tt/redis.sock` would be too long for a socket.
    fn deep() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tt-store-")
            .tempdir_in("/tmp")
            .unwrap();
        let state_dir = dir
            .path()
            .join("d".repeat(60))
            .join("e".repeat(60))
            .join(".tt");
        Self { dir, state_dir }
    }

    fn target(&self) -> RedisTarget {
        RedisTarget::Embedded {
            state_dir: self.state_dir.clone(),
        }
    }

    fn pid(&self) -> i32 {
        std::fs::read_to_string(self.state_dir.join("redis.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// How many processes run with this project's data directory as their
    /// working directory (redis-server chdirs there).
    fn servers(&self) -> usize {
        let data = self.state_dir.canonicalize().unwrap().join("redis");
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path().join("cwd")).ok())
            .filter(|cwd| *cwd == data)
            .count()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        stop_embedded(&self.state_dir);
        let _ = &self.dir;
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sync_conn(socket: &Path) -> redis::Connection {
    redis::Client::open(redis::ConnectionAddr::Unix(socket.to_path_buf()))
        .unwrap()
        .get_connection()
        .unwrap()
}

#[tokio::test]
async fn connects_to_a_server_by_url() {
    let redis = RedisServer::start();
    let mut conn = connect(&RedisTarget::Url(redis.url())).await.unwrap();
    let _: () = conn.set(key("test", "k"), "v").await.unwrap();
    assert_eq!(redis.keys(&key("test", "*")), [key("test", "k")]);
}

#[tokio::test]
async fn blocking_connections_wait_past_the_default_response_timeout() {
    let redis = RedisServer::start();
    let mut conn = connection::connect_blocking(&RedisTarget::Url(redis.url()))
        .await
        .unwrap();
    let started = Instant::now();
    let moved: Option<String> = redis::cmd("BLMOVE")
        .arg(key("test", "inbox"))
        .arg(key("test", "claimed"))
        .arg("LEFT")
        .arg("RIGHT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(moved, None);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_without_the_password() {
    let redis = RedisServer::start_with(&["--requirepass", "hunter2"]);
    let wrong = RedisTarget::Url(format!("{}?pass=wrong-secret", redis.url()));
    let err = connect(&wrong).await.unwrap_err();
    assert!(matches!(err, StoreError::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-secret"), "{err}");

    let right = RedisTarget::Url(format!("{}?pass=hunter2", redis.url()));
    connect(&right).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_tcp_url_fails_fast() {
    let started = Instant::now();
    let target = RedisTarget::Url("redis://:hunter2@127.0.0.1:1".into());
    let err = connect(&target).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(err.is_connection_error());
    let message = err.to_string();
    assert!(
        message.contains("127.0.0.1:1") && !message.contains("hunter2"),
        "{message}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_deadline() {
    // Accepts connections (the kernel does, into the backlog) but never
    // replies, like a hung server or a black-holing proxy.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = RedisTarget::Url(format!("redis://{}", listener.local_addr().unwrap()));
    // Each connect gives up at `CONNECT_DEADLINE`; the margin is for a
    // loaded machine's timers, not for another attempt.
    let limit = connection::CONNECT_DEADLINE + Duration::from_secs(2);
    let started = Instant::now();
    let err = connect(&target).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(took < limit, "`connect` took {took:?}, limit {limit:?}");
    let started = Instant::now();
    let err = connection::connect_blocking(&target).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(
        took < limit,
        "`connect_blocking` took {took:?}, limit {limit:?}"
    );
}

#[tokio::test]
async fn a_server_that_is_not_redis_is_named_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = RedisTarget::Url(format!("redis://{}", listener.local_addr().unwrap()));
    let http = std::thread::spawn(move || {
        // Answer every connection attempt (redis-rs retries) like a web server.
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    use std::io::Write;
                    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let err = connect(&target).await.unwrap_err();
    assert!(matches!(err, StoreError::NotRedis { .. }), "{err:?}");
    assert!(!err.is_connection_error());
    drop(http);
}

#[tokio::test]
async fn a_missing_unix_socket_fails_fast() {
    let started = Instant::now();
    let target = RedisTarget::Url("redis+unix:///nonexistent/tt/redis.sock".into());
    let err = connect(&target).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    let err = connection::connect_blocking(&target).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_url_that_is_not_redis_is_invalid() {
    for url in ["http://:secret@example.com", "no scheme at all"] {
        let err = connect(&RedisTarget::Url(url.into())).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

#[tokio::test]
async fn the_embedded_server_is_private_and_listens_on_no_port() {
    let project = Project::new();
    let socket = server::ensure_running(&project.state_dir).await.unwrap();

    assert_eq!(socket, server::socket_path(&project.state_dir));
    assert_eq!(mode(&project.state_dir), 0o700);
    assert_eq!(mode(&project.state_dir.join("redis")), 0o700);
    assert_eq!(mode(&socket) & 0o077, 0);
    assert!(server::is_running(&project.state_dir).await);

    let mut conn = sync_conn(&socket);
    let port: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query(&mut conn)
        .unwrap();
    assert_eq!(port, ["port", "0"]);
    let aof: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query(&mut conn)
        .unwrap();
    assert_eq!(aof, ["appendonly", "yes"]);
    let recorded = std::fs::read_to_string(project.state_dir.join("redis.sock.path")).unwrap();
    assert_eq!(recorded.trim_end(), socket.to_str().unwrap());
}

#[tokio::test]
async fn a_running_embedded_server_is_reused() {
    let project = Project::new();
    let first = server::ensure_running(&project.state_dir).await.unwrap();
    let pid = project.pid();
    let second = server::ensure_running(&project.state_dir).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(project.pid(), pid);
    assert_eq!(project.servers(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starters_start_one_server() {
    let project = Project::new();
    let (a, b, c) = tokio::join!(
        server::ensure_running(&project.state_dir),
        server::ensure_running(&project.state_dir),
        tokio::spawn({
            let state_dir = project.state_dir.clone();
            async move { server::ensure_running(&state_dir).await }
        }),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap().unwrap());
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(project.servers(), 1);
}

#[tokio::test]
async fn embedded_data_survives_stop_and_restart() {
    let project = Project::new();
    let mut conn = connect(&project.target()).await.unwrap();
    let _: () = conn
        .hset(key("test", "task:a"), "status", "completed")
        .await
        .unwrap();
    let pid = project.pid();
    drop(conn);

    assert!(server::stop(&project.state_dir).await.unwrap());
    assert!(!server::is_running(&project.state_dir).await);
    assert_eq!(project.servers(), 0, "pid {pid} still runs");
    assert!(!server::stop(&project.state_dir).await.unwrap());

    let mut conn = connect(&project.target()).await.unwrap();
    assert_ne!(project.pid(), pid);
    let status: String = conn.hget(key("test", "task:a"), "status").await.unwrap();
    assert_eq!(status, "completed");
}

#[tokio::test]
async fn stop_without_a_server_returns_false() {
    let project = Project::new();
    assert!(!server::stop(&project.state_dir).await.unwrap());
    assert!(!project.state_dir.exists(), "stop must not create `.tt`");
    std::fs::create_dir(&project.state_dir).unwrap();
    assert!(!server::stop(&project.state_dir).await.unwrap());
    assert!(!server::is_running(&project.state_dir).await);
}

#[tokio::test]
async fn an_existing_state_dir_is_made_private() {
    let project = Project::new();
    std::fs::create_dir(&project.state_dir).unwrap();
    std::fs::set_permissions(&project.state_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    server::ensure_running(&project.state_dir).await.unwrap();
    assert_eq!(mode(&project.state_dir), 0o700);
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let project = Project::new();
    let socket = server::socket_path(&project.state_dir);
    std::fs::create_dir(&project.state_dir).unwrap();
    // A socket file nobody listens on, as a crashed server leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    assert!(!server::is_running(&project.state_dir).await);
    server::ensure_running(&project.state_dir).await.unwrap();
    assert!(server::is_running(&project.state_dir).await);
}

#[tokio::test]
async fn a_long_state_dir_puts_the_socket_in_a_private_tmp_dir() {
    let project = Project::deep();
    let socket = server::ensure_running(&project.state_dir).await.unwrap();
    let socket_dir = socket.parent().unwrap().to_path_buf();
    assert!(socket_dir.starts_with("/tmp"), "{}", socket.display());
    assert!(!socket.starts_with(&project.state_dir));
    assert_eq!(mode(&socket_dir), 0o700);
    let recorded = std::fs::read_to_string(project.state_dir.join("redis.sock.path")).unwrap();
    assert_eq!(recorded.trim_end(), socket.to_str().unwrap());

    let mut conn = connect(&project.target()).await.unwrap();
    let _: () = conn.set("k", "v").await.unwrap();

    assert!(server::stop(&project.state_dir).await.unwrap());
    assert!(!socket_dir.exists(), "the fallback dir is removed on stop");
}

#[tokio::test]
async fn no_redis_server_on_path_says_how_to_install_it() {
    let project = Project::new();
    let empty = TempDir::new().unwrap();
    let launcher = Launcher::default().search_path(empty.path());
    let err = server::ensure_running_with(&project.state_dir, &launcher)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoRedisServer { .. }), "{err:?}");
    let help = miette::Diagnostic::help(&err).unwrap().to_string();
    assert!(help.contains("apt-get install redis-server"), "{help}");
    assert!(help.contains("REDIS_URL"), "{help}");
}

#[tokio::test]
async fn a_server_that_fails_to_start_shows_its_output() {
    let project = Project::new();
    let bin = TempDir::new().unwrap();
    let fake = bin.path().join("redis-server");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho '*** FATAL CONFIG FILE ERROR ***' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let err = server::ensure_running_with(&project.state_dir, &Launcher::default().program(&fake))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ServerStart { .. }), "{err:?}");
    assert!(err.to_string().contains("FATAL CONFIG FILE ERROR"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let project = Project::new();
    let bin = TempDir::new().unwrap();
    let fake = bin.path().join("redis-server");
    // Exits 0 like a daemonizing redis-server, but starts nothing.
    std::fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let started = Instant::now();
    let err = server::ensure_running_with(&project.state_dir, &Launcher::default().program(&fake))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ServerStart { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn describe_names_the_embedded_socket_and_redacts_urls() {
    let project = Project::new();
    let described = project.target().describe();
    assert!(
        described.starts_with("embedded redis-server at /"),
        "{described}"
    );
    assert!(described.ends_with("/.tt/redis.sock"), "{described}");
    assert_eq!(
        RedisTarget::Url("rediss://user:pw@host:6380".into()).describe(),
        "rediss://user:***@host:6380"
    );
    assert_eq!(
        connection::redact("redis://h?password=pw"),
        "redis://h?password=***"
    );
}

#[test]
fn the_harness_counts_writes() {
    let redis = RedisServer::start();
    let (writes, changes) = (redis.write_calls(), redis.changes());
    let _: Vec<String> = redis.keys("*");
    assert_eq!(redis.write_calls(), writes, "reads are not writes");

    let mut conn = redis.conn();
    let _: () = redis::cmd("HSET")
        .arg(key("test", "h"))
        .arg("f")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(key("test", "none"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(redis.write_calls(), writes + 2);
    assert_eq!(redis.command_calls("hset"), 1);
    // DEL of a missing key is a write command but changes nothing.
    assert_eq!(redis.changes(), changes + 1);
}

#[test]
fn the_harness_runs_the_binary() {
    Tt::new()
        .arg("--version")
        .run()
        .success()
        .stdout_contains("tt ");
}
