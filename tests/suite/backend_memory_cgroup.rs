//! Where io_uring's set-up fails with `ENOMEM` and the kernel does not count
//! rings as locked memory (root here), the error names the memory cgroup's
//! limit: the one set on the process's cgroup or any above it, on cgroup v1
//! (`memory.limit_in_bytes`) or v2 (`memory.max`). The test makes a cgroup
//! with a limit and one below it without, starts the binary in the lower
//! one under a seccomp filter that fails io_uring with `ENOMEM`, and reads
//! the one-line error. It needs root and a memory controller; without them
//! it says so and passes.

use crate::util;

use std::path::Path;
use std::process::Command;

use util::cgroup::TestCgroup;
use util::seccomp::block_io_uring;
use util::*;

/// A limit no test run comes near: the cgroup only has to set one.
const LIMIT: u64 = 1 << 30;

/// The cgroup with the limit, the file that sets it, and a cgroup below it
/// without one (dropped first, as it must be removed first).
fn limited_parent_and_child() -> Option<(TestCgroup, &'static str, TestCgroup)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root");
        return None;
    }
    let name = format!("ringmaster-memory-test-{}", std::process::id());
    let v1 = Path::new("/sys/fs/cgroup/memory");
    let (parent, file) = if v1.join("memory.limit_in_bytes").exists() {
        (TestCgroup::make(v1.join(&name))?, "memory.limit_in_bytes")
    } else {
        let root = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "memory") {
            eprintln!("skipped: no cgroup with a memory controller to make a limit in");
            return None;
        }
        let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory");
        (TestCgroup::make(root.join(&name))?, "memory.max")
    };
    parent.set(file, &LIMIT.to_string())?;
    let child = TestCgroup::make(parent.dir.join("inner"))?;
    Some((parent, file, child))
}

#[test]
fn an_enomem_from_io_uring_names_the_memory_limit_set_above_the_cgroup() {
    let Some((parent, file, child)) = limited_parent_and_child() else { return };
    let mut command = Command::new(BIN);
    child.enter(&mut command);
    block_io_uring(&mut command, libc::ENOMEM);
    command.args(["--bind", "127.0.0.1:0", "--workers", "1", "--no-pin", "--backend", "uring"]);
    let output = command.output().expect("run ringmaster");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let named = format!("({} is {LIMIT} bytes)", parent.dir.join(file).display());
    assert!(err.contains("ENOMEM") && err.contains(&named), "names {named}: {err}");
    drop(child);
}
