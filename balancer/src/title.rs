//! Process titles: what `ps` shows for the master (`ringmaster: master`) and
//! each worker (`ringmaster: worker N ...`), and their thread names. The one
//! place that writes into the master's argument strings.
//!
//! A worker's title is its `argv[0]`, chosen by the master when it re-executes
//! the binary ([`worker_title`]); nothing reads `argv[0]` to find the binary
//! (spawning uses `/proc/self/exe`). The master cannot choose its own `argv`,
//! so it overwrites it in place, as nginx does: the kernel reports where the
//! argument strings lie (`arg_start` and `arg_end` in `/proc/self/stat`), and
//! `/proc/PID/cmdline` and `ps` read them from there.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// The master's title.
pub const MASTER_TITLE: &str = "ringmaster: master";
/// The master's thread name (`/proc/PID/comm`, `top`, `ps -o comm`).
pub const MASTER_THREAD_NAME: &str = "ringmaster";

/// Worker `id`'s `argv[0]`, which `ps` shows before its arguments.
pub fn worker_title(id: usize) -> String {
    format!("ringmaster: worker {id}")
}

/// Worker `id`'s thread name: at most 15 bytes, so it is never cut.
pub fn worker_thread_name(id: usize) -> String {
    format!("rm-worker-{id}")
}

/// Names the calling thread (`PR_SET_NAME`); the kernel keeps the first 15 bytes.
pub fn set_thread_name(name: &str) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::other("a thread name cannot contain NUL"))?;
    nix::sys::prctl::set_name(&name).map_err(io::Error::from)
}

/// Overwrites this process's argument strings with `title`, NUL-padded to
/// their end and cut to fit: never a byte past `arg_end`. `original` is every
/// argument the process was started with (`std::env::args_os()`, `argv[0]`
/// included), captured before this call: afterwards `std::env::args_os()`
/// reads the title, so nothing may call it again. The area must still hold
/// exactly `original`, which is checked first; so must the process have one
/// thread, so that nothing reads the arguments while they change.
pub fn set_process_title(title: &str, original: &[OsString]) -> io::Result<()> {
    if title.as_bytes().contains(&0) {
        return Err(io::Error::other("a process title cannot contain NUL"));
    }
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!("the process has {threads} threads; the title is set with one")));
    }
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let (start, end) = argument_area(&stat)
        .ok_or_else(|| io::Error::other("cannot read arg_start and arg_end from /proc/self/stat"))?;
    let mut expected = Vec::with_capacity(end - start);
    for arg in original {
        expected.extend_from_slice(arg.as_bytes());
        expected.push(0);
    }
    if std::fs::read("/proc/self/cmdline")? != expected || expected.len() != end - start {
        return Err(io::Error::other("the argument area no longer holds the arguments the process started with"));
    }
    let len = end - start;
    let written = title.len().min(len - 1);
    let area = std::ptr::with_exposed_provenance_mut::<u8>(start);
    // SAFETY: [start, end) is this process's argument area, on the stack the
    // kernel set up at exec: mapped and writable for the life of the process.
    // The check above read it back through /proc/self/cmdline as exactly the
    // original arguments, so these are the real bounds, and `len` bytes from
    // `start` stay inside it (`written < len`). No Rust reference points into
    // it: std keeps only raw `argv` pointers, read by `env::args_os()`, which
    // nothing calls after the capture, and the process has a single thread.
    unsafe {
        std::ptr::copy_nonoverlapping(title.as_ptr(), area, written);
        std::ptr::write_bytes(area.add(written), 0, len - written);
    }
    Ok(())
}

/// `(arg_start, arg_end)` from the text of `/proc/PID/stat`: fields 48 and 49,
/// counted after the command name, which is in parentheses and may itself
/// hold spaces and parentheses.
fn argument_area(stat: &str) -> Option<(usize, usize)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name: field n is at n - 3.
    let mut fields = after_name.split_whitespace().skip(48 - 3);
    let start: usize = fields.next()?.parse().ok()?;
    let end: usize = fields.next()?.parse().ok()?;
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_area_is_fields_48_and_49() {
        // Fields 3 to 52 after a command name "a) b (c"; 48 and 49 are 4800 and 4900.
        let fields: Vec<String> =
            (3..=52).map(|n| if n == 3 { "S".to_string() } else { (n * 100).to_string() }).collect();
        let stat = format!("4242 (a) b (c) {}", fields.join(" "));
        assert_eq!(argument_area(&stat), Some((4800, 4900)));
        assert_eq!(argument_area("1 (x) S 1 2"), None);
    }

    #[test]
    fn names_fit_the_kernel_limits() {
        assert_eq!(worker_title(3), "ringmaster: worker 3");
        assert!(worker_thread_name(1024).len() <= 15);
        assert!(MASTER_THREAD_NAME.len() <= 15);
    }

    #[test]
    fn this_process_has_an_argument_area() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (start, end) = argument_area(&stat).unwrap();
        assert_eq!(std::fs::read("/proc/self/cmdline").unwrap().len(), end - start);
    }
}
