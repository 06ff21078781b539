//! Setting up a TLS channel, on a thread of its own: resolve the host,
//! connect (directly or through an HTTP proxy's CONNECT), run the handshake
//! with blocking I/O and a deadline, and hand the result to the event loop,
//! which relays from then on. A thread per handshake keeps the event loop
//! free while DNS, a slow server or the user (a trust prompt) takes its time.

use super::TlsContext;
use super::client_auth::certified_key;
use super::info::{Mode, Static};
use crate::mailbox::LoopMsg;
use crate::pool::ReplyTo;
use psm::proto::{SslOpts, TLS_1_2, TLS_1_3};
use psm::{Code, Error};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, NamedGroup, ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Limit for resolving, connecting and each handshake read or write when the
/// options give none. Time the user spends answering a prompt is not counted.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest response header accepted from an HTTP proxy.
const MAX_PROXY_RESPONSE: usize = 8 * 1024;
/// Stack of a handshake thread: rustls and aws-lc need little.
const THREAD_STACK: usize = 256 * 1024;

/// What the verifier and the certificate chooser learned during the handshake.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    /// The verification result, its detail, and the override used if any.
    pub verification: Option<super::Verification>,
    /// The client certificate presented (DER).
    pub client_cert: Option<Vec<u8>>,
    /// Set when this connection's session must not be resumed by others.
    pub no_resumption: bool,
    /// Why the handshake must stop (more precise than rustls's error).
    pub error: Option<Error>,
    /// Time spent waiting for the user's answers: not part of the
    /// handshake's time limit.
    pub user_time: Duration,
}

impl Notes {
    pub fn record_verification(&mut self, code: Code, detail: &str, how: Option<&'static str>) {
        self.verification = Some((code, detail.to_string(), how));
    }

    pub fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

/// The handshake this thread runs, for the shared verifier and certificate
/// chooser (rustls calls them on this thread, inside the handshake).
pub struct Current {
    pub ctx: Arc<TlsContext>,
    pub host: String,
    pub port: u16,
    pub can_prompt: bool,
    pub to: ReplyTo,
    pub named: Option<[u8; 32]>,
    pub notes: Arc<Mutex<Notes>>,
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Arc<Current>>> = const { std::cell::RefCell::new(None) };
}

impl Current {
    /// Runs `f` with this thread's handshake; None outside one.
    pub fn with<R>(f: impl FnOnce(&Current) -> R) -> Option<R> {
        let cur = CURRENT.with(|c| c.borrow().clone())?;
        Some(f(&cur))
    }

    fn set(cur: Option<Arc<Current>>) {
        CURRENT.with(|c| *c.borrow_mut() = cur);
    }
}

/// Where the TCP connection comes from.
pub enum Target {
    /// psmd connects to `host`:`port` and runs TLS.
    Connect { host: String, port: u16 },
    /// The application's connected socket, TLS client for `server_name`.
    Wrap { fd: OwnedFd, server_name: String },
    /// The application's accepted socket, TLS server with this certificate.
    Accept { fd: OwnedFd, cert: [u8; 32] },
    /// psmd connects; no TLS until a step-up.
    Plain { host: String, port: u16 },
    /// TLS on a connection that was plain so far; `pending` (what the
    /// application wrote before asking) goes out first.
    StepUp { tcp: TcpStream, host: String, port: u16, pending: Vec<u8>, relay: usize, channel: u64 },
}

pub struct Job {
    pub to: ReplyTo,
    pub can_prompt: bool,
    pub opts: SslOpts,
    pub target: Target,
}

/// A connection ready for the relay.
pub struct Established {
    pub tcp: TcpStream,
    /// None while the channel is plain (before a step-up).
    pub tls: Option<Connection>,
    pub info: Static,
}

pub struct HandshakeDone {
    pub to: ReplyTo,
    /// The options the channel was asked with (a step-up reuses them).
    pub opts: SslOpts,
    pub result: Result<Established, Error>,
    /// For a step-up: the relay's slab token and channel id.
    pub step_up: Option<(usize, u64)>,
}

/// Runs `job` on a handshake thread; the result arrives in the loop's mailbox.
pub fn start(ctx: Arc<TlsContext>, job: Job) -> Result<(), Error> {
    ctx.enter()?;
    let to = job.to;
    let opts = job.opts.clone();
    let step_up = match &job.target {
        Target::StepUp { relay, channel, .. } => Some((*relay, *channel)),
        _ => None,
    };
    let ctx2 = ctx.clone();
    let started = ctx.threads.run(Box::new(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&ctx2, job)))
            .unwrap_or_else(|_| Err(Error::new(Code::PSM_ERR_INTERNAL, "the TLS handshake panicked")));
        Current::set(None);
        ctx2.leave();
        ctx2.mailbox.post(LoopMsg::Handshake(Box::new(HandshakeDone { to, opts, result, step_up })));
    }));
    started.inspect_err(|_| ctx.leave())
}

