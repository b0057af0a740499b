//! Socket calls the epoll driver makes directly (the io_uring driver makes
//! the same moves as ring ops): accept, receive, send slices, half-close;
//! and what the io_uring driver asks the kernel of a connection it suspects
//! of not reading (its unacknowledged bytes); the client's address, for a
//! handler that asks for it (both drivers).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::syscall;

/// Accepts one connection, non-blocking and close-on-exec; `Ok(None)` when
/// none is waiting.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: accept4 with null address pointers only returns a new fd or -1.
    match syscall!(unsafe { libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), flags) }) {
        // SAFETY: accept4 returned a new fd that nothing else owns.
        Ok(raw) => Ok(Some(unsafe { OwnedFd::from_raw_fd(raw) })),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// The address of `socket`'s peer (`getpeername`), as the kernel gives it:
/// on an IPv6 socket an IPv4 client is IPv4-mapped (`::ffff:a.b.c.d`).
/// An error when the peer is gone (`ENOTCONN`) or the socket is not IP.
pub fn peer_addr(socket: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    // SAFETY: `sockaddr_storage` is plain bytes; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `storage`, which is
    // that large and lives through the call, and the length into `len`.
    syscall!(unsafe { libc::getpeername(socket.as_raw_fd(), (&raw mut storage).cast(), &mut len) })?;
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a `sockaddr_in` (its family and length
            // say so); `sockaddr_storage` is aligned for any sockaddr.
            let v4 = unsafe { &*(&raw const storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(v4.sin_port))))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, a `sockaddr_in6`. Its flow info as std
            // keeps it (`TcpStream::peer_addr`), as the kernel wrote it.
            let v6 = unsafe { &*(&raw const storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            let port = u16::from_be(v6.sin6_port);
            Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, v6.sin6_flowinfo, v6.sin6_scope_id)))
        }
        // Not IP: said without allocating, as every error path here.
        _ => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

/// Whether a connection (or data) waits on `socket` now, without taking it.
pub fn waiting(socket: BorrowedFd<'_>) -> io::Result<bool> {
    let mut poll = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd, which lives through the call; a zero timeout never blocks.
    let ready = syscall!(unsafe { libc::poll(&mut poll, 1, 0) })?;
    Ok(ready > 0 && poll.revents & libc::POLLIN != 0)
}

/// Reads what is there into `buf`: `Ok(Some(0))` at the peer's FIN, `Ok(None)`
/// when nothing is waiting.
pub fn recv(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: reading at most `buf.len()` bytes into `buf`, which is that large.
        let read =
            syscall!(unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) });
        match read {
            Ok(n) => return Ok(Some(n as usize)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether bytes of input wait on `socket` now (`FIONREAD`): what an
/// io_uring receive reports with its completion (`IORING_CQE_F_SOCK_NONEMPTY`),
/// the peer's FIN not counted.
pub fn input_waiting(socket: BorrowedFd<'_>) -> io::Result<bool> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int, into `bytes`, which lives through the call.
    syscall!(unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut bytes) })?;
    Ok(bytes > 0)
}

/// The bytes written to `socket` that its peer has not yet acknowledged,
/// sent or not (`SIOCOUTQ`): it falls as the peer's kernel takes them,
/// which it does only as the peer reads, once its receive buffer is full.
pub fn unacknowledged(socket: BorrowedFd<'_>) -> io::Result<u32> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one c_int, into `bytes`, which lives through the call.
    syscall!(unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut bytes) })?;
    Ok(bytes.max(0) as u32)
}

