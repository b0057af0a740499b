//! Processes recognisable in `ps`: the master's command line reads
//! `ringmaster: master`, each worker's `ringmaster: worker N` followed by the
//! master's original arguments (also for a worker started after the master
//! rewrote its own), and the thread names say which is which.

use crate::util;
use crate::util::operator;

use std::time::Duration;

use operator::*;
use util::*;

#[test]
fn master_and_workers_say_what_they_are() {
    let args = ["--workers", "2", "--body", r"titled\n"];
    let s = Server::start(&args);
    let stats = stats_when_ready(&s);

    assert_eq!(cmdline(s.pid()), ["ringmaster: master"], "the master's /proc/PID/cmdline");
    assert_eq!(comm(s.pid()), "ringmaster");

    // Server::start puts `--bind 127.0.0.1:0` first, and the suite's backend last.
    let mut original = vec!["--bind".to_string(), "127.0.0.1:0".to_string()];
    original.extend(args.iter().map(|a| a.to_string()));
    if let Some(backend) = test_backend() {
        original.extend(["--backend".to_string(), backend]);
    }
    let workers = worker_pids_and_cpus(&stats);
    assert_eq!(workers.len(), 2, "{stats}");
    for (k, (pid, _)) in workers.iter().enumerate() {
        let id = k + 1;
        let line = cmdline(*pid);
        assert_eq!(line[0], format!("ringmaster: worker {id}"), "worker {id} (pid {pid}): {line:?}");
        assert_eq!(line[1..], original[..], "worker {id} gets the master's original arguments");
        assert_eq!(comm(*pid), format!("rm-worker-{id}"));
    }
    // The arguments reached the workers intact: the body is the one asked for.
    assert_eq!(s.connect().request(GET).body, b"titled\n");

    // A worker started long after the master's title was set gets the same
    // arguments: they come from the copy taken at start, not from the (now
    // overwritten) argument area.
    let (old, _) = workers[0];
    let from = s.log_len();
    util::procs::kill(old, libc::SIGKILL);
    let (_, line) = s.wait_for_log_from(from, |l| l.starts_with("worker 1 restarted (pid "), Duration::from_secs(10));
    let pid: u32 = line["worker 1 restarted (pid ".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    let restarted = cmdline(pid);
    assert_eq!(restarted[0], "ringmaster: worker 1", "{restarted:?}");
    assert_eq!(restarted[1..], original[..], "the restarted worker's arguments");
    assert_eq!(cmdline(s.pid()), ["ringmaster: master"], "the master's title stays");
}

/// The binary copied under another file name (a benchmark's base binary,
/// `/tmp/rm-new`) is still titled as the binary: scripts find its master and
/// workers by `ringmaster: master` and `rm-worker-N`. Between 41b15f4 and
/// the fix the titles took the file's name (`rm-copy: master`), and
/// `scripts/soak.sh` found no master. Its log lines, which take the titles'
/// name, stay `ringmaster[PID]:` likewise (tests and scripts read them).
#[test]
fn the_binary_keeps_its_titles_under_another_file_name() {
    let dir = util::upgrade::TempDir::new("titles-copy");
    let copy = dir.join("rm-copy");
    util::upgrade::copy_for_exec(std::path::Path::new(BIN), &copy);
    let s = Server::start_binary(&copy, &["--workers", "1"]);
    let stats = stats_when_ready(&s);

    assert_eq!(cmdline(s.pid()), ["ringmaster: master"], "the master's /proc/PID/cmdline");
    assert_eq!(comm(s.pid()), "ringmaster");
    let workers = worker_pids_and_cpus(&stats);
    assert_eq!(workers.len(), 1, "{stats}");
    let (pid, _) = workers[0];
    assert_eq!(cmdline(pid)[0], "ringmaster: worker 1");
    assert_eq!(comm(pid), "rm-worker-1");
    let raw = s.raw_log();
    let from_master = raw.iter().filter(|l| l.contains(&format!(" ringmaster[{}]: ", s.pid()))).count();
    assert!(from_master > 0, "the master's lines are ringmaster's: {raw:#?}");
    for line in &raw {
        assert_eq!(parse_log_line(line).map(|l| l.program), Some("ringmaster"), "{line:?}");
    }
}
