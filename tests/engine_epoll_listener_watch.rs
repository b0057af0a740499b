//! An epoll worker that cannot watch its listener again serves on with the
//! connections it holds. A worker takes its listener out of its epoll set
//! while it cannot accept (full, every 16 accepts to step back, a
//! connection it could not watch) and puts it back later; that watch can
//! fail as a connection's can (`ENOMEM`, or `ENOSPC` at the user's
//! `fs.epoll.max_user_watches`, which other workers' connections may have
//! taken since it let its watch go). Until 2026-12-07 the failure ended the
//! worker's loop, and every connection it held with it.
//!
//! The kernel's refusal is made here by a seccomp filter that fails
//! `epoll_ctl(EPOLL_CTL_ADD)` of the listener's descriptor with `ENOSPC`,
//! installed on every thread of this test process once the worker has
//! watched its listener: the filter stays, so this file holds one test.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringmaster_engine::{Backend, EngineConfig, FixedBody, StatsBlock, WorkerCounters};

mod in_process;
use in_process::InProcessWorker;

/// `AUDIT_ARCH_*` of this build (`linux/audit.h`).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Offsets in `struct seccomp_data`: the syscall's number, its
/// architecture, and the low 32 bits of its arguments (little-endian).
const NR: u32 = 0;
const ARCH: u32 = 4;
fn low_word_of_arg(i: u32) -> u32 {
    16 + 8 * i
}

fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn jump_if_equal(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt, jf, k }
}

/// Makes every thread of this process see `epoll_ctl(_, EPOLL_CTL_ADD, fd, _)` fail with `ENOSPC`.
fn refuse_watches_of(fd: i32) {
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let allow = libc::SECCOMP_RET_ALLOW;
    let mut filter = [
        statement(load, ARCH),
        jump_if_equal(AUDIT_ARCH, 1, 0),
        statement(ret, allow),
        statement(load, NR),
        jump_if_equal(libc::SYS_epoll_ctl as u32, 0, 5),
        statement(load, low_word_of_arg(1)),
        jump_if_equal(libc::EPOLL_CTL_ADD as u32, 0, 3),
        statement(load, low_word_of_arg(2)),
        jump_if_equal(fd as u32, 0, 1),
        statement(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSPC as u32),
        statement(ret, allow),
    ];
    let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
    // SAFETY: sets a flag of this thread; no pointers.
    let set = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(set, 0, "no_new_privs: {}", io::Error::last_os_error());
    // SAFETY: `program` points at `filter`, both alive through the call,
    // which copies them.
    let installed = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &program as *const libc::sock_fprog,
        )
    };
    assert_eq!(installed, 0, "seccomp: {}", io::Error::last_os_error());
}

/// One keep-alive request on `client`: its answer's status line, or how it failed.
fn ask(client: &mut TcpStream) -> Result<String, String> {
    client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut answer = [0u8; 512];
    match client.read(&mut answer) {
        Ok(0) => Err("the end of stream".into()),
        Ok(n) => Ok(String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_string()),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// A worker of `max_conns` accepting on a listener of its own, its
/// counters, its address, and its listener's descriptor (as the worker sees
/// it: the same number).
fn start(max_conns: usize) -> (InProcessWorker, Arc<StatsBlock>, SocketAddr, i32) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local addr");
    let listener_fd = listener.as_raw_fd();
    let config = EngineConfig { backend: Backend::Epoll, max_conns, ..EngineConfig::default() };
    let (worker, stats) = in_process::spawn_counted_with(config, listener, FixedBody::new(b"hello\n".to_vec()));
    (worker, stats, address, listener_fd)
}

/// A new connection to `address`, answered once.
fn connect_and_ask(address: SocketAddr) -> TcpStream {
    let mut client = TcpStream::connect(address).expect("connect");
    client.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    // Without the fix the 16th could go unanswered too: its request came
    // after its accept, and the loop ended at the step back that followed.
    assert_eq!(ask(&mut client).as_deref(), Ok("HTTP/1.1 200 OK"), "a new connection is answered");
    client
}

/// Waits until the worker's loop has turned `turns` more times (each tick
/// turns it, trying the listener again), then asks on each of `held`.
fn serves_on(counters: &WorkerCounters, held: &mut [TcpStream], what: &str) {
    let start = Instant::now();
    let turns = counters.snapshot().heartbeat;
    while counters.snapshot().heartbeat < turns + 3 {
        if start.elapsed() > Duration::from_secs(5) {
            let first = ask(&mut held[0]);
            panic!("{what}: the worker's loop stopped turning; a connection it held: {first:?}");
        }
        thread::sleep(Duration::from_millis(2));
    }
    for client in held {
        assert_eq!(ask(client).as_deref(), Ok("HTTP/1.1 200 OK"), "{what}: a connection held is served on");
    }
}

/// Both ways a worker watches its listener again: once a full worker has
/// room (a connection closed), and when it steps back in the listener's
/// queue after 16 accepts. Both workers run to the end, their listeners
/// open: a descriptor number the filters name is never given to another.
#[test]
fn a_worker_that_cannot_watch_its_listener_again_serves_on() {
    // Full: two connections fill it, and it takes its listener out of its set.
    let (full, full_stats, address, listener_fd) = start(2);
    let counters = full_stats.slot(0).expect("slot 0");
    let mut held = [connect_and_ask(address)];
    let filling = connect_and_ask(address);
    refuse_watches_of(listener_fd);
    // Its close makes room: the worker watches its listener again, refused.
    drop(filling);
    let start_wait = Instant::now();
    while counters.snapshot().live != 1 {
        if start_wait.elapsed() > Duration::from_secs(5) {
            let held_now = ask(&mut held[0]);
            panic!("full: the worker's loop did not turn again after the close; the connection held: {held_now:?}");
        }
        thread::sleep(Duration::from_millis(2));
    }
    serves_on(counters, &mut held, "full");

    // Stepping back: the 16th accept takes the listener out and puts it back.
    let (stepping, stepping_stats, address, listener_fd) = start(32);
    let mut held: Vec<TcpStream> = (0..15).map(|_| connect_and_ask(address)).collect();
    refuse_watches_of(listener_fd);
    held.push(connect_and_ask(address));
    serves_on(stepping_stats.slot(0).expect("slot 0"), &mut held, "stepping back");

    stepping.stop();
    full.stop();
}
