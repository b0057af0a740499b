//! `shared`: every worker accepts on the master's listening socket and the
//! kernel picks who wakes. The master accepts only while every worker is
//! full (at `--max-conns`, or at what its descriptors allow), to answer those
//! clients `503` at once instead of leaving them in the queue waiting for
//! room that may not come; it never hands a connection over.

use std::io;

use super::{Accepting, Balance, RouteFacts, WorkerListener};
use crate::config::Mode;

/// Workers accept; the master only refuses.
#[derive(Debug, Default)]
pub struct Shared;

impl Balance for Shared {
    fn mode(&self) -> Mode {
        Mode::Shared
    }

    fn accepting(&self) -> Accepting {
        Accepting::SharedListener
    }

    fn worker_listener(&mut self, _worker: usize) -> io::Result<WorkerListener<'_>> {
        Ok(WorkerListener::Shared)
    }

    fn master_accepts(&self, routes: &[usize], facts: &dyn Fn(usize) -> RouteFacts) -> bool {
        !routes.is_empty() && routes.iter().all(|&slot| facts(slot).full())
    }

    fn pick(
        &mut self,
        _routes: &[usize],
        _facts: &dyn Fn(usize) -> RouteFacts,
        _passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes::testing::{live, pick};

    #[test]
    fn the_master_accepts_only_while_every_worker_is_full() {
        let shared = Shared;
        assert!(!shared.master_accepts(&[0, 1], &live(&[100, 99])), "one has room: it accepts");
        assert!(shared.master_accepts(&[0, 1], &live(&[100, 120])));
        assert!(!shared.master_accepts(&[], &live(&[])), "no ready worker: the queue waits for one");
    }

    #[test]
    fn what_the_master_accepts_is_refused_and_workers_share_the_listener() {
        let mut shared = Shared;
        assert_eq!(pick(&mut shared, &[0, 1], &live(&[100, 100])), None);
        assert_eq!(shared.accepting(), Accepting::SharedListener);
        assert!(matches!(shared.worker_listener(0), Ok(WorkerListener::Shared)));
    }
}
