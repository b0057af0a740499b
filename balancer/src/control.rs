//! The control socket's line protocol (`--control PATH`, mode 0600) and the
//! client behind `ringmaster ctl PATH COMMAND`.
//!
//! One command per line; one reply line per command. Replies start with
//! `ok`, `error:`, or (for `status`) the JSON stats line.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use io_uring::opcode;
use io_uring::squeue::Entry;
use io_uring::types::Fd;

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
}

/// Parses one line (without its newline); the error is the reply to send.
pub fn parse_command(line: &[u8]) -> Result<Command, String> {
    let text = std::str::from_utf8(line).map_err(|_| "error: commands are text".to_string())?;
    let mut words = text.split_ascii_whitespace();
    let command = match (words.next(), words.next(), words.next()) {
        (Some("status"), None, _) => Command::Status,
        (Some("reload"), None, _) => Command::Reload,
        (Some("stop"), None, _) => Command::Stop,
        (Some("scale"), Some(count), None) => match count.parse::<usize>() {
            Ok(n) if n >= 1 => Command::Scale(n),
            _ => return Err(format!("error: scale takes a worker count of at least 1, not '{count}'")),
        },
        (None, _, _) => return Err("error: empty command (try status, reload, scale N, stop)".to_string()),
        _ => {
            let shown: String = text.chars().take(40).collect();
            return Err(format!("error: unknown command '{shown}' (try status, reload, scale N, stop)"));
        }
    };
    Ok(command)
}

/// Control clients served at once; more are refused (closed).
const MAX_CLIENTS: usize = 8;

/// The master's listening control socket and its clients, served on the master's ring.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    accepting: bool,
    clients: Vec<Option<Client>>,
    epochs: Vec<u32>,
}

#[derive(Debug)]
struct Client {
    fd: OwnedFd,
    input: Box<[u8; MAX_LINE]>,
    len: usize,
    /// Bytes a send in flight reads: never touched until it completes.
    sending: Vec<u8>,
    sent: usize,
    /// Replies waiting for the send in flight.
    queued: Vec<u8>,
    receiving: bool,
    in_flight: bool,
    closing: bool,
}

