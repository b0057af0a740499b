//! The application's side of a worker: a [`Handler`] answers each request,
//! reading a [`Request`] that borrows the engine's buffers and writing a
//! [`Response`] into buffers made at start, so answering allocates nothing
//! unless the handler itself does.
//!
//! This file: the [`Handler`] trait; `fixed_body.rs`: [`FixedBody`], the
//! binary's default; `request.rs`: [`Request`] and its parts;
//! `response.rs`: [`Response`] and what it hands the engine to frame;
//! `response_fault.rs`: why a [`Response`] became `500`.

mod fixed_body;
mod request;
mod response;
mod response_fault;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use self::fixed_body::FixedBody;
pub use self::request::{Header, Request, Version};
pub use self::response::Response;
pub(crate) use self::response::Written;

/// Answers requests; one value per worker process.
///
/// ```
/// use ringmaster_engine::handler::{Handler, Request, Response};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
///         res.header("Content-Type", "text/plain").body(b"hello world\n");
///     }
/// }
/// ```
pub trait Handler {
    /// Answers one request. The engine adds `Date`, `Server` (unless set),
    /// `Content-Length` and the keep-alive framing; a `HEAD` request is
    /// answered without the body written here, its `Content-Length` that
    /// body's length (so write what a `GET` would get: a `Content-Length`
    /// set here is ignored), and a `204` or `304` without the body written
    /// or a length, a `205` with a length of 0. A panic here costs this
    /// request alone (with `panic = "unwind"`): it is answered `500` and its
    /// connection closes; the worker and this value go on (see
    /// [`crate::panic_guard`]).
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>);

    /// A line the master broadcast to every worker (`ringmaster ctl PATH send TEXT`).
    /// Only processes running when it is sent get it: a worker's process
    /// started later (a restart, a reload, an upgrade) begins without it.
    /// A panic here loses the line for this worker; it serves on.
    fn on_message(&mut self, message: &str) {
        let _ = message;
    }

    /// The same body for every request, if that is all this handler does:
    /// the engine then answers from preformatted pages and never calls
    /// [`Handler::handle`].
    fn fixed_body(&self) -> Option<&[u8]> {
        None
    }

    /// The [`Handler::fixed_body`] as a buffer the engine may keep without
    /// copying it: a long body is then held once per worker, not once here
    /// and once in the engine. `None` (the default): the engine copies
    /// what [`Handler::fixed_body`] returns. Read only when that is `Some`,
    /// and must hold the same bytes.
    fn shared_fixed_body(&self) -> Option<Arc<[u8]>> {
        None
    }

    /// Whether [`Request::peer_addr`] should name the client. Read once,
    /// when the worker starts: with `false` (the default) the engine never
    /// asks the kernel for a client's address and every request's
    /// `peer_addr` is `None`. With `true` it asks once per connection
    /// (`getpeername`, when the connection is accepted or handed over), and
    /// on io_uring the worker's own accepts (`shared`, `reuseport`) make
    /// plain descriptors rather than the ring's direct ones, which no
    /// system call can name (a plain one costs the kernel a descriptor
    /// lookup on each receive and send).
    fn wants_peer_addr(&self) -> bool {
        false
    }
}
