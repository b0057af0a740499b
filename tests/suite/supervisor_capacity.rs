//! Supervisor: each worker's `capacity` (what its process can hold: its
//! `--max-conns`, or fewer when its ring's table or its open-file limit is
//! smaller) is in the stats line and the metrics, and equals `--max-conns`
//! when that is the lowest.

use crate::util;

use util::ops::{metrics_addr, samples, scrape, value};
use util::stats::per_worker;
use util::*;

const MAX_CONNS: u64 = 100;

#[test]
fn capacity_is_in_the_stats_line_and_the_metrics() {
    let max = MAX_CONNS.to_string();
    let s = Server::start(&["--mode", "rr", "--workers", "2", "--max-conns", &max, "--metrics", "127.0.0.1:0"]);
    let st = s.wait_workers_ready(2, START_TIMEOUT);
    assert_eq!(per_worker(&st, "capacity"), [MAX_CONNS, MAX_CONNS], "{st}");

    let page = scrape(metrics_addr(&s));
    let all = samples(&page);
    for w in st["workers"].as_array().expect("workers") {
        let id = w["id"].to_string();
        let cpu = w["cpu"].as_u64().map_or_else(|| "none".to_string(), |c| c.to_string());
        let labels = [("worker", id.as_str()), ("cpu", cpu.as_str())];
        assert_eq!(value(&all, "ringmaster_worker_capacity", &labels), MAX_CONNS as f64, "{page}");
    }
    util::procs::stop_and_check_no_process_left(s);
}
