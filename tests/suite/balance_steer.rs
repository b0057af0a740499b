//! `--mode reuseport --steer load` through the real binary: an eBPF program
//! picks each connection's listener by the load the master writes and what
//! waits unaccepted, which it counts with the workers (the stats line shows
//! every connection sent and accepted, nothing left waiting). A stopped
//! worker gets a few of a burst of connections (what the program sends it
//! before what waits there counts); the master marks it stalled, takes what
//! waits on its listener and hands it to the other worker, so every one is
//! answered while it stays stopped, and under churn it gets nothing new; a
//! scale-down under churn fails no request; and a master that may not load
//! BPF programs falls back to the hash (saying why), unless `--steer load`
//! was asked for, which is then an error.
//! Loading BPF needs root: without it the steering tests say so and pass.

use crate::util;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use util::control::{control_path, status};
use util::load::{close_request, patient_churn, scale_down_4_to_1_under_churn, CLIENT_TIMEOUT};
use util::procs::{fd_limit_leaving, ring_accepts_armed, run_to_exit, set_soft_fd_limit, stop_between_turns};
use util::sockets::{accept_queue, socket_inode};
use util::stats::{expect_worker, num, stats_when_idle, stats_when_settled};
use util::*;

/// One loaded server at a time.
pub(crate) fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when this process may load BPF programs (the tests run as root).
pub(crate) fn may_steer() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: loading BPF programs needs root");
    }
    root
}

/// What the stats line says the program sees for worker `id`.
fn steer_of(stats: &serde_json::Value, id: u64) -> serde_json::Value {
    expect_worker(stats, id)["steer"].clone()
}

/// A count the stats line shows for worker `id` under `--steer load`.
pub(crate) fn steer_of_key(stats: &serde_json::Value, id: u64, key: &str) -> u64 {
    num(&expect_worker(stats, id), key)
}

/// A server steering by load over 2 workers, both ready and steered to
/// (until the master has seen them ready, the kernel's hash places
/// connections); the stats line that showed them ready.
fn two_steered_workers() -> (Server, serde_json::Value) {
    two_steered_workers_with(&[])
}

/// [`two_steered_workers`] with `extra` arguments.
fn two_steered_workers_with(extra: &[&str]) -> (Server, serde_json::Value) {
    let mut args = vec!["--mode", "reuseport", "--steer", "load", "--workers", "2", "--no-pin"];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    let available = eventually(Duration::from_secs(10), || [1, 2].iter().all(|&id| steer_of(&s.stats(), id).is_u64()));
    assert!(available, "ready workers are available: {}", s.stats());
    assert_eq!(s.stats()["steer"], "load", "the stats line says how it steers");
    (s, ready)
}

#[test]
fn steer_load_counts_every_connection_sent_and_accepted() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let (s, _) = two_steered_workers();
    const CONNECTIONS: u64 = 200;
    for i in 0..CONNECTIONS {
        close_request(s.addr()).unwrap_or_else(|e| panic!("connection {i}: {e}"));
    }
    // Every connection was sent by the program and counted by the worker that
    // took it (or by the master, which hands on what waited on a worker that
    // stalled: then one worker's count is the other's gain). A worker
    // publishes its counts once per loop turn: wait for all of them.
    stats_when_settled(&s, CONNECTIONS, CONNECTIONS);
    // Under load the kernel may run the program twice for one connection (a
    // SYN it dropped after the program chose, seen again): the master writes
    // such a count off within a window of looks (`Drift`), so nothing is
    // left waiting.
    let mut stats = serde_json::Value::Null;
    let drained = eventually(Duration::from_secs(5), || {
        stats = s.stats();
        [1, 2].iter().all(|&id| steer_of_key(&stats, id, "waiting") == 0)
    });
    assert!(drained, "connections still counted waiting: {stats}");
    let total = |key| [1, 2].iter().map(|&id| steer_of_key(&stats, id, key)).sum::<u64>();
    assert_eq!(total("accepted"), CONNECTIONS, "{stats}");
    let extra = total("steered").saturating_sub(CONNECTIONS);
    assert!(total("steered") >= CONNECTIONS && extra <= 2, "the program sent {}: {stats}", total("steered"));
    if total("rescued") == 0 && extra == 0 {
        for id in [1, 2] {
            assert_eq!(steer_of_key(&stats, id, "steered"), steer_of_key(&stats, id, "accepted"), "{stats}");
        }
    }
}

