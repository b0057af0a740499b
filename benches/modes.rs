//! End-to-end benches: the real `ringmaster` binary in each balancing mode
//! (`rr`, `least`, `shared`, `reuseport` by hash and by load (`--steer`,
//! `reuseport-load`: needs root); pinned, `--no-pin` for `rr` and `shared`,
//! and each mode on `--backend epoll`; two workers each), driven
//! over loopback by the epoll load client in `support::client`.
//!
//! Three groups, one per scenario, the configurations as functions of each
//! group so criterion's report compares them (requests/s via
//! `Throughput::Elements`):
//! - `e2e/keepalive-64c`: 64 kept-alive connections, one request in flight on each;
//! - `e2e/pipeline16-64c`: 64 connections, 16 requests per write;
//! - `e2e/churn-32c`: a new connection per request (`Connection: close`, the
//!   server closes), 32 at a time.
//!
//! Beside them, `rr-router`: the `router` example (the library's
//! `Handler::handle` path, `rr`, pinned) against the static responder `rr`.
//! The router asks for its clients' addresses (`Handler::wants_peer_addr`),
//! so each of its connections also costs one `getpeername`.
//!
//! After each group every server is asked for its stats line (`SIGUSR1`); the
//! per-worker split of what that group did, with Jain's fairness index, is
//! printed and written to `target/ringmaster-bench/fairness.md`. Then the
//! balancing scenarios (`support::scenarios`: a worker stopped 3 s of 8 s
//! under churn, unequal connections) run once per pinned configuration and
//! go to `target/ringmaster-bench/scenarios.md` (`RINGMASTER_BENCH_SCENARIOS=0`
//! leaves them out; a filter does not). `--list` lists and writes nothing; a
//! filter keeps to the benches it ran in `fairness.md`, and leaves the file
//! as it was if it matched none.
//!
//! Each bench takes 10 samples after 1 s of warm-up over 4 s of measurement
//! unless criterion's command line says otherwise (`--sample-size`,
//! `--warm-up-time`, `--measurement-time`, after `--`): the groups set no
//! times of their own, so the command line wins.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, SamplingMode, Throughput};

use support::client::{LoadClient, Scenario};
use support::fairness::Table;
use support::scenarios;
use support::server::{Server, Snapshot, BIN};

/// The configurations compared: label and extra command-line arguments.
const MODES: [(&str, &[&str]); 11] = [
    ("rr", &["--mode", "rr"]),
    ("least", &["--mode", "least"]),
    ("shared", &["--mode", "shared"]),
    ("reuseport", &["--mode", "reuseport", "--steer", "hash"]),
    ("reuseport-load", &["--mode", "reuseport", "--steer", "load"]),
    ("rr-nopin", &["--mode", "rr", "--no-pin"]),
    ("shared-nopin", &["--mode", "shared", "--no-pin"]),
    ("rr-epoll", &["--mode", "rr", "--backend", "epoll"]),
    ("least-epoll", &["--mode", "least", "--backend", "epoll"]),
    ("shared-epoll", &["--mode", "shared", "--backend", "epoll"]),
    ("reuseport-epoll", &["--mode", "reuseport", "--steer", "hash", "--backend", "epoll"]),
];

/// One scenario: its group name, the client's shape, and requests per iteration.
struct Case {
    group: &'static str,
    scenario: Scenario,
    requests: u64,
}

const CASES: [Case; 3] = [
    Case { group: "e2e/keepalive-64c", scenario: Scenario::KeepAlive { connections: 64, depth: 1 }, requests: 10_000 },
    Case {
        group: "e2e/pipeline16-64c",
        scenario: Scenario::KeepAlive { connections: 64, depth: 16 },
        requests: 64 * 16 * 40,
    },
    Case { group: "e2e/churn-32c", scenario: Scenario::Churn { concurrency: 32 }, requests: 2_000 },
];

