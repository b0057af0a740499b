//! The syscalls of the epoll reactor, each a small wrapper that turns `-1`
//! into `io::Error` and a new descriptor into an `OwnedFd` at once. Every
//! `unsafe` of the epoll side is here, and the accept burst both reactors
//! make on a ready listener.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Turns a C return value into a result: `-1` is the thread's `errno`.
fn check<T: Copy + PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Owns a descriptor a syscall just returned.
fn owned(raw: RawFd) -> OwnedFd {
    // SAFETY: called only with a new descriptor the kernel just created for
    // this process, which nothing else owns.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// A new epoll instance.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the flag is valid.
    check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map(owned)
}

/// `EPOLL_CTL_ADD` or `EPOLL_CTL_MOD` of `fd` with `events`, tagged with the fd itself.
pub fn epoll_ctl(epoll: BorrowedFd<'_>, op: libc::c_int, fd: RawFd, events: u32) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: fd as u64 };
    // SAFETY: `event` is a valid epoll_event for the duration of the call.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut event) }).map(drop)
}

/// Waits up to `timeout_ms` (-1: forever) for events, filling `events` up
/// to its capacity. An interrupted wait returns no events.
pub fn epoll_wait(epoll: BorrowedFd<'_>, events: &mut Vec<libc::epoll_event>, timeout_ms: i32) -> io::Result<()> {
    events.clear();
    let room = events.capacity().min(i32::MAX as usize) as i32;
    // SAFETY: the kernel writes at most `room` events into the vector's spare
    // capacity, which is that large.
    let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), room, timeout_ms) };
    match check(n) {
        // SAFETY: the kernel initialised the first `n` events.
        Ok(n) => unsafe { events.set_len(n as usize) },
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// A non-blocking monotonic timerfd, disarmed.
pub fn timerfd() -> io::Result<OwnedFd> {
    let flags = libc::TFD_NONBLOCK | libc::TFD_CLOEXEC;
    // SAFETY: no pointers; the clock and flags are valid.
    check(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, flags) }).map(owned)
}

/// Arms `timer` to expire once, `after` from now.
pub fn timerfd_once(timer: BorrowedFd<'_>, after: Duration) -> io::Result<()> {
    // A zero it_value would disarm the timer: expire after a nanosecond instead.
    let nanos = after.subsec_nanos().max(u32::from(after.is_zero()));
    let value = libc::timespec { tv_sec: after.as_secs() as libc::time_t, tv_nsec: nanos as libc::c_long };
    let spec = libc::itimerspec { it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 }, it_value: value };
    // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
    check(unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) }).map(drop)
}

/// Reads a timerfd's expiry count (`WouldBlock` while it has not expired).
pub fn read_timer(timer: BorrowedFd<'_>) -> io::Result<u64> {
    let mut count = 0u64;
    // SAFETY: reading 8 bytes into a u64 we own.
    check(unsafe { libc::read(timer.as_raw_fd(), (&mut count as *mut u64).cast(), 8) })?;
    Ok(count)
}

/// Makes `fd` non-blocking (the flag belongs to the open file: every process
/// sharing it sees it).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller holds; no pointers.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// One `accept4` on a non-blocking listener; the connection is close-on-exec
/// and blocking, as the ring's accept makes it.
pub fn accept(listener: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers ask for no peer address.
    let raw = unsafe { libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    check(raw).map(owned)
}

/// A non-blocking `recv` into `buf`.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes.
pub unsafe fn recv(fd: RawFd, buf: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: the caller guarantees the buffer.
    check(unsafe { libc::recv(fd, buf.cast(), len, libc::MSG_DONTWAIT) }).map(|n| n as usize)
}

/// A non-blocking `send` of `buf` that never raises `SIGPIPE`.
///
/// # Safety
/// `buf` must be valid for reads of `len` bytes.
pub unsafe fn send(fd: RawFd, buf: *const u8, len: usize) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: the caller guarantees the buffer.
    check(unsafe { libc::send(fd, buf.cast(), len, flags) }).map(|n| n as usize)
}

/// A non-blocking `sendmsg` that never raises `SIGPIPE`.
///
/// # Safety
/// `header` and everything it points to must be valid for the call.
pub unsafe fn sendmsg(fd: RawFd, header: *const libc::msghdr) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: the caller guarantees the header.
    check(unsafe { libc::sendmsg(fd, header, flags) }).map(|n| n as usize)
}