/// On `[::]` the program places connections from `[::1]` and IPv4-mapped
/// ones from `127.0.0.1` alike, by load: 40 held open, half of each family,
/// split evenly (each one sent weighs on its listener until the master's
/// next look; the kernel's hash would split them as a coin does), every
/// one counted sent and accepted.
#[test]
fn steer_load_on_an_ipv6_wildcard_steers_both_families_by_load() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let (s, _) = two_steered_workers_with(&["--bind", "[::]:0"]);
    let port = s.addr().port();
    let to = [
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
    ];
    const HELD: usize = 40;
    let mut held = Vec::with_capacity(HELD);
    for i in 0..HELD {
        let mut c = util::Conn::connect(to[i % 2]);
        c.get_ok();
        held.push(c);
    }
    let mut stats = serde_json::Value::Null;
    let settled = eventually(Duration::from_secs(5), || {
        stats = s.stats();
        stats_totals(&stats) == (HELD as u64, HELD as u64, HELD as u64)
    });
    assert!(settled, "{stats}");
    let live: Vec<u64> = [1, 2].iter().map(|&id| num(&expect_worker(&stats, id), "live")).collect();
    assert!(live[0].abs_diff(live[1]) <= 4, "held connections by worker {live:?}: {stats}");
    let steered: u64 = [1, 2].iter().map(|&id| steer_of_key(&stats, id, "steered")).sum();
    assert!(steered >= HELD as u64, "the program sent {steered} of {HELD}: {stats}");
    drop(held);

    // A worker stopped: what the program sent it of a burst from both
    // families is taken from its IPv6 listener by the master and handed on.
    let victim = num(&expect_worker(&stats, 2), "pid") as u32;
    let listener = socket_inode(victim, 5).expect("worker 2's listener");
    stats_when_idle(&s);
    let (stopped, _) = stop_between_turns(victim);
    let unanswered = burst_of_requests_to(&to, BURST);
    assert!(unanswered.is_empty(), "with worker 2 stopped, connections went unanswered: {unanswered:?}");
    let stats = s.stats();
    assert!(steer_of_key(&stats, 2, "rescued") >= 1, "none of {BURST} at once sent to the stopped worker: {stats}");
    assert_eq!(accept_queue(listener), Some(0), "its IPv6 listener's queue (/proc/net/tcp6): {stats}");
    stopped.continue_now();
}

/// Connections opened at once just after a worker stops: the program sends
/// the stopped worker some of them before what waits there counts (its
/// grace of a millisecond), as it would a client's in the gap.
const BURST: usize = 64;

/// Opens `n` connections at once, then asks one `Connection: close` request
/// on each and reads every answer, each allowed [`CLIENT_TIMEOUT`]; the
/// answers that were not a 200.
fn burst_of_requests(addr: std::net::SocketAddr, n: usize) -> Vec<String> {
    burst_of_requests_to(&[addr], n)
}

/// [`burst_of_requests`] with the connections made to each of `to` in turn.
fn burst_of_requests_to(to: &[std::net::SocketAddr], n: usize) -> Vec<String> {
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let stream =
            TcpStream::connect(to[i % to.len()]).unwrap_or_else(|e| panic!("connection {i} of the burst: {e}"));
        streams.push(stream);
    }
    let mut unanswered = Vec::new();
    for (i, stream) in streams.into_iter().enumerate() {
        let answer = (|| -> std::io::Result<u16> {
            stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
            let mut reader = BufReader::new(stream);
            reader.get_mut().write_all(GET_CLOSE)?;
            Ok(read_response(&mut reader)?.status)
        })();
        match answer {
            Ok(200) => {}
            other => unanswered.push(format!("connection {i}: {other:?}")),
        }
    }
    unanswered
}

