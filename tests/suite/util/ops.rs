//! Helpers for the operations tests: the metrics endpoint (its address from
//! the log, one scrape, the samples of a page, `promtool check metrics`),
//! and a systemd notification socket made by the test.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Server, IO_TIMEOUT, START_TIMEOUT};

/// The metrics endpoint's address, from `metrics on http://ADDR/metrics`.
pub fn metrics_addr(server: &Server) -> SocketAddr {
    let line = server.wait_for_log(|l| l.starts_with("metrics on http://"), START_TIMEOUT);
    let addr = line.trim_start_matches("metrics on http://").trim_end_matches("/metrics");
    addr.parse().unwrap_or_else(|e| panic!("metrics address in {line:?}: {e}"))
}

/// An answer of the metrics endpoint: status, head, body.
#[derive(Debug)]
pub struct Scraped {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `request` as it is and reads the answer to the end (the endpoint
/// closes). A request longer than the endpoint reads may have its
/// connection reset after the answer (the rest was never read): what
/// arrived before the reset is the answer.
pub fn send_raw(addr: SocketAddr, request: &[u8]) -> Scraped {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    // The endpoint may answer and close before it has read it all.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => panic!("read the answer: {e} (after {} bytes)", raw.len()),
        }
    }
    let text = String::from_utf8(raw).expect("a text answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status in {head:?}"));
    Scraped { status, head: head.to_string(), body: body.to_string() }
}

/// `GET /metrics`: the page (the answer must be `200` with the 0.0.4 type).
pub fn scrape(addr: SocketAddr) -> String {
    let answer = send_raw(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: text/plain\r\n\r\n");
    assert_eq!(answer.status, 200, "{answer:?}");
    let head = answer.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{}", answer.head);
    let length: usize = header(&answer.head, "content-length").and_then(|l| l.parse().ok()).expect("Content-Length");
    assert_eq!(length, answer.body.len(), "Content-Length is the body's");
    answer.body
}

/// A header's value (case-insensitive name).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One sample: family name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a page (label values here have no escapes to undo: the
/// test's pages hold none).
pub fn samples(page: &str) -> Vec<Sample> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample line {line:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("labels in {line:?}"));
                    let labels = inner
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("label in {line:?}"));
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            Sample { name, labels, value }
        })
        .collect()
}

/// The value of `name` with exactly these labels; panics if absent.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .unwrap_or_else(|| panic!("no sample {name}{want:?} among {} samples", samples.len()))
        .value
}

/// `promtool check metrics` over `page`: Prometheus' own parser and linter.
/// Returns what it said (empty when it found nothing to say). The suite's
/// scripts install it (scripts/test.sh); without it this fails, saying so.
pub fn promtool_check(page: &str) -> String {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "promtool is missing ({e}): the metrics tests parse the page with Prometheus' own parser; \
             scripts/test.sh installs it (Debian's prometheus package: apt-get install prometheus)"
        ),
    };
    child.stdin.take().expect("stdin").write_all(page.as_bytes()).expect("write to promtool");
    let output = child.wait_with_output().expect("promtool runs");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool check metrics failed: {said}\npage:\n{page}");
    said
}

/// A notification socket as systemd's: a datagram socket bound at a path in
/// the temp dir (or an abstract name), removed on drop.
pub struct NotifySocket {
    pub socket: UnixDatagram,
    /// `NOTIFY_SOCKET`'s value for it.
    pub name: String,
    path: Option<PathBuf>,
}

impl NotifySocket {
    /// Bound at a path.
    pub fn at_path(test: &str) -> NotifySocket {
        let path = std::env::temp_dir().join(format!("ringmaster-notify-{}-{test}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = path.to_str().unwrap().to_string();
        NotifySocket { socket, name, path: Some(path) }
    }

    /// Bound at an abstract name (`@...` in `NOTIFY_SOCKET`).
    pub fn abstract_name(test: &str) -> NotifySocket {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ringmaster-notify-{}-{test}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        NotifySocket { socket, name: format!("@{name}"), path: None }
    }

    /// The next message (10 s at most), as its lines.
    pub fn next(&self) -> Vec<String> {
        let mut buffer = vec![0u8; 4096];
        let n = self.socket.recv(&mut buffer).expect("a notification within 10 s");
        String::from_utf8_lossy(&buffer[..n]).lines().map(str::to_string).collect()
    }

    /// Every message already received, without waiting (the socket is left
    /// blocking again).
    pub fn pending(&self) -> Vec<String> {
        self.socket.set_nonblocking(true).expect("non-blocking");
        let mut messages = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buffer) {
            messages.push(String::from_utf8_lossy(&buffer[..n]).to_string());
        }
        self.socket.set_nonblocking(false).expect("blocking");
        messages
    }

    /// Messages until one has `line` (10 s each at most); all of them.
    pub fn until(&self, line: &str) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        loop {
            let message = self.next();
            let done = message.iter().any(|l| l == line);
            all.push(message);
            if done {
                return all;
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}
