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
use std::time::Duration;
use util::load::{Load, LOAD_PAUSE};
use util::procs::{alive_ours, stop_and_check_no_process_left};
use util::stats::{num, worker};
use util::*;

const WORKERS: u64 = 2;
const CLIENTS: usize = 4;

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

    let load = Load::start(s.addr(), CLIENTS, 20_000, Duration::from_secs(20), LOAD_PAUSE);
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

#[test]
fn least_sighup_rolling_restart_loses_nothing() {
    sighup_under_load_loses_nothing("least");
}

#[test]
fn reuseport_sighup_rolling_restart_loses_nothing() {
    sighup_under_load_loses_nothing("reuseport");
}
