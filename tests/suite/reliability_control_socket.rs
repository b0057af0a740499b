//! Issue 8, finding 4: the control socket cannot be locked out or taken over.
//!
//! - Clients that hold a partial line (or nothing) cannot keep an operator
//!   out: when every slot is taken the client idle the longest makes room,
//!   and a line not finished within 5 s gets its connection closed.
//! - A second master never takes over a control socket a running master
//!   answers on: it refuses to start, naming the path.
//! - A socket left by a master that was killed (nobody listening) is replaced.
//! - A client waiting for the outcome of its `upgrade` is not idle: a crowd
//!   of new clients evicts others, and it gets its answer.

use crate::util;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use util::control::{ctl, parse_status, send_then_read_to_end, SockPath};
use util::procs::{kill, run_to_exit, stop, stop_and_check_no_process_left};
use util::upgrade::{parse_new_master, replace_by_rename, status_when, wait_gone, worker_pids, Replacement, TempDir};
use util::*;

/// More idle clients than the master has slots (32).
const IDLE_CLIENTS: usize = 40;
/// The master's deadline for a line, and room for a loaded machine.
const LINE_DEADLINE: Duration = Duration::from_secs(5);
const CLOSE_WITHIN: Duration = Duration::from_secs(15);

/// Waits for the master to close `client`: true at end of stream (or reset),
/// false if it is still open after `limit`.
fn closed_within(client: &mut UnixStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut byte = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        client.set_read_timeout(Some(left)).expect("timeout");
        match client.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading an idle control client: {e} ({e:?})"),
        }
    }
}

#[test]
fn control_socket_survives_idle_clients_holding_every_slot() {
    let path = SockPath::new("reliability", "lockout");
    let s = Server::start(&["--workers", "1", "--no-pin", "--control", path.arg()]);
    let started = Instant::now();
    let mut idle: Vec<UnixStream> = (0..IDLE_CLIENTS)
        .map(|i| {
            let mut client = UnixStream::connect(&path.0).unwrap_or_else(|e| panic!("idle client {i}: {e}"));
            // Half a command, never finished.
            client.write_all(b"sta").expect("partial line");
            client
        })
        .collect();

    // The operator still gets in, with ctl and with a client of its own.
    let (code, out, err) = ctl(&path.0, &["status"]);
    assert_eq!(code, 0, "ctl status with every slot held: {out} {err}");
    assert_eq!(parse_status(&out)["workers"].as_array().map(Vec::len), Some(1), "{out}");
    let mut operator = util::control::Control::connect(&path.0);
    assert_eq!(operator.status()["workers"].as_array().map(Vec::len), Some(1));

    // Every idle client is closed: evicted at once, or at its line's deadline.
    for (i, client) in idle.iter_mut().enumerate() {
        assert!(closed_within(client, CLOSE_WITHIN), "idle client {i} still open after {CLOSE_WITHIN:?}");
    }
    assert!(started.elapsed() >= LINE_DEADLINE, "the newest idle clients were given their 5 s");
    // And the master goes on serving control clients and HTTP.
    let (code, out, _) = ctl(&path.0, &["status"]);
    assert_eq!(code, 0, "{out}");
    s.connect().get_ok();
    stop_and_check_no_process_left(s);
}

/// A last command without its line end, then the end of input (`printf
/// status | socat - UNIX-CONNECT:PATH`): the end finishes the line and the
/// client gets its reply. Before, the line was dropped and the connection
/// closed without a word.
#[test]
fn a_last_command_without_its_line_end_is_answered_at_the_end_of_input() {
    let path = SockPath::new("reliability", "unended");
    let s = Server::start(&["--workers", "1", "--no-pin", "--control", path.arg()]);
    let reply = send_then_read_to_end(&path.0, b"status").expect("the reply, then the end");
    assert!(reply.ends_with('\n'), "a whole line: {reply:?}");
    let status = parse_status(reply.trim_end());
    assert_eq!(status["workers"][0]["id"], 1, "{status}");
    stop_and_check_no_process_left(s);
}

/// A line longer than the master takes, from a client that sends it all
/// before it reads: the client gets `error: line too long`, then the end.
/// Before, the master closed with the rest of the line unread, which reset
/// the connection, and the error was lost (or the client's write failed).
#[test]
fn an_overlong_line_gets_its_error_not_a_reset() {
    let path = SockPath::new("reliability", "overlong");
    let s = Server::start(&["--workers", "1", "--no-pin", "--control", path.arg()]);
    let reply = send_then_read_to_end(&path.0, &[b'a'; 100 * 1024]).expect("the error, then the end; not a reset");
    assert_eq!(reply, "error: line too long\n");
    // The master serves on.
    assert_eq!(parse_status(&ctl(&path.0, &["status"]).1)["workers"].as_array().map(Vec::len), Some(1));
    stop_and_check_no_process_left(s);
}