/// Runs `task` on a handshake thread: for work that blocks on something
/// other than the CPU (the user's answer, an application's stream).
pub fn spawn_blocking(ctx: &Arc<TlsContext>, task: impl FnOnce() + Send + 'static) -> Result<(), Error> {
    ctx.enter()?;
    let ctx2 = ctx.clone();
    let started = ctx.threads.run(Box::new(move || {
        task();
        ctx2.leave();
    }));
    started.inspect_err(|_| ctx.leave())
}

type Task = Box<dyn FnOnce() + Send>;

/// Threads for handshakes: one per handshake running, kept a while after
/// it ends so that the next one does not pay for a new thread.
#[derive(Default)]
pub struct Threads {
    state: Mutex<ThreadsState>,
    cv: std::sync::Condvar,
}

#[derive(Default)]
struct ThreadsState {
    queue: std::collections::VecDeque<Task>,
    /// Threads blocked waiting for work.
    waiting: usize,
}

/// How long a handshake thread waits for the next handshake before it ends.
const THREAD_IDLE: Duration = Duration::from_secs(30);

impl Threads {
    fn lock(&self) -> std::sync::MutexGuard<'_, ThreadsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(self: &Arc<Self>, task: Task) -> Result<(), Error> {
        let mut st = self.lock();
        st.queue.push_back(task);
        // Each queued task has a waiting thread to wake, or gets a new one.
        if st.waiting >= st.queue.len() {
            self.cv.notify_one();
            return Ok(());
        }
        drop(st);
        let threads = self.clone();
        let spawned = std::thread::Builder::new()
            .name("psmd-tls".into())
            .stack_size(THREAD_STACK)
            .spawn(move || threads.work());
        spawned.map(|_| ()).map_err(|e| {
            self.lock().queue.pop_back();
            Error::new(Code::PSM_ERR_BUSY, format!("cannot start a handshake thread: {e}"))
        })
    }

    fn work(&self) {
        let mut st = self.lock();
        loop {
            if let Some(task) = st.queue.pop_front() {
                drop(st);
                task();
                st = self.lock();
                continue;
            }
            st.waiting += 1;
            let (guard, waited) = self.cv.wait_timeout(st, THREAD_IDLE).unwrap_or_else(|p| p.into_inner());
            st = guard;
            st.waiting -= 1;
            if waited.timed_out() && st.queue.is_empty() {
                return;
            }
        }
    }
}

fn timeout_of(opts: &SslOpts) -> Duration {
    match opts.timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(ms.into()),
    }
}

fn run(ctx: &Arc<TlsContext>, job: Job) -> Result<Established, Error> {
    let timeout = timeout_of(&job.opts);
    let Job { to, can_prompt, opts, target } = job;
    match target {
        Target::Connect { host, port } => {
            let tcp = connect(&host, port, opts.proxy.as_deref(), timeout)?;
            client_handshake(ctx, to, can_prompt, &opts, tcp, &host, port, Mode::Client, &[])
        }
        Target::Plain { host, port } => {
            let tcp = connect(&host, port, opts.proxy.as_deref(), timeout)?;
            Ok(Established { tcp, tls: None, info: Static::plain(&host, port) })
        }
        Target::Wrap { fd, server_name } => {
            let tcp = tcp_from_fd(fd)?;
            let port = tcp.peer_addr().map_err(|e| Error::io("the socket is not connected", e))?.port();
            client_handshake(ctx, to, can_prompt, &opts, tcp, &server_name, port, Mode::Client, &[])
        }
        Target::StepUp { tcp, host, port, pending, .. } => {
            client_handshake(ctx, to, can_prompt, &opts, tcp, &host, port, Mode::Client, &pending)
        }
        Target::Accept { fd, cert } => server_handshake(ctx, to.session_id, &opts, tcp_from_fd(fd)?, &cert),
    }
}

