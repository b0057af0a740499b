//! Proves the worker's hot path allocates nothing: a counting global
//! allocator counts heap allocations made on the worker's event-loop thread
//! only, and the count must not move while thousands of requests over new
//! connections (pipelined and not, accepted or handed over a channel) are
//! served after warm-up. The window spans more than a second so the `Date`
//! refresh and the timeout scan run inside it too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ringmaster_engine::channel::{channel_pair, send_blocking, Message, Tag};
use ringmaster_engine::{EngineConfig, Sources, StatsBlock};

struct CountingAllocator;

thread_local! {
    static COUNT_THIS_THREAD: Cell<bool> = const { Cell::new(false) };
}
static WORKER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn note_allocation() {
    if COUNT_THIS_THREAD.try_with(Cell::get).unwrap_or(false) {
        WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator unchanged; counting
// touches only an atomic and a const thread-local (neither allocates).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const REQUEST: &[u8] = b"GET /alloc HTTP/1.1\r\nHost: localhost\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n\r\n";
const BODY: &[u8] = b"hello world\n";

/// A worker on its own thread, counting that thread's allocations.
struct InProcessWorker {
    shutdown: OwnedFd,
    thread: Option<thread::JoinHandle<std::io::Result<()>>>,
}

impl InProcessWorker {
    fn start(listener: Option<OwnedFd>, channel: Option<OwnedFd>) -> InProcessWorker {
        // SAFETY: eventfd with valid flags returns a new fd or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(raw >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: eventfd returned a new fd that nothing else owns.
        let shutdown = unsafe { OwnedFd::from_raw_fd(raw) };
        let worker_shutdown = shutdown.try_clone().expect("dup eventfd");
        let thread = thread::spawn(move || {
            let config = EngineConfig { max_conns: 1024, ..EngineConfig::default() };
            let stats = StatsBlock::private(1)?;
            let counters = stats.slot(0).expect("slot 0");
            COUNT_THIS_THREAD.with(|c| c.set(true));
            let sources = Sources { listener, channel, shutdown: Some(worker_shutdown) };
            let result = ringmaster_engine::run(&config, sources, counters);
            COUNT_THIS_THREAD.with(|c| c.set(false));
            result
        });
        InProcessWorker { shutdown, thread: Some(thread) }
    }

    fn stop(mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to the eventfd.
        let wrote = unsafe { libc::write(self.shutdown.as_raw_fd(), (&one as *const u64).cast(), 8) };
        assert_eq!(wrote, 8, "signal the worker to stop");
        let thread = self.thread.take().expect("worker thread");
        thread.join().expect("worker thread panicked").expect("worker loop failed");
    }
}

/// Reads until `count` complete responses have arrived.
fn read_responses(stream: &mut TcpStream, count: usize, buffer: &mut Vec<u8>) {
    buffer.clear();
    let mut chunk = [0u8; 16384];
    loop {
        let seen = buffer.windows(BODY.len()).filter(|w| *w == BODY).count();
        if seen >= count && buffer.ends_with(BODY) {
            assert_eq!(seen, count, "more responses than requests");
            return;
        }
        let n = stream.read(&mut chunk).expect("read responses");
        assert!(n > 0, "server closed after {seen} of {count} responses");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// `connections` new connections, each doing `sequential` keep-alive requests
/// then one write of `pipelined` requests; `connect` makes each connection.
fn drive(connections: usize, sequential: usize, pipelined: usize, connect: &(dyn Fn() -> TcpStream + Sync)) -> usize {
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
                        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
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

fn assert_hot_path_allocates_nothing(connect: &(dyn Fn() -> TcpStream + Sync)) {
    // Warm-up: every path once (accept, recv, parse, pipelined send, close, tick).
    drive(16, 5, 16, connect);
    thread::sleep(Duration::from_millis(300));
    let before = WORKER_ALLOCATIONS.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let served_first = drive(100, 50, 50, connect);
    eprintln!("served {served_first} requests in {:?}", started.elapsed());
    // Cross at least one `Date` change and several ticks inside the window.
    thread::sleep(Duration::from_millis(1100));
    let served_second = drive(8, 10, 16, connect);
    thread::sleep(Duration::from_millis(200));
    let after = WORKER_ALLOCATIONS.load(Ordering::Relaxed);
    let served = served_first + served_second;
    assert!(served >= 10_000, "served only {served} requests");
    assert_eq!(
        after - before,
        0,
        "the worker thread allocated {} times while serving {served} requests",
        after - before
    );
    assert!(before > 0, "the counter saw the worker's start-up allocations, so it is counting that thread");
}

#[test]
fn accepted_connections_alloc_nothing_on_the_hot_path() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let worker = InProcessWorker::start(Some(OwnedFd::from(listener)), None);
    let connect = move || TcpStream::connect(addr).expect("connect");
    assert_hot_path_allocates_nothing(&connect);
    worker.stop();
}

#[test]
fn handed_over_connections_alloc_nothing_on_the_hot_path() {
    // The test plays the master: it accepts and hands each fd over the channel.
    let (master_end, worker_end) = channel_pair().expect("channel");
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").expect("bind"));
    let addr = listener.local_addr().expect("local addr");
    let worker = InProcessWorker::start(None, Some(worker_end));
    let dispatcher = {
        let listener = Arc::clone(&listener);
        thread::spawn(move || {
            let mut message = Message::new();
            let mut handed = 0usize;
            // Ends when the test shuts the listener down (accept fails).
            while let Ok((stream, _)) = listener.accept() {
                send_blocking(master_end.as_fd(), &mut message, Tag::Connections, &[stream.as_raw_fd()])
                    .expect("hand the connection to the worker");
                handed += 1;
            }
            handed
        })
    };
    let connect = move || TcpStream::connect(addr).expect("connect");
    assert_hot_path_allocates_nothing(&connect);
    // SAFETY: shutdown on a valid listening socket wakes the blocked accept with an error.
    unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
    let handed = dispatcher.join().expect("dispatcher thread");
    assert_eq!(handed, 16 + 100 + 8, "every connection went through the channel");
    worker.stop();
}