#[test]
fn a_second_master_refuses_a_live_control_socket() {
    let path = SockPath::new("reliability", "live");
    let first = Server::start(&["--workers", "1", "--no-pin", "--control", path.arg()]);
    let before = parse_status(&ctl(&path.0, &["status"]).1);

    let args = ["--bind", "127.0.0.1:0", "--workers", "1", "--no-pin", "--control", path.arg()];
    let (status, _, err) = run_to_exit(&args, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "a second master on a live control socket: {err}");
    let line = err.lines().last().unwrap_or_default();
    assert!(line.contains(path.arg()) && line.contains("running master"), "{err}");
    assert!(!err.contains("started"), "it started workers before refusing: {err}");

    // The first master keeps its socket and answers on it as before.
    assert!(path.0.exists(), "the live socket was removed");
    let after = parse_status(&ctl(&path.0, &["status"]).1);
    assert_eq!(after["workers"][0]["pid"], before["workers"][0]["pid"], "{before} then {after}");
    stop_and_check_no_process_left(first);
}

#[test]
fn a_stale_control_socket_is_replaced() {
    let path = SockPath::new("reliability", "stale");
    // A master killed outright cannot remove its socket: it stays, and nobody
    // will accept on it again. A new master is started at once, while the
    // kernel may still be tearing down the dead one's ring, which holds the
    // listener for a moment after the process is gone.
    let mut dead = Server::start(&["--workers", "1", "--no-pin", "--control", path.arg()]);
    kill(dead.pid(), libc::SIGKILL);
    dead.wait_exit(Duration::from_secs(5));
    assert!(path.0.exists(), "the killed master's socket is left behind");

    let s = Server::start(&["--workers", "1", "--no-pin", "--control", path.arg()]);
    let (code, out, err) = ctl(&path.0, &["status"]);
    assert_eq!(code, 0, "{out} {err}");
    stop_and_check_no_process_left(s);
    stop_and_check_no_process_left(dead);
}

/// `ringmaster ctl PATH upgrade` keeps its connection open, writing nothing
/// more, until the outcome comes (here: a new master that never becomes
/// ready, up to `--shutdown-timeout`). Until 2026-12-05 a crowd of 33 new
/// clients meanwhile evicted it as the client "idle" the longest: its
/// connection closed without the outcome, while the upgrade went on.
#[test]
fn a_client_waiting_for_its_upgrade_is_not_evicted() {
    let dir = TempDir::new("control-owed");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let path = control.to_str().expect("UTF-8");
    let s =
        Server::start_binary(&binary, &["--workers", "1", "--no-pin", "--shutdown-timeout", "2", "--control", path]);
    status_when(&control, 1, |_| true);
    // A new master that keeps what it was handed and never says a word.
    replace_by_rename(&dir.join("ringmaster"), Replacement::Script("#!/bin/sh\nexec sleep 60\n"));
    let mut asker = UnixStream::connect(&control).expect("connect");
    asker.write_all(b"upgrade\n").expect("the command");
    let started = s.wait_for_log(|l| l.contains("upgrade: new master started (pid "), Duration::from_secs(10));
    let crowd: Vec<UnixStream> = (0..IDLE_CLIENTS)
        .map(|i| UnixStream::connect(&control).unwrap_or_else(|e| panic!("client {i}: {e}")))
        .collect();
    asker.set_read_timeout(Some(CLOSE_WITHIN)).expect("timeout");
    // One line: the connection stays open after it, as `ctl`'s does until it reads it.
    let mut answer = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(&asker), &mut answer);
    let pid = util::upgrade::parse_new_master(&started).expect("its pid");
    assert_eq!(
        answer,
        format!("error: upgrade failed: the new master (pid {pid}) was not ready within 2.0 s (--shutdown-timeout)\n"),
        "the client that asked got no outcome"
    );
    drop(crowd);
    stop_and_check_no_process_left(s);
}

/// The path of a master's control socket, removed while it runs (a cleanup
/// of the directory, an operator's `rm`) and bound since by a second master,
/// is the second's: the first leaves it in place when it exits, itself or
/// through the new master of an upgrade (by `SIGUSR2`, the path reaching
/// the second master now). Until 2026-12-06 the exiting master removed
/// whatever was at the path, and the second served on unreachable by `ctl`.
#[test]
fn a_control_path_bound_again_by_another_master_is_left_to_it() {
    let dir = TempDir::new("control-rebound");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let path = control.to_str().expect("UTF-8 path");
    let args = ["--workers", "1", "--no-pin", "--control", path];

    // A master that exits by itself. It stands still while the path is
    // gone, or it would make the path again before the second could.
    let first = Server::start_binary(&binary, &args);
    status_when(&control, 1, |_| true);
    let stopped = stop(first.pid());
    std::fs::remove_file(&control).expect("the path removed under the first master");
    let second = Server::start(&args);
    let serving = worker_pids(&status_when(&control, 1, |_| true));
    stopped.continue_now();
    stop_and_check_no_process_left(first);
    assert!(control.exists(), "the first master removed the second's control socket as it exited");
    assert_eq!(worker_pids(&status_when(&control, 1, |_| true)), serving, "the second master answers");
    stop_and_check_no_process_left(second);

    // A master upgraded, whose new master exits.
    let mut upgraded = Server::start_binary(&binary, &args);
    status_when(&control, 1, |_| true);
    let stopped = stop(upgraded.pid());
    std::fs::remove_file(&control).expect("the path removed under the master to upgrade");
    let third = Server::start(&args);
    let serving = worker_pids(&status_when(&control, 1, |_| true));
    stopped.continue_now();
    kill(upgraded.pid(), libc::SIGUSR2);
    let new_master =
        parse_new_master(&upgraded.wait_for_log(|l| l.contains("upgrade: new master started (pid "), IO_TIMEOUT))
            .expect("the new master's pid");
    assert_eq!(upgraded.wait_exit(Duration::from_secs(15)).code(), Some(0), "the old master hands over and exits");
    kill(new_master, libc::SIGTERM);
    assert!(wait_gone(&[new_master], Duration::from_secs(15)).is_empty(), "the new master stops");
    assert!(control.exists(), "the upgrade's new master removed another master's control socket as it exited");
    assert_eq!(worker_pids(&status_when(&control, 1, |_| true)), serving, "the third master answers");
    stop_and_check_no_process_left(third);
}

