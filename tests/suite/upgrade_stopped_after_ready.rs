//! A stop of the old master as the new one says it is ready: the stop gives
//! the upgrade up with the word unread, and stops the new master, which
//! believes it took over. The old master serves its `--drain-delay` on the
//! sockets they share; the new one must stop at once and leave them to it.
//! Before, it served a drain delay of its own and then stopped as if alone:
//! whichever master's delay ended first (their 100 ms ticks decide) answered
//! the queue `503` and shut the listeners while the other still served its
//! delay, and the first to exit removed the control socket's path (seen
//! driving 4 looping clients through such stops: 1 to 12 clients refused
//! or `503` in 8 of 18; with no delay the new master shut the listener
//! under the old one all the same).
//!
//! The first test is the old master, so that the order (the word sent,
//! then the stop) is the test's, not a race's: it hands a listener, the
//! control socket and a readiness channel down, reads the word, and signals
//! the new master as a stopping old master does. The second drives two real
//! masters into the same order (which the old master's loop may still read
//! the other way: then it has handed over, and the new master serves on).
//! Each again with the new master stopped by another process too as the
//! old one gives it up (`kill OLD NEW`): its two `SIGTERM`s are one, named
//! after that process, and only the old master's word on the readiness
//! channel (`given up`) tells it.

use crate::util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use util::control::ctl;
use util::ops::NotifySocket;
use util::procs::{kill, process_state};
use util::upgrade::{parse_new_master, start_as_new_master, status_when, wait_gone, TempDir};
use util::Server;

#[test]
fn a_new_master_its_old_master_stops_after_the_ready_word_stops_at_once_and_leaves_the_sockets() {
    // With a delay its own would outlast the test's wait; without, it stopped and shut the listener.
    for delay in ["0", "600"] {
        stopped_after_ready(delay, Stop::ByTheOldMasterOnly);
    }
}

/// Both masters stopped at once (`kill OLD NEW`, `KillMode=control-group`)
/// as the word is on its way: the new master's two pending `SIGTERM`s are
/// one, named after the first sender (not the old master). Before, it took
/// that for an operator's stop and served a delay of its own, then shut
/// the listeners under the old master (seen: 8 `503`s and 758 refusals in
/// the ~95 ms between the two delays' ends); now the old master's word on
/// the readiness channel, written before its signal, tells it.
#[test]
fn a_new_master_stopped_by_another_as_its_old_master_gives_it_up_stops_at_once_and_leaves_the_sockets() {
    for delay in ["0", "600"] {
        stopped_after_ready(delay, Stop::ByAnotherFirst);
    }
}

/// Who stops the new master once it has said it is ready.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// The old master (this process) reads the word, then signals it (as an
    /// old master that does not say on the channel that it gives up).
    ByTheOldMasterOnly,
    /// Another process signals it first, then the old master, the word
    /// unread, says on the channel it gives the upgrade up and signals it:
    /// both signals pending at once (it is stopped meanwhile).
    ByAnotherFirst,
}

