//! A program of your own names itself wherever the binary says `ringmaster`
//! to a machine: in its JSON log lines (`"program":"NAME"`, as its text
//! lines say `NAME[PID]:`). Until 2026-12-08 its JSON lines named no
//! program.

use crate::library_examples::example;
use crate::util;

use std::process::Command;
use std::time::Duration;

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
