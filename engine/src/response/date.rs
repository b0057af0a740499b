//! The pages a send holds, and the `Date` moved on once a second to a page
//! no send holds; the date formatted without allocating.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::{PageHold, Responses, DATE_LEN, PAGES};

impl Responses {
    /// Marks the current page as read by a send until [`Responses::release`].
    pub fn hold(&mut self) -> PageHold {
        self.holds[self.current] += 1;
        PageHold(self.current as u8)
    }

    /// Ends a hold taken by [`Responses::hold`].
    pub fn release(&mut self, hold: PageHold) {
        let held = &mut self.holds[usize::from(hold.0)];
        debug_assert!(*held > 0, "page released more often than held");
        *held = held.saturating_sub(1);
    }

    /// Moves the `Date` on when the second has changed; call it on every tick.
    pub fn refresh(&mut self, now: SystemTime) {
        let second = unix_second(now);
        if second == self.current_second {
            return;
        }
        // The next page no send reads; with every other page read (slow
        // readers' sends in flight), the old date stays one more tick.
        let free = (1..PAGES).map(|step| (self.current + step) % PAGES).find(|&page| self.holds[page] == 0);
        let Some(next) = free else { return };
        self.patch_date(next, now);
        self.current = next;
        self.current_second = second;
        self.date = format_date(now);
    }

    /// The `Date` value the current page carries (IMF-fixdate, 29 bytes).
    pub fn date(&self) -> &[u8] {
        &self.date
    }

    pub(super) fn patch_date(&mut self, page: usize, now: SystemTime) {
        let date = format_date(now);
        let bytes = &mut self.pages[page];
        for &at in self.date_offsets.iter() {
            bytes[at..at + DATE_LEN].copy_from_slice(&date);
        }
    }
}

pub(super) fn unix_second(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Formats `now` as an IMF-fixdate into a fixed buffer (no allocation).
pub(super) fn format_date(now: SystemTime) -> [u8; DATE_LEN] {
    struct Fixed {
        bytes: [u8; DATE_LEN],
        len: usize,
    }
    impl std::fmt::Write for Fixed {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
            slot.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut out = Fixed { bytes: [b' '; DATE_LEN], len: 0 };
    // httpdate renders RFC 9110's IMF-fixdate, always 29 bytes for years 1970-9999.
    let _ = write!(out, "{}", httpdate::HttpDate::from(now));
    out.bytes
}
