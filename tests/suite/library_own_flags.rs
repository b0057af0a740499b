//! A program of your own with its own handler that takes ringmaster's flags
//! (`cli::parse_program`, the `own_flags` example) shows its own name in its
//! `--help` and errors and offers no `--body` or `--body-file` (the binary's
//! fixed responder's, which its handler never reads), nor ringmaster's
//! `--version`. Until 2026-12-07 the library had only the binary's command
//! line: `Usage: ringmaster`, `--body`, and `ringmaster 0.1.0`. Its `ctl`
//! names it too (`own_flags ctl: cannot connect ...`, `own_flags top:`), as
//! do its log lines (`own_flags[PID]:`): until 2026-12-08 they said
//! `ringmaster ctl:`, `ringmaster top:` and `ringmaster[PID]:`.

use crate::library_examples::example;
use crate::util;

use std::process::{Command, Output};

use util::control::control_path;
use util::*;

/// Runs `own_flags` with `args` to its exit (it exits at once: nothing serves).
fn own_flags(args: &[&str]) -> Output {
    Command::new(example("own_flags")).args(args).output().unwrap_or_else(|e| panic!("run own_flags {args:?}: {e}"))
}

/// The message of the one log line a bad command line gets, and its exit code 2.
fn refused(args: &[&str]) -> String {
    let output = own_flags(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?} printed on stdout");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line, not {stderr:?}");
    let line = parse_log_line(lines[0]).unwrap_or_else(|| panic!("not a log line: {stderr:?}"));
    assert_eq!(line.program, "own_flags", "{args:?}: the program's line: {stderr:?}");
    line.message.to_string()
}

/// `own_flags ctl` with `args`: its exit code and stderr (nothing on stdout).
fn ctl_refused(args: &[&str]) -> (Option<i32>, String) {
    let output = own_flags(&[&["ctl"], args].concat());
    assert!(output.stdout.is_empty(), "ctl {args:?} printed on stdout: {output:?}");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_program_with_its_own_handler_gets_its_own_command_line() {
    let output = own_flags(&["--help"]);
    assert!(output.status.success(), "--help: {output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("Usage: own_flags [OPTIONS]"), "its own name: {help}");
    assert!(help.contains("own_flags ctl"), "its ctl under its name: {help}");
    assert!(!help.contains("ringmaster"), "no ringmaster in its help: {help}");
    for flag in ["--bind", "--mode", "--workers", "--max-response", "--control"] {
        assert!(help.contains(flag), "the cluster's {flag}: {help}");
    }
    for flag in ["--body ", "--body-file", "--version", "`--body`"] {
        assert!(!help.contains(flag), "no {flag}: {help}");
    }

    let message = refused(&["--mod", "rr"]);
    assert!(message.contains("usage: own_flags "), "{message}");
    assert!(!message.contains("ringmaster"), "{message}");
    let message = refused(&["--body", "x"]);
    assert!(message.contains("unexpected argument '--body'"), "{message}");
    assert!(refused(&["--version"]).contains("unexpected argument '--version'"));
    let message = refused(&["--steer", "hash"]);
    assert!(message.contains("--steer applies to --mode reuseport only"), "{message}");
    assert!(message.contains("usage: own_flags"), "{message}");
}

#[test]
fn a_program_with_its_own_handler_serves_as_its_flags_say() {
    let s = Server::start_command(Command::new(example("own_flags")), &["--workers", "2", "--max-response", "64"]);
    s.wait_workers_ready(2, START_TIMEOUT);
    let mut conn = s.connect();
    assert_eq!(conn.request(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n").body, b"own flags: /a\n");
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "b".repeat(80));
    assert_eq!(s.connect().request(long.as_bytes()).status, 500, "past its --max-response of 64");
}

#[test]
fn a_program_with_its_own_handler_names_itself_in_its_ctl() {
    let path = control_path("own-flags", "ctl");
    let _ = std::fs::remove_file(&path);
    let at = path.to_str().expect("a UTF-8 temporary path");

    let (code, stderr) = ctl_refused(&[at, "status"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("own_flags ctl: cannot connect to {at}")), "{stderr}");
    let (code, stderr) = ctl_refused(&[at, "status", "--count", "2"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr, "own_flags ctl: --count goes with top only (see own_flags ctl --help)\n");
    let message = refused(&["ctl"]);
    assert!(message.contains("usage: own_flags ctl <PATH>"), "{message}");
    let help = own_flags(&["ctl", "--help"]);
    assert!(help.status.success(), "ctl --help: {help:?}");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Usage: own_flags ctl [OPTIONS] <PATH> <COMMAND>..."), "{help}");
    assert!(!help.contains("ringmaster"), "no ringmaster in its ctl's help: {help}");

    let s = Server::start_command(Command::new(example("own_flags")), &["--workers", "1", "--control", at]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let top = own_flags(&["ctl", at, "top", "--count", "1"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&top.stdout), String::from_utf8_lossy(&top.stderr));
    assert!(top.status.success(), "ctl top: {stderr}");
    let title = stdout.lines().next().unwrap_or_default();
    assert!(title.contains(&format!(" own_flags top: {at}")), "its top's title: {stdout}");
    drop(s);
    let _ = std::fs::remove_file(&path);
}
