//! Several ringmaster hosts behind the kernel's own L4 balancing: three hosts
//! in network namespaces behind a router that DNATs a service IP to them with
//! an nftables map (`numgen random`, or `jhash` on the 4-tuple), and a health
//! loop that keeps the map to the hosts whose health path answers 200 — all
//! made, and removed, by `scripts/multihost.sh` (see tests/suite/util/multihost.rs).
//! Clients load the service from the client namespace.
//!
//! - spread: Jain's index over the hosts' accepted connections >= 0.95, with
//!   either hash;
//! - graceful removal (SIGTERM, `--drain-delay`): health says 503, the loop
//!   takes the host out, the connections it holds are still served; a
//!   second SIGTERM, once the test has seen it out, begins its drain; no
//!   request fails, none new reaches it once out; restarted, it is taken
//!   back at 200 (each step waits for the event before it, not for a time);
//! - hard failure (SIGKILL of a host's master and workers): only what that
//!   host held fails, and every connection begun once the loop has taken it
//!   out (within one health interval) succeeds;
//! - rolling upgrade (`ctl upgrade` of every host in turn): no request fails;
//! - a round in which no probe answers (every host stopped) keeps the map,
//!   and the loop says the stall as it begins and as it ends.
//!
//! Root with `ip netns` only (CI is); elsewhere each test says it skips. The
//! tests take the machine one at a time.

use crate::util;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use util::multihost::*;

/// One topology at a time: they share two cores.
static MACHINE: Mutex<()> = Mutex::new(());

const SETTINGS: Settings = Settings {
    hosts: 3,
    health_interval: Duration::from_millis(250),
    probe_timeout: Duration::from_millis(500),
    drain_delay: Duration::from_millis(1500),
};

/// The graceful removal's: a drain delay no busy machine's health loop
/// needs all of, which the test cuts short once it has seen the host out
/// of the map, and probes that wait longer for an answer, so that a slow
/// one does not take a host out for a round (the removal must be the lame
/// duck's 503).
const GRACEFUL: Settings =
    Settings { probe_timeout: Duration::from_secs(2), drain_delay: Duration::from_secs(120), ..SETTINGS };
/// How long the loop may take to see a lame duck's 503 and take it out of
/// the map: well within [`GRACEFUL`]'s drain delay, so the host is still a
/// lame duck when this runs out. Well under a second on a quiet machine;
/// once 26 s with three CPU burners beside the test.
const OUT_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a test's load runs: every test ends it sooner.
const LOAD_LIMIT: Duration = Duration::from_secs(240);

/// The health loop's round a line of the script names (it ends `round N`).
fn health_round(line: &str) -> u64 {
    let number = line.rsplit("round ").next().and_then(|n| n.trim().parse().ok());
    number.unwrap_or_else(|| panic!("no health round in {line:?}"))
}

/// How long a command may take (an upgrade: a new master and its workers ready,
/// the old one drained).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a restarted host may take to answer its health check and be
/// back in the map: well under a second on a quiet machine, but once over
/// 5 s with the whole suite and two CPU-burning loops beside it.
const BACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The machine, and the topology; None (said) where these tests cannot run.
fn setup(tag: &str) -> Option<(MutexGuard<'static, ()>, Topology)> {
    setup_with(tag, SETTINGS)
}

/// As [`setup`], with `settings`.
fn setup_with(tag: &str, settings: Settings) -> Option<(MutexGuard<'static, ()>, Topology)> {
    let machine = MACHINE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(why) = skip_reason() {
        eprintln!("skipping the multi-host tests: {why}");
        return None;
    }
    Some((machine, Topology::up(tag, settings)))
}

fn answered_since(records: &[Record], since: Instant) -> usize {
    records.iter().filter(|r| r.began > since && r.host.is_some()).count()
}

