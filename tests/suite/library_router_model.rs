//! The `router` example's answers, checked byte for byte against a model of
//! what each request must get, on both backends and in `rr` and `shared`:
//! the handler's path through the engine (bodies gathered or read where
//! they lie, answers framed into the connection's output buffer) under
//! pipelining and writes cut anywhere.
//!
//! The client scripts come from a seeded generator: `GET` and `HEAD` of
//! `/`, `/json` and unknown paths, `POST /echo` (and to unknown paths)
//! with `Content-Length` or chunked bodies (chunk sizes of 1 byte to 4 KiB,
//! extensions, trailers), bodies around `--max-response` (`500` past it)
//! and a `Content-Length` past `--max-body` (`413`), `Expect:
//! 100-continue`, HTTP/1.0 with and without keep-alive, `Connection:
//! close`, empty lines before a request, absolute-form targets, pipelined
//! bursts of up to 20, written whole, a byte at a time or cut at random.
//! Each answer is checked: its `100 Continue` where one is due, status,
//! `Content-Type`, `Content-Length`, `Connection`, content (the echo's
//! exactly the body sent; none for a `HEAD`), and nothing after the last
//! one: every script ends in the server's close (a request that closes,
//! or the client's half-close), so nothing here waits for time to pass.
//! `RINGMASTER_ROUTER_MODEL_SEED` and `RINGMASTER_ROUTER_MODEL_SCRIPTS`
//! override the fixed seed and count, to hunt.

use crate::library_examples::start_on;
use crate::util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use util::seeded::{env_number, random_chunked, Rng};
use util::*;

/// The seed the committed test runs with.
const SEED: u64 = 0x0e0c_4f5a_11d7_2b39;
/// Scripts per server (one per mode).
const SCRIPTS: usize = 400;
const SEED_ENV: &str = "RINGMASTER_ROUTER_MODEL_SEED";
const SCRIPTS_ENV: &str = "RINGMASTER_ROUTER_MODEL_SCRIPTS";
/// The example's limits: the engine's defaults (it configures none).
const MAX_RESPONSE: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;
/// How long a read may wait for the server's next bytes or its close.
const READ_WAIT: Duration = Duration::from_secs(5);
/// The most one connection's exchange may take in all.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(15);
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What an answer's content must be.
#[derive(Debug)]
enum Content {
    Exact(Vec<u8>),
    /// `/json`: `{"worker":N,"requests":M}`, its numbers the worker's.
    Json,
}

/// The answer one request must get.
#[derive(Debug)]
struct Expected {
    /// `100 Continue` comes first.
    continue_first: bool,
    status: u16,
    content_type: String,
    content: Content,
    /// A `HEAD`: the fields of the `GET`, no content.
    head_only: bool,
    /// The `Connection` field: none (HTTP/1.1 keep-alive), `keep-alive`
    /// (an HTTP/1.0 client that asked for it) or `close`.
    connection: Option<&'static str>,
}

/// What one client sends on one connection, and what it must get back.
struct Script {
    bytes: Vec<u8>,
    /// Offsets where one write ends and the next begins, increasing.
    cuts: Vec<usize>,
    expected: Vec<Expected>,
}

/// A body length: mostly small, some around `--max-response`.
fn body_len(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0..=3 => rng.between(0, 40),
        4..=7 => rng.between(0, 3000),
        8 => rng.between(MAX_RESPONSE - 2, MAX_RESPONSE + 2),
        _ => rng.between(3000, 20_000),
    }
}

