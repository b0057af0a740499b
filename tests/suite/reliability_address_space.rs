//! Workers under an address-space limit (`ulimit -v`, `RLIMIT_AS`) with a
//! `--max-conns` their open-file limit keeps them from.
//!
//! - Each worker reserves its per-connection buffers for what it can hold
//!   (`--max-conns`, or what `RLIMIT_NOFILE` allows at its start), and says
//!   so as its capacity. Before, it reserved for `--max-conns` (seen:
//!   `ulimit -v 4000000`, `--max-conns 1048576 --max-header 65536`, 64 GiB
//!   asked, refused) and never started.
//! - A worker whose reservation the kernel refuses exits with code 78
//!   (`EX_CONFIG`) after its error line; a master none of whose workers has
//!   been ready then stops and exits 1 with one `ERROR` line. Before, it
//!   restarted them forever, serving nothing. Once a worker has been ready,
//!   the code gets the usual restart with the back-off. The master that
//!   gives up logs no restart it will not make.
//! - The same when what is refused is a heap allocation its limits size
//!   (its connection slots, about 850 bytes each, made after its buffers
//!   are reserved). Before, the allocator aborted the worker ("memory
//!   allocation of N bytes failed", `SIGABRT`) and the master took it for a
//!   crash and restarted it forever.
//! - The same at the edges found by starting workers under limits a page
//!   apart (each test finds its edge from the running system's address
//!   space, by bisection): a limit just short of its io_uring ring (before,
//!   `io_uring_setup`'s mapping failed, "Cannot allocate memory", exit 1,
//!   restarted forever), of its preformatted replies, or of what it
//!   allocates at start that no limit sizes (the channel message, on epoll
//!   the receive buffer: before, the allocator aborted the worker). The
//!   worker now keeps a headroom of address space past its reservations for
//!   those, and says so when it cannot.
//! - A master whose io_uring probe finds no room for its ring under the
//!   limit (`--backend uring` or `auto`) exits 1 with an error that names
//!   `RLIMIT_AS` and its bytes. Before, it blamed locked memory ("raise
//!   RLIMIT_MEMLOCK"), which a process with `CAP_IPC_LOCK` is not even
//!   held to.

use crate::util;

use std::fmt::Debug;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use util::operator::{assert_no_restart_planned, gave_up_line, status_field};
use util::procs::set_soft_limit;
use util::stats::{expect_worker, num};
use util::*;

/// The open-file limit the masters below run under (both soft and hard, so
/// that the master's raise to the hard limit changes nothing).
const NOFILE: u64 = 4096;
/// What a worker holds under [`NOFILE`], one descriptor per connection
/// beside its own (`rr`: no ring table): `NOFILE` less its 10 of overhead.
const HOLDS: u64 = NOFILE - 10;
/// The address space a process may have: a worker takes about 30 MB
/// besides its reservations (measured: 91 MB with 64 MB reserved).
const ADDRESS_SPACE: u64 = 192 << 20;
/// Far more than [`NOFILE`] allows.
const MAX_CONNS: &str = "1048576";
/// `NOFILE` x 16 KiB = 64 MiB of header buffers: they fit in [`ADDRESS_SPACE`]
/// (for `--max-conns` slots they would take 16 GiB).
const FITS: &str = "16384";
/// `NOFILE` x 64 KiB = 256 MiB: more than [`ADDRESS_SPACE`] even for what a worker can hold.
const TOO_LARGE: &str = "65536";
/// What is taken off a worker's measured peak address space for each
/// connection it holds, so that its connection slots no longer fit: less
/// than half of what a slot takes on the heap (844 bytes on epoll, 852 on
/// io_uring, measured), and more than what the worker allocates after its
/// slots (its read queue or its completion batch: under 70 bytes a
/// connection at [`HOLDS`]).
const SLOT_SHARE: u64 = 400;
/// How long the master has to give up: it waits for no timer, only for its
/// workers' exits (about a millisecond each, measured).
const GIVES_UP_WITHIN: Duration = Duration::from_secs(10);

