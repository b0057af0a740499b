//! The command line as an operator meets it: how many workers run and where
//! (`--cpus`, `--workers`, the default), one-line errors that name what is
//! wrong, `--body` escapes and `--body-file`, and `--help` listing every flag with its default.

use crate::util;
use crate::util::operator;

use std::process::Command;
use std::time::Duration;

use operator::*;
use util::*;

// --- how many workers, where -----------------------------------------------------------

/// The CPUs this test process may run on, from `sched_getaffinity(2)` (what `nproc` counts).
fn affinity() -> Vec<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).expect("sched_getaffinity");
    (0..nix::sched::CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false)).collect()
}

/// A process that inherited a worker's environment but whose parent is not
/// the master that set it (a subprocess a worker's handler starts) is not
/// that worker: started as the binary, it runs as a master and serves.
/// Until 2026-12-06 it took itself for worker 1 and exited 1 (`fd 3 was not
/// passed by the master`).
#[test]
fn a_process_that_inherited_a_workers_environment_runs_as_a_master() {
    // Pid 1 is never this test's child's parent.
    let s = Server::start_with_env(
        &["--workers", "1"],
        &[("RINGMASTER_WORKER_ID", "1"), ("RINGMASTER_MASTER_PID", "1"), ("RINGMASTER_STATS_SLOTS", "1")],
    );
    s.wait_workers_ready(1, START_TIMEOUT);
    let mut client = s.connect();
    client.get_ok();
}

#[test]
fn one_worker_per_cpu_by_default() {
    let allowed = affinity();
    assert_eq!(allowed, cpus_allowed(std::process::id()), "sched_getaffinity against /proc");
    if ringmaster_engine::cgroup::cpu_quota().is_some_and(|q| q.workers() < allowed.len()) {
        eprintln!("skipped: this process's CPU limit lowers the default (operator_cpu_limit.rs)");
        return;
    }
    let s = Server::start(&[]);
    let stats = stats_when_ready(&s);
    let workers = worker_pids_and_cpus(&stats);
    assert_eq!(workers.len(), allowed.len(), "one worker per CPU the process may use ({allowed:?}): {stats}");
    for ((pid, cpu), want) in workers.iter().zip(&allowed) {
        assert_eq!(*cpu, Some(*want as u64), "{stats}");
        assert_eq!(cpus_allowed(*pid), vec![*want], "worker pid {pid}");
    }
}

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

/// `--steer` picks among `reuseport`'s listeners: with another mode (the
/// default's too) it is a conflict of arguments, told as clap tells one,
/// with code 2 (before: the master's own error, code 1).
#[test]
fn steer_without_reuseport_is_a_usage_error() {
    for args in [&["--steer", "load"][..], &["--mode", "rr", "--steer", "hash"][..]] {
        let (code, line) = expect_one_line_error(args);
        assert_eq!(code, 2, "{args:?}: {line}");
        assert!(line.contains("--steer applies to --mode reuseport only") && line.contains("--help"), "{line}");
    }
}

