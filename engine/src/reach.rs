//! How many connections a worker can reach under its open-file limit:
//! every connection is a descriptor, in its process's table or in its
//! ring's table of direct descriptors (which the kernel keeps no larger
//! than the limit). The worker sizes what it reserves per connection by
//! it, and the master warns with the same numbers.

/// Descriptors a worker holds besides its connections: stdio, the channel
/// or the listener, the stats block, the ring or the epoll set and its
/// timer, the shutdown fd (8 or 9 measured), and one or two to spare.
pub const WORKER_OVERHEAD_FDS: u64 = 10;

/// Slots worth reserving for a worker under the open-file limit `fd_limit`
/// (`None`: unknown): no more than `--max-conns`, nor than the limit, which
/// bounds both kinds of descriptor.
pub fn slots_within(max_conns: usize, fd_limit: Option<u64>) -> usize {
    fd_limit.map_or(max_conns, |limit| max_conns.min(usize::try_from(limit).unwrap_or(usize::MAX)))
}

/// Connections a worker holds at most under the open-file limit `fd_limit`:
/// `--max-conns`, or fewer. A worker whose accepts make direct descriptors
/// (`ring_table`) holds as many as the limit; any other one keeps a
/// descriptor per connection beside its own (at least one connection, so
/// that a tiny limit shows as a full worker, not as one that holds nothing).
pub fn conns_within(max_conns: usize, fd_limit: u64, ring_table: bool) -> usize {
    let holds = if ring_table { fd_limit } else { fd_limit.saturating_sub(WORKER_OVERHEAD_FDS).max(1) };
    slots_within(max_conns, Some(holds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_reaches_what_its_descriptors_allow() {
        assert_eq!(slots_within(1 << 20, Some(20_000)), 20_000);
        assert_eq!(slots_within(100, Some(20_000)), 100);
        assert_eq!(slots_within(100, None), 100, "an unknown limit leaves --max-conns");
        assert_eq!(slots_within(100, Some(u64::MAX)), 100, "RLIM_INFINITY");
        assert_eq!(conns_within(16384, 32, false), 22, "one fd per connection beside its own");
        assert_eq!(conns_within(16384, 32, true), 32, "its ring's table is as large as the limit");
        assert_eq!(conns_within(16384, 4, false), 1);
        assert_eq!(conns_within(100, 1 << 20, false), 100, "--max-conns is reached");
    }
}