#[test]
fn steer_load_a_stopped_worker_gets_no_new_connection_and_what_waits_on_it_is_handed_on() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let (s, ready) = two_steered_workers();
    let victim = num(&expect_worker(&ready, 2), "pid") as u32;
    let listener = socket_inode(victim, 5).expect("worker 2's listener");
    stats_when_idle(&s);
    // Stopped between turns: it holds no connection it has not served.
    let (stopped, _) = stop_between_turns(victim);
    let unanswered = burst_of_requests(s.addr(), BURST);
    assert!(unanswered.is_empty(), "with worker 2 stopped, connections went unanswered: {unanswered:?}");
    let stats = s.stats();
    let rescued = steer_of_key(&stats, 2, "rescued");
    assert!(rescued >= 1, "the program sent the stopped worker none of {BURST} at once: {stats}");
    assert_eq!(steer_of(&stats, 2), "stalled", "{stats}");
    // Under churn it gets nothing new, and its queue stays empty.
    let load = patient_churn(s.addr(), Duration::from_secs(15));
    for i in 0..300 {
        close_request(s.addr()).unwrap_or_else(|e| panic!("fresh connection {i} with worker 2 stopped: {e}"));
    }
    let emptied = eventually(Duration::from_secs(10), || {
        accept_queue(listener) == Some(0) && steer_of_key(&s.stats(), 2, "waiting") == 0
    });
    assert!(emptied, "connections wait on the stopped worker: queue {:?}, {}", accept_queue(listener), s.stats());
    let answered_before = load.ok();
    stopped.continue_now();
    let (ok, failures) = load.finish();
    let stats = s.stats();
    eprintln!(
        "steer load with worker 2 stopped: {rescued} of a burst of {BURST} handed on; churn {answered_before} \
         answers while stopped, {ok} in all, {} failures; {stats}",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}");
    let back = eventually(Duration::from_secs(10), || steer_of(&s.stats(), 2).is_u64());
    assert!(back, "worker 2 is available again once it runs: {}", s.stats());
}

/// What the master logs when a take from stopped worker 2's queue finds no
/// descriptor free.
const RESCUE_AT_LIMIT: &str = "rescuing from worker 2's queue pauses";

/// The least time between two of the master's fd-limit lines is 10 s (its
/// rate limit); a rescue that logged every try would log every 5 ms (each
/// steer round). Half the period tells them apart whatever the scheduling.
const FD_LIMIT_LINES_AT_LEAST: Duration = Duration::from_secs(5);

/// A master at its open-file limit (its reserve full, no number free beyond
/// it) cannot take what waits on a stopped worker's queue: it says so in its
/// rate-limited fd-limit line, naming the worker whose queue waits, once per
/// period however many rounds try; it takes nothing meanwhile; once its
/// limit is raised back it takes that queue and the other worker answers
/// every client, while the stopped one stays stopped. Before, the rescue's
/// accepts failed with `EMFILE` in silence, every round.
#[test]
fn steer_load_a_rescue_at_the_masters_fd_limit_says_so_once_a_period_and_resumes() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    // No watchdog: the stopped worker must stay the one whose queue waits.
    let (s, ready) = two_steered_workers_with(&["--watchdog", "0"]);
    let victim = num(&expect_worker(&ready, 2), "pid") as u32;
    let listener = socket_inode(victim, 5).expect("worker 2's listener");
    stats_when_idle(&s);
    let (_continue, _) = stop_between_turns(victim);
    let master = s.pid();
    // The first number it does not hold: none is free below the limit.
    let before = set_soft_fd_limit(master, fd_limit_leaving(master, 0));
    // All connected before any asks, so worker 1 holds them all and the
    // program sends the stopped worker some before it counts as stalled.
    let mut clients: Vec<TcpStream> = (0..BURST)
        .map(|i| TcpStream::connect(s.addr()).unwrap_or_else(|e| panic!("connection {i} of the burst: {e}")))
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.write_all(GET_CLOSE).unwrap_or_else(|e| panic!("connection {i}'s request: {e}"));
    }
    let said = |l: &str| l.starts_with("the master is at its open-file limit") && l.contains(RESCUE_AT_LIMIT);
    let first = s.try_wait_for_log_from(0, said, Duration::from_secs(10));
    let Some((first, line)) = first else {
        panic!("no line about the rescue at the fd limit; {}; log:\n{}", s.stats(), s.log().join("\n"))
    };
    let first_seen = Instant::now();
    let waiting = accept_queue(listener).unwrap_or_default();
    assert!(waiting >= 1, "{line}: but nothing waits on worker 2's listener");
    // Every round tries again (the queue still waits), and fails: the line
    // comes again only a rate-limit period later.
    s.wait_for_log_from(first + 1, said, Duration::from_secs(30));
    let between = first_seen.elapsed();
    assert!(between >= FD_LIMIT_LINES_AT_LEAST, "the rescue logged at {line:?} and again {between:?} later");
    let stats = s.stats();
    assert_eq!(steer_of_key(&stats, 2, "rescued"), 0, "taken at the fd limit: {stats}");
    assert_eq!(accept_queue(listener), Some(waiting), "{stats}");

    set_soft_fd_limit(master, before);
    let mut unanswered = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        let answer = (|| -> std::io::Result<u16> {
            client.set_read_timeout(Some(CLIENT_TIMEOUT))?;
            Ok(read_response(&mut BufReader::new(client))?.status)
        })();
        if !matches!(answer, Ok(200)) {
            unanswered.push(format!("connection {i}: {answer:?}"));
        }
    }
    assert!(unanswered.is_empty(), "with the limit raised and worker 2 still stopped: {unanswered:?}");
    let stats = s.stats();
    assert_eq!(steer_of_key(&stats, 2, "rescued"), waiting, "{stats}");
    assert_eq!(accept_queue(listener), Some(0), "{stats}");
}

