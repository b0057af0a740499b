//! A worker's side of [`Cluster::serve`](crate::Cluster::serve): the
//! program's handler made, asked what the engine asks once as it starts
//! ([`Handler::fixed_body`], [`Handler::shared_fixed_body`],
//! [`Handler::wants_peer_addr`]), run, and dropped at exit, each of these
//! calls of the program's code under `catch_unwind`: a panic in one is said
//! by its name and ends the worker with code 70 (`EX_SOFTWARE`), not as the
//! engine's own panic would (`abort`: restarted forever at start, a clean
//! exit turned into a `SIGABRT` at its end).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ringmaster_balancer::exit_codes::{worker_exit_code, EXIT_NO_HANDLER};
use ringmaster_balancer::title::ProcessNames;
use ringmaster_balancer::worker_role::WorkerIdentity;
use ringmaster_balancer::{log, panic_hook, run_worker};
use ringmaster_engine::handler::{Handler, Request, Response};
use ringmaster_engine::panic_guard::{guarded, Call};
use ringmaster_engine::EngineConfig;

/// Serves as worker `identity` with the handler `make` makes, until it has
/// drained; `Err` is the exit code and the line that says why.
pub(crate) fn serve_as_worker<H: Handler>(
    identity: WorkerIdentity,
    names: &ProcessNames,
    engine: &EngineConfig,
    make: impl FnOnce() -> H,
) -> Result<(), (u8, String)> {
    let id = identity.id;
    // The program's own code, before the hook that ends the process on any
    // panic outside the handler: a closure that cannot make the handler (a
    // database it cannot open) panics, is said by the hook set before
    // `serve`, and the worker exits with a code that tells its master (until
    // 2026-12-07 it aborted, and was restarted with the back-off forever
    // while nothing served).
    let handler = asked("make", make).map_err(|_| {
        (EXIT_NO_HANDLER, format!("worker {id}: its handler was not made: the closure given to serve panicked"))
    })?;
    // So too what the engine asks it as it starts (until 2026-12-07 a panic
    // there aborted the worker, restarted forever).
    let mut handler = Started::ask(handler).map_err(|method| {
        (
            EXIT_NO_HANDLER,
            format!(
                "worker {id}: its handler's {method} panicked as the worker started: the worker cannot serve \
                 without its answer"
            ),
        )
    })?;
    panic_hook::install(Some(id));
    // A worker that cannot start with these limits says so by its exit
    // code: its master then stops instead of restarting it forever.
    let served = run_worker(identity, names, engine, &mut handler)
        .map_err(|e| (worker_exit_code(&e), format!("worker {id}: {e}")));
    // Its drop is the program's code too: a panic there is said as such, and
    // the worker exits 70, not 0 (until 2026-12-07 it aborted, a clean exit
    // turned into a SIGABRT).
    if guarded(Call::Drop, move || drop(handler)).is_some() {
        return served;
    }
    let dropped = format!("worker {id}: its handler panicked as it was dropped, at the worker's exit");
    match served {
        Ok(()) => {
            Err((EXIT_NO_HANDLER, format!("{dropped}: the worker exits with code {EXIT_NO_HANDLER} (EX_SOFTWARE)")))
        }
        Err(failed) => {
            log!(error: "{dropped}, after it failed (its own line follows)");
            Err(failed)
        }
    }
}

/// A handler whose start-up answers were asked once, without a panic.
pub(crate) struct Started<H> {
    handler: H,
    /// The fixed body, shared with the engine (copied once here when the
    /// handler shares none, as the engine would copy it).
    fixed: Option<Arc<[u8]>>,
    wants_peer_addr: bool,
}

impl<H: Handler> Started<H> {
    /// Asks `handler` what the engine asks as it starts, as the engine asks
    /// it (`shared_fixed_body` only when `fixed_body` is `Some`,
    /// `wants_peer_addr` only when it is `None`). `Err` names the method
    /// that panicked; the handler is not dropped then (the process ends, and
    /// its drop could panic too).
    pub(crate) fn ask(handler: H) -> Result<Started<H>, &'static str> {
        let asked = Started::answers(&handler);
        match asked {
            Ok((fixed, wants_peer_addr)) => Ok(Started { handler, fixed, wants_peer_addr }),
            Err(method) => {
                std::mem::forget(handler);
                Err(method)
            }
        }
    }

    fn answers(handler: &H) -> Result<StartAnswers, &'static str> {
        let Some(body) = asked("fixed_body", || handler.fixed_body())? else {
            return Ok((None, asked("wants_peer_addr", || handler.wants_peer_addr())?));
        };
        let fixed = match asked("shared_fixed_body", || handler.shared_fixed_body())? {
            Some(shared) => shared,
            None => Arc::from(body),
        };
        // A fixed body never reaches `handle`, where the address would be read.
        Ok((Some(fixed), false))
    }
}

/// What the engine asks a handler as it starts: its fixed body (shared),
/// and whether it wants its clients' addresses.
type StartAnswers = (Option<Arc<[u8]>>, bool);

/// `call`'s value, or `method` when it panicked (said by the hook set
/// before `serve`, still the process's hook at that point).
fn asked<R>(method: &'static str, call: impl FnOnce() -> R) -> Result<R, &'static str> {
    // AssertUnwindSafe: after a panic nothing of the handler is used again.
    catch_unwind(AssertUnwindSafe(call)).map_err(|payload| {
        // The process ends now: a payload whose drop could panic again is not dropped.
        std::mem::forget(payload);
        method
    })
}

impl<H: Handler> Handler for Started<H> {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        self.handler.handle(req, res);
    }

    fn on_message(&mut self, message: &str) {
        self.handler.on_message(message);
    }

    fn fixed_body(&self) -> Option<&[u8]> {
        self.fixed.as_deref()
    }

    fn shared_fixed_body(&self) -> Option<Arc<[u8]>> {
        self.fixed.clone()
    }

    fn wants_peer_addr(&self) -> bool {
        self.wants_peer_addr
    }
}
