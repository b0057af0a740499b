//! Process titles: what `ps` shows for the master (`NAME: master`) and each
//! worker (`NAME: worker N ...`), and their thread names, NAME being the
//! program's own (`ringmaster` for the binary, `myapp` for a program of your
//! own built on the library). The one place that writes into the master's
//! argument strings.
//!
//! A worker's title is its `argv[0]`, chosen by the master when it re-executes
//! the binary ([`ProcessNames::worker_title`]); nothing reads `argv[0]` to
//! find the binary (spawning uses `/proc/self/exe`). The master cannot choose
//! its own `argv`, so it overwrites it in place, as nginx does: the kernel
//! reports where the argument strings lie (`arg_start` and `arg_end` in
//! `/proc/self/stat`), and `/proc/PID/cmdline` and `ps` read them from there.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The binary's name, whose workers' threads are `rm-worker-N`.
pub const BINARY_NAME: &str = "ringmaster";

/// The most bytes of a thread name the kernel keeps (`TASK_COMM_LEN` less its NUL).
const THREAD_NAME_MAX: usize = 15;

/// The names a cluster's processes go by: the program's own, as a user
/// finds nginx's as `nginx` and a Node cluster's as `node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessNames {
    program: String,
}

/// The binary's.
impl Default for ProcessNames {
    fn default() -> ProcessNames {
        ProcessNames::new(BINARY_NAME)
    }
}

impl ProcessNames {
    /// The names of a program called `program`.
    pub fn new(program: impl Into<String>) -> ProcessNames {
        ProcessNames { program: program.into() }
    }

    /// A master's names, from its `argv[0]` as it was started: the file name
    /// it names (what the kernel names its thread at `exec`), else the binary's.
    pub fn of_master(argv0: Option<&OsStr>) -> ProcessNames {
        let name = argv0.and_then(|arg| Path::new(arg).file_name()).map(|name| name.to_string_lossy().into_owned());
        name.filter(|name| !name.is_empty()).map_or_else(ProcessNames::default, ProcessNames::new)
    }

    /// A worker's names, from its `argv[0]`: the title its master gave it
    /// (`NAME: worker N`), else (not such a title) as a master's.
    pub fn of_worker(argv0: Option<&OsStr>) -> ProcessNames {
        let title = argv0.map(|arg| arg.to_string_lossy());
        let name = title.as_deref().and_then(|title| {
            let (name, id) = title.rsplit_once(": worker ")?;
            (!name.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| name.to_string())
        });
        name.map_or_else(|| ProcessNames::of_master(argv0), ProcessNames::new)
    }

    /// The program's name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The master's title.
    pub fn master_title(&self) -> String {
        format!("{}: master", self.program)
    }

    /// Worker `id`'s `argv[0]`, which `ps` shows before its arguments.
    pub fn worker_title(&self, id: usize) -> String {
        format!("{}: worker {id}", self.program)
    }

    /// The master's thread name (`/proc/PID/comm`, `top`, `ps -C`, `pgrep -x`):
    /// the program's name, cut to what the kernel keeps.
    pub fn master_thread_name(&self) -> String {
        cut_to_thread_name(&self.program)
    }

    /// Worker `id`'s thread name: the binary's are `rm-worker-N`, so that `top`
    /// tells them apart; a program of its own has its name in every process,
    /// so that `ps -C NAME` and `pgrep -x NAME` find them all.
    pub fn worker_thread_name(&self, id: usize) -> String {
        match self.program == BINARY_NAME {
            true => format!("rm-worker-{id}"),
            false => cut_to_thread_name(&self.program),
        }
    }
}

/// `name`'s first bytes the kernel keeps of a thread name, cut at a character.
fn cut_to_thread_name(name: &str) -> String {
    let mut end = name.len().min(THREAD_NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
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
    fn the_binary_keeps_its_names() {
        let names = ProcessNames::of_master(Some(OsStr::new("/usr/local/bin/ringmaster")));
        assert_eq!(names.master_title(), "ringmaster: master");
        assert_eq!(names.worker_title(3), "ringmaster: worker 3");
        assert_eq!(names.master_thread_name(), "ringmaster");
        assert_eq!(names.worker_thread_name(1024), "rm-worker-1024");
        assert!(names.worker_thread_name(1024).len() <= THREAD_NAME_MAX);
        assert_eq!(ProcessNames::of_master(None), names, "no argv[0]: the binary's");
    }

    #[test]
    fn a_program_of_its_own_goes_by_its_name() {
        let names = ProcessNames::of_master(Some(OsStr::new("./target/release/myapp")));
        assert_eq!(names.master_title(), "myapp: master");
        assert_eq!(names.worker_title(2), "myapp: worker 2");
        assert_eq!((names.master_thread_name(), names.worker_thread_name(2)), ("myapp".into(), "myapp".into()));
        assert_eq!(ProcessNames::of_worker(Some(OsStr::new("myapp: worker 2"))), names, "from its title");
        assert_eq!(ProcessNames::of_worker(Some(OsStr::new("a: b: worker 12"))).program(), "a: b");
        assert_eq!(ProcessNames::of_worker(Some(OsStr::new("/x/myapp"))), names, "not a title: its file name");
    }

    #[test]
    fn a_long_name_is_cut_to_the_kernel_limit_at_a_character() {
        let names = ProcessNames::new("a-very-long-program-name");
        assert_eq!(names.master_thread_name(), "a-very-long-pro");
        assert_eq!(ProcessNames::new("aaaaaaaaaaaaaa\u{e9}x").master_thread_name(), "aaaaaaaaaaaaaa", "not half an é");
        assert_eq!(names.worker_title(1), "a-very-long-program-name: worker 1", "titles are not cut");
    }

    #[test]
    fn this_process_has_an_argument_area() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (start, end) = argument_area(&stat).unwrap();
        assert_eq!(std::fs::read("/proc/self/cmdline").unwrap().len(), end - start);
    }
}
