//! `reuseport`: every worker accepts on a `SO_REUSEPORT` listener of its own,
//! and the kernel spreads connections over the group by a hash of each
//! connection's addresses and ports: no master in the path, no shared queue.
//! The master creates and keeps one listener per worker slot (worker id), and
//! hands it to whichever process runs that slot: a restart or a reload loses
//! nothing queued on it, since the master's copy keeps it open. Retiring a
//! slot (scale-down) lets the master's copy go; the retiring worker, the last
//! holder, accepts what is queued before it closes, and what arrives in
//! between moves to the other listeners when `net.ipv4.tcp_migrate_req` is 1
//! ([`enable_migration`]; the kernel counts `TCPMigrateReqSuccess` and
//! `TCPMigrateReqFailure` in /proc/net/netstat).
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
//! heartbeat is stale or that left its queue waiting past [`ACK_GRACE`]
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
//! its program steers to could take what it takes.
//! A listener leaves the program's maps when its slot is retired, and, the
//! program loaded for `SELECT_OR_MIGRATE`, what is queued on it when it
//! closes moves to a listener the program picks.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use ringmaster_engine::out_of_resources;

use super::least::Least;
use super::{Accepting, Balance, ListenAt, RescuePaused, RouteFacts, SlotFacts, SteerView, WorkerListener, ACK_GRACE};
use crate::bpf::program::{AVAILABLE_MAX, STALLED, UNAVAILABLE};
use crate::bpf::sys::accept_queue_len;
use crate::bpf::Steering;
use crate::config::{Mode, SteerChoice};
use crate::error::Error;
use crate::listener::listen_reuseport;
use crate::reactor::sys::{accept, accept_goes_on, set_nonblocking};

/// How often the load map is refreshed with `--steer load`: a few syscalls
/// per worker each time, on a master with nothing else in the accept path.
pub const STEER_EVERY: Duration = Duration::from_millis(5);

/// Looks at a slot's counts over which they are evened out with its accept
/// queue: 100 ms, long beside a loopback handshake, short beside a client's
/// SYN retry.
const FLOW_WINDOW: u32 = 20;

/// The sysctl that makes a closing listener's queue move to its group.
const MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// The per-slot listeners, by worker id, and the steering program if any.
#[derive(Debug)]
pub struct Reuseport {
    at: ListenAt,
    listeners: BTreeMap<usize, OwnedFd>,
    steer: Option<LoadSteer>,
    /// Picks the worker that takes a connection the master took from the
    /// queue of a worker that cannot take it: the fewest outstanding, as
    /// `least` does.
    hand_on: Least,
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
    /// Workers with connections waiting that they cannot take (stalled, or
    /// beyond their room), how many, and whether stalled, at this look.
    stuck: Vec<(usize, u32, bool)>,
    /// Where in `stuck` the next round's takes begin: each round starts one
    /// further on, so a budget smaller than what waits is shared out in
    /// turn instead of always going to the lowest worker id first.
    rescue_turn: usize,
}

/// One look at a worker slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    accepted: u64,
    /// Since when its queue has waited with nothing accepted.
    waiting_since: Option<Instant>,
    /// How far the program's count of what waits strayed from the queue.
    drift: Drift,
    /// The master took what waited in its queue, and its loop has not
    /// turned since: it is stalled still, though its queue is empty.
    passed_over: Option<PassedOver>,
    /// Connections the master took from its queue so far.
    rescued: u64,
}

/// A worker whose queue the master took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PassedOver {
    /// When its loop last turned, as it noted it, when the master took
    /// them (nanoseconds on `CLOCK_MONOTONIC`): a turn since moves it.
    turned_at: u64,
    /// When the master first took from its queue.
    since: Instant,
}

/// How far the program's count of what waits on a listener (`sent -
/// accepted`) strayed from its accept queue, over a window of looks. A
/// handshake in flight, or an accept between the two reads, make them differ
/// for a moment; a SYN the kernel dropped after the program counted it, or a
/// connection the kernel's hash placed, for good.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Drift {
    looks: u32,
    least: i64,
    most: i64,
}

