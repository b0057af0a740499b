//! Proves the worker allocates nothing after start, on either driver: a
//! counting global allocator (`counted_worker`) counts heap allocations made on the worker's
//! event-loop thread only, and the count must not move while, after a
//! warm-up that takes every path once, the same workload runs again and the
//! worker drains and stops. The workload: thousands of requests over new
//! connections (pipelined and not, accepted or handed over a channel),
//! every error reply, bodies by length and chunked, `100 Continue`, HEAD,
//! HTTP/1.0, server-initiated closes, requests split across reads, header,
//! body and idle timeouts firing, a client that does not read (partial
//! sends, paused input), more connections at once than `max_conns` (the
//! worker full), receive buffers running out (io_uring; clients that close
//! while none is free: `engine_alloc_starved`), and a drain with
//! connections open. The window spans more than a second so the `Date`
//! refresh and the tick run inside it too.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringmaster_engine::channel::{channel_pair, send_blocking, Message, Tag};
use ringmaster_engine::{Backend, EngineConfig, FixedBody};

const REQUEST: &[u8] = b"GET /alloc HTTP/1.1\r\nHost: localhost\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n\r\n";
const BODY: &[u8] = b"hello world\n";
/// A fixed body long enough to be held apart from the pages (over 16 KiB).
const LONG_FIXED_BODY: usize = 20_000;
/// Connections the worker holds at once; the workload opens more.
const MAX_CONNS: usize = 512;
/// More connections at once than the worker holds.
const CROWD: usize = 600;

mod counted_worker;
mod in_process;

use counted_worker::CountedWorker;

/// The example's application, run in process.
#[allow(dead_code)]
#[path = "../examples/router.rs"]
mod router;

/// How the worker under test answers.
#[derive(Clone, Copy, Debug)]
enum Answers {
    /// From the preformatted pages (`FixedBody`).
    Fixed,
    /// From the preformatted heads and a [`LONG_FIXED_BODY`] held apart from them.
    FixedLong,
    /// With the router example's handler (framed responses, echoed bodies).
    Router,
}

/// A worker answering as `answers` says, counting its thread's allocations.
fn start_counted(
    config: EngineConfig,
    answers: Answers,
    listener: Option<OwnedFd>,
    channel: Option<OwnedFd>,
) -> CountedWorker {
    match answers {
        Answers::Fixed => CountedWorker::start(config, listener, channel, || FixedBody::new(BODY)),
        Answers::FixedLong => {
            CountedWorker::start(config, listener, channel, || FixedBody::new(vec![b'l'; LONG_FIXED_BODY]))
        }
        Answers::Router => CountedWorker::start(config, listener, channel, || router::Router::new(1)),
    }
}

/// Small limits and short timeouts, so the workload reaches every path soon;
/// long enough that a client thread descheduled on a busy machine between
/// its connect and its request (or two keep-alive requests) is not taken for
/// a silent one: 300 ms header and 600 ms idle timeouts closed such a
/// connection under a loaded suite.
fn worker_config(backend: Backend) -> EngineConfig {
    EngineConfig {
        backend,
        max_conns: MAX_CONNS,
        max_header: 1024,
        max_body: 4096,
        header_timeout: Duration::from_millis(1500),
        body_timeout: Duration::from_millis(1500),
        idle_timeout: Duration::from_millis(2000),
        drain_timeout: Duration::from_secs(2),
        // Few receive buffers: concurrent input runs them out (io_uring).
        recv_buffers: 16,
        ..EngineConfig::default()
    }
}

