//! Data channels: the daemon's end of a socketpair whose other end the
//! application holds. The application writes input and half-closes; the
//! channel feeds the input to its operation and keeps the result until the
//! application asks for it (`ChannelFinish`).

use psm::proto::Reply;

/// What a stream operation does with its input.
pub trait ChannelOp: Send {
    /// Consumes the next piece of input.
    fn input(&mut self, data: &[u8]);
    /// The input ended; returns what `ChannelFinish` replies.
    fn finish(&mut self) -> Result<Reply, psm::Error>;
}

/// Where a channel is in its life.
pub enum ChannelState {
    /// Reading input.
    Open(Box<dyn ChannelOp>),
    /// Input ended (or failed); the result waits for `ChannelFinish`.
    Finished(Result<Reply, psm::Error>),
    /// A blocking thread runs the operation on its own end of the channel
    /// (S/MIME streams, which write output as they read input).
    Running,
}

pub struct Channel {
    pub id: u64,
    pub stream: mio::net::UnixStream,
    /// Slab token and session id of the owning connection.
    pub owner: usize,
    pub session_id: u64,
    pub state: ChannelState,
    /// A `ChannelFinish` request parked until the input ends.
    pub finish_waiting: Option<u64>,
    pub bytes_in: u64,
}

impl Channel {
    /// Feeds input, or on `None` (end of input) finishes the operation.
    pub fn feed(&mut self, data: Option<&[u8]>) {
        if let ChannelState::Open(op) = &mut self.state {
            match data {
                Some(d) => {
                    self.bytes_in += d.len() as u64;
                    op.input(d);
                }
                None => self.state = ChannelState::Finished(op.finish()),
            }
        }
    }

    pub fn fail(&mut self, e: psm::Error) {
        self.state = ChannelState::Finished(Err(e));
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state, ChannelState::Finished(_))
    }

    /// The result, once; later calls get an error.
    pub fn take_result(&mut self) -> Result<Reply, psm::Error> {
        match std::mem::replace(
            &mut self.state,
            ChannelState::Finished(Err(psm::Error::new(
                psm::Code::PSM_ERR_INVALID_ARGUMENT,
                "channel result already taken",
            ))),
        ) {
            ChannelState::Finished(r) => r,
            ChannelState::Open(op) => {
                self.state = ChannelState::Open(op);
                Err(psm::Error::new(psm::Code::PSM_ERR_INTERNAL, "channel not finished"))
            }
            ChannelState::Running => {
                self.state = ChannelState::Running;
                Err(psm::Error::new(psm::Code::PSM_ERR_INTERNAL, "channel not finished"))
            }
        }
    }
}
