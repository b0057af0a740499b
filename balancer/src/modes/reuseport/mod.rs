//! `reuseport`: every worker accepts on a `SO_REUSEPORT` listener of its own,
//! and the kernel spreads connections over the group by a hash of each
//! connection's addresses and ports: no master in the path, no shared queue.
//! The master creates and keeps one listener per worker slot (worker id), and
//! hands it to whichever process runs that slot: a restart or a reload loses
//! nothing queued on it, since the master's copy keeps it open. Retiring a
//! slot (scale-down) sets its listener aside (`set_aside.rs`): out of the
//! steering maps, kept by the master while the retiring worker takes its
//! queue as its drain begins; once no process of it will accept there the
//! master stops the handshakes on it, takes what waits, hands it on, and
//! shuts it, and what was mid-handshake moves to the other listeners when
//! `net.ipv4.tcp_migrate_req` is 1 ([`enable_migration`]; the kernel counts
//! `TCPMigrateReqSuccess` and `TCPMigrateReqFailure` in /proc/net/netstat).
//!
//! The hash is blind to load: a stalled or full worker's share waits in its
//! queue. With `--steer load` an eBPF `SK_REUSEPORT` program ([`crate::bpf`])
//! chooses instead, from two random workers the less loaded available one.
//! The program counts each connection it sends to a listener and each
//! worker counts what it accepts there (its accept tally), so what waits
//! unaccepted weighs on the choice at once, one connection at a time.
//! Every [`STEER_EVERY`] the master hands this mode each worker's facts and
//! it writes the program's load map: live connections, or "unavailable" for
//! a worker that is not ready, draining or full, or "stalled" for one whose
//! heartbeat is stale or that left its queue waiting past [`ACK_GRACE`](super::ACK_GRACE)
//! without accepting anything. It also evens the counts out with the accept
//! queue where they strayed (a SYN dropped after the program counted it).
//! What already waits on a stalled worker's listener, sent there before its
//! wait counted, would wait for it to run again, and what waits on a full
//! one (placed by the kernel's hash while every worker was full) until it
//! has room: the master takes it (it holds every slot's listener; in a
//! round no more than `--backlog` leaves it) and hands it to a worker that
//! takes connections, over the lanes as `rr` does, counting it accepted
//! for the program; a stalled worker stays
//! passed over until its loop turns again. A listener an old master handed
//! down and still holds in its maps (an upgrade, until it hands over) is
//! shared with that master's worker of the slot: this master neither judges
//! its own worker there by the queue nor takes from a queue while no worker
//! its program steers to could take what it takes; nor does its program go
//! on the group (a group runs one) while that master's maps hold the
//! listeners: the old master's steers them by load until it hands over.
//! A listener leaves the program's maps when its slot is retired, and, the
//! program loaded for `SELECT_OR_MIGRATE`, what is queued on it when it
//! closes moves to a listener the program picks.

mod load;
mod maps;
mod migration;
mod round;
mod set_aside;
mod steer_choice;
mod take;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use ringmaster_engine::drop_all_but_syns;

use load::Sample;
pub use migration::enable_migration;
pub use set_aside::LetGo;
use set_aside::{let_go_after_wait, SetAside};
pub use steer_choice::choose_steering;

use super::least::Least;
use super::{Accepting, Balance, ListenAt, RescuePaused, RouteFacts, SlotFacts, SteerView, WorkerListener};
use crate::bpf::Steering;
use crate::config::Mode;
use crate::listener::listen_reuseport;

/// How often the load map is refreshed with `--steer load`: a few syscalls
/// per worker each time, on a master with nothing else in the accept path.
pub const STEER_EVERY: Duration = Duration::from_millis(5);

/// How long a new master that took over leaves an old master's program on
/// the group while that master's maps still hold listeners: the old master
/// takes them out as it reads the new one's word (then this one's program
/// goes on at its next refresh); one gone without a hand-over (killed)
/// never does, and its program steers by loads no one writes.
const OLD_MASTER_LETS_GO: Duration = Duration::from_millis(500);

/// The per-slot listeners, by worker id, and the steering program if any.
#[derive(Debug)]
pub struct Reuseport {
    at: ListenAt,
    listeners: BTreeMap<usize, OwnedFd>,
    /// Retired slots' listeners, until the master lets go of them.
    set_aside: BTreeMap<usize, SetAside>,
    /// Set-aside listeners let go of once the packets in flight are past
    /// (`stop_set_aside_handshakes`): kept apart, whatever comes meanwhile,
    /// oldest first. A worker id may have two here: scaled down, up and
    /// down again within one wait (until 2026-12-08 the second replaced
    /// the first, closed with its queue unanswered).
    handshakes_stopped: Vec<(usize, SetAside)>,
    steer: Option<LoadSteer>,
    /// Picks the worker that takes a connection the master took from the
    /// queue of a worker that cannot take it: the least loaded, as `least`
    /// judges it.
    hand_on: Least,
    /// This master handed its listeners to a new one (an upgrade): that
    /// master's steering is the group's now.
    handed_over: bool,
    /// The old master whose program steers the group until this one's goes
    /// on, if an upgrade started this master.
    predecessor: Predecessor,
}

