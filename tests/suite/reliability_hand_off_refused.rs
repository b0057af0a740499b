//! A hand-off the kernel refuses for now is not a worker's death. A master
//! without `CAP_SYS_RESOURCE` and `CAP_SYS_ADMIN` whose user has more
//! descriptors in flight in unix sockets than its open-file limit gets
//! `ETOOMANYREFS` for every connection it passes. The connection waits in
//! the master, the master says why, no worker is stopped, and the request
//! is answered once the kernel takes it. Before, the master took the error
//! for the worker's death, closed its channel, and the healthy workers
//! drained, exited and were restarted over and over.

use crate::util;

use std::fs::File;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::Duration;

use nix::sys::socket::{sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
use util::ops::{metrics_addr, samples, scrape, value};
use util::*;

/// The master's open-file limit (soft and hard).
const NOFILE: libc::rlim_t = 1024;
/// Descriptors kept in flight: more than [`NOFILE`].
const IN_FLIGHT: usize = 2000;
/// From <linux/capability.h>; the kernel lets either one pass more.
const CAP_SYS_ADMIN: libc::c_ulong = 21;
const CAP_SYS_RESOURCE: libc::c_ulong = 24;

/// Is this test process root (it must take capabilities away)?
fn root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipping: dropping the master's capabilities needs the tests to run as root");
    }
    root
}

/// Descriptors sent into a unix socket and never received: the kernel counts
/// them in flight for this user (root, as the master) until the socket closes.
struct InFlight {
    _sockets: (OwnedFd, OwnedFd),
}

impl InFlight {
    fn hold(count: usize) -> InFlight {
        let (sender, receiver) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).expect("socketpair");
        let null = File::open("/dev/null").expect("open /dev/null");
        let fds = [null.as_raw_fd(); 250];
        for sent in (0..count).step_by(fds.len()) {
            let batch = &fds[..fds.len().min(count - sent)];
            sendmsg::<()>(
                sender.as_raw_fd(),
                &[IoSlice::new(b"x")],
                &[ControlMessage::ScmRights(batch)],
                MsgFlags::empty(),
                None,
            )
            .expect("send descriptors in flight");
        }
        InFlight { _sockets: (sender, receiver) }
    }
}

#[test]
fn a_hand_off_the_kernel_refuses_for_now_waits_and_stops_no_worker() {
    if !root() {
        return;
    }
    let mut command = Command::new(BIN);
    // SAFETY: the closure runs in the child between fork and exec and makes
    // only async-signal-safe calls (prctl, setrlimit) on values it owns.
    unsafe {
        command.pre_exec(|| {
            for cap in [CAP_SYS_ADMIN, CAP_SYS_RESOURCE] {
                // Out of the bounding set: root's program gets neither after exec.
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let limit = libc::rlimit { rlim_cur: NOFILE, rlim_max: NOFILE };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let s = Server::start_command(command, &["--workers", "2", "--no-pin", "--metrics", "127.0.0.1:0"]);
    let metrics_at = metrics_addr(&s);
    s.wait_workers_ready(2, Duration::from_secs(10));
    assert_eq!(s.connect().request(GET).status, 200, "answered before anything is in flight");

    let in_flight = InFlight::hold(IN_FLIGHT);
    let addr = s.addr();
    let client = thread::spawn(move || Conn::connect(addr).request(GET).status);
    let line = s.wait_for_log(|l| l.contains("cannot hand connections to worker"), Duration::from_secs(10));
    assert!(line.contains("in flight in unix sockets"), "says why: {line}");
    drop(in_flight);
    assert_eq!(client.join().expect("client"), 200, "answered once the kernel takes the connection");

    let exits: Vec<String> = s.log().into_iter().filter(|l| l.contains("exited")).collect();
    assert!(exits.is_empty(), "no worker stops for it: {exits:?}");
    let retries = value(&samples(&scrape(metrics_at)), "ringmaster_master_hand_off_retries_total", &[]);
    assert!(retries >= 1.0, "the refused sends are counted: {retries}");
}
