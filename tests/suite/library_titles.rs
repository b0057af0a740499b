//! A program of your own built on the library goes by its own name in `ps`,
//! `top` and `pgrep`, as nginx's processes go by `nginx` and a Node
//! cluster's by `node`: its master is titled `NAME: master`, its workers
//! `NAME: worker N`, and every one of its threads is named `NAME`. Until
//! 2026-12-07 they were `ringmaster: master`, `ringmaster: worker N` and
//! `ringmaster`, `rm-worker-N`: `ps -C hello_cluster` found none of them.

use crate::library_examples::example;
use crate::util;
use crate::util::operator;

use std::process::Command;

use operator::*;
use util::*;

#[test]
fn a_library_program_titles_its_processes_with_its_own_name() {
    let mut cmd = Command::new(example("hello_cluster"));
    cmd.env("PORT", "0");
    let s = Server::start_command(cmd, &[]);
    let stats = stats_when_ready(&s);

    assert_eq!(cmdline(s.pid()), ["hello_cluster: master"], "the master's /proc/PID/cmdline");
    assert_eq!(comm(s.pid()), "hello_cluster", "the master's thread name");
    let workers = worker_pids_and_cpus(&stats);
    assert!(!workers.is_empty(), "{stats}");
    for (k, (pid, _)) in workers.iter().enumerate() {
        let id = k + 1;
        let line = cmdline(*pid);
        assert_eq!(line[0], format!("hello_cluster: worker {id}"), "worker {id} (pid {pid}): {line:?}");
        assert_eq!(comm(*pid), "hello_cluster", "worker {id}'s thread name");
    }
    assert_eq!(s.connect().request(GET).body, b"hello world\n");
}
