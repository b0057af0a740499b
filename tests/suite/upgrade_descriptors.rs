//! After an upgrade the new master holds the descriptors a master holds
//! (listener, control socket, stats, reserve, its workers' lanes): not the
//! readiness channel to its old master, once that master has read the
//! word and gone. Before, the new master kept its end open for its life
//! (to hear an old master that gives the upgrade up after the word): one
//! descriptor more after every upgrade (seen by `scripts/chaos.sh`, in every
//! mode on both backends: 31 where 30 were).

use crate::util;

use std::time::Duration;

use util::control::ctl;
use util::procs::open_fds;
use util::upgrade::{parse_new_master, status_when, wait_gone, TempDir};
use util::*;

#[test]
fn the_new_master_holds_what_the_old_one_held() {
    let dir = TempDir::new("upgrade-descriptors");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let mut old =
        Server::start_binary(&binary, &["--workers", "1", "--no-pin", "--control", control.to_str().expect("UTF-8")]);
    status_when(&control, 1, |_| true);
    let before = open_fds(old.pid());

    let (code, out, err) = ctl(&control, &["upgrade"]);
    assert!(code == 0 && out.starts_with("ok upgraded: pid "), "ctl upgrade: {out} {err}");
    let started = old.wait_for_log(|l| l.contains("upgrade: new master started (pid "), IO_TIMEOUT);
    let new_master = parse_new_master(&started).expect("the new master's pid");
    assert_eq!(old.wait_exit(Duration::from_secs(30)).code(), Some(0), "the old master exits 0");

    // The old master is gone: the new one lets go of the channel at its next tick.
    let settled = eventually(Duration::from_secs(10), || open_fds(new_master) == before);
    assert!(settled, "the new master holds {} descriptors, the old one held {before}", open_fds(new_master));
    let (code, out, _) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"));
    assert!(wait_gone(&[new_master], Duration::from_secs(15)).is_empty());
}
