//! `--max-conns` as the stats line counts it, with one worker holding at most
//! two connections. A connection over the limit is refused with `503` and
//! counted in the line's `refused` (tests/reliability_full_workers.rs shows
//! the refusals themselves); a worker's `rejected` counts the connections it
//! was offered and declined because it was full:
//! - `rr`: the master offers the worker the first connection over the limit;
//!   the worker declines it (`rejected` 1) and the master refuses it. For a
//!   short pause after a decline the master refuses without asking, so of
//!   later ones the worker sees some, not necessarily all.
//! - `shared`: a full worker stops accepting, the master accepts and refuses
//!   in its place: the worker is never offered one (`rejected` 0).
//!
//! Either way `accepted` counts only connections taken, and a freed slot
//! takes a new one.

mod util;

use std::time::Duration;
use util::procs::stop_and_check_no_process_left;
use util::stats::{num, worker};
use util::*;

const MAX: usize = 2;

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
            c
        })
        .collect();
    let st = stats_when(&s, "both connections live", |st| num(&worker(st, 1).unwrap(), "live") == MAX as u64);
    assert_eq!((num(&st, "refused"), num(&worker(&st, 1).unwrap(), "rejected")), (0, 0), "{st}");

    // The first connection over the limit.
    refused(&s);
    // (The worker acknowledges a batch before it publishes its counters: the
    // master's `refused` can show first.)
    let first_rejected = if mode == "rr" { 1 } else { 0 };
    let st = stats_when(&s, &format!("one refusal, {first_rejected} rejected"), |st| {
        num(st, "refused") == 1 && num(&worker(st, 1).unwrap(), "rejected") == first_rejected
    });
    let w = worker(&st, 1).unwrap();
    assert_eq!((num(&w, "accepted"), num(&w, "live")), (MAX as u64, MAX as u64), "{st}");

    // Two more.
    refused(&s);
    refused(&s);
    let st = stats_when(&s, "three refusals", |st| num(st, "refused") == 3);
    let rejected = num(&worker(&st, 1).unwrap(), "rejected");
    match mode {
        "rr" => assert!((1..=3).contains(&rejected), "rr: the worker declined between 1 and 3 of them: {st}"),
        _ => assert_eq!(rejected, 0, "shared: the worker is never offered one: {st}"),
    }
    assert_eq!(num(&worker(&st, 1).unwrap(), "accepted"), MAX as u64, "{st}");

    // The kept connections still serve; once one closes, a new one is taken
    // (in `rr` after the master's pause, during which it still refuses:
    // those refusals are counted too).
    for c in &mut kept {
        c.get_ok();
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
fn shared_rejected_and_refused_are_counted() {
    rejected_and_refused_are_counted("shared");
}