impl Drift {
    /// Records a look that found the count `excess` above the queue; at the
    /// end of a window, the correction to add to the accepted count: the
    /// excess every look in it saw, never what moved in between.
    fn look(&mut self, excess: i64) -> Option<i64> {
        if self.looks == 0 {
            (self.least, self.most) = (excess, excess);
        }
        (self.least, self.most) = (self.least.min(excess), self.most.max(excess));
        self.looks += 1;
        if self.looks < FLOW_WINDOW {
            return None;
        }
        let correction = if self.least > 0 {
            self.least
        } else if self.most < 0 {
            self.most
        } else {
            0
        };
        *self = Drift::default();
        (correction != 0).then_some(correction)
    }
}

impl Reuseport {
    /// The listeners an old master handed down (`upgrade`), by worker id;
    /// any other is made when its slot's first process starts. With
    /// `steering`, connections are steered by load.
    pub fn new(at: ListenAt, handed: Vec<(usize, OwnedFd)>, steering: Option<Steering>) -> Reuseport {
        let steer = steering.map(|steering| LoadSteer {
            steering,
            attached: false,
            last: BTreeMap::new(),
            insert_failed_logged: false,
            stuck: Vec::new(),
            rescue_turn: 0,
        });
        let mut mode = Reuseport { at, listeners: handed.into_iter().collect(), steer, hand_on: Least::default() };
        mode.enter_maps();
        mode
    }

    /// Attaches the program (once, to the first listener: it stays with the
    /// group) and puts every listener not in the maps yet into them. One
    /// handed down by an old master may still be in that master's maps
    /// (`EBUSY`): it is tried again at the next refresh.
    fn enter_maps(&mut self) {
        let Some(steer) = self.steer.as_mut() else { return };
        if !steer.attached {
            if let Some(first) = self.listeners.values().next() {
                match steer.steering.attach(first.as_fd()) {
                    Ok(()) => steer.attached = true,
                    Err(e) => {
                        crate::log!("cannot attach the steering program: {e}; the kernel's hash decides meanwhile")
                    }
                }
            }
        }
        for (&worker, fd) in &self.listeners {
            if steer.steering.keys().contains(&worker) {
                continue;
            }
            match steer.steering.insert(worker, fd.as_fd()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) if !steer.insert_failed_logged => {
                    steer.insert_failed_logged = true;
                    crate::log!("cannot put worker {worker}'s listener in the steering map: {e}");
                }
                Err(_) => {}
            }
        }
    }
}

/// The load the master gives the program for a slot: its live connections
/// (the program adds what waits in its queue, counted as it goes);
/// [`UNAVAILABLE`] when its process is not ready, drains or has no room for
/// what waits. When it seems stalled (its heartbeat is stale, or its queue
/// has `waited` past [`ACK_GRACE`], the patience `rr` has with a batch, with
/// nothing accepted): [`STALLED`] plus how long it has waited, in
/// milliseconds, so that on a busy machine where every worker seems stalled
/// for a moment the one stalled longest is avoided.
fn steer_load(facts: &SlotFacts, queue: u32, waited: Duration) -> u32 {
    let Some(route) = facts.route else { return UNAVAILABLE };
    if route.draining || route.no_room() || route.held() + u64::from(queue) >= route.max_conns {
        return UNAVAILABLE;
    }
    let waited = if route.stalled() { waited.max(route.heartbeat_age) } else { waited };
    if route.stalled() || waited > ACK_GRACE {
        return stalled_for(waited);
    }
    route.live.min(u64::from(STALLED - 1)) as u32
}

/// The load of a worker passed over since `since` (the master took its
/// queue; its loop has not turned since): stalled, by how long, unless it
/// is already unavailable or stalled longer.
fn passed_over_load(load: u32, since: Duration) -> u32 {
    if load == UNAVAILABLE {
        load
    } else {
        load.max(stalled_for(since))
    }
}

/// [`STALLED`] plus the milliseconds a worker has seemed stalled, so that of
/// two that seem stalled the one stalled longer is avoided.
fn stalled_for(waited: Duration) -> u32 {
    STALLED + (waited.as_millis().min(u128::from(STALLED - 1)) as u32)
}