/// The binary under `RLIMIT_NOFILE` [`NOFILE`] and, if given, `RLIMIT_AS`
/// `address_space`, which its workers inherit.
fn under_limits(address_space: Option<u64>) -> Command {
    let mut cmd = Command::new(BIN);
    let set = |resource, limit: u64| {
        let limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
        // SAFETY: setrlimit reads a valid rlimit; it is async-signal-safe, as pre_exec needs.
        if unsafe { libc::setrlimit(resource, &limit) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: the closure only calls setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            set(libc::RLIMIT_NOFILE, NOFILE)?;
            address_space.map_or(Ok(()), |bytes| set(libc::RLIMIT_AS, bytes))
        });
    }
    cmd
}

fn args(max_header: &'static str) -> [&'static str; 7] {
    ["--workers", "1", "--no-pin", "--max-conns", MAX_CONNS, "--max-header", max_header]
}

#[test]
fn a_worker_reserves_for_what_its_descriptors_let_it_hold() {
    let s = Server::start_command(under_limits(Some(ADDRESS_SPACE)), &args(FITS));
    let stats = s.wait_workers_ready(1, START_TIMEOUT);
    assert_eq!(num(&expect_worker(&stats, 1), "capacity"), HOLDS, "what it can hold: {stats}");
    let warned = s.wait_for_log(|l| l.starts_with("--max-conns 1048576 is more than"), Duration::ZERO);
    assert!(warned.contains(&format!("each worker will hold about {HOLDS} connections")), "{warned}");
    s.connect().get_ok();
}

#[test]
fn a_master_none_of_whose_workers_can_reserve_exits_1() {
    let mut s = Server::launch(under_limits(Some(ADDRESS_SPACE)), &args(TOO_LARGE));
    let status = s.wait_exit(GIVES_UP_WITHIN);
    assert_eq!(status.code(), Some(1), "{status:?}");
    let worker = s.wait_for_log(|l| l.contains("cannot reserve address space"), Duration::ZERO);
    assert!(
        worker.contains(&format!("{NOFILE} connections (RLIMIT_NOFILE, below --max-conns {MAX_CONNS}) x --max-header")),
        "the worker names what sized it: {worker}"
    );
    s.wait_for_log(|l| l.contains("exited with code 78"), Duration::ZERO);
    let gave_up = gave_up_line(&s);
    assert!(gave_up.contains("no worker can start with these limits"), "{gave_up}");
    assert!(gave_up.contains("ulimit -v"), "{gave_up}");
}

/// The peak address space of process `pid` (`VmPeak`), in bytes.
fn peak_address_space(pid: u32) -> u64 {
    status_bytes(pid, "VmPeak")
}

/// A size in process `pid`'s status (`VmPeak`, `VmExe`), in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let size = status_field(pid, field);
    let kb: u64 = size.trim_end_matches(" kB").parse().unwrap_or_else(|e| panic!("{field} {size:?}: {e}"));
    kb * 1024
}

/// The peak address spaces of a master and its one ready worker (the same
/// to the kB from run to run, measured) and the worker's backend.
struct Measured {
    master: u64,
    /// The master's own code (`VmExe`): under less, the binary cannot even be loaded.
    master_code: u64,
    worker: u64,
    backend: String,
}

/// A master with one ready worker, started with `args` under [`NOFILE`] alone, measured.
fn measure(args: &[&str]) -> Measured {
    let s = Server::start_command(under_limits(None), args);
    let stats = s.wait_workers_ready(1, START_TIMEOUT);
    let pid = num(&expect_worker(&stats, 1), "pid") as u32;
    let backend = stats["backend"].as_str().unwrap_or_else(|| panic!("no backend: {stats}")).to_string();
    let master_code = status_bytes(s.pid(), "VmExe");
    Measured { master: peak_address_space(s.pid()), master_code, worker: peak_address_space(pid), backend }
}

/// The peak address space of a ready worker started with `args` under
/// [`NOFILE`] alone.
fn worker_peak_address_space(args: &[&str]) -> u64 {
    measure(args).worker
}

/// How worker 1 of a master started under an address-space limit ended
/// its start.
#[derive(Debug)]
struct Start {
    /// The limit, in bytes.
    limit: u64,
    /// It became ready.
    ready: bool,
    /// The end of the master's line on its exit: `exited with code N` or
    /// `killed by signal N (SIG...)`.
    exit: String,
    /// Its error line, if it wrote one.
    error: Option<String>,
}

