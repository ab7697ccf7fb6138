//! A tiny HTTP/1.1 client over `TcpStream`, enough to talk to `tt
//! dashboard`: one request per connection, and the event stream read as it
//! arrives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{RUN_DEADLINE, Running};

/// A dashboard a test started, with the URL it printed first.
pub struct Dashboard {
    pub run: Running,
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub token: String,
}

impl Dashboard {
    /// Waits until `run` printed the URL as its first line.
    #[track_caller]
    pub fn of(run: Running) -> Self {
        run.wait_output_until("the dashboard prints its URL", |out| {
            out.lines().next().is_some_and(|l| l.contains("token="))
        });
        let out = run.output();
        let first = out.lines().next().unwrap_or_default().to_string();
        let rest = first
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the first line is not the URL: {out}"));
        let (host, query) = rest.split_once("/?token=").unwrap();
        assert_eq!(query.len(), 32, "128 bits in hex: {first}");
        Dashboard {
            host: host.to_string(),
            token: query.to_string(),
            run,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.host, self.token)
    }

    /// `method path` with the token header (`Some`), answered.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
        let mut headers = Vec::new();
        if let Some(t) = token {
            headers.push(format!("X-TT-Token: {t}"));
        }
        request(&self.host, method, path, &headers, body)
    }

    /// `GET path` with the right token, as JSON; fails on any status but 200.
    #[track_caller]
    pub fn get(&self, path: &str) -> Value {
        let r = self.call("GET", path, Some(&self.token.clone()), "");
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.json()
    }

    /// `POST path` with the right token and a JSON body.
    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.call("POST", path, Some(&self.token.clone()), body)
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn connect(host: &str) -> TcpStream {
    let s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect to {host}: {e}"));
    s.set_read_timeout(Some(RUN_DEADLINE)).unwrap();
    s
}

/// One request on its own connection (`Connection: close`).
pub fn request(host: &str, method: &str, path: &str, headers: &[String], body: &str) -> Reply {
    let mut s = connect(host);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Reply {
        status,
        headers: head.to_string(),
        body: if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        },
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// The event stream, opened with `headers` (e.g. `Last-Event-ID: …`).
pub struct EventStream {
    reader: BufReader<TcpStream>,
    pub status: u16,
}

/// One server-sent event: its id and its data as JSON.
#[derive(Debug)]
pub struct Sse {
    pub id: String,
    pub data: Value,
}

impl EventStream {
    pub fn open(d: &Dashboard, path: &str, headers: &[String]) -> Self {
        let mut s = connect(&d.host);
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", d.host);
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        EventStream { reader, status }
    }

    /// The data of the next `event: tasks` (what the page draws the tasks
    /// from), skipping every other event; fails after `within`.
    #[track_caller]
    pub fn next_tasks(&mut self, within: Duration) -> Value {
        let started = Instant::now();
        let mut named = false;
        let mut line = String::new();
        loop {
            assert!(
                started.elapsed() < within,
                "no tasks event within {within:?}"
            );
            line.clear();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "the event stream ended");
            let l = line.trim_end_matches(['\r', '\n']);
            if l == "event: tasks" || l == "event:tasks" {
                named = true;
            } else if let Some(v) = l.strip_prefix("data:")
                && named
            {
                return serde_json::from_str(v.trim()).unwrap();
            } else if l.is_empty() {
                named = false;
            }
        }
    }

    /// The next event, skipping keep-alive comments and chunk sizes;
    /// fails after `within`.
    #[track_caller]
    pub fn next(&mut self, within: Duration) -> Sse {
        let started = Instant::now();
        let (mut id, mut data) = (None, None);
        let mut line = String::new();
        loop {
            assert!(started.elapsed() < within, "no event within {within:?}");
            line.clear();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "the event stream ended");
            let l = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = l.strip_prefix("id:") {
                id = Some(v.trim().to_string());
            } else if let Some(v) = l.strip_prefix("data:") {
                data = Some(serde_json::from_str(v.trim()).unwrap());
            } else if l.is_empty()
                && let (Some(i), Some(d)) = (id.take(), data.take())
            {
                return Sse { id: i, data: d };
            }
        }
    }
}
