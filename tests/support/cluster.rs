//! A real Redis Cluster for tests: three masters on loopback ports, no
//! replicas, no persistence, joined by `redis-cli --cluster create`. Its
//! nodes require [`PASSWORD`], as a managed cluster would, so every test
//! on it also checks that credentials reach every node.
//!
//! A new master refuses to report `cluster_state:ok` for its first two
//! seconds (Redis' writable delay), so one cluster is shared by every test
//! of the binary ([`Cluster::shared`]); tests keep apart by using towns of
//! their own. A static is never dropped, so the nodes run under a `sh`
//! that holds a pipe from this process and, when the pipe closes — when
//! this process exits, however it exits — stops them and removes their
//! directory. [`Cluster::start`]
//! gives a cluster of one's own, stopped on drop; [`Cluster::start_tls`]
//! one whose nodes speak TLS only (a test CA made with `openssl`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{command, wait_until};

/// How long the cluster may take to be ready: its nodes answer, joined,
/// every slot served (about 2 s here).
const READY: Duration = Duration::from_secs(20);

/// Masters of a test cluster.
const MASTERS: usize = 3;

/// The password of every node (`requirepass`).
pub const PASSWORD: &str = "cluster-secret";

/// A running cluster; stopped on drop (see the module doc for the shared
/// one).
pub struct Cluster {
    ports: Vec<u16>,
    /// The `sh` that runs the servers, and stops them and removes `dir`
    /// once `pipe` closes.
    keeper: Child,
    pipe: Option<ChildStdin>,
    dir: PathBuf,
    /// The CA that signed the nodes' certificate, for a TLS cluster.
    ca: Option<PathBuf>,
}

