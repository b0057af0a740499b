//! A worker loop on a thread of the test process, stopped through its
//! shutdown eventfd as the master's stop would: what the engine's
//! in-process tests (`engine_alloc`, `engine_handoff`, `engine_bundle`,
//! `engine_read_ahead`) run; [`serve`] is the loop most of them run.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;

use ringmaster_engine::{EngineConfig, Handler, Request, Response, Sources, StatsBlock};

/// A worker loop running on its own thread.
pub struct InProcessWorker {
    shutdown: OwnedFd,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

impl InProcessWorker {
    /// Runs `serve` on a new thread, handing it the worker's end of a
    /// shutdown eventfd (for its `Sources`).
    pub fn spawn(serve: impl FnOnce(OwnedFd) -> io::Result<()> + Send + 'static) -> InProcessWorker {
        // SAFETY: eventfd with valid flags returns a new fd or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(raw >= 0, "eventfd: {}", io::Error::last_os_error());
        // SAFETY: eventfd returned a new fd that nothing else owns.
        let shutdown = unsafe { OwnedFd::from_raw_fd(raw) };
        let worker_shutdown = shutdown.try_clone().expect("dup eventfd");
        let thread = thread::spawn(move || serve(worker_shutdown));
        InProcessWorker { shutdown, thread: Some(thread) }
    }

    /// Tells the worker to drain and waits for its loop to end.
    pub fn stop(mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to the eventfd.
        let wrote = unsafe { libc::write(self.shutdown.as_raw_fd(), (&one as *const u64).cast(), 8) };
        assert_eq!(wrote, 8, "signal the worker to stop");
        let thread = self.thread.take().expect("worker thread");
        thread.join().expect("worker thread panicked").expect("worker loop failed");
    }
}

/// Where an in-process worker's connections come from.
#[allow(dead_code)]
pub enum Feed {
    /// It accepts on this listener.
    Listener(OwnedFd),
    /// The test hands connections over this channel, as the master would.
    Channel(OwnedFd),
}

/// Runs a worker loop with `config` on `feed`, answering with `handler`,
/// until `shutdown` is readable (what [`InProcessWorker::spawn`] hands it).
#[allow(dead_code)]
pub fn serve(config: &EngineConfig, feed: Feed, shutdown: OwnedFd, handler: &mut impl Handler) -> io::Result<()> {
    let stats = StatsBlock::private(1)?;
    let counters = stats.slot(0).expect("slot 0");
    let (listener, channel) = match feed {
        Feed::Listener(listener) => (Some(listener), None),
        Feed::Channel(channel) => (None, Some(channel)),
    };
    let sources = Sources { listener, own_listener: false, channel, shutdown: Some(shutdown), accept_tally: None };
    ringmaster_engine::run(config, sources, counters, handler)
}

/// Answers every request with `len` bytes of [`pattern`] over `period`,
/// which a lost or misplaced byte breaks (large answers: the engine's
/// partial sends and buffers beyond the hot path's).
#[allow(dead_code)]
pub struct PatternAnswer {
    pub len: usize,
    pub period: usize,
}

impl Handler for PatternAnswer {
    fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
        let mut chunk = [0u8; 4096];
        for start in (0..self.len).step_by(chunk.len()) {
            for (i, byte) in chunk.iter_mut().enumerate() {
                *byte = pattern(start + i, self.period);
            }
            res.body(&chunk[..chunk.len().min(self.len - start)]);
        }
    }
}

/// Byte `i` of a [`PatternAnswer`]'s body.
#[allow(dead_code)]
pub fn pattern(i: usize, period: usize) -> u8 {
    b'a' + (i % period) as u8
}

/// A worker with `config`, answering with `handler`, accepting on a new
/// listener on 127.0.0.1 (a port of its own): the worker and the address.
#[allow(dead_code)]
pub fn spawn_on_loopback(
    config: EngineConfig,
    mut handler: impl Handler + Send + 'static,
) -> (InProcessWorker, std::net::SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local addr");
    let worker = InProcessWorker::spawn(move |shutdown| {
        serve(&config, Feed::Listener(OwnedFd::from(listener)), shutdown, &mut handler)
    });
    (worker, address)
}

/// A worker with `config` accepting on `listener` and answering one byte,
/// whose counters the test reads (`accepted`, `live`): the worker and its
/// stats block.
#[allow(dead_code)]
pub fn spawn_counted(
    config: EngineConfig,
    listener: std::net::TcpListener,
) -> (InProcessWorker, std::sync::Arc<StatsBlock>) {
    spawn_counted_with(config, listener, PatternAnswer { len: 1, period: 1 })
}

/// As [`spawn_counted`], answering with `handler`.
#[allow(dead_code)]
pub fn spawn_counted_with(
    config: EngineConfig,
    listener: std::net::TcpListener,
    mut handler: impl Handler + Send + 'static,
) -> (InProcessWorker, std::sync::Arc<StatsBlock>) {
    let stats = std::sync::Arc::new(StatsBlock::private(1).expect("stats block"));
    let worker_stats = std::sync::Arc::clone(&stats);
    let worker = InProcessWorker::spawn(move |shutdown| {
        let counters = worker_stats.slot(0).expect("slot 0");
        let sources = Sources {
            listener: Some(OwnedFd::from(listener)),
            own_listener: false,
            channel: None,
            shutdown: Some(shutdown),
            accept_tally: None,
        };
        ringmaster_engine::run(&config, sources, counters, &mut handler)
    });
    (worker, stats)
}

/// Waits until the peer has acknowledged all `client` sent: it is in the
/// server's socket.
#[allow(dead_code)]
pub fn wait_all_acknowledged(client: &std::net::TcpStream) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut unacknowledged: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int through the pointer, which is valid.
        let asked = unsafe { libc::ioctl(client.as_raw_fd(), libc::TIOCOUTQ, &mut unacknowledged) };
        assert_eq!(asked, 0, "TIOCOUTQ: {}", io::Error::last_os_error());
        if unacknowledged == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server's socket did not take it ({unacknowledged} bytes left)"
        );
        thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Closes `client` with a reset (`SO_LINGER` 0).
#[allow(dead_code)]
pub fn reset(client: std::net::TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the option value is a valid `linger` of the length given.
    let set = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(client);
}
