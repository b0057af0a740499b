//! Fault injection for tests and benchmarks (`RINGMASTER_FAULT`), read by
//! each worker at start. A comma-separated list of:
//!
//! - `exit-at-start`: every worker exits with code 3 before serving, as one
//!   that crashes on start-up would;
//! - `skip-setuid`: the switch to `--user` leaves out its `setuid` (the
//!   worker's check must then refuse to serve);
//! - `stall:ID:MS[:AFTER_MS]`: worker ID stops serving for MS milliseconds
//!   once, AFTER_MS (default 0) after it is ready, as if descheduled;
//! - `stall-after-requests:ID:MS:N`: the same stall, once worker ID has
//!   answered N requests (a test's load runs by then, however slowly the
//!   machine started it);
//! - `slow:ID:US`: worker ID spends US microseconds of CPU on every request;
//! - `never-ready:SLOT`: the process that writes stats slot SLOT (0-based)
//!   never reports ready: it serves nothing and waits until it is told to
//!   stop (its channel or a stop signal), then exits 0. The first workers
//!   take slots 0 to N-1 in order and a process started later (by a reload,
//!   a scale-up or a restart) the lowest free one, so with one worker the
//!   first reload's new process writes slot 1;
//! - `handshakes-wait:MS`: read by the master, not the workers: a stop
//!   waits up to MS milliseconds, not [`HANDSHAKES_WAIT`]'s 500, for the
//!   handshakes under way on a listener's port before it shuts the
//!   listener, so that a test can act while it waits however slowly its
//!   own threads are scheduled;
//! - `in-flight-wait:MS`: read by the master too: each of its waits for the
//!   packets in flight ([`wait_for_packets_in_flight`]: a stop's, a
//!   set-aside listener's let-go) lasts MS milliseconds more, so that a
//!   test can act while one is under way.
//!
//! [`wait_for_packets_in_flight`]: ringmaster_engine::wait_for_packets_in_flight
//! [`HANDSHAKES_WAIT`]: crate::handshakes::HANDSHAKES_WAIT

use std::time::Duration;

use ringmaster_engine::{Faults, StallStart};

use crate::error::{Error, Result};

/// The environment variable the faults are read from.
pub const ENV_FAULT: &str = "RINGMASTER_FAULT";

/// What one worker is to do wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerFaults {
    /// Exit with code 3 before serving.
    pub exit_at_start: bool,
    /// Leave the `setuid` out of the privilege switch.
    pub skip_setuid: bool,
    /// Never report ready; wait to be told to stop.
    pub never_ready: bool,
    /// Faults inside the engine's loop.
    pub engine: Faults,
}

/// Parses `text` for worker `id` writing stats slot `slot`; an unknown
/// fault is an error naming it.
pub fn faults_for(id: usize, slot: usize, text: &str) -> Result<WorkerFaults> {
    let mut faults = WorkerFaults::default();
    for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let parts: Vec<&str> = item.split(':').collect();
        let number = |at: usize| -> Result<u64> {
            parts
                .get(at)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| Error::WorkerEnv(format!("{ENV_FAULT}: '{item}' needs a number in place {at}")))
        };
        match parts[0] {
            "exit-at-start" => faults.exit_at_start = true,
            "skip-setuid" => faults.skip_setuid = true,
            "stall" if parts.len() == 3 || parts.len() == 4 => {
                let after = if parts.len() == 4 { number(3)? } else { 0 };
                if number(1)? == id as u64 {
                    let after = StallStart::AfterReady(Duration::from_millis(after));
                    faults.engine.stall = Some((after, Duration::from_millis(number(2)?)));
                }
            }
            "stall-after-requests" if parts.len() == 4 => {
                let after = StallStart::AfterRequests(number(3)?);
                if number(1)? == id as u64 {
                    faults.engine.stall = Some((after, Duration::from_millis(number(2)?)));
                }
            }
            "never-ready" if parts.len() == 2 => faults.never_ready |= number(1)? == slot as u64,
            // The master's ([`handshakes_wait`]).
            "handshakes-wait" | "in-flight-wait" if parts.len() == 2 => {
                number(1)?;
            }
            "slow" if parts.len() == 3 => {
                if number(1)? == id as u64 {
                    faults.engine.per_request = Some(Duration::from_micros(number(2)?));
                }
            }
            _ => {
                return Err(Error::WorkerEnv(format!(
                    "{ENV_FAULT}: unknown fault '{item}' (exit-at-start, skip-setuid, stall:ID:MS[:AFTER_MS], \
                 stall-after-requests:ID:MS:N, slow:ID:US, \
                 never-ready:SLOT, handshakes-wait:MS, in-flight-wait:MS)"
                )))
            }
        }
    }
    Ok(faults)
}

