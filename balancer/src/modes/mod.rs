//! Balancing modes: how connections reach workers. [`Balance`] is all the
//! master asks of a mode — who accepts, which listener a worker slot gets,
//! and (when the master accepts) which worker takes the next connection,
//! judged on each worker's [`RouteFacts`] — and each mode is one file:
//! [`rr`], [`least`], [`shared`] and [`reuseport`].

pub mod least;
pub mod reuseport;
pub mod rr;
pub mod shared;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

pub use self::reuseport::LetGo;
use crate::bpf::Steering;
use crate::config::Mode;

/// A batch a worker has not acknowledged for this long means it is not
/// keeping up (stopped, descheduled, stuck in a long turn): it gets no new
/// connections until it answers, and those queued for it go to another one.
/// A worker that keeps up answers within its loop turn, well under a
/// millisecond; the margin covers a busy machine's scheduling delays.
pub const ACK_GRACE: Duration = Duration::from_millis(20);
/// A worker whose loop's heartbeat (the stats block) has not moved for this
/// long is stalled, whatever it holds. An idle loop still turns every 100 ms
/// (its tick) and the master samples every 100 ms.
pub const HEARTBEAT_STALE: Duration = Duration::from_millis(500);

/// What a mode that steers the kernel's choice (`reuseport --steer load`)
/// shows of one worker slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerView {
    /// The load the master last wrote for the program (above
    /// [`crate::bpf::program::AVAILABLE_MAX`]: unavailable; from
    /// [`crate::bpf::program::STALLED`]: stalled).
    pub load: u32,
    /// Connections the program sent to its listener.
    pub sent: u64,
    /// Of those, the ones not accepted yet, as the counts stand.
    pub waiting: u64,
    /// Connections the master took from its queue while it was stalled and
    /// handed to another worker.
    pub rescued: u64,
}

/// Who calls `accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepting {
    /// The master, on its listener; it hands each connection to a worker.
    Master,
    /// Every worker, on the master's one listener.
    SharedListener,
    /// Every worker, on its own listener (one per worker slot).
    OwnListeners,
}

/// The listener a worker process is started with.
#[derive(Clone, Copy, Debug)]
pub enum WorkerListener<'a> {
    /// None: connections come from the master over the worker's channel.
    None,
    /// The master's own listening socket, shared by every worker.
    Shared,
    /// The worker slot's own listener, kept by the mode across the processes
    /// that run the slot.
    Own {
        /// The listener.
        listener: BorrowedFd<'a>,
        /// Where the worker counts what it accepts there, for a mode that
        /// steers by what waits unaccepted: a mappable fd and the count's
        /// byte offset in it.
        accept_tally: Option<(BorrowedFd<'a>, usize)>,
    },
}

/// What the master knows about one route (a ready worker process that takes
/// connections) when a mode picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteFacts {
    /// Its open connections, as its stats slot says.
    pub live: u64,
    /// Connections handed to it (in flight, or in its socket) that it has
    /// not acknowledged yet.
    pub unacked: usize,
    /// Connections queued in the master for it, not sent yet.
    pub queued: usize,
    /// Of `live`, idle keep-alive connections it would close to make room
    /// (it publishes them): room as much as free slots are.
    pub reclaimable: u64,
    /// Connections it may hold: `--max-conns`, or fewer when its descriptors
    /// run out first (the capacity it publishes in its stats slot).
    pub max_conns: u64,
    /// It declined connections lately (full, or at its fd limit): skip it for now.
    pub declined: bool,
    /// How long its oldest unacknowledged batch has waited for the ack.
    pub ack_wait: Duration,
    /// How long it has lately taken to acknowledge a batch handed to it
    /// (a peak EWMA: the last long delay at once, shorter ones over time);
    /// zero in a pick's facts for a mode that does not weigh it
    /// ([`Balance::weighs_delay`]).
    pub ack_delay: Duration,
    /// How long since its loop's heartbeat last moved.
    pub heartbeat_age: Duration,
    /// It is draining, or marked a lame duck while some worker is not one:
    /// it takes nothing new.
    pub draining: bool,
}

impl RouteFacts {
    /// Live, handed over and queued: everything it has or is about to get.
    pub fn outstanding(&self) -> u64 {
        self.live + self.unacked as u64 + self.queued as u64
    }

    /// Its live connections less the idle ones it would close to make room:
    /// what it holds on to, as "full" counts it.
    pub fn held(&self) -> u64 {
        self.live.saturating_sub(self.reclaimable)
    }

    /// It has (or is about to have) `--max-conns` connections, none of them
    /// idle ones it would close for a new one: no room.
    pub fn full(&self) -> bool {
        self.held() + self.unacked as u64 + self.queued as u64 >= self.max_conns
    }