/// Zero turns `--watchdog` and `--drain-delay` off however it is written
/// (before: `0` did, `0.0` was refused as not more than 0).
#[test]
fn zero_in_any_spelling_turns_off_the_watchdog_and_the_drain_delay() {
    let s = Server::start(&["--workers", "1", "--watchdog", "0.0", "--drain-delay", "0.00"]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let (code, line) = expect_one_line_error(&["--watchdog", "0.5x"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("or 0 for none"), "the error says zero is allowed: {line}");
}

/// A listed CPU this process may not run on is one line that names the
/// flag. The master finds it just after its io_uring probe (code 1, as an
/// unreadable `--body-file`; `reliability_address_space` counts on it
/// coming there). Until 2026-12-07 the line did not say `--cpus`.
#[test]
fn a_cpu_this_process_may_not_run_on_is_named_with_its_flag() {
    let beyond = affinity().last().map_or(0, |cpu| cpu + 1).to_string();
    let (code, line) = expect_one_line_error(&["--cpus", &beyond]);
    assert_eq!(code, 1, "{line}");
    assert!(line.starts_with(&format!("--cpus: CPU {beyond} is not available to this process")), "{line}");
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
    assert!(line.contains("'foo'") && line.contains("[possible values: rr, least, shared, reuseport]"), "{line}");

    let (code, line) = expect_one_line_error(&["--mod", "rr"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("'--mod'") && line.contains("'--mode'"), "keeps clap's tip: {line}");

    // More workers than the master has room for is a usage error, with the
    // bound the master keeps (half its slots: a reload starts each worker's
    // new process beside the old one), not a larger one the master refuses.
    let (code, line) = expect_one_line_error(&["--workers", "600"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("'600'") && line.contains("1..=512"), "{line}");

    // A host name is not looked up: the error shows what an address looks like.
    let (code, line) = expect_one_line_error(&["--bind", "localhost:8080"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("'localhost:8080'") && line.contains("[::]:8080") && line.contains("--bind"), "{line}");

    // IPv6 needs its brackets and, as IPv4, a port.
    for portless in ["::1", "[::1]", "127.0.0.1"] {
        let (code, line) = expect_one_line_error(&["--bind", portless]);
        assert_eq!(code, 2, "{line}");
        assert!(line.contains(&format!("'{portless}'")) && line.contains("[::]:8080"), "{line}");
    }
    // A link-local address without its interface: said so, not the
    // kernel's bare "Invalid argument" (until 2026-12-07).
    let (code, line) = expect_one_line_error(&["--bind", "[fe80::1]:8080", "--workers", "1"]);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("link-local") && line.contains("[fe80::1%eth0]:8080"), "{line}");
    // Its interface by name, as `ip` writes it, or an unknown name said so.
    let (_, line) = expect_one_line_error(&["--bind", "[fe80::1%lo]:0", "--workers", "1"]);
    assert!(line.contains("cannot listen on [fe80::1%1]:0"), "lo is interface 1: {line}");
    let (code, line) = expect_one_line_error(&["--bind", "[fe80::1%ringmaster-none]:0"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("no interface named 'ringmaster-none'"), "{line}");
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

// --- --body-file -------------------------------------------------------------------------

/// A body file's bytes: `len` of them, none of them alike in a row, `salt`
/// telling two contents apart.
fn body_file_bytes(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

/// `--body-file` serves a body longer than an argument may be (the kernel
/// refuses one over 128 KiB), byte for byte; a `reload` serves what the
/// file holds then, each new worker reading it as it starts.
#[test]
fn a_body_file_is_served_whole_and_a_reload_reads_it_again() {
    let dir = std::env::temp_dir().join(format!("ringmaster-body-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body");
    let first = body_file_bytes(300_000, 0);
    std::fs::write(&file, &first).unwrap();
    let path = util::control::control_path("cli", "body-file");
    let _ = std::fs::remove_file(&path);
    let (file_arg, control) = (file.to_str().unwrap(), path.to_str().unwrap());
    let s = Server::start(&["--workers", "1", "--body-file", file_arg, "--control", control]);
    let r = s.connect().request(GET);
    assert_eq!((r.status, r.header("content-length")), (200, Some("300000")), "{:?}", r.headers);
    assert!(r.body == first, "the body differs from the file's {} bytes ({} arrived)", first.len(), r.body.len());

    let second = body_file_bytes(5_000, 0x5a);
    std::fs::write(&file, &second).unwrap();
    let mark = s.log_len();
    let (code, out, err) = util::control::ctl(&path, &["reload"]);
    assert_eq!(code, 0, "reload: {out} {err}");
    s.wait_for_log_from(mark, |l| l == "reload: done (1 worker replaced)", Duration::from_secs(10));
    let r = s.connect().request(GET);
    assert_eq!((r.status, r.header("content-length")), (200, Some("5000")), "{:?}", r.headers);
    assert!(r.body == second, "after the reload, the file's new content ({} arrived)", r.body.len());
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_body_file_that_cannot_be_served_is_one_error_line() {
    let missing = std::env::temp_dir().join(format!("ringmaster-no-such-body-{}", std::process::id()));
    let missing = missing.to_str().unwrap();
    let (code, line) = expect_one_line_error(&["--body-file", missing]);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains(&format!("--body-file {missing}: cannot open it: No such file")), "{line}");
    let dir = std::env::temp_dir();
    let (code, line) = expect_one_line_error(&["--body-file", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{line}");
    assert!(line.ends_with("not a regular file"), "{line}");
    let (code, line) = expect_one_line_error(&["--body-file", missing, "--body", "x"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("--body-file") && line.contains("--body <BODY>"), "{line}");
}

// --- --help ------------------------------------------------------------------------------

/// A `#[arg(long ...)]` field of bin/cli.rs or bin/cli/flags.rs: its flag and, if the attribute
/// gives one, its default as the help should print it.
#[derive(Debug)]
struct SourceFlag {
    flag: String,
    default: Option<String>,
}

/// Every `#[arg(long ...)]` field in bin/cli.rs (the binary's own) and
/// bin/cli/flags.rs (the cluster's), read from the source.
fn flags_in_source() -> Vec<SourceFlag> {
    let source = [include_str!("../../bin/cli.rs"), include_str!("../../bin/cli/flags.rs")].join("\n");
    let mut flags = Vec::new();
    let mut lines = source.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if !line.starts_with("#[arg(") {
            continue;
        }
        let mut attribute = line.to_string();
        while !attribute.ends_with(")]") {
            attribute.push(' ');
            attribute.push_str(lines.next().expect("an attribute that ends"));
        }
        let words: Vec<&str> = attribute["#[arg(".len()..attribute.len() - 2].split(',').map(str::trim).collect();
        let Some(long) = words.iter().find(|w| **w == "long" || w.starts_with("long =")) else { continue };
        // The field follows its attributes and comments.
        let field = lines.by_ref().find(|l| !l.starts_with("#[") && !l.starts_with("//")).expect("a field");
        let name = field.split(':').next().unwrap().trim().trim_start_matches("pub ");
        let flag = match long.split_once('=') {
            Some((_, given)) => given.trim().trim_matches('"').to_string(),
            None => name.replace('_', "-"),
        };
        let default = words.iter().find_map(|w| {
            let (key, value) = w.split_once('=')?;
            let value = value.trim();
            match key.trim() {
                "default_value" => Some(value.trim_start_matches('r').trim_matches('"').to_string()),
                // Numbers as clap prints them; an enum variant by its value name.
                "default_value_t" => Some(match value.rsplit_once("::") {
                    Some((_, variant)) => variant.to_lowercase(),
                    None => value.replace('_', ""),
                }),
                _ => None,
            }
        });
        flags.push(SourceFlag { flag: format!("--{flag}"), default });
    }
    flags
}

/// `--help` as entries: each starts at a line naming a flag (`  -h, --help`,
/// `      --bind <BIND>`) and runs to the next; keyed by the long flag.
fn help_entries(help: &str) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let names_a_flag = trimmed.starts_with("--") || (trimmed.starts_with('-') && trimmed.contains(", --"));
        if line.starts_with("  ") && names_a_flag && !line.starts_with("           ") {
            let flag = trimmed[trimmed.find("--").unwrap()..].split([' ', '=']).next().unwrap().to_string();
            entries.push((flag, line.to_string()));
        } else if let Some((_, text)) = entries.last_mut() {
            text.push('\n');
            text.push_str(line);
        }
    }
    entries
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let output = Command::new(BIN).arg("--help").output().expect("run --help");
    assert!(output.status.success(), "--help exited with {}", output.status);
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let entries = help_entries(&help);
    let source = flags_in_source();
    assert!(source.len() >= 15, "the source parse found too few flags: {source:?}");
    for SourceFlag { flag, default } in &source {
        let (_, entry) = entries
            .iter()
            .find(|(f, _)| f == flag)
            .unwrap_or_else(|| panic!("--help has no line for {flag}; help:\n{help}"));
        if let Some(default) = default {
            let shown = [format!("[default: {default}]"), format!("[default: \"{default}\"]")];
            assert!(shown.iter().any(|s| entry.contains(s)), "{flag} must show its default {shown:?}: {entry}");
        }
    }
    for (flag, _) in &entries {
        let known = source.iter().any(|s| &s.flag == flag) || ["--help", "--version"].contains(&flag.as_str());
        assert!(known, "--help lists {flag}, which the source parse missed");
    }
    // Flags whose default is computed, or that are off unless given, say so
    // in words (a switch, which takes no value, is off unless given).
    for (flag, entry) in &entries {
        if ["--help", "--version", "--no-pin"].contains(&flag.as_str()) {
            continue;
        }
        assert!(entry.contains("[default: "), "{flag} says what it defaults to: {entry}");
    }
}
