//! The control socket (`--control PATH`) and `ringmaster ctl`, from the client
//! side: one command line, one reply line.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::procs::run_to_exit;

/// A control socket path in the temp dir, unique to this test process:
/// `ringmaster-sup-SUITE-PID-NAME.sock`.
pub fn control_path(suite: &str, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ringmaster-sup-{suite}-{}-{name}.sock", std::process::id()))
}

/// A control socket path ([`control_path`]), removed (if still there) on drop.
pub struct SockPath(pub PathBuf);

impl SockPath {
    pub fn new(suite: &str, name: &str) -> SockPath {
        let path = control_path(suite, name);
        let _ = std::fs::remove_file(&path);
        SockPath(path)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for SockPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A control-socket client with 5 s timeouts.
pub struct Control {
    pub r: BufReader<UnixStream>,
}

impl Control {
    pub fn connect(path: &Path) -> Control {
        let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        Control { r: BufReader::new(s) }
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).expect("write to the control socket");
    }

    /// Reads one reply line, which must be whole (end in a newline) and text;
    /// returns it without the line end.
    pub fn line(&mut self) -> String {
        let mut reply = Vec::new();
        self.r.read_until(b'\n', &mut reply).expect("read a reply line");
        assert!(reply.ends_with(b"\n"), "reply is not a whole line: {:?}", String::from_utf8_lossy(&reply));
        String::from_utf8(reply).expect("reply is text").trim_end().to_string()
    }

    /// Sends `line` and a newline; returns the reply line.
    pub fn command(&mut self, line: impl AsRef<[u8]>) -> String {
        let mut bytes = line.as_ref().to_vec();
        bytes.push(b'\n');
        self.send(&bytes);
        self.line()
    }

    /// `status`, parsed (see [`parse_status`]).
    pub fn status(&mut self) -> serde_json::Value {
        let reply = self.command("status");
        parse_status(&reply)
    }
}

/// Parses a `status` reply: JSON with a `workers` array.
pub fn parse_status(reply: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(reply).unwrap_or_else(|e| panic!("status reply {reply:?}: {e}"));
    assert!(v["workers"].is_array(), "status without workers: {reply}");
    v
}

/// `status` on a fresh control connection.
pub fn status(path: &Path) -> serde_json::Value {
    Control::connect(path).status()
}

/// `ringmaster ctl PATH ARGS...` (at most 15 s): (exit code, stdout without the
/// newline, stderr).
pub fn ctl(path: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["ctl", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let (status, out, err) = run_to_exit(&all, Duration::from_secs(15));
    (status.code().unwrap_or(-1), out.trim_end().to_string(), err.trim_end().to_string())
}

/// A client that sends `bytes`, ends its input and reads what the master
/// sends until it closes, as `printf ... | socat - UNIX-CONNECT:PATH` does;
/// each step within 15 s. An error of any step (a reset, say) is returned.
pub fn send_then_read_to_end(path: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let mut client = UnixStream::connect(path)?;
    client.set_read_timeout(Some(Duration::from_secs(15)))?;
    client.set_write_timeout(Some(Duration::from_secs(15)))?;
    client.write_all(bytes)?;
    client.shutdown(Shutdown::Write)?;
    let mut reply = String::new();
    client.read_to_string(&mut reply)?;
    Ok(reply)
}
