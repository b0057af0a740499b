//! A library user's handler that misuses the response API, as a Node user
//! bringing their own `createServer` handler might: fields the engine sets
//! itself, CR/LF in a value, a body on a `204`/`304`/`205` or a `HEAD`, a
//! status out of range, an answer larger than `--max-response`, a panic
//! mid-pipeline, an echo of a chunked body split over many reads. On the
//! wire every answer is whole and framed as HTTP says, in order, one per
//! request, on both backends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringmaster_engine::{Backend, EngineConfig, Handler, Request, Response};

mod in_process;

/// Most body bytes a response may carry here (`--max-response`).
const MAX_RESPONSE: usize = 1024;

struct Misuse;

impl Handler for Misuse {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        match req.path() {
            "/engine-fields" => {
                res.header("Content-Length", "3")
                    .header("Transfer-Encoding", "chunked")
                    .header("Connection", "close")
                    .header("Date", "yesterday")
                    .body(b"hello");
            }
            "/inject" => {
                res.header("X-A", "a\r\nX-Injected: yes").body(b"x");
            }
            "/inject-lf" => {
                res.header("X-A", "a\nX-Injected: yes").body(b"x");
            }
            "/inject-name" => {
                res.header("X-Injected: yes\r\nX-B", "b").body(b"x");
            }
            "/204" => {
                res.status(204).body(b"no content carries this");
            }
            "/304" => {
                res.status(304).header("ETag", "\"a\"").body(b"not modified carries this");
            }
            "/205" => {
                res.status(205).body(b"reset carries this");
            }
            "/101" => {
                res.status(101).header("Upgrade", "websocket").body(b"x");
            }
            "/600" => {
                res.status(600).body(b"x");
            }
            "/big" => {
                res.body(&[b'b'; MAX_RESPONSE + 1]);
            }
            "/exact" => {
                res.body(&[b'e'; MAX_RESPONSE]);
            }
            "/fields" => {
                for i in 0..200 {
                    res.header("X-Many", format!("{i:040}"));
                }
            }
            "/length" => {
                res.body(req.body().len().to_string().as_bytes());
            }
            "/panic" => {
                res.body(b"half");
                panic!("the handler panics (expected by the test)");
            }
            _ => {
                res.header("X-Method", req.method()).body(req.body());
            }
        }
    }
}

/// One answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one answer per entry of `head_only` off `stream` (true: it
/// answers a `HEAD`, no body whatever its `Content-Length`), then, when the
/// worker `closes`, up to its FIN; nothing else may come.
fn read_answers(stream: &mut TcpStream, head_only: &[bool], closes: bool) -> Vec<Answer> {
    let mut bytes = Vec::new();
    let mut answers = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut eof = false;
    while answers.len() < head_only.len() {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end + 2]).to_string();
            let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let length: Option<usize> = head
                .lines()
                .find_map(|line| line.strip_prefix("Content-Length: "))
                .map(|n| n.trim().parse().expect("a length"));
            let bodyless = head_only[answers.len()] || status == 204 || status == 304;
            let length = if bodyless { 0 } else { length.expect("a Content-Length") };
            if bytes.len() >= end + 4 + length {
                let body = bytes[end + 4..end + 4 + length].to_vec();
                bytes.drain(..end + 4 + length);
                answers.push(Answer { status, head, body });
                continue;
            }
        }
        assert!(
            !eof,
            "the worker closed with {} answers whole, {:?} left",
            answers.len(),
            String::from_utf8_lossy(&bytes)
        );
        let n = stream.read(&mut chunk).expect("read an answer");
        eof = n == 0;
        bytes.extend_from_slice(&chunk[..n]);
    }
    if closes {
        // Nothing after the last answer: the worker closes.
        loop {
            let n = stream.read(&mut chunk).expect("read to the end");
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
    }
    assert!(bytes.is_empty(), "bytes after the answers: {:?}", String::from_utf8_lossy(&bytes));
    answers
}