/// Closes a listener's queue to newcomers, leaving in it what is there and
/// what is on its way: a socket filter that drops a connection's first
/// packet (a SYN without ACK), so that the client tries again in a second,
/// by when the listener is shut and the kernel refuses it, while a handshake
/// under way completes and joins the queue. Between a stop's last accept
/// and [`stop_listening`], which resets what waits, a client that connected
/// would be reset otherwise: seen with clients that connect again as soon as
/// their `503` comes, in one stop of ten.
pub fn close_queue_to_newcomers(listener: RawFd) -> io::Result<()> {
    // Classic BPF over the TCP header (a socket filter sees the packet from
    // there): its flags byte, SYN (0x02) set and ACK (0x10) not, is dropped.
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter { code: code as u16, jt, jf, k };
    let mut program = [
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 13),
        op(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, 0, 0, 0x12),
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, 0x02),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
    ];
    let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
    // SAFETY: `fprog` and the instructions it points to live across the
    // call, which copies them; the size is the struct's.
    check(unsafe {
        libc::setsockopt(
            listener,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Takes a listening socket out of listening, for every process that holds
/// it (`shutdown(SHUT_RD)` acts on the socket, not the descriptor): the
/// kernel refuses new connections to it from then on, and resets any still
/// in its queue.
pub fn stop_listening(listener: RawFd) -> io::Result<()> {
    // SAFETY: shutdown on a descriptor the caller holds; no pointers.
    check(unsafe { libc::shutdown(listener, libc::SHUT_RD) }).map(|_| ())
}

/// True for an accept error that ends nothing: a connection reset before it
/// was accepted (`ECONNABORTED`; it left the queue), or a signal (`EINTR`).
/// The next accept on the listener may succeed.
pub fn accept_goes_on(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR))
}

/// Connections accepted for one readiness of a listener before other fds get
/// a turn (the rest are accepted next turn, without waiting).
pub const ACCEPT_BATCH: usize = 256;

/// How an accept burst ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Burst {
    /// The queue is empty (`EAGAIN`): wait for the next connection.
    Drained,
    /// [`ACCEPT_BATCH`] taken, maybe more waiting: go on next turn.
    More,
    /// An error ended the accept (its completion, without `more`, is out).
    Done,
}

/// Accepts what is waiting on a non-blocking listener, up to
/// [`ACCEPT_BATCH`]: one completion per connection (with `more`), and a last
/// one without `more` if an error ends it (as it ends a multishot accept on
/// the ring).
pub fn accept_burst(listener: RawFd, token: super::Token, out: &mut Vec<super::Completion>) -> Burst {
    match accept_up_to(listener, ACCEPT_BATCH, token, out) {
        Taken::All { went_on: _ } => Burst::More,
        Taken::Ended(burst) => burst,
    }
}

/// As [`accept_burst`], but a TCP listener's queue is counted first
/// ([`accept_queue_len`]) and only that many are accepted: no `accept4` ends
/// at `EAGAIN`, which costs the kernel a socket and a file made and freed
/// for nothing. For an edge-triggered listener only: a connection queued
/// after the count raises its own event. A listener that cannot be counted
/// (not TCP), or a count some accept skipped past (a connection reset
/// before it was taken), is drained to `EAGAIN` as before.
pub fn accept_counted(listener: RawFd, token: super::Token, out: &mut Vec<super::Completion>) -> Burst {
    let Some(queued) = accept_queue_len(listener) else { return accept_burst(listener, token, out) };
    match accept_up_to(listener, queued.min(ACCEPT_BATCH), token, out) {
        Taken::Ended(burst) => burst,
        Taken::All { went_on: true } => accept_burst(listener, token, out),
        Taken::All { went_on: false } if queued > ACCEPT_BATCH => Burst::More,
        Taken::All { went_on: false } => Burst::Drained,
    }
}

/// How [`accept_up_to`] ended.
enum Taken {
    /// It made all its accepts; `went_on` if one failed without ending it.
    All { went_on: bool },
    /// The queue was empty, or an error ended the accept.
    Ended(Burst),
}

/// Up to `limit` accepts on a non-blocking listener, one completion each.
fn accept_up_to(listener: RawFd, limit: usize, token: super::Token, out: &mut Vec<super::Completion>) -> Taken {
    let mut went_on = false;
    for _ in 0..limit {
        match accept(listener) {
            Ok(connection) => {
                let result = connection.as_raw_fd();
                let mut completion = super::Completion::of(token, result, true);
                completion.accepted = Some(connection);
                out.push(completion);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Taken::Ended(Burst::Drained),
            Err(e) if accept_goes_on(&e) => went_on = true,
            Err(e) => {
                out.push(super::Completion::of(token, -e.raw_os_error().unwrap_or(libc::EIO), false));
                return Taken::Ended(Burst::Done);
            }
        }
    }
    Taken::All { went_on }
}

/// `TCP_LISTEN` in `tcp_info.tcpi_state` (`include/net/tcp_states.h`).
const TCP_LISTEN: u8 = 10;

/// How many connections wait in a TCP listener's accept queue (the kernel
/// reports it as `tcpi_unacked` for a listener); `None` for a socket that
/// is not a TCP listener.
pub fn accept_queue_len(listener: RawFd) -> Option<usize> {
    // SAFETY: tcp_info is plain integers, for which all zeroes is a value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, which is that large.
    let ret = unsafe {
        libc::getsockopt(
            listener,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    check(ret).ok()?;
    // The count is past the state: a reply too short to hold it says nothing.
    let holds_count = len as usize >= std::mem::offset_of!(libc::tcp_info, tcpi_unacked) + 4;
    (holds_count && info.tcpi_state == TCP_LISTEN).then_some(info.tcpi_unacked as usize)
}
