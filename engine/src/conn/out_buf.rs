//! [`OutBuf`]: a connection's output buffer as lent to one call, made from
//! the buffer's base pointer so that a send in flight from it stays valid.

use std::marker::PhantomData;
use std::ops::Range;
use std::ptr::NonNull;

/// A connection's output buffer, lent to one call: a handler's answers are
/// written into its unsent part, and a send reads its queued part through
/// the slices [`OutBuf::slice`] gives, which outlive the call (the kernel,
/// or a later call's `poll_send`, reads them).
///
/// Both come from the buffer's base pointer, never from a reference to the
/// whole buffer: a `&mut [u8]` over it, made for the next call, would claim
/// every byte for itself, and under Rust's aliasing rules (as Miri checks
/// them) end the slices of a send still in flight, which are read after it.
/// The writes of a later call touch only bytes no send holds.
#[derive(Debug)]
pub struct OutBuf<'a> {
    base: NonNull<u8>,
    len: usize,
    lent: PhantomData<&'a mut [u8]>,
}

impl OutBuf<'_> {
    /// The buffer of `len` bytes at `base`, lent for the `OutBuf`'s life.
    ///
    /// # Safety
    /// `base` is valid for reads and writes of `len` initialised bytes for
    /// that life, and no reference to them lives meanwhile; what else reads
    /// them reads through slices an earlier `OutBuf` of the same bytes gave
    /// (the send in flight), never the bytes written meanwhile.
    pub unsafe fn from_raw(base: *mut u8, len: usize) -> Self {
        let base = NonNull::new(base).unwrap_or(NonNull::dangling());
        OutBuf { base, len, lent: PhantomData }
    }

    /// No buffer: a connection answered from preformatted pages writes none.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn empty() -> OutBuf<'static> {
        OutBuf { base: NonNull::dangling(), len: 0, lent: PhantomData }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes `range` to write (answers not yet queued for a send).
    pub fn slice_mut(&mut self, range: Range<usize>) -> &mut [u8] {
        self.check(&range);
        // SAFETY: inside the buffer (checked), valid for writes (`from_raw`);
        // `&mut self` keeps any other slice of this `OutBuf` from living, and
        // the connection writes no bytes a send holds.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(range.start), range.len()) }
    }

    /// Bytes `range` to send: valid past this call, while the connection
    /// writes no byte of them.
    pub fn slice(&self, range: Range<usize>) -> &[u8] {
        self.check(&range);
        // SAFETY: inside the buffer (checked), initialised (`from_raw`).
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(range.start), range.len()) }
    }

    fn check(&self, range: &Range<usize>) {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "{range:?} outside an output buffer of {}",
            self.len
        );
    }
}