/// One request and its answer; true when the connection ends after it.
fn request(rng: &mut Rng) -> (Vec<u8>, Expected, bool) {
    let http10 = rng.chance(15);
    let keep_alive = if http10 { rng.chance(70) } else { !rng.chance(8) };
    let route = rng.below(6);
    let head = route < 3 && rng.chance(30);
    let (method, target) = match route {
        0 => (if head { "HEAD" } else { "GET" }, rng.pick(&["/", "/?a=b", "http://h/"])),
        1 => (if head { "HEAD" } else { "GET" }, rng.pick(&["/json", "http://h:80/json?x"])),
        2 => (rng.pick(&[if head { "HEAD" } else { "GET" }, "POST"]), rng.pick(&["/nope", "/echo"])),
        _ => ("POST", rng.pick(&["/echo", "/echo?x=1", "http://h/echo"])),
    };
    let echo = method == "POST" && target.contains("/echo");
    let mut text = String::new();
    if rng.chance(5) {
        text.push_str("\r\n");
    }
    text.push_str(&format!("{method} {target} HTTP/1.{}\r\n", if http10 { 0 } else { 1 }));
    if !http10 || rng.chance(50) {
        text.push_str(rng.pick(&["Host: a\r\n", "host: example.com:8080\r\n"]));
    }
    match (http10, keep_alive) {
        (true, true) => text.push_str(rng.pick(&["Connection: keep-alive\r\n", "connection: Keep-Alive\r\n"])),
        (false, false) => text.push_str(rng.pick(&["Connection: close\r\n", "Connection: keep-alive, close\r\n"])),
        _ => {}
    }
    let content_type = (method == "POST" && rng.chance(30)).then(|| rng.pick(&["text/plain", "application/x-model"]));
    if let Some(kind) = content_type {
        text.push_str(&format!("Content-Type: {kind}\r\n"));
    }
    let connection = match (http10, keep_alive) {
        (_, false) => Some("close"),
        (true, true) => Some("keep-alive"),
        (false, true) => None,
    };
    if method == "POST" && rng.chance(3) {
        // Refused from its head: no body is sent, and the server closes.
        text.push_str(&format!("Content-Length: {}\r\n\r\n", MAX_BODY + 1));
        let refused = Expected {
            continue_first: false,
            status: 413,
            content_type: "text/plain".into(),
            content: Content::Exact(b"Content Too Large\n".to_vec()),
            head_only: false,
            connection: Some("close"),
        };
        return (text.into_bytes(), refused, true);
    }
    let body: Vec<u8> = if method == "POST" { (0..body_len(rng)).map(|_| rng.next() as u8).collect() } else { vec![] };
    let is_chunked = method == "POST" && !http10 && rng.chance(40);
    let expect = !http10 && (is_chunked || !body.is_empty()) && rng.chance(20);
    if expect {
        text.push_str("Expect: 100-continue\r\n");
    }
    let wire_body = if is_chunked {
        text.push_str("Transfer-Encoding: chunked\r\n");
        random_chunked(rng, &body)
    } else {
        if method == "POST" {
            text.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        body.clone()
    };
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(&wire_body);
    let (status, content_type, content) = match route {
        0 => (200, "text/plain".to_string(), Content::Exact(b"ringmaster router\n".to_vec())),
        1 => (200, "application/json".to_string(), Content::Json),
        _ if !echo => (404, "text/plain".to_string(), Content::Exact(b"not found\n".to_vec())),
        _ if body.len() > MAX_RESPONSE => {
            (500, "text/plain".to_string(), Content::Exact(b"Internal Server Error\n".to_vec()))
        }
        _ => (200, content_type.unwrap_or("application/octet-stream").to_string(), Content::Exact(body)),
    };
    let head_only = method == "HEAD";
    let expected = Expected { continue_first: expect, status, content_type, content, head_only, connection };
    (bytes, expected, !keep_alive)
}

fn script(rng: &mut Rng) -> Script {
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..rng.pick(&[1, 1, 2, 3, 8, 20]) {
        let (request, answer, ends) = request(rng);
        bytes.extend_from_slice(&request);
        expected.push(answer);
        if ends {
            break;
        }
    }
    let cuts = match rng.below(4) {
        0 => vec![],
        // A byte a write for the start (heads, chunk lines), then the rest.
        1 => (1..bytes.len().min(600)).collect(),
        2 => {
            let mut cuts: Vec<usize> = (0..rng.between(1, 40)).map(|_| rng.below(bytes.len())).collect();
            cuts.sort_unstable();
            cuts.dedup();
            cuts.retain(|&cut| cut > 0);
            cuts
        }
        _ => {
            let step = rng.between(1, 64);
            (step..bytes.len()).step_by(step).collect()
        }
    };
    Script { bytes, cuts, expected }
}

/// Runs `script` on a new connection to `addr`: the writes in a thread of
/// their own (a server answering while the client still writes must not
/// block it), the answer read here up to the server's close (see
/// [`read_to_close`]).
fn exchange(addr: SocketAddr, script: &Script) -> (Vec<u8>, io::ErrorKind) {
    let stream = connect(addr);
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream.set_read_timeout(Some(READ_WAIT)).expect("read timeout");
    let writer = stream.try_clone().expect("clone the client socket");
    thread::scope(|scope| {
        scope.spawn(move || write_script(writer, script));
        read_to_close(stream)
    })
}

fn write_script(mut stream: TcpStream, script: &Script) {
    let mut from = 0;
    for &to in script.cuts.iter().chain([script.bytes.len()].iter()) {
        // A server that refused a request may close before it has read the rest.
        if stream.write_all(&script.bytes[from..to]).is_err() {
            return;
        }
        from = to;
    }
    // The end of the script: the server closes once it has answered all
    // (or at once, after a request that closes or one it refused).
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads until the server closes; the bytes and how the stream ended
/// (`UnexpectedEof` for a close, `TimedOut` for none within the limits).
fn read_to_close(mut stream: TcpStream) -> (Vec<u8>, io::ErrorKind) {
    let deadline = Instant::now() + EXCHANGE_LIMIT;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if Instant::now() >= deadline {
            return (answer, io::ErrorKind::TimedOut);
        }
        match stream.read(&mut buffer) {
            Ok(0) => return (answer, io::ErrorKind::UnexpectedEof),
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return (answer, io::ErrorKind::TimedOut)
            }
            Err(e) => return (answer, e.kind()),
        }
    }
}