/// Reads until `count` complete final responses have arrived (framed by
/// their `Content-Length`; `100 Continue` does not count).
fn read_responses(stream: &mut TcpStream, count: usize, buffer: &mut Vec<u8>) {
    buffer.clear();
    let mut chunk = [0u8; 16384];
    loop {
        let seen = complete_responses(buffer);
        if seen >= count {
            assert_eq!(seen, count, "more responses than requests");
            return;
        }
        let n = stream.read(&mut chunk).expect("read responses");
        assert!(n > 0, "server closed after {seen} of {count} responses");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Complete final responses at the start of `bytes` (none may be partial
/// but the last).
fn complete_responses(bytes: &[u8]) -> usize {
    let mut at = 0;
    let mut count = 0;
    while let Some(end) = bytes[at..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = std::str::from_utf8(&bytes[at..at + end]).expect("ASCII head");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.trim().parse().expect("a length"));
        let next = at + end + 4 + length;
        if next > bytes.len() {
            break;
        }
        if !head.starts_with("HTTP/1.1 1") {
            count += 1;
        }
        at = next;
    }
    count
}

/// Reads to the server's close (a reset counts as a close); returns what came.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("waiting for the server's close: {e} (got {:?})", String::from_utf8_lossy(&got)),
        }
    }
}

/// Sends `request` on a new connection and checks the answer starts with `status`
/// and the server closes after it.
fn expect_closing_answer(connect: &Connect, request: &[u8], status: &str) {
    let mut stream = connect();
    stream.write_all(request).expect("send");
    let got = read_to_close(&mut stream);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with(status), "expected {status:?} for {:?}, got {text:?}", String::from_utf8_lossy(request));
}

type Connect = dyn Fn() -> TcpStream + Sync;

/// `connections` new connections, each doing `sequential` keep-alive requests
/// then one write of `pipelined` requests.
fn volume(connections: usize, sequential: usize, pipelined: usize, connect: &Connect) -> usize {
    let threads = 4;
    let per_thread = connections.div_ceil(threads);
    let pipeline: Vec<u8> = REQUEST.repeat(pipelined);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let pipeline = &pipeline;
                scope.spawn(move || {
                    let mut buffer = Vec::with_capacity(1 << 16);
                    let mut served = 0;
                    for _ in 0..per_thread {
                        let mut stream = connect();
                        for _ in 0..sequential {
                            stream.write_all(REQUEST).expect("send request");
                            read_responses(&mut stream, 1, &mut buffer);
                            served += 1;
                        }
                        stream.write_all(pipeline).expect("send pipeline");
                        read_responses(&mut stream, pipelined, &mut buffer);
                        served += pipelined;
                    }
                    served
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).sum()
    })
}

/// Every reply that is not the plain 200, and every way a connection ends.
fn unhappy_paths(connect: &Connect) {
    expect_closing_answer(connect, b"BAD\r\n\r\n", "HTTP/1.1 400");
    let too_long = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", 1 << 20);
    expect_closing_answer(connect, too_long.as_bytes(), "HTTP/1.1 413");
    expect_closing_answer(connect, b"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", "HTTP/1.1 417");
    let huge = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "y".repeat(2000));
    expect_closing_answer(connect, huge.as_bytes(), "HTTP/1.1 431");
    expect_closing_answer(
        connect,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 501",
    );
    expect_closing_answer(connect, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 200");
    expect_closing_answer(connect, b"GET / HTTP/1.0\r\n\r\n", "HTTP/1.1 200");
    let mut buffer = Vec::new();
    let mut stream = connect();
    // Bodies by length and chunked, HEAD, HTTP/1.0 keep-alive.
    stream.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello").expect("send");
    read_responses(&mut stream, 1, &mut buffer);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n")
        .expect("send");
    read_responses(&mut stream, 1, &mut buffer);
    stream.write_all(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).expect("HEAD answer");
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    stream.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("send");
    read_responses(&mut stream, 1, &mut buffer);
    // 100 Continue, then the body.
    stream.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n").expect("send");
    let mut continue_line = [0u8; 25];
    stream.read_exact(&mut continue_line).expect("100 Continue");
    assert_eq!(&continue_line, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"ok").expect("send body");
    read_responses(&mut stream, 1, &mut buffer);
    // A request split across reads.
    for piece in [&REQUEST[..7], &REQUEST[7..30], &REQUEST[30..]] {
        stream.write_all(piece).expect("send piece");
        thread::sleep(Duration::from_millis(15));
    }
    read_responses(&mut stream, 1, &mut buffer);
    // Bytes after a closing reply: the server lingers for our FIN.
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n").expect("send");
    read_responses(&mut stream, 1, &mut buffer);
    stream.shutdown(std::net::Shutdown::Write).expect("our FIN");
    read_to_close(&mut stream);
}

