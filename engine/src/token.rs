//! `user_data` of every submission: op kind, slot and generation in one u64,
//! so a completion names exactly what it belongs to and a completion for a
//! slot that has since been reused is recognised as stale. The packing is
//! shared: the worker's ops are `Op`, the master packs its own kinds with
//! [`pack`] and [`unpack`].

/// What a worker's submission was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Op {
    /// A single-shot accept on the listener; the slot is the accept's index.
    Accept = 1,
    /// The multishot receive of a connection.
    Recv,
    /// A send of queued replies on a connection.
    Send,
    /// A `recvmsg` on the master's channel.
    Channel,
    /// The periodic tick (timeouts, `Date`).
    Tick,
    /// The poll on the shutdown fd.
    Shutdown,
    /// A ring `shutdown(SHUT_WR)` of a connection's direct descriptor.
    HalfClose,
    /// A ring `SIOCOUTQ` of a suspected non-reader's direct descriptor.
    Unacknowledged,
    /// The one-shot poll that watches a connection with a request half in
    /// for an error its multishot receive may miss.
    Reset,
    /// A receive into the worker's spare buffer (no buffer of the ring) of
    /// a connection that waits for a ring buffer and whose client hung up.
    RecvSpare,
}

const SLOT_BITS: u32 = 32;
const GEN_BITS: u32 = 24;
/// Generations wrap at this mask.
pub const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

/// Packs a token from an op kind (a byte; 0 is never a kind, so `user_data`
/// 0 means "no one's"), a slot and a generation (kept modulo [`GEN_MASK`]).
pub fn pack(kind: u8, slot: u32, generation: u32) -> u64 {
    u64::from(kind) << (SLOT_BITS + GEN_BITS) | u64::from(generation & GEN_MASK) << SLOT_BITS | u64::from(slot)
}

/// Unpacks a token into its kind, slot and generation.
pub fn unpack(user_data: u64) -> (u8, u32, u32) {
    let kind = (user_data >> (SLOT_BITS + GEN_BITS)) as u8;
    let generation = (user_data >> SLOT_BITS) as u32 & GEN_MASK;
    (kind, user_data as u32, generation)
}

/// Packs a worker's token.
pub(crate) fn encode(op: Op, slot: u32, generation: u32) -> u64 {
    pack(op as u8, slot, generation)
}

/// Unpacks a worker's token; `None` for a value no submission of the worker carries.
pub(crate) fn decode(user_data: u64) -> Option<(Op, u32, u32)> {
    let (kind, slot, generation) = unpack(user_data);
    let op = match kind {
        1 => Op::Accept,
        2 => Op::Recv,
        3 => Op::Send,
        4 => Op::Channel,
        5 => Op::Tick,
        6 => Op::Shutdown,
        7 => Op::HalfClose,
        8 => Op::Unacknowledged,
        9 => Op::Reset,
        10 => Op::RecvSpare,
        _ => return None,
    };
    Some((op, slot, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for op in [
            Op::Accept,
            Op::Recv,
            Op::Send,
            Op::Channel,
            Op::Tick,
            Op::Shutdown,
            Op::HalfClose,
            Op::Unacknowledged,
            Op::Reset,
            Op::RecvSpare,
        ] {
            let token = encode(op, 16383, GEN_MASK);
            assert_eq!(decode(token), Some((op, 16383, GEN_MASK)));
        }
        assert_eq!(decode(0), None);
        assert_eq!(unpack(pack(200, u32::MAX, GEN_MASK + 3)), (200, u32::MAX, 2), "generations wrap at the mask");
    }
}
