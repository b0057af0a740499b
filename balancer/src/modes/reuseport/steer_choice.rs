//! Which steering `--steer` gets at start: the eBPF program, or the
//! kernel's hash where the program cannot be loaded.

use crate::bpf::Steering;
use crate::config::SteerChoice;
use crate::error::Error;

/// The steering program `--steer` asks for: `None` steers by hash. With
/// `Auto`, a process that may not load it steers by hash and says why in one
/// line; with `Load` that is an error.
pub fn choose_steering(choice: SteerChoice) -> Result<Option<Steering>, Error> {
    if choice == SteerChoice::Hash {
        return Ok(None);
    }
    match Steering::load() {
        Ok(steering) => {
            let migration = if steering.migrates() {
                "a closing listener's queue moves by the same choice"
            } else {
                "this kernel cannot migrate by it (before 5.14)"
            };
            crate::log!(
                "reuseport: an eBPF program steers each connection to the less loaded of two workers ({migration})"
            );
            Ok(Some(steering))
        }
        Err(e) => {
            if !e.verifier_log.is_empty() {
                crate::log!("the verifier's log:\n{}", e.verifier_log);
            }
            if choice == SteerChoice::Load {
                return Err(Error::Config(format!("--steer load: {e}")));
            }
            crate::log!("reuseport: steering by the kernel's hash, not by load: {e}");
            Ok(None)
        }
    }
}
