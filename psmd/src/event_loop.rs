//! The mio event loop: one thread owns every socket. Constant tokens for the
//! listener, the waker and the signal pipe; a slab for connections and data
//! channels. Edge-triggered: each source is read until WouldBlock or until
//! its per-turn budget runs out (then it goes on the `ready` queue, so one
//! busy client cannot starve the others). WRITABLE interest is registered
//! only while output is pending.

use crate::channel::{Channel, ChannelOp, ChannelState};
use crate::error::DaemonError;
use crate::listener::Bound;
use crate::mailbox::{LoopMsg, Mailbox};
use crate::pool::{Pool, ReplyTo};
use crate::session::{Outcome, Session, Shared};
use crate::tls::handshake::{self, HandshakeDone, Job, Target};
use crate::tls::relay::{Pumped, Relay};
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use psm::proto::{Event, FrameReader, Reply, ServerFrame, encode_server_frame};
use psm::{Code, Error};
use slab::Slab;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);
/// A TLS relay has two sockets under one slab key: the application's
/// channel as the key itself, the network stream with this bit set. (The
/// constant tokens above are matched first.)
const NET_BIT: usize = 1 << (usize::BITS - 2);
/// Descriptors a client may send ahead of the requests that take them.
const MAX_QUEUED_FDS: usize = 8;

/// A client that does not read its replies stops being read from once this
/// much output is queued for it: memory stays bounded per connection.
const MAX_PENDING_OUTPUT: usize = 4 * 1024 * 1024;
/// Pool requests one session may have in flight before we stop reading it.
const MAX_INFLIGHT: usize = 64;
/// Handshakes one session may have running. They do not count as requests
/// in flight: a handshake waiting for the user must not stop psmd from
/// reading the application's answer.
const MAX_HANDSHAKES_PER_SESSION: usize = 64;
/// Data channels one session may hold open.
const MAX_CHANNELS_PER_SESSION: usize = 256;
/// Bytes read from one source per turn before others get theirs.
const CONN_READ_BUDGET: usize = 256 * 1024;
const CHANNEL_READ_BUDGET: usize = 1024 * 1024;
/// How often accept() is retried after it failed (EMFILE, ENOBUFS).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// What a queued reply costs beyond its bytes (queue slot, allocation), so
/// that a flood of tiny replies is bounded as tightly as a few large ones.
const OUT_FRAME_OVERHEAD: usize = 64;
/// Size of the loop's shared read buffer.
const READ_BUF: usize = 256 * 1024;
/// Kernel buffer for the application's end of a data channel: fewer, larger
/// writes make streaming cheaper.
const CHANNEL_SOCKET_BUF: usize = 1024 * 1024;
/// How long an S/MIME stream waits for its application to write input or
/// read output before it fails.
const STREAM_IDLE: Duration = Duration::from_secs(5 * 60);

pub struct Config {
    pub test_hooks: bool,
    pub workers: usize,
    pub store: crate::store::Store,
    pub token: crate::token::TokenState,
    /// The system policy and the user's config read at start, and where to
    /// read them again.
    pub policy: crate::policy::Sources,
    /// Where the dialog server's private socket goes (the control socket's
    /// directory), and how long a question waits for the user.
    pub dialog_dir: Option<std::path::PathBuf>,
    pub prompt_timeout: std::time::Duration,
}

/// SIGTERM/SIGINT (stop) and SIGHUP (read the policy again) turned into
/// flags plus a byte on a pipe the loop polls.
pub struct Signals {
    pipe: UnixStream,
    terminate: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    /// Installed before the socket is bound, so that a signal arriving as
    /// soon as clients can connect already means a clean shutdown.
    pub fn install() -> Result<Signals, DaemonError> {
        let err = |what| move |e| DaemonError::os(what, e);
        let (sig_read, sig_write) = std::os::unix::net::UnixStream::pair().map_err(err("signal pipe"))?;
        sig_read.set_nonblocking(true).map_err(err("signal pipe"))?;
        sig_write.set_nonblocking(true).map_err(err("signal pipe"))?;
        let terminate = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for (sig, flag) in [
            (signal_hook::consts::SIGTERM, &terminate),
            (signal_hook::consts::SIGINT, &terminate),
            (signal_hook::consts::SIGHUP, &reload),
        ] {
            signal_hook::flag::register(sig, flag.clone()).map_err(err("signal handler"))?;
            let w = sig_write.try_clone().map_err(err("signal pipe"))?;
            signal_hook::low_level::pipe::register(sig, w).map_err(err("signal handler"))?;
        }
        Ok(Signals { pipe: UnixStream::from_std(sig_read), terminate, reload })
    }
}

enum Entry {
    Conn(Connection),
    Chan(Channel),
    Tls(Box<Relay>),
}

struct Connection {
    stream: UnixStream,
    rx: FrameReader,
    out: VecDeque<OutFrame>,
    out_bytes: usize,
    want_write: bool,
    session: Session,
    /// Descriptors received (`SslWrapFd`, `SslAcceptFd`), oldest first.
    fds: VecDeque<OwnedFd>,
}

impl Connection {
    /// Whether we stop taking requests until replies drain.
    fn paused(&self) -> bool {
        self.out_bytes >= MAX_PENDING_OUTPUT || self.session.inflight >= MAX_INFLIGHT
    }
}

struct OutFrame {
    bytes: Vec<u8>,
    sent: usize,
    /// Rides on the frame's first byte (`SCM_RIGHTS`).
    fd: Option<OwnedFd>,
}

pub struct EventLoop {
    poll: Poll,
    bound: Bound,
    listener: UnixListener,
    entries: Slab<Entry>,
    pool: Pool,
    _waker: Arc<Waker>,
    signals: UnixStream,
    terminate: Arc<AtomicBool>,
    /// SIGHUP: read the policy again.
    reload: Arc<AtomicBool>,
    policy: crate::policy::Sources,
    stats: Shared,
    ready: VecDeque<Token>,
    buf: Vec<u8>,
    mailbox: Arc<Mailbox>,
    /// What the last STORE_CHANGED / TOKEN_CHANGED announced.
    store_generation: u64,
    token_changes: u64,
    /// Something that may change the store or the token ran this turn.
    maybe_changed: bool,
    next_session: u64,
    next_channel: u64,
    uid: u32,
    /// accept() failed for lack of resources; retry on a timer.
    accept_stalled: bool,
}

