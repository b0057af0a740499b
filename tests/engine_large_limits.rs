//! A library user who raises `max_response` to answer megabytes, keeping the
//! default `max_conns`: the worker starts and answers. Each connection's
//! output buffer has room for two of the largest answers, so 16,384
//! connections × 2 × 4 MiB reserve 137 GB of address space, of which only
//! the pages used are ever touched. (Reserved as ordinary heap memory, that
//! is more than RAM and swap, which Linux's default overcommit heuristic
//! refuses: every worker aborted at start, `memory allocation of
//! 137578414080 bytes failed`, and was restarted to abort again.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringmaster_engine::{Backend, EngineConfig};

mod in_process;
use in_process::{pattern, PatternAnswer};

/// The body's size: megabytes, as the brief's large answers.
const BODY: usize = 4 * 1024 * 1024;
/// The period of its body's pattern.
const PERIOD: usize = 23;

fn large_answers_with_the_default_connection_limit(backend: Backend) {
    let config = EngineConfig { backend, max_response: BODY, ..EngineConfig::default() };
    let (worker, address) = in_process::spawn_on_loopback(config, PatternAnswer { len: BODY, period: PERIOD });
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    // Two, pipelined: both fit the connection's output at once.
    stream.write_all(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(2)).expect("send");
    let expected: Vec<u8> = (0..BODY).map(|i| pattern(i, PERIOD)).collect();
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    for answer in 1..=2 {
        let body = loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end + 2]).to_string();
                assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "answer {answer}: {head}");
                assert!(head.contains(&format!("Content-Length: {BODY}\r\n")), "answer {answer}: {head}");
                if bytes.len() >= end + 4 + BODY {
                    let body = bytes[end + 4..end + 4 + BODY].to_vec();
                    bytes.drain(..end + 4 + BODY);
                    break body;
                }
            }
            let n = stream.read(&mut chunk).unwrap_or_else(|e| panic!("answer {answer}: {e}"));
            assert!(n > 0, "the worker closed before answer {answer} was whole ({} bytes)", bytes.len());
            bytes.extend_from_slice(&chunk[..n]);
        };
        assert!(body == expected, "answer {answer}'s body differs from what the handler wrote");
    }
    worker.stop();
}

#[test]
fn uring_large_answers_with_the_default_connection_limit() {
    large_answers_with_the_default_connection_limit(Backend::Uring);
}

#[test]
fn epoll_large_answers_with_the_default_connection_limit() {
    large_answers_with_the_default_connection_limit(Backend::Epoll);
}