impl Start {
    fn names(&self, what: &str) -> bool {
        self.error.as_ref().is_some_and(|e| e.contains(what))
    }
}

/// How worker 1 of a master started with `args` under `RLIMIT_AS` `limit`
/// ends its start: ready, or its exit and its error line.
fn start_under(limit: u64, args: &[&str]) -> Start {
    let s = Server::launch(under_limits(Some(limit)), args);
    let ended = |l: &str| l.starts_with("worker 1 (pid ") || l.starts_with("listening on ");
    let (at, line) = s.wait_for_log_from(0, ended, START_TIMEOUT);
    let ready = line.starts_with("listening on ");
    let exit =
        if ready { String::new() } else { line.split_once(") ").map_or(line.clone(), |(_, end)| end.to_string()) };
    // The worker writes its error line before it exits, so before the master's line.
    let error = s.log()[..at].iter().find(|l| l.starts_with("worker 1: ")).cloned();
    Start { limit, ready, exit, error }
}

/// The smallest part of an address-space limit told apart below: a page.
const PAGE: u64 = 4096;

/// The starts of workers under the limits a page below and at the lowest
/// limit between `low` and `high` under which `past` holds (it must not
/// hold at `low` and must at `high`), found by bisection.
fn around_the_edge(args: &[&str], low: u64, high: u64, past: impl Fn(&Start) -> bool) -> (Start, Start) {
    edge_between(low, high, |limit| start_under(limit, args), past)
}

/// [`around_the_edge`] for any `run` under a limit.
fn edge_between<T: Debug>(low: u64, high: u64, run: impl Fn(u64) -> T, past: impl Fn(&T) -> bool) -> (T, T) {
    let (mut below, mut at) = ((low, run(low)), (high, run(high)));
    assert!(!past(&below.1), "the edge is above {low}: {:?}", below.1);
    assert!(past(&at.1), "the edge is below {high}: {:?}", at.1);
    while at.0 - below.0 > PAGE {
        let middle = (below.0 + at.0) / 2 / PAGE * PAGE;
        let ended = (middle, run(middle));
        if past(&ended.1) {
            at = ended;
        } else {
            below = ended;
        }
    }
    (below.1, at.1)
}

/// Limits to search between for a worker started with `args`: one under
/// which the master runs (its own peak and a MiB) and its worker does not
/// get far (its header buffers alone take 64 MiB), and one past what a
/// worker takes (its peak and a MiB: its headroom is 256 KiB).
fn search_range(measured: &Measured) -> (u64, u64) {
    (measured.master + (1 << 20), measured.worker + (1 << 20))
}

/// Asserts that `start` is a worker that could not start and said what it
/// could not reserve: code 78, not a crash the master restarts.
fn assert_refused(start: &Start, what: &str) {
    assert_eq!(start.exit, "exited with code 78", "an error, not an abort or a crash: {start:?}");
    let error = start.error.as_deref().unwrap_or_default();
    assert!(error.contains("cannot reserve address space for its "), "{start:?}");
    assert!(error.contains(what), "it names {what:?}: {start:?}");
}

/// A connection's header buffer is 16 KiB at least: with `--max-header`
/// below that, the error names the flag as given and what it was raised to.
/// Before, it named `--max-header 16384` for a worker run with 4096.
#[test]
fn a_header_buffer_raised_past_max_header_is_named_so() {
    let args = args("4096");
    let (low, _) = search_range(&measure(&args));
    let refused = start_under(low, &args);
    assert_refused(&refused, "for its header buffers");
    assert!(refused.names("x --max-header 4096 raised to 16384 bytes"), "{refused:?}");
}

#[test]
fn a_worker_just_past_its_header_buffers_exits_78_not_abort() {
    let args = args(FITS);
    let (low, high) = search_range(&measure(&args));
    // Just past the reservations of the part both backends share (its
    // buffers, its idle list) come allocations without one (its channel
    // message; its replies, which grow with the body): before, the
    // allocator found no room for them and aborted it.
    let past = |s: &Start| !s.names("for its header buffers") && !s.names("for its idle list");
    let (_, just_past) = around_the_edge(&args, low, high, past);
    assert_refused(&just_past, "after its idle list");
}

