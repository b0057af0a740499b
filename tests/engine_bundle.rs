//! Input that spans several receive buffers comes out whole and in order:
//! with io_uring receive bundles one completion fills several buffers, and
//! the worker must offer them in the order the kernel filled them (the
//! ring's order, not buffer ids: buffers come back out of order). Small
//! receive buffers make every request head, body and pipelined burst span
//! several; two clients at once make the buffers come back interleaved.
//! The epoll driver runs the same traffic.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::thread;
use std::time::Duration;

use ringmaster_engine::{Backend, EngineConfig};

mod in_process;
use in_process::{Feed, InProcessWorker};

/// The example's application, run in process: `POST /echo` answers the body
/// with the request's `Content-Type`.
#[allow(dead_code)]
#[path = "../examples/router.rs"]
mod router;

/// Receive buffer size: a request head is several of them.
const BUFFER: u32 = 128;
const CLIENTS: usize = 2;
const ROUNDS: usize = 20;
/// Requests pipelined after the large first one, in the same write.
const PIPELINED: usize = 30;
/// Requests of the client that does not read its answers for a while.
const HOG_REQUESTS: usize = 5000;

fn start_worker(backend: Backend, listener: OwnedFd) -> InProcessWorker {
    InProcessWorker::spawn(move |shutdown| {
        let config = EngineConfig {
            backend,
            max_conns: 16,
            recv_buffers: 512,
            recv_buffer_size: BUFFER,
            ..EngineConfig::default()
        };
        in_process::serve(&config, Feed::Listener(listener), shutdown, &mut router::Router::new(1))
    })
}

/// The body and content type of request `index` of a round: lengths vary,
/// contents name their request so a misplaced byte shows.
fn request_parts(client: usize, round: usize, index: usize) -> (String, Vec<u8>) {
    let kind = format!("text/x-{client}-{round}-{index}");
    let len = if index == 0 { 1500 } else { (index * 37) % 300 + 1 };
    let stamp = format!("<{client}.{round}.{index}>");
    let body = stamp.bytes().cycle().take(len).collect();
    (kind, body)
}

fn request(client: usize, round: usize, index: usize) -> Vec<u8> {
    let (kind, body) = request_parts(client, round, index);
    // The first request's head alone spans several buffers.
    let pad = if index == 0 { "p".repeat(600) } else { String::new() };
    let mut bytes = format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// Reads until `count` responses have come: (head, body) of each.
fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let responses = parse_responses(&bytes);
        if responses.len() >= count {
            assert_eq!(responses.len(), count, "more responses than requests");
            return responses;
        }
        let n = stream.read(&mut chunk).expect("read responses");
        assert!(n > 0, "server closed after {} of {count} responses", responses.len());
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// The complete responses at the start of `bytes`.
fn parse_responses(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut responses = Vec::new();
    let mut at = 0;
    while let Some(end) = bytes[at..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = std::str::from_utf8(&bytes[at..at + end]).expect("ASCII head").to_string();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.trim().parse().expect("a length"));
        let start = at + end + 4;
        if start + length > bytes.len() {
            break;
        }
        responses.push((head, bytes[start..start + length].to_vec()));
        at = start + length;
    }
    responses
}

/// Sends each round's requests in one write and checks every answer echoes
/// its own request, in order.
fn client(address: SocketAddr, client: usize) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    for round in 0..ROUNDS {
        let burst: Vec<u8> = (0..=PIPELINED).flat_map(|index| request(client, round, index)).collect();
        stream.write_all(&burst).expect("send burst");
        let responses = read_responses(&mut stream, PIPELINED + 1);
        for (index, (head, body)) in responses.iter().enumerate() {
            let (kind, sent) = request_parts(client, round, index);
            assert!(head.starts_with("HTTP/1.1 200"), "request {index} of round {round}: {head}");
            assert!(head.contains(&format!("Content-Type: {kind}\r\n")), "request {index} of round {round}: {head}");
            assert!(
                body == &sent,
                "request {index} of round {round}: echoed {:?}, sent {:?}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&sent)
            );
        }
    }
}

/// Sends a long burst and reads none of it until `read` says so: its
/// connection pauses holding receive buffers while the other clients' come
/// and go, so the ring's order stops being the buffer ids' order. It may be
/// cut off for sending too much while not reading; what it does get must
/// be right.
fn hog(address: SocketAddr, read: std::sync::mpsc::Receiver<()>) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let burst = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(HOG_REQUESTS);
    let writer = {
        let mut stream = stream.try_clone().expect("clone");
        // Fails once the worker cuts the connection off.
        thread::spawn(move || stream.write_all(&burst))
    };
    read.recv().expect("told to read");
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16384];
    while parse_responses(&bytes).len() < HOG_REQUESTS {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    for (head, body) in parse_responses(&bytes) {
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"ringmaster router\n");
    }
    drop(stream);
    let _ = writer.join().expect("writer");
}

fn answers_span_receive_buffers(backend: Backend) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local addr");
    let worker = start_worker(backend, OwnedFd::from(listener));
    let (done, read) = std::sync::mpsc::channel();
    let hog = thread::spawn(move || hog(address, read));
    thread::sleep(Duration::from_millis(200));
    let clients: Vec<_> = (0..CLIENTS).map(|c| thread::spawn(move || client(address, c))).collect();
    for handle in clients {
        handle.join().expect("client");
    }
    done.send(()).expect("hog");
    hog.join().expect("hog");
    worker.stop();
}

#[test]
fn uring_answers_span_receive_buffers() {
    answers_span_receive_buffers(Backend::Uring);
}

#[test]
fn epoll_answers_span_receive_buffers() {
    answers_span_receive_buffers(Backend::Epoll);
}
