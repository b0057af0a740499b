//! The binary's default handler: the same body for every request, shared
//! with the engine's preformatted replies.

use std::sync::Arc;

use super::{Handler, Request, Response};

/// The binary's default handler: `200 OK` with the same body for every request.
#[derive(Clone, Debug)]
pub struct FixedBody {
    /// Shared with the engine's preformatted replies (see [`Handler::shared_fixed_body`]).
    body: Arc<[u8]>,
}

impl FixedBody {
    /// Answers every request with `body` (`Content-Type: text/plain`).
    pub fn new(body: impl Into<Vec<u8>>) -> FixedBody {
        FixedBody { body: Arc::from(body.into()) }
    }
}

impl Handler for FixedBody {
    fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
        res.header("Content-Type", "text/plain").body(&self.body);
    }

    fn fixed_body(&self) -> Option<&[u8]> {
        Some(&self.body)
    }

    fn shared_fixed_body(&self) -> Option<Arc<[u8]>> {
        Some(Arc::clone(&self.body))
    }
}