/// The worker (1 or 2) whose stats show `live` open connections, when only
/// one does.
fn worker_with_live(s: &Server, live: u64) -> u64 {
    let mut found = None;
    let seen = eventually(Duration::from_secs(10), || {
        let stats = s.stats();
        let with: Vec<u64> = [1, 2].into_iter().filter(|&id| num(&expect_worker(&stats, id), "live") == live).collect();
        found = (with.len() == 1).then(|| with[0]);
        found.is_some()
    });
    assert!(seen, "no single worker with {live} live connections: {}", s.stats());
    found.unwrap_or_default()
}

/// The start of a next request's header block: a connection that sent it is
/// busy, so its worker cannot close it to make room (it would an idle one).
const BEGUN: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";

/// Ends the request `BEGUN` began, and checks its answer.
fn finish_begun(c: &mut util::Conn) {
    c.send(b"\r\n");
    check_ok(&c.read());
}

/// Two steered workers with `--max-conns 1`, each holding one keep-alive
/// connection with a next request begun (`BEGUN`): both full, both
/// `unavailable` to the program.
pub(crate) struct BothFull {
    pub(crate) s: Server,
    pub(crate) first: util::Conn,
    pub(crate) second: util::Conn,
    /// The worker that holds `first`.
    pub(crate) first_on: u64,
    /// Workers 1 and 2's listeners (their sockets' inodes).
    pub(crate) listeners: [u64; 2],
}

impl BothFull {
    pub(crate) fn start() -> BothFull {
        let (s, ready) = two_steered_workers_with(&["--max-conns", "1", "--header-timeout", "120"]);
        let listener = |id| socket_inode(num(&expect_worker(&ready, id), "pid") as u32, 5).expect("a listener");
        let listeners = [listener(1), listener(2)];
        let mut first = util::Conn::connect(s.addr());
        first.get_ok();
        first.send(BEGUN);
        let first_on = worker_with_live(&s, 1);
        // The program learns that worker is full at the master's next write
        // of the loads (every 5 ms): until then the second could tie with
        // the other worker (a write between the worker's accept and its live
        // count weighs the first at nothing) and land on the full one.
        let first_full = eventually(Duration::from_secs(10), || steer_of(&s.stats(), first_on) == "unavailable");
        assert!(first_full, "worker {first_on} full to the program: {}", s.stats());
        let mut second = util::Conn::connect(s.addr());
        second.get_ok();
        second.send(BEGUN);
        let both_full = eventually(Duration::from_secs(10), || {
            let stats = s.stats();
            [1, 2].iter().all(|&id| steer_of(&stats, id) == "unavailable")
        });
        assert!(both_full, "both workers full: {}", s.stats());
        BothFull { s, first, second, first_on, listeners }
    }
}

/// Waits until a connection waits on one of the two workers' listeners
/// (`listener`: a worker id's listener inode); that worker's id.
pub(crate) fn wait_queued_on_one(listener: impl Fn(u64) -> u64) -> u64 {
    let mut queued_on = None;
    let placed = eventually(Duration::from_secs(10), || {
        queued_on = [1u64, 2].into_iter().find(|&id| accept_queue(listener(id)) == Some(1));
        queued_on.is_some()
    });
    assert!(placed, "the third connection waits on neither listener");
    queued_on.unwrap_or_default()
}

