//! The processes of the binary under test, seen from outside: which pids the log
//! named, whether a pid is still ours and alive, signals, and running the
//! binary to its exit.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{eventually, Server, BIN};

/// Every pid named in a `worker ...` log message (started, restarted,
/// replacing, exited, killed).
pub fn logged_pids(log: &[String]) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    for line in log.iter().filter(|l| l.starts_with("worker ")) {
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

/// Is `pid` a live (not zombie) process running the binary under test? Checked
/// before signalling a pid, so we never signal a recycled pid that belongs to
/// something else.
pub fn alive_ours(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // state is the field after the ")" that closes comm
    if stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z')) {
        return false;
    }
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else { return false };
    let exe = exe.to_string_lossy().trim_end_matches(" (deleted)").to_string();
    let bin = std::fs::canonicalize(BIN).map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| BIN.into());
    exe == bin || exe == BIN
}

/// Descriptors process `pid` holds now (0 once it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// `IORING_OP_ACCEPT`, as an io_uring's fdinfo names an op.
const OP_ACCEPT: &str = "op=13,";

/// Accepts armed in process `pid`'s io_uring rings and waiting for a
/// connection (their `PollList` lines in the rings' fdinfo); `None` when it
/// holds no ring.
pub fn ring_accepts_armed(pid: u32) -> Option<usize> {
    let mut armed = None;
    for fd in fd_numbers(pid) {
        let Ok(link) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) else { continue };
        if !link.to_string_lossy().contains("io_uring") {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else { continue };
        let polls = info.lines().skip_while(|l| !l.starts_with("PollList:")).skip(1);
        let accepts = polls.take_while(|l| l.starts_with(' ')).filter(|l| l.trim_start().starts_with(OP_ACCEPT));
        *armed.get_or_insert(0) += accepts.count();
    }
    armed
}

/// Sets the soft `RLIMIT_NOFILE` of process `pid` (its owner may lower it
/// and raise it back up to the hard limit); returns the one it replaced.
pub fn set_soft_fd_limit(pid: u32, soft: u64) -> u64 {
    set_soft_limit(pid, libc::RLIMIT_NOFILE, soft)
}

