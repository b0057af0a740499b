//! Library audit: a handler whose routes exercise the Handler / Request /
//! Response API's edge cases. Env: PORT, WORKERS, MODE (rr|shared),
//! CONTROL, MAX_RESPONSE, BACKEND (uring|epoll), WATCHDOG (seconds).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use ringmaster::{role, worker_id, Backend, Cluster, Handler, Mode, Request, Response, Role};

struct Audit {
    id: usize,
    pid: u32,
    messages: Vec<String>,
    served: u64,
}

fn q<'a>(req: &Request<'a>, key: &str) -> Option<&'a str> {
    req.query()?.split('&').find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

impl Handler for Audit {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        self.served += 1;
        let n: usize = q(req, "n").and_then(|n| n.parse().ok()).unwrap_or(0);
        match req.path() {
            "/empty" => {}
            "/size" => {
                for i in 0..n {
                    res.body(&[b'a' + (i % 26) as u8]);
                }
            }
            "/size-hdr" => {
                // n bytes of body plus one small header
                res.header("X-Extra", "1");
                for i in 0..n {
                    res.body(&[b'a' + (i % 26) as u8]);
                }
            }
            "/bighdr" => {
                // n header bytes in 100-byte fields, small body
                let value = "v".repeat(90);
                let mut written = 0;
                let mut i = 0;
                while written < n {
                    let name = format!("X-H{i:04}");
                    res.header(&name, &value);
                    written += name.len() + 2 + value.len() + 2;
                    i += 1;
                }
                res.body(b"ok\n");
            }
            "/status" => {
                res.status(n as u16).body(b"body-of-status\n");
            }
            "/hdr" => {
                let which = q(req, "k").unwrap_or("");
                match which {
                    "crlf" => {
                        res.header("X-Bad", "a\r\nInjected: yes");
                    }
                    "lf" => {
                        res.header("X-Bad", "a\nInjected: yes");
                    }
                    "cr" => {
                        res.header("X-Bad", "a\rb");
                    }
                    "nul" => {
                        res.header("X-Bad", "a\0b");
                    }
                    "del" => {
                        res.header("X-Bad", "a\x7fb");
                    }
                    "obs" => {
                        res.header("X-Obs", b"caf\xc3\xa9".as_slice());
                    }
                    "space-name" => {
                        res.header("X Bad", "v");
                    }
                    "colon-name" => {
                        res.header("X-Bad:", "v");
                    }
                    "empty-name" => {
                        res.header("", "v");
                    }
                    "empty-value" => {
                        res.header("X-Empty", "");
                    }
                    "ws-value" => {
                        res.header("X-Ws", " padded ");
                    }
                    "clen" => {
                        res.header("Content-Length", "5");
                    }
                    "te" => {
                        res.header("Transfer-Encoding", "chunked");
                    }
                    "conn-close" => {
                        res.header("Connection", "close");
                    }
                    "date" => {
                        res.header("Date", "yesterday");
                    }
                    "server" => {
                        res.header("Server", "mine");
                    }
                    "server-lower" => {
                        res.header("server", "mine");
                    }
                    "keep-alive" => {
                        res.header("Keep-Alive", "timeout=1");
                    }
                    "upgrade" => {
                        res.header("Upgrade", "websocket");
                    }
                    "trailer" => {
                        res.header("Trailer", "X-T");
                    }
                    "dup" => {
                        res.header("Set-Cookie", "a=1").header("Set-Cookie", "b=2");
                    }
                    _ => {}
                }
                res.body(b"0123456789\n");
            }
            "/close" => {
                res.close().body(b"closing\n");
            }
            "/panic" => panic!("audit: handler panic"),
            "/panic-after" => {
                res.status(201).header("X-Half", "1").body(b"half");
                panic!("audit: handler panic after writing");
            }
            "/slow" => {
                std::thread::sleep(Duration::from_millis(n as u64));
                res.body(b"slow done\n");
            }
            "/msgs" => {
                let _ = writeln!(res, "worker {} pid {} messages {:?}", self.id, self.pid, self.messages);
            }
            "/tell" => {
                let text = "\u{e9}".repeat(n);
                let r = ringmaster::send_to_master(&text);
                let _ = writeln!(res, "sent {} bytes: {:?}", text.len(), r.map_err(|e| e.kind()));
            }
            "/env" => {
                // What a subprocess the handler starts inherits.
                let out = std::process::Command::new("sh").arg("-c").arg("env | grep ^RINGMASTER_ | sort").output();
                match out {
                    Ok(out) => {
                        res.body(&out.stdout);
                    }
                    Err(e) => {
                        let _ = writeln!(res, "spawn failed: {e}");
                    }
                }
            }
            "/tell-thread" => {
                // From a thread of the handler's own.
                let r = std::thread::spawn(|| ringmaster::send_to_master("from a thread").map_err(|e| e.kind()))
                    .join()
                    .expect("thread");
                let _ = writeln!(res, "from a thread: {r:?}");
            }
            "/whoami" => {
                let _ =
                    writeln!(res, "worker {} pid {} role {:?} worker_id {:?}", self.id, self.pid, role(), worker_id());
            }
            _ => {
                // Echo the request byte-exactly in a length-prefixed form.
                let _ = writeln!(res, "method {}|{}", req.method().len(), req.method());
                let _ = writeln!(res, "target {}|{}", req.target().len(), req.target());
                let _ = writeln!(res, "path {}|{}", req.path().len(), req.path());
                match req.query() {
                    Some(qs) => {
                        let _ = writeln!(res, "query {}|{}", qs.len(), qs);
                    }
                    None => {
                        let _ = writeln!(res, "query none");
                    }
                }
                let _ = writeln!(res, "version {:?}", req.version());
                for h in req.headers() {
                    let _ = write!(res, "header {}|{}|{}|", h.name.len(), h.name, h.value.len());
                    res.body(h.value);
                    res.body(b"\n");
                }
                let _ = write!(res, "body {}|", req.body().len());
                res.body(req.body());
                res.body(b"\n");
            }
        }
    }

    fn on_message(&mut self, message: &str) {
        if message == "panic" {
            panic!("audit: on_message panic");
        }
        self.messages.push(message.to_string());
    }
}