/// A control path removed under a running master (a cleaner of `/tmp`, an
/// `rm`) is made again: `ctl` reaches the master again within a tick, a
/// client that connected just before the removal is answered, and the path
/// is the master's to remove at its exit. Until 2026-12-06 the master
/// served on unreachable by `ctl` until it was restarted.
#[test]
fn a_control_path_removed_under_the_master_is_made_again() {
    let path = SockPath::new("reliability", "removed");
    let s = Server::start(&["--workers", "1", "--no-pin", "--control", path.arg()]);
    let serving = worker_pids(&status_when(&path.0, 1, |_| true));

    // Removed while the master stands still, with a client queued on the
    // socket the path named.
    let stopped = stop(s.pid());
    let mut queued = UnixStream::connect(&path.0).expect("connect while the master stands still");
    queued.write_all(b"status").expect("send");
    queued.shutdown(std::net::Shutdown::Write).expect("end of input");
    std::fs::remove_file(&path.0).expect("the path removed under the master");
    stopped.continue_now();
    queued.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut answer = String::new();
    let read = queued.read_to_string(&mut answer);
    assert!(read.is_ok() && answer.starts_with('{'), "the client queued before the removal got {read:?}: {answer:?}");

    s.wait_for_log(|l| l.contains("was removed while this master ran: listening there again"), IO_TIMEOUT);
    assert_eq!(worker_pids(&status_when(&path.0, 1, |_| true)), serving, "ctl reaches the same master");
    stop_and_check_no_process_left(s);
    assert!(!path.0.exists(), "the master removes the path it made again");
}

/// A client that writes `status` lines and does not read its replies: the
/// master stops reading from it once it holds 64 KiB of replies, and its
/// commands run as it takes them; it gets every reply, in order. Before,
/// the master read on and rendered a reply for every line, all kept until
/// the client's line deadline closed it (7 MB a second of memory while it
/// lasted, and the client lost every reply).
#[test]
fn a_client_that_does_not_read_its_replies_is_not_read_from_either() {
    use nix::sys::socket::{setsockopt, sockopt};

    let path = SockPath::new("reliability", "noread");
    let s = Server::start(&["--workers", "1", "--no-pin", "--control", path.arg()]);
    let mut client = UnixStream::connect(&path.0).expect("connect");
    // A small send buffer: the master's reading shows at once.
    setsockopt(&client, sockopt::SndBuf, &4096).expect("SO_SNDBUF");
    // Well under the master's line deadline (5 s): a write that waits this
    // long means the master stopped reading.
    client.set_write_timeout(Some(Duration::from_secs(1))).expect("timeout");
    let lines = b"status\n".repeat(1024);
    // Without a bound the master reads about as fast as this writes.
    const READ_BOUND: usize = 8 << 20;
    let mut written = 0;
    loop {
        assert!(written < READ_BOUND, "the master read {written} bytes of commands whose replies nobody took");
        match client.write(&lines[written % lines.len()..]) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("after {written} bytes of commands: {e} ({e:?}): the master gave up on the client"),
        }
    }
    // A line cut short is a command too, at the end of input.
    let commands = written.div_ceil(b"status\n".len());
    client.shutdown(std::net::Shutdown::Write).expect("end of input");
    client.set_read_timeout(Some(CLOSE_WITHIN)).expect("timeout");
    let mut replies = String::new();
    client.read_to_string(&mut replies).expect("every reply, then the end");
    let replies: Vec<&str> = replies.lines().collect();
    assert_eq!(replies.len(), commands, "a reply for each of {commands} commands ({written} bytes)");
    let whole = written / b"status\n".len();
    for (i, reply) in replies.iter().take(whole).enumerate() {
        assert_eq!(parse_status(reply)["workers"].as_array().map(Vec::len), Some(1), "reply {i}: {reply}");
    }
    s.connect().get_ok();
    stop_and_check_no_process_left(s);
}
