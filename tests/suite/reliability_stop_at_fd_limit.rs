//! A stop while the master is at its open-file limit (`rr`, `least`): the
//! clients waiting in its listen queue, which it could not accept (nor
//! could the stop's last hand-off), each get an answer (`503`, or `200`
//! from a worker), never a reset. Before, `answer_queue` stopped at the
//! first `EMFILE`, and what was left in the queue was reset by the
//! listener's shutdown (21 to 23 of 24 clients); and when the workers were
//! gone before the tick that stops listening (idle workers exit at once),
//! the master exited without answering its queue at all: every client was
//! reset by the exit.

use crate::util;

use util::held::{answers, client_sent};
use util::procs::{fd_limit_leaving, set_soft_fd_limit};
use util::*;

/// Clients left in the listen queue: more than the master's spares (the
/// reserve lends 4) and than anything it closes during the stop.
const QUEUED: usize = 24;

/// `workers_busy`: a keep-alive client just answered keeps the worker for
/// up to a second into its drain (`DRAIN_RECENT_MS`), so the master stops
/// listening on its tick, workers running, still at its limit; without it
/// the idle worker exits at once and the master stops listening as it exits.
fn queued_clients_are_answered_at_a_stop_at_the_fd_limit(mode: &str, workers_busy: bool) {
    let s = Server::start(&["--mode", mode, "--workers", "1", "--no-pin"]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let mut keep = s.connect();
    keep.get_ok();
    let keep = workers_busy.then_some(keep);
    let master = s.pid();
    let from = s.log_len();
    set_soft_fd_limit(master, fd_limit_leaving(master, 0));
    let mut clients: Vec<Conn> = (0..QUEUED).map(|_| client_sent(&s)).collect();
    let at_limit = |l: &str| l.starts_with("the master is at its open-file limit");
    s.wait_for_log_from(from, at_limit, IO_TIMEOUT);

    s.signal(libc::SIGTERM);
    let answers = answers(&mut clients);
    drop(keep);
    let unanswered: Vec<&String> = answers.iter().filter(|a| *a != "200" && *a != "503").collect();
    assert!(
        unanswered.is_empty(),
        "{mode}: {} of {QUEUED} queued clients got no answer: {answers:?}; log:\n{}",
        unanswered.len(),
        s.log().join("\n")
    );
    assert!(answers.iter().any(|a| a == "503"), "{mode}: the master was at its limit: {answers:?}");
}

#[test]
fn rr_answers_its_queue_at_a_stop_at_the_fd_limit_while_workers_drain() {
    queued_clients_are_answered_at_a_stop_at_the_fd_limit("rr", true);
}

#[test]
fn least_answers_its_queue_at_a_stop_at_the_fd_limit_while_workers_drain() {
    queued_clients_are_answered_at_a_stop_at_the_fd_limit("least", true);
}

#[test]
fn rr_answers_its_queue_at_a_stop_at_the_fd_limit_when_workers_exit_at_once() {
    queued_clients_are_answered_at_a_stop_at_the_fd_limit("rr", false);
}

#[test]
fn least_answers_its_queue_at_a_stop_at_the_fd_limit_when_workers_exit_at_once() {
    queued_clients_are_answered_at_a_stop_at_the_fd_limit("least", false);
}
