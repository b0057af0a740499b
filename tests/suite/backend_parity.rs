//! The two worker backends answer alike. Both drivers run the one connection
//! state machine, so the same client bytes, split into the same writes, must
//! get the same answer bytes (the `Date` value aside) and the same end
//! (closed, or kept open) from a worker on io_uring and one on epoll, in
//! `shared` mode (connections the worker accepts) and in `rr` (connections
//! the master hands over).
//!
//! The client scripts come from a seeded generator: GET, HEAD and POST with
//! `Content-Length` or chunked bodies (extensions, trailers), `Connection:
//! close` and keep-alive, HTTP/1.0 with and without keep-alive, `Expect:
//! 100-continue`, pipelined bursts, malformed requests (bad chunk sizes,
//! oversized headers, bad versions, conflicting lengths, bare LF, NUL bytes),
//! a request cut short, a request line written a few bytes at a time, a
//! half-close at the end, a client that reads only once it has written
//! everything. `RINGMASTER_PARITY_SEED` and `RINGMASTER_PARITY_SCRIPTS`
//! override the fixed seed and count, to hunt: a difference is printed with
//! its seed, its script and both answers.
//!
//! Nothing here waits for time to pass: each exchange ends at the server's
//! close, which every script brings about (a request that closes, an
//! error, the client's half-close, or the probe below), and a wait of
//! [`READ_WAIT`] only ever ends one that differs.

use crate::util;

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use util::seeded::{env_number, random_chunked, Rng};
use util::*;

/// The seed the committed test runs with.
const SEED: u64 = 0x005e_ed0f_b4c6_e2d5;
/// Scripts per run: each runs on four servers (two backends, two modes).
const SCRIPTS: usize = 300;
const SEED_ENV: &str = "RINGMASTER_PARITY_SEED";
const SCRIPTS_ENV: &str = "RINGMASTER_PARITY_SCRIPTS";
/// Small limits, so that 413 and 431 cost little to reach.
const MAX_HEADER: usize = 1024;
const MAX_BODY: usize = 4096;
/// How long a read may wait for the server's next bytes or its close. Only
/// a connection the server keeps open when the script expects a close waits
/// this long (that is a difference, or one the script cannot foresee).
const READ_WAIT: Duration = Duration::from_secs(5);
/// The most one connection's exchange may take in all.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(15);
/// The most a script sends when its client reads only after writing it
/// all: far less than a loopback socket's receive buffer starts with.
const LAZY_READER_BYTES: usize = 64 * 1024;
/// Sent on a connection the script leaves open once every answer is in:
/// answered and closed when the server kept the connection, unanswered when
/// it did not. It makes "kept open" something the client sees at once.
const PROBE: &[u8] = b"GET /probe HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n";

/// What the server does after one piece of a script, as far as the
/// generator can tell in advance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    /// A request answered `200` (its `100 Continue` first, if it asked)
    /// that keeps the connection.
    KeepsOpen,
    /// The client asked to close: the server closes after its answer.
    ClientCloses,
    /// Refused: the server answers with an error and closes.
    Refused,
    /// Malformed in a way a lenient parser might still accept: the script
    /// half-closes at its end, so that the server closes whichever it is.
    Either,
    /// Cut short: it never completes (the script's last piece).
    Incomplete,
}

/// One request (or what passes for one) of a script.
struct Piece {
    bytes: Vec<u8>,
    after: After,
}

/// What one client sends on one connection.
struct Script {
    bytes: Vec<u8>,
    /// Offsets where one write ends and the next begins, increasing.
    cuts: Vec<usize>,
    /// `shutdown(SHUT_WR)` once everything is written.
    half_close: bool,
    /// The client reads nothing until it has written everything: the
    /// answers pile up and the server must hold back (kept to scripts the
    /// sockets' buffers hold whole, so that neither side waits on the other).
    read_after_writing: bool,
    /// The script leaves the connection open: once this many `200` answers
    /// are in, [`PROBE`] is sent.
    probe_after: Option<usize>,
    /// A request that asks to close has bytes after it. The server closes at
    /// once when they are not in the read that brought the request, and
    /// reads them away first (lingering) when they are: then the client sees
    /// an end of stream, else its late bytes meet a closed socket and it sees
    /// a reset. Which read they fall in is a matter of timing on both sides
    /// of the socket, not of the driver.
    reset_may_replace_eof: bool,
}

