//! A program of your own names itself wherever the binary says `ringmaster`
//! to a machine: in its JSON log lines (`"program":"NAME"`, as its text
//! lines say `NAME[PID]:`), in its metrics (`ringmaster_info{program="NAME"}`,
//! the families keeping their `ringmaster_` names), and in its `ctl`, with
//! the name its cluster is given after `cli::parse_program` (`Cluster::name`:
//! the `own_flags` example with `$CLUSTER_NAME`). Until 2026-12-08 its JSON
//! lines and metrics named no program, and its `ctl` said its file's name
//! whatever its cluster was named.

use crate::library_examples::example;
use crate::util;

use std::process::Command;
use std::time::Duration;

use util::control::control_path;
use util::operator::cmdline;
use util::ops::{metrics_addr, samples, scrape};
use util::procs::run_command_to_exit;
use util::*;

/// How long a stopped cluster may take to exit, and a `ctl` to answer.
const EXITS_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn a_programs_json_lines_carry_its_name() {
    let mut s = Server::start_command(Command::new(example("own_flags")), &["--workers", "1", "--log-format", "json"]);
    s.wait_workers_ready(1, START_TIMEOUT);
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit(EXITS_WITHIN).success());
    let raw = s.raw_log();
    assert!(raw.len() >= 3, "{raw:?}");
    for line in &raw {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        assert_eq!(v["program"].as_str(), Some("own_flags"), "its name, not ringmaster's nor none: {line}");
    }
}

#[test]
fn a_programs_metrics_keep_their_names_and_label_its_name() {
    let s = Server::start_command(Command::new(example("own_flags")), &["--workers", "1", "--metrics", "127.0.0.1:0"]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let page = scrape(metrics_addr(&s));
    let all = samples(&page);
    let info: Vec<_> = all.iter().filter(|sample| sample.name == "ringmaster_info").collect();
    assert_eq!(info.len(), 1, "{page}");
    assert_eq!(info[0].labels.get("program").map(String::as_str), Some("own_flags"), "{page}");
    // The families keep their names and labels: a dashboard made for the binary reads them.
    assert!(all.iter().all(|sample| sample.name.starts_with("ringmaster_") || sample.name.starts_with("process_")));
    assert!(all.iter().any(|sample| sample.name == "ringmaster_worker_requests_total"), "{page}");
    let with_program = all.iter().filter(|sample| sample.labels.contains_key("program")).count();
    assert_eq!(with_program, 1, "the label on ringmaster_info alone: {page}");
}

/// `own_flags` with `$CLUSTER_NAME=myapp` (its cluster named after the parse),
/// running `args` to its exit: (code, stdout, stderr).
fn myapp(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(example("own_flags"));
    cmd.args(args).env("CLUSTER_NAME", "myapp");
    let (status, stdout, stderr) = run_command_to_exit(cmd, EXITS_WITHIN);
    (status.code(), stdout, stderr)
}

#[test]
fn a_name_given_after_the_parse_reaches_the_programs_ctl() {
    let path = control_path("myapp", "ctl");
    let _ = std::fs::remove_file(&path);
    let at = path.to_str().expect("a UTF-8 temporary path");

    let (code, stdout, stderr) = myapp(&["ctl", at, "status"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with(&format!("myapp ctl: cannot connect to {at}")), "the cluster's name: {stderr}");
    let (code, _, stderr) = myapp(&["ctl", at, "status", "--count", "2"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr, "myapp ctl: --count goes with top only (see myapp ctl --help)\n");

    let mut cmd = Command::new(example("own_flags"));
    cmd.env("CLUSTER_NAME", "myapp");
    let s = Server::start_command(cmd, &["--workers", "1", "--control", at]);
    s.wait_workers_ready(1, START_TIMEOUT);
    assert_eq!(cmdline(s.pid()), ["myapp: master"], "its titles say the name too");
    let (code, stdout, stderr) = myapp(&["ctl", at, "top", "--count", "1"]);
    assert_eq!(code, Some(0), "ctl top: {stderr}");
    let title = stdout.lines().next().unwrap_or_default();
    assert!(title.contains(&format!(" myapp top: {at}")), "its top's title: {stdout}");
    drop(s);
    let _ = std::fs::remove_file(&path);
}
