//! A worker whose ring is asked for more than 16,384 submission entries
//! serves: its completion queue, four times as large, would pass the
//! kernel's most (65,536 completions; 32,768 submissions), and
//! `io_uring_setup` refuses such sizes (`EINVAL`) unless asked to clamp
//! them. Until 2026-12-07 an `EngineConfig` with `ring_entries` from 16,385
//! up made every worker fail at start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringmaster_engine::{Backend, EngineConfig, FixedBody};

mod in_process;

fn serves_with_a_ring_of(entries: u32) {
    let config =
        EngineConfig { backend: Backend::Uring, max_conns: 16, ring_entries: entries, ..EngineConfig::default() };
    let (worker, address) = in_process::spawn_on_loopback(config, FixedBody::new(b"hello\n"));
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    // A worker that failed at start answers nothing: the read times out.
    let read = stream.read_to_end(&mut answer);
    assert!(read.is_ok(), "a ring of {entries} entries: no answer ({read:?})");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "a ring of {entries} entries: {answer}");
    worker.stop();
}

#[test]
fn a_ring_of_the_kernels_most_submission_entries_serves() {
    serves_with_a_ring_of(32_768);
}

#[test]
fn a_ring_of_more_entries_than_the_kernel_takes_serves() {
    serves_with_a_ring_of(100_000);
}
