//! A program of your own names itself wherever the binary says `ringmaster`
//! to a machine: in its JSON log lines (`"program":"NAME"`, as its text
//! lines say `NAME[PID]:`) and in its metrics (`ringmaster_info{program=
//! "NAME"}`, the families keeping their `ringmaster_` names). Until
//! 2026-12-08 its JSON lines and metrics named no program.

use crate::library_examples::example;
use crate::util;

use std::process::Command;
use std::time::Duration;

use util::ops::{metrics_addr, samples, scrape};
use util::*;

/// How long a stopped cluster may take to exit.
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
