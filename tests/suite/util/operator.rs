//! What an operator sees of the running processes, read from `/proc`: CPU
//! affinity, user and group ids, command lines and thread names; and a bad
//! command line's exit code and one error line.

#![allow(dead_code)]

use std::time::Duration;

use crate::util::procs::run_to_exit;
use crate::util::{eventually, parse_log_line, Server};

/// The value of `Name:` in `/proc/PID/status`, trimmed.
pub fn status_field(pid: u32, name: &str) -> String {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let prefix = format!("{name}:");
    let line = status
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status:\n{status}"));
    line[prefix.len()..].trim().to_string()
}

/// The numbers of a `/proc/PID/status` line such as `Uid:` (real, effective,
/// saved, filesystem) or `Groups:`.
pub fn status_ids(pid: u32, name: &str) -> Vec<u32> {
    status_field(pid, name).split_whitespace().map(|n| n.parse().unwrap()).collect()
}

/// A CPU list such as `0-1,4` (the kernel's `Cpus_allowed_list` format).
pub fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => out.push(part.parse().unwrap()),
        }
    }
    out
}

/// The CPUs `pid` may run on (what `sched_getaffinity` and `nproc` report).
pub fn cpus_allowed(pid: u32) -> Vec<usize> {
    parse_cpu_list(&status_field(pid, "Cpus_allowed_list"))
}

/// `/proc/PID/cmdline` split at its NULs, trailing empty strings (padding) dropped.
pub fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_else(|e| panic!("/proc/{pid}/cmdline: {e}"));
    let mut args: Vec<String> = raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    while args.last().is_some_and(String::is_empty) {
        args.pop();
    }
    args
}

/// The main thread's name (`/proc/PID/comm`).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/comm: {e}"))
        .trim_end()
        .to_string()
}

/// The stats once every listed worker reports state "ready" (at most 10 s).
pub fn stats_when_ready(s: &Server) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let ready = eventually(Duration::from_secs(10), || {
        last = s.stats();
        let workers = last["workers"].as_array().cloned().unwrap_or_default();
        !workers.is_empty() && workers.iter().all(|w| w["state"] == "ready")
    });
    assert!(ready, "workers not all ready within 10 s: {last}");
    last
}

/// `(pid, cpu)` of each worker in the stats line, in worker order.
pub fn worker_pids_and_cpus(stats: &serde_json::Value) -> Vec<(u32, Option<u64>)> {
    stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["pid"].as_u64().unwrap() as u32, w["cpu"].as_u64()))
        .collect()
}

/// Runs the binary with a bad command line and checks it fails fast: an exit by
/// itself within 10 s, nothing on stdout, exactly one line on stderr, a log line
/// (`<time> <level> ringmaster[<pid>]: <message>`). Returns (exit code, its message).
pub fn expect_one_line_error(args: &[&str]) -> (i32, String) {
    let (status, stdout, stderr) = run_to_exit(args, Duration::from_secs(10));
    let code = status.code().unwrap_or_else(|| panic!("{args:?} died by a signal ({status}); stderr {stderr:?}"));
    assert_ne!(code, 0, "{args:?} succeeded; stderr {stderr:?}");
    assert_eq!(stdout, "", "{args:?} printed on stdout");
    assert!(stderr.ends_with('\n'), "{args:?}: stderr {stderr:?} is not one terminated line");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected exactly one stderr line, got {stderr:?}");
    let line = parse_log_line(lines[0]).unwrap_or_else(|| panic!("{args:?}: not a log line: {:?}", lines[0]));
    eprintln!("{args:?} -> exit {code}: {}", lines[0]);
    (code, line.message.to_string())
}

/// The one `ERROR` line of a master that gave up as no worker can start
/// (it exited 1), having logged no restart, since it makes none.
pub fn gave_up_line(s: &Server) -> String {
    // The binary's or an example's (`router[PID]`): the master's by its pid.
    let from_master = |l: &String| parse_log_line(l).is_some_and(|l| l.level == "ERROR" && l.pid == s.pid());
    let errors: Vec<String> = s.raw_log().into_iter().filter(from_master).collect();
    assert_eq!(errors.len(), 1, "one ERROR line from the master: {errors:#?}");
    assert_no_restart_planned(s);
    errors[0].clone()
}

/// The master gave up: it logged no restart, since it makes none.
pub fn assert_no_restart_planned(s: &Server) {
    let planned: Vec<String> = s.log().into_iter().filter(|l| l.contains(" restarting in ")).collect();
    assert!(planned.is_empty(), "a restart it never makes: {planned:#?}");
}
