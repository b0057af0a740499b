//! Whether a client that sends while answers are owed reads them: the
//! writer's deadline asks the kernel (`SIOCOUTQ`) before it closes.

use super::{Connection, Context, Phase};

/// While answers are owed and the writer's clock runs (`--idle-timeout`
/// from the last send progress), the client's input does not restart it:
/// queued behind answers it has not read, it is no sign that it reads, and a
/// client that read nothing and sent a byte now and then held its
/// connection until its bytes filled `--max-header` (until 2026-12-07; days
/// at a byte a minute). Nor is a send's silence a sign that it does not: a
/// send on a full socket completes only once about a third of its send
/// buffer is free (`sk_stream_min_wspace`; on loopback the buffer grows to
/// 4 MiB), so a client pipelining and reading slowly but steadily may see
/// none complete within the timeout (its input was what kept it: cutting
/// that, 11c8366, cut such readers off). So when the writer's deadline
/// passes and input came during that clock, the driver asks the kernel how
/// many bytes the client has not acknowledged ([`Connection::take_reader_look`],
/// [`Connection::handle_unacknowledged`]; `SIOCOUTQ`), a number that moves
/// as the client reads: moved since the last look (the first look only sets
/// the mark), the clock starts over; unmoved, the connection closes. Where
/// the kernel cannot tell, input since the last look keeps it, as input did
/// before. A connection that took no input meanwhile closes at the deadline
/// as before, with no question asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ReaderWatch {
    /// Input came while the writer's clock ran: its deadline asks first.
    pub(super) armed: bool,
    /// Input came since the last look.
    pub(super) input_since_look: bool,
    /// The deadline passed: the driver is to ask the kernel.
    pub(super) look_due: bool,
    /// The driver took the question; its answer is awaited.
    pub(super) awaiting: bool,
    /// The client's unacknowledged bytes at the last look.
    mark: Option<u32>,
}

impl Connection {
    /// The writer's deadline passed with input come meanwhile: true once,
    /// when the driver is to ask the kernel how many bytes written to the
    /// socket the client has not acknowledged (`SIOCOUTQ`), and give the
    /// answer to [`Connection::handle_unacknowledged`].
    pub fn take_reader_look(&mut self) -> bool {
        let due = std::mem::take(&mut self.reader.look_due);
        self.reader.awaiting |= due;
        due
    }

    /// The kernel's count of the bytes the client has not acknowledged
    /// (`None`: it cannot tell), asked for by [`Connection::take_reader_look`]:
    /// moved since the last look (or the first look), the writer's clock
    /// starts over; unmoved, the client reads nothing and the connection
    /// closes. Moot (ignored) once the clock started over meanwhile.
    pub fn handle_unacknowledged(&mut self, unacknowledged: Option<u32>, ctx: &Context<'_>) {
        if !std::mem::take(&mut self.reader.awaiting) || self.phase == Phase::Closed {
            return;
        }
        let moved = match unacknowledged {
            Some(count) => self.reader.mark != Some(count),
            // As before the kernel was asked: its input keeps it.
            None => self.reader.input_since_look,
        };
        if !moved {
            self.phase = Phase::Closed;
            return;
        }
        self.reader.mark = unacknowledged;
        self.reader.input_since_look = false;
        self.deadline = ctx.now + ctx.timeouts.idle_ms;
    }
}
