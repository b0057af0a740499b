//! Log lines on stderr. Each line is formatted first and written whole with
//! one `write(2)`, so the lines of the master and of its workers (which share
//! the same stderr) never interleave in the middle.

use std::fmt::Write as _;
use std::io::Write as _;

/// Writes `ringmaster: <args>` and a newline to stderr in one write.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut line = String::with_capacity(160);
    line.push_str("ringmaster: ");
    let _ = line.write_fmt(args);
    line.push('\n');
    // Nothing sensible is left to do if stderr itself fails.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `log!("worker {id} started")` writes `ringmaster: worker 1 started` as one line.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log::write_line(format_args!($($arg)*))
    };
}
