//! What a panic does in ringmaster's processes. A panic in a worker's
//! handler (the application's code, see `ringmaster_engine::panic_guard`)
//! costs one request in a program built with `panic = "unwind"` (Rust's
//! default): it is said, then the engine answers `500`, closes that
//! connection and serves on (built with `"abort"`, as this workspace's
//! release profile is, it is said and the worker ends). Any other panic on
//! ringmaster's thread, the engine's or the master's, ends the process at
//! once (`abort`) either way: its state is not to be trusted, and unwinding
//! it could free buffers the kernel still writes into. The master calls a
//! program's code too, its `on_worker_message` hook: a panic there costs
//! the line (until 2026-12-07 it ended the master, and the cluster, even
//! one the hook caught itself). A panic on another
//! thread (one a library user's program started) is the program's: it goes
//! to the hook set before, and unwinds as it would without ringmaster.
//!
//! A flood of requests that make the handler panic must not flood the log
//! (a worker writes its lines blocking): at most one is said per
//! [`SAY_EVERY`], with the count of those not said since. The line that
//! says the request got `500` comes once the engine has caught the panic
//! (`panic_guard::when_caught`): one the handler catches itself gets only
//! the usual hook's lines.

use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringmaster_engine::panic_guard::{current_call, Call};

use crate::exit_codes::EXIT_NO_HANDLER;

/// At most one handler panic is said per this long, per worker.
pub const SAY_EVERY: Duration = Duration::from_secs(10);

/// Installs the hook for this process: a worker's (`Some(id)`) or the
/// master's, called on the thread that serves. The hook set before (Rust's
/// default, or the program's own) still runs, for a panic in the handler at
/// most once per [`SAY_EVERY`], and alone for a panic on another thread.
pub fn install(worker: Option<usize>) {
    let previous = std::panic::take_hook();
    // The usual hook's lines, for every panic in the handler.
    let printed = SayLimit::new();
    // The thread that serves is the one that installs the hook. (A thread
    // id from the kernel: no thread-local, which may be gone as a thread ends.)
    let ours = nix::unistd::gettid();
    std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
        if nix::unistd::gettid() != ours {
            previous(info);
            return;
        }
        let call = match (worker, current_call()) {
            (Some(_), Some(call @ (Call::Handle | Call::OnMessage | Call::Drop)))
            | (None, Some(call @ Call::OnWorkerMessage)) => call,
            _ => {
                previous(info);
                std::process::abort();
            }
        };
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        if cfg!(panic = "abort") {
            previous(info);
            crate::log!(error: "{}", aborting_line(worker, &at, call));
            return;
        }
        if call == Call::Drop {
            // Once, at the worker's end, whatever the limit; the worker's
            // own line follows (`Cluster::serve`), and no request's `500`.
            previous(info);
            return;
        }
        if printed.say().is_some() {
            previous(info);
        }
        // Said once the engine has caught it (the handler may catch its own).
        SAID.with(|slot| slot.replace(Some(Said { worker, at, call })));
    }));
    let lines = SayLimit::new();
    ringmaster_engine::panic_guard::when_caught(move || {
        let Some(Said { worker, at, call }) = SAID.with(|slot| slot.take()) else { return };
        let Some(unsaid) = lines.say() else { return };
        let more = match unsaid {
            0 => String::new(),
            n => format!(" ({n} more since the last such line, not said)"),
        };
        crate::log!(error: "{}", caught_line(worker, &at, call, &more));
    });
}

/// Whose code panicked: `worker N: its handler` (` (in on_message)`), or
/// the master's hook.
fn whose(worker: Option<usize>, call: Call) -> String {
    match (worker, call) {
        (Some(worker), Call::Handle) => format!("worker {worker}: its handler"),
        (Some(worker), Call::Drop) => format!("worker {worker}: its handler (in drop)"),
        (Some(worker), _) => format!("worker {worker}: its handler (in on_message)"),
        (None, _) => "the master: its on_worker_message hook".to_string(),
    }
}