#[test]
fn a_worker_whose_ring_finds_no_room_exits_78() {
    let args = args(FITS);
    let measured = measure(&args);
    if measured.backend != "uring" {
        eprintln!("skipped: the ring is io_uring's, this run's backend is {}", measured.backend);
        return;
    }
    let (low, high) = search_range(&measured);
    // What the uring worker reserves after its ring.
    let later = ["for its receive buffers", "for its held-input chains", "for its connection slots"];
    let last = ["for its slotless accepts", "for its completion batch", "after its completion batch"];
    let past = |s: &Start| s.ready || later.iter().chain(&last).any(|what| s.names(what));
    let (short, _) = around_the_edge(&args, low, high, past);
    assert_refused(
        &short,
        "for its io_uring ring (4096 submission entries x 68 + 16384 completion entries x 16 bytes)",
    );
    assert!(short.names(&format!("RLIMIT_AS is {} bytes", short.limit)), "it names the limit: {short:?}");
}

#[test]
fn a_worker_a_page_short_of_starting_exits_78_not_abort() {
    let args = args(FITS);
    let (low, high) = search_range(&measure(&args));
    let (short, ready) = around_the_edge(&args, low, high, |s| s.ready);
    // Its headroom is refused. Before, on epoll, its receive buffer (64 KiB,
    // allocated after its last reservation) found no room and the
    // allocator aborted it; on io_uring its completion batch was refused.
    assert_refused(&short, "after its ");
    assert!(ready.ready, "{ready:?}");
}

#[test]
fn a_worker_whose_slots_the_heap_refuses_exits_78_not_abort() {
    let peak = worker_peak_address_space(&args(FITS));
    // Its header buffers, reserved before its slots are allocated, fit; its slots do not.
    let mut s = Server::launch(under_limits(Some(peak - HOLDS * SLOT_SHARE)), &args(FITS));
    let exited = s.wait_for_log(|l| l.starts_with("worker 1 (pid "), GIVES_UP_WITHIN);
    assert!(exited.ends_with("exited with code 78"), "an error, not an abort: {exited}");
    let refused =
        s.wait_for_log(|l| l.contains("cannot reserve address space for its connection slots"), Duration::ZERO);
    assert!(
        refused.contains(&format!("{HOLDS} connections (RLIMIT_NOFILE, below --max-conns {MAX_CONNS}) x ")),
        "the worker names what sized them: {refused}"
    );
    let status = s.wait_exit(GIVES_UP_WITHIN);
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert_no_restart_planned(&s);
}

#[test]
fn once_a_worker_was_ready_one_that_cannot_reserve_is_restarted() {
    let mut s = Server::start_command(under_limits(None), &args(TOO_LARGE));
    let stats = s.wait_workers_ready(1, START_TIMEOUT);
    let first = num(&expect_worker(&stats, 1), "pid") as u32;
    // Its next process inherits this from the master.
    let unlimited = set_soft_limit(s.pid(), libc::RLIMIT_AS, ADDRESS_SPACE);
    let from = s.log_len();
    // SAFETY: kill sends a signal to the worker this test's master started.
    assert_eq!(unsafe { libc::kill(first as libc::pid_t, libc::SIGKILL) }, 0);
    let (refused, _) = s.wait_for_log_from(from, |l| l.contains("exited with code 78"), START_TIMEOUT);
    let (again, _) = s.wait_for_log_from(refused, |l| l.starts_with("worker 1 restarting in "), START_TIMEOUT);
    s.wait_for_log_from(again + 1, |l| l.contains("exited with code 78"), START_TIMEOUT);
    assert!(s.is_running(), "the master goes on restarting it");
    set_soft_limit(s.pid(), libc::RLIMIT_AS, unlimited);
    let stats = s.wait_workers_ready(1, START_TIMEOUT);
    assert_ne!(num(&expect_worker(&stats, 1), "pid") as u32, first);
    s.connect().get_ok();
}

/// How a master started with `--backend` `backend` under `RLIMIT_AS`
/// `limit` ended. Asked for a CPU no affinity mask holds (one past a
/// `cpu_set_t`), it stops with an error just after its io_uring probe,
/// before it maps anything more: under any limit that lets the probe
/// through, it ends the same way.
#[derive(Debug)]
struct Probed {
    limit: u64,
    code: Option<i32>,
    /// Its `ERROR` line, if it wrote one.
    error: Option<String>,
}

