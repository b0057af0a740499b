//! An io_uring worker whose ring of receive buffers is empty (paused hogs
//! hold every buffer: `starved_hogs`) allocates nothing on its thread while
//! clients that close meanwhile are read without a ring buffer, into the
//! worker's spare buffer (`engine/src/driver/uring/starved.rs`): a whole
//! request and a FIN (answered), part of one and a FIN (closed), a burst
//! whose first answer pauses the connection between reads (all answered),
//! and a reset (closed). As in `engine_alloc`, a warm-up takes each path
//! once (hogs, their clients, the hogs' end); the count must not move while
//! the same runs again and the worker drains and stops.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ringmaster_engine::{EngineConfig, FixedBody};

mod counted_worker;
mod in_process;
mod starved_hogs;

use counted_worker::CountedWorker;
use starved_hogs::{connect, finish_hogs, posts, read_answers, start_hogs, ANSWER, HOGS};

/// Far beyond what the test waits: no timer ends a connection.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Requests in the burst, and the body of each: more input than a read
/// without a ring buffer takes at once (16 KiB).
const BURST: usize = 3;
const BURST_BODY: usize = 10 * 1024;

/// What `client` read after its input and FIN: its answers' statuses, then
/// whether the server closed.
fn answered_then_closed(mut client: TcpStream, answers: usize) -> (Result<Vec<u16>, String>, bool) {
    client.shutdown(Shutdown::Write).expect("FIN");
    let read_all = AtomicBool::new(true);
    let statuses = read_answers(&mut client, answers, &read_all);
    let mut byte = [0u8; 1];
    let closed = matches!(client.read(&mut byte), Ok(0));
    (statuses, closed)
}

/// One round: hogs empty the ring, clients that close are read without a
/// ring buffer (each checked), then the hogs read all and finish.
fn clients_that_close_while_the_ring_is_empty(address: SocketAddr) {
    let hurry = Arc::new(AtomicBool::new(false));
    let hogs = start_hogs(address, HOGS, &hurry);
    let mut whole = connect(address);
    whole.write_all(b"GET /whole HTTP/1.1\r\nHost: a\r\n\r\n").expect("a request");
    in_process::wait_all_acknowledged(&whole);
    assert_eq!(answered_then_closed(whole, 1), (Ok(vec![200]), true), "a request and a FIN");
    let mut part = connect(address);
    part.write_all(b"GET /never-finished HTTP/1.1\r\nHo").expect("part of a head");
    in_process::wait_all_acknowledged(&part);
    assert_eq!(answered_then_closed(part, 0), (Ok(vec![]), true), "part of a request and a FIN");
    let mut burst = connect(address);
    burst.write_all(&posts(BURST, BURST_BODY)).expect("a burst");
    in_process::wait_all_acknowledged(&burst);
    assert_eq!(answered_then_closed(burst, BURST), (Ok(vec![200; BURST]), true), "a burst and a FIN");
    let mut reset = connect(address);
    reset.write_all(b"GET /never-finished HTTP/1.1\r\nHo").expect("part of a head");
    in_process::wait_all_acknowledged(&reset);
    in_process::reset(reset);
    finish_hogs(hogs, &hurry);
}

#[test]
fn uring_clients_read_without_a_ring_buffer_allocate_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local addr");
    let config = EngineConfig { max_conns: 16, ..starved_hogs::config(TIMEOUT, TIMEOUT) };
    let worker =
        CountedWorker::start(config, Some(OwnedFd::from(listener)), None, || FixedBody::new(vec![b'x'; ANSWER]));
    clients_that_close_while_the_ring_is_empty(address);
    let before = worker.allocated();
    clients_that_close_while_the_ring_is_empty(address);
    let after = worker.stop();
    assert_eq!(after - before, 0, "the worker thread allocated {} times after warm-up", after - before);
    assert!(before > 0, "the counter saw the worker's start-up allocations, so it is counting that thread");
}