/// How long a stop waits for the handshakes under way on a listener's port
/// when `text` (the master's [`ENV_FAULT`]) says `handshakes-wait:MS`;
/// `None` when it does not (or says it without a number).
pub fn handshakes_wait(text: &str) -> Option<Duration> {
    master_wait(text, "handshakes-wait:")
}

/// How much longer each wait for the packets in flight lasts when `text`
/// (the master's [`ENV_FAULT`]) says `in-flight-wait:MS`; `None` when it
/// does not (or says it without a number).
pub fn in_flight_wait(text: &str) -> Option<Duration> {
    master_wait(text, "in-flight-wait:")
}

/// The milliseconds after `prefix` in `text`'s first item that has it.
fn master_wait(text: &str, prefix: &str) -> Option<Duration> {
    text.split(',').map(str::trim).find_map(|item| item.strip_prefix(prefix)?.parse().ok().map(Duration::from_millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_to_the_worker_they_name() {
        let text = "stall:2:3000:1500, slow:1:250";
        let one = faults_for(1, 0, text).expect("parse");
        assert_eq!(one.engine.per_request, Some(Duration::from_micros(250)));
        assert_eq!(one.engine.stall, None);
        let two = faults_for(2, 1, text).expect("parse");
        let after = StallStart::AfterReady(Duration::from_millis(1500));
        assert_eq!(two.engine.stall, Some((after, Duration::from_millis(3000))));
        assert_eq!(two.engine.per_request, None);
        assert!(faults_for(1, 0, "exit-at-start").expect("parse").exit_at_start);
        assert!(faults_for(1, 2, "never-ready:2").expect("parse").never_ready);
        assert!(!faults_for(1, 0, "never-ready:2").expect("parse").never_ready);
        assert_eq!(faults_for(1, 0, "").expect("parse"), WorkerFaults::default());
        assert_eq!(
            faults_for(1, 0, "stall:1:500").expect("parse").engine.stall,
            Some((StallStart::AfterReady(Duration::ZERO), Duration::from_millis(500)))
        );
        let counted = "stall-after-requests:2:3000:40";
        assert_eq!(faults_for(1, 0, counted).expect("parse").engine.stall, None);
        assert_eq!(
            faults_for(2, 1, counted).expect("parse").engine.stall,
            Some((StallStart::AfterRequests(40), Duration::from_millis(3000)))
        );
    }

    #[test]
    fn nonsense_is_refused_by_name() {
        assert!(faults_for(1, 0, "explode").unwrap_err().to_string().contains("'explode'"));
        assert!(faults_for(1, 0, "stall:x:5").unwrap_err().to_string().contains("number"));
        assert!(faults_for(1, 0, "slow:1").is_err());
        assert!(faults_for(1, 0, "stall-after-requests:1:3000").is_err());
        assert!(faults_for(1, 0, "handshakes-wait:x").is_err());
    }

    #[test]
    fn the_masters_handshakes_wait_is_read_beside_the_workers_faults() {
        let text = "stall:2:3000, handshakes-wait:4000";
        assert_eq!(handshakes_wait(text), Some(Duration::from_secs(4)));
        assert_eq!(
            faults_for(2, 1, text).expect("a worker passes it by").engine.stall.map(|(_, d)| d),
            Some(Duration::from_secs(3))
        );
        assert_eq!(handshakes_wait("stall:2:3000"), None);
        assert_eq!(handshakes_wait(""), None);
        let both = "handshakes-wait:4000,in-flight-wait:3000";
        assert_eq!(in_flight_wait(both), Some(Duration::from_secs(3)));
        assert_eq!(handshakes_wait(both), Some(Duration::from_secs(4)));
        assert!(faults_for(1, 0, both).is_ok());
        assert_eq!(in_flight_wait("in-flight-wait:x"), None);
    }
}
