//! The bounds a request keeps to, shared by the header parser and the chunked
//! decoder so that a header block and a trailer section are held to the same.

/// Most field lines a header block (or a chunked body's trailer section) may
/// carry; more is answered with `431`.
pub(crate) const MAX_HEADERS: usize = 64;

/// Limits a request must keep to.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest header block, request line included, in bytes; also the
    /// largest trailer section of a chunked body.
    pub max_header: usize,
    /// Largest body, in bytes; a chunked body's extensions count with its data.
    pub max_body: u64,
}
