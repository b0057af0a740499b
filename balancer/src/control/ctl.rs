//! `ringmaster ctl PATH COMMAND`: send one command to a running master's
//! control socket and return its reply line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{Context, Error, Result};

/// How long `ctl` waits for the master's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `ctl` waits for the reply to `upgrade`, which comes once the new
/// master is ready or the master gave up on it (after `--shutdown-timeout`,
/// at most a day): the master's own timeout bounds the wait.
const UPGRADE_REPLY_TIMEOUT: Duration = Duration::from_secs(86_400 + 60);

/// Sends `command` to the control socket at `path` and returns the reply line.
pub fn request(path: &Path, command: &str) -> Result<String> {
    let what = || format!("control socket {}", path.display());
    let mut stream = UnixStream::connect(path).context(format_args!("cannot connect to {}", path.display()))?;
    let upgrade = command.split_ascii_whitespace().eq(["upgrade"]);
    let timeout = if upgrade { UPGRADE_REPLY_TIMEOUT } else { REPLY_TIMEOUT };
    stream.set_read_timeout(Some(timeout)).context(what())?;
    stream.write_all(format!("{}\n", command.trim()).as_bytes()).context(format_args!("{}: cannot send", what()))?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).context(format_args!("{}: no reply", what()))?;
    if reply.is_empty() {
        let closed = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the master closed it without a reply");
        return Err(Error::io(what(), closed));
    }
    Ok(reply.trim_end().to_string())
}
