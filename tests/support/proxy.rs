//! A unix-socket proxy in front of a test's `redis-server` that a test can
//! cut and restore: a network partition between one `tt` process and Redis,
//! without root, namespaces or `socat`.
//!
//! While cut, every proxied connection is closed and new ones are accepted
//! and closed at once, so the clients behind it see Redis as unreachable
//! while everyone else still reaches it directly.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;

pub struct Proxy {
    socket: PathBuf,
    shared: Arc<Shared>,
    _dir: TempDir,
}

struct Shared {
    target: PathBuf,
    cut: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every open proxied connection, to close them on a cut.
    open: Mutex<Vec<UnixStream>>,
}

impl Proxy {
    /// Listens on a socket of its own and forwards to `target`.
    pub fn start(target: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tt-proxy-")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("proxy.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            target: target.to_path_buf(),
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || accept_loop(&listener, &accepting));
        Proxy {
            socket,
            shared,
            _dir: dir,
        }
    }

    /// `redis+unix://…` of the proxy, for `REDIS_URL`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Closes every proxied connection and refuses new ones until
    /// [`Proxy::restore`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        for s in self.shared.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => return,
        };
        if shared.cut.load(Ordering::SeqCst) {
            continue; // dropped: closed at once
        }
        let _ = client.set_nonblocking(false);
        let Ok(server) = UnixStream::connect(&shared.target) else {
            continue;
        };
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        shared.open.lock().unwrap().extend([c3, s3]);
        std::thread::spawn(move || pipe(client, server));
        std::thread::spawn(move || pipe(s2, c2));
    }
}

/// Copies `from` to `to` until either side closes, then closes both.
fn pipe(mut from: UnixStream, mut to: UnixStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}