/// The line said when a panic of the application's ends the process
/// (built with `panic = "abort"`).
fn aborting_line(worker: Option<usize>, at: &str, call: Call) -> String {
    let (ends, unwound) = match call {
        Call::Handle => ("the worker ends with its connections", "only the request would be lost".to_string()),
        Call::OnMessage => ("the worker ends with its connections", "only the line would be lost".to_string()),
        Call::OnWorkerMessage => {
            ("the master ends, and its workers drain and exit", "only the line would be lost".to_string())
        }
        Call::Drop => ("the worker ends", format!("it would exit with code {EXIT_NO_HANDLER}")),
    };
    format!(
        "{} panicked{at}: built with panic = \"abort\", {ends} (with \"unwind\", Rust's default, {unwound})",
        whose(worker, call)
    )
}

/// The line said once the engine has caught a panic of the handler's:
/// what it cost depends on the call it came from (until 2026-12-06 a panic
/// in `on_message` was said as a request's `500` and its connection's close).
fn caught_line(worker: Option<usize>, at: &str, call: Call, more: &str) -> String {
    let cost = match call {
        Call::Handle => "the request got 500 and its connection closes; the worker serves on",
        Call::OnMessage => "the line from the master is lost to this worker; the worker serves on",
        Call::OnWorkerMessage => "the worker's line is lost; the master serves on",
        // Not said here (see `install`): the worker's own line says it.
        Call::Drop => "the worker exits with code 70 (EX_SOFTWARE)",
    };
    format!("{} panicked{at}: {cost}{more}", whose(worker, call))
}

/// Where a panic of the application's happened, for the line said once it
/// is caught (`worker`: `None` in the master).
struct Said {
    worker: Option<usize>,
    at: String,
    call: Call,
}

thread_local! {
    static SAID: std::cell::RefCell<Option<Said>> = const { std::cell::RefCell::new(None) };
}

/// Says one event per [`SAY_EVERY`] and counts the rest.
struct SayLimit {
    start: Instant,
    /// Milliseconds from `start` to the last event said, plus one (0: none yet).
    said_at: AtomicU64,
    unsaid: AtomicU64,
}

impl SayLimit {
    fn new() -> SayLimit {
        SayLimit { start: Instant::now(), said_at: AtomicU64::new(0), unsaid: AtomicU64::new(0) }
    }

    /// `Some(events not said since the last one said)` when this one is to
    /// be said, `None` when it is only counted.
    fn say(&self) -> Option<u64> {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let said_at = self.said_at.load(Ordering::Relaxed);
        if said_at != 0 && now < said_at + SAY_EVERY.as_millis() as u64 {
            self.unsaid.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.said_at.store(now, Ordering::Relaxed);
        Some(self.unsaid.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_on_message_is_not_said_as_a_request_s() {
        let line = caught_line(Some(2), " at src/main.rs:9", Call::OnMessage, "");
        assert!(!line.contains("500") && !line.contains("connection"), "{line}");
        assert!(line.contains("on_message") && line.contains("line"), "{line}");
        let line = caught_line(Some(2), " at src/main.rs:9", Call::Handle, "");
        assert!(line.contains("the request got 500 and its connection closes"), "{line}");
        let line = caught_line(None, " at src/main.rs:9", Call::OnWorkerMessage, "");
        assert_eq!(
            line,
            "the master: its on_worker_message hook panicked at src/main.rs:9: the worker's line is lost; the master serves on"
        );
    }

    #[test]
    fn an_abort_build_says_what_unwinding_would_have_cost() {
        let line = aborting_line(Some(1), " at src/main.rs:9", Call::Drop);
        assert_eq!(
            line,
            "worker 1: its handler (in drop) panicked at src/main.rs:9: built with panic = \"abort\", the worker \
             ends (with \"unwind\", Rust's default, it would exit with code 70)"
        );
        let line = aborting_line(Some(1), "", Call::Handle);
        assert!(line.ends_with("(with \"unwind\", Rust's default, only the request would be lost)"), "{line}");
    }

    #[test]
    fn the_first_event_is_said_and_the_next_ones_within_the_period_counted() {
        let limit = SayLimit::new();
        assert_eq!(limit.say(), Some(0));
        assert_eq!(limit.say(), None);
        assert_eq!(limit.say(), None);
        // As if the period had passed since the last one said.
        limit.said_at.store(1, Ordering::Relaxed);
        let start = limit.start;
        assert!(start.elapsed() < SAY_EVERY, "the test ran for 10 s");
        let limit = SayLimit { start: start - SAY_EVERY, ..limit };
        assert_eq!(limit.say(), Some(2), "said, with the two not said");
        assert_eq!(limit.say(), None);
    }
}