#[test]
fn steer_load_a_full_workers_queue_goes_to_a_worker_with_room() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let BothFull { s, mut first, second, first_on, listeners } = BothFull::start();
    let listener = |id: u64| listeners[id as usize - 1];
    // Every worker unavailable: the kernel's hash places the next one, on a full worker's queue.
    let mut third = TcpStream::connect(s.addr()).expect("connect the third");
    third.write_all(GET_CLOSE).expect("the third's request");
    let queued_on = wait_queued_on_one(listener);
    // The other worker gets room; the one it waits on stays full.
    if queued_on == first_on {
        drop(second);
    } else {
        drop(first);
        first = second;
    }
    third.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("read timeout");
    let mut reader = BufReader::new(third);
    let answer = read_response(&mut reader).map(|r| r.status);
    assert!(matches!(answer, Ok(200)), "the third connection, waiting on full worker {queued_on}: {answer:?}");
    // Handed on by the master, not taken by its worker once it had room.
    finish_begun(&mut first);
    let rescued = steer_of_key(&s.stats(), queued_on, "rescued");
    assert_eq!(rescued, 1, "{}", s.stats());
}

/// [`BothFull`], then a third client placed on one worker's listener; the
/// other worker gets room (and arms an accept for it), and the master hands
/// it the third, rescued from the full worker's queue, which takes that
/// room and begins a next request: busy.
struct RescuedIntoRoom {
    s: Server,
    /// The client whose worker kept its connection busy (the third's was let go).
    still_busy: util::Conn,
    third: util::Conn,
    /// The worker the third was placed on, and the one it was handed to.
    queued_on: u64,
    given_room: u64,
    listeners: [u64; 2],
}

impl RescuedIntoRoom {
    fn start() -> RescuedIntoRoom {
        let BothFull { s, first, second, first_on, listeners } = BothFull::start();
        let listener = |id: u64| listeners[id as usize - 1];
        let mut third = util::Conn::connect(s.addr());
        third.send(GET);
        let queued_on = wait_queued_on_one(listener);
        let given_room = 3 - queued_on;
        let still_busy = if queued_on == first_on {
            drop(second);
            first
        } else {
            drop(first);
            second
        };
        check_ok(&third.read());
        third.send(BEGUN);
        let stats = s.stats();
        assert_eq!(steer_of_key(&stats, queued_on, "rescued"), 1, "{stats}");
        RescuedIntoRoom { s, still_busy, third, queued_on, given_room, listeners }
    }
}

/// Clients the hash places while both workers are full, in
/// [`steer_load_a_client_accepted_where_a_rescued_connection_took_the_room_is_answered`].
const PLACED: usize = 8;

#[test]
fn steer_load_a_client_accepted_where_a_rescued_connection_took_the_room_is_answered() {
    // A worker given room arms an accept for it; the master hands it a
    // connection rescued from a full worker's queue, which takes that room;
    // the armed accept stays, and completes when the hash next places a
    // client on the worker's listener. Until 2026-12-04 the worker found no
    // slot for it and closed it: a reset, with the request unanswered (seen
    // under idle reclaim, where the master counts idle connections as room
    // for a rescue: a few fresh connections reset a run on io_uring only).
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let RescuedIntoRoom { s, mut still_busy, third, given_room, listeners, .. } = RescuedIntoRoom::start();
    let listener = |id: u64| listeners[id as usize - 1];
    // Both full again: the hash places each new client on either listener.
    let clients: Vec<TcpStream> = (0..PLACED)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr()).expect("connect");
            c.write_all(GET_CLOSE).expect("a request");
            c
        })
        .collect();
    // They wait on the listeners: the worker cancels the accept it armed
    // once the rescued connection takes its room (since 2026-12-05), and a
    // client an armed accept took before its cancel waits for a slot,
    // counted live.
    let mut seen = (0, 0);
    let all_placed = eventually(Duration::from_secs(10), || {
        let waiting: u64 = [1, 2].into_iter().map(|id| accept_queue(listener(id)).unwrap_or_default()).sum();
        let live = num(&expect_worker(&s.stats(), given_room), "live");
        seen = (waiting, live);
        waiting + live.saturating_sub(1) == PLACED as u64
    });
    assert!(
        all_placed,
        "of {PLACED} new clients, {} wait on the listeners and worker {given_room} holds {} beside the rescued \
         one: the others were closed unanswered; {}",
        seen.0,
        seen.1.saturating_sub(1),
        s.stats()
    );
    // Room on both: every one of them is answered.
    finish_begun(&mut still_busy);
    drop(still_busy);
    drop(third);
    for (i, c) in clients.into_iter().enumerate() {
        c.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("read timeout");
        let answer = read_response(&mut BufReader::new(c)).map(|r| r.status);
        assert!(matches!(answer, Ok(200)), "new client {i} of {PLACED}: {answer:?}; {}", s.stats());
    }
}

