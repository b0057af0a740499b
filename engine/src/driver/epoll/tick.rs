//! The tick (a timerfd): the `Date` moved on, every connection's deadline
//! judged (not after the loop stood still), a full worker's room made, and
//! the listener's queue taken once a tick.

use std::io;
use std::os::fd::AsFd;
use std::time::SystemTime;

use super::EpollWorker;
use crate::sys::socket;

impl EpollWorker<'_> {
    pub(super) fn on_tick(&mut self) -> io::Result<()> {
        self.ticker.acknowledge();
        self.core.responses.refresh(SystemTime::now());
        let now = self.core.now;
        let due = self.core.deadlines_due();
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            if entry.conn.deadline() > now || !due {
                continue;
            }
            let (_, mut ctx) = self.core.parts(slot);
            entry.conn.handle_timeout(&mut ctx);
            if entry.conn.take_reader_look() {
                // Answers owed, input come meanwhile: does its client read?
                let unacknowledged = entry.fd.as_ref().and_then(|fd| socket::unacknowledged(fd.as_fd()).ok());
                entry.conn.handle_unacknowledged(unacknowledged, &ctx);
            }
            // A body's 408 is a request answered, as a 400 is.
            self.core.work_for(entry.conn.take_parsed());
            self.drive(slot, generation)?;
        }
        self.core.recheck_fd_limit();
        self.accepts_starved = false;
        self.reclaim_for_queue();
        self.watch_listener()?;
        // Takes what waits in the listen queue once a tick: a wake-up meant for
        // the waiters on a shared listener can go to one that is going away.
        if self.listening {
            self.on_listener()?;
        }
        Ok(())
    }
}
