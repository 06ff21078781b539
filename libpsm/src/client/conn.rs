//! One control connection, shared by any number of threads.
//!
//! There is no background thread: whichever thread is waiting (for its reply
//! or for an event) and finds nobody reading becomes the reader, reads a
//! batch of frames, files every reply under its id and every event in the
//! queue, then hands the role on. This keeps a ping to one thread switch on
//! each side and leaves the host application's threads and signals alone.

use crate::error::{Code, Error, Result};
use crate::proto::{
    Event, FrameReader, Prompt, Reply, Request, RequestFrame, ServerFrame, decode_server_frame,
    encode_request,
};
use crate::transport::{self, Notifier};
use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes read from the control socket in one go.
const READ_CHUNK: usize = 64 * 1024;

pub(crate) type ReplyResult = Result<(Reply, Option<OwnedFd>)>;

/// The application's prompt handler: called with each `Prompt` event, on
/// whichever thread is reading from psmd at the time.
pub(crate) type PromptHandler = Arc<dyn Fn(Prompt) + Send + Sync>;
/// The application's event handler: called with every other event (a
/// dialog to open, one that ended, a change), on whichever thread is
/// reading from psmd at the time.
pub(crate) type EventHandler = Arc<dyn Fn(Event) + Send + Sync>;

struct State {
    /// A thread is inside `read_batch` with `rx` and `fds` taken out.
    reading: bool,
    rx: FrameReader,
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    replies: HashMap<u64, ReplyResult>,
    /// Ids whose replies nobody will collect (fire-and-forget requests).
    discard: HashSet<u64>,
    events: VecDeque<Event>,
    /// Prompts for the handler, called outside the lock.
    prompts: VecDeque<Prompt>,
    handler: Option<PromptHandler>,
    /// Events for the event handler, called outside the lock.
    handled: VecDeque<Event>,
    event_handler: Option<EventHandler>,
    notifier: Notifier,
    /// Set once the connection failed; every later call gets it.
    dead: Option<Error>,
}

pub(crate) struct Conn {
    sock: OwnedFd,
    write_lock: Mutex<()>,
    state: Mutex<State>,
    cv: Condvar,
    next_id: AtomicU64,
    event_fd: i32,
}

fn disconnected(why: &str) -> Error {
    Error::new(Code::PSM_ERR_DISCONNECTED, why.to_string())
}

impl Conn {
    pub(crate) fn new(sock: OwnedFd) -> Result<Conn> {
        let notifier =
            Notifier::new(sock.as_raw_fd()).map_err(|e| Error::io("creating the event descriptor", e))?;
        let event_fd = notifier.fd();
        Ok(Conn {
            sock,
            write_lock: Mutex::new(()),
            state: Mutex::new(State {
                reading: false,
                rx: FrameReader::new(),
                buf: vec![0; READ_CHUNK],
                fds: VecDeque::new(),
                replies: HashMap::new(),
                discard: HashSet::new(),
                events: VecDeque::new(),
                prompts: VecDeque::new(),
                handler: None,
                handled: VecDeque::new(),
                event_handler: None,
                notifier,
                dead: None,
            }),
            cv: Condvar::new(),
            next_id: AtomicU64::new(1),
            event_fd,
        })
    }

    pub(crate) fn event_fd(&self) -> i32 {
        self.event_fd
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data
        // (every update is a single insert/push), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, request: Request, fd: Option<&OwnedFd>) -> Result<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut bytes = Vec::new();
        encode_request(&RequestFrame { id, request }, &mut bytes)
            .map_err(|e| Error::new(Code::PSM_ERR_INVALID_ARGUMENT, e.to_string()))?;
        if let Some(e) = &self.lock().dead {
            return Err(e.clone());
        }
        let _w = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let sock = self.sock.as_raw_fd();
        let sent = match fd {
            // The descriptor rides on the frame's first byte.
            Some(fd) => transport::send_with_fds(sock, &bytes, &[fd.as_raw_fd()])
                .and_then(|n| transport::send_all(sock, &bytes[n..])),
            None => transport::send_all(sock, &bytes),
        };
        if let Err(e) = sent {
            let err = disconnected(&format!("sending to psmd failed: {e}"));
            self.fail(err.clone());
            return Err(err);
        }
        Ok(id)
    }

    /// Sends `request` and waits for its reply.
    pub(crate) fn call(&self, request: Request) -> ReplyResult {
        self.call_within(request, None)
    }

