//! A client that resets its connection in the middle of a request body
//! frees the connection at once, on both drivers. On io_uring a multishot
//! receive that takes the last bytes of a socket already reset posts them
//! as more to come and then waits for a wakeup the reset never sends again
//! (Linux 6.18); the connection stayed live until its body deadline
//! (minutes for a large body), holding a body buffer, and every drain
//! waited for it.
//!
//! The reset is in the socket before the worker starts, behind more input
//! than one pass of the receive takes: the receive takes the rest in a later
//! pass, the one that misses the reset.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ringmaster_engine::{Backend, EngineConfig};

mod in_process;
use in_process::{reset, spawn_counted, wait_all_acknowledged};

/// Receive buffer size: small, so that what a client sends before its reset
/// is many buffers, more than one pass of a receive takes.
const BUFFER: u32 = 128;
/// Body bytes sent before the reset: about 190 buffers, and less than the
/// receive window of a socket nobody has read yet.
const SENT: usize = 24_000;
/// How long the worker has to close the reset connection: far below the
/// body deadline below, far above any scheduling delay.
const WITHIN: Duration = Duration::from_secs(20);

/// How the client ends its half-sent request.
#[derive(Clone, Copy, Debug)]
enum End {
    /// A reset (`SO_LINGER` 0 and close).
    Reset,
    /// A FIN (`shutdown(SHUT_WR)`), still reading.
    Fin,
}

/// Connects, sends a request head announcing a large body and part of it,
/// waits until the server's socket has it all, and ends as `end` says: the
/// client's socket, if it is still open.
fn send_part_and_end(address: SocketAddr, end: End) -> Option<TcpStream> {
    let mut client = TcpStream::connect(address).expect("connect");
    client.set_write_timeout(Some(Duration::from_secs(10))).expect("write timeout");
    let head = "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n";
    client.write_all(head.as_bytes()).expect("send the head");
    client.write_all(&vec![b'b'; SENT]).expect("send part of the body");
    // Everything acknowledged: it is in the server's socket, ahead of the reset.
    wait_all_acknowledged(&client);
    if let End::Fin = end {
        client.shutdown(std::net::Shutdown::Write).expect("shutdown");
        return Some(client);
    }
    reset(client);
    None
}

fn ended_mid_body_frees_the_connection(backend: Backend, end: End) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local addr");
    let _client = send_part_and_end(address, end);

    let config = EngineConfig {
        backend,
        max_conns: 16,
        max_body: 2 * 1024 * 1024,
        recv_buffers: 512,
        recv_buffer_size: BUFFER,
        header_timeout: Duration::from_secs(600),
        body_timeout: Duration::from_secs(600),
        drain_timeout: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let (worker, stats) = spawn_counted(config, listener);

    let counters = stats.slot(0).expect("slot 0");
    let deadline = Instant::now() + WITHIN;
    let closed = loop {
        let now = counters.snapshot();
        if now.accepted == 1 && now.live == 0 {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let last = counters.snapshot();
    worker.stop();
    assert!(
        closed,
        "{backend:?}: the connection ended mid-body ({end:?}) is still live {WITHIN:?} on (accepted {}, live {})",
        last.accepted, last.live
    );
}

#[test]
fn uring_a_reset_mid_body_frees_the_connection() {
    ended_mid_body_frees_the_connection(Backend::Uring, End::Reset);
}

#[test]
fn epoll_a_reset_mid_body_frees_the_connection() {
    ended_mid_body_frees_the_connection(Backend::Epoll, End::Reset);
}

#[test]
fn uring_a_fin_mid_body_frees_the_connection() {
    ended_mid_body_frees_the_connection(Backend::Uring, End::Fin);
}

#[test]
fn epoll_a_fin_mid_body_frees_the_connection() {
    ended_mid_body_frees_the_connection(Backend::Epoll, End::Fin);
}
