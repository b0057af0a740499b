//! `user_data` of every submission: op kind, slot and generation in one u64,
//! so a completion names exactly what it belongs to and a completion for a
//! slot that has since been reused is recognised as stale.

/// What a submission was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
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
    /// Fire-and-forget (close, cancel, shutdown): the result is not needed.
    Ignore,
}

const SLOT_BITS: u32 = 32;
const GEN_BITS: u32 = 24;
/// Generations wrap at this mask.
pub const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

/// Packs a token.
pub fn encode(op: Op, slot: u32, generation: u32) -> u64 {
    (op as u64) << (SLOT_BITS + GEN_BITS) | u64::from(generation & GEN_MASK) << SLOT_BITS | u64::from(slot)
}

/// Unpacks a token; `None` for a value no submission carries.
pub fn decode(user_data: u64) -> Option<(Op, u32, u32)> {
    let op = match (user_data >> (SLOT_BITS + GEN_BITS)) as u8 {
        1 => Op::Accept,
        2 => Op::Recv,
        3 => Op::Send,
        4 => Op::Channel,
        5 => Op::Tick,
        6 => Op::Shutdown,
        7 => Op::Ignore,
        _ => return None,
    };
    let generation = (user_data >> SLOT_BITS) as u32 & GEN_MASK;
    Some((op, user_data as u32, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for op in [Op::Accept, Op::Recv, Op::Send, Op::Channel, Op::Tick, Op::Shutdown, Op::Ignore] {
            let token = encode(op, 16383, GEN_MASK);
            assert_eq!(decode(token), Some((op, 16383, GEN_MASK)));
        }
        assert_eq!(decode(0), None);
    }
}