/// Header, body and idle timeouts fire (the worker answers the slow body `408`).
fn timeouts(connect: &Connect) {
    let mut silent = connect();
    let mut partial_header = connect();
    partial_header.write_all(b"GET / HTTP/1.1\r\nHo").expect("send");
    let mut partial_body = connect();
    partial_body.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc").expect("send");
    let mut idle = connect();
    idle.write_all(REQUEST).expect("send");
    let mut buffer = Vec::new();
    read_responses(&mut idle, 1, &mut buffer);
    assert!(read_to_close(&mut silent).is_empty());
    assert!(read_to_close(&mut partial_header).is_empty());
    assert!(read_to_close(&mut partial_body).starts_with(b"HTTP/1.1 408"));
    assert!(read_to_close(&mut idle).is_empty());
}

/// A client that sends thousands of requests before reading any answer: the
/// worker's sends go out in part and its input pauses.
fn slow_reader(connect: &Connect) {
    let mut stream = connect();
    let burst = REQUEST.repeat(3000);
    let writer = {
        let mut stream = stream.try_clone().expect("clone");
        thread::spawn(move || stream.write_all(&burst).expect("send burst"))
    };
    thread::sleep(Duration::from_millis(100));
    let mut buffer = Vec::with_capacity(1 << 20);
    read_responses(&mut stream, 3000, &mut buffer);
    writer.join().expect("writer");
}

/// More connections at once than the worker holds, each with a request;
/// each closes once answered, making room for the next (accepted ones wait
/// in the listen queue; handed-over ones are declined and closed).
fn crowd(connect: &Connect) {
    let mut streams: Vec<TcpStream> = (0..CROWD).map(|_| connect()).collect();
    for stream in &mut streams {
        stream.write_all(REQUEST).expect("send");
    }
    let mut buffer = Vec::new();
    for mut stream in streams {
        let got = read_to_close_or_answer(&mut stream, &mut buffer);
        assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 "), "{:?}", String::from_utf8_lossy(&got));
    }
}

/// One answer, or the server's close before any.
fn read_to_close_or_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Vec<u8> {
    buffer.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if complete_responses(buffer) == 1 {
            return buffer.clone();
        }
        match stream.read(&mut chunk) {
            Ok(0) => return buffer.clone(),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return buffer.clone(),
            Err(e) => panic!("crowd: {e}"),
        }
    }
}

