//! The processes of the binary under test, seen from outside: which pids the log
//! named, whether a pid is still ours and alive, signals, and running the
//! binary to its exit.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Read;
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

/// Does a process with this pid exist at all (zombies included)?
pub fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
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

/// Drops the server (ending the master and its workers) and checks that no pid
/// the log ever named, nor the master, is left running within 3 s (a zombie
/// does not count as running). Whatever is left is killed before the panic.
pub fn stop_and_check_no_process_left(s: Server) {
    let mut pids = logged_pids(&s.log());
    pids.insert(s.pid());
    drop(s);
    let gone = eventually(Duration::from_secs(3), || pids.iter().all(|&p| !alive_ours(p)));
    if !gone {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive_ours(p)).collect();
        for &p in &left {
            let _ = send_signal(p, libc::SIGKILL);
        }
        panic!("processes left behind after the master ended: {left:?}");
    }
}

/// Sends SIGCONT to a process (if it is still ours) when dropped: a failing test
/// never leaves a SIGSTOPped process stopped (a stopped worker could not drain
/// and exit; a stopped master could not be stopped by Server's Drop).
pub struct ContinueOnDrop(pub u32);

impl Drop for ContinueOnDrop {
    fn drop(&mut self) {
        if alive_ours(self.0) {
            let _ = send_signal(self.0, libc::SIGCONT);
        }
    }
}

/// Runs the binary with `args` (nothing on stdin), expecting it to exit by
/// itself within `limit`; returns (status, stdout, stderr). If it does not exit,
/// it is stopped with SIGTERM (so its workers go too), then SIGKILL, and the
/// test fails.
pub fn run_to_exit(args: &[&str], limit: Duration) -> (ExitStatus, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
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
            panic!("ringmaster {args:?} did not exit within {limit:?}; stderr: {stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    // What is run here fails before any worker exists (a bad configuration) or
    // starts none (`ctl`), so nothing else holds the pipes open; bound the wait
    // anyway.
    let join = |t: JoinHandle<String>, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !t.is_finished() {
            assert!(Instant::now() < deadline, "{what} of {args:?} still open 5 s after exit (a worker outlived it?)");
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
