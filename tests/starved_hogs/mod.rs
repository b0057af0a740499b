//! Clients that make an io_uring worker's ring of receive buffers run out
//! (`engine_starved_receive`, `engine_starved_close`): a few buffers each
//! larger than a connection's carry buffer (16 KiB), so a paused hog holds
//! every buffer its receive read into. Each hog writes a request whose
//! answer is far larger than the socket buffers between them, then a
//! request with a body, in one write: its connection pauses behind the
//! first answer and keeps the buffer. Each reads a trickle of its answers
//! meanwhile, so the worker sees a client that reads (`held.rs` cuts off
//! one that reads nothing, and the ring is freed), however long a test
//! waits; all of them once told to hurry.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ringmaster_engine::{Backend, EngineConfig};

use crate::in_process;

/// Receive buffers, each larger than a connection's carry buffer (16 KiB):
/// a paused connection holds every one its receive read into.
pub const BUFFERS: u16 = 4;
pub const BUFFER: u32 = 64 * 1024;
/// Clients that write ahead: more than there are buffers, so some find the ring empty.
pub const HOGS: usize = BUFFERS as usize + 2;
/// The body each hog sends after its first request, in the same write: its
/// input fills most of a buffer.
const HOG_BODY: usize = 48 * 1024;
/// The answer to every request: far larger than the socket buffers of a
/// client that reads a trickle (4 MiB at most on the server's side), so a
/// hog's connection stays paused behind it until its client reads all.
pub const ANSWER: usize = 16 << 20;
/// A hog's trickle: at most this much a read, and a pause after each
/// (1.3 MB a second: 10 times what `held.rs` keeps as a reader).
const TRICKLE: usize = 64 * 1024;
const TRICKLE_PAUSE: Duration = Duration::from_millis(50);
/// A bound for a test that fails, far beyond what passing takes.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// An io_uring worker whose ring the hogs can empty, with `header_timeout`
/// and `body_timeout`; `--idle-timeout` (the hogs' writer's clock too)
/// ends none of them while a test runs.
pub fn config(header_timeout: Duration, body_timeout: Duration) -> EngineConfig {
    EngineConfig {
        backend: Backend::Uring,
        max_conns: 16,
        recv_buffers: BUFFERS,
        recv_buffer_size: BUFFER,
        header_timeout,
        body_timeout,
        idle_timeout: Duration::from_secs(60),
        ..EngineConfig::default()
    }
}

/// A hog's one write: a request answered with [`ANSWER`] bytes, then one
/// with a body.
fn hog_input() -> Vec<u8> {
    let mut bytes = b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    bytes.extend_from_slice(
        format!("POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: {HOG_BODY}\r\n\r\n").as_bytes(),
    );
    bytes.resize(bytes.len() + HOG_BODY, b'b');
    bytes
}

/// `count` requests with a body of `body` bytes each, in one buffer (a
/// client's pipelined burst).
pub fn posts(count: usize, body: usize) -> Vec<u8> {
    let head = format!("POST /burst HTTP/1.1\r\nHost: a\r\nContent-Length: {body}\r\n\r\n");
    let mut bytes = Vec::new();
    for _ in 0..count {
        bytes.extend_from_slice(head.as_bytes());
        bytes.resize(bytes.len() + body, b'b');
    }
    bytes
}

pub fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    stream
}

/// Reads `count` answers whole: their statuses, or what cut them short.
/// Until `hurry` is set it reads a trickle ([`TRICKLE`] a read, a pause
/// after each); all it can from then on.
pub fn read_answers(stream: &mut TcpStream, count: usize, hurry: &AtomicBool) -> Result<Vec<u16>, String> {
    let mut statuses = Vec::new();
    let mut input: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    // Body bytes of the current answer still to come.
    let mut body_left = 0usize;
    loop {
        if body_left == 0 {
            if let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&input[..end]).into_owned();
                let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).ok_or(format!("a head: {head:?}"))?;
                if (100..200).contains(&status) {
                    // An interim answer (`100 Continue`): no body.
                    statuses.push(status);
                    input.drain(..end + 4);
                    continue;
                }
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("Content-Length: "))
                    .and_then(|len| len.parse().ok())
                    .ok_or(format!("no length in {head:?}"))?;
                statuses.push(status);
                input.drain(..end + 4);
                body_left = length;
            }
        }
        if body_left > 0 && !input.is_empty() {
            let take = body_left.min(input.len());
            input.drain(..take);
            body_left -= take;
            continue;
        }
        if statuses.len() == count && body_left == 0 {
            return Ok(statuses);
        }
        let hurried = hurry.load(Ordering::Relaxed);
        let len = if hurried { chunk.len() } else { TRICKLE };
        match stream.read(&mut chunk[..len]) {
            Ok(0) => return Err(format!("closed after {statuses:?}, {body_left} bytes of a body left")),
            Ok(n) if body_left >= n && input.is_empty() => body_left -= n,
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{e} after {statuses:?}, {body_left} bytes of a body left")),
        }
        if !hurried {
            thread::sleep(TRICKLE_PAUSE);
        }
    }
}

/// A hog's reader: what it read, once it has both its answers or failed.
pub type Hog = thread::JoinHandle<Result<Vec<u16>, String>>;

/// `count` hogs, one after another: each one's input is in the worker's
/// socket before the next connects. Each reads a trickle of its answers
/// from now on, all of them once `hurry` is set.
pub fn start_hogs(address: SocketAddr, count: usize, hurry: &Arc<AtomicBool>) -> Vec<Hog> {
    (0..count)
        .map(|_| {
            let mut hog = connect(address);
            hog.write_all(&hog_input()).expect("hog write");
            in_process::wait_all_acknowledged(&hog);
            let hurry = Arc::clone(hurry);
            thread::spawn(move || read_answers(&mut hog, 2, &hurry))
        })
        .collect()
}

/// Tells the hogs to read all, and checks each got both its answers.
pub fn finish_hogs(hogs: Vec<Hog>, hurry: &AtomicBool) {
    hurry.store(true, Ordering::Relaxed);
    for (index, hog) in hogs.into_iter().enumerate() {
        assert_eq!(hog.join().expect("hog reader"), Ok(vec![200, 200]), "hog {index}");
    }
}
