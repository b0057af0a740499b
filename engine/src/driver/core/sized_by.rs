//! What sized a worker's reservations, in the words of its limits, for the
//! error when the kernel refuses one: the operator reads which flag to lower.

/// How many slots were reserved for: `--max-conns`, or the open-file limit
/// that lowered it.
pub(super) fn slots_text(max_conns: usize, slots: usize) -> String {
    if slots < max_conns {
        format!("{slots} connections (RLIMIT_NOFILE, below --max-conns {max_conns})")
    } else {
        format!("--max-conns {max_conns}")
    }
}

/// The header buffers: one of `carry` bytes per slot, which is
/// `--max-header` unless that is below the least a connection carries.
/// Before, the least was named `--max-header` too: `--max-header 16384`
/// in the error of a worker run with the default 8192.
pub(super) fn header_buffers_text(slots: &str, max_header: usize, carry: usize) -> String {
    if carry > max_header {
        format!("{slots} x --max-header {max_header} raised to {carry}")
    } else {
        format!("{slots} x --max-header {carry}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_are_max_conns_or_what_the_fd_limit_left() {
        assert_eq!(slots_text(100, 100), "--max-conns 100");
        assert_eq!(slots_text(1 << 20, 4086), "4086 connections (RLIMIT_NOFILE, below --max-conns 1048576)");
    }

    #[test]
    fn a_header_buffer_above_max_header_says_so() {
        let slots = slots_text(16384, 16384);
        assert_eq!(header_buffers_text(&slots, 8192, 16384), "--max-conns 16384 x --max-header 8192 raised to 16384");
        assert_eq!(header_buffers_text(&slots, 65536, 65536), "--max-conns 16384 x --max-header 65536");
    }
}
