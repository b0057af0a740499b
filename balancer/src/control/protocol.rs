//! The control socket's line protocol: one command per line, one reply line
//! per command, starting with `ok`, `error:`, or (for `status`) the JSON stats
//! line.

use crate::MAX_WORKERS;
use ringmaster_engine::channel::MAX_TEXT;

/// Longest command line the master reads; longer input is refused. Room for
/// `send` and the longest line a worker takes.
pub const MAX_LINE: usize = MAX_TEXT + 8;

/// A parsed control command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The stats line, with uptimes and restarts.
    Status,
    /// Rolling restart of every worker.
    Reload,
    /// Run this many workers.
    Scale(usize),
    /// Graceful stop.
    Stop,
    /// Binary upgrade: a new master from the file at the path this one was
    /// started from takes the sockets over; this one drains and exits. Its
    /// reply comes once the outcome is known.
    Upgrade,
    /// A line of text for every worker's `Handler::on_message` (everything
    /// after `send `, as typed).
    Send(String),
}

/// Parses one line (without its newline); the error is the reply to send.
pub fn parse_command(line: &[u8]) -> Result<Command, String> {
    let text = std::str::from_utf8(line).map_err(|_| "error: commands are text".to_string())?;
    let trimmed = text.trim_start();
    if trimmed == "send" || trimmed.starts_with("send ") {
        let message = trimmed["send".len()..].strip_prefix(' ').unwrap_or_default().trim_end();
        if message.is_empty() {
            return Err("error: send takes a line of text for the workers".to_string());
        }
        if message.len() > MAX_TEXT {
            return Err(format!("error: a message is at most {MAX_TEXT} bytes"));
        }
        return Ok(Command::Send(message.to_string()));
    }
    let mut words = text.split_ascii_whitespace();
    let command = match (words.next(), words.next(), words.next()) {
        (Some("status"), None, _) => Command::Status,
        (Some("reload"), None, _) => Command::Reload,
        (Some("stop"), None, _) => Command::Stop,
        (Some("upgrade"), None, _) => Command::Upgrade,
        (Some("scale"), Some(count), None) => match count.parse::<usize>() {
            Ok(n) if n >= 1 => Command::Scale(n),
            _ => return Err(format!("error: scale takes a worker count from 1 to {MAX_WORKERS}, not '{count}'")),
        },
        (None, _, _) => {
            return Err("error: empty command (try status, reload, scale N, upgrade, send TEXT, stop)".to_string())
        }
        _ => {
            // Control characters shown escaped: the reply is a line for a terminal.
            let shown: String = text
                .chars()
                .take(40)
                .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
                .collect();
            return Err(format!(
                "error: unknown command '{shown}' (try status, reload, scale N, upgrade, send TEXT, stop)"
            ));
        }
    };
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse_command(b"status"), Ok(Command::Status));
        assert_eq!(parse_command(b"  reload "), Ok(Command::Reload));
        assert_eq!(parse_command(b"scale 3"), Ok(Command::Scale(3)));
        assert_eq!(parse_command(b"stop"), Ok(Command::Stop));
        assert_eq!(parse_command(b"upgrade"), Ok(Command::Upgrade));
        assert_eq!(parse_command(b"send  reset the cache "), Ok(Command::Send(" reset the cache".to_string())));
        assert!(parse_command(b"send").is_err());
        assert!(parse_command(b"send ").is_err());
        assert!(parse_command(b"sendx").is_err());
        assert!(parse_command(b"upgrade now").unwrap_err().starts_with("error: unknown"));
        assert!(parse_command(b"scale 0").unwrap_err().starts_with("error:"));
        assert!(parse_command(b"scale x").unwrap_err().starts_with("error:"));
        assert!(parse_command(b"status now").unwrap_err().starts_with("error: unknown"));
        assert!(parse_command(b"\xff\xfe").unwrap_err().starts_with("error:"));
        assert!(parse_command(b"").unwrap_err().starts_with("error: empty"));
    }

    #[test]
    fn an_error_names_the_bounds_and_shows_control_characters_escaped() {
        // A count past usize: the bounds, not only "at least 1".
        let too_many = parse_command(b"scale 99999999999999999999").unwrap_err();
        assert!(too_many.contains(&format!("from 1 to {MAX_WORKERS}")), "{too_many}");
        let unknown = parse_command(b"bo\x00om\x1b[2J").unwrap_err();
        assert_eq!(
            unknown,
            "error: unknown command 'bo\\u{0}om\\u{1b}[2J' (try status, reload, scale N, upgrade, send TEXT, stop)"
        );
    }
}
