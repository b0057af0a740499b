//! The metrics page's unit tests.

use ringmaster_engine::stats::STATE_READY;

use super::*;

fn snapshot(workers: &[WorkerRow]) -> Snapshot<'_> {
    Snapshot {
        program: "ringmaster",
        mode: "rr",
        steer: None,
        backend: "uring",
        version: "0.1.0",
        workers_wanted: workers.len(),
        max_conns: 16384,
        stopping: false,
        lame_duck: false,
        counts: MasterCounts { accepted: 12, handed_over: 12, ..MasterCounts::default() },
        held: 0,
        queued_fds: 1,
        process: Some(ProcStat { cpu_seconds: 0.5, rss_bytes: 4096, virtual_bytes: 8192, threads: 1 }),
        start_time: 1_796_162_311.0,
        open_fds: Some(12),
        max_fds: Some(1024),
        retired: CountersSnapshot { requests: 5, ..CountersSnapshot::default() },
        workers,
    }
}

fn worker(id: usize, cpu: Option<usize>) -> WorkerRow {
    let counts =
        CountersSnapshot { accepted: 6, requests: 9, live: 1, capacity: 50, state: STATE_READY, ..Default::default() };
    WorkerRow {
        steer: None,
        id,
        pid: Some(100 + id as u32),
        running: true,
        cpu,
        counts,
        restarts: 0,
        uptime_ms: 1500,
        lame_duck: false,
        unstable_restarts: 0,
        req_per_s: 0.0,
        process: Some(ProcStat { cpu_seconds: 0.25, rss_bytes: 2048, virtual_bytes: 0, threads: 1 }),
        routing: Some(Routing {
            unacked: 3,
            queued: id as u64,
            lagging: id == 2,
            passed_over: 5 * id as u64,
            ack_delay_us: 1_500,
        }),
    }
}

#[test]
fn every_family_is_one_group_with_help_and_type_first() {
    let rows = [worker(1, Some(0)), worker(2, None)];
    let page = render(&snapshot(&rows));
    assert!(page.ends_with('\n'));
    let mut seen = Vec::new();
    let mut current = "";
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            current = rest.split(' ').next().unwrap_or_default();
            assert!(!seen.contains(&current), "{current} twice");
            seen.push(current);
        } else if !line.starts_with("# TYPE ") {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert_eq!(name, current, "a sample outside its family: {line}");
        }
    }
    assert!(
        page.contains("ringmaster_info{program=\"ringmaster\",mode=\"rr\",backend=\"uring\",version=\"0.1.0\"} 1\n")
    );
    let steered = render(&Snapshot { mode: "reuseport", steer: Some("load"), ..snapshot(&rows) });
    let info = "ringmaster_info{program=\"ringmaster\",mode=\"reuseport\",steer=\"load\",backend=\"uring\",version=\"0.1.0\"} 1\n";
    assert!(steered.contains(info), "{steered}");
    assert!(page.contains("ringmaster_worker_requests_total{worker=\"2\",cpu=\"none\"} 9\n"));
    assert!(page.contains("ringmaster_worker_state{worker=\"1\",cpu=\"0\",state=\"ready\"} 1\n"));
    assert!(page.contains("ringmaster_worker_state{worker=\"1\",cpu=\"0\",state=\"draining\"} 0\n"));
    assert!(page.contains("ringmaster_worker_uptime_seconds{worker=\"1\",cpu=\"0\"} 1.5\n"));
    assert!(page.contains("ringmaster_master_connections_accepted_total 12\n"));
    assert!(page.contains("process_cpu_seconds_total 0.5\n"));
    assert!(page.contains("ringmaster_retired_requests_total 5\n"));
    assert!(page.contains("ringmaster_worker_capacity{worker=\"1\",cpu=\"0\"} 50\n"));
    assert!(page.contains("ringmaster_worker_connections_unacknowledged{worker=\"1\",cpu=\"0\"} 3\n"));
    assert!(page.contains("ringmaster_worker_connections_queued{worker=\"2\",cpu=\"none\"} 2\n"));
    assert!(page.contains("ringmaster_worker_lagging{worker=\"2\",cpu=\"none\"} 1\n"));
    assert!(page.contains("# TYPE ringmaster_worker_passed_over_total counter\n"));
    assert!(page.contains("ringmaster_worker_ack_delay_seconds{worker=\"2\",cpu=\"none\"} 0.0015\n"), "{page}");
    assert!(page.contains("ringmaster_worker_passed_over_total{worker=\"2\",cpu=\"none\"} 10\n"));
}

#[test]
fn no_routing_families_where_workers_accept() {
    let rows = [WorkerRow { routing: None, ..worker(1, None) }];
    let page = render(&snapshot(&rows));
    assert!(!page.contains("ringmaster_worker_connections_unacknowledged"), "{page}");
    assert!(!page.contains("ringmaster_worker_lagging"), "{page}");
    assert!(!page.contains("ringmaster_worker_passed_over_total"), "{page}");
}
