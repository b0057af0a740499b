//! A worker that cannot start with these limits (it exited with
//! [`EXIT_CANNOT_START`] after its error line), or whose handler the
//! program could not make ([`EXIT_NO_HANDLER`]): before any worker of this
//! master has been ready, every restart would fail the same way, and the
//! operator would see a master that runs and serves nothing; so the master
//! stops and exits 1. Once one has been ready, the limits did work: the
//! code gets the usual restart with the back-off.

use std::io;

use super::Master;
use crate::exit_codes::{EXIT_CANNOT_START, EXIT_NO_HANDLER};

impl Master {
    /// A worker process that exited with `code` says that no worker can
    /// start with these limits: the master stops
    /// ([`Master::stop_as_no_worker_can_start`]), and plans no restart.
    pub(super) fn no_worker_can_start(&self, code: Option<i32>) -> bool {
        let cannot = [EXIT_CANNOT_START, EXIT_NO_HANDLER].map(|code| Some(i32::from(code)));
        cannot.contains(&code) && !self.ever_ready && !self.stop_begun()
    }

    /// Stops the master: worker `id`'s process exited with `code`, which
    /// says that no worker can start ([`Master::no_worker_can_start`]).
    pub(super) fn stop_as_no_worker_can_start(&mut self, id: usize, code: i32) -> io::Result<()> {
        self.cannot_start = Some(if code == i32::from(EXIT_NO_HANDLER) {
            format!(
                "no worker can start: worker {id} exited with code {code} (EX_SOFTWARE) before any worker was \
                 ready, its handler not made (the program's closure given to serve, or a handler method the worker \
                 asks as it starts, panicked: see its lines above)"
            )
        } else {
            format!(
                "no worker can start with these limits: worker {id} exited with code {code} (EX_CONFIG) before \
                 any worker was ready, the kernel having refused the address space its error line names; lower \
                 the limits named there (--max-conns, --max-header, --max-response, --body-buffers, --max-body) \
                 or raise the address-space limit (ulimit -v, RLIMIT_AS)"
            )
        });
        self.stop_now()?;
        self.notify_stopping();
        Ok(())
    }

    /// Worker processes become ready: the limits work here.
    pub(super) fn note_ready(&mut self) {
        self.ever_ready = true;
    }
}