    /// It does not keep up: its batch waits for an ack past [`ACK_GRACE`],
    /// or its heartbeat is older than [`HEARTBEAT_STALE`].
    pub fn stalled(&self) -> bool {
        self.ack_wait > ACK_GRACE || self.heartbeat_age > HEARTBEAT_STALE
    }

    /// It may be given a connection now.
    pub fn takes(&self) -> bool {
        !self.draining && !self.declined && !self.full() && !self.stalled()
    }

    /// Its place when a connection must go somewhere and none takes (a
    /// stop's last hand-off), lowest first: one that keeps up; then one whose
    /// loop turns, however late its acks (busy, it serves soon), before one
    /// whose loop has stood still past [`HEARTBEAT_STALE`] (stopped or
    /// wedged: what it is handed waits, maybe until it is killed), the one
    /// still for the shortest time first; then the fewest outstanding.
    pub fn last_resort_rank(&self) -> (bool, Duration, u64) {
        let still = if self.heartbeat_age > HEARTBEAT_STALE { self.heartbeat_age } else { Duration::ZERO };
        (self.stalled(), still, self.outstanding())
    }

    /// It cannot take a connection because it has no room by its own count
    /// (full, or refusing at its fd limit), rather than because it lags or
    /// an ack is on its way. Connections handed over and not yet
    /// acknowledged do not count here: the worker publishes `live` before it
    /// acks, so they may be in `live` already, and refusing on the sum would
    /// turn away a connection the worker has room for (hold it until the ack
    /// instead).
    pub fn no_room(&self) -> bool {
        self.declined || self.held() + self.queued as u64 >= self.max_conns
    }
}

/// What the master knows of one worker slot when a mode steers the
/// kernel's choice of listener (`reuseport --steer load`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotFacts {
    /// The worker's id.
    pub worker: usize,
    /// Its current process's routing facts, when that process is ready and
    /// not retiring; `None`: it takes nothing now.
    pub route: Option<RouteFacts>,
    /// Connections its current process has accepted so far.
    pub accepted: u64,
    /// No process of it accepts on its listener now (none ready and not
    /// retiring): it died and waits out its restart back-off, or its next
    /// process is not ready yet. What waits there waits for that.
    pub unserved: bool,
}

/// A [`Balance::steer`] round that stopped taking from the queues of stalled
/// or full workers: a take found the master out of descriptors or memory
/// (an accept then fails at once, and would fail the same way on every other
/// queue this round). The next round tries again.
#[derive(Debug)]
pub struct RescuePaused {
    /// The worker from whose queue the take failed.
    pub worker: usize,
    /// Of what waited there for another worker, the connections not taken.
    pub left: u32,
    /// The accept's error: `EMFILE`, `ENFILE`, `ENOMEM` or `ENOBUFS`.
    pub error: io::Error,
}

/// A balancing mode, as the master sees it.
///
/// `routes` are the slots of the worker processes that take connections now,
/// in worker order; `facts` tells what is known about each of them.
pub trait Balance: fmt::Debug {
    /// The mode's name, for the log and the stats line.
    fn mode(&self) -> Mode;

    /// Who calls `accept`: by default the master, which hands each
    /// connection to the worker [`Balance::pick`] names.
    fn accepting(&self) -> Accepting {
        Accepting::Master
    }

