//! The command line as an operator meets it: how many workers run and where
//! (`--cpus`, `--workers`, the default), one-line errors that name what is
//! wrong, `--body` escapes, and `--help` listing every flag with its default.

#[path = "util/operator.rs"]
mod operator;
mod util;

use operator::*;
use util::*;

// --- how many workers, where -----------------------------------------------------------

#[test]
fn cpus_without_workers_runs_one_worker_per_listed_cpu() {
    let allowed = cpus_allowed(std::process::id());
    // One listed CPU: one worker, on it (it used to start one per allowed CPU, all on it).
    let last = *allowed.last().unwrap();
    let s = Server::start(&["--cpus", &last.to_string()]);
    let stats = stats_when_ready(&s);
    let workers = worker_pids_and_cpus(&stats);
    assert_eq!(workers.len(), 1, "--cpus {last} without --workers: {stats}");
    assert_eq!(workers[0].1, Some(last as u64), "{stats}");
    assert_eq!(cpus_allowed(workers[0].0), vec![last]);
    s.connect().get_ok();
    drop(s);

    // Every allowed CPU listed: one worker on each, in the list's order.
    let list = allowed.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let s = Server::start(&["--cpus", &list]);
    let stats = stats_when_ready(&s);
    let workers = worker_pids_and_cpus(&stats);
    assert_eq!(workers.len(), allowed.len(), "--cpus {list} without --workers: {stats}");
    for ((pid, cpu), want) in workers.iter().zip(&allowed) {
        assert_eq!(*cpu, Some(*want as u64), "{stats}");
        assert_eq!(cpus_allowed(*pid), vec![*want], "worker pid {pid}");
    }
}

#[test]
fn workers_with_cpus_wrap_around_the_list() {
    let allowed = cpus_allowed(std::process::id());
    let list: Vec<usize> = allowed.iter().rev().take(2).copied().collect();
    let text = list.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let n = list.len() + 1;
    let s = Server::start(&["--workers", &n.to_string(), "--cpus", &text]);
    let stats = stats_when_ready(&s);
    let workers = worker_pids_and_cpus(&stats);
    assert_eq!(workers.len(), n, "{stats}");
    for (k, (pid, cpu)) in workers.iter().enumerate() {
        let want = list[k % list.len()];
        assert_eq!(*cpu, Some(want as u64), "worker {}: {stats}", k + 1);
        assert_eq!(cpus_allowed(*pid), vec![want], "worker {} (pid {pid})", k + 1);
    }
}

#[test]
fn cpus_with_no_pin_is_a_usage_error() {
    for args in [["--cpus", "0", "--no-pin"], ["--no-pin", "--cpus", "0"]] {
        let (code, line) = expect_one_line_error(&args);
        assert_eq!(code, 2, "{line}");
        assert!(line.contains("--cpus") && line.contains("--no-pin"), "{line}");
    }
}

// --- one-line errors -------------------------------------------------------------------

#[test]
fn a_missing_argument_is_named_on_the_one_line_with_the_usage() {
    let (code, line) = expect_one_line_error(&["ctl"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("<PATH>") && line.contains("<COMMAND>"), "names the missing arguments: {line}");
    assert!(line.contains("usage: ringmaster ctl <PATH> <COMMAND>"), "carries the usage: {line}");
    assert!(line.contains("--help"), "points at --help: {line}");

    let (code, line) = expect_one_line_error(&["ctl", "/nonexistent/ringmaster.sock"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("<COMMAND>") && !line.contains("<PATH>,"), "names only what is missing: {line}");
}

#[test]
fn a_bad_value_is_named_on_the_one_line() {
    let (code, line) = expect_one_line_error(&["--workers", "x"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("'x'") && line.contains("--workers"), "{line}");

    let (code, line) = expect_one_line_error(&["--mode", "foo"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("'foo'") && line.contains("[possible values: rr, shared]"), "{line}");

    let (code, line) = expect_one_line_error(&["--mod", "rr"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("'--mod'") && line.contains("'--mode'"), "keeps clap's tip: {line}");
}

// --- --body escapes --------------------------------------------------------------------

#[test]
fn body_escapes_are_interpreted() {
    let s = Server::start(&["--workers", "1", "--body", r"hi\n"]);
    let r = s.connect().request(GET);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"hi\n", "{r:?}");
    assert_eq!(r.header("content-length"), Some("3"), "{r:?}");
    drop(s);

    let s = Server::start(&["--workers", "1", "--body", r"a\tb\\c\x41\r\n"]);
    let r = s.connect().request(GET);
    assert_eq!(r.body, b"a\tb\\cA\r\n", "{r:?}");
    drop(s);

    // The default, written `hello world\n` in --help, is unchanged.
    Server::start(&["--workers", "1"]).connect().get_ok();
}

#[test]
fn an_unknown_body_escape_is_a_usage_error() {
    let (code, line) = expect_one_line_error(&["--body", r"a\qb"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("--body") && line.contains(r"'\q'"), "{line}");
    let (code, line) = expect_one_line_error(&["--body", r"\x4"]);
    assert_eq!(code, 2, "{line}");
}