/// Checks that a descriptor from the application is a connected TCP socket.
fn tcp_from_fd(fd: OwnedFd) -> Result<TcpStream, Error> {
    use nix::sys::socket::{
        AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
    };
    use std::os::fd::AsRawFd;
    let not_tcp = || Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "the descriptor is not a TCP socket");
    let ty = getsockopt(&fd, sockopt::SockType).map_err(|_| not_tcp())?;
    let addr: SockaddrStorage = getsockname(fd.as_raw_fd()).map_err(|_| not_tcp())?;
    if ty != SockType::Stream || !matches!(addr.family(), Some(AddressFamily::Inet | AddressFamily::Inet6)) {
        return Err(not_tcp());
    }
    let tcp = TcpStream::from(fd);
    tcp.peer_addr().map_err(|e| Error::io("the socket is not connected", e))?;
    tcp.set_nonblocking(false).map_err(|e| Error::io("socket", e))?;
    Ok(tcp)
}

/// Resolves and connects, trying each address in turn.
fn connect(host: &str, port: u16, proxy: Option<&str>, timeout: Duration) -> Result<TcpStream, Error> {
    let tcp = match proxy {
        Some(p) => {
            let (phost, pport) = split_host_port(p)?;
            let tcp = connect_direct(&phost, pport, timeout)
                .map_err(|e| Error::new(e.code, format!("proxy {p}: {}", e.message)))?;
            proxy_connect(tcp, host, port, timeout)?
        }
        None => connect_direct(host, port, timeout)?,
    };
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// "host:port" or "[v6]:port".
fn split_host_port(s: &str) -> Result<(String, u16), Error> {
    let bad = || Error::new(Code::PSM_ERR_INVALID_ARGUMENT, format!("\"{s}\" is not host:port"));
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn connect_direct(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::new(Code::PSM_ERR_DNS, format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::new(Code::PSM_ERR_DNS, format!("{host} has no addresses")));
    }
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last.expect("at least one address was tried");
    let code = match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Code::PSM_ERR_TIMEOUT,
        _ => Code::PSM_ERR_CONNECT,
    };
    Err(Error::new(code, format!("cannot connect to {host} port {port} ({addr}): {e}")))
}

/// Asks an HTTP proxy for a tunnel (RFC 9110 9.3.6).
fn proxy_connect(mut tcp: TcpStream, host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    tcp.set_read_timeout(Some(timeout))
        .and_then(|_| tcp.set_write_timeout(Some(timeout)))
        .map_err(|e| Error::io("socket", e))?;
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    tcp.write_all(request.as_bytes()).map_err(|e| proxy_io(e, "sending CONNECT"))?;
    // Byte by byte: nothing after the header may be consumed here (the
    // server speaks first in some protocols).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_PROXY_RESPONSE {
            return Err(Error::new(Code::PSM_ERR_CONNECT, "the proxy's response header is too long"));
        }
        match tcp.read(&mut byte) {
            Ok(0) => return Err(Error::new(Code::PSM_ERR_CONNECT, "the proxy closed the connection")),
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(proxy_io(e, "reading its response")),
        }
    }
    let status_line =
        String::from_utf8_lossy(head.split(|b| *b == b'\r').next().unwrap_or_default()).into_owned();
    let code = status_line.split_whitespace().nth(1).unwrap_or("");
    if !status_line.starts_with("HTTP/1.") || !code.starts_with('2') || code.len() != 3 {
        return Err(Error::new(
            Code::PSM_ERR_CONNECT,
            format!("the proxy refused the tunnel to {authority}: {status_line}"),
        ));
    }
    Ok(tcp)
}

fn proxy_io(e: io::Error, what: &str) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            Error::new(Code::PSM_ERR_TIMEOUT, format!("the proxy did not answer in time ({what})"))
        }
        _ => Error::new(Code::PSM_ERR_CONNECT, format!("proxy: {what}: {e}")),
    }
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(opts: &SslOpts) -> Result<&'static [&'static rustls::SupportedProtocolVersion], Error> {
    match opts.min_version {
        0 | TLS_1_2 => Ok(rustls::ALL_VERSIONS),
        TLS_1_3 => Ok(TLS13_ONLY),
        v => Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("minimum TLS version {v:#06x} is not TLS 1.2 (0x0303) or TLS 1.3 (0x0304)"),
        )),
    }
}

/// The shared resumption cache, seen through a gate: a connection whose
/// certificate was accepted by the user (an override), or that presented a
/// client certificate, stores nothing another application could resume.
#[derive(Debug)]
struct GatedCache {
    inner: Arc<ClientSessionMemoryCache>,
    notes: Arc<Mutex<Notes>>,
    closed: AtomicBool,
    ctx: Arc<TlsContext>,
    host: String,
}

impl GatedCache {
    fn open(&self) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        let notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if notes.no_resumption {
            self.closed.store(true, Ordering::Relaxed);
            return false;
        }
        if let Some(v) = &notes.verification {
            self.ctx.remember_verification(&self.host, v.clone());
        }
        true
    }
}

