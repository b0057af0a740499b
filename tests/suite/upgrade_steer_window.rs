//! `reuseport --steer load` while an upgrade's new master starts. A
//! listener sits in one socket array at a time, and the old master's maps
//! hold every listener until it hands over; a new master that attaches its
//! own program as it starts (a group runs one) leaves every connection of
//! that window, up to `--shutdown-timeout`, to the kernel's hash: a stopped
//! worker's share waits in its queue until the old master sees it and takes
//! it, 20 ms or more each. Here the old master's worker 2 is stopped (and
//! marked stalled) and the new master's worker 2 never gets ready, so
//! nothing accepts on listener 2 but the old master's rescue: what reaches
//! that listener in the window is counted in the old master's `rescued`.
//! Loading BPF needs root: without it the test says so and passes.

use crate::util;

use std::time::Duration;

use util::control::{status, Control};
use util::load::close_request;
use util::procs::stop;
use util::upgrade::{replace_by_rename, status_when, Replacement, SteeredBed};
use util::*;

/// Worker `id` (1-based) in a status.
fn worker_of(status: &serde_json::Value, id: u64) -> serde_json::Value {
    let workers = status["workers"].as_array().cloned().unwrap_or_default();
    let worker = workers.into_iter().find(|w| w["id"].as_u64() == Some(id));
    worker.unwrap_or_else(|| panic!("no worker {id} in {status}"))
}

/// A count of worker `id` in a status.
fn count_of(status: &serde_json::Value, id: u64, key: &str) -> u64 {
    let count = worker_of(status, id)[key].as_u64();
    count.unwrap_or_else(|| panic!("worker {id}'s {key:?} in {status}"))
}

#[test]
fn while_a_new_master_starts_the_old_masters_program_keeps_steering_by_load() {
    let Some(bed) = SteeredBed::new("upgrade-steer-window") else { return };
    let (dir, binary, real, control) = (&bed.dir, bed.binary.clone(), bed.real.clone(), bed.control.clone());
    // The window: the new master is given up only after this long.
    let mut s = bed.start(&["--shutdown-timeout", "20"]);
    let ready = status_when(&control, 2, |w| w["steer"].is_u64());
    let victim = count_of(&ready, 2, "pid") as u32;
    let stopped = stop(victim);
    let marked = eventually(Duration::from_secs(10), || worker_of(&status(&control), 2)["steer"] == "stalled");
    assert!(marked, "the stopped worker 2 is marked stalled: {}", status(&control));

    // A real new master whose worker 2 (stats slot 1) never gets ready.
    let script = format!("#!/bin/sh\nRINGMASTER_FAULT=never-ready:1 exec {} \"$@\"\n", real.display());
    replace_by_rename(&binary, Replacement::Script(&script));
    let mut upgrade = Control::connect(&control);
    upgrade.send(b"upgrade\n");
    // Its worker 2 says so once the new master has set its listeners up.
    s.wait_for_log(|l| l.contains("never-ready:1: not serving"), Duration::from_secs(20));

    const CONNECTIONS: u64 = 40;
    let before = status(&control);
    for i in 0..CONNECTIONS {
        close_request(s.addr()).unwrap_or_else(|e| panic!("connection {i} in the upgrade's window: {e}"));
    }
    let after = status(&control);
    let given_up = s.log().iter().any(|l| l.contains("upgrade failed"));
    assert!(!given_up, "the connections were sent within the window; log:\n{}", s.raw_log().join("\n"));
    let delta = |id, key| count_of(&after, id, key) - count_of(&before, id, key);
    let (steered, to_stopped) = (delta(1, "steered") + delta(2, "steered"), delta(2, "rescued"));
    eprintln!(
        "in the upgrade's window, of {CONNECTIONS} connections: {steered} placed by the old master's program, \
         {to_stopped} reached the stopped worker's listener (taken from it by the old master); {after}"
    );
    assert!(
        to_stopped <= 1,
        "{to_stopped} of {CONNECTIONS} connections in the upgrade's window reached the stopped worker's listener \
         ({steered} placed by the old master's program): {after}"
    );
    assert!(steered >= CONNECTIONS, "the old master's program placed {steered} of {CONNECTIONS}: {after}");

    drop(stopped);
    s.signal(libc::SIGTERM);
    let reply = upgrade.line();
    assert!(reply.starts_with("error: upgrade failed"), "{reply}");
    assert_eq!(s.wait_exit(Duration::from_secs(30)).code(), Some(0));
    assert!(eventually(Duration::from_secs(5), || dir.running().is_empty()), "left: {:?}", dir.running());
}

/// The sum of a count over the workers of a status.
fn total(status: &serde_json::Value, key: &str) -> u64 {
    let workers = status["workers"].as_array().cloned().unwrap_or_default();
    workers.iter().filter_map(|w| w[key].as_u64()).sum()
}

/// An old master killed after it started its new master never takes the
/// listeners out of its maps, and its program stays on the group, holding
/// them: the new master, which leaves the old master's program on while it
/// takes over, puts its own on once it has served a moment, and steers by
/// load from then on.
#[test]
fn a_new_master_whose_old_master_was_killed_steers_by_load_once_it_serves() {
    let Some(bed) = SteeredBed::new("upgrade-steer-orphan") else { return };
    let (dir, binary, real, control) = (&bed.dir, bed.binary.clone(), bed.real.clone(), bed.control.clone());
    let mut old = bed.start(&[]);
    status_when(&control, 2, |w| w["steer"].is_u64());
    // The old master dies with its program on the group; once this script
    // is another's child, it becomes the new master.
    let script = format!(
        "#!/bin/sh\nold=$PPID\nkill -9 \"$old\"\nwhile [ \"$(cut -d' ' -f4 /proc/$$/stat)\" = \"$old\" ]; do sleep \
         0.01; done\nexec {} \"$@\"\n",
        real.display()
    );
    replace_by_rename(&binary, Replacement::Script(&script));
    let old_pid = old.pid();
    old.signal(libc::SIGUSR2);
    let status_of_old = old.wait_exit(Duration::from_secs(15));
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status_of_old), Some(libc::SIGKILL));
    let taking = format!("upgrade: taking over from pid {old_pid}:");
    let line = old.wait_for_log(|l| l.contains(&taking), Duration::from_secs(15));
    assert!(!line.is_empty());
    let steers = old.wait_for_log(|l| l.starts_with("reuseport: this master's steering program steers"), START_TIMEOUT);
    assert!(steers.contains("in place of the old master's"), "{steers}");
    status_when(&control, 2, |w| w["steer"].is_u64());

    const CONNECTIONS: u64 = 40;
    let before = total(&status(&control), "steered");
    for i in 0..CONNECTIONS {
        close_request(old.addr()).unwrap_or_else(|e| panic!("connection {i} to the new master: {e}"));
    }
    let mut last = serde_json::Value::Null;
    let counted = eventually(Duration::from_secs(5), || {
        last = status(&control);
        total(&last, "steered") >= before + CONNECTIONS
    });
    assert!(counted, "the new master's program placed {} of {CONNECTIONS}: {last}", total(&last, "steered") - before);
    let (code, out, err) = util::control::ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"), "{err}");
    assert!(eventually(Duration::from_secs(15), || dir.running().is_empty()), "left: {:?}", dir.running());
}