/// The test as the old master: hands a listener, the control socket and a
/// readiness channel down, waits for the word, and stops the new master as
/// `stop` says; it must stop at once and leave the sockets.
fn stopped_after_ready(delay: &str, stop: Stop) {
    let dir = TempDir::new(&format!("upgrade-stopped-after-ready-{stop:?}-{delay}"));
    let control = dir.join("control.sock");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let control_listener = UnixListener::bind(&control).expect("bind the control socket");
    let (mut ours, theirs) = UnixStream::pair().expect("a socket pair");
    let socket = NotifySocket::at_path(&format!("stopped-after-ready-{stop:?}-{delay}"));
    let fds = [listener.as_raw_fd(), theirs.as_raw_fd(), control_listener.as_raw_fd()];
    let path = control.to_str().expect("UTF-8");
    let args = ["--bind", "127.0.0.1:0", "--workers", "1", "--no-pin", "--drain-delay", delay, "--control", path];
    let mut child = start_as_new_master(&fds, "listen=3,ready=4,control=5", &args, &socket.name);
    drop(theirs);
    let pid = child.0.id();

    ours.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    match stop {
        Stop::ByTheOldMasterOnly => {
            // Its word, once every worker is ready; then the stop it gets
            // from a stopping old master (this process).
            let mut word = [0u8; 5];
            ours.read_exact(&mut word).expect("the new master's ready word");
            assert_eq!(&word, b"ready", "delay {delay}");
            kill(pid, libc::SIGTERM);
        }
        Stop::ByAnotherFirst => {
            // Its word has come (left unread); it is held stopped while
            // another process's stop, then the old master's, are pending.
            wait_for_word_unread(&ours);
            let resume = util::procs::stop(pid);
            let deadline = Instant::now() + Duration::from_secs(15);
            while process_state(pid) != Some('T') {
                assert!(Instant::now() < deadline, "delay {delay}: the new master did not stop");
                std::thread::sleep(Duration::from_millis(5));
            }
            let status =
                std::process::Command::new("sh").args(["-c", &format!("kill -TERM {pid}")]).status().expect("run sh");
            assert!(status.success(), "delay {delay}: another process's SIGTERM");
            // As an old master does: the word is not checked (a new master
            // that closed the channel after its own word, as they did
            // before, cannot hear it).
            let _ = ours.write_all(b"given up\n");
            kill(pid, libc::SIGTERM);
            drop(resume);
        }
    }

    let what = format!("delay {delay}: the new master its old master stopped did not stop at once");
    let (status, log) = child.exit_and_log(Duration::from_secs(15), &what);
    assert_eq!(status.code(), Some(0), "delay {delay}: {log}");
    assert!(!log.contains("stopped listening"), "delay {delay}: {log}");

    // The listener still listens for the old master: a client waits in
    // its queue and is taken from there.
    let client = TcpStream::connect(listener.local_addr().expect("its address"))
        .unwrap_or_else(|e| panic!("delay {delay}: the listener no longer listens ({e}): {log}"));
    let (accepted, from) = listener.accept().expect("accept the queued client");
    assert_eq!(from, client.local_addr().expect("the client's address"));
    drop((accepted, client));

    // The control socket's path is still the old master's.
    assert!(control.exists(), "delay {delay}: the new master removed the control socket's path: {log}");
    let _ctl = UnixStream::connect(&control).expect("connect to the control socket");
    control_listener.accept().expect("the old master's control socket takes the client");

    // systemd heard it take over, then give the old pid back; no stop of its own.
    let messages = socket.pending();
    let last_main = messages.iter().rev().find_map(|m| m.lines().find_map(|l| l.strip_prefix("MAINPID=")));
    assert_eq!(last_main, Some(std::process::id().to_string().as_str()), "delay {delay}: {messages:?}");
    assert!(!messages.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")), "delay {delay}: {messages:?}");
    assert!(log.contains(&format!("the old master (pid {}) gave this one up", std::process::id())), "{log}");
}

/// Waits until the new master's word is on the channel, without reading it.
fn wait_for_word_unread(ours: &UnixStream) {
    let mut word = [0u8; 6];
    // SAFETY: recv writes at most `word.len()` bytes into `word`; the
    // socket's read timeout bounds the wait.
    let got = unsafe {
        libc::recv(ours.as_raw_fd(), word.as_mut_ptr().cast(), word.len(), libc::MSG_PEEK | libc::MSG_WAITALL)
    };
    assert_eq!(
        usize::try_from(got).ok(),
        Some(word.len()),
        "the new master's ready word: {}",
        std::io::Error::last_os_error()
    );
    assert_eq!(&word, b"ready\n");
}

/// Two real masters: the old one stopped (its `SIGTERM` pending while it is
/// itself stopped) before it reads the word the new one then sends. It
/// gives the upgrade up and serves its drain delay (600 s, cut short by a
/// second `stop`); the new master is gone long before, and the listener and
/// the control socket answer from the old master until that second stop.
#[test]
fn an_old_master_stopped_as_the_ready_word_comes_serves_its_delay_alone() {
    old_master_stopped_as_ready(false);
}

/// The same, with the new master stopped by another process too, just
/// before (it is held stopped until the old master has signalled it: the
/// two `SIGTERM`s are one, named after the other process).
#[test]
fn both_masters_stopped_as_the_ready_word_comes_the_old_one_serves_its_delay_alone() {
    old_master_stopped_as_ready(true);
}

fn old_master_stopped_as_ready(new_stopped_too: bool) {
    let dir = TempDir::new(&format!("upgrade-stopped-as-ready-{new_stopped_too}"));
    let binary = dir.install();
    let control = dir.join("control.sock");
    let path = control.to_str().expect("UTF-8");
    let args = ["--workers", "1", "--no-pin", "--drain-delay", "600", "--control", path];
    let mut old = Server::start_binary(&binary, &args);
    status_when(&control, 1, |_| true);
    let mark = old.log_len();
    old.signal(libc::SIGUSR2);
    let (_, started) =
        old.wait_for_log_from(mark, |l| l.contains("upgrade: new master started (pid "), Duration::from_secs(10));
    let new_master = parse_new_master(&started).expect("its pid");
    // Once the old master has turned a few times since (its signal poll
    // armed again), while the new one starts its workers (the new master's
    // line may come before the old one's about starting it).
    old.wait_for_log_from(mark, |l| l.starts_with("upgrade: taking over from pid"), Duration::from_secs(10));
    let resume = util::procs::stop(old.pid());
    old.signal(libc::SIGTERM);
    let told = format!("ringmaster[{new_master}]: upgrade: every worker is ready: told the old master");
    old.wait_for_log_from(
        mark,
        |l| l.starts_with("upgrade: every worker is ready: told the old master"),
        Duration::from_secs(10),
    );
    assert!(old.raw_log().iter().any(|l| l.contains(&told)), "{:?}", old.raw_log());
    let resume_new = new_stopped_too.then(|| {
        let resume_new = util::procs::stop(new_master);
        let deadline = Instant::now() + Duration::from_secs(15);
        while process_state(new_master) != Some('T') {
            assert!(Instant::now() < deadline, "the new master did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        let status = std::process::Command::new("sh")
            .args(["-c", &format!("kill -TERM {new_master}")])
            .status()
            .expect("run sh");
        assert!(status.success(), "another process's SIGTERM");
        resume_new
    });
    drop(resume);
    let (_, outcome) = old.wait_for_log_from(
        mark,
        |l| l.starts_with("upgrade failed: ") || l.contains("is ready: this master"),
        Duration::from_secs(10),
    );
    if let Some(resume_new) = resume_new {
        if outcome.starts_with("upgrade failed: ") {
            // Once the old master has signalled it (its stop's line comes after).
            old.wait_for_log_from(mark, |l| l.starts_with("SIGTERM received"), Duration::from_secs(10));
        }
        drop(resume_new);
    }
    if outcome.contains("is ready: this master") {
        // The word was read first: handed over, the new master serves on.
        eprintln!("the old master read the word before the stop: it handed over");
        assert_eq!(old.wait_exit(Duration::from_secs(15)).code(), Some(0));
        old.connect().get_ok();
        assert_eq!(ctl(&control, &["stop"]).0, 0, "the new master answers the control socket");
        ctl(&control, &["stop"]);
        assert!(wait_gone(&[new_master], Duration::from_secs(15)).is_empty());
        return;
    }
    assert!(outcome.starts_with("upgrade failed: this master is stopping"), "{outcome}");
    let left = wait_gone(&[new_master], Duration::from_secs(15));
    assert!(left.is_empty(), "the new master its old master gave up did not stop at once: {:?}", old.raw_log());
    // The old master serves its delay on, on the listener and the control socket the new one left.
    old.connect().get_ok();
    let (code, out, _) = ctl(&control, &["status"]);
    assert_eq!(code, 0, "the control socket answers from the old master: {out}");
    let (code, out, _) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"), "a second stop cuts the delay short");
    assert_eq!(old.wait_exit(Duration::from_secs(15)).code(), Some(0));
    assert!(!old.log().iter().any(|l| l.contains("cannot stop listening")), "{:?}", old.raw_log());
    assert!(dir.running().is_empty(), "left: {:?}", dir.running());
}
