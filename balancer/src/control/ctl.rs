//! `ringmaster ctl PATH COMMAND`: send one command to a running master's
//! control socket and return its reply line; `status --table` and `top`
//! draw the `status` line as a table, once or once a second.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::json::Json;
use super::table;
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

/// `status` as a table (see [`super::table`]).
pub fn status_table(path: &Path) -> Result<String> {
    let reply = request(path, "status")?;
    let status =
        Json::parse(&reply).map_err(|e| Error::Config(format!("the status reply is not JSON ({e}): {reply}")))?;
    table::render(&status).map_err(Error::Config)
}

/// How `top` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopEnd {
    /// It drew the frames it was asked for.
    Counted,
    /// The master stopped answering after the first frame (it exited).
    MasterGone,
}

/// `ringmaster ctl PATH top`: the table again every `every`, `count` times
/// (or until the master goes away), each frame titled `PROGRAM top: PATH`
/// (`program`: `ringmaster`, or a program of your own's name). On a terminal
/// each frame replaces the last (ANSI: cursor home, clear the screen);
/// otherwise frames follow one another, each after a blank line. The first
/// frame's failure is an error.
pub fn top(
    program: &str,
    path: &Path,
    count: Option<u32>,
    every: Duration,
    out: &mut impl Write,
    terminal: bool,
) -> Result<TopEnd> {
    let mut drawn = 0u32;
    let mut next = Instant::now();
    loop {
        let table = match status_table(path) {
            Ok(table) => table,
            Err(e) if drawn > 0 => {
                let _ = writeln!(out, "\n{program} ctl top: the master is gone ({e})");
                return Ok(TopEnd::MasterGone);
            }
            Err(e) => return Err(e),
        };
        let clock = crate::log::now_rfc3339();
        let frame = if terminal {
            format!("\x1b[H\x1b[2J{clock} {program} top: {} (Ctrl-C to quit)\n{table}", path.display())
        } else {
            format!("{}{clock} {program} top: {}\n{table}", if drawn > 0 { "\n" } else { "" }, path.display())
        };
        out.write_all(frame.as_bytes()).and_then(|()| out.flush()).context("cannot write the table")?;
        drawn += 1;
        if count.is_some_and(|n| drawn >= n) {
            return Ok(TopEnd::Counted);
        }
        next += every;
        // The only wait: until the next frame is due.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}
