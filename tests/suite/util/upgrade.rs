//! Binary upgrades seen from outside: a copy of the binary in a directory of
//! the test's own, replaced by rename the way cargo and package managers do;
//! the new master found in the log; the processes an upgrade left running,
//! waited for and, whatever happens, ended.

#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::control::{ctl, parse_status};
use super::procs::{kill, send_signal};
use super::{eventually, test_backend, BIN};

/// A directory of the test's own. Dropping it kills every process still
/// running a file in it (a new master an upgrade left, its workers), then
/// removes it.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ringmaster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Copies the binary under test to `ringmaster` here; its path.
    pub fn install(&self) -> PathBuf {
        let binary = self.join("ringmaster");
        copy_for_exec(Path::new(BIN), &binary);
        binary
    }

    /// Pids of the processes running a file in this directory.
    pub fn running(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| runs_from(pid, &self.0))
            .collect()
    }
}

/// A `reuseport --steer load` master of 2 unpinned workers, as the
/// steering upgrade tests start it: from a copy of the binary in a
/// directory of the test's own (which the test replaces by a script that
/// execs `real`, the binary under test beside it), with a control socket.
pub struct SteeredBed {
    pub dir: TempDir,
    pub binary: PathBuf,
    pub real: PathBuf,
    pub control: PathBuf,
}

impl SteeredBed {
    /// `None` where steering by load cannot be had (not root): the test says
    /// so and passes.
    pub fn new(name: &str) -> Option<SteeredBed> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: steering by load needs root");
            return None;
        }
        let dir = TempDir::new(name);
        let binary = dir.install();
        let real = dir.join("ringmaster-real");
        copy_for_exec(Path::new(BIN), &real);
        let control = dir.join("control.sock");
        Some(SteeredBed { dir, binary, real, control })
    }

    /// Starts the master with `more` arguments after the bed's own.
    pub fn start(&self, more: &[&str]) -> super::Server {
        let control = self.control.to_str().expect("UTF-8 path");
        let mut args =
            vec!["--mode", "reuseport", "--steer", "load", "--workers", "2", "--no-pin", "--control", control];
        args.extend_from_slice(more);
        super::Server::start_binary(&self.binary, &args)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        for pid in self.running() {
            eprintln!("pid {pid} still runs a file of {}: SIGKILL", self.0.display());
            let _ = send_signal(pid, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Is `pid` running (not a zombie) a file under `dir`?
pub fn runs_from(pid: u32, dir: &Path) -> bool {
    running(pid) && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(dir))
}

/// Does `pid` exist, and is it not a zombie?
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rfind(')').is_some_and(|i| !stat[i + 1..].trim_start().starts_with('Z')))
}

/// The parent pid of `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// Copies `from` to `to` in another process, `cp`: a file this process
/// held open for writing could not be executed (`ETXTBSY`) while a child
/// that another test's thread forked meanwhile still held the fd too.
pub fn copy_for_exec(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("--").arg(from).arg(to).status().expect("run cp");
    assert!(status.success(), "cp {} {}: {status}", from.display(), to.display());
}

/// What lands on the binary's path by rename.
pub enum Replacement<'a> {
    /// Another copy of the binary under test.
    Binary,
    /// A copy of the binary that cannot be executed (mode 0644).
    NotExecutable,
    /// An executable shell script with this text.
    Script(&'a str),
}

/// Replaces the file at `path` the way an upgrade does: a new file written
/// beside it, renamed over it.
pub fn replace_by_rename(path: &Path, with: Replacement<'_>) {
    let new = path.with_extension("new");
    let mode = match with {
        Replacement::Binary | Replacement::NotExecutable => {
            copy_for_exec(Path::new(BIN), &new);
            if matches!(with, Replacement::Binary) {
                0o755
            } else {
                0o644
            }
        }
        Replacement::Script(text) => {
            let source = path.with_extension("txt");
            std::fs::write(&source, text).expect("write the script");
            copy_for_exec(&source, &new);
            0o755
        }
    };
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(mode)).expect("chmod");
    std::fs::rename(&new, path).expect("rename over the binary");
}

