//! Supervisor (issue 5): scaling at run time, seen in `status`.
//!
//! SIGTTIN adds a worker, SIGTTOU retires the newest one gracefully (never
//! below one), and `ringmaster ctl PATH scale N` sets the count; `status` on the
//! control socket lists exactly the running workers. Clients run throughout
//! and none of their requests may fail: retiring is a drain, not a kill. Both
//! modes.

mod util;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use util::*;

const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

// --- local helpers ------------------------------------------------------------------------

/// Every pid named in a `ringmaster: worker ...` log line.
fn logged_pids(log: &[String]) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    for line in log.iter().filter(|l| l.starts_with("ringmaster: worker ")) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("pid ") {
            rest = &rest[at + 4..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(pid) = digits.parse() {
                pids.insert(pid);
            }
        }
    }
    pids
}

/// Is `pid` a live (not zombie) process running the binary under test?
fn alive_ours(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    if stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z')) {
        return false;
    }
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else { return false };
    let exe = exe.to_string_lossy().trim_end_matches(" (deleted)").to_string();
    let bin = std::fs::canonicalize(BIN).map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| BIN.into());
    exe == bin || exe == BIN
}

/// Drops the server and checks that no pid the log named is left running.
fn stop_and_check_no_process_left(s: Server) {
    let mut pids = logged_pids(&s.log());
    pids.insert(s.pid());
    drop(s);
    let gone = eventually(Duration::from_secs(3), || pids.iter().all(|&p| !alive_ours(p)));
    if !gone {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive_ours(p)).collect();
        for &p in &left {
            unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
        }
        panic!("processes left behind after the master ended: {left:?}");
    }
}

fn close_request(addr: SocketAddr) -> Result<(), String> {
    let s = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    r.get_mut().write_all(GET_CLOSE).map_err(|e| format!("write: {e}"))?;
    let resp = read_response(&mut r).map_err(|e| format!("read: {e}"))?;
    if resp.status != 200 || resp.body != BODY {
        return Err(format!("unexpected response {resp:?}"));
    }
    Ok(())
}

/// A bounded load of `Connection: close` clients (see supervisor_restart.rs).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    handles: Vec<JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize, max_each: u64, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + limit;
        let handles = (0..clients)
            .map(|_| {
                let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
                thread::spawn(move || {
                    let mut failures = Vec::new();
                    for _ in 0..max_each {
                        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                            break;
                        }
                        match close_request(addr) {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failures.push(e),
                        }
                        // Lighter than the other load tests: this one runs for a few seconds.
                        thread::sleep(Duration::from_millis(1));
                    }
                    failures
                })
            })
            .collect();
        Load { stop, ok, handles }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.handles.drain(..).flat_map(|h| h.join().expect("load client panicked")).collect();
        (self.ok(), failures)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn control_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ringmaster-sup-scale-{}-{name}.sock", std::process::id()))
}

/// One command on a fresh control connection; the reply line.
fn control(path: &Path, line: &str) -> String {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s);
    r.get_mut().write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    r.read_line(&mut reply).unwrap_or_else(|e| panic!("no reply to {line:?}: {e}"));
    reply.trim_end().to_string()
}

fn status(path: &Path) -> serde_json::Value {
    let reply = control(path, "status");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("status reply {reply:?}: {e}"))
}

/// `ringmaster ctl PATH ARGS...`: (exit code, stdout).
fn ctl(path: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).arg("ctl").arg(path).args(args).output().expect("run ringmaster ctl");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// Waits until `status` lists exactly the workers `1..=n`, all ready; returns it.
fn wait_for_workers(path: &Path, n: u64) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let ok = eventually(Duration::from_secs(5), || {
        last = status(path);
        let ws = last["workers"].as_array().unwrap();
        let ids: Vec<u64> = ws.iter().filter_map(|w| w["id"].as_u64()).collect();
        ids == (1..=n).collect::<Vec<_>>() && ws.iter().all(|w| w["state"] == "ready")
    });
    assert!(ok, "status did not settle on {n} ready workers: {last}");
    last
}

fn pids_of(status: &serde_json::Value) -> Vec<u64> {
    status["workers"].as_array().unwrap().iter().map(|w| w["pid"].as_u64().unwrap()).collect()
}

// --- the test -------------------------------------------------------------------------------