impl Probed {
    /// Its probe set its ring up: what stopped it came later.
    fn past_the_ring(&self) -> bool {
        self.error.as_ref().is_some_and(|e| !e.contains("io_uring_setup"))
    }
}

fn probe_under(limit: u64, backend: &str) -> Probed {
    let cpu = libc::CPU_SETSIZE.to_string();
    let mut s = Server::launch(under_limits(Some(limit)), &["--workers", "1", "--cpus", &cpu, "--backend", backend]);
    let code = s.wait_exit(GIVES_UP_WITHIN).code();
    let error = s.raw_log().into_iter().find(|l| l.contains(" ERROR "));
    Probed { limit, code, error }
}

#[test]
fn a_master_whose_io_uring_probe_finds_no_room_names_rlimit_as() {
    if let Err(e) = ringmaster_engine::backend::probe_uring() {
        eprintln!("skipped: io_uring is unavailable here ({e})");
        return;
    }
    let measured = measure(&args(FITS));
    // Named here, the probe runs whatever this run's backend. `auto` exits
    // too: a want of memory is an error to fix, which epoll would hide.
    for (backend, before, after) in
        [("uring", "--backend uring: ", ""), ("auto", "io_uring failed: ", " (or choose --backend epoll)")]
    {
        let run = |limit| probe_under(limit, backend);
        let (short, _) = edge_between(measured.master_code, measured.master, run, Probed::past_the_ring);
        assert_eq!(short.code, Some(1), "{short:?}");
        let error = short.error.as_deref().unwrap_or_default();
        let why = format!(
            "{before}io_uring blocked at io_uring_setup (ENOMEM: the address-space limit (RLIMIT_AS, `ulimit -v`, \
             systemd LimitAS=) of {} bytes leaves no room for the ring: raise it){after}",
            short.limit
        );
        assert!(error.ends_with(&why), "{backend}: it names the limit: {short:?}");
        assert!(!error.contains("RLIMIT_MEMLOCK"), "{backend}: {short:?}");
    }
}

/// The size in an allocator's abort line (`memory allocation of N bytes failed`).
fn aborted_allocation(line: &str) -> Option<u64> {
    line.strip_prefix("memory allocation of ")?.strip_suffix(" bytes failed")?.parse().ok()
}

/// The master makes its tables at start (its process slots, 448 KiB, and
/// the completions its loop reads each turn, 2.2 MiB): under a limit too
/// tight for them it exits 1 with one error line that names what it could
/// not reserve. Before, the allocator aborted it (`memory allocation of
/// 2293760 bytes failed` and a backtrace, `SIGABRT`) anywhere in a 2 MiB
/// stretch of limits. Limits from its code's size to its peak, 128 KiB
/// apart: an abort for a few KiB at the very edge of some limit stays
/// possible (the allocator's own, for whatever small thing comes next),
/// one for a table is not.
#[test]
fn a_master_short_of_room_for_its_tables_says_so_rather_than_abort() {
    let args = args(FITS);
    let measured = measure(&args);
    let mut named = Vec::new();
    let mut limit = measured.master_code;
    while limit <= measured.master {
        let mut s = Server::launch(under_limits(Some(limit)), &args);
        let status = s.wait_exit(GIVES_UP_WITHIN);
        let log = s.raw_log();
        for line in &log {
            if let Some(bytes) = aborted_allocation(line) {
                assert!(bytes < 64 << 10, "under {limit} bytes ({status:?}): {line}\n{}", log.join("\n"));
            }
        }
        if let Some(error) = log.iter().find(|l| l.contains(" ERROR ") && l.contains(": cannot reserve ")) {
            assert_eq!(status.code(), Some(1), "{error}");
            named.push(error.split_once(": cannot reserve ").map_or(String::new(), |(_, what)| what.to_string()));
        }
        limit += 128 << 10;
    }
    assert!(
        named.iter().any(|what| what.contains("for the completions")),
        "no limit stopped the master at its completions: {named:?} (from {} to {} bytes)",
        measured.master_code,
        measured.master
    );
}
