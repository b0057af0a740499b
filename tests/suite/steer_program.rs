//! The steering program on its own, without the master: the test makes a
//! `SO_REUSEPORT` group of listeners, loads the program, puts the listeners
//! and their loads in its maps, and counts where real connections on
//! 127.0.0.1 land, accepting each one and counting it accepted as a worker
//! does (through the same mapped accept tally). A listener marked
//! unavailable gets nothing; an empty one beside a loaded one gets nearly
//! everything; equal loads split evenly, and between two of the master's
//! looks connections alternate among equals, whatever packets of no
//! connection (a late FIN) reach the listeners meanwhile; a listener that
//! stops accepting stops getting connections at once (one at most when the loads are
//! equal; however light its load, [`PENDING_CAP`] at most while its worker's
//! loop turns, none once one has waited [`TURN_GRACE_NS`] without a turn); and
//! a listener closed with connections queued hands them to the others
//! (counted in `TCPMigrateReqSuccess`). Loading BPF needs root (or CAP_BPF
//! and CAP_NET_ADMIN): without it the tests say so and pass.

use crate::util;

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use ringmaster_balancer::bpf::program::{PENDING_CAP, TURN_GRACE_NS, UNAVAILABLE};
use ringmaster_balancer::bpf::sys::accept_queue_len;
use ringmaster_balancer::bpf::Steering;
use ringmaster_balancer::listener::{bind_reuseport_anchor, listen_reuseport};
use ringmaster_engine::AcceptTally;
use util::sockets::migrations;

/// How long a connection may take to reach an accept queue before the test fails.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A group of listeners on one port, steered by the program.
struct Group {
    _anchor: OwnedFd,
    local: SocketAddr,
    listeners: Vec<TcpListener>,
    /// Each listener's accept tally, mapped as its worker would.
    tallies: Vec<AcceptTally>,
    steering: Steering,
}

/// `n` listeners with the program attached, each at index = its position,
/// with `loads`; `None` when this process may not load BPF programs.
fn group(loads: &[u32]) -> Option<Group> {
    group_on("127.0.0.1:0", loads)
}

/// [`group`] with listeners bound to `bind` (`[::]:0`: IPv6, dual-stack).
fn group_on(bind: &str, loads: &[u32]) -> Option<Group> {
    let steering = match Steering::load() {
        Ok(steering) => steering,
        Err(e) if nix::unistd::geteuid().is_root() => {
            panic!("root cannot load the steering program: {e}\n{}", e.verifier_log)
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            return None;
        }
    };
    let (anchor, local) = bind_reuseport_anchor(bind.parse().expect("an address")).expect("anchor");
    let mut group = Group { _anchor: anchor, local, listeners: Vec::new(), tallies: Vec::new(), steering };
    for (key, &load) in loads.iter().enumerate() {
        let listener = TcpListener::from(listen_reuseport(local, 1024).expect("listener"));
        listener.set_nonblocking(true).expect("nonblocking");
        group.steering.insert(key, listener.as_fd()).expect("into the maps");
        group.steering.set_load(key, load).expect("load");
        let (fd, offset) = group.steering.accept_tally(key).expect("a tally for every key");
        group.tallies.push(AcceptTally::map_shared(fd, offset).expect("map the tally"));
        group.listeners.push(listener);
    }
    group.steering.attach(group.listeners[0].as_fd()).expect("attach");
    Some(group)
}

impl Group {
    /// Opens `n` connections one at a time, each accepted (and counted
    /// accepted) before the next, the master looking before each: how many
    /// each listener got.
    fn spread(&self, n: usize) -> Vec<usize> {
        let mut counts = vec![0; self.listeners.len()];
        for listener in self.sequence(n, true, None) {
            counts[listener] += 1;
        }
        counts
    }

    /// Opens `n` connections one at a time, each accepted (and counted
    /// accepted) before the next, the master looking ([`Group::look`])
    /// before each when `looks`, else never: the listener each went to.
    /// Every `vanish_every`th connection ends by [`vanish`]: its client's
    /// FIN falls to the listeners.
    fn sequence(&self, n: usize, looks: bool, vanish_every: Option<usize>) -> Vec<usize> {
        self.sequence_to(&[self.local], n, looks, vanish_every)
    }

