//! Supervisor (issue 5): the control socket and `ringmaster ctl`.
//!
//! - `--control PATH` is a unix socket with mode 0600 (a stale socket is
//!   replaced, a regular file is never clobbered).
//! - One reply line per command line; garbage and unknown commands get a line
//!   starting with `error:` and the same connection keeps serving (`status`
//!   after garbage returns the JSON stats line).
//! - `status` is the stats line plus `restarts`, `uptime_ms`, `state`.
//! - `reload` and `stop` work as their signals do.
//! - `ringmaster ctl PATH COMMAND...` prints the reply; exit 1 on `error`.

use crate::util;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use util::control::{control_path, ctl, parse_status, Control};
use util::procs::{run_to_exit, stop_and_check_no_process_left};
use util::*;

// --- local helpers ------------------------------------------------------------------------

/// A fresh path for a control socket; removed (if still there) on drop.
struct SockPath(PathBuf);

impl SockPath {
    fn new(name: &str) -> SockPath {
        let p = control_path("control", name);
        let _ = std::fs::remove_file(&p);
        SockPath(p)
    }

    fn arg(&self) -> String {
        self.0.to_str().unwrap().to_string()
    }
}

impl Drop for SockPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits (at most 5 s) until the peer has read everything written on `s`: a
/// unix socket's bytes count in its sender's output queue (SIOCOUTQ) until the
/// receiver has read them.
fn wait_read_by_peer(s: &UnixStream) {
    let unread = || {
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int, which `n` is, for a valid socket fd.
        let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        assert_eq!(r, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
        n
    };
    assert!(eventually(Duration::from_secs(5), || unread() == 0), "{} bytes still unread by the master", unread());
}

fn check_status_shape(v: &serde_json::Value, mode: &str, workers: usize) {
    assert_eq!(v["mode"], mode, "{v}");
    let ws = v["workers"].as_array().unwrap();
    assert_eq!(ws.len(), workers, "{v}");
    for (i, w) in ws.iter().enumerate() {
        assert_eq!(w["id"].as_u64(), Some(i as u64 + 1), "{v}");
        for key in ["pid", "cpu", "accepted", "requests", "live", "restarts", "uptime_ms"] {
            assert!(w[key].is_u64(), "worker {} without numeric {key}: {v}", i + 1);
        }
        assert_eq!(w["state"], "ready", "{v}");
        assert_eq!(w["restarts"], 0, "{v}");
    }
}

// --- the tests ------------------------------------------------------------------------------

#[test]
fn control_socket_is_0600_and_survives_garbage() {
    let path = SockPath::new("garbage");
    let s = Server::start(&["--workers", "2", "--control", &path.arg()]);
    // "listening on" comes once every worker is ready or after 2 s: on a
    // loaded machine a worker may still be starting then.
    s.wait_workers_ready(2, START_TIMEOUT);

    let meta = std::fs::metadata(&path.0).expect("control socket exists");
    assert!(meta.file_type().is_socket(), "not a socket: {:?}", meta.file_type());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "mode {:o}", meta.permissions().mode());
    // SAFETY: geteuid only reads the process's credentials.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(meta.uid(), euid, "owned by the user running the master");

    let mut c = Control::connect(&path.0);
    let first = c.status();
    let first_seen = Instant::now();
    check_status_shape(&first, "rr", 2);
    // The same fields as the SIGUSR1 stats line.
    let stats = s.stats();
    for (a, b) in first["workers"].as_array().unwrap().iter().zip(stats["workers"].as_array().unwrap()) {
        assert_eq!((&a["id"], &a["pid"], &a["cpu"]), (&b["id"], &b["pid"], &b["cpu"]), "{first} vs {stats}");
    }

    let garbage: [&[u8]; 14] = [
        b"garbage",
        b"",
        b"   ",
        b"STATUS",
        b"status now",
        b"scale",
        b"scale 0",
        b"scale -1",
        b"scale x",
        b"scale 2 3",
        b"reload now",
        b"stop please",
        b"\xff\xfe\x00\x01",
        b"GET / HTTP/1.1",
    ];
    for g in garbage {
        let reply = c.command(g);
        assert!(reply.starts_with("error:"), "reply to {:?}: {reply:?}", String::from_utf8_lossy(g));
        // ... and the same connection keeps serving.
        let v = parse_status(&c.command(b"status"));
        check_status_shape(&v, "rr", 2);
    }

    // Several commands in one write: one reply line each, in order.
    c.send(b"status\nbogus\r\nstatus\r\n");
    check_status_shape(&parse_status(&c.line()), "rr", 2);
    assert!(c.line().starts_with("error:"));
    check_status_shape(&parse_status(&c.line()), "rr", 2);
    // A command split over two reads of the master: the second half is sent
    // once the master has read the first.
    c.send(b"sta");
    wait_read_by_peer(c.r.get_ref());
    let between = first_seen.elapsed();
    c.send(b"tus\n");
    let later = parse_status(&c.line());
    // uptime_ms follows the clock: between the two answers at least the time
    // we saw pass went by (whole milliseconds, each reading truncated).
    let up = |v: &serde_json::Value| v["workers"][0]["uptime_ms"].as_u64().unwrap();
    assert!(
        up(&later) + 1 >= up(&first) + between.as_millis() as u64,
        "uptime_ms moved less than the {between:?} that passed: {first} then {later}"
    );

    // An idle control client does not hold up another one.
    let mut other = Control::connect(&path.0);
    check_status_shape(&other.status(), "rr", 2);
    assert!(other.command(b"nonsense").starts_with("error:"));

    // An endless line is refused; the master goes on serving new clients.
    let mut long = Control::connect(&path.0);
    long.send(&[b'x'; 4096]);
    let reply = long.line();
    assert!(reply.starts_with("error:"), "{reply:?}");
    check_status_shape(&Control::connect(&path.0).status(), "rr", 2);
    check_status_shape(&c.status(), "rr", 2);

    // The workers were not disturbed by any of it.
    let mut h = s.connect();
    h.get_ok();
    let v = c.status();
    assert_eq!(v["workers"][0]["pid"], first["workers"][0]["pid"]);
    assert_eq!(v["workers"][1]["pid"], first["workers"][1]["pid"]);
    assert!(!s.log().iter().any(|l| l.contains("reload") || l.contains("scaling") || l.contains("received")));
    drop(h);
    stop_and_check_no_process_left(s);
    assert!(!path.0.exists(), "the master removes its control socket on exit");
}