impl ClientSessionStore for GatedCache {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group)
    }
    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }
    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        if self.open() {
            self.inner.set_tls12_session(server_name, value)
        }
    }
    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }
    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name)
    }
    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        if self.open() {
            self.inner.insert_tls13_ticket(server_name, value)
        }
    }
    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}

#[allow(clippy::too_many_arguments)]
fn client_handshake(
    ctx: &Arc<TlsContext>,
    to: ReplyTo,
    can_prompt: bool,
    opts: &SslOpts,
    mut tcp: TcpStream,
    host: &str,
    port: u16,
    mode: Mode,
    pending: &[u8],
) -> Result<Established, Error> {
    let timeout = timeout_of(opts);
    let server_name = ServerName::try_from(host.to_string()).map_err(|_| {
        Error::new(Code::PSM_ERR_INVALID_ARGUMENT, format!("\"{host}\" is not a valid server name"))
    })?;
    let named = match &opts.client_cert {
        Some(q) => Some(crate::store::parse_fingerprint(&crate::hwtokens::find_cert(ctx, q)?.sha256_hex)?),
        None => None,
    };
    let notes = Arc::new(Mutex::new(Notes::default()));
    Current::set(Some(Arc::new(Current {
        ctx: ctx.clone(),
        host: host.to_string(),
        port,
        can_prompt,
        to,
        named,
        notes: notes.clone(),
    })));
    let mut config = ClientConfig::builder_with_provider(ctx.tls_provider())
        .with_protocol_versions(versions(opts)?)
        .map_err(|e| Error::new(Code::PSM_ERR_INTERNAL, format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(ctx.verifier.clone())
        .with_client_cert_resolver(ctx.client_certs.clone());
    config.alpn_protocols = opts.alpn.iter().map(|p| p.to_vec()).collect();
    let gate = GatedCache {
        inner: ctx.resumption_cache()?,
        notes: notes.clone(),
        closed: AtomicBool::new(false),
        ctx: ctx.clone(),
        host: host.to_string(),
    };
    config.resumption = Resumption::store(Arc::new(gate));
    let conn = ClientConnection::new(Arc::new(config), server_name)
        .map_err(|e| Error::new(Code::PSM_ERR_TLS_HANDSHAKE, format!("starting TLS: {e}")))?;
    let mut conn = Connection::Client(conn);
    set_timeouts(&tcp, Some(timeout))?;
    if !pending.is_empty() {
        tcp.write_all(pending).map_err(|e| Error::io("sending the plaintext before STARTTLS", e))?;
    }
    let driven = drive(&mut conn, &mut tcp, timeout, Some(&notes));
    Current::set(None);
    // The resumption gate keeps reading the shared notes after this.
    let mut notes = notes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(e) = notes.error {
        return Err(e);
    }
    driven.map_err(|e| handshake_error(e, "server", timeout))?;
    set_timeouts(&tcp, None)?;
    if matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed)) {
        // The certificate was checked when the session was made: report
        // that check (only sessions verified without an override are
        // shared, and the cache is emptied when trust settings change).
        notes.verification = Some(ctx.remembered_verification(host).unwrap_or((
            Code::PSM_OK,
            "resumed a session whose certificate psm verified".into(),
            None,
        )));
    }
    let info = Static::client(mode, host, port, &notes);
    Ok(Established { tcp, tls: Some(conn), info })
}

