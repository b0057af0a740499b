//! An answer larger than the socket takes at once goes out in partial sends,
//! the rest waiting for the socket to drain; that rest is still owed. A
//! client that half-closes after its request (as `curl -T`-style uploaders
//! and some proxies do) reads the whole answer, then the server's FIN.
//! (On epoll it did not: the FIN read while the rest waited closed the
//! connection, and the client saw the end of stream mid-body.)

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use ringmaster_engine::{Backend, EngineConfig};

mod in_process;
use in_process::{pattern, PatternAnswer};

/// More than loopback's socket buffers hold (the send buffer grows to
/// `tcp_wmem`'s 4 MiB): the first send is partial.
const BODY: usize = 16 * 1024 * 1024;
/// The period of its body's pattern.
const PERIOD: usize = 29;

fn a_half_closed_client_gets_the_whole_large_answer(backend: Backend) {
    let config = EngineConfig { backend, max_conns: 16, max_response: BODY, ..EngineConfig::default() };
    let (worker, address) = in_process::spawn_on_loopback(config, PatternAnswer { len: BODY, period: PERIOD });
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut bytes = Vec::with_capacity(BODY + 1024);
    stream.read_to_end(&mut bytes).expect("read to the server's FIN");
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&bytes[..end + 2]).to_string();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(&format!("Content-Length: {BODY}\r\n")), "{head}");
    let body = &bytes[end + 4..];
    assert_eq!(body.len(), BODY, "the body's bytes before the server's FIN");
    assert!(
        body.iter().enumerate().all(|(i, &b)| b == pattern(i, PERIOD)),
        "the body differs from what the handler wrote"
    );
    worker.stop();
}

#[test]
fn uring_a_half_closed_client_gets_the_whole_large_answer() {
    a_half_closed_client_gets_the_whole_large_answer(Backend::Uring);
}

#[test]
fn epoll_a_half_closed_client_gets_the_whole_large_answer() {
    a_half_closed_client_gets_the_whole_large_answer(Backend::Epoll);
}
