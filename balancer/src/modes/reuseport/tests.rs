//! The `reuseport` mode's own tests: its listeners, the load it writes,
//! what it takes from stuck queues.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;

use super::load::{
    beyond_room, is_stalled, passed_over_load, room_for_rescue, steer_load, waiting_since, Drift, FLOW_WINDOW,
};
use super::take::{take_each, take_queued};
use super::*;
use crate::bpf::program::{AVAILABLE_MAX, STALLED, UNAVAILABLE};
use crate::bpf::sys::accept_queue_len;
use crate::listener::bind_reuseport_anchor;
use crate::modes::ACK_GRACE;
use crate::reactor::sys::{accept, set_nonblocking};

#[test]
fn one_listener_per_worker_slot_kept_until_retired() {
    let (_anchor, local) = bind_reuseport_anchor(SocketAddr::from(([127, 0, 0, 1], 0))).expect("anchor");
    let mut mode = Reuseport::new(ListenAt { local, backlog: 64 }, Vec::new(), None, false);
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
    assert!(mode.weighs_delay(), "what it takes from a queue goes on by least's rule");
}

#[test]
fn a_set_aside_listener_goes_back_to_its_worker_id_scaled_up_again() {
    let (_anchor, local) = bind_reuseport_anchor(SocketAddr::from(([127, 0, 0, 1], 0))).expect("anchor");
    let mut mode = Reuseport::new(ListenAt { local, backlog: 64 }, Vec::new(), None, false);
    let fd_of = |listener: WorkerListener<'_>| match listener {
        WorkerListener::Own { listener, .. } => listener.as_raw_fd(),
        other => panic!("{other:?}"),
    };
    let first = fd_of(mode.worker_listener(2).expect("listener"));
    mode.set_aside(2);
    assert!(mode.own_listeners().is_empty());
    assert_eq!(mode.set_aside_since().len(), 1);
    // Its worker's id scaled up again before the master let go of it: the
    // same listener, with what waits there, and nothing left set aside.
    let again = fd_of(mode.worker_listener(2).expect("listener"));
    assert_eq!(first, again, "the set-aside listener is the worker's again");
    assert!(mode.set_aside_since().is_empty(), "nothing is left set aside");
    assert!(mode.let_go_set_aside(2, &mut Vec::new()).is_none());
}

#[test]
fn the_program_sees_live_unavailable_or_stalled() {
    let ready = |live| SlotFacts {
        worker: 1,
        route: Some(RouteFacts { live, ..crate::modes::testing::taking(0) }),
        accepted: 0,
        unserved: false,
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

/// A worker id scaled down, up and down again while its first listener's
/// let-go waits for the packets in flight: both listeners are let go of,
/// and what waited on the first is taken, not closed with it.
#[test]
fn two_let_gos_of_one_worker_id_under_way_each_take_their_queue() {
    let (_anchor, local) = bind_reuseport_anchor(SocketAddr::from(([127, 0, 0, 1], 0))).expect("anchor");
    let mut mode = Reuseport::new(ListenAt { local, backlog: 64 }, Vec::new(), None, false);
    mode.worker_listener(2).expect("first listener");
    let clients: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(local).expect("connect")).collect();
    mode.set_aside(2);
    assert!(mode.stop_set_aside_handshakes(2).is_some_and(|filtered| filtered.is_ok()));
    mode.worker_listener(2).expect("a new listener for the id scaled up again");
    mode.set_aside(2);
    assert!(mode.stop_set_aside_handshakes(2).is_some_and(|filtered| filtered.is_ok()));
    let mut taken = Vec::new();
    let first = mode.let_go_set_aside(2, &mut taken).expect("the first let-go");
    let second = mode.let_go_set_aside(2, &mut taken).expect("the second let-go");
    assert_eq!((first.taken, second.taken), (2, 0), "the first listener's queue, then the second's (empty)");
    assert_eq!(taken.len(), clients.len());
    assert!(mode.let_go_set_aside(2, &mut taken).is_none(), "nothing is left to let go of");
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
        let mut mode = Reuseport::new(ListenAt { local, backlog: 64 }, Vec::new(), Some(steering), false);
        for worker in 1..=3 {
            mode.worker_listener(worker).expect("listener");
        }
        let facts = |worker, route: Option<RouteFacts>| SlotFacts { worker, route, accepted: 0, unserved: false };
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

/// A worker with no process to accept on its listener (it died and waits
/// out its restart back-off, or its next process is not ready yet) leaves
/// what waits there to a worker that takes; one not ready whose old
/// process still serves (a reload) keeps it. Before, both kept it.
#[test]
fn a_dead_workers_queue_is_taken_and_a_still_served_one_is_not() {
    let Some(mut stuck) = StuckQueues::new() else { return };
    let all = stuck.stuck as usize;
    let not_ready = |worker, unserved| SlotFacts { worker, route: None, accepted: 0, unserved };
    stuck.round[1..].copy_from_slice(&[not_ready(2, false), not_ready(3, false)]);
    assert_eq!(stuck.round(all), 0, "its old process accepts there");
    stuck.round[1..].copy_from_slice(&[not_ready(2, true), not_ready(3, true)]);
    assert_eq!(stuck.round(all), all, "nobody accepts there");
    assert_eq!(stuck.queued(2) + stuck.queued(3), 0);
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

/// What the stats line says of the steering: "load" while this master's
/// program is on the group (through an upgrade until the hand-over: the
/// new master's goes on then), and after an upgrade given up; "hash" in a
/// master started by an upgrade until its program goes on; nothing once
/// handed over.
#[test]
fn the_steering_said_follows_whose_program_is_on_the_group() {
    let steering = match Steering::load() {
        Ok(steering) => steering,
        Err(e) => {
            eprintln!("skipped: the steering program does not load here ({e})");
            return;
        }
    };
    let (_anchor, local) = bind_reuseport_anchor(SocketAddr::from(([127, 0, 0, 1], 0))).expect("anchor");
    let mut mode = Reuseport::new(ListenAt { local, backlog: 64 }, Vec::new(), Some(steering), false);
    mode.worker_listener(1).expect("listener");
    mode.steer(&[], &mut Vec::new(), 0);
    assert_eq!(mode.steering(), Some("load"));
    assert!(mode.upgrade_given_up(), "this master's program is back on");
    assert_eq!(mode.steering(), Some("load"));
    mode.hand_over();
    assert_eq!(mode.steering(), None, "the new master's steering is the group's");
    let hashed = Reuseport::new(ListenAt { local, backlog: 64 }, Vec::new(), None, false);
    assert_eq!(hashed.steering(), Some("hash"));
}