    /// [`Group::sequence`] with the connections made to each of `to` in
    /// turn (on a `[::]` group: `[::1]` and `127.0.0.1`, an IPv4-mapped peer).
    fn sequence_to(&self, to: &[SocketAddr], n: usize, looks: bool, vanish_every: Option<usize>) -> Vec<usize> {
        let mut sequence = Vec::with_capacity(n);
        for i in 1..=n {
            if looks {
                self.look();
            }
            let client = TcpStream::connect(to[i % to.len()]).expect("connect");
            let (listener, server) = self.accept_one();
            sequence.push(listener);
            if vanish_every.is_some_and(|every| i % every == 0) {
                vanish(server, client);
            }
        }
        sequence
    }

    /// Accepts the next connection to arrive, counting it accepted as a
    /// worker would: the listener it went to, and the connection.
    fn accept_one(&self) -> (usize, TcpStream) {
        loop {
            for (key, listener) in self.listeners.iter().enumerate() {
                match listener.accept() {
                    Ok((server, _)) => {
                        self.accepted(key);
                        return (key, server);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("accept: {e}"),
                }
            }
            let fds: Vec<BorrowedFd> = self.listeners.iter().map(|l| l.as_fd()).collect();
            assert!(readable(&fds), "a connection arrived nowhere");
        }
    }

    /// Accepts until `n` connections have arrived over the listeners,
    /// counting each accepted for the program as a worker would.
    fn accept_all(&self, n: usize) -> Vec<usize> {
        let mut counts = vec![0; self.listeners.len()];
        while counts.iter().sum::<usize>() < n {
            for (key, (listener, count)) in self.listeners.iter().zip(counts.iter_mut()).enumerate() {
                loop {
                    match listener.accept() {
                        Ok(_) => {
                            *count += 1;
                            self.accepted(key);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            }
            if counts.iter().sum::<usize>() < n {
                let fds: Vec<BorrowedFd> = self.listeners.iter().map(|l| l.as_fd()).collect();
                assert!(readable(&fds), "only {counts:?} of {n} connections arrived");
            }
        }
        counts
    }

    /// What the master does as it writes the loads: a new window for what
    /// is sent, and each listener's counts evened out with its accept queue
    /// (the master over each 100 ms; with nothing in flight between two
    /// connections here, at once). Under load a few SYNs are counted sent
    /// without ever reaching the listener chosen; left alone, such a count
    /// would make an idle listener look as if a connection waited on it.
    fn look(&self) {
        for (key, listener) in self.listeners.iter().enumerate() {
            self.steering.start_window(key);
            let Some((sent, accepted)) = self.steering.flow_of(key) else { continue };
            let queued = u64::from(accept_queue_len(listener.as_fd()).expect("queue"));
            let excess = sent.wrapping_sub(accepted).wrapping_sub(queued) as i64;
            if excess != 0 {
                self.steering.count_accepted(key, excess);
            }
        }
    }

    /// Counts a connection accepted on listener `key`, as its worker does.
    fn accepted(&self, key: usize) {
        self.tallies[key].add(1);
        self.tallies[key].turned_now();
    }
}

/// Waits until one of `fds` has a connection to accept: false after
/// [`ARRIVAL_TIMEOUT`].
fn readable(fds: &[BorrowedFd<'_>]) -> bool {
    let mut polled: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `polled` is a live array of `polled.len()` pollfds the kernel may write.
    let ready =
        unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, ARRIVAL_TIMEOUT.as_millis() as i32) };
    assert!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
    ready > 0
}

/// Ends a connection as the kernel does when it has no room left for the
/// server side's `TIME_WAIT`: the server's socket goes without a word
/// (closed in repair mode, which sends nothing), so the client's FIN finds
/// no connection and falls to the listeners, where it runs the steering
/// program as a SYN does. A listener answers it with a reset; the client's
/// socket hangs up when that arrives, and the FIN has been through the
/// program by then.
fn vanish(server: TcpStream, client: TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: TCP_REPAIR reads one int from `on`, which outlives the call; `server` is an open socket.
    let set = unsafe {
        libc::setsockopt(
            server.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR,
            std::ptr::addr_of!(on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "TCP_REPAIR (needs CAP_NET_ADMIN): {}", std::io::Error::last_os_error());
    drop(server);
    client.shutdown(Shutdown::Write).expect("shutdown");
    let mut polled = libc::pollfd { fd: client.as_raw_fd(), events: 0, revents: 0 };
    // SAFETY: one live pollfd the kernel may write.
    let ready = unsafe { libc::poll(&mut polled, 1, ARRIVAL_TIMEOUT.as_millis() as i32) };
    assert!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
    assert!(polled.revents & libc::POLLHUP != 0, "no reset came back for a FIN of no connection");
}

/// Jain's fairness index: 1 when every count is the same, 1/n when one has all.
fn jain(counts: &[usize]) -> f64 {
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let squares: f64 = counts.iter().map(|&c| (c as f64).powi(2)).sum();
    sum * sum / (counts.len() as f64 * squares)
}

#[test]
fn a_listener_marked_unavailable_gets_no_connection() {
    let Some(group) = group(&[0, 0, UNAVAILABLE, 0]) else { return };
    let counts = group.spread(400);
    assert_eq!(counts[2], 0, "{counts:?}");
    assert_eq!(counts.iter().filter(|&&c| c > 0).count(), 3, "the others share: {counts:?}");
}

/// With most listeners unavailable (their workers full, draining or
/// starting), the one available gets every connection: after its draws of
/// two the program scans for it rather than leave the SYN to the kernel's
/// hash. (With three draws alone and 7 of 8 unavailable, 42 % of SYNs fell
/// to the hash, most of them onto a listener whose worker could not take
/// them.)
#[test]
fn the_one_available_listener_among_many_unavailable_gets_every_connection() {
    let mut loads = [UNAVAILABLE; 8];
    loads[5] = 3;
    let Some(group) = group(&loads) else { return };
    let counts = group.spread(200);
    assert_eq!(counts[5], 200, "{counts:?}");
}

/// A connection the master's look finds sent but not yet accepted weighs on
/// its listener once accepted too, until the master's next load says it
/// is live: the window starts at what was accepted, not at what was sent.
/// Before, it weighed nothing once accepted (neither in the load, which
/// the look wrote before the accept, nor waiting), and the next connection
/// tied with an empty listener and went to either.
#[test]
fn a_connection_in_flight_at_the_masters_look_weighs_once_accepted() {
    let Some(group) = group(&[0, 0]) else { return };
    for round in 0..40 {
        let first = TcpStream::connect(group.local).expect("connect the first");
        // Where it went, waiting unaccepted.
        let mut on = None;
        let arrived = util::eventually(ARRIVAL_TIMEOUT, || {
            on = (0..2).find(|&key| accept_queue_len(group.listeners[key].as_fd()).ok() == Some(1));
            on.is_some()
        });
        assert!(arrived, "round {round}: the first connection reached no queue");
        let on = on.unwrap_or_default();
        // The master looks (its loads stay 0: the worker has not adopted it).
        group.look();
        let (server, _) = group.listeners[on].accept().expect("accept the first");
        group.accepted(on);
        let second = TcpStream::connect(group.local).expect("connect the second");
        let (second_on, second_server) = group.accept_one();
        assert_ne!(second_on, on, "round {round}: the second went to the listener that holds the first");
        // Both close; the next look starts the next round with nothing live.
        drop((first, server, second, second_server));
        group.look();
    }
}

#[test]
fn an_empty_listener_beside_a_loaded_one_gets_nearly_everything() {
    let Some(group) = group(&[100, 0]) else { return };
    let counts = group.spread(500);
    assert!(counts[1] >= 490, "{counts:?}");
}

/// On a `[::]` group the program reads IPv6 SYNs and IPv4-mapped ones alike
/// (its packet is the TCP header, whatever the IP version): an empty
/// listener beside a loaded one gets nearly every connection from `[::1]`
/// and from `127.0.0.1`, where the kernel's hash would split them. Between
/// two looks, connections of both families alternate among equals.
#[test]
fn an_ipv6_wildcard_group_steers_ipv6_and_ipv4_mapped_connections() {
    let Some(mut group) = group_on("[::]:0", &[100, 0]) else { return };
    let port = group.local.port();
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let v4 = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    for to in [v6, v4] {
        let mut counts = [0; 2];
        for listener in group.sequence_to(&[to], 200, true, None) {
            counts[listener] += 1;
        }
        assert!(counts[1] >= 196, "to {to}: {counts:?}");
    }
    group.steering.set_load(0, 0).expect("load");
    group.look();
    // Every tenth leaves a FIN of no connection behind it (a FIN the
    // program must tell from a SYN in either family).
    let sequence = group.sequence_to(&[v6, v4], 100, false, Some(10));
    let mut lead = 0i64;
    for (i, &listener) in sequence.iter().enumerate() {
        lead += if listener == 0 { 1 } else { -1 };
        assert!(lead.abs() <= 1, "after {} connections listener 0 leads by {lead}: {sequence:?}", i + 1);
    }
}

#[test]
fn equal_loads_split_evenly() {
    let Some(group) = group(&[7, 7, 7, 7]) else { return };
    let counts = group.spread(1000);
    // With a look before each connection, equal loads leave the program
    // two random choices among equals: a uniform draw. Over 1,000 draws,
    // Jain falls below 0.99 about once in 56 runs by chance alone (a
    // chi-square of 10.1 with 3 degrees of freedom), below 0.97 about once
    // in a million; one listener drawn 1.5 times as often as the others
    // gives 0.964.
    assert!(jain(&counts) >= 0.97, "Jain {:.4} for {counts:?}", jain(&counts));
}

#[test]
fn connections_between_two_looks_alternate_among_equals() {
    let Some(group) = group(&[0, 0]) else { return };
    // Every tenth leaves a FIN of no connection behind it, which runs the
    // program but is no connection: counted sent, it would weigh on a
    // listener as one waiting, and the other would take the next two.
    let sequence = group.sequence(400, false, Some(10));
    // Each one sent weighs on its listener until the master's next look, so
    // the next goes to the other: never two in a row ahead.
    let mut lead = 0i64;
    for (i, &listener) in sequence.iter().enumerate() {
        lead += if listener == 0 { 1 } else { -1 };
        assert!(lead.abs() <= 1, "after {} connections listener 0 leads by {lead}: {sequence:?}", i + 1);
    }
}

/// Opens `n` connections one at a time while listener 0 stops accepting
/// (its worker's loop still `turning`, or not) and listener 1 accepts each
/// one that reaches it before the next: how many wait on listener 0 at the end.
fn stop_accepting_on_the_first(group: &Group, n: usize, turning: bool) -> usize {
    let mut clients = Vec::with_capacity(n);
    let (stopped, accepting) = (&group.listeners[0], &group.listeners[1]);
    let mut waiting = accept_queue_len(stopped.as_fd()).expect("queue") as usize;
    for i in 0..n {
        group.look();
        if turning {
            group.tallies[0].turned_now();
        }
        clients.push(TcpStream::connect(group.local).expect("connect"));
        // It is in one of the queues once its handshake is done; wait for it there.
        let deadline = std::time::Instant::now() + ARRIVAL_TIMEOUT;
        loop {
            match accepting.accept() {
                Ok(_) => {
                    group.accepted(1);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
            let queued = accept_queue_len(stopped.as_fd()).expect("queue") as usize;
            if queued > waiting {
                waiting = queued;
                break;
            }
            assert!(std::time::Instant::now() < deadline, "connection {i} arrived nowhere");
            let mut polled = libc::pollfd { fd: accepting.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one live pollfd the kernel may write; a short wait, then the queue is looked at again.
            unsafe { libc::poll(&mut polled, 1, 10) };
        }
    }
    waiting
}

#[test]
fn a_listener_that_stops_accepting_gets_at_most_one_more_among_equals() {
    let Some(group) = group(&[0, 0]) else { return };
    let waiting = stop_accepting_on_the_first(&group, 200, true);
    assert!(waiting <= 1, "{waiting} of 200 connections wait on the listener that stopped accepting");
}

#[test]
fn a_listener_that_stops_accepting_gets_pending_cap_at_most_however_light() {
    let Some(group) = group(&[0, 100]) else { return };
    // Its worker's loop still turns (as one stuck in a slow handler would).
    let waiting = stop_accepting_on_the_first(&group, 200, true);
    assert!(
        (1..=PENDING_CAP as usize).contains(&waiting),
        "{waiting} wait: at {PENDING_CAP} it counts as backed up beside a load of 100"
    );
}

#[test]
fn a_listener_whose_worker_stops_turning_gets_nothing_once_one_waited_past_the_grace() {
    let Some(group) = group(&[0, 100]) else { return };
    assert_eq!(stop_accepting_on_the_first(&group, 1, false), 1, "the lighter one takes the first");
    // The program's grace runs out: nothing else happens meanwhile, so a
    // slower machine only makes the wait longer.
    std::thread::sleep(Duration::from_nanos(2 * u64::from(TURN_GRACE_NS)));
    let waiting = stop_accepting_on_the_first(&group, 200, false);
    assert_eq!(waiting, 1, "one waited and its worker's loop has not turned: it counts as backed up");
}

#[test]
fn a_listener_removed_from_the_maps_gets_nothing_and_the_last_takes_its_index() {
    let Some(mut group) = group(&[0, 0, 0]) else { return };
    let fds: Vec<_> = group.listeners.iter().map(|l| l.as_fd()).collect();
    group.steering.remove(0, |key| fds.get(key).copied()).expect("remove");
    assert_eq!(group.steering.keys(), [2, 1], "the last moved into the hole");
    let counts = group.spread(300);
    assert_eq!(counts[0], 0, "{counts:?}");
    assert!(counts[1] > 0 && counts[2] > 0, "{counts:?}");
}

#[test]
fn a_closed_listener_hands_its_queue_to_the_others() {
    let Some(mut group) = group(&[0, UNAVAILABLE]) else { return };
    if !group.steering.migrates() {
        eprintln!("skipped: this kernel has no BPF_SK_REUSEPORT_SELECT_OR_MIGRATE (5.14)");
        return;
    }
    // Everything queues on listener 0, which never accepts.
    const QUEUED: usize = 50;
    let clients: Vec<TcpStream> = (0..QUEUED).map(|_| TcpStream::connect(group.local).expect("connect")).collect();
    // A bystander in the group but not in the maps: the program never
    // chooses it, the kernel's hash may. Accepted on with the others.
    let bystander = TcpListener::from(listen_reuseport(group.local, 1024).expect("bystander"));
    bystander.set_nonblocking(true).expect("nonblocking");
    group.listeners.push(bystander);
    // Listener 1 becomes available, listener 0 leaves the maps and closes.
    let (before, failed_before) = migrations();
    group.steering.set_load(1, 0).expect("load");
    let fds: Vec<_> = group.listeners.iter().map(|l| l.as_fd()).collect();
    group.steering.remove(0, |key| fds.get(key).copied()).expect("remove");
    drop(fds);
    let closed = group.listeners.remove(0);
    // The connections may not have reached the queue yet: wait for them there first.
    // Bounded: one that went to another listener would keep it short for good.
    let since = std::time::Instant::now();
    let mut waiting = 0;
    while waiting < QUEUED {
        assert!(
            readable(&[closed.as_fd()]) && since.elapsed() < ARRIVAL_TIMEOUT,
            "{waiting} of {QUEUED} connections queued after {:?}",
            since.elapsed()
        );
        waiting = ringmaster_balancer::bpf::sys::accept_queue_len(closed.as_fd()).expect("queue") as usize;
    }
    drop(closed);
    let counts = group.accept_all(QUEUED);
    assert_eq!(counts, [QUEUED, 0], "every queued connection moved, by the program, to the listener left in the maps");
    let (after, failed_after) = migrations();
    assert!(after - before >= QUEUED as u64, "TCPMigrateReqSuccess +{}", after - before);
    eprintln!("migrated {} (failed {})", after - before, failed_after - failed_before);
    drop(clients);
}

/// A program the verifier accepts loads whatever the length of the log it
/// would have written: the first load asks for none. (It used to pass a
/// buffer of no size, which the kernel refuses with `EINVAL`, so every
/// program was loaded again with the log on, and one whose log outgrew
/// the 64 KiB buffer failed with `ENOSPC`: the steering program did once
/// its scan after the draws made it longer.)
#[test]
fn a_valid_program_loads_however_long_its_verifier_log() {
    use ringmaster_balancer::bpf::insn::{Asm, Reg};
    use ringmaster_balancer::bpf::sys::{load_program, AttachType, PROG_TYPE_SK_REUSEPORT};
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root");
        return;
    }
    // 4,000 instructions, each a line of the log (about 20 bytes): 80 KB.
    let mut asm = Asm::new();
    for _ in 0..4000 {
        asm.mov(Reg::R0, 1);
    }
    asm.exit();
    let insns = asm.finish().expect("assembles").resolve(&[]).expect("no maps");
    if let Err(e) = load_program(PROG_TYPE_SK_REUSEPORT, AttachType::Select, &insns, c"GPL", "rm_long") {
        panic!("a valid program was refused: {} ({} bytes of log)", e.error, e.log.len());
    }
}

#[test]
fn a_program_the_verifier_rejects_comes_back_with_its_log() {
    use ringmaster_balancer::bpf::insn::Asm;
    use ringmaster_balancer::bpf::sys::{load_program, AttachType, PROG_TYPE_SK_REUSEPORT};
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root");
        return;
    }
    // `exit` with r0 never written.
    let mut asm = Asm::new();
    asm.exit();
    let insns = asm.finish().expect("assembles").resolve(&[]).expect("no maps");
    let e = load_program(PROG_TYPE_SK_REUSEPORT, AttachType::Select, &insns, c"GPL", "rm_bad").expect_err("rejected");
    assert_eq!(e.error.raw_os_error(), Some(libc::EACCES), "{}", e.error);
    assert!(e.log.contains("R0 !read_ok"), "{}", e.log);
}
