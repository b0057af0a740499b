//! A program whose closure given to `serve` panics, its handler not made
//! (a database it cannot open): each worker exits with code 70 after a line
//! saying so, and the master, none of its workers ever ready, stops and
//! exits 1 with one `ERROR` line, as when no worker can start with its
//! limits. Until 2026-12-07 the worker aborted (the hook took the panic
//! for the engine's) and was restarted with the back-off forever, the
//! master serving nothing: a client's request waited unanswered.

use crate::library_examples::{example, EXAMPLES_ABORT_ON_PANIC};
use crate::util;

use std::process::Command;
use std::time::Duration;

use util::operator::gave_up_line;
use util::*;

/// How long the master may take to give up: its workers exit at start.
const GIVES_UP_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn a_program_whose_handler_cannot_be_made_exits_1() {
    let mut cmd = Command::new(example("router"));
    cmd.env("PORT", "0").env("WORKERS", "2").env("MAKE_PANICS", "1");
    let mut s = Server::launch_as_is(cmd);
    if EXAMPLES_ABORT_ON_PANIC {
        // Built with `panic = "abort"`: the panic ends the worker, a crash.
        s.wait_for_log(|l| l.contains("killed by signal 6 (SIGABRT)"), GIVES_UP_WITHIN);
        return;
    }
    let status = s.wait_exit(GIVES_UP_WITHIN);
    assert_eq!(status.code(), Some(1), "{status:?}");
    s.wait_for_log(|l| l.contains("its handler was not made: the closure given to serve panicked"), Duration::ZERO);
    s.wait_for_log(|l| l.contains("exited with code 70"), Duration::ZERO);
    let gave_up = gave_up_line(&s);
    assert!(gave_up.contains("no worker can start: worker"), "{gave_up}");
    assert!(gave_up.contains("its handler not made"), "{gave_up}");
}