    /// Sends `request` with a descriptor (`SCM_RIGHTS`) and waits for its reply.
    pub(crate) fn call_with_fd(&self, request: Request, fd: &OwnedFd) -> ReplyResult {
        let id = self.send(request, Some(fd))?;
        match self.wait_for(|st| st.replies.remove(&id), None)? {
            Some(result) => result,
            None => Err(Error::new(Code::PSM_ERR_INTERNAL, "wait without deadline ended")),
        }
    }

    /// Installs (or with None removes) the event handler. Events already
    /// queued for `next_event` stay there.
    pub(crate) fn set_event_handler(&self, handler: Option<EventHandler>) {
        let mut st = self.lock();
        st.event_handler = handler;
        if st.event_handler.is_none() {
            let pending: Vec<Event> = st.handled.drain(..).collect();
            st.events.extend(pending);
            if !st.events.is_empty() {
                st.notifier.raise();
            }
        }
    }

    /// Installs (or with None removes) the prompt handler.
    pub(crate) fn set_prompt_handler(&self, handler: Option<PromptHandler>) {
        let mut st = self.lock();
        st.handler = handler;
        if st.handler.is_none() {
            // Prompts filed for a handler that is gone become events.
            let pending: Vec<Prompt> = st.prompts.drain(..).collect();
            for p in pending {
                st.events.push_back(Event::Prompt(p));
                st.notifier.raise();
            }
        }
    }

    /// Like [`call`](Self::call), giving up with `PSM_ERR_TIMEOUT` after
    /// `timeout`. A reply that arrives later is dropped.
    pub(crate) fn call_within(&self, request: Request, timeout: Option<Duration>) -> ReplyResult {
        let id = self.send(request, None)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        match self.wait_for(|st| st.replies.remove(&id), deadline)? {
            Some(result) => result,
            None => {
                self.lock().discard.insert(id);
                Err(Error::new(Code::PSM_ERR_TIMEOUT, "psmd did not answer in time"))
            }
        }
    }

    /// Sends `request` and does not wait; its reply is dropped on arrival.
    pub(crate) fn send_and_forget(&self, request: Request) {
        if let Ok(id) = self.send(request, None) {
            let mut st = self.lock();
            if st.replies.remove(&id).is_none() {
                st.discard.insert(id);
            }
        }
    }

