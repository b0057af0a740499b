//! An epoll instance: register fds with a `u64` token, wait for events.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::syscall;

/// One event as the kernel reports it.
pub type Event = libc::epoll_event;

/// Readable.
pub const IN: u32 = libc::EPOLLIN as u32;
/// Writable.
pub const OUT: u32 = libc::EPOLLOUT as u32;
/// The peer shut down its writing side.
pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;
/// Error or hang-up (always reported).
pub const ERR_HUP: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
/// Edge-triggered.
pub const EDGE: u32 = libc::EPOLLET as u32;
/// Wake one waiter among processes polling the same fd, not all of them.
pub const EXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new instance, close-on-exec.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 with a valid flag returns a new fd or -1.
        let raw = syscall!(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: a new fd that nothing else owns.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    /// Watches `fd` for `events`, reporting `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        let mut event = Event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event for the call's duration.
        syscall!(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event) })?;
        Ok(())
    }

    /// Stops watching `fd` (closing it does too, when it has no duplicates).
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: EPOLL_CTL_DEL ignores the event pointer; null is allowed since Linux 2.6.9.
        syscall!(unsafe {
            libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), std::ptr::null_mut())
        })?;
        Ok(())
    }

    /// Waits up to `timeout_ms` (-1: forever) and fills `events` (its length
    /// is set to what arrived; its capacity bounds it).
    pub fn wait(&self, events: &mut Vec<Event>, timeout_ms: i32) -> io::Result<()> {
        events.clear();
        let capacity = events.capacity().min(i32::MAX as usize) as i32;
        // SAFETY: the kernel writes at most `capacity` events into the vector's
        // spare capacity, and returns how many.
        let ready = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), capacity, timeout_ms) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(error) };
        }
        // SAFETY: the kernel initialised the first `ready` events.
        unsafe { events.set_len(ready as usize) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::sys::event_fd;

    #[test]
    fn a_readable_fd_is_reported_with_its_token() {
        let epoll = Epoll::new().expect("epoll");
        let ready = event_fd().expect("eventfd");
        let idle = event_fd().expect("eventfd");
        epoll.add(ready.as_fd(), IN, 7).expect("add");
        epoll.add(idle.as_fd(), IN, 8).expect("add");
        // SAFETY: writing 8 bytes from a live u64 to an eventfd we own.
        let one = 1u64;
        assert_eq!(unsafe { libc::write(ready.as_raw_fd(), (&one as *const u64).cast(), 8) }, 8);
        let mut events = Vec::with_capacity(4);
        epoll.wait(&mut events, 1000).expect("wait");
        assert_eq!(events.len(), 1);
        let token = events[0].u64;
        assert_eq!(token, 7);
        epoll.delete(ready.as_fd()).expect("delete");
        epoll.wait(&mut events, 0).expect("wait");
        assert!(events.is_empty());
    }
}
