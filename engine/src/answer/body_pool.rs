//! Fixed buffers for request bodies that came in pieces, lent to a
//! connection while it gathers one and given back after.

use crate::lazy_bytes::LazyBytes;

/// Fixed buffers for request bodies that did not arrive with their head,
/// and for chunked ones (decoded as they are gathered), each big enough
/// for a head and a body at their limits.
#[derive(Debug)]
pub struct BodyPool {
    memory: LazyBytes,
    size: usize,
    free: Vec<u32>,
}

impl BodyPool {
    /// `count` buffers of `size` bytes (the memory is touched only when
    /// used); an error when the address space has no room for them.
    pub fn new(count: usize, size: usize) -> std::io::Result<BodyPool> {
        let len = count.checked_mul(size).ok_or_else(|| std::io::Error::other("the size overflows"))?;
        Ok(BodyPool { memory: LazyBytes::new(len)?, size, free: (0..count as u32).rev().collect() })
    }

    /// A free buffer, or `None` when all are in use.
    pub fn take(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// Buffers not in use.
    #[cfg(test)]
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Gives buffer `index` back, its first `used` bytes used: the pages of
    /// a large body go back to the kernel (see [`LazyBytes::release_touched`]).
    pub fn give(&mut self, index: u32, used: usize) {
        debug_assert!(!self.free.contains(&index), "buffer {index} given back twice");
        let start = index as usize * self.size;
        self.memory.release_touched(start..start + self.size, used);
        self.free.push(index);
    }

    /// Buffer `index`.
    pub fn buffer(&mut self, index: u32) -> &mut [u8] {
        let start = index as usize * self.size;
        &mut self.memory[start..start + self.size]
    }

    /// The first `len` bytes of buffer `index`.
    pub fn contents(&self, index: u32, len: usize) -> &[u8] {
        let start = index as usize * self.size;
        &self.memory[start..start + len.min(self.size)]
    }
}
