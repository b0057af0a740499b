//! What a worker is told at start.

use std::time::Duration;

use crate::backend::Backend;
use crate::http::Limits;

/// A worker's settings; every field has the command line's default.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The kernel interface the worker's loop runs on (chosen by the master).
    pub backend: Backend,
    /// Connections one worker holds at once (`--max-conns`).
    pub max_conns: usize,
    /// Largest request header block in bytes (`--max-header`).
    pub max_header: usize,
    /// Largest request body in bytes (`--max-body`).
    pub max_body: u64,
    /// Time a client has to send a complete header block (`--header-timeout`).
    pub header_timeout: Duration,
    /// Time a keep-alive connection may sit idle (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Time a client has to send a request's body (`--body-timeout`); each
    /// KiB received extends it by a second, so only a client slower than
    /// 1 KiB/s on average is cut off.
    pub body_timeout: Duration,
    /// Time a draining worker waits for its connections before closing them.
    pub drain_timeout: Duration,
    /// Largest response body a handler may write (`--max-response`); more is
    /// answered `500`.
    pub max_response: usize,
    /// Buffers for request bodies that do not arrive with their head, and
    /// for chunked ones, whose framing is taken out (`--body-buffers`);
    /// with none free such a request gets `503`.
    pub body_buffers: usize,
    /// Submission queue entries of the ring (four times as many completion
    /// entries); the kernel clamps them to its most, 32,768 and 65,536.
    pub ring_entries: u32,
    /// Receive buffers in the provided-buffer ring (a power of two).
    pub recv_buffers: u16,
    /// Size of one receive buffer in bytes.
    pub recv_buffer_size: u32,
    /// Single-shot accepts kept outstanding on a listener.
    pub accepts_outstanding: u32,
    /// `--health-path`: a `GET` of this path is answered `200 ready` while the
    /// worker serves, `503 draining` once it drains or is marked a lame duck.
    pub health_path: Option<String>,
    /// Faults injected for tests and benchmarks.
    pub faults: Faults,
}

/// When an injected stall ([`Faults::stall`]) begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallStart {
    /// This long after the worker is ready.
    AfterReady(Duration),
    /// At the first loop turn after the worker has answered this many
    /// requests: a test's load is running by then, however slowly the
    /// machine let it start.
    AfterRequests(u64),
}

/// Faults a worker injects into its own loop, for tests and benchmarks of
/// what the master does about a slow or stalled worker (`RINGMASTER_FAULT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Once, from when the first says, stop serving for the duration, as a
    /// descheduled process would (its heartbeat stops too).
    pub stall: Option<(StallStart, Duration)>,
    /// Spend this long (on the CPU) on every request, as a slow handler would.
    pub per_request: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            backend: Backend::Uring,
            max_conns: 16384,
            max_header: 8 * 1024,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            max_response: 16 * 1024,
            body_buffers: 64,
            ring_entries: 4096,
            recv_buffers: 4096,
            recv_buffer_size: 4096,
            accepts_outstanding: 4,
            health_path: None,
            faults: Faults::default(),
        }
    }
}

impl EngineConfig {
    /// The request limits the parser enforces.
    pub fn limits(&self) -> Limits {
        Limits { max_header: self.max_header, max_body: self.max_body }
    }
}