/// Clients placed at most in
/// [`steer_load_a_client_placed_where_a_rescued_connection_took_the_room_goes_where_room_comes`]
/// until one lands on the worker holding the rescued connection.
const PLACED_AT_MOST: usize = 64;

#[test]
fn steer_load_a_client_placed_where_a_rescued_connection_took_the_room_goes_where_room_comes() {
    // A worker given room arms an accept for it; the master hands it a
    // connection rescued from a full worker's queue, which takes that room.
    // Until 2026-12-05 the armed accept stayed and took the next client the
    // hash placed on the worker's listener, which then waited for that
    // worker's own slot (after a restart, up to the second an idle
    // connection takes to be reclaimed) while another worker had room.
    // Now the accept is cancelled, and the client waits in the queue, from
    // which the master hands it to the first worker with room.
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let RescuedIntoRoom { s, mut still_busy, mut third, queued_on, given_room, listeners } = RescuedIntoRoom::start();
    let listener = |id: u64| listeners[id as usize - 1];
    let stats = s.stats();
    // On io_uring that worker had armed an accept for the room: cancelled.
    let ring_of = (stats["backend"] == "uring").then(|| num(&expect_worker(&stats, given_room), "pid") as u32);
    let accepts_come_to = |n| {
        let Some(pid) = ring_of else { return };
        let mut armed = None;
        let seen = eventually(Duration::from_secs(10), || {
            armed = ring_accepts_armed(pid);
            armed == Some(n)
        });
        assert!(seen, "worker {given_room} has {armed:?} accepts armed where {n} are due: {}", s.stats());
    };
    accepts_come_to(0);
    // Both full: the hash places each new client on either listener; place
    // them until one lands on the worker holding the third (in its queue,
    // or taken off it with no slot: one more live).
    let mut placed = Vec::new();
    let mut seen = (0, 0, 0);
    while seen.1 == 0 && seen.2 <= 1 {
        assert!(placed.len() < PLACED_AT_MOST, "none of {} placed on worker {given_room}", placed.len());
        let mut c = TcpStream::connect(s.addr()).expect("connect");
        c.write_all(GET_CLOSE).expect("a request");
        placed.push(c);
        let landed = eventually(Duration::from_secs(10), || {
            let waiting = |id: u64| accept_queue(listener(id)).unwrap_or_default();
            let live = num(&expect_worker(&s.stats(), given_room), "live");
            seen = (waiting(queued_on), waiting(given_room), live);
            seen.0 + seen.1 + live.saturating_sub(1) == placed.len() as u64
        });
        assert!(landed, "client {} placed nowhere: {seen:?}; {}", placed.len(), s.stats());
    }
    // Room comes on the other worker only: every client is answered there,
    // the one that landed beside the busy third too.
    finish_begun(&mut still_busy);
    drop(still_busy);
    for (i, c) in placed.into_iter().enumerate() {
        c.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("read timeout");
        let answer = read_response(&mut BufReader::new(c)).map(|r| r.status);
        assert!(
            matches!(answer, Ok(200)),
            "client {i} (waiting {} on worker {queued_on}, {} on worker {given_room}, {} live there with the busy \
             third): {answer:?}; {}",
            seen.0,
            seen.1,
            seen.2,
            s.stats()
        );
    }
    assert_eq!(steer_of_key(&s.stats(), given_room, "rescued"), 1, "handed on from its queue: {}", s.stats());
    // Room again: the accept is armed again.
    finish_begun(&mut third);
    drop(third);
    accepts_come_to(1);
}