impl EventLoop {
    pub fn new(bound: Bound, signals: Signals, config: Config) -> Result<EventLoop, DaemonError> {
        let poll = Poll::new().map_err(|e| DaemonError::os("epoll", e))?;
        let listener_fd = bound.listener.try_clone().map_err(|e| DaemonError::os("dup listener", e))?;
        let mut listener = UnixListener::from_std(listener_fd);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| DaemonError::os("register listener", e))?;

        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| DaemonError::os("waker", e))?);
        let w = waker.clone();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = w.wake();
        });
        let pool =
            Pool::new(config.workers, wake.clone()).map_err(|e| DaemonError::os("starting workers", e))?;
        let mailbox = Arc::new(Mailbox::new(wake));
        let store_generation = config.store.generation();
        let profile_dir = config.store.dir.clone();
        let store = Arc::new(std::sync::Mutex::new(config.store));
        let token = Arc::new(config.token);
        let prompts =
            crate::prompt::Prompts::new(mailbox.clone(), config.dialog_dir.clone(), config.prompt_timeout);
        let tls =
            Arc::new(crate::tls::TlsContext::new(store.clone(), token.clone(), prompts, mailbox.clone()));
        tls.audit.configure(Some(&profile_dir), false);
        let policy = config.policy.effective();
        if let Some(src) = &policy.source {
            tracing::info!(policy = %src.display(), "policy in force");
        }
        policy.user.log();
        tls.set_policy(policy);
        crate::hwtokens::spawn_watcher(tls.clone());

        let Signals { pipe: mut signals, terminate, reload } = signals;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| DaemonError::os("register signals", e))?;

        Ok(EventLoop {
            poll,
            bound,
            listener,
            entries: Slab::new(),
            pool,
            _waker: waker,
            signals,
            terminate,
            reload,
            policy: config.policy,
            stats: Shared {
                started: Instant::now(),
                sessions: 0,
                channels: 0,
                requests_served: 0,
                operations: Default::default(),
                requests_failed: 0,
                test_hooks: config.test_hooks,
                workers: config.workers,
                store,
                token,
                tls,
            },
            ready: VecDeque::new(),
            buf: vec![0; READ_BUF],
            mailbox,
            store_generation,
            token_changes: 0,
            maybe_changed: false,
            next_session: 1,
            next_channel: 1,
            uid: psm::transport::euid(),
            accept_stalled: false,
        })
    }

    pub fn run(mut self) -> Result<(), DaemonError> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if !self.ready.is_empty() {
                Some(Duration::ZERO)
            } else if self.accept_stalled {
                Some(ACCEPT_RETRY)
            } else {
                None
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(DaemonError::os("epoll_wait", e));
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {
                        self.deliver_pool_results();
                        self.deliver_mail();
                    }
                    SIGNALS => {
                        let mut b = [0u8; 64];
                        while (&self.signals).read(&mut b).is_ok_and(|n| n > 0) {}
                        if self.reload.swap(false, Ordering::Relaxed) {
                            // Logged either way; a broken file keeps the old policy.
                            let _ = self.reload_policy();
                        }
                    }
                    t if t.0 & NET_BIT != 0 => self.tls_event(t.0 & !NET_BIT, true, ev),
                    t => {
                        if matches!(self.entries.get(t.0), Some(Entry::Tls(_))) {
                            self.tls_event(t.0, false, ev);
                            continue;
                        }
                        if ev.is_writable() {
                            self.flush(t);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.service(t);
                        }
                    }
                }
            }
            if self.terminate.load(Ordering::Relaxed) {
                self.shutdown("psmd received a termination signal");
                return Ok(());
            }
            if self.accept_stalled {
                self.accept_all();
            }
            for _ in 0..self.ready.len() {
                if let Some(t) = self.ready.pop_front() {
                    self.service(t);
                }
            }
            self.announce_changes();
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_stalled = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends. The listener is edge-triggered, so
                    // clients already in the backlog would get no new event:
                    // retry on a timer until accept works again.
                    if !self.accept_stalled {
                        tracing::warn!("accept failed: {e}; retrying every {ACCEPT_RETRY:?}");
                    }
                    self.accept_stalled = true;
                    return;
                }
            }
        }
    }

    /// Checks the peer's uid before reading a byte: another user's process
    /// is closed without a reply.
    fn admit(&mut self, mut stream: UnixStream) {
        let (pid, uid, _gid) = match psm::transport::peer_credentials(&stream) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("SO_PEERCRED failed, closing connection: {e}");
                return;
            }
        };
        if uid != self.uid {
            tracing::warn!(peer_uid = uid, peer_pid = pid, "refused connection from another user");
            return;
        }
        let entry = self.entries.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE) {
            tracing::warn!("register connection: {e}");
            return;
        }
        let session = Session::new(self.next_session, pid, uid);
        self.next_session += 1;
        tracing::debug!(session = session.id, pid, "connected");
        entry.insert(Entry::Conn(Connection {
            stream,
            rx: FrameReader::new(),
            out: VecDeque::new(),
            out_bytes: 0,
            want_write: false,
            session,
            fds: VecDeque::new(),
        }));
        self.stats.sessions += 1;
        self.ready.push_back(token);
    }

    fn service(&mut self, t: Token) {
        match self.entries.get(t.0) {
            Some(Entry::Conn(_)) => self.service_conn(t),
            Some(Entry::Chan(_)) => self.service_channel(t),
            Some(Entry::Tls(_)) => self.service_tls(t.0),
            None => {}
        }
    }

    /// Handles buffered requests, then reads more, within the turn's budget.
    fn service_conn(&mut self, t: Token) {
        let mut read = 0;
        loop {
            // Requests already buffered come first.
            loop {
                let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) else {
                    return;
                };
                if conn.paused() {
                    return; // resumed by flush() or deliver_pool_results()
                }
                let handled = match conn.rx.next_frame() {
                    Ok(Some(body)) => conn.session.handle_frame(&self.stats, body, &mut conn.fds),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                match handled {
                    Ok((id, outcome)) => {
                        self.stats.requests_served += 1;
                        self.apply(t, id, outcome);
                    }
                    Err(e) => {
                        tracing::warn!(session = conn_session(&self.entries, t), "closing connection: {e}");
                        self.close_conn(t);
                        return;
                    }
                }
            }
            if read >= CONN_READ_BUDGET {
                self.ready.push_back(t);
                return;
            }
            let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) else {
                return;
            };
            match psm::transport::recv_with_fds(conn.stream.as_raw_fd(), &mut self.buf, &mut conn.fds) {
                Ok(0) => {
                    self.close_conn(t);
                    return;
                }
                Ok(_) if conn.fds.len() > MAX_QUEUED_FDS => {
                    tracing::warn!(
                        session = conn.session.id,
                        "closing connection: too many descriptors sent"
                    );
                    self.close_conn(t);
                    return;
                }
                Ok(n) => {
                    conn.rx.push(&self.buf[..n]);
                    read += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!("read from client failed: {e}");
                    self.close_conn(t);
                    return;
                }
            }
        }
    }

    fn apply(&mut self, t: Token, id: u64, outcome: Outcome) {
        match outcome {
            Outcome::Reply(result) => self.send_reply(t, id, result, None),
            Outcome::Work(work) => {
                let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) else {
                    return;
                };
                conn.session.inflight += 1;
                let to = ReplyTo { token: t.0, session_id: conn.session.id, request_id: id };
                self.pool.submit(to, work);
            }
            Outcome::OpenChannel(op) => match self.open_channel(t, op) {
                Ok((channel, fd)) => self.send_reply(t, id, Ok(Reply::Channel { channel }), Some(fd)),
                Err(e) => self.send_reply(t, id, Err(e), None),
            },
            Outcome::FinishChannel(channel) => self.finish_channel(t, id, channel),
            Outcome::Tls(start) => self.start_tls(t, id, start),
            Outcome::StepUp(channel) => self.step_up(t, id, channel),
            Outcome::Status => {
                let result = crate::ops::core::status(&self.stats, self.session_list(), self.channel_list());
                self.send_reply(t, id, result, None);
            }
            Outcome::SslInfo(channel) => {
                let result = match self.relay_of(t, channel) {
                    Some(r) => Ok(Reply::Json(r.info_json())),
                    None => Err(no_such_tls_channel(channel)),
                };
                self.send_reply(t, id, result, None);
            }
            Outcome::SslShow(channel) => match self.relay_of(t, channel) {
                Some(r) => {
                    let job = crate::ops::view::security_info(r.info_json());
                    let can_ask =
                        matches!(self.entries.get(t.0), Some(Entry::Conn(c)) if c.session.can_ask());
                    self.start_blocking(t, id, job, can_ask);
                }
                None => self.send_reply(t, id, Err(no_such_tls_channel(channel)), None),
            },
            Outcome::SslPeerCerts(channel) => match self.relay_of(t, channel) {
                // Described on the pool: the store is read for nicknames and trust.
                Some(r) => {
                    let work = crate::ops::tls::describe_certs(&self.stats, r.peer_certs.clone());
                    self.apply(t, id, work);
                }
                None => self.send_reply(t, id, Err(no_such_tls_channel(channel)), None),
            },
            Outcome::Blocking { job, can_prompt } => self.start_blocking(t, id, job, can_prompt),
            Outcome::PolicyReload => {
                let result = self.reload_policy().map(|()| Reply::Done);
                self.send_reply(t, id, result, None);
            }
            Outcome::Stream { job, can_prompt } => self.start_stream(t, id, job, can_prompt),
            Outcome::CloseChannel(channel) => {
                let result = match self.channel_token(t, channel) {
                    Some(ct) => {
                        self.remove_channel(ct);
                        Ok(Reply::Done)
                    }
                    None => Err(no_such_channel(channel)),
                };
                self.send_reply(t, id, result, None);
            }
        }
    }

    fn open_channel(&mut self, t: Token, op: Box<dyn ChannelOp>) -> Result<(u64, OwnedFd), Error> {
        let Some(Entry::Conn(conn)) = self.entries.get(t.0) else {
            return Err(Error::new(Code::PSM_ERR_INTERNAL, "connection vanished"));
        };
        if conn.session.channels.len() >= MAX_CHANNELS_PER_SESSION {
            return Err(Error::new(
                Code::PSM_ERR_BUSY,
                format!(
                    "this application already has {MAX_CHANNELS_PER_SESSION} data channels open; finish or free some"
                ),
            ));
        }
        let session_id = conn.session.id;
        let (ours, theirs) = psm::transport::socketpair().map_err(|e| Error::io("socketpair", e))?;
        let _ = nix::sys::socket::setsockopt(&theirs, nix::sys::socket::sockopt::SndBuf, &CHANNEL_SOCKET_BUF);
        let _ = nix::sys::socket::setsockopt(&ours, nix::sys::socket::sockopt::RcvBuf, &CHANNEL_SOCKET_BUF);
        // SAFETY: `ours` is a connected stream socket we own.
        let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(ours.into_raw_fd()) };
        std_stream.set_nonblocking(true).map_err(|e| Error::io("channel socket", e))?;
        let mut stream = UnixStream::from_std(std_stream);
        let entry = self.entries.vacant_entry();
        let ct = entry.key();
        self.poll
            .registry()
            .register(&mut stream, Token(ct), Interest::READABLE)
            .map_err(|e| Error::io("register channel", e))?;
        let id = self.next_channel;
        self.next_channel += 1;
        entry.insert(Entry::Chan(Channel {
            id,
            stream,
            owner: t.0,
            session_id,
            state: ChannelState::Open(op),
            finish_waiting: None,
            bytes_in: 0,
        }));
        if let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) {
            conn.session.channels.insert(id, ct);
        }
        self.stats.channels += 1;
        tracing::debug!(session = session_id, channel = id, "channel opened");
        Ok((id, theirs))
    }

    /// Runs a request on a blocking thread; its reply comes by mail.
    fn start_blocking(&mut self, t: Token, id: u64, job: crate::ops::smime::BlockingJob, can_prompt: bool) {
        let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) else { return };
        let to = ReplyTo { token: t.0, session_id: conn.session.id, request_id: id };
        let ctx = self.stats.tls.clone();
        let started = handshake::spawn_blocking(&self.stats.tls, move || {
            let jc = crate::ops::smime::JobCtx { ctx: &ctx, to, can_prompt };
            // Nothing an earlier job left on this thread's OpenSSL error
            // queue may colour this one's errors.
            drop(openssl::error::ErrorStack::get());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&jc)))
                .unwrap_or_else(|_| Err(Error::new(Code::PSM_ERR_INTERNAL, "the operation panicked")));
            ctx.mailbox.post(LoopMsg::Reply { to, result });
        });
        match started {
            Ok(()) => {
                if let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) {
                    conn.session.inflight += 1;
                }
            }
            Err(e) => self.send_reply(t, id, Err(e), None),
        }
    }

    /// Opens a data channel whose operation runs on a blocking thread,
    /// reading input from and writing output to its own end.
    fn start_stream(&mut self, t: Token, id: u64, job: crate::ops::smime::StreamJob, can_prompt: bool) {
        let Some(Entry::Conn(conn)) = self.entries.get(t.0) else { return };
        if conn.session.channels.len() >= MAX_CHANNELS_PER_SESSION {
            return self.send_reply(t, id, Err(too_many_channels()), None);
        }
        let session_id = conn.session.id;
        let opened = (|| {
            let (ours, theirs) = psm::transport::socketpair().map_err(|e| Error::io("socketpair", e))?;
            let ours = std::os::unix::net::UnixStream::from(ours);
            // An application that stops feeding (or draining) its stream
            // must not hold a thread for ever.
            ours.set_read_timeout(Some(STREAM_IDLE)).map_err(|e| Error::io("channel socket", e))?;
            ours.set_write_timeout(Some(STREAM_IDLE)).map_err(|e| Error::io("channel socket", e))?;
            // The loop keeps a second descriptor of our end only to shut
            // it down (ending the thread's I/O) if the channel is dropped.
            let kept = ours.try_clone().map_err(|e| Error::io("channel socket", e))?;
            Ok::<_, Error>((ours, kept, theirs))
        })();
        let (ours, kept, theirs) = match opened {
            Ok(x) => x,
            Err(e) => return self.send_reply(t, id, Err(e), None),
        };
        let channel = self.next_channel;
        self.next_channel += 1;
        let to = ReplyTo { token: t.0, session_id, request_id: id };
        let ctx = self.stats.tls.clone();
        let started = handshake::spawn_blocking(&self.stats.tls, move || {
            let jc = crate::ops::smime::JobCtx { ctx: &ctx, to, can_prompt };
            drop(openssl::error::ErrorStack::get());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&jc, ours)))
                .unwrap_or_else(|_| Err(Error::new(Code::PSM_ERR_INTERNAL, "the operation panicked")));
            ctx.mailbox.post(LoopMsg::StreamDone { to, channel, result });
        });
        if let Err(e) = started {
            return self.send_reply(t, id, Err(e), None);
        }
        let entry = self.entries.vacant_entry();
        let ct = entry.key();
        entry.insert(Entry::Chan(Channel {
            id: channel,
            stream: UnixStream::from_std(kept),
            owner: t.0,
            session_id,
            state: ChannelState::Running,
            finish_waiting: None,
            bytes_in: 0,
        }));
        if let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) {
            conn.session.channels.insert(channel, ct);
        }
        self.stats.channels += 1;
        self.send_reply(t, id, Ok(Reply::Channel { channel }), Some(theirs));
    }

    /// A stream operation ended on its thread: keep the result for
    /// ChannelFinish, or answer the one waiting.
    fn stream_done(&mut self, to: ReplyTo, channel: u64, result: Result<Reply, Error>) {
        self.maybe_changed = true;
        let t = Token(to.token);
        if conn_session(&self.entries, t) != to.session_id {
            return;
        }
        let Some(ct) = self.channel_token(t, channel) else { return };
        let Some(Entry::Chan(chan)) = self.entries.get_mut(ct) else { return };
        chan.state = ChannelState::Finished(result);
        if let Some(id) = chan.finish_waiting.take() {
            let result = chan.take_result();
            self.remove_channel(ct);
            self.send_reply(t, id, result, None);
        }
    }

    fn blocking_done(&mut self, to: ReplyTo, result: Result<Reply, Error>) {
        self.maybe_changed = true;
        let t = Token(to.token);
        let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) else { return };
        if conn.session.id != to.session_id {
            return;
        }
        let was_paused = conn.paused();
        conn.session.inflight -= 1;
        if was_paused && !conn.paused() {
            self.ready.push_back(t);
        }
        self.send_reply(t, to.request_id, result, None);
    }

    /// Reads the policy file and the user's config again. A file that
    /// cannot be read or is wrong keeps what was read before (and says
    /// why: the policy's error is returned, the config's is logged and in
    /// Status); a changed policy is announced to every application.
    fn reload_policy(&mut self) -> Result<(), Error> {
        let result = self.policy.reload();
        if let Err(e) = &result {
            tracing::error!("policy not reloaded, the old one stays: {}", e.message);
        }
        let p = self.policy.effective();
        let source = p.source.clone();
        let user = p.user.clone();
        if self.stats.tls.set_policy(p) {
            tracing::info!(policy = ?source, "policy reloaded and changed");
            user.log();
            self.broadcast(&Event::PolicyChanged);
        } else {
            tracing::info!(policy = ?source, "policy reloaded, unchanged");
        }
        result
    }

    fn broadcast(&mut self, event: &Event) {
        let conns: Vec<Token> =
            self.entries.iter().filter(|(_, e)| matches!(e, Entry::Conn(_))).map(|(k, _)| Token(k)).collect();
        for t in conns {
            self.send_frame(t, &ServerFrame::Event(event.clone()), None);
        }
    }

    fn channel_token(&self, t: Token, channel: u64) -> Option<usize> {
        match self.entries.get(t.0) {
            Some(Entry::Conn(conn)) => conn.session.channels.get(&channel).copied(),
            _ => None,
        }
    }

    fn finish_channel(&mut self, t: Token, id: u64, channel: u64) {
        let Some(ct) = self.channel_token(t, channel) else {
            return self.send_reply(t, id, Err(no_such_channel(channel)), None);
        };
        let Some(Entry::Chan(chan)) = self.entries.get_mut(ct) else {
            let e = Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                format!("channel {channel} is a TLS channel; ChannelFinish is for stream operations"),
            );
            return self.send_reply(t, id, Err(e), None);
        };
        if chan.is_finished() {
            let result = chan.take_result();
            self.remove_channel(ct);
            self.send_reply(t, id, result, None);
        } else if chan.finish_waiting.is_some() {
            self.send_reply(
                t,
                id,
                Err(Error::new(Code::PSM_ERR_PROTOCOL, "ChannelFinish is already pending")),
                None,
            );
        } else {
            chan.finish_waiting = Some(id);
        }
    }

    /// Reads channel input within the turn's budget; at end of input,
    /// finishes the operation and answers a parked ChannelFinish.
    fn service_channel(&mut self, t: Token) {
        let mut read = 0;
        loop {
            let Some(Entry::Chan(chan)) = self.entries.get_mut(t.0) else {
                return;
            };
            if chan.is_finished() {
                return;
            }
            match (&chan.stream).read(&mut self.buf) {
                Ok(0) => {
                    chan.feed(None);
                    break;
                }
                Ok(n) => {
                    chan.feed(Some(&self.buf[..n]));
                    read += n;
                    if read >= CHANNEL_READ_BUDGET {
                        self.ready.push_back(t);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    chan.fail(Error::io("reading the data channel", e));
                    break;
                }
            }
        }
        self.end_of_input(t.0);
    }

    fn end_of_input(&mut self, ct: usize) {
        let Some(Entry::Chan(chan)) = self.entries.get_mut(ct) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut chan.stream);
        // The application reads the channel's output to EOF; a digest has none.
        let _ = chan.stream.shutdown(std::net::Shutdown::Write);
        tracing::debug!(channel = chan.id, bytes_in = chan.bytes_in, "channel input ended");
        if let Some(id) = chan.finish_waiting.take() {
            let owner = Token(chan.owner);
            let result = chan.take_result();
            self.remove_channel(ct);
            self.send_reply(owner, id, result, None);
        }
    }

    /// Drops a channel; a ChannelFinish parked on it gets an error rather
    /// than waiting forever.
    fn remove_channel(&mut self, ct: usize) {
        if let Some(Entry::Tls(_)) = self.entries.get(ct) {
            return self.remove_relay(ct);
        }
        let Some(Entry::Chan(mut chan)) = self.entries.try_remove(ct) else { return };
        let _ = self.poll.registry().deregister(&mut chan.stream);
        if matches!(chan.state, ChannelState::Running) {
            // Ends the blocking thread's reads and writes.
            let _ = chan.stream.shutdown(std::net::Shutdown::Both);
        }
        self.stats.channels -= 1;
        let owner = Token(chan.owner);
        let Some(Entry::Conn(conn)) = self.entries.get_mut(owner.0) else { return };
        if conn.session.id != chan.session_id {
            return;
        }
        conn.session.channels.remove(&chan.id);
        if let Some(id) = chan.finish_waiting.take() {
            let e =
                Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "the channel was closed before its input ended");
            self.send_reply(owner, id, Err(e), None);
        }
    }

    /// STORE_CHANGED / TOKEN_CHANGED to every application once a request
    /// (on the pool or a handshake thread) changed the store or the token.
    /// The store is only looked at if nobody holds it: the loop never waits.
    fn announce_changes(&mut self) {
        if !std::mem::take(&mut self.maybe_changed) {
            return; // nothing that changes them ran this turn: keep relaying cheap
        }
        let mut events = Vec::new();
        match self.stats.store.try_lock() {
            Ok(store) => {
                let generation = store.generation();
                if generation != self.store_generation {
                    self.store_generation = generation;
                    events.push(Event::StoreChanged);
                }
            }
            // Busy: look again next turn.
            Err(_) => self.maybe_changed = true,
        }
        let token = self.stats.token.changes();
        if token != self.token_changes {
            self.token_changes = token;
            events.push(Event::TokenChanged);
        }
        if events.is_empty() {
            return;
        }
        let conns: Vec<Token> =
            self.entries.iter().filter(|(_, e)| matches!(e, Entry::Conn(_))).map(|(k, _)| Token(k)).collect();
        for event in events {
            let frame = ServerFrame::Event(event);
            for &t in &conns {
                self.send_frame(t, &frame, None);
            }
        }
    }

    /// Messages from handshake threads and prompt waits.
    fn deliver_mail(&mut self) {
        for msg in self.mailbox.take() {
            // A handshake may have stored an override or used the token.
            self.maybe_changed = true;
            match msg {
                LoopMsg::Event { token, session_id, event } => {
                    if conn_session(&self.entries, Token(token)) == session_id {
                        self.send_frame(Token(token), &ServerFrame::Event(event), None);
                    } else if let Event::Prompt(p) = event {
                        // Asked after its application left: nobody will answer.
                        self.stats.tls.prompts.cancel(p.id);
                    }
                }
                LoopMsg::Handshake(done) => self.handshake_done(*done),
                LoopMsg::Reply { to, result } => self.blocking_done(to, result),
                LoopMsg::StreamDone { to, channel, result } => self.stream_done(to, channel, result),
                LoopMsg::Changed => {}
            }
        }
    }

    /// Hands a channel request to a handshake thread.
    fn start_tls(&mut self, t: Token, id: u64, start: crate::ops::tls::Start) {
        let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) else { return };
        if conn.session.channels.len() >= MAX_CHANNELS_PER_SESSION {
            return self.send_reply(t, id, Err(too_many_channels()), None);
        }
        if conn.session.handshakes >= MAX_HANDSHAKES_PER_SESSION {
            return self.send_reply(t, id, Err(too_many_handshakes()), None);
        }
        let to = ReplyTo { token: t.0, session_id: conn.session.id, request_id: id };
        let job = Job { to, can_prompt: start.can_prompt, opts: start.opts, target: start.target };
        match handshake::start(self.stats.tls.clone(), job) {
            Ok(()) => {
                if let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) {
                    conn.session.handshakes += 1;
                }
            }
            Err(e) => self.send_reply(t, id, Err(e), None),
        }
    }

    /// `SslStepUp`: the plain channel's TCP stream goes to a handshake thread.
    fn step_up(&mut self, t: Token, id: u64, channel: u64) {
        let Some(rt) = self.channel_token(t, channel) else {
            return self.send_reply(t, id, Err(no_such_tls_channel(channel)), None);
        };
        let can_prompt = match self.entries.get(t.0) {
            Some(Entry::Conn(conn)) => conn.session.can_ask(),
            _ => return,
        };
        let session_id = conn_session(&self.entries, t);
        let registry = self.poll.registry();
        let Some(Entry::Tls(relay)) = self.entries.get_mut(rt) else {
            return self.send_reply(t, id, Err(no_such_tls_channel(channel)), None);
        };
        if relay.stepping {
            let e = Error::new(Code::PSM_ERR_PROTOCOL, "a step-up is already running on this channel");
            return self.send_reply(t, id, Err(e), None);
        }
        let (mut net, pending) = match relay.take_for_step_up() {
            Ok(x) => x,
            Err(e) => return self.send_reply(t, id, Err(e), None),
        };
        let _ = registry.deregister(&mut net);
        // SAFETY: from_raw_fd on a descriptor we own exclusively (into_raw_fd).
        let tcp = unsafe { std::net::TcpStream::from_raw_fd(net.into_raw_fd()) };
        let target = Target::StepUp {
            tcp,
            host: relay.info.peer_name.clone(),
            port: relay.info.port,
            pending,
            relay: rt,
            channel,
        };
        let opts = relay.opts.clone();
        let prepared = tcp_blocking(&target);
        let to = ReplyTo { token: t.0, session_id, request_id: id };
        let result = prepared
            .and_then(|_| handshake::start(self.stats.tls.clone(), Job { to, can_prompt, opts, target }));
        match result {
            Ok(()) => {
                relay.step_up_waiting = Some(id);
                if let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) {
                    conn.session.handshakes += 1;
                }
            }
            Err(e) => {
                // The TCP stream is gone with the job: the channel ends.
                relay.stepping = false;
                relay.fail_step_up(e.clone());
                self.send_reply(t, id, Err(e), None);
                self.ready.push_back(Token(rt));
            }
        }
    }

    fn session_list(&self) -> Vec<serde_json::Value> {
        self.entries
            .iter()
            .filter_map(|(_, e)| match e {
                Entry::Conn(c) => Some(&c.session),
                _ => None,
            })
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "app": s.app_name,
                    "pid": s.pid,
                    "exe": s.exe,
                    "connected_secs": s.connected.elapsed().as_secs(),
                    "channels": s.channels.len(),
                    "handshakes": s.handshakes,
                    "requests_in_flight": s.inflight,
                })
            })
            .collect()
    }

    fn channel_list(&self) -> Vec<serde_json::Value> {
        self.entries
            .iter()
            .filter_map(|(_, e)| match e {
                Entry::Chan(c) => Some(serde_json::json!({
                    "id": c.id, "session": c.session_id, "kind": "stream", "bytes_in": c.bytes_in,
                    "finished": c.is_finished(),
                })),
                Entry::Tls(r) => Some(r.status_json()),
                Entry::Conn(_) => None,
            })
            .collect()
    }

    fn relay_of(&self, t: Token, channel: u64) -> Option<&Relay> {
        match self.entries.get(self.channel_token(t, channel)?) {
            Some(Entry::Tls(r)) => Some(r),
            _ => None,
        }
    }

    /// A handshake thread finished: open the channel (or, for a step-up,
    /// resume the relay) and answer the request.
    fn handshake_done(&mut self, done: HandshakeDone) {
        let HandshakeDone { to, opts, result, step_up } = done;
        let t = Token(to.token);
        match self.entries.get_mut(t.0) {
            Some(Entry::Conn(conn)) if conn.session.id == to.session_id => conn.session.handshakes -= 1,
            _ => return, // the application went away; dropping `result` closes the socket
        }
        if let Some((rt, channel)) = step_up {
            return self.step_up_done(t, to.request_id, rt, channel, result);
        }
        let reply = result.and_then(|est| self.open_relay(t, est, opts));
        match reply {
            Ok((channel, fd)) => self.send_reply(t, to.request_id, Ok(Reply::Channel { channel }), Some(fd)),
            Err(e) => self.send_reply(t, to.request_id, Err(e), None),
        }
    }

    fn step_up_done(
        &mut self,
        t: Token,
        id: u64,
        rt: usize,
        channel: u64,
        result: Result<crate::tls::Established, Error>,
    ) {
        let session_id = conn_session(&self.entries, t);
        let registry = self.poll.registry();
        let Some(Entry::Tls(relay)) = self.entries.get_mut(rt) else {
            return self.send_reply(t, id, Err(no_such_tls_channel(channel)), None);
        };
        if relay.id != channel || relay.session_id != session_id {
            return self.send_reply(t, id, Err(no_such_tls_channel(channel)), None);
        }
        relay.step_up_waiting = None;
        let reply = result.and_then(|est| {
            let crate::tls::Established { tcp, tls, info } = est;
            let tls = tls.ok_or_else(|| Error::new(Code::PSM_ERR_INTERNAL, "step-up without TLS"))?;
            tcp.set_nonblocking(true).map_err(|e| Error::io("socket", e))?;
            let mut net = mio::net::TcpStream::from_std(tcp);
            registry
                .register(&mut net, Token(rt | NET_BIT), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| Error::io("register socket", e))?;
            relay.upgrade(net, tls, info);
            Ok(Reply::Done)
        });
        if let Err(e) = &reply {
            relay.stepping = false;
            relay.fail_step_up(e.clone());
        }
        self.send_reply(t, id, reply, None);
        self.ready.push_back(Token(rt));
    }

    /// Creates the application's channel for an established connection and
    /// registers both of the relay's sockets.
    fn open_relay(
        &mut self,
        t: Token,
        est: crate::tls::Established,
        opts: psm::proto::SslOpts,
    ) -> Result<(u64, OwnedFd), Error> {
        let Some(Entry::Conn(conn)) = self.entries.get(t.0) else {
            return Err(Error::new(Code::PSM_ERR_INTERNAL, "connection vanished"));
        };
        if conn.session.channels.len() >= MAX_CHANNELS_PER_SESSION {
            return Err(too_many_channels());
        }
        let session_id = conn.session.id;
        let crate::tls::Established { tcp, tls, info } = est;
        tcp.set_nonblocking(true).map_err(|e| Error::io("socket", e))?;
        let mut net = mio::net::TcpStream::from_std(tcp);
        let (ours, theirs) = psm::transport::socketpair().map_err(|e| Error::io("socketpair", e))?;
        let _ = nix::sys::socket::setsockopt(&theirs, nix::sys::socket::sockopt::SndBuf, &CHANNEL_SOCKET_BUF);
        let _ = nix::sys::socket::setsockopt(&ours, nix::sys::socket::sockopt::SndBuf, &CHANNEL_SOCKET_BUF);
        let peer = theirs.try_clone().map_err(|e| Error::io("dup", e))?;
        // SAFETY: `ours` is a connected stream socket we own.
        let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(ours.into_raw_fd()) };
        std_stream.set_nonblocking(true).map_err(|e| Error::io("channel socket", e))?;
        let mut app = UnixStream::from_std(std_stream);
        let entry = self.entries.vacant_entry();
        let rt = entry.key();
        let both = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut app, Token(rt), both)
            .map_err(|e| Error::io("register channel", e))?;
        if let Err(e) = self.poll.registry().register(&mut net, Token(rt | NET_BIT), both) {
            let _ = self.poll.registry().deregister(&mut app);
            return Err(Error::io("register socket", e));
        }
        let id = self.next_channel;
        self.next_channel += 1;
        entry.insert(Entry::Tls(Box::new(Relay::new(id, t.0, session_id, app, peer, net, tls, info, opts))));
        if let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) {
            conn.session.channels.insert(id, rt);
        }
        self.stats.channels += 1;
        self.ready.push_back(Token(rt));
        tracing::debug!(session = session_id, channel = id, "TLS channel opened");
        Ok((id, theirs))
    }

    /// An event on one of a relay's sockets: note it, then pump.
    fn tls_event(&mut self, rt: usize, net: bool, ev: &mio::event::Event) {
        if let Some(Entry::Tls(relay)) = self.entries.get_mut(rt) {
            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
            let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
            relay.note_event(net, readable, writable, ev.is_read_closed() || ev.is_error());
        }
        self.service_tls(rt);
    }

    fn service_tls(&mut self, rt: usize) {
        let Some(Entry::Tls(relay)) = self.entries.get_mut(rt) else { return };
        let pumped = relay.pump(&mut self.buf);
        tracing::trace!(channel = relay.id, state = %relay.debug_state(), ?pumped, "pumped");
        if pumped == Pumped::Again {
            self.ready.push_back(Token(rt));
        }
        if relay.is_done() {
            // Both directions are over; the entry stays for SslInfo until
            // the application closes the channel or disconnects.
            tracing::trace!(channel = relay.id, "TLS channel finished");
        }
    }

    fn deregister_relay(&self, relay: &mut Relay) {
        if let Some(app) = &mut relay.app {
            let _ = self.poll.registry().deregister(app);
        }
        if let Some(net) = &mut relay.net {
            let _ = self.poll.registry().deregister(net);
        }
    }

    /// `ChannelClose` on a TLS channel: a last attempt to send close_notify,
    /// then everything goes.
    fn remove_relay(&mut self, rt: usize) {
        let Some(Entry::Tls(mut relay)) = self.entries.try_remove(rt) else { return };
        relay.close_now();
        self.deregister_relay(&mut relay);
        self.stats.channels -= 1;
        let owner = Token(relay.owner);
        let Some(Entry::Conn(conn)) = self.entries.get_mut(owner.0) else { return };
        if conn.session.id == relay.session_id {
            conn.session.channels.remove(&relay.id);
        }
    }

    fn deliver_pool_results(&mut self) {
        for done in self.pool.take_done() {
            // Requests that change the store or the token run on the pool.
            self.maybe_changed = true;
            let t = Token(done.to.token);
            let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) else {
                continue;
            };
            if conn.session.id != done.to.session_id {
                continue; // that session is gone; its token was reused
            }
            let was_paused = conn.paused();
            conn.session.inflight -= 1;
            if was_paused && !conn.paused() {
                self.ready.push_back(t);
            }
            self.send_reply(t, done.to.request_id, done.result, None);
        }
    }

    fn send_reply(&mut self, t: Token, id: u64, result: Result<Reply, Error>, fd: Option<OwnedFd>) {
        if let Err(e) = &result {
            self.stats.requests_failed += 1;
            tracing::debug!(request = id, code = ?e.code, "request failed: {}", e.message);
        }
        let kind = match self.entries.get_mut(t.0) {
            Some(Entry::Conn(conn)) => conn.session.pending_kinds.remove(&id),
            _ => None,
        };
        if let Some(kind) = kind {
            let counts = self.stats.operations.entry(kind).or_default();
            if result.is_ok() {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
        self.send_frame(t, &ServerFrame::Reply { id, result }, fd);
    }

    fn send_frame(&mut self, t: Token, frame: &ServerFrame, fd: Option<OwnedFd>) {
        let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) else {
            return;
        };
        let mut bytes = Vec::new();
        if let Err(e) = encode_server_frame(frame, &mut bytes) {
            let id = match frame {
                ServerFrame::Reply { id, .. } => *id,
                ServerFrame::Event(_) => return,
            };
            let err = ServerFrame::Reply {
                id,
                result: Err(Error::new(Code::PSM_ERR_INTERNAL, format!("reply too large: {e}"))),
            };
            encode_server_frame(&err, &mut bytes).expect("an error reply always fits");
        }
        conn.out_bytes += bytes.len() + OUT_FRAME_OVERHEAD;
        conn.out.push_back(OutFrame { bytes, sent: 0, fd });
        self.flush(t);
    }

    fn flush(&mut self, t: Token) {
        let Some(Entry::Conn(conn)) = self.entries.get_mut(t.0) else {
            return;
        };
        let was_paused = conn.paused();
        while let Some(front) = conn.out.front_mut() {
            let fds: &[i32] = match (&front.fd, front.sent) {
                (Some(fd), 0) => &[fd.as_raw_fd()],
                _ => &[],
            };
            match psm::transport::send_with_fds(conn.stream.as_raw_fd(), &front.bytes[front.sent..], fds) {
                Ok(n) => {
                    if n > 0 {
                        front.fd = None; // the kernel passed its own reference
                    }
                    front.sent += n;
                    conn.out_bytes -= n;
                    if front.sent == front.bytes.len() {
                        conn.out.pop_front();
                        conn.out_bytes -= OUT_FRAME_OVERHEAD;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("write to client failed: {e}");
                    self.close_conn(t);
                    return;
                }
            }
        }
        let want_write = !conn.out.is_empty();
        if want_write != conn.want_write {
            let interest =
                if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if self.poll.registry().reregister(&mut conn.stream, t, interest).is_ok() {
                conn.want_write = want_write;
            }
        }
        if was_paused && !conn.paused() {
            self.ready.push_back(t);
        }
    }

    /// Drops a connection and everything its session held.
    fn close_conn(&mut self, t: Token) {
        let Some(Entry::Conn(mut conn)) = self.entries.try_remove(t.0) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        for (_, ct) in conn.session.channels.drain() {
            if !matches!(self.entries.get(ct), Some(Entry::Chan(_) | Entry::Tls(_))) {
                continue;
            }
            match self.entries.remove(ct) {
                Entry::Chan(mut chan) => {
                    let _ = self.poll.registry().deregister(&mut chan.stream);
                    let _ = chan.stream.shutdown(std::net::Shutdown::Both);
                }
                Entry::Tls(mut relay) => {
                    // The application is gone: end its connections cleanly.
                    relay.close_now();
                    self.deregister_relay(&mut relay);
                }
                Entry::Conn(_) => unreachable!("checked above"),
            }
            self.stats.channels -= 1;
        }
        self.stats.sessions -= 1;
        self.stats.token.logout(conn.session.id);
        self.stats.tls.audit.session(conn.session.id, None);
        self.maybe_changed = true;
        self.stats.tls.prompts.cancel_session(conn.session.id);
        tracing::debug!(session = conn.session.id, "disconnected");
    }

    /// Tells every application we are going, then removes the socket.
    fn shutdown(&mut self, reason: &str) {
        tracing::info!("{reason}; shutting down");
        let conns: Vec<Token> =
            self.entries.iter().filter(|(_, e)| matches!(e, Entry::Conn(_))).map(|(k, _)| Token(k)).collect();
        let frame = ServerFrame::Event(Event::Shutdown { reason: reason.to_string() });
        for t in conns {
            self.send_frame(t, &frame, None);
        }
        self.bound.remove_socket();
    }
}

fn conn_session(entries: &Slab<Entry>, t: Token) -> u64 {
    match entries.get(t.0) {
        Some(Entry::Conn(c)) => c.session.id,
        _ => 0,
    }
}

fn too_many_handshakes() -> Error {
    Error::new(
        Code::PSM_ERR_BUSY,
        format!(
            "this application already has {MAX_HANDSHAKES_PER_SESSION} TLS handshakes running; wait for some"
        ),
    )
}

fn too_many_channels() -> Error {
    Error::new(
        Code::PSM_ERR_BUSY,
        format!(
            "this application already has {MAX_CHANNELS_PER_SESSION} data channels open; finish or free some"
        ),
    )
}

/// The handshake thread does blocking I/O on the stream of a step-up.
fn tcp_blocking(target: &Target) -> Result<(), Error> {
    match target {
        Target::StepUp { tcp, .. } => tcp.set_nonblocking(false).map_err(|e| Error::io("socket", e)),
        _ => Ok(()),
    }
}

fn no_such_tls_channel(channel: u64) -> Error {
    Error::new(Code::PSM_ERR_NOT_FOUND, format!("no TLS channel {channel} in this session"))
}

fn no_such_channel(channel: u64) -> Error {
    Error::new(Code::PSM_ERR_NOT_FOUND, format!("no data channel {channel} in this session"))
}
