//! A client that resets behind input no answer follows frees its
//! connection at once, on both drivers: empty lines before a request line
//! (which begin no request), before the first request or after an answer.
//! No send follows such input to report the reset, and on io_uring a
//! multishot receive that takes the last bytes of a socket already reset
//! posts them as more to come and never reports the reset (Linux 6.18, see
//! `engine_reset_mid_body.rs`): until 2026-12-06 such a connection stayed
//! until its header deadline, or its idle deadline after a first answer
//! (here 600 s: a connection still live 10 s after its reset is stuck).
//! Input while a connection lingers after a closing answer is watched the
//! same way (the unit test `input_no_answer_follows_needs_a_reset_watch`);
//! the linger's own end, 2 s after its last input, closes it anyway, which
//! no test here could tell from a timely close without timing the worker.
//!
//! `EmptyLinesBeforeStart` puts the reset in the socket before the worker
//! starts, behind more input than one pass of the receive takes: it stuck
//! every time. `EmptyLinesAfterAnswer` races the worker's reads (it stuck in
//! one round of 40 in most runs).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ringmaster_engine::{Backend, EngineConfig};

mod in_process;
use in_process::{reset, spawn_counted, wait_all_acknowledged};

const BUFFER: u32 = 128;
const SENT: usize = 24_000;
/// Far below the deadlines the worker is given, far above any delay.
const WITHIN: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// Empty lines, then a reset, all in the socket before the worker starts.
    EmptyLinesBeforeStart,
    /// One request answered, then empty lines and a reset.
    EmptyLinesAfterAnswer,
}

/// Runs `rounds` connections one after another; returns how many stayed
/// live `WITHIN` after their reset (it stops at the first).
fn stuck(backend: Backend, scenario: Scenario, rounds: usize) -> usize {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address: SocketAddr = listener.local_addr().expect("local addr");
    let mut early = None;
    if let Scenario::EmptyLinesBeforeStart = scenario {
        let mut client = TcpStream::connect(address).expect("connect");
        client.write_all(&b"\r\n".repeat(SENT / 2)).expect("send");
        wait_all_acknowledged(&client);
        early = Some(client);
    }
    if let Some(client) = early.take() {
        reset(client);
    }
    let config = EngineConfig {
        backend,
        max_conns: 16,
        recv_buffers: 512,
        recv_buffer_size: BUFFER,
        header_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
        body_timeout: Duration::from_secs(600),
        drain_timeout: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let (worker, stats) = spawn_counted(config, listener);
    let counters = stats.slot(0).expect("slot 0");
    let mut stuck = 0;
    let rounds = if let Scenario::EmptyLinesBeforeStart = scenario { 1 } else { rounds };
    for round in 0..rounds {
        let accepted_before =
            if let Scenario::EmptyLinesBeforeStart = scenario { 0 } else { counters.snapshot().accepted };
        if !matches!(scenario, Scenario::EmptyLinesBeforeStart) {
            let mut client = TcpStream::connect(address).expect("connect");
            client.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let mut answer = [0u8; 4096];
            match scenario {
                Scenario::EmptyLinesAfterAnswer => {
                    client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
                    let n = client.read(&mut answer).expect("answer");
                    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
                    client.write_all(&b"\r\n".repeat(SENT / 2)).expect("send");
                }
                Scenario::EmptyLinesBeforeStart => unreachable!(),
            }
            wait_all_acknowledged(&client);
            reset(client);
        }
        let ended = Instant::now();
        let mut closed = false;
        while ended.elapsed() < WITHIN {
            let now = counters.snapshot();
            if now.accepted > accepted_before && now.live == 0 {
                closed = true;
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
        if !closed {
            let now = counters.snapshot();
            eprintln!(
                "{backend:?} {scenario:?} round {round}: live {WITHIN:?} after the reset (accepted {}, live {})",
                now.accepted, now.live
            );
            stuck += 1;
            break;
        }
    }
    worker.stop();
    stuck
}

fn check(backend: Backend, scenario: Scenario) {
    let n = stuck(backend, scenario, 40);
    assert_eq!(n, 0, "{backend:?} {scenario:?}: {n} connections outlived their client's reset");
}

#[test]
fn uring_empty_lines_before_start() {
    check(Backend::Uring, Scenario::EmptyLinesBeforeStart);
}
#[test]
fn uring_empty_lines_after_answer() {
    check(Backend::Uring, Scenario::EmptyLinesAfterAnswer);
}
#[test]
fn epoll_empty_lines_before_start() {
    check(Backend::Epoll, Scenario::EmptyLinesBeforeStart);
}
#[test]
fn epoll_empty_lines_after_answer() {
    check(Backend::Epoll, Scenario::EmptyLinesAfterAnswer);
}
