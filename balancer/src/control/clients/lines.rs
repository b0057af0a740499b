//! A client's input: the command lines a receive completed, a line too
//! long answered and the rest of it dropped.

use std::time::Instant;

use super::{ClientId, Clients, MAX_LINE};

/// A command line without its line end (`\n` or `\r\n`).
fn command_line(line: &[u8]) -> Vec<u8> {
    line.strip_suffix(b"\r").unwrap_or(line).to_vec()
}

impl Clients {
    /// A receive completed with `result` (bytes, 0 at end of stream, or
    /// `-errno`): the complete command lines it finished, without line ends.
    /// At the end of the stream, a last line without its line end is one
    /// too (`printf status | socat - UNIX-CONNECT:PATH`).
    pub fn received(&mut self, id: ClientId, result: i32, now: Instant) -> Vec<Vec<u8>> {
        let Some(client) = self.client(id) else { return Vec::new() };
        client.receiving = false;
        if result < 0 || client.closing {
            client.closing = true;
            return Vec::new();
        }
        if client.discarding {
            if result == 0 {
                client.closing = true;
            }
            return Vec::new();
        }
        let before = client.len;
        client.len += result as usize;
        let mut lines = Vec::new();
        while let Some(end) = client.input[..client.len].iter().position(|&b| b == b'\n') {
            lines.push(command_line(&client.input[..end]));
            client.input.copy_within(end + 1..client.len, 0);
            client.len -= end + 1;
        }
        if result == 0 {
            client.closing = true;
            if client.len > 0 {
                lines.push(command_line(&client.input[..client.len]));
                client.len = 0;
            }
        }
        if !lines.is_empty() {
            client.active_at = now;
        }
        // The line now in the buffer began with this receive unless it was already under way.
        client.line_started = match client.len {
            0 => None,
            _ if before > 0 && lines.is_empty() => client.line_started,
            _ => Some(now),
        };
        if client.len == MAX_LINE {
            client.queued.extend_from_slice(b"error: line too long\n");
            client.output_since.get_or_insert(now);
            client.discarding = true;
            client.len = 0;
            // The rest must end within a line's time too.
            client.line_started = Some(now);
        }
        lines
    }
}