    /// The next event, waiting up to `timeout` (None: forever).
    pub(crate) fn next_event(&self, timeout: Option<Duration>) -> Result<Option<Event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.wait_for(
            |st| {
                let ev = st.events.pop_front();
                // A dead connection keeps the fd readable so select() loops
                // keep learning of it.
                if st.events.is_empty() && st.dead.is_none() {
                    st.notifier.lower();
                }
                ev
            },
            deadline,
        )
    }

    /// Runs `take` under the lock until it yields something, reading frames
    /// (or waiting for the thread that reads) in between. `Ok(None)` means the
    /// deadline passed.
    fn wait_for<T>(
        &self,
        mut take: impl FnMut(&mut State) -> Option<T>,
        deadline: Option<Instant>,
    ) -> Result<Option<T>> {
        let mut st = self.lock();
        // With a deadline, the socket is still read once without waiting, so
        // that `next_event(0)` after select() finds what made the fd readable.
        let mut looked = false;
        loop {
            if (!st.prompts.is_empty() || !st.handled.is_empty()) && !st.reading {
                st = self.run_prompt_handler(st);
                continue;
            }
            if let Some(v) = take(&mut st) {
                return Ok(Some(v));
            }
            if let Some(e) = &st.dead {
                return Err(e.clone());
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) && (looked || st.reading) {
                return Ok(None);
            }
            if st.reading {
                st = match left {
                    Some(left) => self.cv.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0,
                    None => self.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                };
                continue;
            }
            looked = true;
            st.reading = true;
            let mut rx = std::mem::take(&mut st.rx);
            let mut buf = std::mem::take(&mut st.buf);
            let mut fds = std::mem::take(&mut st.fds);
            drop(st);
            // The reader role must be handed back even if reading panics
            // (the C boundary catches it); otherwise every other waiter on
            // this connection would wait forever.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.read_some(&mut buf, &mut rx, &mut fds, left)
            }))
            .unwrap_or_else(|_| Err(Error::new(Code::PSM_ERR_PANIC, "reading from psmd panicked")));
            st = self.lock();
            st.rx = rx;
            st.buf = buf;
            st.fds = fds;
            st.reading = false;
            match outcome {
                Ok(true) => self.file_frames(&mut st),
                Ok(false) => {}
                Err(e) => Self::mark_dead(&mut st, e),
            }
            self.cv.notify_all();
        }
    }

    /// Hands the filed prompts to the handler with the lock released: the
    /// handler may answer (another request on this connection) at once.
    fn run_prompt_handler<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let prompts: Vec<Prompt> = st.prompts.drain(..).collect();
        let handler = st.handler.clone();
        let events: Vec<Event> = st.handled.drain(..).collect();
        let event_handler = st.event_handler.clone();
        drop(st);
        for ev in events {
            match &event_handler {
                Some(h) => {
                    let h = h.clone();
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(ev)));
                }
                None => {
                    let mut st = self.lock();
                    st.events.push_back(ev);
                    st.notifier.raise();
                }
            }
        }
        for p in prompts {
            match &handler {
                Some(h) => {
                    let h = h.clone();
                    // A panicking handler must not take the reader down with it.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(p)));
                }
                None => {
                    let mut st = self.lock();
                    st.events.push_back(Event::Prompt(p));
                    st.notifier.raise();
                }
            }
        }
        self.lock()
    }

    /// One read from the socket into `rx`. Ok(false): nothing arrived in time.
    fn read_some(
        &self,
        buf: &mut [u8],
        rx: &mut FrameReader,
        fds: &mut VecDeque<OwnedFd>,
        left: Option<Duration>,
    ) -> Result<bool> {
        let fd = self.sock.as_raw_fd();
        if left.is_some()
            && !transport::wait_readable(fd, left).map_err(|e| Error::io("waiting for psmd", e))?
        {
            return Ok(false);
        }
        match transport::recv_with_fds(fd, buf, fds) {
            Ok(0) => Err(disconnected("psmd closed the connection")),
            Ok(n) => {
                rx.push(&buf[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(disconnected(&format!("reading from psmd failed: {e}"))),
        }
    }

    /// Moves every complete frame from the reader into replies and events.
    fn file_frames(&self, st: &mut State) {
        loop {
            let frame = match st.rx.next_frame() {
                Ok(Some(body)) => decode_server_frame(body).map_err(|_| body_id(body)),
                Ok(None) => return,
                Err(e) => {
                    Self::mark_dead(st, Error::new(Code::PSM_ERR_PROTOCOL, e.to_string()));
                    return;
                }
            };
            match frame {
                Ok(ServerFrame::Reply { id, result }) => {
                    let result = match result {
                        Ok(reply @ Reply::Channel { .. }) => match st.fds.pop_front() {
                            Some(fd) => Ok((reply, Some(fd))),
                            None => {
                                let e =
                                    Error::new(Code::PSM_ERR_PROTOCOL, "channel reply without a descriptor");
                                Self::mark_dead(st, e);
                                return;
                            }
                        },
                        Ok(reply) => Ok((reply, None)),
                        Err(e) => Err(e),
                    };
                    if !st.discard.remove(&id) {
                        st.replies.insert(id, result);
                    }
                }
                Ok(ServerFrame::Event(Event::Prompt(p))) if st.handler.is_some() => {
                    st.prompts.push_back(p);
                    self.cv.notify_all();
                }
                Ok(ServerFrame::Event(ev)) if st.event_handler.is_some() => {
                    st.handled.push_back(ev);
                    self.cv.notify_all();
                }
                Ok(ServerFrame::Event(ev)) => {
                    st.events.push_back(ev);
                    st.notifier.raise();
                }
                // A reply this build cannot decode still ends its caller's
                // wait; an event it cannot decode (a newer daemon's) is skipped.
                Err(Some(id)) => {
                    if !st.discard.remove(&id) {
                        let e =
                            Error::new(Code::PSM_ERR_PROTOCOL, "psmd sent a reply this libpsm cannot decode");
                        st.replies.insert(id, Err(e));
                    }
                }
                Err(None) => {}
            }
        }
    }

    fn mark_dead(st: &mut State, e: Error) {
        if st.dead.is_none() {
            st.dead = Some(e);
        }
        // Wake select() loops so they learn of it from psm_next_event.
        st.notifier.raise();
    }

    fn fail(&self, e: Error) {
        let mut st = self.lock();
        Self::mark_dead(&mut st, e);
        self.cv.notify_all();
    }
}

/// The id of a reply frame whose body did not decode (variant 0 = Reply).
fn body_id(body: &[u8]) -> Option<u64> {
    match postcard::take_from_bytes::<(u32, u64)>(body) {
        Ok(((0, id), _)) => Some(id),
        _ => None,
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Nobody else can hold a reference here; the socket closes with us.
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}