/// Requests a handler answers with what it wrote: JSON, the client's
/// address, echoed bodies (by length, chunked, arriving in pieces),
/// pipelined to different routes.
fn handler_paths(connect: &Connect) {
    let mut buffer = Vec::new();
    let mut stream = connect();
    let body = [b'e'; 3000];
    let mut pipeline = Vec::new();
    for _ in 0..20 {
        pipeline.extend_from_slice(b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n");
        // The client's address, which the router asks the engine for.
        pipeline.extend_from_slice(b"GET /peer HTTP/1.1\r\nHost: a\r\n\r\n");
        pipeline.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n");
        pipeline.extend_from_slice(&body);
        pipeline.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        pipeline.extend_from_slice(b"400\r\n");
        pipeline.extend_from_slice(&body[..1024]);
        pipeline.extend_from_slice(b"\r\n0\r\n\r\n");
    }
    stream.write_all(&pipeline).expect("send");
    read_responses(&mut stream, 80, &mut buffer);
    // A body that comes in pieces, after its head.
    stream.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n").expect("send");
    for piece in body.chunks(700) {
        thread::sleep(Duration::from_millis(5));
        stream.write_all(piece).expect("send piece");
    }
    read_responses(&mut stream, 1, &mut buffer);
}

/// The whole workload; returns the plain requests served.
fn workload(connect: &Connect, volume_connections: usize) -> usize {
    let served = volume(volume_connections, 50, 50, connect);
    handler_paths(connect);
    unhappy_paths(connect);
    timeouts(connect);
    slow_reader(connect);
    crowd(connect);
    served
}

/// Runs the workload twice and drains, counting allocations on the worker's
/// thread from after the warm-up to its exit.
fn assert_worker_allocates_nothing(worker: CountedWorker, connect: &Connect) {
    workload(connect, 16);
    // Let the warm-up's lingering closes end, and cross a `Date` change.
    thread::sleep(Duration::from_millis(1100));
    let before = worker.allocated();
    let started = Instant::now();
    let served = workload(connect, 100);
    eprintln!("served {served} requests and every other path in {:?}", started.elapsed());
    // A drain with connections open: idle ones, and one with answers owed.
    let mut buffer = Vec::new();
    let mut open: Vec<TcpStream> = (0..10).map(|_| connect()).collect();
    for stream in &mut open {
        stream.write_all(REQUEST).expect("send");
        read_responses(stream, 1, &mut buffer);
    }
    let mut busy = connect();
    busy.write_all(&REQUEST.repeat(20)).expect("send");
    let after = worker.stop();
    assert!(String::from_utf8_lossy(&read_to_close(&mut busy)).matches("HTTP/1.1 ").count() >= 1);
    for stream in &mut open {
        read_to_close(stream);
    }
    assert!(served >= 10_000, "served only {served} requests");
    assert_eq!(after - before, 0, "the worker thread allocated {} times after warm-up", after - before);
    assert!(before > 0, "the counter saw the worker's start-up allocations, so it is counting that thread");
}

fn accepted_connections_allocate_nothing(backend: Backend, answers: Answers) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let worker = start_counted(worker_config(backend), answers, Some(OwnedFd::from(listener)), None);
    let connect = move || client(TcpStream::connect(addr).expect("connect"));
    assert_worker_allocates_nothing(worker, &connect);
}

fn handed_over_connections_allocate_nothing(backend: Backend, answers: Answers) {
    // The test plays the master: it accepts and hands each fd over the channel.
    let (master_end, worker_end) = channel_pair().expect("channel");
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").expect("bind"));
    let addr = listener.local_addr().expect("local addr");
    let worker = start_counted(worker_config(backend), answers, None, Some(worker_end));
    let dispatcher = {
        let listener = Arc::clone(&listener);
        thread::spawn(move || {
            let mut message = Message::new();
            let mut acks = [0u8; 64];
            // Ends when the test shuts the listener down (accept fails).
            while let Ok((stream, _)) = listener.accept() {
                send_blocking(master_end.as_fd(), &mut message, Tag::Connections, &[stream.as_raw_fd()])
                    .expect("hand the connection to the worker");
                // Read the acks as the master does, so the channel never fills.
                // SAFETY: a non-blocking read into a live local buffer.
                while unsafe {
                    libc::recv(master_end.as_raw_fd(), acks.as_mut_ptr().cast(), acks.len(), libc::MSG_DONTWAIT)
                } > 0
                {}
            }
        })
    };
    let connect = move || client(TcpStream::connect(addr).expect("connect"));
    assert_worker_allocates_nothing(worker, &connect);
    // SAFETY: shutdown on a valid listening socket wakes the blocked accept with an error.
    unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
    dispatcher.join().expect("dispatcher thread");
}

fn client(stream: TcpStream) -> TcpStream {
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream
}

#[test]
fn uring_accepted_connections_allocate_nothing() {
    accepted_connections_allocate_nothing(Backend::Uring, Answers::Fixed);
}

#[test]
fn uring_handed_over_connections_allocate_nothing() {
    handed_over_connections_allocate_nothing(Backend::Uring, Answers::Fixed);
}

#[test]
fn epoll_accepted_connections_allocate_nothing() {
    accepted_connections_allocate_nothing(Backend::Epoll, Answers::Fixed);
}

#[test]
fn epoll_handed_over_connections_allocate_nothing() {
    handed_over_connections_allocate_nothing(Backend::Epoll, Answers::Fixed);
}