impl Cluster {
    /// The cluster every test of this binary shares, started by the first
    /// test that asks for it.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(Cluster::start)
    }

    /// Starts three masters and joins them, waiting until every node says
    /// `cluster_state:ok`.
    ///
    /// Panics if `redis-server` or `redis-cli` is not installed: tests need
    /// a real cluster and never skip silently.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// [`Cluster::start`] with nodes that speak TLS only, with a
    /// certificate for `127.0.0.1` signed by [`Cluster::ca`]. Panics if
    /// `openssl` is not installed.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let mut programs = vec!["redis-server", "redis-cli"];
        if tls {
            programs.push("openssl");
        }
        for program in programs {
            match command(program).arg("--version").output() {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "`{program}` not found on PATH: install Redis (apt-get install \
                     redis-server, which brings redis-cli) — the cluster tests need a real \
                     Redis Cluster"
                ),
                Err(e) => panic!("cannot run `{program}`: {e}"),
            }
        }
        // The keeper removes it, after the servers are gone.
        let dir = tempfile::Builder::new()
            .prefix("tt-cluster-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let ca = tls.then(|| make_certificates(&dir));
        let ports = free_ports();
        let (keeper, pipe) = spawn(&dir, &ports, tls);
        let cluster = Self {
            ports,
            keeper,
            pipe,
            dir,
            ca,
        };
        cluster.wait_nodes_answer();
        cluster.create();
        wait_until(
            READY,
            "every node of the cluster says cluster_state:ok",
            || (0..MASTERS).all(|i| cluster.cluster_info(i).contains("cluster_state:ok")),
        );
        cluster
    }

    fn wait_nodes_answer(&self) {
        let started = Instant::now();
        for (i, port) in self.ports.iter().enumerate() {
            loop {
                if self.try_ping(i) {
                    break;
                }
                if started.elapsed() >= READY {
                    panic!(
                        "cluster node on port {port} did not answer within {READY:?}:\n{}",
                        self.log(i)
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn try_ping(&self, i: usize) -> bool {
        self.client(i)
            .ok()
            .and_then(|c| {
                c.get_connection_with_timeout(Duration::from_millis(200))
                    .ok()
            })
            .is_some_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
    }

    fn create(&self) {
        let mut cli = command("redis-cli");
        if let Some(ca) = &self.ca {
            cli.arg("--tls").arg("--cacert").arg(ca);
        }
        let out = cli
            .env("REDISCLI_AUTH", PASSWORD)
            .arg("--cluster")
            .arg("create")
            .args(self.ports.iter().map(|port| format!("127.0.0.1:{port}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every node, comma-separated, the password in the first only (the
    /// others take it from there): `redis://:pw@127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn url(&self) -> String {
        let others = self.ports[1..]
            .iter()
            .map(|port| format!(",127.0.0.1:{port}"));
        std::iter::once(self.node_url(0)).chain(others).collect()
    }

    /// Node `i` alone, with the password (`redis://:pw@127.0.0.1:P`, or
    /// `rediss://` for TLS).
    pub fn node_url(&self, i: usize) -> String {
        format!(
            "{}://:{PASSWORD}@127.0.0.1:{}",
            self.scheme(),
            self.ports[i]
        )
    }

    /// Node `i` alone, without the password (`redis://127.0.0.1:P`).
    pub fn node_url_without_password(&self, i: usize) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.ports[i])
    }

    fn scheme(&self) -> &str {
        if self.ca.is_some() { "rediss" } else { "redis" }
    }

    /// The CA file that signed a TLS cluster's certificate (for
    /// `SSL_CERT_FILE`).
    pub fn ca(&self) -> &Path {
        self.ca.as_deref().expect("a TLS cluster")
    }

    /// A client of node `i` alone, trusting [`Cluster::ca`] for TLS.
    fn client(&self, i: usize) -> redis::RedisResult<redis::Client> {
        match &self.ca {
            None => redis::Client::open(self.node_url(i)),
            Some(ca) => redis::Client::build_with_tls(
                self.node_url(i),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca).expect("the test CA")),
                },
            ),
        }
    }

    /// A connection to node `i` alone: it answers `MOVED` for keys of
    /// other nodes.
    pub fn node_conn(&self, i: usize) -> redis::Connection {
        self.client(i).unwrap().get_connection().unwrap()
    }

    /// A connection to the cluster, for assertions: each command goes to
    /// the node of its key.
    pub fn conn(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::new((0..MASTERS).map(|i| self.node_url(i)))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// `CLUSTER INFO` of node `i`.
    pub fn cluster_info(&self, i: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut self.node_conn(i))
            .unwrap_or_default()
    }

    /// Every key matching `pattern` on every node (`SCAN` per node), sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = (0..MASTERS)
            .flat_map(|i| {
                let mut conn = self.node_conn(i);
                let mut found = Vec::new();
                let mut cursor = 0u64;
                loop {
                    let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query(&mut conn)
                        .unwrap();
                    found.extend(page);
                    if next == 0 {
                        break found;
                    }
                    cursor = next;
                }
            })
            .collect();
        keys.sort();
        keys
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.node_conn(0))
            .unwrap()
    }

    /// The node (index) that serves `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        let ids: Vec<String> = (0..MASTERS).map(|i| self.node_id(i)).collect();
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.node_conn(0))
            .unwrap();
        for range in slots {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                redis::from_redis_value::<u16>(parts[0].clone()),
                redis::from_redis_value::<u16>(parts[1].clone()),
            ) else {
                continue;
            };
            if (start..=end).contains(&slot) {
                let master: Vec<redis::Value> = redis::from_redis_value(parts[2].clone()).unwrap();
                let id: String = redis::from_redis_value(master[2].clone()).unwrap();
                return ids.iter().position(|i| *i == id).unwrap();
            }
        }
        panic!("no node serves slot {slot}");
    }

    fn node_id(&self, i: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.node_conn(i))
            .unwrap()
    }

    /// Moves `slot` and its keys from the node that serves it to node `to`,
    /// as `redis-cli --cluster reshard` does: `IMPORTING` on the target,
    /// `MIGRATING` on the source (clients now get `ASK` for moved keys and
    /// `TRYAGAIN` for multi-key commands over both), `MIGRATE` of the keys,
    /// then `SETSLOT … NODE` on every node (clients get `MOVED`).
    pub fn move_slot(&self, slot: u16, to: usize) {
        let from = self.owner(slot);
        assert_ne!(from, to, "slot {slot} is already on node {to}");
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let setslot = |node: usize, args: &[&str]| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(args);
            let () = cmd.query(&mut self.node_conn(node)).unwrap();
        };
        setslot(to, &["IMPORTING", &from_id]);
        setslot(from, &["MIGRATING", &to_id]);
        let mut source = self.node_conn(from);
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut source)
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.ports[to])
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("AUTH")
                .arg(PASSWORD)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut source)
                .unwrap();
        }
        for node in [to, from] {
            setslot(node, &["NODE", &to_id]);
        }
        for node in (0..MASTERS).filter(|n| *n != to && *n != from) {
            setslot(node, &["NODE", &to_id]);
        }
    }

    /// Node `i`'s log, for failure messages.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.ports[i]))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing the pipe makes the keeper stop the servers and exit.
        self.pipe.take();
        let _ = self.keeper.wait();
    }
}

