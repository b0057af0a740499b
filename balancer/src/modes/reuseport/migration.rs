//! `net.ipv4.tcp_migrate_req`: a closing listener's queue moved to the
//! rest of its group, not reset.

use std::fs;

/// The sysctl that makes a closing listener's queue move to its group.
const MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// Sets `net.ipv4.tcp_migrate_req` to 1 for this network namespace if it is
/// not already, so a retiring worker's listener hands what is left in its
/// queue to the group when it closes; says what it did, or why it could not.
pub fn enable_migration() {
    match fs::read_to_string(MIGRATE_REQ).map(|v| v.trim() == "1") {
        Ok(true) => {}
        Ok(false) => match fs::write(MIGRATE_REQ, "1") {
            Ok(()) => crate::log!("set net.ipv4.tcp_migrate_req=1: a retired worker's queue moves to the others"),
            Err(e) => crate::log!(warn:
                "cannot set net.ipv4.tcp_migrate_req=1 ({e}): connections reaching a retiring worker's \
                 listener after its last accept are reset (set it as root, or run ringmaster as root)"
            ),
        },
        Err(e) => crate::log!(warn:
            "cannot read net.ipv4.tcp_migrate_req ({e}): a retiring worker's listener may reset connections \
             that arrive after its last accept"
        ),
    }
}
