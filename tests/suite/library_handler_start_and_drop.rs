//! A panic in a handler method other than `handle` and `on_message`: those
//! the worker asks as it starts (`fixed_body`, `wants_peer_addr`), and the
//! handler's drop at the worker's exit. Each is said by its name and ends
//! the worker with code 70 (`EX_SOFTWARE`); at start, as a handler that
//! could not be made, the master, none of its workers ever ready, stops and
//! exits 1. Until 2026-12-07 the engine's hook took each for its own panic:
//! at start the workers aborted and were restarted with the back-off
//! forever, and a drop's panic turned a clean exit into a `SIGABRT`.

use crate::library_examples::{example, EXAMPLES_ABORT_ON_PANIC};
use crate::util;

use std::process::Command;
use std::time::Duration;

use util::operator::gave_up_line;
use util::*;

/// How long the master may take to give up, or to stop: its workers exit
/// at start, or drain no connection.
const WITHIN: Duration = Duration::from_secs(10);

/// The `router` example with two workers, its handler panicking in `method`.
fn router_panicking_in(method: &str) -> Command {
    let mut cmd = Command::new(example("router"));
    cmd.env("PORT", "0").env("WORKERS", "2").env("PANIC_IN", method).env("RUST_BACKTRACE", "0");
    cmd
}

fn a_panic_in_a_method_asked_at_start_ends_the_worker(method: &str) {
    let mut s = Server::launch_as_is(router_panicking_in(method));
    if EXAMPLES_ABORT_ON_PANIC {
        // Built with `panic = "abort"`: the panic ends the worker, a crash.
        s.wait_for_log(|l| l.contains("killed by signal 6 (SIGABRT)"), WITHIN);
        return;
    }
    let status = s.wait_exit(WITHIN);
    assert_eq!(status.code(), Some(1), "{status:?}");
    let said = format!("its handler's {method} panicked as the worker started");
    s.wait_for_log(|l| l.contains(&said), Duration::ZERO);
    s.wait_for_log(|l| l.contains("exited with code 70"), Duration::ZERO);
    let gave_up = gave_up_line(&s);
    assert!(gave_up.contains("no worker can start: worker"), "{gave_up}");
    assert!(!s.log().iter().any(|l| l.contains("SIGABRT")), "no worker aborted: {:?}", s.log());
}

#[test]
fn a_panic_in_wants_peer_addr_ends_the_worker_with_code_70() {
    a_panic_in_a_method_asked_at_start_ends_the_worker("wants_peer_addr");
}

#[test]
fn a_panic_in_fixed_body_ends_the_worker_with_code_70() {
    a_panic_in_a_method_asked_at_start_ends_the_worker("fixed_body");
}

#[test]
fn a_panic_in_the_handler_s_drop_is_said_and_the_worker_exits_70() {
    let mut s = Server::start_without_flags(router_panicking_in("drop"));
    s.wait_workers_ready(2, START_TIMEOUT);
    assert_eq!(s.connect().request(GET).status, 200, "it serves as usual");
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(WITHIN);
    if EXAMPLES_ABORT_ON_PANIC {
        s.wait_for_log(|l| l.contains("its handler (in drop) panicked"), Duration::ZERO);
        return;
    }
    for id in [1, 2] {
        let said = format!("worker {id}: its handler panicked as it was dropped, at the worker's exit");
        s.wait_for_log(|l| l.contains(&said), Duration::ZERO);
    }
    let exited = s.log().iter().filter(|l| l.contains("exited with code 70")).count();
    assert_eq!(exited, 2, "both workers exit 70: {:?}", s.log());
    assert!(!s.log().iter().any(|l| l.contains("SIGABRT")), "no worker aborted: {:?}", s.log());
    eprintln!("the master exited with {status:?}");
}