/// Of `queue` connections waiting on a worker that is not stalled, those
/// beyond its room: all when it has none (full or declining, by its own
/// count), else what would take it past `--max-conns`.
fn beyond_room(route: &RouteFacts, queue: u32) -> u32 {
    if route.no_room() {
        return queue;
    }
    let over = (route.held() + u64::from(queue)).saturating_sub(route.max_conns);
    over.min(u64::from(queue)) as u32
}

/// How many connections taken from other queues a worker that takes can be
/// handed this round: its room, less what it has or is about to get (handed
/// over, queued in the master) and what waits on its own listener, which it
/// accepts itself. Taking more than the takers' room together would only
/// have the master refuse (`503`) what it cannot hand on, where it could
/// have waited in its queue for room.
fn room_for_rescue(route: &RouteFacts, own_queue: u32) -> u64 {
    let taking = route.held() + route.unacked as u64 + route.queued as u64;
    route.max_conns.saturating_sub(taking + u64::from(own_queue))
}

/// True for a load that says the worker is stalled (not merely unavailable).
fn is_stalled(load: u32) -> bool {
    (STALLED..=AVAILABLE_MAX).contains(&load)
}

/// What a take from a worker's queue came to.
#[derive(Debug)]
struct Take {
    /// The connections taken (pushed onto the caller's vector).
    taken: u32,
    /// The accept that stopped it found the master out of descriptors or
    /// memory: a take from any other queue would fail the same way now.
    starved: Option<io::Error>,
}

/// Takes up to `queue` connections waiting on `listener` without waiting
/// (the worker may take some meanwhile), into `out`.
fn take_queued(listener: BorrowedFd<'_>, queue: u32, out: &mut Vec<OwnedFd>) -> Take {
    // Its worker made it non-blocking already; one handed down may not be yet.
    if set_nonblocking(listener.as_raw_fd()).is_err() {
        return Take { taken: 0, starved: None };
    }
    take_each(|| accept(listener.as_raw_fd()), queue, out)
}

/// [`take_queued`]'s loop over the non-blocking `accept` of one listener.
fn take_each(mut accept: impl FnMut() -> io::Result<OwnedFd>, queue: u32, out: &mut Vec<OwnedFd>) -> Take {
    let mut take = Take { taken: 0, starved: None };
    while take.taken < queue {
        match accept() {
            Ok(connection) => {
                out.push(connection);
                take.taken += 1;
            }
            // A connection reset while it waited (it left the queue: the
            // loop still ends), or a signal: go on, as the master's own
            // accepts do.
            Err(e) if accept_goes_on(&e) => {}
            Err(e) if e.raw_os_error().is_some_and(out_of_resources) => {
                take.starved = Some(e);
                break;
            }
            // Empty (its worker took the rest): nothing more to take.
            Err(_) => break,
        }
    }
    take
}

/// When a queue of `queue` seen now has waited since, after `last`: not at
/// all when empty, from now when the worker accepted something since.
fn waiting_since(last: Option<&Sample>, queue: u32, accepted: u64, now: Instant) -> Option<Instant> {
    match last {
        _ if queue == 0 => None,
        Some(last) if last.accepted == accepted => Some(last.waiting_since.unwrap_or(now)),
        _ => Some(now),
    }
}

impl Balance for Reuseport {
    fn mode(&self) -> Mode {
        Mode::Reuseport
    }

    fn accepting(&self) -> Accepting {
        Accepting::OwnListeners
    }

