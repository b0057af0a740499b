//! A stop taken by a master whose only worker stands still, the master
//! then stopped too: what a test connects meanwhile waits in the listen
//! queue, and the stop stops listening only once the master runs again
//! and the worker's heartbeat is stale (`reuseport`: 2 s into the stop).

use super::procs::{stop_between_turns, ContinueOnDrop};
use super::{Server, IO_TIMEOUT};

/// The worker and the master, each stopped (SIGSTOP) between two turns of
/// its loop (the guards continue them), and the log's length before the
/// stop. The master is stopped once it has taken the `SIGTERM`: the turn
/// that took it is over, and with it the stop's last hand-off of the
/// queue (`rr`, `least`).
pub struct StillAtStop {
    pub worker: ContinueOnDrop,
    pub master: ContinueOnDrop,
    pub from: usize,
}

/// Stops `s`'s only worker, sends the master `SIGTERM`, and stops the master.
pub fn stop_with_the_worker_and_master_still(s: &Server) -> StillAtStop {
    let worker = *s.logged_worker_pids().first().expect("the worker's pid is logged");
    let (worker, _) = stop_between_turns(worker);
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.contains("SIGTERM received"), IO_TIMEOUT);
    let (master, _) = stop_between_turns(s.pid());
    StillAtStop { worker, master, from }
}
