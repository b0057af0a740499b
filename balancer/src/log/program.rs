//! The program's name at the head of a text line, `NAME[PID]:`: the same
//! name as the processes' titles (`title.rs`), `ringmaster` for the binary
//! and a library user's own for a program of its own. Until 2026-12-08 every
//! line said `ringmaster[PID]:`, in a user's program too.
//!
//! Set at a process's start, before its first line, and again when a
//! program renames its cluster (`Cluster::name`): a lock, not a `OnceLock`.

use std::sync::{PoisonError, RwLock};

use crate::title::BINARY_NAME;

/// Empty until set: the binary's name.
static PROGRAM: RwLock<String> = RwLock::new(String::new());

/// Names this process's lines `name[PID]:` from now on; the name's control
/// characters escaped (`\n`), so that a file name cannot break a line.
pub fn set_program(name: &str) {
    let mut shown = String::with_capacity(name.len());
    for c in name.chars() {
        match c.is_control() {
            true => shown.extend(c.escape_debug()),
            false => shown.push(c),
        }
    }
    *PROGRAM.write().unwrap_or_else(PoisonError::into_inner) = shown;
}

/// The name this process's lines carry (a copy: no lock is held while a
/// line's arguments are formatted, which may log themselves).
pub(super) fn program() -> String {
    let program = PROGRAM.read().unwrap_or_else(PoisonError::into_inner);
    match program.is_empty() {
        true => BINARY_NAME.to_string(),
        false => program.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test touches the process-wide name, so that no other sees it change.
    #[test]
    fn the_name_is_the_binarys_until_set_and_stays_on_its_line() {
        assert_eq!(program(), "ringmaster");
        set_program("myapp");
        assert_eq!(program(), "myapp");
        set_program("a\nb\u{1b}");
        assert_eq!(program(), "a\\nb\\u{1b}");
        set_program("");
        assert_eq!(program(), "ringmaster", "an empty name: the binary's");
    }
}