/// Sends the slices `header` points at; `Ok(0)` when the socket's buffer is full.
///
/// # Safety
/// `header` must point at a valid `msghdr` whose iovecs point at live memory.
pub unsafe fn send_slices(socket: BorrowedFd<'_>, header: *const libc::msghdr) -> io::Result<usize> {
    loop {
        // SAFETY: the caller guarantees `header` and what it points at.
        let sent =
            syscall!(unsafe { libc::sendmsg(socket.as_raw_fd(), header, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) });
        match sent {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sends our FIN (`shutdown(SHUT_WR)`), keeping the receive side open.
pub fn half_close(socket: BorrowedFd<'_>) {
    // SAFETY: shutdown on a valid socket; failure (the peer already reset)
    // leaves nothing to undo, the close that follows handles it.
    unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_WR) };
}

/// Drops, from now on, every packet for `listener` but a connection's first
/// (a SYN without ACK): a new handshake starts there (the SYN-ACK goes out),
/// but none completes, neither by its last ACK nor by the client's first
/// data. The listener's accepted connections, and the ones queued, are
/// sockets of their own and keep their traffic.
///
/// Put on before the last close of a `reuseport` listener (a retired
/// slot's, which the master keeps until its worker lets go): no handshake
/// may complete there as it closes. One whose last ACK the kernel was
/// processing then lost its connection to a reset, not migrated
/// (`inet_csk_reqsk_queue_add` finds the listener closed and forgets the
/// child; no `TCPMigrateReq*` counts it): a client of a scale-down under
/// churn, 1 run in 100. After the filter, the packets already on their way
/// through the kernel are waited for ([`super::wait_for_packets_in_flight`]);
/// then the queue is complete, and what is taken from it must lose the
/// filter ([`detach_filter`]). A SYN still starts its handshake here; its
/// last ACK, and the request after it, come again (the client's
/// retransmission, 200 ms or more) to the closed listener, and migrate
/// (`net.ipv4.tcp_migrate_req`).
pub fn drop_all_but_syns(listener: BorrowedFd<'_>) -> io::Result<()> {
    // Classic BPF over the TCP header (a socket filter sees the packet from
    // there): its flags byte, SYN (0x02) set and ACK (0x10) not, is kept.
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter { code: code as u16, jt, jf, k };
    let mut program = [
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 13),
        op(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, 0, 0, 0x12),
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, 0x02),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    ];
    let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
    // SAFETY: `fprog` and the instruction it points to live across the call,
    // which copies them; the size is the struct's.
    syscall!(unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Takes away a socket filter `socket` inherited from its listener: a
/// connection whose handshake the kernel was completing as
/// `drop_all_but_syns` was put on the listener has it too, and would drop
/// its client's every packet. Nothing to do (`ENOENT`) for any other.
pub fn detach_filter(socket: BorrowedFd<'_>) {
    let unused: libc::c_int = 0;
    // SAFETY: SO_DETACH_FILTER reads no value but wants an int's room;
    // `unused` lives across the call. A failure (no filter) changes nothing.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DETACH_FILTER,
            (&unused as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Makes `fd` non-blocking (for a listener shared with other processes this
/// changes the shared file description: every accept on it must expect EAGAIN).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a valid fd only read and set its status flags.
    let flags = syscall!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        syscall!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    use super::*;

    /// What `getpeername` gives is the client's own address, as the
    /// client's socket names it; an IPv4 client of an IPv6 wildcard is
    /// IPv4-mapped.
    #[test]
    fn the_peer_is_the_clients_own_address() {
        let mut cases = vec![("127.0.0.1:0", "127.0.0.1")];
        if TcpListener::bind("[::1]:0").is_ok() {
            cases.extend([("[::1]:0", "[::1]"), ("[::]:0", "127.0.0.1")]);
        }
        for (bind, to) in cases {
            let listener = TcpListener::bind(bind).expect("a listener");
            let port = listener.local_addr().expect("its address").port();
            let client = TcpStream::connect(format!("{to}:{port}")).expect("a connection");
            let (accepted, _) = listener.accept().expect("accepted");
            let local = client.local_addr().expect("the client's address");
            let expected = match (bind.starts_with('['), local) {
                (true, SocketAddr::V4(v4)) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
                _ => local,
            };
            assert_eq!(peer_addr(accepted.as_fd()).expect("the peer"), expected, "{bind} from {to}");
        }
    }

    /// With only SYNs let through, a client's connect completes (the SYN-ACK
    /// went out) but its handshake does not complete on the listener: nothing
    /// is queued, though it sent a request. Once the listener takes every
    /// packet again, the client's retransmission completes it, request and
    /// all: what the filter drops comes again.
    #[test]
    fn a_listener_that_takes_only_syns_completes_no_handshake_until_it_takes_the_rest() {
        use std::io::Write;
        let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
        listener.set_nonblocking(true).expect("non-blocking");
        drop_all_but_syns(listener.as_fd()).expect("the filter");
        let mut client = TcpStream::connect(listener.local_addr().expect("its address")).expect("a connect");
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("the request");
        // The client's ACK and request were dropped on their way in (a
        // loopback delivers them before its send returns): no connection waits.
        assert!(matches!(accept(listener.as_fd()), Ok(None)), "a handshake completed through the filter");
        detach_filter(listener.as_fd());
        listener.set_nonblocking(false).expect("blocking");
        let (accepted, _) = listener.accept().expect("the client's retransmission completes the handshake");
        let mut request = [0u8; 32];
        let n = recv(accepted.as_fd(), &mut request).expect("a receive");
        assert!(n.is_some_and(|n| n > 0), "the request came with it");
    }
}
