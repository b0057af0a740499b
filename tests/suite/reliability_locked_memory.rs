//! Room under `RLIMIT_MEMLOCK` for the workers' io_uring rings, which the
//! kernel counts against it per user (Linux 6.14 on; before 5.12 too).
//! Until 2026-12-06 workers switched to `--user` lost `CAP_IPC_LOCK` and
//! shared their new user's limit: under 8 MiB, 13 of 32 workers started and
//! every other one failed with `ENOMEM` and was restarted forever; a master
//! that was not root did the same with its own limit. These tests switch
//! users, so they need root (they say that they skip without it), and mean
//! something only where the kernel counts the rings.

use crate::util;
use crate::util::operator;

use std::time::Duration;

use operator::*;
use util::*;

/// Root, io_uring available, and a kernel that counts rings as locked memory.
fn applies() -> bool {
    if status_ids(std::process::id(), "Uid")[1] != 0 {
        eprintln!("skipping: switching users needs the tests to run as root");
        return false;
    }
    if let Err(e) = ringmaster_engine::backend::probe_uring() {
        eprintln!("skipping: io_uring is unavailable here ({e})");
        return false;
    }
    if !ringmaster_engine::backend::kernel_counts_rings_as_locked() {
        eprintln!("skipping: this kernel does not count io_uring rings as locked memory");
        return false;
    }
    true
}

/// The limit every test here starts under: 8 MiB, the usual default, which
/// the rings of 24 workers (about 14 MiB) overrun.
const LIMIT: &str = "--memlock=8388608";
const WORKERS: &str = "24";

/// Waits until `n` workers are ready and returns the stats line then.
fn all_ready(s: &Server, n: usize) -> serde_json::Value {
    let stats = s.wait_workers_ready(n, START_TIMEOUT);
    let log = s.log();
    assert!(!log.iter().any(|l| l.contains("exited with code")), "a worker failed: {log:#?}");
    stats
}

#[test]
fn workers_switched_to_a_user_keep_only_ipc_lock_and_all_start_on_io_uring() {
    if !applies() {
        return;
    }
    if !ringmaster_engine::exempt_from_locked_memory_limit() {
        eprintln!("skipping: the master may not lock memory here (no CAP_IPC_LOCK in the initial namespace)");
        return;
    }
    let s = Server::start_under(
        &["prlimit", LIMIT],
        &["--user", "nobody", "--workers", WORKERS, "--no-pin", "--backend", "uring"],
    );
    let stats = all_ready(&s, 24);
    assert_eq!(stats["backend"], "uring", "{stats}");
    for (pid, _) in worker_pids_and_cpus(&stats) {
        // CAP_IPC_LOCK (bit 14) and nothing else, permitted and effective.
        assert_eq!(status_field(pid, "CapEff").trim(), "0000000000004000", "worker pid {pid}");
        assert_eq!(status_field(pid, "CapPrm").trim(), "0000000000004000", "worker pid {pid}");
        assert_eq!(status_field(pid, "CapInh").trim(), "0000000000000000", "worker pid {pid}");
    }
    for _ in 0..4 {
        assert_eq!(s.connect().get_ok().status, 200);
    }
}

/// The master run as user `uid` (no capability): `ulimit -l` 1 MiB under a
/// hard 8 MiB. The kernel counts locked memory per user, over all its
/// processes: each test has a user of its own, which no other process
/// has, so that tests running at once do not share a count.
fn as_user(uid: u32) -> Vec<String> {
    let id = |flag: &str| format!("--{flag}={uid}");
    ["prlimit", "--memlock=1048576:8388608", "setpriv"]
        .into_iter()
        .map(String::from)
        .chain([id("reuid"), id("regid"), "--clear-groups".to_string()])
        .collect()
}

/// [`Server::start_under`] as [`as_user`] `uid`.
fn start_as(uid: u32, args: &[&str]) -> Server {
    let wrapper = as_user(uid);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    Server::start_under(&wrapper, args)
}

