//! A container's CPU limit (a cgroup's CPU quota, here one this test makes)
//! caps the default worker count at the CPUs of time it allows, rounded up,
//! and leaves those workers unpinned; `--workers` still says how many. The
//! test needs root and a cgroup file system with the CPU controller (v1 or
//! v2); without them it says so and passes.

use crate::util;
use crate::util::operator;

use std::path::Path;
use std::process::Command;

use operator::*;
use util::cgroup::TestCgroup;
use util::*;

/// A cgroup of this test's allowing `quota_us` of CPU time per 100 ms period.
fn limited_cgroup(quota_us: u64) -> Option<TestCgroup> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root");
        return None;
    }
    let name = format!("ringmaster-test-{}", std::process::id());
    // cgroup v1's cpu controller, wherever it is mounted beside others.
    for v1 in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
        if Path::new(v1).join("cpu.cfs_quota_us").exists() {
            let group = TestCgroup::make(Path::new(v1).join(&name))?;
            group.set("cpu.cfs_period_us", "100000")?;
            group.set("cpu.cfs_quota_us", &quota_us.to_string())?;
            return Some(group);
        }
    }
    // cgroup v2, with the cpu controller given to the root's children.
    let root = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if controllers.split_whitespace().any(|c| c == "cpu") {
        let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
        let group = TestCgroup::make(root.join(&name))?;
        if group.set("cpu.max", &format!("{quota_us} 100000")).is_some() {
            return Some(group);
        }
    }
    eprintln!("skipped: no cgroup with a CPU controller to make a limit in");
    None
}

/// The binary, to be started in `cgroup`.
fn command_in(cgroup: &TestCgroup) -> Command {
    let mut command = Command::new(BIN);
    cgroup.enter(&mut command);
    command
}

#[test]
fn a_cpu_limit_caps_the_default_workers_and_leaves_them_unpinned() {
    let allowed = cpus_allowed(std::process::id());
    if allowed.len() < 2 {
        eprintln!("skipped: one CPU, which no limit lowers");
        return;
    }
    // Time for half a CPU: one worker, where this machine allows two or more.
    let Some(cgroup) = limited_cgroup(50_000) else { return };
    {
        let s = Server::start_command(command_in(&cgroup), &[]);
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
    let s = Server::start_command(command_in(&cgroup), &["--workers", "2"]);
    let stats = stats_when_ready(&s);
    assert_eq!(worker_pids_and_cpus(&stats).len(), 2, "{stats}");
    assert!(!s.log().iter().any(|l| l.starts_with("a CPU limit of ")), "{:?}", s.log());
    drop(s);
}