    /// The listener the process running worker `worker` (its id) starts
    /// with; a mode with listeners of its own makes the worker's on first use.
    /// By default none: connections come over the worker's channel.
    fn worker_listener(&mut self, _worker: usize) -> io::Result<WorkerListener<'_>> {
        Ok(WorkerListener::None)
    }

    /// Worker `worker` is retired for good (a stop): the mode lets go of
    /// what it keeps for it, its set-aside listener too.
    fn retire_worker(&mut self, _worker: usize) {}

    /// Worker `worker` is retired for good (scale-down) while its processes
    /// drain: a mode with listeners of its own steers no more there and
    /// keeps the worker's until [`Balance::let_go_set_aside`], so that the
    /// last close is the master's. By default as [`Balance::retire_worker`].
    fn set_aside(&mut self, worker: usize) {
        self.retire_worker(worker);
    }

    /// The workers whose listener is set aside, and since when.
    fn set_aside_since(&self) -> Vec<(usize, Instant)> {
        Vec::new()
    }

    /// The first step of letting go of worker `worker`'s set-aside listener
    /// (none: `None`): no handshake completes there from now on (a SYN
    /// filter; whether it could be put on) but those whose packets the
    /// kernel is processing, which the master waits for, off its loop,
    /// before [`Balance::let_go_set_aside`]. The listener is no longer set
    /// aside meanwhile: neither a scale-up nor a stop takes it back.
    fn stop_set_aside_handshakes(&mut self, _worker: usize) -> Option<io::Result<()>> {
        None
    }

    /// Lets go of worker `worker`'s set-aside listener once
    /// [`Balance::stop_set_aside_handshakes`] took it and the wait is over
    /// (none: `None`), taking what waits there into `taken` for the master
    /// to hand on.
    fn let_go_set_aside(&mut self, _worker: usize, _taken: &mut Vec<OwnedFd>) -> Option<LetGo> {
        None
    }

    /// This master hands its listeners over to a new one (an upgrade): the
    /// mode lets go of what only one process may hold.
    fn hand_over(&mut self) {}

    /// This master, started by an upgrade, has taken over and serves: what
    /// the old master held for the listeners until now is this one's to
    /// take (`reuseport --steer load`: the group's steering program).
    fn took_over(&mut self) {}

    /// An upgrade was given up before this master handed over: whatever the
    /// new master put on the listeners (`reuseport --steer load`: its
    /// program, attached to the group as it took over) is taken back. True
    /// when something was.
    fn upgrade_given_up(&mut self) -> bool {
        false
    }

    /// The listeners the mode keeps, with the worker each belongs to.
    fn own_listeners(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        Vec::new()
    }

    /// The set-aside listeners (see [`Balance::set_aside`]), with the
    /// worker each belonged to: a stop answers and shuts them as it does
    /// [`Balance::own_listeners`], and [`Balance::retire_worker`] lets go.
    fn set_aside_listeners(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        Vec::new()
    }

    /// How the kernel's choice among the mode's own listeners is steered,
    /// for the stats line and the metrics: `load` (a program this master
    /// loaded) or `hash`; `None` for a mode without such listeners.
    fn steering(&self) -> Option<&'static str> {
        None
    }

    /// How often the mode wants [`Balance::steer`] called; `None`: never.
    fn steer_every(&self) -> Option<Duration> {
        None
    }

    /// True when [`Balance::pick`] reads [`RouteFacts::ack_delay`]: the
    /// master then works it out for each pick (an `exp` per worker judged);
    /// else a pick's facts carry zero there.
    fn weighs_delay(&self) -> bool {
        false
    }

    /// The latest facts of every worker slot that is not retired, for a
    /// mode that steers the kernel's choice (`reuseport --steer load`). It
    /// may take connections that wait for a worker that cannot take them,
    /// up to `up_to` in all, into `taken`, for the master to hand to
    /// another: to the route [`Balance::pick`] names among those the mode
    /// does not steer away from ([`SteerView::load`]). `up_to` is 0 while
    /// the master may take none (it is stopping, holds `--backlog`
    /// connections no worker takes, or its fd reserve lacks what a start
    /// needs), else what `--backlog` leaves it. A take that finds the
    /// master out of descriptors or memory ends the round's takes: it says
    /// which.
    fn steer(&mut self, _slots: &[SlotFacts], _taken: &mut Vec<OwnedFd>, _up_to: usize) -> Option<RescuePaused> {
        None
    }

    /// What a mode that steers shows of `worker`: the load it last gave
    /// the kernel, and the connections sent to it and waiting on it.
    fn steer_view(&self, _worker: usize) -> Option<SteerView> {
        None
    }

    /// True when the master should accept on its listener now: by default
    /// always (a connection no route takes is held or refused with `503`).
    fn master_accepts(&self, _routes: &[usize], _facts: &dyn Fn(usize) -> RouteFacts) -> bool {
        true
    }

    /// The route that takes a connection the master accepted; `None` when no
    /// route takes one now (the master then holds it, or refuses it with `503`).
    ///
    /// `passed_over` is told each route that the mode's rule put ahead of
    /// the one picked (every route, when none is) but that could not take
    /// the connection (draining, declining, full or stalled): the master
    /// counts these, so that a split that is not the rule's can be told
    /// from one that is. Each mode says what "ahead" means for it.
    fn pick(
        &mut self,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
        passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize>;
}

/// Where the master listens: what a mode with listeners of its own binds
/// them to.
#[derive(Clone, Copy, Debug)]
pub struct ListenAt {
    /// The address the master's listener got (its port, when 0 was asked for).
    pub local: SocketAddr,
    /// Listen backlog.
    pub backlog: i32,
}

