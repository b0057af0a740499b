//! Log lines about running out of file descriptors, rate-limited per kind.

use std::time::{Duration, Instant};

use super::Master;

/// Least time between two log lines of one kind about running out of file
/// descriptors.
const FD_LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);
/// A kind of log line about running out of file descriptors, each
/// rate-limited on its own: a line of one kind never hides one of another
/// (a worker's at its limit, the master's own just after it). One timer
/// per kind, not per worker: workers inherit the master's limit and tend to
/// reach it together, so a timer each would log a line per worker per
/// period; the line names the worker last found at it, and each worker's
/// count is in the metrics (`fd_limit_hits_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FdLimitLine {
    /// A worker reports it is at its open-file limit.
    Worker,
    /// The master's own accept found no descriptor free.
    Accepting,
    /// A take from a stalled or full worker's queue (`steer.rs`) found none.
    Rescue,
    /// The kernel refused a hand-off for now: too many descriptors in flight
    /// for the user, or no memory for the message (`master/lanes.rs`).
    HandOff,
}

impl FdLimitLine {
    pub(super) const KINDS: usize = 4;

    fn index(self) -> usize {
        match self {
            FdLimitLine::Worker => 0,
            FdLimitLine::Accepting => 1,
            FdLimitLine::Rescue => 2,
            FdLimitLine::HandOff => 3,
        }
    }
}

impl Master {
    /// Logs about running out of file descriptors, at most every
    /// [`FD_LIMIT_LOG_EVERY`] for each `kind` of line.
    pub(super) fn log_fd_limit(&mut self, kind: FdLimitLine, message: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        let logged = &mut self.dispatch.fd_limit_logged[kind.index()];
        if logged.is_some_and(|at| now.duration_since(at) < FD_LIMIT_LOG_EVERY) {
            return;
        }
        *logged = Some(now);
        crate::log!(warn: "{message}");
    }
}
