//! Under systemd: `Type=notify` readiness sent to a `NOTIFY_SOCKET` the test
//! made (a path, an abstract name) — `READY=1` once every worker is ready,
//! `RELOADING=1` with `MONOTONIC_USEC=` and `READY=1` around a reload,
//! `STOPPING=1`, `STATUS=`, and `MAINPID=` from the new master after an
//! upgrade; and socket activation — listeners passed as `LISTEN_FDS` are
//! served, nothing is bound.

use crate::util;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use util::control::ctl;
use util::ops::{metrics_addr, scrape, NotifySocket};
use util::upgrade::{parse_new_master, replace_by_rename, wait_gone, Replacement, TempDir};
use util::*;

fn with_notify(socket: &NotifySocket) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("NOTIFY_SOCKET", &socket.name);
    cmd
}

fn has(message: &[String], line: &str) -> bool {
    message.iter().any(|l| l == line)
}

fn field<'a>(message: &'a [String], key: &str) -> Option<&'a str> {
    message.iter().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// `CLOCK_MONOTONIC` now, in microseconds.
/// After an upgrade: `ctl stop` (the new master now), which says
/// `STOPPING=1` to systemd and exits.
fn stop_the_new_master(control: &std::path::Path, socket: &NotifySocket, new_master: u32) {
    let (code, out, _) = ctl(control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"));
    assert!(has(socket.until("STOPPING=1").last().unwrap(), "STOPPING=1"));
    assert!(wait_gone(&[new_master], Duration::from_secs(15)).is_empty());
}

fn monotonic_usec() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

#[test]
fn ready_reloading_ready_stopping() {
    let socket = NotifySocket::at_path("lifecycle");
    let s = Server::start_command(with_notify(&socket), &["--workers", "2"]);
    let ready = socket.next();
    assert!(has(&ready, "READY=1"), "{ready:?}");
    let status = field(&ready, "STATUS").expect("STATUS with READY");
    assert!(status.starts_with("serving: 2 of 2 workers ready (rr mode, "), "{status}");

    let before = monotonic_usec();
    s.signal(libc::SIGHUP);
    let reloading = socket.next();
    assert!(has(&reloading, "RELOADING=1"), "{reloading:?}");
    let at: u64 = field(&reloading, "MONOTONIC_USEC").expect("MONOTONIC_USEC").parse().expect("a number");
    assert!(at >= before && at <= monotonic_usec(), "MONOTONIC_USEC {at} is CLOCK_MONOTONIC at the reload");
    let after = socket.until("READY=1");
    let done = after.last().unwrap();
    assert!(field(done, "STATUS").is_some_and(|s| s.starts_with("serving: 2 of 2")), "{after:?}");
    assert!(s.log().iter().filter(|l| l.starts_with("worker ") && l.contains("replacing pid")).count() == 2);

    s.signal(libc::SIGTERM);
    let stopping = socket.until("STOPPING=1");
    assert!(!stopping.iter().flatten().any(|l| l == "READY=1"), "{stopping:?}");
    // Its STATUS= says the stop, not the serving before it.
    let status = field(stopping.last().unwrap(), "STATUS").expect("STATUS with STOPPING");
    assert!(status.starts_with("stopping: "), "{status}");
    let mut s = s;
    assert!(s.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn an_abstract_notify_socket() {
    let socket = NotifySocket::abstract_name("abstract");
    let s = Server::start_command(with_notify(&socket), &["--workers", "1"]);
    assert!(has(&socket.next(), "READY=1"));
    drop(s);
    assert!(has(socket.until("STOPPING=1").last().unwrap(), "STOPPING=1"));
}

#[test]
fn the_new_master_of_an_upgrade_says_it_is_the_main_pid() {
    let dir = TempDir::new("notify-upgrade");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let socket = NotifySocket::at_path("upgrade");
    let mut cmd = Command::new(&binary);
    cmd.env("NOTIFY_SOCKET", &socket.name);
    let mut old = Server::start_command(cmd, &["--workers", "1", "--no-pin", "--control", control.to_str().unwrap()]);
    assert!(has(&socket.next(), "READY=1"));
    let (code, out, err) = ctl(&control, &["upgrade"]);
    assert_eq!(code, 0, "{out} {err}");
    let new_master = parse_new_master(&old.wait_for_log(|l| l.contains("new master started (pid "), IO_TIMEOUT))
        .expect("the new master's pid");
    let took_over = socket.until("READY=1");
    let message = took_over.last().unwrap();
    assert_eq!(field(message, "MAINPID"), Some(new_master.to_string().as_str()), "{took_over:?}");
    assert!(old.wait_exit(Duration::from_secs(30)).success());
    // The old master, gone now, said nothing about stopping: the service goes on.
    for text in socket.pending() {
        assert!(!text.lines().any(|l| l == "STOPPING=1"), "the old master told systemd it stops: {text}");
    }
    stop_the_new_master(&control, &socket, new_master);
}

/// A new master stopped before it is ready (here by a `SIGTERM` pending as
/// it starts; the old master's `--shutdown-timeout` stops one the same way)
/// tells systemd nothing: the service is the old master's, which serves on.
/// Before, it sent `STOPPING=1`, and systemd (`NotifyAccess=all`) took the
/// service for stopping while the old master served: `TimeoutStopSec=`
/// later it would kill them all.
#[test]
fn a_new_master_stopped_before_it_is_ready_does_not_tell_systemd_it_stops() {
    let dir = TempDir::new("notify-upgrade-stopped");
    let binary = dir.install();
    let next = dir.join("next");
    util::upgrade::copy_for_exec(std::path::Path::new(BIN), &next);
    let socket = NotifySocket::at_path("upgrade-stopped");
    let mut cmd = Command::new(&binary);
    cmd.env("NOTIFY_SOCKET", &socket.name);
    let mut old = Server::start_command(cmd, &["--workers", "1", "--no-pin"]);
    assert!(has(&socket.next(), "READY=1"));
    // The SIGTERM stays pending, blocked, across the exec: the new master
    // reads it at its first turn, before any of its workers is ready.
    let script = format!(
        "#!/bin/sh\nexec env --block-signal=TERM /bin/sh -c 'kill -TERM $$; exec \"$0\" \"$@\"' {} \"$@\"\n",
        next.display()
    );
    replace_by_rename(&binary, Replacement::Script(&script));
    let mark = old.log_len();
    old.signal(libc::SIGUSR2);
    let (_, line) = old.wait_for_log_from(mark, |l| l.contains("upgrade failed: "), Duration::from_secs(10));
    assert!(line.contains("before it was ready") && line.contains("keeps serving"), "{line}");
    old.connect().get_ok();
    // Once the old master has stopped, every message is in the socket: one
    // STOPPING=1, the old master's own, and after it only the old master's
    // count of the processes left, if a worker's exit was seen a turn
    // before its own (`STATUS=stopping: 0 worker processes left ...`).
    old.signal(libc::SIGTERM);
    assert!(old.wait_exit(Duration::from_secs(15)).success());
    let messages = socket.pending();
    let stopping: Vec<usize> =
        (0..messages.len()).filter(|&i| messages[i].lines().any(|l| l == "STOPPING=1")).collect();
    assert_eq!(stopping.len(), 1, "the new master told systemd it stops: {messages:?}");
    let after = &messages[stopping[0] + 1..];
    assert!(
        after.iter().all(|m| m.lines().all(|l| l.starts_with("STATUS=stopping: ") && l.contains(" left ("))),
        "{messages:?}"
    );
}

/// A copy of `fd` numbered 100 or above (close-on-exec), for `pre_exec` to place.
fn dup_high(fd: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC makes a new fd that nothing else owns.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    assert!(copy >= 100, "dup: {}", std::io::Error::last_os_error());
    // SAFETY: `copy` is a new, valid fd.
    unsafe { OwnedFd::from_raw_fd(copy) }
}

/// The binary run as systemd runs a socket-activated service: `fds` at 3,
/// 4, ..., `LISTEN_FDS`, `LISTEN_FDNAMES`, and `LISTEN_PID` set to the
/// service's own pid (a shell sets it, then execs the binary).
fn activated(fds: &[RawFd], names: &str) -> (Command, Vec<OwnedFd>) {
    let copies: Vec<OwnedFd> = fds.iter().map(|&fd| dup_high(fd)).collect();
    let sources: Vec<RawFd> = copies.iter().map(AsRawFd::as_raw_fd).collect();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", BIN])
        .env("LISTEN_FDS", fds.len().to_string())
        .env("LISTEN_FDNAMES", names)
        .env_remove("LISTEN_PID");
    // SAFETY: only dup2, async-signal-safe, between fork and exec; `sources`
    // were made before the fork and are all at 100 or above, clear of 3, 4, ...
    unsafe {
        cmd.pre_exec(move || {
            for (i, &from) in sources.iter().enumerate() {
                if libc::dup2(from, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    (cmd, copies)
}

/// Inodes of the listening TCP sockets process `pid` holds.
fn listening_sockets_of(pid: u32) -> Vec<(u64, u16)> {
    let held: BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the master's fds")
        .flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (cols[1], cols[3], cols[9].parse::<u64>().unwrap_or(0));
            if state == "0A" && held.contains(&inode) {
                let port = u16::from_str_radix(local.rsplit(':').next().unwrap(), 16).unwrap();
                listening.push((inode, port));
            }
        }
    }
    listening
}

#[test]
fn passed_listeners_are_served_and_nothing_is_bound() {
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let metrics = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (http_at, metrics_at): (SocketAddr, SocketAddr) = (http.local_addr().unwrap(), metrics.local_addr().unwrap());
    let (cmd, copies) = activated(&[http.as_raw_fd(), metrics.as_raw_fd()], "http:metrics");
    // The harness adds `--bind 127.0.0.1:0`: systemd's sockets win over it.
    let s = Server::start_command(cmd, &["--workers", "2"]);
    drop((http, metrics, copies));
    assert_eq!(s.addr(), http_at, "listening on the passed socket");
    let passed =
        format!("socket activation: serving on the socket systemd passed (fd 3, {http_at}); --bind is not used");
    assert!(s.log().contains(&passed), "{:?}", s.log());
    assert_eq!(metrics_addr(&s), metrics_at);
    s.wait_workers_ready(2, START_TIMEOUT);
    for _ in 0..4 {
        s.connect().get_ok();
    }
    assert!(scrape(metrics_at).contains("ringmaster_worker_requests_total"));
    let mut ports: Vec<u16> = listening_sockets_of(s.pid()).into_iter().map(|(_, port)| port).collect();
    ports.sort_unstable();
    let mut expected = vec![http_at.port(), metrics_at.port()];
    expected.sort_unstable();
    assert_eq!(ports, expected, "the master listens on the passed sockets only");
}

#[test]
fn a_passed_socket_that_does_not_listen_is_refused() {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let (mut cmd, copies) = activated(&[udp.as_raw_fd()], "http");
    cmd.args(["--workers", "1"]);
    let output = cmd.output().expect("run");
    drop(copies);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not a listening stream socket"), "{stderr}");
    let line = stderr.lines().next().unwrap_or_default();
    assert_eq!(parse_log_line(line).map(|l| l.level), Some("ERROR"), "{stderr}");
}

#[test]
fn reuseport_refuses_a_passed_socket() {
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (mut cmd, copies) = activated(&[http.as_raw_fd()], "http");
    cmd.args(["--workers", "1", "--mode", "reuseport", "--bind", "127.0.0.1:0"]);
    let output = cmd.output().expect("run");
    drop((http, copies));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--mode reuseport binds one listener per worker itself"), "{stderr}");
}

/// Fills the notify socket's queue (as a busy systemd leaves it) until it
/// has no room; how many went.
fn fill(socket: &NotifySocket) -> usize {
    let filler = std::os::unix::net::UnixDatagram::unbound().expect("a socket");
    filler.set_nonblocking(true).expect("non-blocking");
    let mut filled = 0;
    while filler.send_to(b"STATUS=filler", &socket.name).is_ok() {
        filled += 1;
        assert!(filled < 1_000_000, "the notify socket never filled");
    }
    filled
}

/// A message's lines, values left out where they vary (`MAINPID`, `STATUS`).
fn keys(message: &str) -> Vec<&str> {
    let state = |line: &&str| ["READY=1", "RELOADING=1", "STOPPING=1"].contains(line);
    message.lines().map(|l| if state(&l) { l } else { l.split('=').next().unwrap_or(l) }).collect()
}

/// Has the kernel attach each sender's credentials to what `socket` receives
/// (as systemd's socket does: it knows each notification's sender so).
fn pass_credentials(socket: &NotifySocket) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads an int of the size given from a live local.
    let rc = unsafe {
        libc::setsockopt(
            socket.socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_PASSCRED: {}", std::io::Error::last_os_error());
}

/// Every message already received, with the pid that sent it (see
/// [`pass_credentials`]), without waiting.
fn pending_with_senders(socket: &NotifySocket) -> Vec<(u32, String)> {
    let mut got = Vec::new();
    loop {
        let mut buffer = [0u8; 4096];
        let mut control = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
        // SAFETY: a zeroed msghdr is valid; its pointers are set below to live locals.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: recvmsg writes within the buffers the header names, all live here.
        let n = unsafe { libc::recvmsg(socket.socket.as_raw_fd(), &mut header, libc::MSG_DONTWAIT) };
        if n < 0 {
            return got;
        }
        let mut sender = 0;
        // SAFETY: the CMSG macros walk the control buffer recvmsg filled, within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&header);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS {
                    let creds: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    sender = creds.pid as u32;
                }
                cmsg = libc::CMSG_NXTHDR(&header, cmsg);
            }
        }
        got.push((sender, String::from_utf8_lossy(&buffer[..n as usize]).to_string()));
    }
}

/// A binary upgrade under `Type=notify`, datagram by datagram: the old
/// master says `RELOADING=1` as the new one starts; the new one says
/// `MAINPID=` with its own pid and `READY=1` before it tells the old one;
/// the old one says nothing more (no `STOPPING=1`: the service goes on),
/// and the pid systemd was given is the master that serves. Before, the
/// old master said nothing as the upgrade began: `systemctl status` said
/// `running` throughout.
#[test]
fn an_upgrade_is_reloading_then_the_new_main_pid_ready() {
    let dir = TempDir::new("notify-upgrade-sequence");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let socket = NotifySocket::at_path("upgrade-sequence");
    pass_credentials(&socket);
    let mut cmd = Command::new(&binary);
    cmd.env("NOTIFY_SOCKET", &socket.name);
    let mut old = Server::start_command(cmd, &["--workers", "1", "--no-pin", "--control", control.to_str().unwrap()]);
    let ready = socket.next();
    assert!(has(&ready, "READY=1") && !ready.iter().any(|l| l.starts_with("MAINPID=")), "{ready:?}");
    let before = monotonic_usec();
    let (code, out, err) = ctl(&control, &["upgrade"]);
    assert_eq!(code, 0, "{out} {err}");
    let new_master: u32 = out
        .strip_prefix("ok upgraded: pid ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(old.wait_exit(Duration::from_secs(30)).success());
    // Both masters have said all they will say about the upgrade: the old
    // one that it reloads, the new one (not yet the main pid: hence
    // `NotifyAccess=all`) that it is the main pid now.
    let (senders, messages): (Vec<u32>, Vec<String>) = pending_with_senders(&socket).into_iter().unzip();
    assert_eq!(senders, [old.pid(), new_master], "{messages:#?}");
    let shapes: Vec<Vec<&str>> = messages.iter().map(|m| keys(m)).collect();
    assert_eq!(
        shapes,
        [vec!["RELOADING=1", "MONOTONIC_USEC", "STATUS"], vec!["MAINPID", "READY=1", "STATUS"]],
        "{messages:#?}"
    );
    let reloading: Vec<String> = messages[0].lines().map(str::to_string).collect();
    let at: u64 = field(&reloading, "MONOTONIC_USEC").and_then(|u| u.parse().ok()).expect("MONOTONIC_USEC");
    assert!(at >= before && at <= monotonic_usec(), "{at}");
    let status = field(&reloading, "STATUS").unwrap();
    assert!(status.starts_with(&format!("upgrading (new master pid {new_master} starting): ")), "{status}");
    let took_over: Vec<String> = messages[1].lines().map(str::to_string).collect();
    assert_eq!(field(&took_over, "MAINPID"), Some(new_master.to_string().as_str()));
    assert!(field(&took_over, "STATUS").unwrap().starts_with("serving: 1 of 1 worker ready"), "{took_over:?}");
    // MAINPID names the master that serves: its worker answers, on the
    // control socket's word and over the listener.
    let status = util::upgrade::status_when(&control, 1, |_| true);
    for worker in util::upgrade::worker_pids(&status) {
        assert_eq!(util::upgrade::parent_of(worker), Some(new_master), "{status}");
    }
    old.connect().get_ok();
    stop_the_new_master(&control, &socket, new_master);
}

/// An upgrade whose new file cannot start: `RELOADING=1`, then `READY=1`
/// from the old master once it failed, which serves on; no `MAINPID=`.
/// Before, systemd was told nothing either way.
#[test]
fn a_failed_upgrade_is_reloading_then_ready_again_with_no_new_main_pid() {
    let dir = TempDir::new("notify-upgrade-fails");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let socket = NotifySocket::at_path("upgrade-fails");
    let mut cmd = Command::new(&binary);
    cmd.env("NOTIFY_SOCKET", &socket.name);
    let mut old = Server::start_command(cmd, &["--workers", "1", "--no-pin", "--control", control.to_str().unwrap()]);
    assert!(has(&socket.next(), "READY=1"));
    replace_by_rename(&binary, Replacement::Script("#!/bin/sh\necho 'no, not today' >&2\nexit 1\n"));
    let (code, out, _) = ctl(&control, &["upgrade"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("error: upgrade failed: "), "{out}");
    let messages = socket.until("READY=1");
    let joined: Vec<String> = messages.iter().map(|m| m.join("\n")).collect();
    let shapes: Vec<Vec<&str>> = joined.iter().map(|m| keys(m)).collect();
    assert_eq!(shapes, [vec!["RELOADING=1", "MONOTONIC_USEC", "STATUS"], vec!["READY=1", "STATUS"]], "{messages:#?}");
    let status = field(&messages[1], "STATUS").unwrap();
    assert!(status.starts_with("serving: 1 of 1 worker ready"), "{status}");
    old.connect().get_ok();
    old.signal(libc::SIGTERM);
    assert!(old.wait_exit(Duration::from_secs(15)).success());
    let rest = socket.pending();
    assert!(rest.iter().all(|m| !m.contains("MAINPID=")), "{rest:?}");
    assert!(rest.first().is_some_and(|m| m.lines().any(|l| l == "STOPPING=1")), "{rest:?}");
}

/// systemd's socket full from before a stop until the master has begun to
/// exit: the master, with no loop left to wait in, waits for room (a
/// bounded time) and its `STOPPING=1` and last `STATUS=` arrive. Before,
/// they were dropped with the process.
#[test]
fn what_waits_for_systemd_goes_as_the_master_exits() {
    let socket = NotifySocket::at_path("exit-flush");
    let mut s = Server::start_command(with_notify(&socket), &["--workers", "1", "--no-pin"]);
    assert!(has(&socket.next(), "READY=1"));
    let filled = fill(&socket);
    s.signal(libc::SIGTERM);
    let exiting = s.try_wait_for_log_from(0, |l| l.contains("notification") && l.contains("at exit"), START_TIMEOUT);
    let mut messages = Vec::new();
    // Read as systemd would once it is free again, until the master is gone.
    socket.socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = socket.socket.recv(&mut buffer) {
        messages.push(String::from_utf8_lossy(&buffer[..n]).to_string());
    }
    assert!(s.wait_exit(Duration::from_secs(15)).success());
    messages.extend(socket.pending());
    let said: Vec<&String> = messages.iter().skip(filled).collect();
    assert!(
        said.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "STOPPING=1 never arrived ({} fillers, then {said:?}); exit line: {exiting:?}",
        filled
    );
    let last = said.last().unwrap();
    assert!(last.lines().any(|l| l.starts_with("STATUS=stopping: ")), "{said:?}");
}

/// A new master whose `MAINPID=` finds systemd's socket full holds its word
/// to the old master until it has gone: told first, the old master drained
/// and exited while systemd still took it for the main process, and, a
/// `Type=notify` service whose main process exited, stopped the unit. The
/// old master's `RELOADING=1` is said at once or not at all (said late, after
/// the new master's `READY=1`, it would leave the service reloading).
#[test]
fn a_new_master_tells_the_old_one_only_once_its_main_pid_has_gone() {
    let dir = TempDir::new("notify-upgrade-full");
    let binary = dir.install();
    let socket = NotifySocket::at_path("upgrade-full");
    let mut cmd = Command::new(&binary);
    cmd.env("NOTIFY_SOCKET", &socket.name);
    let mut old = Server::start_command(cmd, &["--workers", "1", "--no-pin", "--shutdown-timeout", "60"]);
    assert!(has(&socket.next(), "READY=1"));
    let filled = fill(&socket);
    let mark = old.log_len();
    old.signal(libc::SIGUSR2);
    let new_master =
        parse_new_master(&old.wait_for_log_from(mark, |l| l.contains("new master started (pid "), IO_TIMEOUT).1)
            .expect("the new master's pid");
    // The new master's lines go to the same stderr.
    let (_, held) =
        old.wait_for_log_from(mark, |l| l.contains("is told once systemd's notify socket has room"), START_TIMEOUT);
    assert!(
        !old.log()[mark..].iter().any(|l| l.contains("stops accepting")),
        "the old master handed over with MAINPID= unsent: {:?}",
        &old.log()[mark..]
    );
    assert!(old.is_running(), "{held}");
    // systemd reads its queue again.
    let mut messages = Vec::new();
    socket.socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buffer = [0u8; 4096];
    while messages.len() < filled + 1 {
        let n = socket.socket.recv(&mut buffer).expect("the new master's MAINPID=");
        messages.push(String::from_utf8_lossy(&buffer[..n]).to_string());
    }
    assert!(old.wait_exit(Duration::from_secs(30)).success());
    messages.extend(socket.pending());
    let said: Vec<Vec<&str>> = messages[filled..].iter().map(|m| keys(m)).collect();
    assert_eq!(said, [vec!["MAINPID", "READY=1", "STATUS"]], "{:?}", &messages[filled..]);
    assert!(messages[filled].starts_with(&format!("MAINPID={new_master}\n")));
    assert!(util::upgrade::running(new_master));
    util::procs::kill(new_master, libc::SIGTERM);
    assert!(wait_gone(&[new_master], Duration::from_secs(15)).is_empty());
}

/// The test as an old master that gives up a new master just after its
/// word (it stops): the new master gives systemd the old pid back
/// (`MAINPID=OLD`) and stops at once. systemd's socket is full then: the
/// new master waits for room (a bounded time) before it exits. Before, its
/// `MAINPID=OLD` was dropped with it, and systemd, which had its
/// `MAINPID=NEW`, took its exit for the main process's and stopped the unit
/// under the old master.
#[test]
fn a_new_master_given_back_waits_for_room_for_the_old_main_pid() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixStream;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (mut ours, theirs) = UnixStream::pair().expect("a socket pair");
    let socket = NotifySocket::at_path("given-back-full");
    let fds = [listener.as_raw_fd(), theirs.as_raw_fd()];
    let args = ["--bind", "127.0.0.1:0", "--workers", "1", "--no-pin"];
    let mut child = util::upgrade::start_as_new_master(&fds, "listen=3,ready=4", &args, &socket.name);
    drop(theirs);
    let pid = child.0.id();
    ours.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let mut word = [0u8; 5];
    ours.read_exact(&mut word).expect("the new master's ready word");
    assert_eq!(&word, b"ready");
    let took_over = socket.next();
    assert_eq!(field(&took_over, "MAINPID"), Some(pid.to_string().as_str()), "{took_over:?}");
    let filled = fill(&socket);
    // The old master stops: it gives the upgrade up, on the channel and by signal.
    ours.write_all(b"given up\n").expect("the word");
    util::procs::kill(pid, libc::SIGTERM);
    let stderr = child.0.stderr.take().expect("its stderr");
    let mut log = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let waiting = line.contains("notification") && line.contains("at exit");
        log.push(line);
        if waiting {
            break;
        }
    }
    socket.socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut messages = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = socket.socket.recv(&mut buffer) {
        messages.push(String::from_utf8_lossy(&buffer[..n]).to_string());
    }
    let status = child.0.wait().expect("its exit");
    assert!(status.success(), "{status:?}: {log:#?}");
    let said = &messages[filled.min(messages.len())..];
    let main = said.iter().find_map(|m| m.lines().find_map(|l| l.strip_prefix("MAINPID=")));
    assert_eq!(main, Some(std::process::id().to_string().as_str()), "{said:?}; its log: {log:#?}");
    assert!(!said.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")), "{said:?}");
}
