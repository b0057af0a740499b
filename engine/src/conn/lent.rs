//! What a worker answering with a handler lends each connection, held
//! outside a worker: for the connection's unit tests and the fuzz targets'
//! socketless driver (`fuzzing`), which both build a [`super::Context`]
//! per event as the worker does.

use super::OutBuf;
use crate::answer::{Answering, BodyPool, Dynamic, ResponseScratch};
use crate::handler::Handler;

/// A handler, where it writes, its body buffers and its output buffer.
pub(crate) struct DynamicParts<H> {
    pub(crate) handler: H,
    pub(crate) scratch: ResponseScratch,
    pub(crate) bodies: BodyPool,
    pub(crate) out: Vec<u8>,
}

/// How `parts` (none: the preformatted pages) answer, and the output buffer
/// they lend, for one event's context.
pub(crate) fn lend<H: Handler>(parts: Option<&mut DynamicParts<H>>) -> (Answering<'_>, OutBuf<'_>) {
    match parts {
        None => (Answering::Fixed, OutBuf::empty()),
        Some(parts) => (
            Answering::Dynamic(Dynamic {
                handler: &mut parts.handler,
                scratch: &mut parts.scratch,
                bodies: &mut parts.bodies,
                peer: None,
            }),
            // SAFETY: the vector's bytes, borrowed with `parts`; its raw
            // pointer is made without a reference (`Vec::as_mut_ptr`), so
            // the slices an earlier call gave a send stay valid.
            unsafe { OutBuf::from_raw(parts.out.as_mut_ptr(), parts.out.len()) },
        ),
    }
}

/// The bytes a send's `header` names, gathered as the kernel would read them.
///
/// # Safety
/// `header` and its iovecs point into the connection, the response pages and
/// the output buffer, all alive and unchanged for the call (as
/// [`super::Connection::poll_send`] leaves them until the send is handled).
pub(crate) unsafe fn gathered(header: *const libc::msghdr) -> Vec<u8> {
    let mut bytes = Vec::new();
    // SAFETY: as the caller promises.
    unsafe {
        let header = &*header;
        for i in 0..header.msg_iovlen {
            let iov = &*header.msg_iov.add(i);
            bytes.extend_from_slice(std::slice::from_raw_parts(iov.iov_base.cast::<u8>(), iov.iov_len));
        }
    }
    bytes
}
