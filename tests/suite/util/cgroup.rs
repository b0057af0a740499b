//! Cgroups a test makes (as root) and starts the binary in: the process
//! moves itself in between fork and exec, so everything it starts is in it.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::eventually;

/// A cgroup directory of a test's, removed when dropped (once its processes
/// are gone). Made below another of them, it is dropped first.
pub struct TestCgroup {
    pub dir: PathBuf,
}

impl TestCgroup {
    /// Makes `dir`; `None` if it cannot be made.
    pub fn make(dir: PathBuf) -> Option<TestCgroup> {
        std::fs::create_dir(&dir).ok()?;
        Some(TestCgroup { dir })
    }

    /// Writes `value` into the cgroup's file `name`.
    pub fn set(&self, name: &str, value: &str) -> Option<()> {
        std::fs::write(self.dir.join(name), value).ok()
    }

    /// `command`, to be started in this cgroup.
    pub fn enter(&self, command: &mut Command) {
        enter(command, &self.dir);
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // A cgroup goes once its last process has: the servers are stopped by now.
        let removed = eventually(Duration::from_secs(10), || std::fs::remove_dir(&self.dir).is_ok());
        if !removed {
            eprintln!("could not remove {}", self.dir.display());
        }
    }
}

/// Makes `command`'s child move itself into cgroup `dir` before it execs.
pub fn enter(command: &mut Command, dir: &Path) {
    let procs =
        CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes()).expect("no NUL in the path");
    // SAFETY: between fork and exec the closure calls only open, write and
    // close (async-signal-safe) on memory it owns; "0" moves the writing process.
    unsafe {
        command.pre_exec(move || {
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
}
