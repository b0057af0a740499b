//! Log lines on stderr, for the master and its workers alike. Each line
//! carries the time (RFC 3339, UTC, milliseconds; see `clock.rs`), a level,
//! the program's name (`ringmaster` for the binary, a library user's own
//! program's name for it: [`set_program`], `program.rs`) and the writing
//! process's pid:
//!
//! ```text
//! 2026-12-01T21:58:31.123Z INFO  ringmaster[1234]: worker 1 started (pid 1235, cpu 0)
//! ```
//!
//! With `--log-format json` ([`set_format`]) each line is one JSON object
//! for a log shipper, the text form's `NAME[PID]` as `program` and `pid`,
//! with the message's structured fields where the call names them:
//!
//! ```text
//! {"time":"2026-12-01T21:58:31.123Z","level":"info","program":"ringmaster","pid":1234,"message":"worker 1 started (pid 1235, cpu 0)","worker":1,"worker_pid":1235,"cpu":0}
//! ```
//!
//! Each line is formatted first and written whole with one `write(2)`, so
//! the lines of the master and of its workers (which share the same stderr)
//! never interleave in the middle. How they are written (the master never
//! blocks on them) is `sink.rs`.

mod clock;
mod program;
pub mod sink;

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, Ordering};

pub use program::set_program;

/// How important a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// What happens in the normal course: starts, stops, reloads.
    Info,
    /// Something went wrong and was handled: a crash, a fallback, a limit reached.
    Warn,
    /// Something could not be done: the process gives up on it.
    Error,
}

impl Level {
    /// `info`, `warn` or `error`: the JSON value.
    pub fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The text form, padded to one width: `INFO `, `WARN `, `ERROR`.
    fn label(self) -> &'static str {
        match self {
            Level::Info => "INFO ",
            Level::Warn => "WARN ",
            Level::Error => "ERROR",
        }
    }
}

/// How lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIME LEVEL NAME[PID]: message`, for people (NAME: [`set_program`]).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

static FORMAT: AtomicU8 = AtomicU8::new(0);

/// Sets how this process writes its lines from now on (a worker is told
/// the same as its master: it parses the same settings).
pub fn set_format(format: LogFormat) {
    FORMAT.store(format as u8, Ordering::Relaxed);
}

/// How this process writes its lines.
pub fn format() -> LogFormat {
    if FORMAT.load(Ordering::Relaxed) == LogFormat::Json as u8 {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}

/// A count and its noun, plural unless the count is 1: `1 worker`, `2
/// workers` (replies and log lines said `1 workers` until 2026-12-07).
pub fn counted(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        // "process" takes "es".
        _ if noun.ends_with('s') => format!("{count} {noun}es"),
        _ => format!("{count} {noun}s"),
    }
}

/// Now, as the log writes it: `2026-12-01T21:58:31.123Z`.
pub fn now_rfc3339() -> String {
    let mut out = String::with_capacity(24);
    clock::push_time(&mut out, clock::unix_millis_now());
    out
}

/// A structured field's value (JSON output only).
pub trait Field {
    /// Appends the value as JSON.
    fn write_json(&self, out: &mut String);
}