    fn worker_listener(&mut self, worker: usize) -> io::Result<WorkerListener<'_>> {
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
        if let Some(steer) = self.steer.as_mut() {
            let listeners = &self.listeners;
            if let Err(e) = steer.steering.remove(worker, |w| listeners.get(&w).map(|fd| fd.as_fd())) {
                crate::log!("cannot take worker {worker}'s listener out of the steering map: {e}");
            }
            steer.last.remove(&worker);
        }
        self.listeners.remove(&worker);
    }

    /// A listener sits in one steering map at a time: the new master's
    /// program, attached to the group as it started, can steer to them only
    /// once this master's maps are gone.
    fn hand_over(&mut self) {
        if self.steer.take().is_some() {
            crate::log!("reuseport: the new master's program steers from now on");
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
        self.enter_maps();
        let steer = self.steer.as_mut()?;
        let now = Instant::now();
        steer.stuck.clear();
        let mut room = 0u64;
        for facts in slots {
            let Some(listener) = self.listeners.get(&facts.worker) else { continue };
            let queue = accept_queue_len(listener.as_fd()).unwrap_or(0);
            let last = steer.last.get(&facts.worker).copied();
            // A listener not in this master's maps yet was handed down by an
            // old master whose maps still hold it (`EBUSY`): the old master's
            // worker of the slot accepts there too, unseen here, so a queue
            // that waits says nothing of this master's worker, and the
            // counts the program keeps start as it enters (no drift is
            // looked for before). Its wait counts from the look that finds
            // it in the maps.
            let steered = steer.steering.keys().contains(&facts.worker);
            let since = if steered { waiting_since(last.as_ref(), queue, facts.accepted, now) } else { None };
            let mut load = steer_load(facts, queue, since.map_or(Duration::ZERO, |since| now - since));
            let turned_at = steer.steering.turned_at(facts.worker).unwrap_or(0);
            let passed_over = last.and_then(|last| last.passed_over).filter(|p| p.turned_at == turned_at);
            if let Some(passed_over) = passed_over {
                load = passed_over_load(load, now - passed_over.since);
            }
            let mut drift = last.filter(|_| steered).map_or_else(Drift::default, |last| last.drift);
            if let Some((sent, accepted)) = steer.steering.flow_of(facts.worker).filter(|_| steered) {
                let excess = sent.wrapping_sub(accepted) as i64 - i64::from(queue);
                if let Some(correction) = drift.look(excess) {
                    steer.steering.count_accepted(facts.worker, correction);
                }
            }
            let rescued = last.map_or(0, |last| last.rescued);
            let sample = Sample { accepted: facts.accepted, waiting_since: since, drift, passed_over, rescued };
            steer.last.insert(facts.worker, sample);
            let stalled = is_stalled(load);
            let stuck = if stalled { queue } else { facts.route.map_or(0, |route| beyond_room(&route, queue)) };
            if stuck > 0 {
                steer.stuck.push((facts.worker, stuck, stalled));
            }
            // Only a worker the program steers to may take what is handed on
            // (`route` picks among those): with none, what waits stays where
            // a worker may still accept it, rather than in this master's
            // hands until the old master lets go of its maps. And no more
            // than those have room for: the rest waits where it is.
            if let Some(route) = facts.route.filter(|route| steered && load < STALLED && route.takes()) {
                room += room_for_rescue(&route, queue);
            }
            // A failed write leaves the last load in place; the next refresh tries again.
            let _ = steer.steering.set_load(facts.worker, load);
            steer.steering.start_window(facts.worker);
        }
        // What waits on a worker that cannot take it goes to one that can, if
        // any, and if the master may take connections now: no more than it
        // may, nor than the workers that take have room for (before, every
        // stuck queue was taken whole as soon as one worker had any room,
        // and what it had no room for got `503`), the rest in later rounds.
        if room == 0 {
            return None;
        }
        let mut budget = u32::try_from(room.min(up_to as u64)).unwrap_or(u32::MAX);
        let first = steer.rescue_turn % steer.stuck.len().max(1);
        steer.rescue_turn = steer.rescue_turn.wrapping_add(1);
        let (before_first, from_first) = steer.stuck.split_at(first);
        for &(worker, queue, stalled) in from_first.iter().chain(before_first) {
            if budget == 0 {
                break;
            }
            let (Some(listener), Some(sample)) = (self.listeners.get(&worker), steer.last.get_mut(&worker)) else {
                continue;
            };
            let take = take_queued(listener.as_fd(), queue.min(budget), taken);
            budget -= take.taken;
            if take.taken > 0 {
                steer.steering.count_accepted(worker, i64::from(take.taken));
                sample.rescued += u64::from(take.taken);
                if stalled {
                    let turned_at = steer.steering.turned_at(worker).unwrap_or(0);
                    let since = sample.passed_over.map_or(now, |p| p.since);
                    sample.passed_over = Some(PassedOver { turned_at, since });
                }
            }
            // Out of descriptors or memory: every other queue's accept would
            // fail as this one did; the next round tries again.
            if let Some(error) = take.starved {
                return Some(RescuePaused { worker, left: queue - take.taken, error });
            }
        }
        None
    }

    fn own_listeners(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        self.listeners.iter().map(|(&worker, fd)| (worker, fd.as_fd())).collect()
    }

    /// The master never accepts: each worker takes its own queue.
    fn master_accepts(&self, _routes: &[usize], _facts: &dyn Fn(usize) -> RouteFacts) -> bool {
        false
    }

    /// For a connection the master took from the queue of a stalled or full worker: the
    /// route with the fewest outstanding connections among those that take.
    fn pick(
        &mut self,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
        passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize> {
        self.hand_on.pick(routes, facts, passed_over)
    }
}

/// The steering program `--steer` asks for: `None` steers by hash. With
/// `Auto`, a process that may not load it steers by hash and says why in one
/// line; with `Load` that is an error.
pub fn choose_steering(choice: SteerChoice) -> Result<Option<Steering>, Error> {
    if choice == SteerChoice::Hash {
        return Ok(None);
    }
    match Steering::load() {
        Ok(steering) => {
            let migration = if steering.migrates() {
                "a closing listener's queue moves by the same choice"
            } else {
                "this kernel cannot migrate by it (before 5.14)"
            };
            crate::log!(
                "reuseport: an eBPF program steers each connection to the less loaded of two workers ({migration})"
            );
            Ok(Some(steering))
        }
        Err(e) => {
            if !e.verifier_log.is_empty() {
                crate::log!("the verifier's log:\n{}", e.verifier_log);
            }
            if choice == SteerChoice::Load {
                return Err(Error::Config(format!("--steer load: {e}")));
            }
            crate::log!("reuseport: steering by the kernel's hash, not by load: {e}");
            Ok(None)
        }
    }
}

/// Sets `net.ipv4.tcp_migrate_req` to 1 for this network namespace if it is
/// not already, so a retiring worker's listener hands what is left in its
/// queue to the group when it closes; says what it did, or why it could not.
pub fn enable_migration() {
    match fs::read_to_string(MIGRATE_REQ).map(|v| v.trim() == "1") {
        Ok(true) => {}
        Ok(false) => match fs::write(MIGRATE_REQ, "1") {
            Ok(()) => crate::log!("set net.ipv4.tcp_migrate_req=1: a retired worker's queue moves to the others"),
            Err(e) => crate::log!(warn:
                "cannot set net.ipv4.tcp_migrate_req=1 ({e}): connections reaching a retiring worker's \
                 listener after its last accept are reset (set it as root, or run ringmaster as root)"
            ),
        },
        Err(e) => crate::log!(warn:
            "cannot read net.ipv4.tcp_migrate_req ({e}): a retiring worker's listener may reset connections \
             that arrive after its last accept"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpStream};
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::listener::bind_reuseport_anchor;

    #[test]
    fn one_listener_per_worker_slot_kept_until_retired() {
        let (_anchor, local) = bind_reuseport_anchor(SocketAddr::from(([127, 0, 0, 1], 0))).expect("anchor");
        let mut mode = Reuseport::new(ListenAt { local, backlog: 64 }, Vec::new(), None);
        let first = match mode.worker_listener(1).expect("listener") {
            WorkerListener::Own { listener, .. } => listener.as_raw_fd(),
            other => panic!("{other:?}"),
        };
        let again = match mode.worker_listener(1).expect("listener") {
            WorkerListener::Own { listener, .. } => listener.as_raw_fd(),
            other => panic!("{other:?}"),
        };
        assert_eq!(first, again, "a slot's next process gets the same listener");
        mode.worker_listener(2).expect("second slot");
        assert_eq!(mode.own_listeners().iter().map(|(w, _)| *w).collect::<Vec<_>>(), [1, 2]);
        // The group answers on the anchor's port; the anchor itself takes nothing.
        for _ in 0..8 {
            TcpStream::connect(local).expect("connect");
        }
        mode.retire_worker(2);
        assert_eq!(mode.own_listeners().len(), 1);
        assert!(!mode.master_accepts(&[0], &crate::modes::testing::taking));
        assert_eq!(mode.accepting(), Accepting::OwnListeners);
    }

    #[test]
    fn the_program_sees_live_unavailable_or_stalled() {
        let ready = |live| SlotFacts {
            worker: 1,
            route: Some(RouteFacts { live, ..crate::modes::testing::taking(0) }),
            accepted: 0,
        };
        let with = |how: fn(&mut RouteFacts)| {
            let mut facts = ready(0);
            facts.route.as_mut().map(how);
            facts
        };
        let fresh = Duration::ZERO;
        assert_eq!(steer_load(&ready(3), 2, fresh), 3, "the program adds what waits itself");
        assert_eq!(steer_load(&SlotFacts { route: None, ..ready(3) }, 0, fresh), UNAVAILABLE, "not ready");
        assert_eq!(steer_load(&with(|r| r.draining = true), 0, fresh), UNAVAILABLE);
        assert_eq!(steer_load(&with(|r| r.declined = true), 0, fresh), UNAVAILABLE);
        assert_eq!(steer_load(&ready(99), 1, fresh), UNAVAILABLE, "full once its queue is counted");
        assert_eq!(steer_load(&ready(3), 6, ACK_GRACE), 3, "a queue may wait up to the grace");
        assert_eq!(steer_load(&ready(3), 6, Duration::from_millis(40)), STALLED + 40, "by how long it waited");
        let stale = with(|r| r.heartbeat_age = crate::modes::HEARTBEAT_STALE * 2);
        assert_eq!(steer_load(&stale, 0, fresh), STALLED + 1000);
    }

    #[test]
    fn a_worker_passed_over_is_stalled_until_its_loop_turns() {
        let since = Duration::from_millis(30);
        assert_eq!(passed_over_load(3, since), STALLED + 30, "stalled, by how long it was passed over");
        assert_eq!(passed_over_load(STALLED + 90, since), STALLED + 90, "stalled longer by its own wait");
        assert_eq!(passed_over_load(UNAVAILABLE, since), UNAVAILABLE, "unavailable stays so");
        assert!(is_stalled(passed_over_load(0, Duration::ZERO)));
        assert!(is_stalled(AVAILABLE_MAX) && !is_stalled(STALLED - 1) && !is_stalled(UNAVAILABLE));
    }

    #[test]
    fn what_waits_beyond_a_workers_room_is_counted_for_handing_on() {
        let with = |live, max_conns| RouteFacts { live, max_conns, ..crate::modes::testing::taking(0) };
        assert_eq!(beyond_room(&with(3, 10), 5), 0, "room for all five");
        assert_eq!(beyond_room(&with(8, 10), 5), 3, "room for two of five");
        assert_eq!(beyond_room(&with(10, 10), 5), 5, "full: all of them");
        let declining = RouteFacts { declined: true, ..with(0, 10) };
        assert_eq!(beyond_room(&declining, 2), 2, "declining (at its fd limit): all of them");
    }

    #[test]
    fn a_rescue_is_bounded_by_the_room_of_the_workers_that_take() {
        let with = |live, queued, max_conns| RouteFacts { live, queued, max_conns, ..crate::modes::testing::taking(0) };
        assert_eq!(room_for_rescue(&with(3, 0, 10), 0), 7);
        assert_eq!(room_for_rescue(&with(3, 2, 10), 4), 1, "less what it is about to get and its own queue");
        assert_eq!(room_for_rescue(&with(0, 0, 1), 3), 0, "its own queue fills it");
        assert_eq!(room_for_rescue(&with(10, 0, 10), 0), 0);
    }

    #[test]
    fn what_waits_on_a_listener_is_taken_without_waiting() {
        let (_anchor, local) = bind_reuseport_anchor(SocketAddr::from(([127, 0, 0, 1], 0))).expect("anchor");
        let listener = listen_reuseport(local, 64).expect("listener");
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(local).expect("connect")).collect();
        let queued = accept_queue_len(listener.as_fd()).expect("queue");
        assert_eq!(queued, 3);
        let mut taken = Vec::new();
        let mut take = |queue| {
            let take = take_queued(listener.as_fd(), queue, &mut taken);
            assert!(take.starved.is_none(), "{take:?}");
            take.taken
        };
        assert_eq!(take(2), 2, "no more than asked");
        assert_eq!(take(5), 1, "what is left, then no wait");
        assert_eq!(take(5), 0, "an empty queue: none, at once");
        assert_eq!(taken.len(), clients.len());
    }

    /// A connection reset while it waited (`ECONNABORTED`, as a BSD says;
    /// Linux hands such a one out and its first read fails) is skipped and
    /// the take goes on, as the master's own accepts do. Before, it ended
    /// that queue's take until the next round. The error alone is made up:
    /// the connections are real, on a real listener.
    #[test]
    fn a_connection_reset_in_the_queue_does_not_end_the_take() {
        let (_anchor, local) = bind_reuseport_anchor(SocketAddr::from(([127, 0, 0, 1], 0))).expect("anchor");
        let listener = listen_reuseport(local, 64).expect("listener");
        set_nonblocking(listener.as_raw_fd()).expect("non-blocking");
        let _clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(local).expect("connect")).collect();
        let mut calls = 0;
        let accept_after_a_reset = || {
            calls += 1;
            match calls {
                1 => Err(io::Error::from_raw_os_error(libc::ECONNABORTED)),
                _ => accept(listener.as_raw_fd()),
            }
        };
        let mut taken = Vec::new();
        let take = take_each(accept_after_a_reset, 3, &mut taken);
        assert!(take.starved.is_none(), "{take:?}");
        assert_eq!((take.taken, taken.len()), (3, 3), "every connection after the reset");
        assert_eq!(accept_queue_len(listener.as_fd()).expect("queue"), 0);
    }

    /// Connections left on each stalled worker's queue by [`StuckQueues`], at least.
    const STUCK_EACH: u32 = 3;

    /// Three worker slots under the real steering program (as root; `None`
    /// otherwise): while worker 1 was not ready, connections went to the
    /// queues of workers 2 and 3, which are now stalled, until each held
    /// [`STUCK_EACH`] or more.
    struct StuckQueues {
        mode: Reuseport,
        _anchor: OwnedFd,
        /// The clients whose connections wait (kept open).
        clients: Vec<TcpStream>,
        /// How many connections wait on the two queues together.
        stuck: u32,
        /// Worker 1 takes, workers 2 and 3 are stalled.
        round: [SlotFacts; 3],
    }

    impl StuckQueues {
        fn new() -> Option<StuckQueues> {
            let steering = match Steering::load() {
                Ok(steering) => steering,
                Err(e) => {
                    eprintln!("skipped: the steering program does not load here ({e})");
                    return None;
                }
            };
            let (anchor, local) = bind_reuseport_anchor(SocketAddr::from(([127, 0, 0, 1], 0))).expect("anchor");
            let mut mode = Reuseport::new(ListenAt { local, backlog: 64 }, Vec::new(), Some(steering));
            for worker in 1..=3 {
                mode.worker_listener(worker).expect("listener");
            }
            let facts = |worker, route: Option<RouteFacts>| SlotFacts { worker, route, accepted: 0 };
            let taking_facts = crate::modes::testing::taking(0);
            let taking = Some(taking_facts);
            let stalled = Some(RouteFacts { heartbeat_age: crate::modes::HEARTBEAT_STALE * 2, ..taking_facts });
            // Worker 1 not ready: the program sends every connection to 2 or 3.
            assert!(mode.steer(&[facts(1, None), facts(2, taking), facts(3, taking)], &mut Vec::new(), 0).is_none());
            let round = [facts(1, taking), facts(2, stalled), facts(3, stalled)];
            let mut stuck = StuckQueues { mode, _anchor: anchor, clients: Vec::new(), round, stuck: 0 };
            // The program picks the less loaded of two random draws, which
            // may both be one worker: its split of a few connections is
            // uneven now and then (5 and 1 of 6), so connect until each
            // queue holds enough.
            while stuck.queued(2).min(stuck.queued(3)) < STUCK_EACH {
                assert!(stuck.clients.len() < 200, "{} and {} queued", stuck.queued(2), stuck.queued(3));
                stuck.clients.push(TcpStream::connect(local).expect("connect"));
                stuck.stuck += 1;
                // A connect returns before its listener has queued the
                // connection when the handshake's last step runs later
                // (softirq work deferred on a busy machine): wait for it.
                let queued = Instant::now() + Duration::from_secs(10);
                while stuck.queued(2) + stuck.queued(3) < stuck.stuck {
                    assert!(Instant::now() < queued, "connection {} not queued", stuck.stuck);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Some(stuck)
        }

        fn queued(&self, worker: usize) -> u32 {
            accept_queue_len(self.mode.listeners[&worker].as_fd()).expect("queue")
        }

        /// One steering round in which the master may take `up_to`: what it took.
        fn round(&mut self, up_to: usize) -> usize {
            let mut taken = Vec::new();
            assert!(self.mode.steer(&self.round, &mut taken, up_to).is_none());
            taken.len()
        }
    }

    /// A round takes from the stuck queues no more than the master may take
    /// (what `--backlog` leaves it), however much waits there; the rest is
    /// taken in later rounds. Before, each stuck queue was taken whole.
    #[test]
    fn a_rescue_round_takes_no_more_than_the_master_may() {
        let Some(mut stuck) = StuckQueues::new() else { return };
        let all = stuck.stuck as usize;
        assert_eq!(stuck.round(0), 0, "the master may take none");
        assert_eq!(stuck.round(4), 4, "no more than the master may take, over both queues");
        assert_eq!(stuck.round(all), all - 4, "the rest, in the next round");
        assert_eq!(stuck.queued(2) + stuck.queued(3), 0);
    }

    /// With a budget smaller than what waits, rounds take from the stuck
    /// queues in turn. Before, every round began with the lowest worker id,
    /// and the others' connections waited until its queue was empty.
    #[test]
    fn rescue_rounds_take_from_the_stuck_queues_in_turn() {
        let Some(mut stuck) = StuckQueues::new() else { return };
        let mut taken_from = Vec::new();
        for _ in 0..4 {
            let before = (stuck.queued(2), stuck.queued(3));
            assert_eq!(stuck.round(1), 1);
            let after = (stuck.queued(2), stuck.queued(3));
            taken_from.push(if after.0 < before.0 {
                2
            } else if after.1 < before.1 {
                3
            } else {
                0
            });
        }
        let in_turn = taken_from.windows(2).all(|pair| pair[0] != pair[1]) && !taken_from.contains(&0);
        assert!(in_turn, "one connection a round, from each queue in turn: {taken_from:?}");
    }

    #[test]
    fn a_queue_waits_from_the_first_look_without_progress() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        assert_eq!(waiting_since(None, 0, 0, t0), None);
        assert_eq!(waiting_since(None, 2, 0, t0), Some(t0));
        let waiting =
            Sample { accepted: 7, waiting_since: Some(t0), drift: Drift::default(), passed_over: None, rescued: 0 };
        assert_eq!(waiting_since(Some(&waiting), 3, 7, t1), Some(t0), "nothing accepted: still waiting since t0");
        assert_eq!(waiting_since(Some(&waiting), 3, 8, t1), Some(t1), "it accepted: the wait starts over");
        assert_eq!(waiting_since(Some(&waiting), 0, 7, t1), None, "its queue is empty");
        let idle = Sample { accepted: 7, waiting_since: None, drift: Drift::default(), passed_over: None, rescued: 0 };
        assert_eq!(waiting_since(Some(&idle), 1, 7, t1), Some(t1));
    }

    #[test]
    fn counts_are_evened_out_by_what_every_look_of_a_window_saw() {
        let window = |excesses: &[i64]| {
            let mut drift = Drift::default();
            let mut corrections = Vec::new();
            for &excess in excesses.iter().cycle().take(FLOW_WINDOW as usize) {
                corrections.extend(drift.look(excess));
            }
            assert_eq!(drift, Drift::default(), "a window ends after FLOW_WINDOW looks");
            corrections
        };
        assert_eq!(window(&[0]), [] as [i64; 0], "counts that agree stay");
        assert_eq!(window(&[2, 0, 3]), [] as [i64; 0], "handshakes in flight come and go");
        assert_eq!(window(&[2, 3]), [2], "two SYNs dropped after they were counted");
        assert_eq!(window(&[-1, -4]), [-1], "one accept the program never sent");
        assert_eq!(window(&[-1, 1]), [] as [i64; 0], "no direction held");
    }
}
