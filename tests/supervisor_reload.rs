//! Supervisor (issue 5): a rolling restart on SIGHUP loses nothing.
//!
//! While clients run continuously, SIGHUP (three times in a row) replaces the
//! workers one at a time:
//! every request gets a 200, no connection fails, every worker pid changes, each
//! new process runs on its worker's CPU, and each old one drains and exits 0
//! before the next worker is replaced. Both modes.
//!
//! The clients open a new connection per request and send `Connection: close`.
//! (With keep-alive, a draining worker closing an idle connection races with the
//! client's next request on it; real HTTP clients retry exactly that case, which
//! would hide real losses here.)

mod util;

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use util::*;

const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
const WORKERS: u64 = 2;
const CLIENTS: usize = 4;

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

fn worker(stats: &serde_json::Value, id: u64) -> Option<serde_json::Value> {
    stats["workers"].as_array()?.iter().find(|w| w["id"].as_u64() == Some(id)).cloned()
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no numeric {key} in {v}"))
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
                        thread::sleep(Duration::from_micros(300));
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

    fn wait_ok(&self, n: u64, timeout: Duration) {
        assert!(
            eventually(timeout, || self.ok() >= n),
            "load reached only {} of {n} answers in {timeout:?}",
            self.ok()
        );
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

// --- the test -------------------------------------------------------------------------------

/// Rolling restarts done back to back while the load runs.
const ROUNDS: usize = 3;

fn sighup_under_load_loses_nothing(mode: &str) {
    let s = Server::start(&["--mode", mode, "--workers", &WORKERS.to_string()]);
    let first = s.stats();
    let mut current: Vec<(u64, u64)> = (1..=WORKERS)
        .map(|id| {
            let w = worker(&first, id).unwrap_or_else(|| panic!("worker {id} missing: {first}"));
            (num(&w, "pid"), num(&w, "cpu"))
        })
        .collect();
    let mut every_pid: BTreeSet<u64> = current.iter().map(|&(p, _)| p).collect();

    let load = Load::start(s.addr(), CLIENTS, 20_000, Duration::from_secs(20));
    load.wait_ok(300, Duration::from_secs(10));

    for round in 1..=ROUNDS {
        let ok_at_start = load.ok();
        current = rolling_restart(&s, &current, round);
        for &(pid, _) in &current {
            assert!(every_pid.insert(pid), "round {round}: pid {pid} was used before");
        }
        // The load kept going through the round and goes on after it.
        let ok_now = load.ok();
        load.wait_ok(ok_now + 200, Duration::from_secs(10));
        eprintln!("{mode}: round {round}: {} answers during the restart", ok_now - ok_at_start);
    }

    let (ok, failures) = load.finish();
    eprintln!("{mode}: {ok} answers, {} failures across {ROUNDS} reloads", failures.len());
    assert!(failures.is_empty(), "{} of {} requests failed across the reloads: {failures:?}", failures.len(), ok);
    assert!(
        !s.log().iter().any(|l| l.contains("killed by signal") || l.contains("restarting in")),
        "nothing crashed during the reloads: {:?}",
        s.log()
    );
    stop_and_check_no_process_left(s);
}

/// Sends SIGHUP and follows the rolling restart of `old` (pid, cpu per worker
/// id 1..); returns the new (pid, cpu) per worker.
fn rolling_restart(s: &Server, old: &[(u64, u64)], round: usize) -> Vec<(u64, u64)> {
    let from = s.log_len();
    s.signal(libc::SIGHUP);
    let (mut at, _) = s.wait_for_log_from(
        from,
        |l| l == format!("ringmaster: reload: replacing {WORKERS} workers one at a time"),
        Duration::from_secs(2),
    );
    // One at a time: worker N's new process starts on its CPU, the old one exits
    // with 0 (it drained), and only then does worker N+1's replacement start.
    let mut new = Vec::new();
    for (i, &(old_pid, cpu)) in old.iter().enumerate() {
        let id = i + 1;
        let prefix = format!("ringmaster: worker {id} started (pid ");
        let (i_start, line) = s.wait_for_log_from(at, |l| l.starts_with(&prefix), Duration::from_secs(5));
        let new_pid: u64 = line[prefix.len()..].split(',').next().unwrap().parse().unwrap();
        assert!(
            line.ends_with(&format!(", cpu {cpu}, replacing pid {old_pid})")),
            "round {round}: worker {id} replaced on its CPU: {line}"
        );
        let gone = format!("ringmaster: worker {id} (pid {old_pid}) ");
        let (i_exit, exit) = s.wait_for_log_from(from, |l| l.starts_with(&gone), Duration::from_secs(10));
        assert_eq!(exit, format!("{gone}exited with code 0"), "round {round}: old worker {id} must drain and exit 0");
        assert!(i_exit > i_start, "round {round}: worker {id}'s old process exited before its replacement started");
        new.push((new_pid, cpu));
        at = i_exit + 1;
    }

    // The new processes are the workers now, ready, on the same CPUs.
    let mut last = serde_json::Value::Null;
    let all_ready = eventually(Duration::from_secs(2), || {
        last = s.stats();
        (1..=WORKERS).all(|id| {
            worker(&last, id)
                .is_some_and(|w| w["pid"].as_u64() == Some(new[id as usize - 1].0) && w["state"] == "ready")
        })
    });
    assert!(all_ready, "round {round}: new workers {new:?} not ready: {last}");
    assert_eq!(last["workers"].as_array().unwrap().len() as u64, WORKERS, "{last}");
    for (i, &(old_pid, cpu)) in old.iter().enumerate() {
        let w = worker(&last, i as u64 + 1).unwrap();
        assert_ne!(num(&w, "pid"), old_pid, "round {round}: worker {} kept its pid: {last}", i + 1);
        assert_eq!(num(&w, "cpu"), cpu, "{last}");
        assert_eq!(num(&w, "restarts"), 0, "a reload is not a crash restart: {last}");
        assert!(!alive_ours(old_pid as u32), "round {round}: old pid {old_pid} still running");
    }
    new
}

#[test]
fn rr_sighup_rolling_restart_loses_nothing() {
    sighup_under_load_loses_nothing("rr");
}

#[test]
fn shared_sighup_rolling_restart_loses_nothing() {
    sighup_under_load_loses_nothing("shared");
}