#[test]
fn multihost_spread_over_hosts_is_even_with_numgen_random_and_jhash() {
    let Some((_machine, mut topology)) = setup("s") else { return };
    const CONNECTIONS: usize = 1200;
    for mode in ["random", "jhash"] {
        topology.command(&format!("hash {mode}"), COMMAND_TIMEOUT);
        let before: Vec<u64> = (1..=SETTINGS.hosts).map(|k| topology.accepted(k)).collect();
        let load = Load::start(&topology, 4, 0, Duration::from_secs(30));
        load.wait_for(&format!("{CONNECTIONS} answers"), Duration::from_secs(30), |r| r.len() >= CONNECTIONS);
        let records = load.finish();
        let failed = records.iter().filter(|r| r.failed()).count();
        let origin = records.first().map_or_else(Instant::now, |r| r.began);
        assert_eq!(failed, 0, "{mode}: failures {:?}", first_failures(&records, 5, origin));
        let seen = answers_per_host(&records);
        let seen: Vec<u64> = (1..=SETTINGS.hosts as u8).map(|k| seen.get(&k).copied().unwrap_or(0)).collect();
        // Each host's share from its own stats (health probes included, the
        // same few for each); they count an answer a moment after it left.
        let deadline = Instant::now() + Duration::from_secs(5);
        let shares = loop {
            let shares: Vec<u64> = (1..=SETTINGS.hosts).map(|k| topology.accepted(k) - before[k - 1]).collect();
            if shares.iter().zip(&seen).all(|(stats, client)| stats >= client) || Instant::now() >= deadline {
                break shares;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            shares.iter().zip(&seen).all(|(stats, client)| stats >= client),
            "{mode}: the hosts' stats {shares:?} count fewer connections than the clients saw answered {seen:?}"
        );
        let (by_stats, by_clients) = (jain(&shares), jain(&seen));
        eprintln!("spread ({mode}): {} connections; per host by their stats {shares:?} (Jain {by_stats:.4}), by the clients {seen:?} (Jain {by_clients:.4})", records.len());
        assert!(by_stats >= 0.95, "{mode}: Jain over hosts {by_stats:.4} < 0.95: {shares:?}");
        assert!(by_clients >= 0.95, "{mode}: Jain over hosts {by_clients:.4} < 0.95 by the clients: {seen:?}");
    }
}

#[test]
fn multihost_graceful_removal_fails_no_request_and_the_host_comes_back_at_200() {
    let Some((_machine, mut topology)) = setup_with("g", GRACEFUL) else { return };
    let load = Load::start(&topology, 3, 6, LOAD_LIMIT);
    let target = busiest(&load.keepalive_hosts);
    load.wait_for("300 answers", Duration::from_secs(30), |r| r.iter().filter(|r| r.host.is_some()).count() >= 300);
    // In the map as the stop begins (a probe slow on a busy machine can take a
    // host out for a round): its removal is then the lame duck's doing.
    if !topology.in_map(target as usize) {
        topology.wait_health(topology.len(), target as usize, "in", BACK_TIMEOUT);
    }

    let from = topology.len();
    let term = Instant::now();
    topology.command(&format!("stop {target}"), COMMAND_TIMEOUT);
    // The lame duck answers 503 and the loop takes it out; its drain has not
    // begun (the delay is far longer than this wait).
    let out = topology.wait_health(from, target as usize, "out", OUT_TIMEOUT);
    let removed_after = out.at - term;
    assert!(out.text.contains("answered 503"), "{}", out.text);
    // The lame duck still serves the keep-alive connections it holds.
    load.wait_for(
        &format!("an answer from host {target} on a connection it held, after it left the map"),
        Duration::from_secs(20),
        |r| r.iter().any(|r| r.host == Some(target) && !r.fresh && r.began > out.at),
    );
    // Only now the drain: a second SIGTERM cuts the drain delay short, so
    // the drain begins after the removal whatever the loop's pace (in
    // production the delay is set longer than the load balancer's reaction).
    let drain = Instant::now();
    topology.command(&format!("stop {target}"), COMMAND_TIMEOUT);
    topology.command(&format!("wait {target}"), COMMAND_TIMEOUT);
    let exited_after = drain.elapsed();

    let from = topology.len();
    let restart = Instant::now();
    topology.command(&format!("start {target}"), COMMAND_TIMEOUT);
    let back = topology.wait_health(from, target as usize, "in", BACK_TIMEOUT);
    assert!(back.text.contains("answered 200"), "{}", back.text);
    load.wait_for(&format!("a new connection answered by host {target} once back"), Duration::from_secs(30), |r| {
        r.iter().any(|r| r.fresh && r.host == Some(target) && r.began > back.at)
    });
    let records = load.finish();

    let failed: Vec<&Record> = records.iter().filter(|r| r.failed()).collect();
    let retried = records.iter().filter(|r| r.retried).count();
    // From the moment the map no longer had it to its restart, no new
    // connection reached it: only those it held were served.
    let strays: Vec<&Record> =
        records.iter().filter(|r| r.fresh && r.host == Some(target) && r.began > out.at && r.began < restart).collect();
    eprintln!(
        "graceful removal of host {target}: out of the map {removed_after:?} after SIGTERM, drained and exited \
         {exited_after:?} after the second; {} requests, {} failed, {retried} sent again after the server closed an \
         idle keep-alive connection; {} answered after it left the map",
        records.len(),
        failed.len(),
        answered_since(&records, out.at)
    );
    assert!(
        failed.is_empty(),
        "{} failed requests (times from SIGTERM): {:?}",
        failed.len(),
        first_failures(&records, 5, term)
    );
    let offsets: Vec<Duration> = strays.iter().map(|r| r.began - out.at).collect();
    assert!(
        strays.is_empty(),
        "{} new connections reached host {target} out of the map, begun this long after it left: {offsets:?}",
        strays.len()
    );
}

#[test]
fn multihost_hard_failure_fails_only_what_the_host_held() {
    let Some((_machine, mut topology)) = setup("h") else { return };
    let load = Load::start(&topology, 3, 6, Duration::from_secs(40));
    let target = busiest(&load.keepalive_hosts);
    load.wait_for("300 answers", Duration::from_secs(10), |r| r.iter().filter(|r| r.host.is_some()).count() >= 300);

    let from = topology.len();
    let kill = Instant::now();
    // Once this answers, every process of the host is gone and its listener closed.
    let killed = topology.command(&format!("kill {target}"), COMMAND_TIMEOUT);
    let out = topology.wait_health(from, target as usize, "out", Duration::from_secs(30));
    let removed_after = out.at - kill;
    // Refused, or reset under a probe in flight: no answer at all.
    assert!(!out.text.contains("answered"), "{}", out.text);
    // Taken out by the first round that probed after the kill: the one in
    // flight as it ended, or the next (counted in rounds, not in time: the
    // loop's pace depends on the machine).
    let (killed_in, out_in) = (health_round(&killed.text), health_round(&out.text));
    assert!(
        out_in <= killed_in + 1,
        "the loop took host {target} out in round {out_in}, the kill ended in round {killed_in}: {}",
        out.text
    );
    let killed = killed.at;
    load.wait_for("200 answers on connections begun once the host was out", Duration::from_secs(10), |r| {
        r.iter().filter(|r| r.fresh && r.began > out.at && r.host.is_some()).count() >= 200
    });

    let from = topology.len();
    topology.command(&format!("start {target}"), COMMAND_TIMEOUT);
    let back = topology.wait_health(from, target as usize, "in", BACK_TIMEOUT);
    load.wait_for(&format!("a new connection answered by host {target} once back"), Duration::from_secs(10), |r| {
        r.iter().any(|r| r.fresh && r.host == Some(target) && r.began > back.at)
    });
    let records = load.finish();

    let failed: Vec<&Record> = records.iter().filter(|r| r.failed()).collect();
    let held = failed.iter().filter(|r| r.held_by == Some(target)).count();
    let retried = records.iter().filter(|r| r.retried).count();
    let last_failure = failed.iter().map(|r| r.began).max();
    eprintln!(
        "hard failure of host {target}: out of the map {removed_after:?} after SIGKILL (health interval {:?}); \
         {} requests, {} failed: {held} on keep-alive connections it held, {} on connections begun before it was out \
         (the last {:?} after the kill); {retried} sent again on a new connection",
        SETTINGS.health_interval,
        records.len(),
        failed.len(),
        failed.len() - held,
        last_failure.map(|t| t.saturating_duration_since(kill)),
    );
    let told = |r: &Record| format!("{} (out of the map +{removed_after:?})", r.describe(kill));
    for r in &failed {
        assert!(
            r.held_by.is_none_or(|h| h == target),
            "a request on a connection held by host {:?}, which did not fail, failed: {}",
            r.held_by,
            told(r)
        );
        assert!(r.began < out.at, "a request begun after host {target} was out of the map failed: {}", told(r));
        // A new connection that failed: one the host had (begun before it
        // was dead: accepted, or in its queue) or one the map still sent to
        // it, refused by its kernel (no other host refuses a connection).
        let refused = r.error.as_deref().is_some_and(|e| e.starts_with("connect: ") && e.contains("refused"));
        assert!(
            r.held_by.is_some() || r.began < killed || refused,
            "a new connection begun after host {target} was dead failed other than by its refusal: {}",
            told(r)
        );
    }
}

#[test]
fn multihost_rolling_upgrade_of_every_host_fails_no_request() {
    let Some((_machine, mut topology)) = setup("u") else { return };
    let load = Load::start(&topology, 3, 6, Duration::from_secs(50));
    load.wait_for("300 answers", Duration::from_secs(10), |r| r.iter().filter(|r| r.host.is_some()).count() >= 300);
    let from = topology.len();
    let start = Instant::now();
    let mut took = Vec::new();
    for k in 1..=SETTINGS.hosts {
        let asked = Instant::now();
        let reply = topology.command(&format!("upgrade {k}"), COMMAND_TIMEOUT);
        took.push(asked.elapsed());
        assert!(reply.text.contains("drained and exited (status 0)"), "{}", reply.text);
        // The new master serves new connections.
        load.wait_for(&format!("a new connection answered by host {k}'s new master"), Duration::from_secs(10), |r| {
            r.iter().any(|r| r.fresh && r.host == Some(k as u8) && r.began > reply.at)
        });
    }
    let records = load.finish();
    let flaps: Vec<String> =
        topology.lines()[from..].iter().filter(|l| l.text.contains(" out: ")).map(|l| l.text.clone()).collect();
    let failed = records.iter().filter(|r| r.failed()).count();
    let retried = records.iter().filter(|r| r.retried).count();
    eprintln!(
        "rolling upgrade: ctl upgrade took {took:?}; {} requests, {failed} failed, {retried} sent again after the \
         server closed an idle keep-alive connection; hosts the loop took out meanwhile: {flaps:?}",
        records.len()
    );
    assert_eq!(failed, 0, "failed requests (times from the first upgrade): {:?}", first_failures(&records, 5, start));
}

/// How long a request waits for an answer before the test takes it as
/// waiting in the listen queue of the host whose master it stopped (any
/// other host answers one request in well under this, even on busy cores).
const UNANSWERED_AFTER: Duration = Duration::from_secs(1);

/// A client port whose connection a dead host reset reaches a live host
/// with its next connection. A connection that dies by a reset alone (here
/// one waiting in the host's listen queue as its listener closed) leaves
/// the router's conntrack entry in CLOSE, 10 s by default; a new SYN on
/// that tuple does not replace it (conntrack decides again only for a
/// tuple the client reset or closed itself), so the client's next
/// connection from that port, which its kernel hands out again within
/// seconds under churn, follows the stale entry to the dead host and is
/// refused although the map dropped that host long before. That is how
/// `multihost_hard_failure_fails_only_what_the_host_held` failed once under
/// load, 0.6 s after the host was out. The router now expires such entries
/// at once (`nf_conntrack_tcp_timeout_close=0` in its namespace).
#[test]
fn multihost_a_client_port_a_dead_host_reset_reaches_a_live_host_next() {
    let Some((_machine, mut topology)) = setup("r") else { return };
    let target = 1;
    let from = topology.len();
    // `rr`: the master accepts; stopped, it leaves connections in its queue.
    let master = host_pid(&topology, target);
    let _stopped = util::procs::stop(master);
    let (service, netns) = (topology.service, topology.client_netns.clone());
    let waiting = std::thread::spawn(move || {
        enter_netns(&netns);
        unanswered_from(service, UNANSWERED_AFTER)
    });
    let (port, mut stream) = waiting.join().expect("the client thread").expect("a connection host 1 did not answer");
    // Its listener closes with the connection in its queue: a reset.
    topology.command(&format!("kill {target}"), COMMAND_TIMEOUT);
    topology.wait_health(from, target, "out", Duration::from_secs(30));
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("a read timeout");
    let ended = std::io::Read::read(&mut stream, &mut [0u8; 1]);
    assert!(
        ended.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection from port {port}, in the queue of host {target}'s listener as it closed: {ended:?}"
    );
    drop(stream);

    let netns = topology.client_netns.clone();
    let again = std::thread::spawn(move || {
        enter_netns(&netns);
        close_request_from(service, port)
    });
    let again = again.join().expect("the client thread");
    assert!(
        again.as_ref().is_ok_and(|&host| host as usize != target),
        "a new connection from client port {port}, whose last one host {target} reset as it died, once host \
         {target} was out of the map: {again:?}"
    );
}

/// Every host's master stopped (SIGSTOP; in `rr` the master accepts, so
/// each probe waits in a listen queue) past the probe timeout: no probe
/// answers, and a round like that says nothing of one host against another
/// (the loop's own stall looks the same). The loop says the stall and keeps
/// the map; once the hosts run again it says the stall is over, every host
/// in all along. Until 2026-12-08 it took every host out, the map empty
/// (every client refused), and put them all back a round later.
#[test]
fn multihost_a_round_in_which_no_probe_answers_keeps_the_map() {
    let Some((_machine, topology)) = setup("q") else { return };
    let from = topology.len();
    let stopped: Vec<_> = (1..=SETTINGS.hosts).map(|k| util::procs::stop(host_pid(&topology, k))).collect();
    let stall = topology.wait_line(from, |l| l.starts_with("stall: "), Duration::from_secs(30));
    drop(stopped);
    let over = topology.wait_line(from, |l| l.starts_with("stall over: "), Duration::from_secs(30));
    let every_host = (1..=SETTINGS.hosts).map(|k| k.to_string()).collect::<Vec<_>>().join(" ");
    assert!(stall.text.contains(&format!("the map is kept ({every_host})")), "{}", stall.text);
    // From the stop to the first round that heard a probe again, the map
    // never changed (what that round finds comes after its `stall over`).
    let lines = topology.lines();
    let upto = lines.iter().position(|l| l.at == over.at && l.text == over.text).expect("the stall-over line");
    let changes: Vec<&str> =
        lines[from..upto].iter().map(|l| l.text.as_str()).filter(|t| t.contains("map (")).collect();
    assert!(changes.is_empty(), "the map changed during the stall: {changes:?}");
}
