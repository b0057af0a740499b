//! `ringmaster ctl PATH status --table` and `ringmaster ctl PATH top`: the
//! status line drawn for people, as `pm2 list` does; `top` redraws it once a
//! second, `--count N` times, or until the master goes away.

use crate::util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use util::control::{control_path, ctl, status};
use util::stats::{num, stats_when_idle};
use util::*;

const COLUMNS: [&str; 10] = ["id", "pid", "cpu", "state", "uptime", "restarts", "live", "requests", "req/s", "memory"];

/// The cells of a table row (`│ a │ b │`), trimmed.
fn cells(row: &str) -> Vec<String> {
    row.trim_matches('│').split('│').map(|c| c.trim().to_string()).collect()
}

/// Checks a table's shape and returns its data rows' cells.
fn check_table(table: &str, workers: usize) -> Vec<Vec<String>> {
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("mode rr · backend "), "summary first: {table}");
    assert!(lines[0].contains(&format!(" · {workers} worker")), "{table}");
    let boxed = &lines[1..];
    assert_eq!(boxed.len(), workers + 4, "top rule, header, rule, rows, bottom rule: {table}");
    let width = boxed[0].chars().count();
    for line in boxed {
        assert_eq!(line.chars().count(), width, "every line as wide as the others: {table}");
    }
    assert!(boxed[0].starts_with('┌') && boxed[2].starts_with('├') && boxed[workers + 3].starts_with('└'), "{table}");
    assert_eq!(cells(boxed[1]), COLUMNS, "{table}");
    // Column borders line up on every line.
    let borders = |line: &str| -> Vec<usize> {
        line.chars().enumerate().filter(|(_, c)| "│┬┼┴┌┐├┤└┘".contains(*c)).map(|(i, _)| i).collect()
    };
    for line in boxed {
        assert_eq!(borders(line), borders(boxed[0]), "aligned columns: {table}");
    }
    boxed[3..3 + workers].iter().map(|row| cells(row)).collect()
}

#[test]
fn status_table_shows_every_worker() {
    let path = control_path("table", "status");
    let _ = std::fs::remove_file(&path);
    let s = Server::start(&["--workers", "2", "--control", path.to_str().unwrap()]);
    s.wait_workers_ready(2, START_TIMEOUT);
    for _ in 0..2 {
        let mut c = s.connect();
        for _ in 0..5 {
            c.get_ok();
        }
    }
    stats_when_idle(&s);
    let line = status(&path);
    let (code, table, err) = ctl(&path, &["status", "--table"]);
    assert_eq!(code, 0, "{err}");
    eprintln!("{table}");
    let rows = check_table(&table, 2);
    for (row, w) in rows.iter().zip(line["workers"].as_array().unwrap()) {
        assert_eq!(row[0], w["id"].to_string());
        assert_eq!(row[1], w["pid"].to_string());
        assert_eq!(row[3], "ready");
        assert_eq!(row[5], "0", "restarts");
        assert_eq!(row[6], "0", "live");
        assert_eq!(row[7], num(w, "requests").to_string());
        assert!(row[9].ends_with("MiB") || row[9].ends_with("KiB"), "memory: {row:?}");
    }
    assert_eq!(rows.iter().map(|r| r[7].parse::<u64>().unwrap()).sum::<u64>(), 10);
    // --table goes with status only.
    let (code, _, err) = ctl(&path, &["reload", "--table"]);
    assert_eq!(code, 2, "{err}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn top_draws_count_frames() {
    let path = control_path("table", "top-count");
    let _ = std::fs::remove_file(&path);
    let s = Server::start(&["--workers", "1", "--control", path.to_str().unwrap()]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let (code, out, err) = ctl(&path, &["top", "--count", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains('\x1b'), "no ANSI codes when stdout is not a terminal: {out:?}");
    let frames: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(frames.len(), 2, "{out}");
    for frame in frames {
        let (title, table) = frame.split_once('\n').unwrap();
        assert!(title.contains(" ringmaster top: "), "{title}");
        check_table(table, 1);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn top_ends_when_the_master_goes_away() {
    let path = control_path("table", "top-gone");
    let _ = std::fs::remove_file(&path);
    let s = Server::start(&["--workers", "1", "--control", path.to_str().unwrap()]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let mut top = Command::new(BIN)
        .args(["ctl", path.to_str().unwrap(), "top"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start top");
    let (tx, rx) = mpsc::channel();
    let stdout = top.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(5)).expect("a first frame");
    assert!(first.contains(" ringmaster top: "), "{first}");
    let mut s = s;
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    // top notices at its next frame (a second at most) and ends: its stdout closes.
    let mut rest = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => rest.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = top.kill();
                panic!("top still running 5 s after its master exited: {rest:?}");
            }
        }
    }
    let status = top.wait().expect("top exits");
    assert!(status.success(), "{status}");
    assert!(rest.iter().any(|l| l.contains("the master is gone")), "{rest:?}");
    let _ = std::fs::remove_file(&path);
}