/// Sets the soft limit of `resource` of process `pid` (the processes it
/// starts from then on inherit it); returns the one it replaced.
pub fn set_soft_limit(pid: u32, resource: libc::__rlimit_resource_t, soft: u64) -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit reads nothing when given no new limit and writes the
    // old one into a valid rlimit.
    let got = unsafe { libc::prlimit(pid as libc::pid_t, resource, std::ptr::null(), &mut limit) };
    assert_eq!(got, 0, "prlimit of pid {pid}: {}", std::io::Error::last_os_error());
    let replaced = limit.rlim_cur;
    limit.rlim_cur = soft;
    // SAFETY: prlimit reads a valid rlimit and writes nothing (no old-limit pointer).
    let set = unsafe { libc::prlimit(pid as libc::pid_t, resource, &limit, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit of pid {pid}: {}", std::io::Error::last_os_error());
    replaced
}

/// The numbers of the descriptors process `pid` holds now, in order.
pub fn fd_numbers(pid: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let mut numbers: Vec<i32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    numbers.sort_unstable();
    numbers
}

/// The open-file limit under which process `pid`, holding what it holds
/// now, has exactly `free` numbers left for new descriptors: the highest
/// with that many free below it, that is the number of the next free one
/// (the limit caps the numbers, not the count; one held above it, as an fd
/// number inherited from the shell, stays). With `free` 0, the lowest
/// number the process does not hold.
pub fn fd_limit_leaving(pid: u32, free: usize) -> u64 {
    let held = fd_numbers(pid);
    let free_below = |limit: usize| limit - held.partition_point(|&n| (n as usize) < limit);
    let mut limit = 0;
    while free_below(limit + 1) <= free {
        limit += 1;
    }
    limit as u64
}

/// Does a process with this pid exist at all (zombies included)?
pub fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The state letter of `pid` in /proc/PID/stat (`R`, `S`, `T` stopped, `Z`
/// zombie, ...), or None when there is no such process.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Is `pid` a zombie (exited, not yet reaped)?
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Sends `sig` to `pid` (kill(2)); the error if it fails.
pub fn send_signal(pid: u32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) only sends a signal; it touches no memory of ours.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `sig` to `pid`; panics if kill(2) fails.
pub fn kill(pid: u32, sig: i32) {
    if let Err(e) = send_signal(pid, sig) {
        panic!("kill({pid}, {sig}): {e}");
    }
}

/// How long the master gets to exit by itself after SIGTERM in
/// [`stop_and_check_no_process_left`].
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a worker gets to exit by itself once its master is gone.
pub const ORPHAN_TIMEOUT: Duration = Duration::from_secs(2);

/// Stops the server the way an operator would and checks that every process
/// it ever had ends by itself, before anything is killed: SIGTERM to the
/// master (unless it has exited already), at most [`STOP_TIMEOUT`] for it to
/// exit, then at most [`ORPHAN_TIMEOUT`] for every worker pid (named in the
/// log, or a child of the master when this was called) to be gone. A zombie
/// counts as gone. Any survivor fails the test, named by pid; only then is it
/// killed (by the panic's cleanup, so that no stray process outlives the test).
pub fn stop_and_check_no_process_left(mut s: Server) {
    let master = s.pid();
    let mut workers = logged_pids(&s.log());
    workers.extend(super::children_of(master));
    let mut survivors = Vec::new();
    if s.is_running() {
        let _ = send_signal(master, libc::SIGTERM);
        if !s.wait_exit_quiet(STOP_TIMEOUT) {
            survivors.push(format!("the master (pid {master}) ran on {STOP_TIMEOUT:?} after SIGTERM"));
        }
    }
    // Workers started while stopping would be in the log too.
    workers.extend(logged_pids(&s.log()));
    let left = wait_gone(&workers, ORPHAN_TIMEOUT);
    survivors.extend(left.iter().map(|p| format!("worker pid {p} still running {ORPHAN_TIMEOUT:?} after its master")));
    if !survivors.is_empty() {
        let log = s.raw_log().join("\n");
        // Server's Drop ends whatever is left (SIGKILL after a grace).
        for &p in &left {
            let _ = send_signal(p, libc::SIGKILL);
        }
        panic!("processes left behind: {survivors:?}; log:\n{log}");
    }
}

/// Waits until none of `pids` is a live process of ours (zombies count as
/// gone), at most `timeout`; returns the pids still alive then, killing none.
pub fn wait_gone(pids: &BTreeSet<u32>, timeout: Duration) -> Vec<u32> {
    eventually(timeout, || pids.iter().all(|&p| !alive_ours(p)));
    pids.iter().copied().filter(|&p| alive_ours(p)).collect()
}

/// A process held by a pidfd (pidfd_open(2)) rather than named by its pid: a
/// signal sent through it reaches that process, or none once it has been
/// reaped (`ESRCH`), however soon its pid names another. A pid kept across a
/// long test is not enough: pid_max is 32768 on the machines the suite runs
/// on and the suite goes round it in about 80 s, so a stopped worker the
/// master killed may have its pid given to another process by the time the
/// test continues it.
pub struct Pidfd {
    fd: OwnedFd,
    pid: u32,
}

impl Pidfd {
    /// Holds process `pid`, the one that has that pid now.
    pub fn open(pid: u32) -> io::Result<Pidfd> {
        // SAFETY: pidfd_open(2) takes a pid and flags and touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = RawFd::try_from(fd).map_err(|_| io::Error::other(format!("pidfd_open returned {fd}")))?;
        // SAFETY: pidfd_open(2) returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Pidfd { fd, pid })
    }

    /// The pid the process had when it was opened (another's, once it is reaped).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `sig` to the process held (pidfd_send_signal(2)): `ESRCH` once
    /// it has been reaped.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        let no_info: *const libc::siginfo_t = std::ptr::null();
        // SAFETY: pidfd_send_signal(2) reads no siginfo when given none; the
        // descriptor is open as long as self is.
        let sent =
            unsafe { libc::syscall(libc::SYS_pidfd_send_signal, self.fd.as_raw_fd(), sig, no_info, 0 as libc::c_uint) };
        if sent != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A process stopped by [`stop`], continued (SIGCONT) when dropped or by
/// [`ContinueOnDrop::continue_now`]: a failing test never leaves a process
/// stopped (a stopped worker could not drain and exit; a stopped master could
/// not be stopped by Server's Drop). The signals go through a [`Pidfd`]
/// opened before the stop, to the process stopped or to none.
pub struct ContinueOnDrop(Pidfd);

impl ContinueOnDrop {
    /// The stopped process's pid (as it was when it stopped).
    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Sends `sig` to the stopped process (SIGKILL, SIGTERM: it stays
    /// stopped until the guard goes, if it lives); `ESRCH` once it has been reaped.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        self.0.signal(sig)
    }

    /// Continues the process now (nothing if it has been reaped).
    pub fn continue_now(self) {
        drop(self);
    }
}

impl Drop for ContinueOnDrop {
    fn drop(&mut self) {
        let _ = self.0.signal(libc::SIGCONT);
    }
}

/// Stops process `pid` with SIGSTOP until the guard returned is dropped;
/// every later signal to it goes through the guard, to this process or to
/// none. Panics if there is no process `pid` to stop.
pub fn stop(pid: u32) -> ContinueOnDrop {
    let process = Pidfd::open(pid).unwrap_or_else(|e| panic!("pidfd_open({pid}): {e}"));
    let stopped = ContinueOnDrop(process);
    if let Err(e) = stopped.signal(libc::SIGSTOP) {
        panic!("SIGSTOP to pid {pid}: {e}");
    }
    stopped
}

/// The system calls epoll_wait(3) may make.
const EPOLL_WAITS: &[libc::c_long] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
];

/// Stops a worker with SIGSTOP between two turns of its loop: while its
/// thread is in the call that waits for the next events, which each driver
/// makes once per turn, just after publishing its counters: io_uring_enter(2)
/// asking for at least one completion (one that only makes room in a full
/// submission queue, mid-turn, does not count), or epoll_wait(2). From then on
/// its stats (`accepted`, `live`, ...) are exactly the connections it has
/// taken and holds, and while it is stopped it takes no more (its ring
/// completes nothing, and it makes no call, while it does not run). A stop
/// that lands elsewhere (the worker busy with a turn) is undone with SIGCONT
/// and tried again once the worker runs on, up to 1000 times.
///
/// Returns the guard that continues the worker and the instant the test saw
/// it stopped: nothing that happens after that instant reaches the worker.
pub fn stop_between_turns(pid: u32) -> (ContinueOnDrop, Instant) {
    let mut elsewhere = Vec::new();
    let guard = stop(pid);
    for _ in 0..1000 {
        assert!(
            eventually(Duration::from_secs(5), || process_state(pid) == Some('T')),
            "worker {pid} did not stop (state {:?})",
            process_state(pid)
        );
        let seen = Instant::now();
        // "NR ARG0 ARG1 ... SP PC": io_uring_enter(fd, to_submit, min_complete, flags, ...).
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/syscall (where the worker stopped): {e}"));
        let fields: Vec<&str> = syscall.split_whitespace().collect();
        let nr = fields.first().and_then(|n| n.parse::<i64>().ok());
        let min_complete = fields.get(3).and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
        let waiting = match nr {
            Some(libc::SYS_io_uring_enter) => min_complete.is_some_and(|m| m > 0),
            Some(nr) => EPOLL_WAITS.contains(&nr),
            None => false,
        };
        if waiting {
            return (guard, seen);
        }
        elsewhere.push(syscall.trim().to_string());
        if let Err(e) = guard.signal(libc::SIGCONT) {
            panic!("SIGCONT to worker {pid}: {e}");
        }
        assert!(
            eventually(Duration::from_secs(5), || process_state(pid) != Some('T')),
            "worker {pid} did not continue"
        );
        // Woken is not yet run: stopped again before it is scheduled, a
        // worker stopped on its way out of a call (its exec, as it starts)
        // is found there try after try. Once it sleeps, it has run on.
        eventually(Duration::from_secs(1), || process_state(pid) == Some('S'));
        if let Err(e) = guard.signal(libc::SIGSTOP) {
            panic!("SIGSTOP to worker {pid}: {e}");
        }
    }
    elsewhere.truncate(5);
    panic!("worker {pid} never stopped waiting for events in 1000 tries (first stops: {elsewhere:?})");
}

/// Runs the binary with `args` (nothing on stdin), expecting it to exit by
/// itself within `limit`; returns (status, stdout, stderr). If it does not exit,
/// it is stopped with SIGTERM (so its workers go too), then SIGKILL, and the
/// test fails.
pub fn run_to_exit(args: &[&str], limit: Duration) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_command_to_exit(cmd, limit)
}

/// [`run_to_exit`] with a command prepared by the caller (another program,
/// an environment): run as it is, with nothing on stdin.
pub fn run_command_to_exit(mut cmd: Command, limit: Duration) -> (ExitStatus, String, String) {
    let args = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {args}: {e}"));
    let out_t = read_to_string_in_thread(child.stdout.take().unwrap());
    let err_t = read_to_string_in_thread(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = send_signal(child.id(), libc::SIGTERM);
            thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let _ = child.wait();
            let stderr = if err_t.is_finished() { err_t.join().unwrap() } else { "(still open)".into() };
            panic!("{args} did not exit within {limit:?}; stderr: {stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    // What is run here fails before any worker exists (a bad configuration) or
    // starts none (`ctl`), so nothing else holds the pipes open; bound the wait
    // anyway.
    let join = |t: JoinHandle<String>, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !t.is_finished() {
            assert!(Instant::now() < deadline, "{what} of {args} still open 5 s after exit (a worker outlived it?)");
            thread::sleep(Duration::from_millis(10));
        }
        t.join().unwrap()
    };
    (status, join(out_t, "stdout"), join(err_t, "stderr"))
}

fn read_to_string_in_thread(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// The helper's own promise: once the process stopped has been reaped, a
/// signal through its guard goes nowhere (`ESRCH`), whoever has its pid now.
#[test]
fn a_signal_through_a_stop_guard_reaches_no_process_once_the_stopped_one_is_reaped() {
    let mut child = Command::new("sleep").arg("60").spawn().unwrap_or_else(|e| panic!("spawn sleep: {e}"));
    let stopped = stop(child.id());
    assert!(eventually(Duration::from_secs(5), || process_state(child.id()) == Some('T')), "sleep did not stop");
    child.kill().unwrap_or_else(|e| panic!("SIGKILL to sleep: {e}"));
    child.wait().unwrap_or_else(|e| panic!("reap sleep: {e}"));
    let sent = stopped.signal(libc::SIGCONT);
    assert_eq!(sent.map_err(|e| e.raw_os_error()), Err(Some(libc::ESRCH)), "a signal to a reaped process");
}