/// An old master's part in when a new master's program goes on the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Predecessor {
    /// None: this master was not started by an upgrade, or its program is on.
    None,
    /// This master takes over: the old master's program steers to the
    /// listeners by load, from its maps, until it hands over.
    Serving,
    /// This master took over: the old master takes the listeners out of its
    /// maps as it hands over; gone without handing over (killed), it never
    /// does, and its program is replaced at `replace_at` whatever this
    /// master's maps hold then.
    HandingOver { replace_at: Instant },
}

/// `--steer load`: the program and what was last seen of each slot.
#[derive(Debug)]
struct LoadSteer {
    steering: Steering,
    /// The program is attached to the group.
    attached: bool,
    /// Each slot's accept queue and accepted count at the last look.
    last: BTreeMap<usize, Sample>,
    /// A listener that could not enter the maps was logged.
    insert_failed_logged: bool,
    /// The program could not be attached, and the log said so: said once
    /// until an attach succeeds (each refresh tries again, every 5 ms).
    attach_failed_logged: bool,
    /// Workers with connections waiting that they cannot take (stalled, or
    /// beyond their room), how many, and whether stalled, at this look.
    stuck: Vec<(usize, u32, bool)>,
    /// Where in `stuck` the next round's takes begin: each round starts one
    /// further on, so a budget smaller than what waits is shared out in
    /// turn instead of always going to the lowest worker id first.
    rescue_turn: usize,
}

impl Reuseport {
    /// The listeners an old master handed down (`upgrade`), by worker id;
    /// any other is made when its slot's first process starts. With
    /// `steering`, connections are steered by load. `taking_over`: an old
    /// master started this one and serves until it hands over.
    pub fn new(
        at: ListenAt,
        handed: Vec<(usize, OwnedFd)>,
        steering: Option<Steering>,
        taking_over: bool,
    ) -> Reuseport {
        let steer = steering.map(|steering| LoadSteer {
            steering,
            attached: false,
            last: BTreeMap::new(),
            insert_failed_logged: false,
            attach_failed_logged: false,
            stuck: Vec::new(),
            rescue_turn: 0,
        });
        let mut mode = Reuseport {
            at,
            listeners: handed.into_iter().collect(),
            set_aside: BTreeMap::new(),
            handshakes_stopped: Vec::new(),
            steer,
            hand_on: Least::default(),
            handed_over: false,
            predecessor: if taking_over { Predecessor::Serving } else { Predecessor::None },
        };
        mode.enter_maps();
        mode
    }
}

impl Balance for Reuseport {
    fn mode(&self) -> Mode {
        Mode::Reuseport
    }

    /// What it takes from a stalled or full worker's queue goes on by
    /// `least`'s rule, which weighs it.
    fn weighs_delay(&self) -> bool {
        self.hand_on.weighs_delay()
    }

    fn accepting(&self) -> Accepting {
        Accepting::OwnListeners
    }