impl Script {
    fn describe(&self) -> String {
        let mut text = format!(
            "{} bytes, writes ending at {:?}, half-close {}, read after writing {}, probe after {:?} answers\n",
            self.bytes.len(),
            self.cuts,
            self.half_close,
            self.read_after_writing,
            self.probe_after
        );
        let _ = write!(text, "  {}", excerpt(&self.bytes, 0));
        text
    }
}

/// `name` in one of the cases a client might write it in.
fn field_name(rng: &mut Rng, name: &str) -> String {
    match rng.below(4) {
        0 => name.to_ascii_lowercase(),
        1 => name.to_ascii_uppercase(),
        _ => name.to_string(),
    }
}

fn path(rng: &mut Rng) -> String {
    let path = rng.pick(&["/", "/index.html", "/a/b/c", "/search?q=x&y=1", "/%41%42", "/probe"]);
    path.to_string()
}

/// A few extra fields a server must ignore.
fn extra_fields(rng: &mut Rng, head: &mut String) {
    for i in 0..rng.below(4) {
        let value = rng.pick(&["1", "text/plain", "a, b,c", "  spaced  ", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]);
        let _ = write!(head, "{}: {}\r\n", field_name(rng, &format!("X-Extra-{i}")), value);
    }
}

/// A request the server answers `200`: keep-alive or closing, with or
/// without a body, maybe asking for `100 Continue`; or one over the body
/// limit (`413`).
fn request(rng: &mut Rng) -> Piece {
    let http10 = rng.chance(15);
    let method = match rng.below(20) {
        0..=8 => "GET",
        9..=12 => "HEAD",
        _ => "POST",
    };
    let mut head = format!("{method} {} HTTP/1.{}\r\n", path(rng), if http10 { 0 } else { 1 });
    if !http10 || rng.chance(50) {
        let _ = write!(head, "{}: example.com\r\n", field_name(rng, "Host"));
    }
    let keep_alive = if http10 {
        let asks = rng.chance(60);
        if asks {
            let _ = write!(head, "{}: {}\r\n", field_name(rng, "Connection"), rng.pick(&["keep-alive", "Keep-Alive"]));
        }
        asks
    } else if rng.chance(12) {
        let _ = write!(head, "{}: {}\r\n", field_name(rng, "Connection"), rng.pick(&["close", "Close", "te, close"]));
        false
    } else {
        if rng.chance(10) {
            let _ = write!(head, "Connection: keep-alive\r\n");
        }
        true
    };
    extra_fields(rng, &mut head);
    let mut body = Vec::new();
    let mut after = if keep_alive { After::KeepsOpen } else { After::ClientCloses };
    if method == "POST" || rng.chance(5) {
        if rng.chance(20) {
            let _ = write!(head, "{}: 100-continue\r\n", field_name(rng, "Expect"));
        }
        let len = match rng.below(40) {
            0 => rng.between(MAX_BODY + 1, MAX_BODY + 2000),
            1..=3 => rng.between(1000, MAX_BODY),
            4..=6 => 0,
            _ => rng.between(1, 400),
        };
        if len > MAX_BODY {
            after = After::Refused;
        }
        if !http10 && rng.chance(50) {
            let _ = write!(head, "{}: chunked\r\n", field_name(rng, "Transfer-Encoding"));
            body = random_chunked(rng, &vec![b'c'; len]);
        } else {
            let _ = write!(head, "{}: {len}\r\n", field_name(rng, "Content-Length"));
            // Over the limit the answer does not wait for the body: send
            // some of it, which the server discards while it lingers.
            body = vec![b'b'; len.min(MAX_BODY + 100)];
        }
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    Piece { bytes, after }
}

/// A request the server must refuse (then close), or one only a lenient
/// parser would take.
fn malformed(rng: &mut Rng) -> Piece {
    let host = "Host: example.com\r\n";
    let refused = |text: String| Piece { bytes: text.into_bytes(), after: After::Refused };
    let either = |bytes: Vec<u8>| Piece { bytes, after: After::Either };
    match rng.below(18) {
        0 => refused(format!("POST / HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")),
        1 => refused(format!(
            "POST / HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"
        )),
        2 => refused(format!("POST / HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n")),
        3 => refused(format!("GET / HTTP/1.1\r\n{host}X-Big: {}\r\n\r\n", "a".repeat(rng.between(MAX_HEADER, 3000)))),
        4 => refused(format!("GET /{} HTTP/1.1\r\n{host}\r\n", "p".repeat(rng.between(MAX_HEADER, 2000)))),
        5 => refused(format!(
            "GET / {}\r\n{host}\r\n",
            rng.pick(&["HTTP/2.0", "HTTP/3.0", "HTTP/1.x", "HTTP/11", "FTP/1.1"])
        )),
        6 => refused(format!("POST / HTTP/1.1\r\n{host}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")),
        7 => refused(format!(
            "POST / HTTP/1.1\r\n{host}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )),
        8 => refused(format!("POST / HTTP/1.1\r\n{host}Transfer-Encoding: gzip\r\n\r\n")),
        9 => refused(format!("POST / HTTP/1.1\r\n{host}Expect: the-unexpected\r\nContent-Length: 1\r\n\r\nx")),
        10 => refused("GET / HTTP/1.1\r\nX-No-Host: 1\r\n\r\n".to_string()),
        11 => refused(format!("GET / HTTP/1.1\r\n{host}{host}\r\n")),
        12 => refused(format!("CONNECT example.com:443 HTTP/1.1\r\n{host}\r\n")),
        13 => refused(format!("GET / HTTP/1.1\r\n{host}{}\r\n", "X-Many: 1\r\n".repeat(70))),
        14 => refused(format!("POST / HTTP/1.1\r\n{host}Content-Length: -1\r\n\r\n")),
        15 => either(format!("GET / HTTP/1.1\n{host}X-Bare: lf\n\n").into_bytes()),
        16 => {
            let mut bytes = format!("GET / HTTP/1.1\r\n{host}X-Nul: a").into_bytes();
            bytes.extend_from_slice(b"\0b\r\n\r\n");
            either(bytes)
        }
        _ => either(format!("GET /\0 HTTP/1.1\r\n{host}\r\n").into_bytes()),
    }
}

/// A script: a few requests (or a pipelined burst), maybe malformed ones,
/// maybe one cut short at the end, the writes' cuts and the half-close.
fn script(rng: &mut Rng) -> Script {
    let mut pieces = Vec::new();
    let burst = match rng.below(100) {
        0..=7 => rng.between(20, 150),
        // More than a connection's carry buffer holds while its answers go out.
        8..=10 => rng.between(400, 3000),
        _ => 0,
    };
    if burst > 0 {
        // A pipelined burst of small requests; GET and HEAD mixed, so that
        // their answers make many runs and the reply queue fills.
        let heads = rng.between(5, 40);
        for _ in 0..burst {
            let method = if rng.chance(heads) { "HEAD" } else { "GET" };
            let bytes = format!("{method} /{} HTTP/1.1\r\nHost: a\r\n\r\n", pieces.len()).into_bytes();
            pieces.push(Piece { bytes, after: After::KeepsOpen });
        }
    }
    for _ in 0..rng.between(1, 6) {
        pieces.push(if rng.chance(15) { malformed(rng) } else { request(rng) });
    }
    if rng.chance(10) {
        let whole = request(rng).bytes;
        let cut = rng.between(1, whole.len() - 1);
        pieces.push(Piece { bytes: whole[..cut].to_vec(), after: After::Incomplete });
    }
    let bytes: Vec<u8> = pieces.iter().flat_map(|p| p.bytes.iter().copied()).collect();

    let mut cuts = Vec::new();
    if rng.chance(15) {
        // The first request line a few bytes at a time.
        let line_end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len()).min(80);
        let mut at = 0;
        while at < line_end {
            at += rng.between(1, 3);
            cuts.push(at);
        }
    }
    for _ in 0..rng.below(6) {
        cuts.push(rng.between(1, bytes.len()));
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.retain(|&at| at > 0 && at < bytes.len());

    // Up to the first piece the server closes after, does the script leave the connection open?
    let mut answers = 0;
    let mut closes = false;
    let mut foreseen = true;
    let mut reset_may_replace_eof = false;
    for (index, piece) in pieces.iter().enumerate() {
        match piece.after {
            After::KeepsOpen => answers += 1,
            After::ClientCloses | After::Refused => {
                closes = true;
                reset_may_replace_eof = piece.after == After::ClientCloses && index + 1 < pieces.len();
                break;
            }
            After::Either | After::Incomplete => foreseen = false,
        }
    }
    // A connection left open and not foreseeable would wait for a timeout:
    // the half-close makes the server close it once it has answered.
    let half_close = (!closes && !foreseen) || rng.chance(25);
    let probe_after = (!closes && !half_close).then_some(answers);
    let read_after_writing = bytes.len() <= LAZY_READER_BYTES && rng.chance(20);
    Script { bytes, cuts, half_close, read_after_writing, probe_after, reset_may_replace_eof }
}

/// How the server ended the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// End of stream.
    Closed,
    /// ECONNRESET.
    Reset,
    /// Nothing more within [`READ_WAIT`]: the connection is open.
    Open,
}

/// What one server answered to one script.
#[derive(Debug)]
struct Outcome {
    answer: Vec<u8>,
    end: End,
}

/// Runs `script` on a new connection to `addr`: the writes in a thread of
/// their own (a server answering while the client still writes must not
/// block it), the answer read here.
fn exchange(addr: SocketAddr, script: &Script) -> Outcome {
    let stream = connect(addr);
    stream.set_read_timeout(Some(READ_WAIT)).unwrap();
    let writer = stream.try_clone().expect("clone the client socket");
    thread::scope(|scope| {
        let writing = scope.spawn(move || write_script(writer, script));
        if script.read_after_writing {
            writing.join().expect("the client's writes");
        }
        read_answer(stream, script)
    })
}

fn write_script(mut stream: TcpStream, script: &Script) {
    let mut from = 0;
    for &to in script.cuts.iter().chain([script.bytes.len()].iter()) {
        // The server may answer and close before it has read everything.
        if stream.write_all(&script.bytes[from..to]).is_err() {
            return;
        }
        from = to;
    }
    if script.half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
}

fn read_answer(mut stream: TcpStream, script: &Script) -> Outcome {
    let deadline = Instant::now() + EXCHANGE_LIMIT;
    let mut answer = Vec::new();
    let mut probed = false;
    let mut buffer = [0u8; 16 * 1024];
    let end = loop {
        if let Some(answers) = script.probe_after.filter(|_| !probed) {
            if count(&answer, b"HTTP/1.1 200 ") >= answers {
                probed = true;
                // A server that closed may have reset the connection by now.
                let _ = stream.write_all(PROBE);
            }
        }
        if Instant::now() >= deadline {
            break End::Open;
        }
        match stream.read(&mut buffer) {
            Ok(0) => break End::Closed,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break End::Reset,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break End::Open,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading an answer: {e}"),
        }
    };
    Outcome { answer: without_date_values(&answer), end }
}

/// Bytes of a script or an answer shown in a report.
const EXCERPT: usize = 1200;

/// `bytes[from..]`, escaped, cut at [`EXCERPT`] bytes.
fn excerpt(bytes: &[u8], from: usize) -> String {
    let shown = &bytes[from.min(bytes.len())..(from + EXCERPT).min(bytes.len())];
    let cut = if from + EXCERPT < bytes.len() {
        format!("... ({} bytes more)", bytes.len() - from - EXCERPT)
    } else {
        String::new()
    };
    format!("\"{}\"{cut}", shown.escape_ascii())
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// `answer` with every `Date` field's value replaced by `*`: the one part of
/// an answer that depends on when it was made.
fn without_date_values(answer: &[u8]) -> Vec<u8> {
    const FIELD: &[u8] = b"\r\nDate: ";
    let mut out = Vec::with_capacity(answer.len());
    let mut rest = answer;
    while let Some(at) = rest.windows(FIELD.len()).position(|w| w == FIELD) {
        out.extend_from_slice(&rest[..at + FIELD.len()]);
        rest = &rest[at + FIELD.len()..];
        let value_len = rest.windows(2).position(|w| w == b"\r\n").unwrap_or(rest.len());
        out.push(b'*');
        rest = &rest[value_len..];
    }
    out.extend_from_slice(rest);
    out
}

/// One worker on `backend` in `mode`, with the small limits.
fn server(backend: &str, mode: &str) -> Server {
    let (max_header, max_body) = (MAX_HEADER.to_string(), MAX_BODY.to_string());
    let s = Server::start(&[
        "--backend",
        backend,
        "--mode",
        mode,
        "--workers",
        "1",
        "--no-pin",
        "--max-header",
        &max_header,
        "--max-body",
        &max_body,
    ]);
    s.wait_workers_ready(1, START_TIMEOUT);
    s
}

#[test]
fn uring_and_epoll_workers_answer_the_same_bytes_and_close_alike() {
    if let Err(e) = ringmaster_engine::backend::probe_uring() {
        eprintln!("skipped: io_uring is unavailable here ({e})");
        return;
    }
    let seed = env_number(SEED_ENV).unwrap_or(SEED);
    let scripts = env_number(SCRIPTS_ENV).map_or(SCRIPTS, |n| n as usize);
    let mut rng = Rng::new(seed);
    let scripts: Vec<Script> = (0..scripts).map(|_| script(&mut rng)).collect();

    let modes = ["shared", "rr"];
    let servers: Vec<(Server, Server)> =
        modes.iter().map(|mode| (server("uring", mode), server("epoll", mode))).collect();
    let started = Instant::now();
    let mut differences = Vec::new();
    // What the scripts drew from the servers, to show the test reaches the cases it means to.
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    let mut ends = std::collections::BTreeMap::<String, usize>::new();
    for (index, script) in scripts.iter().enumerate() {
        // The four exchanges at once: a difference that waits for a timeout
        // costs one wait, not four.
        let outcomes: Vec<(Outcome, Outcome)> = thread::scope(|scope| {
            let runs: Vec<_> = servers
                .iter()
                .map(|(uring, epoll)| {
                    let (uring, epoll) = (uring.addr(), epoll.addr());
                    (scope.spawn(move || exchange(uring, script)), scope.spawn(move || exchange(epoll, script)))
                })
                .collect();
            runs.into_iter()
                .map(|(u, e)| (u.join().expect("uring exchange"), e.join().expect("epoll exchange")))
                .collect()
        });
        for (mode, (uring, epoll)) in modes.iter().zip(&outcomes) {
            for outcome in [uring, epoll] {
                *ends.entry(format!("{:?}", outcome.end)).or_default() += 1;
                for at in 0..outcome.answer.len().saturating_sub(12) {
                    if outcome.answer[at..].starts_with(b"HTTP/1.1 ") {
                        *statuses
                            .entry(String::from_utf8_lossy(&outcome.answer[at + 9..at + 12]).into())
                            .or_default() += 1;
                    }
                }
            }
            let ends_alike = uring.end == epoll.end
                || (script.reset_may_replace_eof && [uring.end, epoll.end].iter().all(|&end| end != End::Open));
            if uring.answer != epoll.answer || !ends_alike {
                let at = uring.answer.iter().zip(&epoll.answer).position(|(u, e)| u != e);
                let at = at.unwrap_or(uring.answer.len().min(epoll.answer.len()));
                let from = at.saturating_sub(EXCERPT / 2);
                differences.push(format!(
                    "seed {seed:#x}, script {index}, --mode {mode}:\n{}\n  answers differ from byte {at} on; from byte {from}:\n  \
                     uring ({:?}, {} bytes, {} answers): {}\n  epoll ({:?}, {} bytes, {} answers): {}",
                    script.describe(),
                    uring.end,
                    uring.answer.len(),
                    count(&uring.answer, b"HTTP/1.1 "),
                    excerpt(&uring.answer, from),
                    epoll.end,
                    epoll.answer.len(),
                    count(&epoll.answer, b"HTTP/1.1 "),
                    excerpt(&epoll.answer, from)
                ));
            }
        }
    }
    eprintln!(
        "seed {seed:#x}: {} scripts on {} servers in {:?}; answers {statuses:?}; ends {ends:?}; {} differences",
        scripts.len(),
        2 * modes.len(),
        started.elapsed(),
        differences.len()
    );
    for difference in differences.iter().take(5) {
        eprintln!("{difference}\n");
    }
    assert!(differences.is_empty(), "{} exchanges differ between uring and epoll (first above)", differences.len());
}