fn connect(address: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

fn misuse_is_answered_whole(backend: Backend) {
    let config = EngineConfig { backend, max_response: MAX_RESPONSE, ..EngineConfig::default() };
    let (worker, address) = in_process::spawn_on_loopback(config, Misuse);

    // Everything but the panic, pipelined in one write, each as GET and HEAD.
    let paths = [
        "/engine-fields",
        "/inject",
        "/inject-lf",
        "/inject-name",
        "/204",
        "/304",
        "/205",
        "/101",
        "/600",
        "/big",
        "/exact",
        "/fields",
    ];
    let mut stream = connect(address);
    let mut requests = Vec::new();
    let mut head_only = Vec::new();
    for path in paths {
        for method in ["GET", "HEAD"] {
            requests.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
            head_only.push(method == "HEAD");
        }
    }
    stream.write_all(&requests).expect("send");
    let answers = read_answers(&mut stream, &head_only, false);
    for (i, answer) in answers.iter().enumerate() {
        let (path, head) = (paths[i / 2], head_only[i]);
        let what = format!("{} {path}: {answer:?}", if head { "HEAD" } else { "GET" });
        assert!(!answer.head.contains("X-Injected"), "{what}");
        assert_eq!(
            answer.head.matches("Content-Length").count(),
            usize::from(!matches!(answer.status, 204 | 304)),
            "{what}"
        );
        assert!(!answer.head.contains("Transfer-Encoding") && !answer.head.contains("Connection"), "{what}");
        assert_eq!(answer.head.matches("Date: ").count(), 1, "{what}");
        if head {
            assert!(answer.body.is_empty(), "{what}");
        }
        let expected_status = match path {
            "/inject" | "/inject-lf" | "/inject-name" | "/101" | "/600" | "/big" | "/fields" => 500,
            "/204" => 204,
            "/304" => 304,
            "/205" => 205,
            _ => 200,
        };
        assert_eq!(answer.status, expected_status, "{what}");
        match path {
            "/engine-fields" if !head => assert_eq!(answer.body, b"hello", "{what}"),
            "/exact" if !head => assert_eq!(answer.body, [b'e'; MAX_RESPONSE], "{what}"),
            "/205" => {
                assert!(answer.body.is_empty() && answer.head.contains("Content-Length: 0\r\n"), "{what}")
            }
            _ => {}
        }
    }

    // Closed now, so that the worker's drain does not keep it for a next request.
    drop(stream);

    // A panic mid-pipeline: the answers before it, its 500, and the close.
    let mut stream = connect(address);
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\
              GET /panic HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .expect("send");
    let answers = read_answers(&mut stream, &[false, false], true);
    assert_eq!((answers[0].status, &answers[0].body[..]), (200, &b"hi"[..]));
    assert_eq!(answers[1].status, 500);
    assert!(answers[1].head.contains("Connection: close\r\n"), "{:?}", answers[1]);
    // Our FIN ends the worker's linger, which a drain would wait for.
    drop(stream);

    // A chunked body cut in every place, echoed whole; then the next request.
    let body: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut chunked = Vec::new();
    for piece in body.chunks(7) {
        chunked.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    let mut stream = connect(address);
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n".to_vec();
    request.extend_from_slice(&chunked);
    request.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    for piece in request.chunks(13) {
        stream.write_all(piece).expect("send a piece");
        in_process::wait_all_acknowledged(&stream);
    }
    let mut continued = [0u8; 25];
    stream.read_exact(&mut continued).expect("100 Continue");
    assert_eq!(&continued, b"HTTP/1.1 100 Continue\r\n\r\n");
    let answers = read_answers(&mut stream, &[false, false], false);
    assert_eq!(answers[0].status, 200);
    assert!(answers[0].body == body, "{:?}", String::from_utf8_lossy(&answers[0].body));
    assert_eq!((answers[1].status, answers[1].body.len()), (200, 0));
    drop(stream);
    worker.stop();
}

#[test]
fn uring_misuse_is_answered_whole() {
    misuse_is_answered_whole(Backend::Uring);
}

#[test]
fn epoll_misuse_is_answered_whole() {
    misuse_is_answered_whole(Backend::Epoll);
}

/// A client whose body is too slow gets `408`, and while it sends on (its
/// connection lingers, up to 30 s) the body buffer it held is free for the
/// next upload: with one buffer, that upload is answered, not `503`.
fn a_408_frees_its_body_buffer(backend: Backend) {
    const UPLOAD: usize = 500_000;
    let config = EngineConfig {
        backend,
        max_response: MAX_RESPONSE,
        body_buffers: 1,
        body_timeout: Duration::from_millis(200),
        ..EngineConfig::default()
    };
    let (worker, address) = in_process::spawn_on_loopback(config, Misuse);
    let mut slow = connect(address);
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nabc").expect("send");
    let mut head = [0u8; 12];
    slow.read_exact(&mut head).expect("the 408");
    assert_eq!(&head, b"HTTP/1.1 408");
    // Still sending: the worker lingers, discarding (2 s from this byte).
    slow.write_all(b"d").expect("send on");
    // Larger than any one read takes: the body is gathered in a buffer.
    let mut upload = connect(address);
    let mut request = format!("POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: {UPLOAD}\r\n\r\n").into_bytes();
    request.resize(request.len() + UPLOAD, b'u');
    upload.write_all(&request).expect("send the upload");
    let answers = read_answers(&mut upload, &[false], false);
    assert_eq!(
        (answers[0].status, answers[0].body.clone()),
        (200, UPLOAD.to_string().into_bytes()),
        "{:?}",
        answers[0]
    );
    drop((slow, upload));
    worker.stop();
}

#[test]
fn uring_a_408_frees_its_body_buffer() {
    a_408_frees_its_body_buffer(Backend::Uring);
}

#[test]
fn epoll_a_408_frees_its_body_buffer() {
    a_408_frees_its_body_buffer(Backend::Epoll);
}