fn server_handshake(
    ctx: &Arc<TlsContext>,
    session: u64,
    opts: &SslOpts,
    mut tcp: TcpStream,
    cert: &[u8; 32],
) -> Result<Established, Error> {
    let timeout = timeout_of(opts);
    let key = certified_key(ctx, session, None, cert)?;
    let own = key.cert.first().map(|c| c.to_vec());
    let mut config = ServerConfig::builder_with_provider(ctx.tls_provider())
        .with_protocol_versions(versions(opts)?)
        .map_err(|e| Error::new(Code::PSM_ERR_INTERNAL, format!("TLS configuration: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    config.alpn_protocols = opts.alpn.iter().map(|p| p.to_vec()).collect();
    config.session_storage = ctx.server_sessions(cert);
    let conn = ServerConnection::new(Arc::new(config))
        .map_err(|e| Error::new(Code::PSM_ERR_TLS_HANDSHAKE, format!("starting TLS: {e}")))?;
    let mut conn = Connection::Server(conn);
    set_timeouts(&tcp, Some(timeout))?;
    drive(&mut conn, &mut tcp, timeout, None).map_err(|e| handshake_error(e, "client", timeout))?;
    set_timeouts(&tcp, None)?;
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
    Ok(Established { tcp, tls: Some(conn), info: Static::server(&peer, port, own) })
}

fn set_timeouts(tcp: &TcpStream, t: Option<Duration>) -> Result<(), Error> {
    tcp.set_read_timeout(t).and_then(|_| tcp.set_write_timeout(t)).map_err(|e| Error::io("socket", e))
}

/// The socket as the handshake sees it: every read and write gets only
/// what is left of the handshake's time, less the time spent waiting for
/// the user, so a peer that trickles bytes cannot hold a thread for long.
struct Deadline<'a> {
    tcp: &'a mut TcpStream,
    start: std::time::Instant,
    limit: Duration,
    notes: Option<&'a Mutex<Notes>>,
}

impl Deadline<'_> {
    fn left(&self) -> io::Result<Duration> {
        let asked =
            self.notes.map_or(Duration::ZERO, |n| n.lock().unwrap_or_else(|p| p.into_inner()).user_time);
        let spent = self.start.elapsed().saturating_sub(asked);
        match self.limit.checked_sub(spent) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(io::Error::new(io::ErrorKind::TimedOut, "handshake deadline passed")),
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_write_timeout(Some(left))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Runs the handshake to completion with blocking I/O, within `limit`
/// (not counting the user's time, which `notes` records).
fn drive(
    conn: &mut Connection,
    tcp: &mut TcpStream,
    limit: Duration,
    notes: Option<&Mutex<Notes>>,
) -> io::Result<()> {
    let mut io = Deadline { tcp, start: std::time::Instant::now(), limit, notes };
    while conn.is_handshaking() {
        conn.complete_io(&mut io)?;
    }
    while conn.wants_write() {
        conn.write_tls(&mut io)?;
    }
    Ok(())
}

fn handshake_error(e: io::Error, peer: &str, timeout: Duration) -> Error {
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return tls_error(tls, peer);
    }
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::new(
            Code::PSM_ERR_TIMEOUT,
            format!("the {peer} did not complete the TLS handshake within {} s", timeout.as_secs_f32()),
        ),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            Error::new(
                Code::PSM_ERR_TLS_HANDSHAKE,
                format!("the {peer} closed the connection during the TLS handshake"),
            )
        }
        _ => Error::new(Code::PSM_ERR_TLS_HANDSHAKE, format!("TLS handshake with the {peer} failed: {e}")),
    }
}

/// A rustls error in words, with the result code it stands for.
pub fn tls_error(e: &rustls::Error, peer: &str) -> Error {
    match e {
        rustls::Error::AlertReceived(alert) => {
            Error::new(Code::PSM_ERR_TLS_ALERT, format!("the {peer} sent the TLS alert {alert:?}"))
        }
        rustls::Error::InvalidCertificate(c) => Error::new(
            Code::PSM_ERR_CERT_INVALID,
            format!("the {peer}'s certificate is not acceptable: {c:?}"),
        ),
        rustls::Error::NoCertificatesPresented => {
            Error::new(Code::PSM_ERR_TLS_HANDSHAKE, format!("the {peer} presented no certificate"))
        }
        other => Error::new(Code::PSM_ERR_TLS_HANDSHAKE, format!("TLS with the {peer} failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_threads_run_every_task_and_are_reused() {
        let threads = Arc::new(Threads::default());
        let (tx, rx) = std::sync::mpsc::channel();
        for round in 0..3 {
            for i in 0..50 {
                let tx = tx.clone();
                threads.run(Box::new(move || tx.send((round, i)).unwrap())).unwrap();
            }
            let mut got: Vec<_> =
                (0..50).map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap()).collect();
            got.sort();
            assert_eq!(got, (0..50).map(|i| (round, i)).collect::<Vec<_>>());
            // Idle threads wait for the next round instead of ending.
            crate::tls::handshake::tests::wait_for(|| threads.lock().waiting > 0);
        }
    }

    fn wait_for(cond: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "condition not reached");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn proxy_addresses_parse_with_and_without_brackets() {
        assert_eq!(split_host_port("proxy:3128").unwrap(), ("proxy".to_string(), 3128));
        assert_eq!(split_host_port("[::1]:8080").unwrap(), ("::1".to_string(), 8080));
        for bad in ["proxy", ":80", "proxy:http", "proxy:70000"] {
            assert_eq!(split_host_port(bad).unwrap_err().code, Code::PSM_ERR_INVALID_ARGUMENT, "{bad}");
        }
    }
}