#[test]
fn ctl_prints_the_reply_and_fails_on_errors() {
    let path = SockPath::new("ctl");
    let s = Server::start(&["--mode", "shared", "--workers", "2", "--control", &path.arg()]);
    // "listening on" comes once every worker is ready or after 2 s: on a
    // loaded machine a worker may still be starting then.
    s.wait_workers_ready(2, START_TIMEOUT);

    let (code, out, err) = ctl(&path.0, &["status"]);
    assert_eq!(code, 0, "ctl status: {out} {err}");
    check_status_shape(&parse_status(&out), "shared", 2);
    assert_eq!(out.lines().count(), 1, "{out}");

    let (code, out, _) = ctl(&path.0, &["frobnicate"]);
    assert_eq!(code, 1, "unknown command: {out}");
    assert!(out.starts_with("error:"), "{out}");
    let (code, out, _) = ctl(&path.0, &["scale", "zero"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("error:"), "{out}");

    let missing = control_path("control", "missing");
    let (code, out, err) = ctl(&missing, &["status"]);
    assert_eq!(code, 1, "no master at {}: {out} {err}", missing.display());
    assert!(!err.is_empty(), "ctl says why it failed");

    // `ctl reload` replaces every worker, like SIGHUP.
    let before = parse_status(&ctl(&path.0, &["status"]).1);
    let from = s.log_len();
    let (code, out, _) = ctl(&path.0, &["reload"]);
    assert_eq!((code, out.as_str()), (0, "ok reloading 2 workers"));
    s.wait_for_log_from(from, |l| l == "reload: replacing 2 workers one at a time", Duration::from_secs(2));
    let mut last = serde_json::Value::Null;
    let replaced = eventually(Duration::from_secs(10), || {
        last = parse_status(&ctl(&path.0, &["status"]).1);
        let ws = last["workers"].as_array().unwrap();
        ws.len() == 2
            && ws
                .iter()
                .zip(before["workers"].as_array().unwrap())
                .all(|(n, o)| n["pid"] != o["pid"] && n["state"] == "ready")
    });
    assert!(replaced, "reload did not replace every worker: before {before}, now {last}");
    check_status_shape(&last, "shared", 2);
    s.connect().get_ok();
    stop_and_check_no_process_left(s);
}

#[test]
fn control_stop_stops_gracefully_and_refuses_more_work() {
    let path = SockPath::new("stop");
    let mut s = Server::start(&["--workers", "2", "--control", &path.arg()]);
    let mut idle = s.connect();
    idle.get_ok();

    let mut c = Control::connect(&path.0);
    // In one write: the stop, then commands that a stopping master refuses.
    c.send(b"stop\nreload\nscale 3\nstatus\n");
    assert_eq!(c.line(), "ok stopping");
    let reload = c.line();
    assert!(reload.starts_with("error:"), "reload while stopping: {reload:?}");
    let scale = c.line();
    assert!(scale.starts_with("error:"), "scale while stopping: {scale:?}");
    let status = parse_status(&c.line());
    assert_eq!(status["workers"].as_array().unwrap().len(), 2, "{status}");

    let code = s.wait_exit(Duration::from_secs(10));
    assert_eq!(code.code(), Some(0), "master exit after `stop`: {code}");
    s.wait_for_log(|l| l.starts_with("stop command received: stopping 2 workers"), Duration::from_secs(1));
    let exits = s.log().iter().filter(|l| l.ends_with(") exited with code 0")).count();
    assert_eq!(exits, 2, "{:?}", s.log());
    let line = s.next_stdout_line(Duration::from_secs(2)).expect("final stats line");
    let fin: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert!(fin["workers"].as_array().unwrap().iter().all(|w| w["state"] == "exited"), "{fin}");
    // Closed by its worker's drain: the usual wait, the close may come a
    // moment after the exit on a busy machine.
    idle.expect_closed();
    // The control connection ends with the master: end of stream, within the
    // socket's 5 s read timeout, and nothing more after the replies.
    let mut rest = Vec::new();
    if let Err(e) = c.r.read_to_end(&mut rest) {
        panic!("the control connection did not end with the master: {e} (after {} more bytes)", rest.len());
    }
    assert!(rest.is_empty(), "unexpected bytes after the replies: {:?}", String::from_utf8_lossy(&rest));
    assert!(!path.0.exists(), "control socket left behind after stop");
    stop_and_check_no_process_left(s);
}

#[test]
fn control_path_stale_socket_is_replaced_regular_file_is_not() {
    // A socket left by a master that died: replaced, and the new one is 0600.
    let stale = SockPath::new("stale");
    drop(UnixListener::bind(&stale.0).expect("bind a stale socket"));
    std::fs::set_permissions(&stale.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let s = Server::start(&["--workers", "1", "--control", &stale.arg()]);
    // "listening on" comes once every worker is ready or after 2 s: on a
    // loaded machine a worker may still be starting then.
    s.wait_workers_ready(1, START_TIMEOUT);
    let meta = std::fs::metadata(&stale.0).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "mode {:o}", meta.permissions().mode());
    check_status_shape(&Control::connect(&stale.0).status(), "rr", 1);
    stop_and_check_no_process_left(s);

    // A regular file is never clobbered: the master refuses to start.
    let file = SockPath::new("file");
    std::fs::write(&file.0, b"precious").unwrap();
    let args = ["--bind", "127.0.0.1:0", "--workers", "1", "--control", &file.arg()];
    let (status, _, err) = run_to_exit(&args, Duration::from_secs(10));
    assert!(!status.success(), "master started over a regular file: {err}");
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&file.0).unwrap(), b"precious");
}