    fn worker_listener(&mut self, worker: usize) -> io::Result<WorkerListener<'_>> {
        // A worker id scaled away and back before the master let go of its
        // listener (a worker with no process left is removed at once, and a
        // scale-up reuses its id): that listener is still in the group, and
        // what the kernel sent it waits there. Until 2026-12-07 the new
        // worker got a new listener and the set-aside one stayed, never let
        // go of while the new worker served, its share of clients unanswered.
        if let Some(set_aside) = self.set_aside.remove(&worker) {
            self.listeners.insert(worker, set_aside.listener);
            self.enter_maps();
        }
        if !self.listeners.contains_key(&worker) {
            let listener = listen_reuseport(self.at.local, self.at.backlog)?;
            self.listeners.insert(worker, listener);
            self.enter_maps();
        }
        let listener = self.listeners.get(&worker).ok_or_else(|| io::Error::other("listener vanished"))?;
        let accept_tally = self.steer.as_ref().and_then(|steer| steer.steering.accept_tally(worker));
        Ok(WorkerListener::Own { listener: listener.as_fd(), accept_tally })
    }

    fn retire_worker(&mut self, worker: usize) {
        self.leave_maps(worker);
        self.listeners.remove(&worker);
        self.set_aside.remove(&worker);
    }

    fn set_aside(&mut self, worker: usize) {
        self.leave_maps(worker);
        if let Some(listener) = self.listeners.remove(&worker) {
            self.set_aside.insert(worker, SetAside { listener, since: Instant::now() });
        }
    }

    fn set_aside_since(&self) -> Vec<(usize, Instant)> {
        self.set_aside.iter().map(|(&worker, set_aside)| (worker, set_aside.since)).collect()
    }

    fn stop_set_aside_handshakes(&mut self, worker: usize) -> Option<io::Result<()>> {
        let set_aside = self.set_aside.remove(&worker)?;
        let filtered = drop_all_but_syns(set_aside.listener.as_fd());
        self.handshakes_stopped.push((worker, set_aside));
        Some(filtered)
    }

    fn let_go_set_aside(&mut self, worker: usize, taken: &mut Vec<OwnedFd>) -> Option<LetGo> {
        let at = self.handshakes_stopped.iter().position(|&(id, _)| id == worker)?;
        let (_, set_aside) = self.handshakes_stopped.remove(at);
        Some(let_go_after_wait(set_aside, taken))
    }

    /// A listener sits in one steering map at a time: the new master's
    /// program steers to them only once they are out of this master's maps,
    /// which go with the program once the new master's replaces it (until
    /// then this master's program, its maps empty, leaves each connection
    /// to the kernel's hash: a moment, the new master's next refresh).
    fn hand_over(&mut self) {
        self.handed_over = true;
        if let Some(mut steer) = self.steer.take() {
            if let Err(e) = steer.steering.release_listeners() {
                crate::log!("reuseport: cannot take the listeners out of this master's steering maps: {e}");
            }
            crate::log!("reuseport: the new master's program steers from now on");
        }
    }

    /// This master took over from an old one and serves: its program goes
    /// on the group once the old master has taken the listeners out of its
    /// maps (as it hands over), or `OLD_MASTER_LETS_GO` from now whatever
    /// its maps hold then.
    fn took_over(&mut self) {
        if self.predecessor == Predecessor::Serving {
            self.predecessor = Predecessor::HandingOver { replace_at: Instant::now() + OLD_MASTER_LETS_GO };
        }
        self.enter_maps();
    }

    /// The new master attaches its program once it serves (or once its maps
    /// hold every listener, which this master's hold until it hands over): a
    /// master given up as it took over may have put its program, its maps
    /// empty, on the group, where it stays after that master is gone. This
    /// master's program goes back on at once, and again at each refresh
    /// until it is on.
    fn upgrade_given_up(&mut self) -> bool {
        let Some(steer) = self.steer.as_mut() else { return false };
        steer.attached = false;
        self.enter_maps();
        self.steer.as_ref().is_some_and(|steer| steer.attached)
    }

    fn steering(&self) -> Option<&'static str> {
        match (&self.steer, self.handed_over) {
            (_, true) => None,
            // Only while this master's program is on the group: not when
            // the attach failed (as the log says), nor, in an upgrade's new
            // master, before its program goes on at the hand-over.
            (Some(steer), false) if steer.attached => Some("load"),
            (_, false) => Some("hash"),
        }
    }

    fn steer_every(&self) -> Option<Duration> {
        self.steer.as_ref().map(|_| STEER_EVERY)
    }

    fn steer_view(&self, worker: usize) -> Option<SteerView> {
        let steering = &self.steer.as_ref()?.steering;
        let load = steering.load_of(worker)?;
        let (sent, accepted) = steering.flow_of(worker).unwrap_or_default();
        // A count that ran behind reads as nothing waiting, as the program reads it.
        let waiting = sent.saturating_sub(accepted);
        let rescued = self.steer.as_ref()?.last.get(&worker).map_or(0, |last| last.rescued);
        Some(SteerView { load, sent, waiting, rescued })
    }

    fn steer(&mut self, slots: &[SlotFacts], taken: &mut Vec<OwnedFd>, up_to: usize) -> Option<RescuePaused> {
        self.steer_round(slots, taken, up_to)
    }

    fn own_listeners(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        self.listeners.iter().map(|(&worker, fd)| (worker, fd.as_fd())).collect()
    }

    fn set_aside_listeners(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        self.set_aside.iter().map(|(&worker, set_aside)| (worker, set_aside.listener.as_fd())).collect()
    }

    /// The master never accepts: each worker takes its own queue.
    fn master_accepts(&self, _routes: &[usize], _facts: &dyn Fn(usize) -> RouteFacts) -> bool {
        false
    }

    /// For a connection the master took from the queue of a stalled or full worker: the
    /// least loaded route among those that take, as `least` picks.
    fn pick(
        &mut self,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
        passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize> {
        self.hand_on.pick(routes, facts, passed_over)
    }
}