#[test]
fn a_master_that_may_not_lock_memory_raises_the_limit_to_what_its_rings_need() {
    if !applies() {
        return;
    }
    let s = start_as(64_101, &["--workers", "4", "--no-pin", "--backend", "uring"]);
    s.wait_for_log(|l| l.contains("raised RLIMIT_MEMLOCK from 1.0 MiB"), Duration::from_secs(5));
    let stats = all_ready(&s, 4);
    assert_eq!(stats["backend"], "uring", "{stats}");
    assert_eq!(s.connect().get_ok().status, 200);
}

#[test]
fn a_master_short_of_locked_memory_serves_with_epoll_on_auto_and_stops_on_uring() {
    if !applies() {
        return;
    }
    let s = start_as(64_102, &["--workers", WORKERS, "--no-pin", "--backend", "auto"]);
    s.wait_for_log(
        |l| l.contains("the io_uring rings of 24 workers need") && l.contains("serving with epoll"),
        Duration::from_secs(5),
    );
    let stats = all_ready(&s, 24);
    assert_eq!(stats["backend"], "epoll", "{stats}");
    assert_eq!(s.connect().get_ok().status, 200);
    drop(s);

    let wrapper = as_user(64_102);
    let mut cmd = std::process::Command::new(&wrapper[0]);
    cmd.args(&wrapper[1..]).arg(BIN);
    let mut s = Server::launch(cmd, &["--workers", WORKERS, "--no-pin", "--backend", "uring"]);
    assert_eq!(s.wait_exit(START_TIMEOUT).code(), Some(1));
    let log = s.log();
    assert!(
        log.iter().any(|l| l.contains("--backend uring: the io_uring rings of 24 workers need")
            && l.contains("RLIMIT_MEMLOCK is 8.0 MiB")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("started (pid")), "no worker started: {log:#?}");
}

/// Scaling up makes room for the new rings as the start did: 2 workers
/// raise the limit to about 4.5 MiB (room for 7 rings), and scaling to 8
/// raises it to the hard 8 MiB. Before, the 8th worker failed with `ENOMEM`, and was
/// restarted forever.
#[test]
fn scaling_up_makes_room_for_the_new_rings() {
    if !applies() {
        return;
    }
    let s = start_as(64_103, &["--workers", "2", "--no-pin", "--backend", "uring"]);
    all_ready(&s, 2);
    for n in 3..=8 {
        s.signal(libc::SIGTTIN);
        s.wait_for_log(|l| l.contains(&format!("scaling from {} to {n} workers", n - 1)), Duration::from_secs(5));
    }
    let stats = all_ready(&s, 8);
    assert_eq!(stats["backend"], "uring", "{stats}");
    s.wait_for_log(
        |l| l.contains("scale: raised RLIMIT_MEMLOCK from") && l.contains("to 8.0 MiB"),
        Duration::from_secs(5),
    );
}

/// Three masters of one user, 5 workers each, under a hard 8 MiB: the
/// count is the user's, so the second makes room before its probe (whose
/// ring would not fit under its 1 MiB beside the first master's rings:
/// before, it exited 1 there), and the third's workers past the limit say
/// which memory lacked (before: a bare `Cannot allocate memory`).
#[test]
fn masters_of_one_user_share_its_locked_memory_and_say_so() {
    if !applies() {
        return;
    }
    let args = ["--workers", "5", "--no-pin", "--backend", "uring"];
    let first = start_as(64_104, &args);
    all_ready(&first, 5);
    let second = start_as(64_104, &args);
    let stats = all_ready(&second, 5);
    assert_eq!(stats["backend"], "uring", "{stats}");
    let third = start_as(64_104, &args);
    third.wait_for_log(
        |l| {
            l.contains(": the uring loop: its io_uring ring: Cannot allocate memory")
                && l.contains("RLIMIT_MEMLOCK, which this user's io_uring rings count against, is 8388608 bytes")
        },
        Duration::from_secs(10),
    );
    assert_eq!(first.connect().get_ok().status, 200);
    assert_eq!(second.connect().get_ok().status, 200);
}