fn main() {
    // The defaults first, then the command line over them.
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();

    let mut servers: Vec<Server> = MODES
        .iter()
        .map(|&(label, args)| {
            Server::start(label, args).unwrap_or_else(|e| panic!("starting ringmaster ({label}): {e}"))
        })
        .collect();
    // The library's own handler beside the static responder (`rr`, pinned):
    // the `router` example answers `GET /` through `Handler::handle`.
    servers.push(
        Server::start_example("rr-router", "router").unwrap_or_else(|e| panic!("starting the router example: {e}")),
    );

    let mut report = format!(
        "# ringmaster end-to-end benches: per-worker split\n\n\
         Each row is what one server's workers did during that group (difference of the stats\n\
         lines before and after it; the keep-alive groups' connections are opened in the group).\n\
         Jain's index is (sum x)^2 / (n * sum x^2): 1.0 is an even split, 0.5 one worker of two.\n\
         Server CPU is utime + stime of the master and its workers (/proc) over the group; the\n\
         load client shares the machine's cores, so requests per server CPU-second is the\n\
         steadier figure when throughput is noisy.\n\
         Run at unix time {}.\n\n",
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    );
    let out = output_path();
    // `--list` only names the benches: no tables, no scenarios, and the last
    // run's reports are left as they are.
    let listing = std::env::args().any(|arg| arg == "--list");
    // Whether any group measured something (a filter may match none).
    let mut written = false;

    for case in &CASES {
        let before: Vec<Result<Snapshot, String>> =
            servers.iter().map(|s| s.snapshot().map_err(|e| e.to_string())).collect();

        let mut group = criterion.benchmark_group(case.group);
        // Times and sample size come from `criterion` (ours, or the command
        // line's): set here too, they would override the command line.
        group.throughput(Throughput::Elements(case.requests)).sampling_mode(SamplingMode::Flat);
        // Which servers this group measured: a filter on the command line
        // leaves the others out of its table too.
        let mut ran = vec![false; servers.len()];
        for (server, ran) in servers.iter().zip(&mut ran) {
            // Made on first use, so a filtered-out bench opens no connections.
            let mut client: Option<LoadClient> = None;
            group.bench_function(server.label, |b| {
                *ran = true;
                let client = client.get_or_insert_with(|| {
                    LoadClient::new(server.addr, case.scenario)
                        .unwrap_or_else(|e| panic!("{} {}: load client setup: {e}", case.group, server.label))
                });
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        client
                            .run(case.requests)
                            .unwrap_or_else(|e| panic!("{} {}: load client: {e}", case.group, server.label));
                    }
                    start.elapsed()
                });
            });
            // Close the kept-alive connections before the next mode runs.
            drop(client);
        }
        group.finish();
        if listing || !ran.contains(&true) {
            continue;
        }

        let mut table = Table::new(case.group);
        for ((server, before), _) in servers.iter().zip(&before).zip(&ran).filter(|(_, &ran)| ran) {
            let after = server.snapshot().map_err(|e| e.to_string());
            match (before, &after) {
                (Ok(before), Ok(after)) => table.row(server.label, before, after),
                (Err(e), _) | (_, Err(e)) => table.missing(server.label, e),
            }
        }
        let table = table.into_text();
        println!("\n{table}");
        report.push_str(&table);
        report.push('\n');
        // Written after every group, so an interrupted run keeps what it had.
        if let Err(e) = write_report(&out, &report) {
            eprintln!("cannot write {}: {e}", out.display());
        }
        written = true;
    }
    if listing {
        return;
    }
    if written {
        println!("per-worker split written to {}", out.display());
    } else {
        println!("no end-to-end bench matched: {} left as it was", out.display());
    }

    if std::env::var("RINGMASTER_BENCH_SCENARIOS").as_deref() != Ok("0") {
        let pinned: Vec<&Server> =
            servers.iter().filter(|s| !s.label.ends_with("-nopin") && !s.label.ends_with("-router")).collect();
        let scenarios = scenarios::run_all(&pinned);
        println!("\n{scenarios}");
        let path = out.with_file_name("scenarios.md");
        if let Err(e) = write_report(&path, &scenarios) {
            eprintln!("cannot write {}: {e}", path.display());
        }
        println!("scenarios written to {}", path.display());
    }

    drop(servers);
    criterion.final_summary();
}

/// `<target dir>/ringmaster-bench/fairness.md`, the target dir found from the
/// binary's path (`<target>/<profile>/ringmaster`), so `CARGO_TARGET_DIR` is honoured.
fn output_path() -> PathBuf {
    let target = Path::new(BIN).parent().and_then(Path::parent).unwrap_or(Path::new("target"));
    target.join("ringmaster-bench").join("fairness.md")
}

fn write_report(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, text)
}