/// The strategy for `mode`; `handed` are the listeners an old master kept
/// per worker slot (`upgrade`), for a mode that keeps its own; `steering`,
/// the loaded program that steers `reuseport` by load (`None`: by hash);
/// `taking_over`: an old master started this one and serves until it hands
/// over.
pub fn balance_for(
    mode: Mode,
    at: ListenAt,
    handed: Vec<(usize, OwnedFd)>,
    steering: Option<Steering>,
    taking_over: bool,
) -> Box<dyn Balance> {
    match mode {
        Mode::RoundRobin => Box::new(rr::RoundRobin::default()),
        Mode::Least => Box::new(least::Least::default()),
        Mode::Shared => Box::new(shared::Shared),
        Mode::Reuseport => Box::new(reuseport::Reuseport::new(at, handed, steering, taking_over)),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Facts for the modes' unit tests.

    use super::*;

    /// A route with room and nothing outstanding.
    pub fn taking(_slot: usize) -> RouteFacts {
        RouteFacts { max_conns: 100, ..RouteFacts::default() }
    }

    /// Routes with these live counts, all healthy.
    pub fn live(counts: &'static [u64]) -> impl Fn(usize) -> RouteFacts {
        move |slot| RouteFacts { live: counts[slot], ..taking(slot) }
    }

    /// `mode`'s pick, and the routes it passed over, in the order it told them.
    pub fn pick_noting(
        mode: &mut dyn Balance,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
    ) -> (Option<usize>, Vec<usize>) {
        let mut passed = Vec::new();
        let picked = mode.pick(routes, facts, &mut |route| passed.push(route));
        (picked, passed)
    }

    /// `mode`'s pick, where what it passed over does not matter.
    pub fn pick(mode: &mut dyn Balance, routes: &[usize], facts: &dyn Fn(usize) -> RouteFacts) -> Option<usize> {
        pick_noting(mode, routes, facts).0
    }

    /// Healthy routes, except `slot`, changed by `how`.
    pub fn except(slot: usize, how: fn(&mut RouteFacts)) -> impl Fn(usize) -> RouteFacts {
        move |r| {
            let mut facts = taking(r);
            if r == slot {
                how(&mut facts);
            }
            facts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_resort_prefers_a_turning_loop_to_a_still_one() {
        let healthy = testing::taking(0);
        let with = |how: fn(&mut RouteFacts)| {
            let mut facts = healthy;
            how(&mut facts);
            facts
        };
        // Busy: its acks come late, its loop turns; it has more to do.
        let busy = with(|f| (f.live, f.ack_wait, f.heartbeat_age) = (30, ACK_GRACE * 10, ACK_GRACE));
        // Stopped a second ago, with less to do.
        let stopped = with(|f| (f.live, f.ack_wait, f.heartbeat_age) = (1, Duration::ZERO, HEARTBEAT_STALE * 2));
        let stopped_longer = with(|f| f.heartbeat_age = HEARTBEAT_STALE * 4);
        assert!(busy.stalled() && stopped.stalled());
        assert!(busy.last_resort_rank() < stopped.last_resort_rank(), "a busy worker serves before a stopped one");
        assert!(stopped.last_resort_rank() < stopped_longer.last_resort_rank(), "the one still longer goes last");
        assert!(healthy.last_resort_rank() < busy.last_resort_rank(), "one that keeps up first");
        let busier = with(|f| (f.live, f.ack_wait, f.heartbeat_age) = (31, ACK_GRACE * 10, ACK_GRACE * 2));
        assert!(busy.last_resort_rank() < busier.last_resort_rank(), "among turning loops, the fewest outstanding");
    }

    #[test]
    fn a_route_takes_unless_draining_declining_full_or_stalled() {
        let healthy = testing::taking(0);
        assert!(healthy.takes());
        let with = |how: fn(&mut RouteFacts)| {
            let mut facts = healthy;
            how(&mut facts);
            facts
        };
        assert!(!with(|f| f.draining = true).takes());
        assert!(!with(|f| f.declined = true).takes());
        assert!(!with(|f| f.live = 100).takes());
        assert!(!with(|f| (f.live, f.unacked, f.queued) = (90, 5, 5)).takes(), "what it is about to get counts");
        assert!(with(|f| f.ack_wait = ACK_GRACE).takes(), "a batch waiting up to the grace is normal");
        assert!(!with(|f| f.ack_wait = ACK_GRACE + Duration::from_millis(1)).takes());
        assert!(!with(|f| f.heartbeat_age = HEARTBEAT_STALE * 2).takes());
        assert!(with(|f| f.declined = true).no_room() && with(|f| f.live = 100).no_room());
        // Idle keep-alive connections the worker would close for a new one are room.
        let idle = with(|f| (f.live, f.reclaimable) = (100, 3));
        assert!(idle.takes() && !idle.no_room() && !idle.full(), "full of idle connections: it takes");
        assert!(
            !with(|f| (f.live, f.reclaimable, f.unacked) = (100, 3, 3)).takes(),
            "as many handed as it can reclaim"
        );
        assert!(with(|f| (f.live, f.reclaimable, f.queued) = (100, 3, 3)).no_room());
        assert!(!with(|f| f.ack_wait = ACK_GRACE * 2).no_room(), "a stalled worker has room, it just lags");
        let acked_soon = with(|f| (f.live, f.unacked, f.max_conns) = (1, 1, 2));
        assert!(
            !acked_soon.takes() && !acked_soon.no_room(),
            "the handed one may be in live already: wait for the ack"
        );
    }
}
