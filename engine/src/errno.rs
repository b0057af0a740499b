//! Which errors mean the process ran out of descriptors or memory, for the
//! worker's and the master's accepts alike: retrying at once would spin, so
//! both pause accepting until their next tick, and count an fd-limit hit.

/// `EMFILE` or `ENFILE`: the process's or the system's open-file limit.
pub fn is_out_of_fds(errno: i32) -> bool {
    matches!(errno, libc::EMFILE | libc::ENFILE)
}

/// Out of descriptors, or of kernel memory (`ENOMEM`, `ENOBUFS`).
pub fn is_out_of_resources(errno: i32) -> bool {
    is_out_of_fds(errno) || matches!(errno, libc::ENOMEM | libc::ENOBUFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_limits_are_resources_too() {
        assert!(is_out_of_fds(libc::EMFILE) && is_out_of_fds(libc::ENFILE));
        assert!(!is_out_of_fds(libc::ENOMEM));
        assert!(is_out_of_resources(libc::EMFILE) && is_out_of_resources(libc::ENOBUFS));
        assert!(!is_out_of_resources(libc::ECONNABORTED));
    }
}
