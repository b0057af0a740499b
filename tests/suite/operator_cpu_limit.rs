//! A container's CPU limit (a cgroup's CPU quota, here one this test makes)
//! caps the default worker count at the CPUs of time it allows, rounded up,
//! and leaves those workers unpinned; `--workers` still says how many. The
//! test needs root and a cgroup file system with the CPU controller (v1 or
//! v2); without them it says so and passes.

use crate::util;
use crate::util::operator;

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use operator::*;
use util::*;

/// A cgroup of this test's, removed when dropped (once its processes are gone).
struct LimitedCgroup {
    dir: PathBuf,
}

impl LimitedCgroup {
    /// A new cgroup allowing `quota_us` of CPU time per 100 ms period.
    fn new(quota_us: u64) -> Option<LimitedCgroup> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: not root");
            return None;
        }
        let name = format!("ringmaster-test-{}", std::process::id());
        // cgroup v1's cpu controller, wherever it is mounted beside others.
        for v1 in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
            if Path::new(v1).join("cpu.cfs_quota_us").exists() {
                let dir = Path::new(v1).join(&name);
                std::fs::create_dir(&dir).ok()?;
                let group = LimitedCgroup { dir };
                std::fs::write(group.dir.join("cpu.cfs_period_us"), "100000").ok()?;
                std::fs::write(group.dir.join("cpu.cfs_quota_us"), quota_us.to_string()).ok()?;
                return Some(group);
            }
        }
        // cgroup v2, with the cpu controller given to the root's children.
        let root = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "cpu") {
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
            let dir = root.join(&name);
            std::fs::create_dir(&dir).ok()?;
            let group = LimitedCgroup { dir };
            if std::fs::write(group.dir.join("cpu.max"), format!("{quota_us} 100000")).is_ok() {
                return Some(group);
            }
        }
        eprintln!("skipped: no cgroup with a CPU controller to make a limit in");
        None
    }

    /// The binary, to be started in this cgroup (it moves itself in before it execs).
    fn command(&self) -> Command {
        let procs = CString::new(self.dir.join("cgroup.procs").into_os_string().into_encoded_bytes())
            .expect("no NUL in the path");
        let mut cmd = Command::new(BIN);
        // SAFETY: between fork and exec the closure calls only open, write
        // and close (async-signal-safe) on memory it owns; "0" moves the
        // writing process.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let error = std::io::Error::last_os_error();
                libc::close(fd);
                if written == 1 {
                    Ok(())
                } else {
                    Err(error)
                }
            });
        }
        cmd
    }
}

impl Drop for LimitedCgroup {
    fn drop(&mut self) {
        // A cgroup goes once its last process has: the servers are stopped by now.
        let removed = eventually(Duration::from_secs(10), || std::fs::remove_dir(&self.dir).is_ok());
        if !removed {
            eprintln!("could not remove {}", self.dir.display());
        }
    }
}

#[test]
fn a_cpu_limit_caps_the_default_workers_and_leaves_them_unpinned() {
    let allowed = cpus_allowed(std::process::id());
    if allowed.len() < 2 {
        eprintln!("skipped: one CPU, which no limit lowers");
        return;
    }
    // Time for half a CPU: one worker, where this machine allows two or more.
    let Some(cgroup) = LimitedCgroup::new(50_000) else { return };
    {
        let s = Server::start_command(cgroup.command(), &[]);
        let line = s.wait_for_log(|l| l.starts_with("a CPU limit of "), START_TIMEOUT);
        assert!(line.contains("0.50 CPUs") && line.contains("1 worker, unpinned"), "{line}");
        let stats = stats_when_ready(&s);
        let workers = worker_pids_and_cpus(&stats);
        assert_eq!(workers.len(), 1, "{stats}");
        assert_eq!(workers[0].1, None, "unpinned: {stats}");
        assert_eq!(cpus_allowed(workers[0].0), allowed, "the worker may run on every CPU");
        s.connect().get_ok();
    }
    // A count given is the count run, pinned as usual.
    let s = Server::start_command(cgroup.command(), &["--workers", "2"]);
    let stats = stats_when_ready(&s);
    assert_eq!(worker_pids_and_cpus(&stats).len(), 2, "{stats}");
    assert!(!s.log().iter().any(|l| l.starts_with("a CPU limit of ")), "{:?}", s.log());
    drop(s);
}
