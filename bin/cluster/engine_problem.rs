//! An engine set through the builder, checked before the cluster starts.

use ringmaster_engine::EngineConfig;

/// What is wrong with `engine`, set with [`Cluster::engine`] or
/// [`Cluster::configure`]: the command line's ranges for what it sets, and
/// what the loops need of the rest. Until 2026-12-06 nothing was checked:
/// `recv_buffers` 1000 or `ring_entries` 0 had every worker exit 1 at start
/// and be restarted forever, `recv_buffer_size` 0 workers that answered
/// nothing, `max_conns` 0 a `503` to every client.
pub(super) fn engine_problem(engine: &EngineConfig) -> Option<String> {
    let problem = |what: String| Some(format!("engine: {what}"));
    use crate::cli::{LEAST_HEADER, MOST_CONNS_OR_HEADER};
    let within =
        |value: usize, least: i64| i64::try_from(value).is_ok_and(|v| (least..=MOST_CONNS_OR_HEADER).contains(&v));
    if !within(engine.max_conns, 1) {
        return problem(format!(
            "max_conns {} is not from 1 to {MOST_CONNS_OR_HEADER} (--max-conns)",
            engine.max_conns
        ));
    }
    if !within(engine.max_header, LEAST_HEADER) {
        return problem(format!(
            "max_header {} is not from {LEAST_HEADER} to {MOST_CONNS_OR_HEADER} (--max-header)",
            engine.max_header
        ));
    }
    for (name, value) in [
        ("header_timeout", engine.header_timeout),
        ("idle_timeout", engine.idle_timeout),
        ("body_timeout", engine.body_timeout),
        ("drain_timeout", engine.drain_timeout),
    ] {
        if value.is_zero() {
            return problem(format!("{name} is zero"));
        }
    }
    if engine.ring_entries == 0 {
        return problem("ring_entries is zero".to_string());
    }
    if !engine.recv_buffers.is_power_of_two() {
        return problem(format!("recv_buffers {} is not a power of two", engine.recv_buffers));
    }
    if engine.recv_buffer_size == 0 {
        return problem("recv_buffer_size is zero".to_string());
    }
    if engine.accepts_outstanding == 0 {
        return problem("accepts_outstanding is zero".to_string());
    }
    if let Some(path) = &engine.health_path {
        if let Err(e) = crate::cli::parse_health_path(path) {
            return problem(format!("health_path: {e}"));
        }
    }
    None
}