#[test]
fn steer_load_scale_down_under_churn_loses_nothing() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let path = control_path("scale", "steer");
    let s = Server::start(&[
        "--mode",
        "reuseport",
        "--steer",
        "load",
        "--workers",
        "4",
        "--no-pin",
        "--control",
        path.to_str().unwrap(),
    ]);
    s.wait_workers_ready(4, START_TIMEOUT);
    scale_down_4_to_1_under_churn(&s, &path, "steer load");
    let workers = status(&path)["workers"].clone();
    assert_eq!(workers.as_array().map(Vec::len), Some(1), "{workers}");
    assert!(workers[0]["steer"].is_u64(), "the one left is steered to: {workers}");
}

/// The binary run as `nobody` with no capabilities: it may not load BPF programs.
const UNPRIVILEGED: [&str; 4] = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];

#[test]
fn without_privilege_steer_load_is_an_error_and_the_default_falls_back_to_hash() {
    if !nix::unistd::geteuid().is_root() || std::process::Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("skipped: needs root and setpriv to run the binary unprivileged");
        return;
    }
    let explicit = ["--mode", "reuseport", "--steer", "load", "--bind", "127.0.0.1:0", "--workers", "1"];
    let bounded = [&["timeout", "20"][..], &UNPRIVILEGED[..]].concat();
    let (status, _, stderr) = run_under(&bounded, &explicit);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("--steer load: cannot create a REUSEPORT_SOCKARRAY map"), "{stderr}");
    assert!(stderr.contains("needs CAP_BPF and CAP_NET_ADMIN, or root"), "{stderr}");
    let s = Server::start_under(&UNPRIVILEGED, &["--mode", "reuseport", "--workers", "1", "--no-pin"]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let why = s.log().into_iter().filter(|l| l.starts_with("reuseport: steering by the kernel's hash")).count();
    assert_eq!(why, 1, "one line says why: {:?}", s.log());
    assert!(expect_worker(&s.stats(), 1).get("steer").is_none(), "{}", s.stats());
    assert_eq!(s.stats()["steer"], "hash", "the stats line says how it steers");
    let (status, _, stderr) = run_to_exit(&["--mode", "rr", "--steer", "hash", "--bind", "127.0.0.1:0"], START_TIMEOUT);
    assert!(!status.success() && stderr.contains("--steer applies to --mode reuseport only"), "{stderr}");
}

/// Runs the binary under `wrapper` with `args`, expecting it to exit soon.
fn run_under(wrapper: &[&str], args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let out = std::process::Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(BIN)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Both workers full (`--max-conns 1`) with four connections waiting on
/// their queues; one worker gets room for one. What waits beyond that room
/// stays in the queues and is answered as room comes, one at a time: none
/// gets `503`. Before, the master took every stuck queue whole as soon as a
/// worker had any room, handed it one and refused the rest (found with a
/// scale-up of 2 full workers: 16 of 40 waiting connections got `503`).
#[test]
fn steer_load_what_waits_beyond_the_room_of_the_workers_that_take_waits_for_room() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let BothFull { s, first, mut second, listeners, .. } = BothFull::start();
    let listener = |id: u64| listeners[id as usize - 1];
    // The kernel's hash places the next four on the full workers' queues.
    let waiting: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr()).expect("connect a waiting client");
            c.write_all(GET_CLOSE).expect("a waiting client's request");
            c
        })
        .collect();
    let queued = eventually(Duration::from_secs(10), || {
        [1u64, 2].into_iter().map(|id| accept_queue(listener(id)).unwrap_or(0)).sum::<u64>() == 4
    });
    assert!(queued, "four connections wait on the listeners");
    // Room for one, on one worker; the other stays full.
    drop(first);
    for (i, c) in waiting.into_iter().enumerate() {
        c.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("read timeout");
        let answer = read_response(&mut BufReader::new(c)).map(|r| r.status);
        assert!(matches!(answer, Ok(200)), "waiting client {i}: {answer:?}; {}", s.stats());
    }
    finish_begun(&mut second);
    assert_eq!(num(&s.stats(), "refused"), 0, "{}", s.stats());
}
