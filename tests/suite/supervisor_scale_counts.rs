//! Supervisor: totals never go backwards. What a worker removed by a
//! scale-down counted stays in the stats line (its `retired` object, which
//! the harness's totals add) and in the metrics (`ringmaster_retired_*`,
//! beside the per-worker series), as a reloaded or crashed process's counts
//! stay in its worker's.

use crate::util;

use std::path::Path;
use std::time::Duration;
use util::control::{control_path, ctl};
use util::ops::{metrics_addr, samples, scrape, value};
use util::stats::{expect_worker, num, stats_when_settled};
use util::*;

/// `ringmaster_worker_requests_total` summed over workers, plus `ringmaster_retired_requests_total`.
fn metrics_requests(s: &Server) -> f64 {
    let all = samples(&scrape(metrics_addr(s)));
    let workers: f64 = all.iter().filter(|x| x.name == "ringmaster_worker_requests_total").map(|x| x.value).sum();
    workers + value(&all, "ringmaster_retired_requests_total", &[])
}

fn serve(s: &Server, n: usize) {
    for _ in 0..n {
        s.connect().get_ok();
    }
}

fn command(path: &Path, args: &[&str], reply: &str) {
    let (code, out, err) = ctl(path, args);
    assert_eq!((code, out.as_str()), (0, reply), "{args:?}: {err}");
}

#[test]
fn a_scaled_away_workers_counts_stay_in_the_totals() {
    let path = control_path("scale", "counts");
    let _ = std::fs::remove_file(&path);
    let control = path.to_str().expect("UTF-8 path").to_string();
    let args = ["--mode", "rr", "--workers", "2", "--metrics", "127.0.0.1:0", "--control", &control];
    let s = Server::start(&args);
    s.wait_workers_ready(2, START_TIMEOUT);

    serve(&s, 20);
    let st = stats_when_settled(&s, 20, 20);
    let (pid2, served2) = {
        let w2 = expect_worker(&st, 2);
        (num(&w2, "pid"), num(&w2, "requests"))
    };
    assert!(served2 > 0, "rr dealt worker 2 some of the 20: {st}");

    // Worker 2 scaled away: its requests move to `retired`, the totals stay.
    let from = s.log_len();
    command(&path, &["scale", "1"], "ok scaling to 1 worker");
    let exited = format!("worker 2 (pid {pid2}) exited with code 0");
    s.wait_for_log_from(from, |l| l == exited, Duration::from_secs(10));
    let st = stats_when_settled(&s, 20, 20);
    assert_eq!(st["workers"].as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(num(&st["retired"], "requests"), served2, "{st}");
    assert_eq!(metrics_requests(&s), 20.0);

    // A reload keeps the counts in the worker's own.
    let from = s.log_len();
    command(&path, &["reload"], "ok reloading 1 worker");
    s.wait_for_log_from(from, |l| l == "reload: done (1 worker replaced)", Duration::from_secs(10));
    stats_when_settled(&s, 20, 20);

    // Worker 2 comes back from zero; nothing is counted twice.
    command(&path, &["scale", "2"], "ok scaling to 2 workers");
    s.wait_workers_ready(2, Duration::from_secs(5));
    serve(&s, 6);
    let st = stats_when_settled(&s, 26, 26);
    assert_eq!(num(&st["retired"], "requests"), served2, "{st}");
    assert_eq!(metrics_requests(&s), 26.0);
    util::procs::stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}
