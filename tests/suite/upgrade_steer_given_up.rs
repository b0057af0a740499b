//! `reuseport --steer load` and an upgrade given up. A new master
//! attaches its own steering program to the listeners' group (a group runs
//! one program) once its maps hold the listeners, or once it has served a
//! moment; until 2026-12-07 it attached it as it started, its maps empty
//! while the old master's held the listeners. A new master given up as it
//! took over may have attached it: when the old master gives the upgrade
//! up, its own program must steer again. Until 2026-12-07 the given-up
//! master's program stayed attached (the group kept it after that master
//! was gone): every connection went by the hash from then on, a stopped
//! worker's share waiting in its queue, while the status still showed the
//! loads the old master wrote to maps no program read.
//! Loading BPF needs root: without it the test says so and passes.

use crate::util;

use std::time::Duration;

use util::control::{ctl, status};
use util::load::close_request;
use util::upgrade::{replace_by_rename, running, status_when, Replacement, SteeredBed};
use util::*;

/// The connections the program sent to the workers, as a status shows them.
fn steered(status: &serde_json::Value) -> u64 {
    let workers = status["workers"].as_array().cloned().unwrap_or_default();
    workers.iter().filter_map(|w| w["steered"].as_u64()).sum()
}

#[test]
fn after_an_upgrade_given_up_the_old_masters_program_steers_again() {
    let Some(bed) = SteeredBed::new("upgrade-steer-given-up") else { return };
    let (dir, binary, real, control) = (&bed.dir, bed.binary.clone(), bed.real.clone(), bed.control.clone());
    let mut s = bed.start(&["--shutdown-timeout", "2"]);
    status_when(&control, 2, |w| w["steer"].is_u64());
    const CONNECTIONS: u64 = 40;
    let before = steered(&status(&control));
    for i in 0..CONNECTIONS {
        close_request(s.addr()).unwrap_or_else(|e| panic!("connection {i} before the upgrade: {e}"));
    }
    let counted = eventually(Duration::from_secs(5), || steered(&status(&control)) >= before + CONNECTIONS);
    assert!(counted, "the program steers before the upgrade: {}", status(&control));

    // A real new master, which loads its program, whose first worker never
    // gets ready: the old master gives it up after 2 s.
    let script = format!("#!/bin/sh\nRINGMASTER_FAULT=never-ready:0 exec {} \"$@\"\n", real.display());
    replace_by_rename(&binary, Replacement::Script(&script));
    let upgrade = {
        let control = control.clone();
        std::thread::spawn(move || ctl(&control, &["upgrade"]))
    };
    // Once the new master has loaded its program: the old master's still
    // steers (the new one's goes on at the hand-over), and the status says so.
    let mut new_master = None;
    let attached = eventually(Duration::from_secs(10), || {
        new_master = new_master.or_else(|| s.raw_log().iter().find_map(|l| util::upgrade::parse_new_master(l)));
        new_master.is_some_and(|pid| {
            let line =
                |l: &String| l.contains("an eBPF program steers each connection") && l.contains(&format!("[{pid}]"));
            s.raw_log().iter().any(line)
        })
    });
    assert!(attached, "the new master loaded its program; log:\n{}", s.raw_log().join("\n"));
    let during = status(&control);
    assert_eq!(during["steer"], "load", "the old master's program steers until the hand-over: {during}");
    let (code, out, _) = upgrade.join().expect("the upgrade's ctl");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("was not ready within"), "{out}");
    let new_master = new_master.expect("the new master's pid in the log");
    assert!(eventually(Duration::from_secs(10), || !running(new_master)), "the new master is gone");
    let attached = s
        .raw_log()
        .iter()
        .any(|l| l.contains("an eBPF program steers each connection") && l.contains(&format!("[{new_master}]")));
    assert!(attached, "the new master loaded its program; log:\n{}", s.raw_log().join("\n"));

    let back = eventually(Duration::from_secs(5), || {
        s.log().iter().any(|l| l.starts_with("reuseport: this master's steering program steers again"))
    });
    assert!(back, "the old master says its program steers again; log:\n{}", s.raw_log().join("\n"));
    assert_eq!(status(&control)["steer"], "load", "its program is back on the group");
    // The old master serves on, and its program places every new connection.
    let before = steered(&status(&control));
    for i in 0..CONNECTIONS {
        close_request(s.addr()).unwrap_or_else(|e| panic!("connection {i} after the upgrade failed: {e}"));
    }
    let mut last = serde_json::Value::Null;
    let counted = eventually(Duration::from_secs(5), || {
        last = status(&control);
        steered(&last) >= before + CONNECTIONS
    });
    assert!(
        counted,
        "after the upgrade was given up the program sent {} of {CONNECTIONS} new connections: {last}; log:\n{}",
        steered(&last) - before,
        s.raw_log().join("\n")
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(Duration::from_secs(15)).code(), Some(0));
    assert!(eventually(Duration::from_secs(5), || dir.running().is_empty()), "left: {:?}", dir.running());
}