fn scale_up_and_down(mode: &str) {
    let path = control_path(mode);
    let path_str = path.to_str().unwrap().to_string();
    let s = Server::start(&["--mode", mode, "--workers", "2", "--control", &path_str]);
    let two = wait_for_workers(&path, 2);
    let original = pids_of(&two);
    let cpus: Vec<u64> = two["workers"].as_array().unwrap().iter().map(|w| w["cpu"].as_u64().unwrap()).collect();

    let load = Load::start(s.addr(), 3, 20_000, Duration::from_secs(30));
    assert!(eventually(Duration::from_secs(5), || load.ok() >= 100), "load did not get going");

    // SIGTTIN: a third worker, with the next id, pinned round the CPUs.
    let from = s.log_len();
    s.signal(libc::SIGTTIN);
    s.wait_for_log_from(from, |l| l == "ringmaster: scaling from 2 to 3 workers", Duration::from_secs(2));
    let three = wait_for_workers(&path, 3);
    assert_eq!(pids_of(&three)[..2], original[..], "adding a worker leaves the others alone: {three}");
    let w3 = &three["workers"][2];
    assert_eq!(w3["cpu"].as_u64(), Some(cpus[0]), "worker 3 is pinned round the CPUs: {three}");
    let w3_pid = w3["pid"].as_u64().unwrap();
    s.wait_for_log_from(
        from,
        |l| l == format!("ringmaster: worker 3 started (pid {w3_pid}, cpu {})", cpus[0]),
        Duration::from_secs(1),
    );
    if mode == "rr" {
        // It takes its turn: connections are dealt over three workers now.
        let before = three["workers"][2]["accepted"].as_u64().unwrap();
        let ok = eventually(Duration::from_secs(3), || status(&path)["workers"][2]["accepted"].as_u64() > Some(before));
        assert!(ok, "worker 3 gets no connections: {}", status(&path));
    }

    // SIGTTOU: the newest worker drains and exits 0, the others stay.
    let from = s.log_len();
    s.signal(libc::SIGTTOU);
    s.wait_for_log_from(from, |l| l == "ringmaster: scaling from 3 to 2 workers", Duration::from_secs(2));
    s.wait_for_log_from(
        from,
        |l| l == format!("ringmaster: worker 3 (pid {w3_pid}) exited with code 0"),
        Duration::from_secs(5),
    );
    let back = wait_for_workers(&path, 2);
    assert_eq!(pids_of(&back), original, "{back}");

    // Down to one, and never below.
    let from = s.log_len();
    s.signal(libc::SIGTTOU);
    s.wait_for_log_from(from, |l| l == "ringmaster: scaling from 2 to 1 workers", Duration::from_secs(2));
    let one = wait_for_workers(&path, 1);
    assert_eq!(pids_of(&one), original[..1], "{one}");
    // The exit line may reach our log reader after `status` already shows one
    // worker: wait for it before marking where the next check starts.
    s.wait_for_log_from(
        from,
        |l| l == format!("ringmaster: worker 2 (pid {}) exited with code 0", original[1]),
        Duration::from_secs(5),
    );
    let from = s.log_len();
    s.signal(libc::SIGTTOU);
    s.wait_for_log_from(from, |l| l.starts_with("ringmaster: scaling from 1 to "), Duration::from_secs(2));
    thread::sleep(Duration::from_millis(200));
    let still = wait_for_workers(&path, 1);
    assert_eq!(pids_of(&still), original[..1], "SIGTTOU at one worker must keep it: {still}");
    assert!(!s.log()[from..].iter().any(|l| l.contains(") exited with code")), "{:?}", &s.log()[from..]);

    // `ctl scale N` both ways.
    let (code, reply) = ctl(&path, &["scale", "3"]);
    assert_eq!((code, reply.as_str()), (0, "ok scaling to 3 workers"));
    let three = wait_for_workers(&path, 3);
    assert_eq!(pids_of(&three)[0], original[0], "{three}");
    let (code, reply) = ctl(&path, &["scale", "0"]);
    assert_eq!(code, 1, "scale 0 is refused: {reply}");
    assert!(reply.starts_with("error:"), "{reply}");
    let (code, reply) = ctl(&path, &["scale", "many"]);
    assert_eq!(code, 1, "{reply}");
    assert!(reply.starts_with("error:"), "{reply}");
    assert_eq!(status(&path)["workers"].as_array().unwrap().len(), 3, "a refused scale changes nothing");
    let (code, reply) = ctl(&path, &["scale", "2"]);
    assert_eq!((code, reply.as_str()), (0, "ok scaling to 2 workers"));
    let two = wait_for_workers(&path, 2);
    assert_eq!(pids_of(&two)[0], original[0], "{two}");

    // The clients were served throughout.
    let ok_now = load.ok();
    assert!(eventually(Duration::from_secs(5), || load.ok() >= ok_now + 100), "load stalled after scaling");
    let (ok, failures) = load.finish();
    eprintln!("{mode}: {ok} answers, {} failures while scaling", failures.len());
    assert!(failures.is_empty(), "{} requests failed while scaling: {failures:?}", failures.len());
    let log = s.log();
    let crashes: Vec<&String> =
        log.iter().filter(|l| l.contains("killed by signal") || l.contains("restarting in")).collect();
    assert!(crashes.is_empty(), "{crashes:?}");
    stop_and_check_no_process_left(s);
    assert!(!path.exists(), "control socket left behind");
}

#[test]
fn rr_sigttin_sigttou_and_ctl_scale_change_the_worker_count() {
    scale_up_and_down("rr");
}

#[test]
fn shared_sigttin_sigttou_and_ctl_scale_change_the_worker_count() {
    scale_up_and_down("shared");
}
