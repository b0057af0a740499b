//! Where a request's head and body wait for the handler when they did not
//! arrive together: copied into a buffer of the body pool as they come.

use crate::answer::BodyPool;

/// A request being gathered for the handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Assembly {
    /// Nothing gathered: between requests, a request answered from the
    /// receive buffer, or one answered from the preformatted pages.
    #[default]
    Idle,
    /// Head and body so far are in pool buffer `index`: the head is its
    /// first `head_len` bytes, the body runs on to `len`.
    Pooled {
        /// The pool buffer.
        index: u32,
        /// Bytes of the head at its start.
        head_len: usize,
        /// Bytes used.
        len: usize,
    },
}

impl Assembly {
    /// Starts gathering a request whose head is `head`; false when the pool
    /// has no buffer free.
    pub fn start(&mut self, head: &[u8], pool: &mut BodyPool) -> bool {
        let Some(index) = pool.take() else { return false };
        pool.buffer(index)[..head.len()].copy_from_slice(head);
        *self = Assembly::Pooled { index, head_len: head.len(), len: head.len() };
        true
    }

    /// Appends body bytes (the parser has bounded the body by `--max-body`,
    /// and a pool buffer holds a head and a body at their limits).
    pub fn append(&mut self, data: &[u8], pool: &mut BodyPool) {
        if let Assembly::Pooled { index, len, .. } = self {
            let buffer = pool.buffer(*index);
            let end = (*len + data.len()).min(buffer.len());
            buffer[*len..end].copy_from_slice(&data[..end - *len]);
            *len = end;
        }
    }

    /// Gives the buffer back, if one is held.
    pub fn release(&mut self, pool: &mut BodyPool) {
        if let Assembly::Pooled { index, len, .. } = *self {
            pool.give(index, len);
        }
        *self = Assembly::Idle;
    }
}
