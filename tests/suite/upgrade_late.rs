//! A new master that becomes ready just as the old master's time for it
//! (`--shutdown-timeout`) runs out. Both must agree on the outcome. Before,
//! the old master could fail the upgrade with the new master's "ready"
//! unread in the channel (or arriving a moment later): the new master took
//! the control socket's path, told systemd it was the main process and
//! served beside the old one, then, stopped by it, removed the control
//! socket and told systemd it stopped, while the old master served on with
//! no control socket (seen by a stress run: `--shutdown-timeout 0.065`, 1
//! upgrade in 20; every later `ctl` found no socket).
//!
//! Now the old master, at its deadline, ends the channel's reading and
//! takes the last word: a "ready" already sent wins and the upgrade goes
//! on; after that the new master's send fails, and a new master whose old
//! master lives on after such a failure stops without taking anything over.

use crate::util;

use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use util::control::ctl;
use util::ops::NotifySocket;
use util::upgrade::{parse_new_master, start_as_new_master, status_when, wait_gone, TempDir};
use util::*;

/// The old master is stopped while the new one says it is ready, and
/// resumes past its deadline with the word unread: it hands over.
#[test]
fn a_ready_word_unread_at_the_deadline_still_hands_over() {
    let dir = TempDir::new("upgrade-late-word");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let args = ["--workers", "1", "--no-pin", "--shutdown-timeout", "2", "--control", control.to_str().expect("UTF-8")];
    let mut old = Server::start_binary(&binary, &args);
    status_when(&control, 1, |_| true);
    let mark = old.log_len();
    old.signal(libc::SIGUSR2);
    let (_, started) =
        old.wait_for_log_from(mark, |l| l.contains("upgrade: new master started (pid "), Duration::from_secs(10));
    let resume = util::procs::stop(old.pid());
    let new_master = parse_new_master(&started).expect("its pid");
    let told = format!("ringmaster[{new_master}]: upgrade: every worker is ready: told the old master");
    let line = old.raw_log().into_iter().find(|l| l.contains("upgrade: new master started (pid ")).expect("logged");
    old.wait_for_log_from(mark, |l| l.starts_with("upgrade: every worker is ready: told the old master"), IO_TIMEOUT);
    assert!(old.raw_log().iter().any(|l| l.contains(&told)), "{:?}", old.raw_log());
    // The old master's deadline is 2 s after it started the new master: let it pass, stopped.
    let started_ms = parse_log_line(&line).expect("a log line").unix_ms;
    let past = UNIX_EPOCH + Duration::from_millis(started_ms + 2_200);
    while SystemTime::now() < past {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(resume);
    let (_, outcome) = old.wait_for_log_from(
        mark,
        |l| l.starts_with("upgrade failed: ") || l.contains("is ready: this master"),
        Duration::from_secs(10),
    );
    assert!(outcome.contains(&format!("the new master (pid {new_master}) is ready")), "{outcome}");
    assert_eq!(old.wait_exit(Duration::from_secs(15)).code(), Some(0));
    old.connect().get_ok();
    let (code, out, _) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"), "the new master serves the control socket");
    assert!(wait_gone(&[new_master], Duration::from_secs(15)).is_empty());
}

/// This test is the old master: it hands a listener and a readiness channel
/// down as `upgrade` does, and has given the new master up (ended the
/// channel's reading, as at its deadline) before it is ready. The new master
/// stops by itself, gives systemd back the old pid, and leaves the listener
/// listening for the old master.
#[test]
fn a_new_master_given_up_by_a_living_old_master_stops_without_taking_over() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    ours.shutdown(Shutdown::Read).expect("end the channel's reading");
    let socket = NotifySocket::at_path("given-up");
    let fds = [listener.as_raw_fd(), theirs.as_raw_fd()];
    let args = ["--bind", "127.0.0.1:0", "--workers", "1", "--no-pin"];
    let mut child = start_as_new_master(&fds, "listen=3,ready=4", &args, &socket.name);
    let pid = child.0.id();
    let (status, log) =
        child.exit_and_log(Duration::from_secs(15), "the new master given up on did not stop by itself");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("gave up waiting") && !log.contains(&format!("pid {pid} serves")), "{log}");

    // systemd heard it take over, then give the old pid back; no stop.
    let messages = socket.pending();
    let last_main = messages.iter().rev().find_map(|m| m.lines().find_map(|l| l.strip_prefix("MAINPID=")));
    assert_eq!(last_main, Some(std::process::id().to_string().as_str()), "{messages:?}");
    assert!(!messages.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")), "{messages:?}");

    // The listener is still the old master's, listening: a client waits in
    // its queue and is taken from there.
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("the listener still listens");
    let (accepted, from) = listener.accept().expect("accept the queued client");
    assert_eq!(from, client.local_addr().unwrap());
    drop((accepted, client));
}