/// The pid in a log line saying `upgrade: new master started (pid N) ...`.
pub fn parse_new_master(line: &str) -> Option<u32> {
    let rest = &line[line.find("upgrade: new master started (pid ")? + "upgrade: new master started (pid ".len()..];
    rest.split(')').next()?.parse().ok()
}

/// Waits (at most `timeout`) until none of `pids` runs; those still running.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> Vec<u32> {
    eventually(timeout, || pids.iter().all(|&p| !running(p)));
    pids.iter().copied().filter(|&p| running(p)).collect()
}

/// The status a master answers on `control` once `workers` workers are all
/// ready and `pred` holds for each; panics after 15 s.
pub fn status_when(control: &Path, workers: usize, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let settled = eventually(Duration::from_secs(15), || {
        let (code, out, _) = ctl(control, &["status"]);
        if code != 0 {
            return false;
        }
        last = parse_status(&out);
        let listed = last["workers"].as_array().cloned().unwrap_or_default();
        listed.len() == workers && listed.iter().all(|w| w["state"] == "ready" && pred(w))
    });
    assert!(settled, "no status with {workers} ready workers as expected within 15 s: {last}");
    last
}

/// The worker pids of a status.
pub fn worker_pids(status: &serde_json::Value) -> Vec<u32> {
    let workers = status["workers"].as_array().cloned().unwrap_or_default();
    workers.iter().filter_map(|w| w["pid"].as_u64()).map(|p| p as u32).collect()
}

/// A copy of `fd` numbered 100 or above (close-on-exec), for `pre_exec` to place.
pub fn dup_high(fd: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC makes a new fd that nothing else owns.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    assert!(copy >= 100, "dup: {}", std::io::Error::last_os_error());
    // SAFETY: `copy` is a new, valid fd.
    unsafe { OwnedFd::from_raw_fd(copy) }
}

/// Kills the child on drop unless it was reaped (a failed test leaves nothing running).
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Waits up to `timeout` for it to exit (panics saying `what` did not
    /// happen); its exit status and its whole log (stderr, piped).
    pub fn exit_and_log(&mut self, timeout: Duration, what: &str) -> (std::process::ExitStatus, String) {
        let mut status = None;
        let exited = eventually(timeout, || {
            status = self.0.try_wait().expect("wait");
            status.is_some()
        });
        assert!(exited, "{what}");
        let mut log = String::new();
        std::io::Read::read_to_string(&mut self.0.stderr.take().expect("stderr"), &mut log).expect("its log");
        (status.expect("exited"), log)
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            kill(self.0.id(), libc::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

/// The test as an old master: starts the binary under test as the new
/// master of an upgrade from this process, with `args`, handing it `fds`
/// as 3, 4, ... (named in `names`, `RINGMASTER_UPGRADE_FDS`'s value), and
/// `NOTIFY_SOCKET` set to `notify`. Its log is on its stderr, piped.
pub fn start_as_new_master(fds: &[RawFd], names: &str, args: &[&str], notify: &str) -> KillOnDrop {
    let sources: Vec<OwnedFd> = fds.iter().map(|&fd| dup_high(fd)).collect();
    let raw: Vec<RawFd> = sources.iter().map(AsRawFd::as_raw_fd).collect();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("RINGMASTER_UPGRADE_FDS", names)
        .env("RINGMASTER_UPGRADE_FROM", std::process::id().to_string())
        .env("NOTIFY_SOCKET", notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(backend) = test_backend() {
        cmd.arg("--backend").arg(backend);
    }
    // SAFETY: only dup2, async-signal-safe, between fork and exec; the
    // sources were made before the fork, at 100 or above, clear of 3, 4, ...
    unsafe {
        cmd.pre_exec(move || {
            for (i, &from) in raw.iter().enumerate() {
                if libc::dup2(from, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = KillOnDrop(cmd.spawn().expect("spawn the new master"));
    drop(sources);
    child
}
