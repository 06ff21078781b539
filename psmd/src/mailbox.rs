//! Messages to the event loop from other threads (handshake threads, prompt
//! waits): queued under a lock, then the loop is woken through the mio
//! `Waker`. The loop owns every socket, so other threads never write to one.

use crate::pool::ReplyTo;
use crate::tls::HandshakeDone;
use psm::Error;
use psm::proto::{Event, Reply};
use std::sync::{Arc, Mutex};

pub enum LoopMsg {
    /// Send `event` to the connection at slab `token`, if it still belongs
    /// to `session_id` (a token is reused after a disconnect).
    Event { token: usize, session_id: u64, event: Event },
    /// A handshake (or a connection without TLS) finished on its thread.
    Handshake(Box<HandshakeDone>),
    /// A request that ran on a blocking thread finished.
    Reply { to: ReplyTo, result: Result<Reply, Error> },
    /// The stream operation on data channel `channel` finished.
    StreamDone { to: ReplyTo, channel: u64, result: Result<Reply, Error> },
    /// Something applications are told about changed (a PKCS#11 token came
    /// or went): announce it.
    Changed,
}

pub struct Mailbox {
    queue: Mutex<Vec<LoopMsg>>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Mailbox {
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Mailbox {
        Mailbox { queue: Mutex::new(Vec::new()), wake }
    }

    pub fn post(&self, msg: LoopMsg) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(msg);
        (self.wake)();
    }

    pub fn take(&self) -> Vec<LoopMsg> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
