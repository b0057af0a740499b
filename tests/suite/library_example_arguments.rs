//! The examples that take no arguments (their settings from `$PORT`,
//! `$MODE`, ...) answer `--help` with what they are and the variables they
//! read, and refuse any argument in one log line (exit 2), through
//! `cli::parse_no_arguments`. Until 2026-12-08 they took every argument and
//! ignored it: `hello_cluster --help` started a cluster on port 8000.

use crate::library_examples::example;
use crate::util;

use std::process::Command;
use std::time::Duration;

use util::procs::run_command_to_exit;
use util::*;

/// The examples whose settings come from the environment alone.
const WITHOUT_FLAGS: [&str; 4] = ["hello_cluster", "per_worker_state", "router", "own_children"];

/// How long such an example may take to print and exit (a bound for a
/// failure: one that serves instead is stopped then).
const EXITS_WITHIN: Duration = Duration::from_secs(10);

/// Runs example `name` with `args` to its exit: (code, stdout, stderr). A
/// free port and one worker, should it serve instead (the failure this finds).
fn run(name: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(example(name));
    cmd.args(args).env("PORT", "0").env("WORKERS", "1");
    let (status, stdout, stderr) = run_command_to_exit(cmd, EXITS_WITHIN);
    (status.code(), stdout, stderr)
}

#[test]
fn an_example_without_flags_answers_help_and_exits() {
    for name in WITHOUT_FLAGS {
        for help in ["--help", "-h"] {
            let (code, stdout, stderr) = run(name, &[help]);
            assert_eq!(code, Some(0), "{name} {help}: {stderr}");
            assert!(stderr.is_empty(), "{name} {help}: nothing on stderr (no cluster started): {stderr}");
            assert!(stdout.contains(&format!("Usage: {name}\n")), "{name} {help}: its usage: {stdout}");
            assert!(stdout.contains("PORT "), "{name} {help}: the variables it reads: {stdout}");
            assert!(!stdout.contains("--version"), "{name} {help}: no --version: {stdout}");
        }
    }
}

#[test]
fn an_example_without_flags_refuses_an_argument_in_one_line() {
    for name in WITHOUT_FLAGS {
        for (args, refused) in [(&["--bind", "127.0.0.1:0"][..], "'--bind'"), (&["stray"][..], "'stray'")] {
            let (code, stdout, stderr) = run(name, args);
            assert_eq!(code, Some(2), "{name} {args:?}: {stderr}");
            assert!(stdout.is_empty(), "{name} {args:?} printed on stdout: {stdout}");
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{name} {args:?}: one line, not {stderr:?}");
            let line = parse_log_line(lines[0]).unwrap_or_else(|| panic!("not a log line: {stderr:?}"));
            assert_eq!((line.level, line.program), ("ERROR", name), "{stderr}");
            let message = line.message;
            assert!(message.contains(&format!("unexpected argument {refused} found")), "{name}: {message}");
            assert!(message.contains(&format!("usage: {name}")), "{name}: {message}");
        }
    }
}
