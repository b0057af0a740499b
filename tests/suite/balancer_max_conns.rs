//! `--max-conns` as the stats line counts it, with one worker holding at most
//! two connections. A connection over the limit is refused with `503` and
//! counted in the line's `refused` (tests/suite/reliability_full_workers.rs shows
//! the refusals themselves); a worker's `rejected` counts the connections it
//! was offered and declined because it was full:
//! - `rr`, `least`: the master reads the worker's open connections in its
//!   stats block (issue 10: a full worker is skipped), so once the worker has
//!   published that it is full the master refuses without offering it one
//!   (`rejected` 0). A worker offered one before its count showed (a burst)
//!   declines it, and the master pauses offering it more.
//! - `shared`: a full worker stops accepting, the master accepts and refuses
//!   in its place: the worker is never offered one (`rejected` 0).
//!
//! Either way `accepted` counts only connections taken, and a freed slot
//! takes a new one.

use crate::util;

use std::time::Duration;
use util::procs::stop_and_check_no_process_left;
use util::stats::{num, worker};
use util::*;

const MAX: usize = 2;
/// The start of a request's header block: a connection that sent it is busy.
const PARTIAL: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";

/// The stats line once `pred` holds for it (at most 5 s).
fn stats_when(s: &Server, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut st = serde_json::Value::Null;
    let seen = eventually(IO_TIMEOUT, || {
        st = s.stats();
        pred(&st)
    });
    assert!(seen, "never saw {what}: {st}");
    st
}

/// One connection over the limit: answered `503`, then closed.
fn refused(s: &Server) {
    let mut c = s.connect();
    let resp = c.request(GET);
    check_error(&resp, 503);
    c.expect_closed();
}

fn rejected_and_refused_are_counted(mode: &str) {
    let s = Server::start(&["--mode", mode, "--workers", "1", "--max-conns", &MAX.to_string()]);
    s.wait_workers_ready(1, Duration::from_secs(5));
    let mut kept: Vec<Conn> = (0..MAX)
        .map(|_| {
            let mut c = s.connect();
            c.get_ok();
            // Busy with a next request: a full worker would close an idle
            // one for a new client (tests/suite/reliability_idle_reclaim.rs).
            c.send(PARTIAL);
            c
        })
        .collect();
    let st = stats_when(&s, "both connections live", |st| num(&worker(st, 1).unwrap(), "live") == MAX as u64);
    assert_eq!((num(&st, "refused"), num(&worker(&st, 1).unwrap(), "rejected")), (0, 0), "{st}");

    // The first connection over the limit, and two more: the worker is
    // never offered one, its count says it is full.
    refused(&s);
    let st = stats_when(&s, "one refusal", |st| num(st, "refused") == 1);
    let w = worker(&st, 1).unwrap();
    assert_eq!((num(&w, "accepted"), num(&w, "live"), num(&w, "rejected")), (MAX as u64, MAX as u64, 0), "{st}");
    refused(&s);
    refused(&s);
    let st = stats_when(&s, "three refusals", |st| num(st, "refused") == 3);
    let w = worker(&st, 1).unwrap();
    assert_eq!(
        (num(&w, "accepted"), num(&w, "rejected")),
        (MAX as u64, 0),
        "{mode}: nothing offered to a full worker: {st}"
    );

    // The kept connections still serve; once one closes, a new one is taken
    // (once the worker's count shows the free slot: refusals meanwhile are
    // counted too).
    for c in &mut kept {
        c.send(b"\r\n");
        check_ok(&c.read());
        c.send(PARTIAL);
    }
    drop(kept.pop());
    stats_when(&s, "a free slot", |st| num(&worker(st, 1).unwrap(), "live") == MAX as u64 - 1);
    let mut more_refused = 0;
    let mut taken = None;
    let served = eventually(IO_TIMEOUT, || {
        let mut c = s.connect();
        let resp = c.request(GET);
        if resp.status == 503 {
            more_refused += 1;
            return false;
        }
        check_ok(&resp);
        taken = Some(c);
        true
    });
    assert!(served, "{mode}: a freed slot is not used again ({more_refused} refused meanwhile)");
    let st = stats_when(&s, "the new connection", |st| num(&worker(st, 1).unwrap(), "accepted") == MAX as u64 + 1);
    assert_eq!(num(&st, "refused"), 3 + more_refused, "{st}");
    drop((taken, kept));
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_rejected_and_refused_are_counted() {
    rejected_and_refused_are_counted("rr");
}

#[test]
fn least_rejected_and_refused_are_counted() {
    rejected_and_refused_are_counted("least");
}

#[test]
fn shared_rejected_and_refused_are_counted() {
    rejected_and_refused_are_counted("shared");
}
