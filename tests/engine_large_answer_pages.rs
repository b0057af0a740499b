//! A worker that once answered megabytes on many connections at a time
//! gives those pages back when the connections close. Each connection slot
//! has its own output buffer, reserved as address space and given pages
//! when touched: without giving them back, every slot that held a large
//! answer kept its megabytes resident for the life of the worker (32
//! connections answered 2 MiB each: the worker's RSS grew by 66 MiB and
//! stayed so; a burst of large downloads left it there for good). The same
//! for the carry buffer a large header block fills, with `max_header` raised.
//!
//! The worker runs on a thread of this process, so the process's RSS is
//! the worker's plus the client's (fixed buffers, made before the first
//! count); the two tests take turns so that one's pages do not count in
//! the other's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

use ringmaster_engine::{Backend, EngineConfig, Handler, Request, Response};

mod in_process;
use in_process::{Feed, InProcessWorker};

/// A large answer's body.
const BODY: usize = 2 * 1024 * 1024;
/// A large header block, with `max_header` raised above it.
const HEAD: usize = 1024 * 1024;
/// Connections open at once, each making one large exchange.
const CONNECTIONS: usize = 32;

/// What each connection does once that touches much of its slot's buffers.
#[derive(Clone, Copy, Debug)]
enum Exchange {
    /// Gets a [`BODY`]-byte answer: the output buffer.
    LargeAnswer,
    /// Sends a [`HEAD`]-byte header block, which comes in many reads and is
    /// gathered in the carry buffer.
    LargeHead,
}

/// One test at a time: the RSS counted is the whole process's.
static TURN: Mutex<()> = Mutex::new(());

/// `/small` gets a few bytes, anything else [`BODY`] bytes.
struct Sized;

impl Handler for Sized {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        if req.path() == "/small" {
            res.body(b"small\n");
            return;
        }
        let chunk = [b'x'; 4096];
        for _ in 0..BODY / chunk.len() {
            res.body(&chunk);
        }
    }
}

/// This process's resident memory, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    let kb: usize = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kb * 1024
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream
}

/// Reads one answer (its head has a `Content-Length`) into `buffer`, or to
/// the end of the stream when `to_close`; returns the body's length.
fn read_answer(stream: &mut TcpStream, buffer: &mut [u8], to_close: bool) -> usize {
    let mut have = 0;
    let head_end = loop {
        let n = stream.read(&mut buffer[have..]).expect("read the head");
        assert!(n > 0, "closed before the head");
        have += n;
        if let Some(end) = buffer[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no length: {head}"));
    let mut body = have - head_end;
    while body < length || to_close {
        // The body is counted, not kept: the client's memory stays put.
        let n = stream.read(buffer).expect("read the body");
        if n == 0 {
            break;
        }
        body += n;
    }
    assert_eq!(body, length, "the whole body, and nothing after it");
    body
}

fn pages_given_back_at_close(backend: Backend, exchange: Exchange) {
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local addr");
    let worker = InProcessWorker::spawn(move |shutdown| {
        let config = EngineConfig {
            backend,
            max_response: BODY,
            max_header: 2 * HEAD,
            // A small receive ring (io_uring), so that cycling through it
            // does not count: 1 MiB, in reads of 32 KiB.
            recv_buffers: 32,
            recv_buffer_size: 32 * 1024,
            ..EngineConfig::default()
        };
        in_process::serve(&config, Feed::Listener(OwnedFd::from(listener)), shutdown, &mut Sized)
    });
    let mut buffer = vec![0u8; 1 << 16];
    let (request, size) = match exchange {
        Exchange::LargeAnswer => (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec(), BODY),
        Exchange::LargeHead => {
            let mut request = b"GET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Large: ".to_vec();
            request.resize(request.len() + HEAD, b'x');
            request.extend_from_slice(b"\r\n\r\n");
            (request, HEAD)
        }
    };
    // All open at once, each answered once: each holds a slot of its own.
    let mut streams: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect(address)).collect();
    for stream in &mut streams {
        stream.write_all(b"GET /small HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
        read_answer(stream, &mut buffer, false);
    }
    let before = rss();
    // A large exchange on each, and the worker closes each after it.
    for stream in &mut streams {
        stream.write_all(&request).expect("send");
        let length = read_answer(stream, &mut buffer, true);
        assert_eq!(length, if matches!(exchange, Exchange::LargeAnswer) { BODY } else { 6 });
    }
    // The worker frees a slot in the step that closes its socket, on its
    // loop's one thread: once it answers a connection made after the last
    // end of stream, it has freed them all.
    let mut probe = connect(address);
    probe.write_all(b"GET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").expect("send");
    read_answer(&mut probe, &mut buffer, true);
    let grown = rss().saturating_sub(before);
    worker.stop();
    // Kept: the handler's own buffer for one answer, the receive ring, and
    // the first 64 KiB of each slot's buffers. Kept before: all each used.
    let bound = CONNECTIONS * size / 4;
    assert!(
        grown < bound,
        "{backend:?}, {exchange:?}: the worker's memory grew by {} KiB after {CONNECTIONS} exchanges of {} KiB \
         on connections now closed (bound {} KiB)",
        grown / 1024,
        size / 1024,
        bound / 1024
    );
}

#[test]
fn uring_large_answers_give_their_pages_back_at_close() {
    pages_given_back_at_close(Backend::Uring, Exchange::LargeAnswer);
}

#[test]
fn epoll_large_answers_give_their_pages_back_at_close() {
    pages_given_back_at_close(Backend::Epoll, Exchange::LargeAnswer);
}

#[test]
fn uring_large_header_blocks_give_their_pages_back_at_close() {
    pages_given_back_at_close(Backend::Uring, Exchange::LargeHead);
}

#[test]
fn epoll_large_header_blocks_give_their_pages_back_at_close() {
    pages_given_back_at_close(Backend::Epoll, Exchange::LargeHead);
}
