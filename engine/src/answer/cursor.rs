//! A writer into a fixed buffer, for the framing: it fails rather than grows.

/// Writes into a fixed buffer, failing (`None`) rather than growing.
pub(super) struct Cursor<'a> {
    pub(super) out: &'a mut [u8],
    pub(super) at: usize,
}

impl Cursor<'_> {
    pub(super) fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let room = self.out.get_mut(self.at..self.at + bytes.len())?;
        room.copy_from_slice(bytes);
        self.at += bytes.len();
        Some(())
    }

    pub(super) fn number(&mut self, mut n: u64) -> Option<()> {
        let mut digits = [0u8; 20];
        let mut first = digits.len();
        loop {
            first -= 1;
            digits[first] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[first..])
    }
}