/// Checks `answer` holds exactly the `expected` answers, in order.
fn check(answer: &[u8], expected: &[Expected]) -> Result<(), String> {
    let mut at = 0;
    for (index, want) in expected.iter().enumerate() {
        match check_one(&answer[at..], want) {
            Ok(len) => at += len,
            Err(what) => return Err(format!("answer {index} (from byte {at}; expected {want:?}): {what}")),
        }
    }
    if at != answer.len() {
        return Err(format!("{} bytes after the last answer: {}", answer.len() - at, excerpt(&answer[at..])));
    }
    Ok(())
}

/// Checks that `answer` starts with the answer `want`; its length.
fn check_one(answer: &[u8], want: &Expected) -> Result<usize, String> {
    let interim = if want.continue_first { CONTINUE.len() } else { 0 };
    if !answer.starts_with(&CONTINUE[..interim]) {
        return Err("no `100 Continue` before it".into());
    }
    let rest = &answer[interim..];
    let head_len = rest.windows(4).position(|w| w == b"\r\n\r\n").map(|end| end + 4).ok_or("no complete head")?;
    let head = String::from_utf8_lossy(&rest[..head_len - 4]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let fields: Vec<(String, &str)> =
        lines.filter_map(|line| line.split_once(": ").map(|(n, v)| (n.to_ascii_lowercase(), v))).collect();
    let field = |name: &str| {
        let mut values = fields.iter().filter(|(n, _)| n == name).map(|(_, v)| *v);
        match (values.next(), values.next()) {
            (_, Some(_)) => Err(format!("two `{name}` fields in {head:?}")),
            (first, None) => Ok(first),
        }
    };
    let status = status_line.strip_prefix("HTTP/1.1 ").and_then(|s| s.get(..3)).and_then(|s| s.parse().ok());
    if status != Some(want.status) {
        return Err(format!("status line {status_line:?}"));
    }
    let (content_type, connection) = (field("content-type")?, field("connection")?);
    if content_type != Some(want.content_type.as_str()) || connection != want.connection {
        return Err(format!("Content-Type {content_type:?}, Connection {connection:?}"));
    }
    if field("server")? != Some("ringmaster") || field("date")?.is_none() {
        return Err(format!("no `Server: ringmaster` or no `Date` in {head:?}"));
    }
    let length: usize = field("content-length")?.and_then(|v| v.parse().ok()).ok_or("no Content-Length")?;
    let content_len = if want.head_only { 0 } else { length };
    let content = rest.get(head_len..head_len + content_len).ok_or("the content is cut short")?;
    let as_modelled = match &want.content {
        Content::Exact(bytes) => length == bytes.len() && (want.head_only || content == bytes),
        Content::Json => want.head_only || (content.starts_with(b"{\"worker\":") && content.ends_with(b"}")),
    };
    if !as_modelled {
        return Err(format!("Content-Length {length}, content {}", excerpt(content)));
    }
    Ok(interim + head_len + content_len)
}

/// `bytes`, escaped, cut at 600 bytes.
fn excerpt(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(600)];
    let more = bytes.len() - shown.len();
    format!("\"{}\"{}", shown.escape_ascii(), if more > 0 { format!("... ({more} bytes more)") } else { String::new() })
}

fn the_routers_answers_match_the_model(backend: &str) {
    let seed = env_number(SEED_ENV).unwrap_or(SEED);
    let scripts = env_number(SCRIPTS_ENV).map_or(SCRIPTS, |n| n as usize);
    for mode in ["rr", "shared"] {
        let server = start_on("router", mode, backend);
        let started = Instant::now();
        let mut rng = Rng::new(seed);
        let mut answers = 0;
        for index in 0..scripts {
            let script = script(&mut rng);
            let (answer, end) = exchange(server.addr(), &script);
            let verdict = check(&answer, &script.expected).and_then(|()| match end {
                io::ErrorKind::UnexpectedEof => Ok(()),
                other => Err(format!("the stream ended in {other:?}, not the server's close")),
            });
            if let Err(what) = verdict {
                panic!(
                    "seed {seed:#x}, script {index}, --mode {mode} on {backend}: {what}\n  script ({} bytes, writes ending at {:?}): {}\n  answer ({} bytes): {}",
                    script.bytes.len(),
                    script.cuts,
                    excerpt(&script.bytes),
                    answer.len(),
                    excerpt(&answer)
                );
            }
            answers += script.expected.len();
        }
        eprintln!(
            "seed {seed:#x}, --mode {mode} on {backend}: {scripts} scripts, {answers} answers as modelled in {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn the_routers_answers_match_the_model_uring() {
    the_routers_answers_match_the_model("uring");
}

#[test]
fn the_routers_answers_match_the_model_epoll() {
    the_routers_answers_match_the_model("epoll");
}
