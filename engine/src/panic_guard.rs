//! Calls into the application's [`Handler`](crate::handler::Handler) so
//! that a panic there costs the request it was answering, not the worker
//! and every connection it holds: the panic unwinds to here (in a program
//! built with `panic = "unwind"`, Rust's default; under `panic = "abort"`
//! the process ends as before) and the engine answers `500` and closes that
//! one connection. While the application's code runs, [`in_handler`] is
//! true, so that a panic hook can tell its panics from the engine's own,
//! which should still end the process.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// Which of the application's calls is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// [`Handler::handle`](crate::handler::Handler::handle): a panic costs
    /// the request a `500` and its connection.
    Handle,
    /// [`Handler::on_message`](crate::handler::Handler::on_message): a
    /// panic loses that line for this worker; no request is concerned.
    OnMessage,
    /// A cluster's `on_worker_message` hook, in the master: a panic loses
    /// the worker's line; the master serves on.
    OnWorkerMessage,
    /// The handler's `Drop`, as its worker exits: a panic is said, and the
    /// worker exits with its own code for it.
    Drop,
}

thread_local! {
    static IN_HANDLER: Cell<Option<Call>> = const { Cell::new(None) };
}

/// What runs when a panic of the application's reached the engine.
type Caught = Box<dyn Fn() + Send + Sync>;

static WHEN_CAUGHT: OnceLock<Caught> = OnceLock::new();

/// Sets what runs each time a panic of the application's code reaches the
/// engine (the first call sets it; later ones are ignored). A panic hook
/// cannot tell: the handler may catch its own panic and answer on.
pub fn when_caught(call: impl Fn() + Send + Sync + 'static) {
    let _ = WHEN_CAUGHT.set(Box::new(call));
}

/// True while the application's handler runs on this thread (inside
/// [`Handler::handle`](crate::handler::Handler::handle) or
/// [`Handler::on_message`](crate::handler::Handler::on_message)).
pub fn in_handler() -> bool {
    current_call().is_some()
}

/// The application's call running on this thread, if any: a panic hook
/// tells by it what the panic costs (see [`Call`]).
pub fn current_call() -> Option<Call> {
    IN_HANDLER.with(Cell::get)
}

/// Runs the application's `call` (a [`Call`] of kind `kind`); `None` when it panicked.
/// Public for the master, which calls a program's hook so too.
///
/// `AssertUnwindSafe`: what the engine lends the call (the request's bytes,
/// the response buffers) is reset before its next use, and the handler's own
/// state is the application's: it is kept as the panic left it, as a task's
/// captured state is in other Rust servers.
pub fn guarded<R>(kind: Call, call: impl FnOnce() -> R) -> Option<R> {
    let outer = IN_HANDLER.with(|flag| flag.replace(Some(kind)));
    let result = catch_unwind(AssertUnwindSafe(call));
    IN_HANDLER.with(|flag| flag.set(outer));
    match result {
        Ok(value) => Some(value),
        Err(payload) => {
            drop_payload(payload);
            if let Some(call) = WHEN_CAUGHT.get() {
                call();
            }
            None
        }
    }
}

/// Drops a panic's payload; one whose own drop panics would unwind out of
/// the engine, so that drop is caught too. What that second panic carries is
/// dropped when it is a message (`panic!` with text: a `&str` or a
/// `String`, whose drop runs none of the application's code) and forgotten
/// otherwise, since its drop could panic again.
fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        if again.is::<&'static str>() || again.is::<String>() {
            drop(again);
        } else {
            std::mem::forget(again);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics in these tests would print through the default hook; they are
    /// expected, so the output says so first.
    fn quietly<R>(call: impl FnOnce() -> R) -> Option<R> {
        eprintln!("(an expected panic follows)");
        guarded(Call::Handle, call)
    }

    #[test]
    fn a_call_that_returns_gives_its_value_and_the_flag_is_set_only_during_it() {
        assert!(!in_handler());
        assert_eq!(guarded(Call::Handle, in_handler), Some(true));
        assert!(!in_handler());
    }

    #[test]
    fn the_call_running_is_told_apart() {
        assert_eq!(current_call(), None);
        assert_eq!(guarded(Call::Handle, current_call), Some(Some(Call::Handle)));
        assert_eq!(guarded(Call::OnMessage, current_call), Some(Some(Call::OnMessage)));
        assert_eq!(current_call(), None);
    }

    #[test]
    fn a_panic_is_caught_and_the_flag_restored() {
        assert_eq!(quietly(|| -> u8 { panic!("in the handler") }), None);
        assert!(!in_handler());
        assert_eq!(guarded(Call::Handle, || 7), Some(7), "the next call runs as usual");
    }

    #[test]
    fn a_nested_call_leaves_the_outer_one_flagged() {
        let inner = guarded(Call::Handle, || {
            let inner = quietly(|| -> bool { panic!("inner") });
            (inner, in_handler())
        });
        assert_eq!(inner, Some((None, true)));
        assert!(!in_handler());
    }

    struct PanicsOnDrop;

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("a payload whose drop panics");
        }
    }

    /// The second panic's message is dropped, not leaked: LeakSanitizer
    /// (`scripts/sanitize.sh`) reports its 16 bytes when it is forgotten.
    #[test]
    fn a_payload_whose_drop_panics_does_not_escape() {
        let caught = quietly(|| -> u8 { std::panic::panic_any(PanicsOnDrop) });
        assert_eq!(caught, None);
        assert!(!in_handler());
    }
}
