//! The balancer's one error type: everything the master, a worker's start-up
//! or `ringmaster ctl` can fail with. `Display` is the one line the user sees.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A result with the balancer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the master (or a worker starting, or `ctl`) cannot go on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A setting that cannot work; the message names it and says why.
    Config(String),
    /// A system call failed; `what` says what was being done.
    Io {
        /// What was being done, e.g. `cannot listen on 127.0.0.1:80`.
        what: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// `--control PATH` is a socket another master is serving.
    ControlInUse(PathBuf),
    /// The kernel interface asked for cannot be used here (`--backend`).
    Backend(String),
    /// A worker was started with an environment no master sets.
    WorkerEnv(String),
    /// The fds an old master handed this one (`upgrade`) are not what their
    /// names say.
    Inherited(String),
}

impl Error {
    /// An [`Error::Io`] saying what was being done.
    pub fn io(what: impl fmt::Display, source: io::Error) -> Error {
        Error::Io { what: what.to_string(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(message)
            | Error::Backend(message)
            | Error::WorkerEnv(message)
            | Error::Inherited(message) => f.write_str(message),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::ControlInUse(path) => write!(
                f,
                "--control {}: a running master answers on this socket; stop it first or choose another path",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Adds what was being done to an `io::Result`.
pub trait Context<T> {
    /// Turns the error into an [`Error::Io`] saying `what` was being done.
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|source| Error::io(what, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_one_line_with_its_context() {
        let error = Err::<(), _>(io::Error::from_raw_os_error(libc::EADDRINUSE)).context("cannot listen on 1.2.3.4:80");
        let text = error.unwrap_err().to_string();
        assert!(text.starts_with("cannot listen on 1.2.3.4:80: Address") && !text.contains('\n'), "{text}");
        let live = Error::ControlInUse(PathBuf::from("/run/rm.sock")).to_string();
        assert!(live.contains("/run/rm.sock") && !live.contains('\n'), "{live}");
    }
}