fn main() -> ExitCode {
    let port = std::env::var("PORT").unwrap_or_else(|_| "26415".to_string());
    let mode = match std::env::var("MODE").as_deref() {
        Ok("shared") => Mode::Shared,
        Ok("reuseport") => Mode::Reuseport,
        Ok("least") => Mode::Least,
        _ => Mode::RoundRobin,
    };
    let workers = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(2);
    let mut cluster = Cluster::new().bind(format!("127.0.0.1:{port}")).workers(workers).mode(mode).pin(false);
    if let Ok(b) = std::env::var("BACKEND") {
        cluster = cluster.backend(if b == "epoll" { Backend::Epoll } else { Backend::Uring });
    }
    if let Ok(m) = std::env::var("MAX_RESPONSE") {
        let m: usize = m.parse().expect("MAX_RESPONSE");
        cluster = cluster.configure(|e| e.max_response = m);
    }
    if let Ok(w) = std::env::var("WATCHDOG") {
        let w: u64 = w.parse().expect("WATCHDOG");
        cluster = cluster.watchdog(if w == 0 { None } else { Some(Duration::from_secs(w)) });
    }
    if let Ok(w) = std::env::var("WATCHDOG_MS") {
        // Passed as given: Some(Duration::from_millis(w)), 0 included.
        let w: u64 = w.parse().expect("WATCHDOG_MS");
        cluster = cluster.watchdog(Some(Duration::from_millis(w)));
    }
    if let Ok(d) = std::env::var("SHUTDOWN_TIMEOUT") {
        let d: u64 = d.parse().expect("SHUTDOWN_TIMEOUT");
        cluster = cluster.shutdown_timeout(Duration::from_secs(d));
    }
    if let Ok(d) = std::env::var("DRAIN_TIMEOUT") {
        // The workers' drain, set through configure() as its doc invites.
        let d: u64 = d.parse().expect("DRAIN_TIMEOUT");
        cluster = cluster.configure(|e| e.drain_timeout = Duration::from_secs(d));
    }
    if let Ok(t) = std::env::var("HEADER_TIMEOUT_MS") {
        let t: u64 = t.parse().expect("HEADER_TIMEOUT_MS");
        cluster = cluster.configure(|e| e.header_timeout = Duration::from_millis(t));
    }
    if let Ok(t) = std::env::var("IDLE_TIMEOUT_MS") {
        let t: u64 = t.parse().expect("IDLE_TIMEOUT_MS");
        cluster = cluster.configure(|e| e.idle_timeout = Duration::from_millis(t));
    }
    if let Ok(n) = std::env::var("RECV_BUFFERS") {
        let n: u16 = n.parse().expect("RECV_BUFFERS");
        cluster = cluster.configure(|e| e.recv_buffers = n);
    }
    if let Ok(n) = std::env::var("RING_ENTRIES") {
        let n: u32 = n.parse().expect("RING_ENTRIES");
        cluster = cluster.configure(|e| e.ring_entries = n);
    }
    if let Ok(n) = std::env::var("RECV_BUFFER_SIZE") {
        let n: u32 = n.parse().expect("RECV_BUFFER_SIZE");
        cluster = cluster.configure(|e| e.recv_buffer_size = n);
    }
    if let Ok(n) = std::env::var("MAX_CONNS") {
        let n: usize = n.parse().expect("MAX_CONNS");
        cluster = cluster.configure(|e| e.max_conns = n);
    }
    if let Ok(n) = std::env::var("BODY_BUFFERS") {
        let n: usize = n.parse().expect("BODY_BUFFERS");
        cluster = cluster.configure(|e| e.body_buffers = n);
    }
    if let Ok(h) = std::env::var("HEALTH") {
        cluster = cluster.health_path(h);
    }
    if let Ok(c) = std::env::var("CPUS") {
        cluster =
            cluster.pin(true).cpus(c.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().expect("CPUS")).collect());
    }
    if let Ok(path) = std::env::var("CONTROL") {
        cluster = cluster.control(path);
    }
    if matches!(role(), Role::Primary) {
        eprintln!(
            "audit_lib: primary pid {}; send_to_master here: {:?}",
            std::process::id(),
            ringmaster::send_to_master("x").map_err(|e| e.kind())
        );
        cluster =
            cluster.on_worker_message(|id, text| eprintln!("audit_lib: worker {id} says {} bytes: {text}", text.len()));
    }
    cluster.serve(|| Audit { id: worker_id().unwrap_or(0), pid: std::process::id(), messages: Vec::new(), served: 0 })
}
