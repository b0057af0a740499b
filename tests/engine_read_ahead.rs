//! On io_uring a paused connection holds what its receive read ahead of it
//! (`engine/src/driver/uring/held.rs`). How much it holds says nothing about
//! its client: one that pipelines far ahead and reads every answer is
//! answered in full, however much of the ring it holds. (One that stops
//! reading is cut off once the paused connections hold half the ring: the
//! unit tests there.) A small ring (64 buffers of 4 KiB) makes a modest
//! pipeline hold more than half of it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::thread;
use std::time::Duration;

use ringmaster_engine::{Backend, EngineConfig, FixedBody};

mod in_process;
use in_process::{Feed, InProcessWorker};

/// Receive buffers: a pipeline read ahead holds half of them soon.
const BUFFERS: u16 = 64;
const BUFFER: u32 = 4096;
const BODY: &[u8] = b"hello world\n";
/// Bytes of pipelined requests a client writes before it reads: about all
/// the ring holds.
const PIPELINE_BYTES: usize = 256_000;
/// A bound for a test that fails, far beyond what passing takes (well under
/// a second): the idle timeout is longer still, so no cut-off here is one.
const PATIENCE: Duration = Duration::from_secs(30);

fn start_worker(listener: OwnedFd) -> InProcessWorker {
    InProcessWorker::spawn(move |shutdown| {
        let config = EngineConfig {
            backend: Backend::Uring,
            max_conns: 16,
            recv_buffers: BUFFERS,
            recv_buffer_size: BUFFER,
            idle_timeout: Duration::from_secs(300),
            ..EngineConfig::default()
        };
        in_process::serve(&config, Feed::Listener(listener), shutdown, &mut FixedBody::new(BODY))
    })
}

/// Pipelined requests, `len` bytes or a little more, and how many. `GET`
/// and `HEAD` alternate: answers that differ from the one before each take
/// a reply slot, so the connection pauses once its replies are queued
/// (runs of one fixed answer would not).
fn pipeline(len: usize) -> (Vec<u8>, usize) {
    let mut bytes = Vec::new();
    let mut requests = 0;
    while bytes.len() < len {
        let method = if requests % 2 == 0 { "GET" } else { "HEAD" };
        bytes.extend_from_slice(format!("{method} /{requests} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        requests += 1;
    }
    (bytes, requests)
}

/// Writes the whole pipeline from another thread while this one reads: the
/// answers that came before the server closed, or all of them.
fn pipeline_and_read(address: SocketAddr) -> (usize, usize) {
    let (bytes, requests) = pipeline(PIPELINE_BYTES);
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    let writer = {
        let mut stream = stream.try_clone().expect("clone");
        // Fails only if the worker cuts the connection off.
        thread::spawn(move || stream.write_all(&bytes))
    };
    let answers = count_answers(&mut stream, requests);
    drop(stream);
    let _ = writer.join().expect("writer");
    (answers, requests)
}

/// Reads until `expected` answers have come or the server closes.
fn count_answers(stream: &mut TcpStream, expected: usize) -> usize {
    let marker = b"HTTP/1.1 200";
    let mut answers = 0;
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    while answers < expected {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                answers += tail.windows(marker.len()).filter(|w| *w == marker).count();
                // Keep what could begin a marker split across reads.
                tail.drain(..tail.len().saturating_sub(marker.len() - 1));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read after {answers} answers: {e}"),
        }
    }
    answers
}

#[test]
fn a_client_that_pipelines_far_ahead_and_reads_is_answered_in_full() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local addr");
    let worker = start_worker(OwnedFd::from(listener));
    // Each round, two clients each pipeline about a ring's worth: their
    // connections pause again and again holding what the kernel read ahead,
    // together often more than half the ring.
    for round in 0..40 {
        let clients: Vec<_> = (0..2).map(|_| thread::spawn(move || pipeline_and_read(address))).collect();
        for (client, handle) in clients.into_iter().enumerate() {
            let (answers, requests) = handle.join().expect("client");
            assert_eq!(
                answers, requests,
                "round {round}, client {client}: cut off after {answers} of {requests} answers"
            );
        }
    }
    worker.stop();
}
