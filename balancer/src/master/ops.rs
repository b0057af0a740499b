//! What the master waits for: the signals it handles, and the kinds of op
//! whose completions its loop dispatches, packed into a [`Token`] with an
//! index and an epoch.

use nix::sys::signal::Signal;
use ringmaster_engine::token;

use crate::reactor::Token;

/// Signals the master handles.
pub(super) const SIGNALS: [Signal; 9] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCHLD,
    Signal::SIGHUP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// What an op of the master is for; with an index (slot or client) and an
/// epoch, it makes the op's [`Token`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Op {
    Signal = 1,
    Accept,
    LaneSend,
    LaneRecv,
    Tick,
    ControlAccept,
    ControlRecv,
    ControlSend,
    UpgradeChannel,
    MetricsAccept,
    MetricsRecv,
    MetricsSend,
}

impl Op {
    const ALL: [Op; 12] = [
        Op::Signal,
        Op::Accept,
        Op::LaneSend,
        Op::LaneRecv,
        Op::Tick,
        Op::ControlAccept,
        Op::ControlRecv,
        Op::ControlSend,
        Op::UpgradeChannel,
        Op::MetricsAccept,
        Op::MetricsRecv,
        Op::MetricsSend,
    ];

    pub(super) fn token(self, index: usize, epoch: u32) -> Token {
        token::pack(self as u8, index as u32, epoch)
    }

    /// The op, index and epoch a token names.
    pub(super) fn of(token: Token) -> Option<(Op, usize, u32)> {
        let (kind, index, epoch) = token::unpack(token);
        let op = Op::ALL.into_iter().find(|op| *op as u8 == kind)?;
        Some((op, index as usize, epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_op_index_and_epoch() {
        for op in Op::ALL {
            assert_eq!(Op::of(op.token(1023, 77)), Some((op, 1023, 77)));
        }
        assert_eq!(Op::of(ringmaster_engine::uring::IGNORED), None);
    }
}