macro_rules! number_fields {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn write_json(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
number_fields!(u16, u32, u64, usize, i32, i64, bool);

impl Field for str {
    fn write_json(&self, out: &mut String) {
        push_json_string(out, self);
    }
}

impl Field for &str {
    fn write_json(&self, out: &mut String) {
        push_json_string(out, self);
    }
}

impl Field for String {
    fn write_json(&self, out: &mut String) {
        push_json_string(out, self);
    }
}

impl<T: Field> Field for Option<T> {
    fn write_json(&self, out: &mut String) {
        match self {
            Some(value) => value.write_json(out),
            None => out.push_str("null"),
        }
    }
}

/// Text from outside ringmaster (a worker's [`send_to_master`] line), shown
/// in a text line with its control characters escaped (`\n`, `\u{1b}`), so
/// that it stays on its line: a line break in it would begin a line of the
/// log's own form, which the text could make up (`... INFO
/// ringmaster[1]: worker 2 exited`), and an escape sequence would drive the
/// terminal. A JSON line escapes the whole message already, so there it is
/// shown as it is.
///
/// [`send_to_master`]: ringmaster_engine::send_to_master
#[derive(Clone, Copy, Debug)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if format() == LogFormat::Json {
            return f.write_str(self.0);
        }
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Writes one line at `level` with `fields` (shown in JSON only).
pub fn write_line(level: Level, fields: &[(&str, &dyn Field)], args: fmt::Arguments<'_>) {
    let line =
        format_line(format(), clock::unix_millis_now(), &program::program(), std::process::id(), level, fields, args);
    sink::write(sink::Stream::Stderr, line.as_bytes());
}

/// A `WARN` line of this process, formatted now, for the sink to write itself.
fn format_notice(args: fmt::Arguments<'_>) -> String {
    format_line(format(), clock::unix_millis_now(), &program::program(), std::process::id(), Level::Warn, &[], args)
}

fn format_line(
    format: LogFormat,
    unix_ms: i64,
    program: &str,
    pid: u32,
    level: Level,
    fields: &[(&str, &dyn Field)],
    args: fmt::Arguments<'_>,
) -> String {
    let mut line = String::with_capacity(192);
    match format {
        LogFormat::Text => {
            clock::push_time(&mut line, unix_ms);
            let _ = write!(line, " {} {program}[{pid}]: ", level.label());
            let _ = line.write_fmt(args);
        }
        LogFormat::Json => {
            line.push_str("{\"time\":\"");
            clock::push_time(&mut line, unix_ms);
            let _ = write!(line, "\",\"level\":\"{}\",\"program\":", level.name());
            push_json_string(&mut line, program);
            let _ = write!(line, ",\"pid\":{pid},\"message\":");
            push_json_string(&mut line, &args.to_string());
            for (key, value) in fields {
                line.push(',');
                push_json_string(&mut line, key);
                line.push(':');
                value.write_json(&mut line);
            }
            line.push('}');
        }
    }
    line.push('\n');
    line
}

/// Appends `text` as a JSON string, quoted and escaped (RFC 8259).
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a log line: `log!("worker {id} started")` at `info`;
/// `log!(warn: "...")`, `log!(error: "...")`; with structured fields for
/// `--log-format json`: `log!(info { worker: id, worker_pid: pid }: "...")`.
#[macro_export]
macro_rules! log {
    (@level info) => { $crate::log::Level::Info };
    (@level warn) => { $crate::log::Level::Warn };
    (@level error) => { $crate::log::Level::Error };
    ($level:ident { $($key:ident : $value:expr),+ $(,)? }: $($arg:tt)+) => {
        $crate::log::write_line(
            $crate::log!(@level $level),
            &[$((stringify!($key), &$value as &dyn $crate::log::Field)),+],
            format_args!($($arg)+),
        )
    };
    (info: $($arg:tt)+) => { $crate::log::write_line($crate::log::Level::Info, &[], format_args!($($arg)+)) };
    (warn: $($arg:tt)+) => { $crate::log::write_line($crate::log::Level::Warn, &[], format_args!($($arg)+)) };
    (error: $($arg:tt)+) => { $crate::log::write_line($crate::log::Level::Error, &[], format_args!($($arg)+)) };
    ($($arg:tt)+) => { $crate::log::write_line($crate::log::Level::Info, &[], format_args!($($arg)+)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_of_one_takes_the_singular() {
        assert_eq!(counted(1, "worker"), "1 worker");
        assert_eq!(counted(0, "worker"), "0 workers");
        assert_eq!(counted(2, "held connection"), "2 held connections");
        assert_eq!(counted(1, "worker process"), "1 worker process");
        assert_eq!(counted(3, "worker process"), "3 worker processes");
    }

    #[test]
    fn text_lines_carry_time_level_and_pid() {
        let line = format_line(
            LogFormat::Text,
            1_796_162_311_123,
            "ringmaster",
            1234,
            Level::Warn,
            &[],
            format_args!("a {}", 1),
        );
        assert_eq!(line, "2026-12-01T21:58:31.123Z WARN  ringmaster[1234]: a 1\n");
        let line = format_line(LogFormat::Text, 0, "ringmaster", 7, Level::Error, &[], format_args!("x"));
        assert_eq!(line, "1970-01-01T00:00:00.000Z ERROR ringmaster[7]: x\n");
        let line = format_line(LogFormat::Text, 0, "myapp", 7, Level::Info, &[], format_args!("x"));
        assert_eq!(line, "1970-01-01T00:00:00.000Z INFO  myapp[7]: x\n", "a program of its own: its name");
    }

    #[test]
    fn json_lines_are_one_object_with_the_fields() {
        let (worker, pid, name, none) = (2usize, 4321u32, "a \"b\"\n", None::<u32>);
        let fields: [(&str, &dyn Field); 4] =
            [("worker", &worker), ("worker_pid", &pid), ("name", &name), ("x", &none)];
        let line = format_line(
            LogFormat::Json,
            1_796_162_311_123,
            "ringmaster",
            1234,
            Level::Info,
            &fields,
            format_args!("tab\there \\"),
        );
        assert_eq!(
            line,
            "{\"time\":\"2026-12-01T21:58:31.123Z\",\"level\":\"info\",\"program\":\"ringmaster\",\"pid\":1234,\"message\":\"tab\\there \\\\\",\
             \"worker\":2,\"worker_pid\":4321,\"name\":\"a \\\"b\\\"\\n\",\"x\":null}\n"
        );
        let control = format_line(LogFormat::Json, 0, "ringmaster", 1, Level::Info, &[], format_args!("\u{1}"));
        assert!(control.contains("\"message\":\"\\u0001\""), "{control}");
        // A program of its own: its name where the text form has it (until
        // 2026-12-08 a JSON line named no program).
        let own = format_line(LogFormat::Json, 0, "my \"app\"", 7, Level::Info, &[], format_args!("x"));
        assert!(own.contains(",\"program\":\"my \\\"app\\\"\",\"pid\":7,"), "{own}");
    }

    /// A worker's line with a line break in it stays one line of the text
    /// log (until 2026-12-07 it began a line of the log's form the worker's
    /// text made up).
    #[test]
    fn untrusted_text_stays_on_its_line() {
        assert_eq!(format(), LogFormat::Text);
        let said = "hits=3\n2026-12-07T00:00:00.000Z INFO  ringmaster[1]: worker 2 exited\r\u{1b}[2J\u{85}";
        let line = format_line(
            LogFormat::Text,
            0,
            "ringmaster",
            7,
            Level::Info,
            &[],
            format_args!("worker 1 says: {}", Untrusted(said)),
        );
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000Z INFO  ringmaster[7]: worker 1 says: hits=3\\n2026-12-07T00:00:00.000Z INFO  \
             ringmaster[1]: worker 2 exited\\r\\u{1b}[2J\\u{85}\n"
        );
        let plain = "a tab\tis\u{e9}";
        assert_eq!(Untrusted(plain).to_string(), "a tab\\tis\u{e9}", "printable text as it is");
    }

    #[test]
    fn the_format_is_set_once_for_the_process() {
        assert_eq!(format(), LogFormat::Text);
        let id = 3u32;
        // The macro's forms compile and write (to the test's stderr).
        crate::log!("plain {id}");
        crate::log!(warn: "warned {id}");
        crate::log!(info { worker: id, name: "x" }: "with fields {id}");
    }
}