/// Starts a node on each of `ports` under one keeper `sh`, which stops
/// them all and removes `dir` when its stdin (a pipe from this process)
/// reaches its end.
fn spawn(dir: &Path, ports: &[u16], tls: bool) -> (Child, Option<ChildStdin>) {
    let mut keeper = command("sh")
        .arg("-c")
        .arg(
            r#"dir=$1; shift; pids=
for port in "$@"; do
  if [ "$TLS" = 1 ]; then
    listen="--port 0 --tls-port $port --tls-cluster yes --tls-auth-clients no
      --tls-cert-file $dir/node.crt --tls-key-file $dir/node.key --tls-ca-cert-file $dir/ca.crt"
  else
    listen="--port $port"
  fi
  # $listen unquoted: its words are arguments (the paths hold no spaces).
  redis-server $listen --bind 127.0.0.1 \
    --requirepass "$PASSWORD" --masterauth "$PASSWORD" \
    --cluster-enabled yes --cluster-config-file "$dir/nodes-$port.conf" \
    --save '' --appendonly no --dir "$dir" >"$dir/$port.log" 2>&1 &
  pids="$pids $!"
done
cat >/dev/null
kill $pids 2>/dev/null
wait
rm -rf "$dir""#,
        )
        .arg("sh")
        .arg(dir)
        .args(ports.iter().map(u16::to_string))
        .env("PASSWORD", PASSWORD)
        .env("TLS", if tls { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh to keep the cluster's nodes");
    let pipe = keeper.stdin.take();
    if let Some(stderr) = keeper.stderr.take() {
        // The keeper's own complaints (no redis-server …), for the test log.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("cluster keeper: {line}");
            }
        });
    }
    (keeper, pipe)
}

/// A CA (`ca.crt`) and a certificate for `127.0.0.1` it signed
/// (`node.crt`, `node.key`) in `dir`; the CA's path.
fn make_certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let out = command("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = ["-newkey", "rsa:2048", "-nodes", "-days", "2"];
    openssl(
        &[
            &["req", "-x509"][..],
            &key,
            &["-keyout", "ca.key", "-out", "ca.crt"],
            &["-subj", "/CN=tt test CA"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &key[..2],
            &[
                "-nodes",
                "-keyout",
                "node.key",
                "-out",
                "node.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    dir.join("ca.crt")
}

/// [`MASTERS`] ports that are free, each with its cluster bus port
/// (port + 10000) free too.
fn free_ports() -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < MASTERS {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let Some(bus) = port.checked_add(10000) else {
            continue;
        };
        if let Ok(bus_listener) = TcpListener::bind(("127.0.0.1", bus)) {
            ports.push(port);
            held.push(bus_listener);
        }
        held.push(listener);
    }
    ports
}