#[test]
fn uring_a_long_fixed_body_allocates_nothing() {
    accepted_connections_allocate_nothing(Backend::Uring, Answers::FixedLong);
}

#[test]
fn epoll_a_long_fixed_body_allocates_nothing() {
    accepted_connections_allocate_nothing(Backend::Epoll, Answers::FixedLong);
}

#[test]
fn uring_router_handler_allocates_nothing() {
    accepted_connections_allocate_nothing(Backend::Uring, Answers::Router);
}

#[test]
fn epoll_router_handler_allocates_nothing() {
    handed_over_connections_allocate_nothing(Backend::Epoll, Answers::Router);
}

/// Bodies long enough that an epoll worker reading them ends its turn (16
/// reads of 64 KiB) with input left, and again in the next one.
const LONG_BODY: usize = 8 << 20;
/// Input waiting on each connection before the worker gets it: more than
/// two turns' reads.
const WAITING_INPUT: usize = 3 << 20;

/// A client that sends one `POST` of [`LONG_BODY`] bytes and reads its answer.
fn post_long_body(mut stream: TcpStream) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let head = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {LONG_BODY}\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("send the head");
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..LONG_BODY / chunk.len() {
            stream.write_all(&chunk).expect("send the body");
        }
        let mut buffer = Vec::new();
        read_responses(&mut stream, 1, &mut buffer);
    })
}

/// Bytes waiting to be read on `stream` (`FIONREAD`).
fn unread(stream: &TcpStream) -> usize {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int, into `bytes`, which lives through the call.
    let done = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut bytes) };
    assert_eq!(done, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    bytes as usize
}

/// A listener whose connections can hold [`WAITING_INPUT`] unread.
fn roomy_listener() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let size: libc::c_int = 8 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: one c_int option value, which lives through the call.
        let set = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set == 0 {
            break;
        }
    }
    listener
}

/// Every connection of a full epoll worker may end its turn with input
/// left and be queued for another, and again during that one: the queue
/// of such connections holds twice `max_conns` from the start. It held
/// `max_conns`, and grew (an allocation while serving) the first time all
/// of them were queued again in one pass.
#[test]
fn epoll_connections_with_input_left_allocate_nothing() {
    const CONNS: usize = 2;
    let config = EngineConfig {
        backend: Backend::Epoll,
        max_conns: CONNS,
        max_body: LONG_BODY as u64,
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(2),
        ..EngineConfig::default()
    };
    let (master_end, worker_end) = channel_pair().expect("channel");
    let worker = start_counted(config, Answers::Fixed, None, Some(worker_end));
    let listener = roomy_listener();
    let addr = listener.local_addr().expect("local addr");
    let mut message = Message::new();
    // Played as the master: each client's connection is handed over once
    // more than two turns' input waits on it, all of them in one message,
    // so that the worker's turns end with input left on all of them.
    let mut hand_over = |clients: usize| {
        let senders: Vec<_> =
            (0..clients).map(|_| post_long_body(client(TcpStream::connect(addr).expect("connect")))).collect();
        let accepted: Vec<TcpStream> = (0..clients).map(|_| listener.accept().expect("accept").0).collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while accepted.iter().any(|s| unread(s) < WAITING_INPUT) {
            assert!(Instant::now() < deadline, "the kernel would not hold {WAITING_INPUT} bytes unread");
            thread::sleep(Duration::from_millis(5));
        }
        let fds: Vec<i32> = accepted.iter().map(|s| s.as_raw_fd()).collect();
        send_blocking(master_end.as_fd(), &mut message, Tag::Connections, &fds).expect("hand the connections over");
        for sender in senders {
            sender.join().expect("client");
        }
    };
    // Warm-up: one connection's turns end with input left.
    hand_over(1);
    let before = worker.allocated();
    hand_over(CONNS);
    let after = worker.allocated();
    // The master gone, a worker with nothing left stops at once.
    drop(master_end);
    worker.stop();
    assert_eq!(after - before, 0, "the worker thread allocated {} times serving full connections", after - before);
}