impl ControlSocket {
    /// Creates the socket at `path` with mode 0600 (replacing a stale socket, never a file).
    pub fn bind(path: &Path) -> Result<ControlSocket, String> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(format!("--control {}: exists and is not a socket", path.display()));
            }
            std::fs::remove_file(path).map_err(|e| format!("--control {}: cannot replace: {e}", path.display()))?;
        }
        // SAFETY: umask only changes this process's file-creation mask; restored below.
        let old_mask = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old_mask) };
        let listener = bound.map_err(|e| format!("--control {}: cannot listen: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("--control {}: cannot set mode 0600: {e}", path.display()))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            accepting: false,
            clients: (0..MAX_CLIENTS).map(|_| None).collect(),
            epochs: vec![0; MAX_CLIENTS],
        })
    }

    /// True while some client still has reply bytes to receive.
    pub fn has_pending_output(&self) -> bool {
        self.clients.iter().flatten().any(|c| c.in_flight || !c.queued.is_empty() || c.sent < c.sending.len())
    }

    /// The multishot accept to submit, unless one is armed.
    pub fn accept_entry(&mut self) -> Option<Entry> {
        if self.accepting {
            return None;
        }
        self.accepting = true;
        Some(opcode::AcceptMulti::new(Fd(self.listener.as_raw_fd())).flags(libc::SOCK_CLOEXEC).build())
    }

    /// The multishot accept ended (it is re-armed by the caller).
    pub fn accept_ended(&mut self) {
        self.accepting = false;
    }

    /// Takes an accepted client; the receive to submit, with its index and epoch.
    pub fn adopt(&mut self, raw: i32) -> Option<(usize, u32, Entry)> {
        // SAFETY: a successful accept returned this new fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // A full house drops `fd` here, closing the connection.
        let index = self.clients.iter().position(Option::is_none)?;
        self.epochs[index] = self.epochs[index].wrapping_add(1);
        self.clients[index] = Some(Client {
            fd,
            input: Box::new([0; MAX_LINE]),
            len: 0,
            sending: Vec::new(),
            sent: 0,
            queued: Vec::new(),
            receiving: false,
            in_flight: false,
            closing: false,
        });
        let epoch = self.epochs[index];
        let (_, recv) = self.next_ops(index, epoch);
        recv.map(|entry| (index, epoch, entry))
    }

    fn client(&mut self, index: usize, epoch: u32) -> Option<&mut Client> {
        if self.epochs.get(index) != Some(&epoch) {
            return None;
        }
        self.clients.get_mut(index)?.as_mut()
    }

    /// A receive completed: returns the complete command lines it finished.
    pub fn received(&mut self, index: usize, epoch: u32, result: i32) -> Vec<Vec<u8>> {
        let Some(client) = self.client(index, epoch) else { return Vec::new() };
        client.receiving = false;
        if result <= 0 {
            client.closing = true;
            return Vec::new();
        }
        client.len += result as usize;
        let mut lines = Vec::new();
        while let Some(end) = client.input[..client.len].iter().position(|&b| b == b'\n') {
            let mut line = client.input[..end].to_vec();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(line);
            client.input.copy_within(end + 1..client.len, 0);
            client.len -= end + 1;
        }
        if client.len == MAX_LINE {
            client.queued.extend_from_slice(b"error: line too long\n");
            client.closing = true;
            client.len = 0;
        }
        lines
    }

    /// Queues a reply line for a client.
    pub fn reply(&mut self, index: usize, epoch: u32, text: &str) {
        if let Some(client) = self.client(index, epoch) {
            client.queued.extend_from_slice(text.as_bytes());
            client.queued.push(b'\n');
        }
    }

    /// A send completed.
    pub fn sent(&mut self, index: usize, epoch: u32, result: i32) {
        let Some(client) = self.client(index, epoch) else { return };
        client.in_flight = false;
        if result < 0 {
            client.closing = true;
            client.sending.clear();
            client.queued.clear();
            return;
        }
        client.sent += result as usize;
        if client.sent >= client.sending.len() {
            client.sending.clear();
            client.sent = 0;
        }
    }

    /// The send and receive to submit next for a client; frees it once it is done.
    pub fn next_ops(&mut self, index: usize, epoch: u32) -> (Option<Entry>, Option<Entry>) {
        let Some(client) = self.client(index, epoch) else { return (None, None) };
        let mut send = None;
        if !client.in_flight {
            if client.sending.is_empty() && !client.queued.is_empty() {
                std::mem::swap(&mut client.sending, &mut client.queued);
            }
            if client.sent < client.sending.len() {
                let rest = &client.sending[client.sent..];
                client.in_flight = true;
                let entry = opcode::Send::new(Fd(client.fd.as_raw_fd()), rest.as_ptr(), rest.len() as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build();
                send = Some(entry);
            }
        }
        let mut recv = None;
        if !client.receiving && !client.closing {
            client.receiving = true;
            let room = &mut client.input[client.len..];
            recv = Some(opcode::Recv::new(Fd(client.fd.as_raw_fd()), room.as_mut_ptr(), room.len() as u32).build());
        }
        if client.closing && !client.receiving && !client.in_flight && client.queued.is_empty() {
            self.clients[index] = None;
        }
        (send, recv)
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends `command` to the control socket at `path` and returns the reply line.
pub fn request(path: &Path, command: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {}: {e}", path.display())))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(command.trim().as_bytes())?;
    stream.write_all(b"\n")?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    if reply.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the master closed the control connection"));
    }
    Ok(reply.trim_end().to_string())
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
        assert!(parse_command(b"scale 0").unwrap_err().starts_with("error:"));
        assert!(parse_command(b"scale x").unwrap_err().starts_with("error:"));
        assert!(parse_command(b"status now").unwrap_err().starts_with("error: unknown"));
        assert!(parse_command(b"\xff\xfe").unwrap_err().starts_with("error:"));
        assert!(parse_command(b"").unwrap_err().starts_with("error: empty"));
    }
}
