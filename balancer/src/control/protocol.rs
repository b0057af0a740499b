//! The control socket's line protocol: one command per line, one reply line
//! per command, starting with `ok`, `error:`, or (for `status`) the JSON stats
//! line.

/// Longest command line the master reads; longer input is refused.
pub const MAX_LINE: usize = 256;

/// A parsed control command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

/// Parses one line (without its newline); the error is the reply to send.
pub fn parse_command(line: &[u8]) -> Result<Command, String> {
    let text = std::str::from_utf8(line).map_err(|_| "error: commands are text".to_string())?;
    let mut words = text.split_ascii_whitespace();
    let command = match (words.next(), words.next(), words.next()) {
        (Some("status"), None, _) => Command::Status,
        (Some("reload"), None, _) => Command::Reload,
        (Some("stop"), None, _) => Command::Stop,
        (Some("upgrade"), None, _) => Command::Upgrade,
        (Some("scale"), Some(count), None) => match count.parse::<usize>() {
            Ok(n) if n >= 1 => Command::Scale(n),
            _ => return Err(format!("error: scale takes a worker count of at least 1, not '{count}'")),
        },
        (None, _, _) => return Err("error: empty command (try status, reload, scale N, upgrade, stop)".to_string()),
        _ => {
            let shown: String = text.chars().take(40).collect();
            return Err(format!("error: unknown command '{shown}' (try status, reload, scale N, upgrade, stop)"));
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
        assert!(parse_command(b"upgrade now").unwrap_err().starts_with("error: unknown"));
        assert!(parse_command(b"scale 0").unwrap_err().starts_with("error:"));
        assert!(parse_command(b"scale x").unwrap_err().starts_with("error:"));
        assert!(parse_command(b"status now").unwrap_err().starts_with("error: unknown"));
        assert!(parse_command(b"\xff\xfe").unwrap_err().starts_with("error:"));
        assert!(parse_command(b"").unwrap_err().starts_with("error: empty"));
    }
}
