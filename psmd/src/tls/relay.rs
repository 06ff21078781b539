//! The relay of an established channel, driven by the event loop: plaintext
//! from the application is encrypted to the network and the network's
//! records are decrypted to the application. Every buffer is bounded: a
//! slow reader on one side stops psmd reading from the other, so the TCP
//! window (or the channel's socket buffer) slows the sender.
//!
//! Endings: the application's end of input sends close_notify (a TLS half
//! close: the server may still answer). The server's close_notify reaches
//! the application as end of file. A TCP close without close_notify, or a
//! TLS error, reaches it as ECONNRESET after the data that came before.

use super::handshake::tls_error;
use super::info::{self, Live, Mode, Negotiated, State, Static};
use mio::net::{TcpStream, UnixStream};
use psm::proto::SslOpts;
use psm::{Code, Error};
use rustls::Connection;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// Plaintext psmd holds for a slow application, at most (plus one record).
pub const MAX_TO_APP: usize = 256 * 1024;
/// Plaintext read from the application at once; it is encrypted and sent
/// before more is read.
pub const APP_READ: usize = 256 * 1024;
/// Bytes one channel moves per turn of the loop before others get theirs.
const TURN_BUDGET: usize = 2 * 1024 * 1024;
/// Smallest and largest size of a channel's buffers: small for the many
/// channels that carry little, up to the bound for bulk transfers.
const BUF_MIN: usize = 32 * 1024;
const BUF_MAX: usize = MAX_TO_APP + 32 * 1024;

/// A byte queue with a read and a write position that grows on demand
/// (zero-filled once, never per read).
#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to append at least `want` bytes (capped at the buffer's limit).
    fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.data.len() - self.end < want {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.data.len() - self.end < want && self.data.len() < BUF_MAX {
                let size = (self.end + want).max(BUF_MIN).next_power_of_two().min(BUF_MAX);
                self.data.resize(size.max(self.data.len()), 0);
            }
        }
        &mut self.data[self.end..]
    }

    fn commit(&mut self, n: usize) {
        self.end += n;
    }

    fn extend(&mut self, bytes: &[u8]) {
        let room = self.spare(bytes.len());
        let n = bytes.len().min(room.len());
        room[..n].copy_from_slice(&bytes[..n]);
        self.commit(n);
        if n < bytes.len() {
            // Only past the limit: grow anyway rather than lose data.
            self.data.extend_from_slice(&bytes[n..]);
            self.end = self.data.len();
        }
    }
}

/// What the loop must do after a pump.
#[derive(Debug, PartialEq, Eq)]
pub enum Pumped {
    /// Waiting for readiness.
    Idle,
    /// Out of budget with work left: run again after the others.
    Again,
}

pub struct Relay {
    pub id: u64,
    /// Slab token and session id of the owning connection.
    pub owner: usize,
    pub session_id: u64,
    pub app: Option<UnixStream>,
    /// A second reference to the application's end of the channel. Writing a
    /// byte through it into our own receive queue before closing our end is
    /// how a Unix socket delivers ECONNRESET (the kernel resets the peer of a
    /// socket closed with unread data).
    app_peer: Option<OwnedFd>,
    pub net: Option<TcpStream>,
    pub tls: Option<Connection>,
    to_app: Buf,
    /// Network bytes read but not yet taken (TLS records, or plain bytes).
    raw_in: Buf,
    /// Plain mode: application bytes not yet sent.
    to_net: Buf,
    app_eof: bool,
    net_eof: bool,
    /// The peer's close_notify (or, plain, its end of stream) was seen.
    peer_closed: bool,
    close_notify_sent: bool,
    /// Our half of the TCP stream is shut (everything sent).
    net_shut: bool,
    /// The application was given its end of file.
    app_shut: bool,
    pub info: Static,
    pub negotiated: Negotiated,
    pub peer_certs: Vec<Vec<u8>>,
    pub opts: SslOpts,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub state: State,
    pub error: Option<Error>,
    /// A step-up is running: the TCP stream is on the handshake thread.
    pub stepping: bool,
    /// What epoll last said of each socket (edge-triggered): a socket is
    /// tried only while it may have room or data, which saves a failing
    /// system call per turn. Set by events, cleared by WouldBlock or a
    /// short read or write.
    ready: Readiness,
    /// The request id of the `SslStepUp` waiting for its handshake.
    pub step_up_waiting: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
struct Readiness {
    app_read: bool,
    app_write: bool,
    net_read: bool,
    net_write: bool,
    /// The peer of the socket shut its side (epoll's RDHUP, which stays
    /// set): a short read no longer means nothing is left, since the end
    /// of stream is still to be read.
    app_hup: bool,
    net_hup: bool,
}

impl Readiness {
    const ALL: Readiness = Readiness {
        app_read: true,
        app_write: true,
        net_read: true,
        net_write: true,
        app_hup: false,
        net_hup: false,
    };
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Relay {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        owner: usize,
        session_id: u64,
        app: UnixStream,
        app_peer: OwnedFd,
        net: TcpStream,
        mut tls: Option<Connection>,
        info: Static,
        opts: SslOpts,
    ) -> Relay {
        let (negotiated, peer_certs) = match &mut tls {
            Some(t) => {
                // Bounded by the relay (it reads the application only
                // while TLS output is drained), not by rustls's own limit.
                t.set_buffer_limit(None);
                (Negotiated::of(t), peer_certs(t))
            }
            None => (Negotiated::default(), Vec::new()),
        };
        Relay {
            id,
            owner,
            session_id,
            app: Some(app),
            app_peer: Some(app_peer),
            net: Some(net),
            tls,
            to_app: Buf::default(),
            raw_in: Buf::default(),
            to_net: Buf::default(),
            app_eof: false,
            net_eof: false,
            peer_closed: false,
            close_notify_sent: false,
            net_shut: false,
            app_shut: false,
            info,
            negotiated,
            peer_certs,
            opts,
            bytes_in: 0,
            bytes_out: 0,
            state: State::Open,
            error: None,
            stepping: false,
            step_up_waiting: None,
            ready: Readiness::ALL,
        }
    }

    /// TLS starts on a channel that was plain (after a step-up handshake).
    pub fn upgrade(&mut self, net: TcpStream, mut tls: Connection, info: Static) {
        tls.set_buffer_limit(None);
        self.negotiated = Negotiated::of(&tls);
        self.peer_certs = peer_certs(&tls);
        self.tls = Some(tls);
        self.net = Some(net);
        self.info = info;
        self.stepping = false;
        self.ready = Readiness::ALL;
    }

    /// An epoll event for the application's socket (`net` false) or the
    /// network's.
    pub fn note_event(&mut self, net: bool, readable: bool, writable: bool, hup: bool) {
        let (r, w, h) = if net {
            (&mut self.ready.net_read, &mut self.ready.net_write, &mut self.ready.net_hup)
        } else {
            (&mut self.ready.app_read, &mut self.ready.app_write, &mut self.ready.app_hup)
        };
        *r |= readable;
        *w |= writable;
        *h |= hup;
    }

    /// For a step-up: the TCP stream and what the application wrote before
    /// asking (read now, so it goes out in plain ahead of the handshake).
    pub fn take_for_step_up(&mut self) -> Result<(TcpStream, Vec<u8>), Error> {
        if self.tls.is_some() || self.info.mode != Mode::Plain {
            return Err(Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "this channel already runs TLS"));
        }
        if self.state != State::Open || self.net_eof || self.app_eof {
            return Err(Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "this channel is closed"));
        }
        // Bytes from the server after its answer to STARTTLS would reach the
        // application as if they came over TLS (RFC 3207's injection
        // attack): whatever psmd holds, or the application has not read yet.
        let unread_by_app = self.app_peer.as_ref().map_or(0, |peer| {
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int for a socket we hold open.
            let r = unsafe { libc::ioctl(peer.as_raw_fd(), libc::FIONREAD, &mut n) };
            if r == 0 { n.max(0) as usize } else { 0 }
        });
        if !self.to_app.is_empty() || unread_by_app > 0 {
            return Err(Error::new(
                Code::PSM_ERR_PROTOCOL,
                format!(
                    "the server sent {} bytes after its STARTTLS answer; refusing to start TLS after \
                     injected data",
                    self.to_app.len() + unread_by_app
                ),
            ));
        }
        let mut pending = self.to_net.pending().to_vec();
        if let Some(app) = &self.app {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match (&*app).read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => pending.extend_from_slice(&chunk[..n]),
                    Err(e) if would_block(&e) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
                if pending.len() > APP_READ {
                    // Bytes were taken from the channel: it cannot go on.
                    let e = Error::new(
                        Code::PSM_ERR_PROTOCOL,
                        "the application is still writing plaintext; STARTTLS needs a pause",
                    );
                    self.fail_step_up(e.clone());
                    return Err(e);
                }
            }
        }

        self.to_net = Buf::default();
        let net = self.net.take().ok_or_else(|| Error::new(Code::PSM_ERR_INTERNAL, "no network stream"))?;
        self.stepping = true;
        Ok((net, pending))
    }

    /// Whether nothing more will move: both directions ended or the channel
    /// was reset. The entry stays for `SslInfo` until the application frees it.
    pub fn is_done(&self) -> bool {
        self.app.is_none() && self.net.is_none()
    }

    pub fn info_json(&self) -> String {
        let live = Live {
            channel: self.id,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            state: self.state,
            error: self.error.as_ref(),
            peer_certs: &self.peer_certs,
        };
        info::json(&self.info, &live, &self.negotiated)
    }

    /// One line of `Status`'s channel list.
    pub fn status_json(&self) -> serde_json::Value {
        let kind = match self.info.mode {
            Mode::Client => "tls-client",
            Mode::Server => "tls-server",
            Mode::Plain => "plain",
        };
        serde_json::json!({
            "id": self.id,
            "session": self.session_id,
            "kind": kind,
            // A server's peer is the client's address; a client's, host:port.
            "peer": match self.info.mode {
                Mode::Server => self.info.peer_name.clone(),
                _ => format!("{}:{}", self.info.peer_name, self.info.port),
            },
            "version": self.negotiated.version,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "state": format!("{:?}", self.state).to_lowercase(),
        })
    }

    /// Buffer levels and flags, for trace logs.
    pub fn debug_state(&self) -> String {
        format!(
            "to_app={} raw_in={} to_net={} tls_wants_write={} app_eof={} net_eof={} peer_closed={} state={:?} app={} net={}",
            self.to_app.len(),
            self.raw_in.len(),
            self.to_net.len(),
            self.tls.as_ref().is_some_and(|t| t.wants_write()),
            self.app_eof,
            self.net_eof,
            self.peer_closed,
            self.state,
            self.app.is_some(),
            self.net.is_some()
        )
    }

    fn peer(&self) -> &'static str {
        if self.info.mode == Mode::Server { "client" } else { "server" }
    }

    /// Moves whatever can move now.
    pub fn pump(&mut self, scratch: &mut [u8]) -> Pumped {
        if self.stepping {
            return Pumped::Idle;
        }
        let mut moved = 0;
        loop {
            let mut progress = false;
            progress |= self.write_app(&mut moved);
            if self.to_app.len() < MAX_TO_APP {
                progress |= self.read_net(scratch, &mut moved);
                progress |= self.write_app(&mut moved);
            }
            progress |= self.write_net();
            if !self.net_backlogged() {
                progress |= self.read_app(scratch, &mut moved);
                progress |= self.write_net();
            }
            self.settle();
            if !progress || self.is_done() {
                return Pumped::Idle;
            }
            if moved >= TURN_BUDGET {
                return Pumped::Again;
            }
        }
    }

    fn net_backlogged(&self) -> bool {
        match &self.tls {
            Some(t) => t.wants_write(),
            None => !self.to_net.is_empty(),
        }
    }

    /// Plaintext to the application.
    fn write_app(&mut self, moved: &mut usize) -> bool {
        let Some(app) = &self.app else {
            self.to_app = Buf::default(); // nobody will read it
            return false;
        };
        let mut progress = false;
        while !self.to_app.is_empty() && self.ready.app_write {
            match (&*app).write(self.to_app.pending()) {
                Ok(n) => {
                    if n < self.to_app.len() {
                        self.ready.app_write = false; // the socket buffer is full
                    }
                    self.to_app.consume(n);
                    self.bytes_in += n as u64;
                    *moved += n;
                    progress = true;
                }
                Err(e) if would_block(&e) => {
                    self.ready.app_write = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The application closed its end: what it did not
                    // read is lost to it anyway.
                    self.app_gone();
                    return true;
                }
            }
        }
        progress
    }

    /// Network bytes in: decrypted (or, plain, as they are) into `to_app`.
    fn read_net(&mut self, scratch: &mut [u8], moved: &mut usize) -> bool {
        // After close_notify nothing the peer sends counts.
        if self.net.is_none() || self.state != State::Open || self.peer_closed {
            return false;
        }
        let mut progress = self.drain_plaintext();
        if self.to_app.len() >= MAX_TO_APP {
            return progress;
        }
        if !self.raw_in.is_empty() {
            let leftover = std::mem::take(&mut self.raw_in);
            progress |= self.take_raw(leftover.pending());
            return progress;
        }
        if self.net_eof || !self.ready.net_read {
            return progress;
        }
        let net = self.net.as_ref().expect("checked above");
        let n = if self.tls.is_some() {
            match (&*net).read(scratch) {
                Ok(n) => {
                    // A short read emptied the socket; the next data is a new edge.
                    self.ready.net_read = n == scratch.len() || self.ready.net_hup;
                    n
                }
                Err(e) if would_block(&e) => {
                    self.ready.net_read = false;
                    return progress;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return progress,
                Err(e) => {
                    self.fail(Error::new(Code::PSM_ERR_IO, format!("reading from the {}: {e}", self.peer())));
                    return true;
                }
            }
        } else {
            // Plain: straight into the application's queue.
            let room = self.to_app.spare(64 * 1024);
            let room_len = room.len();
            match (&*net).read(room) {
                Ok(n) => {
                    self.ready.net_read = n == room_len || self.ready.net_hup;
                    self.to_app.commit(n);
                    n
                }
                Err(e) if would_block(&e) => {
                    self.ready.net_read = false;
                    return progress;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return progress,
                Err(e) => {
                    self.fail(Error::new(Code::PSM_ERR_IO, format!("reading from the {}: {e}", self.peer())));
                    return true;
                }
            }
        };
        *moved += n;
        if n == 0 {
            self.net_eof = true;
            match &mut self.tls {
                Some(tls) => {
                    // Lets rustls see the end of stream: its reader then
                    // says whether close_notify came first.
                    let _ = tls.read_tls(&mut io::empty());
                    self.drain_plaintext();
                }
                None => self.peer_closed = true,
            }
            return true;
        }
        if self.tls.is_some() {
            self.take_raw(&scratch[..n]);
        }
        true
    }

    /// Feeds TLS records to rustls until the plaintext queue is full; keeps
    /// the rest for later.
    fn take_raw(&mut self, mut data: &[u8]) -> bool {
        if self.tls.is_none() {
            return false;
        }
        let offered = data.len();
        let mut drained = false;
        while !data.is_empty() && self.state == State::Open && !self.peer_closed {
            if self.to_app.len() >= MAX_TO_APP {
                break;
            }
            let tls = self.tls.as_mut().expect("checked above");
            if let Err(e) = tls.read_tls(&mut data) {
                self.fail(Error::new(Code::PSM_ERR_TLS_HANDSHAKE, format!("TLS: {e}")));
                return true;
            }
            if let Err(e) = tls.process_new_packets() {
                let err = tls_error(&e, self.peer());
                // Tell the peer (the alert rustls queued), best effort.
                if let (Some(net), Some(tls)) = (&self.net, &mut self.tls) {
                    let _ = tls.write_tls(&mut &*net);
                }
                self.fail(err);
                return true;
            }
            drained |= self.drain_plaintext();
        }
        let progress = drained || data.len() < offered || self.state != State::Open || self.peer_closed;
        if !data.is_empty() && self.state == State::Open && !self.peer_closed {
            self.raw_in.extend(data);
        }
        progress
    }

    /// Moves decrypted plaintext from rustls into `to_app`.
    fn drain_plaintext(&mut self) -> bool {
        if self.peer_closed {
            return false;
        }
        let Some(tls) = &mut self.tls else { return false };
        let mut progress = false;
        while self.to_app.len() < MAX_TO_APP && self.state == State::Open {
            let room = self.to_app.spare(16 * 1024);
            match tls.reader().read(room) {
                Ok(0) => {
                    self.peer_closed = true;
                    return true;
                }
                Ok(n) => {
                    self.to_app.commit(n);
                    progress = true;
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    let peer = self.peer();
                    self.state = State::Truncated;
                    self.error = Some(Error::new(
                        Code::PSM_ERR_TLS_TRUNCATED,
                        format!(
                            "the {peer} closed the connection without close_notify; the data may be truncated"
                        ),
                    ));
                    return true;
                }
                Err(e) => {
                    self.fail(Error::new(Code::PSM_ERR_IO, format!("TLS: {e}")));
                    return true;
                }
            }
        }
        progress
    }

    /// Pending TLS records (or plain bytes) to the network.
    fn write_net(&mut self) -> bool {
        let Some(net) = &self.net else { return false };
        let mut progress = false;
        while self.ready.net_write {
            let r = match &mut self.tls {
                Some(tls) if tls.wants_write() => tls.write_tls(&mut &*net),
                Some(_) => break,
                None if !self.to_net.is_empty() => (&*net).write(self.to_net.pending()).inspect(|n| {
                    self.to_net.consume(*n);
                }),
                None => break,
            };
            match r {
                Ok(_) => progress = true,
                Err(e) if would_block(&e) => {
                    self.ready.net_write = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(Error::new(Code::PSM_ERR_IO, format!("writing to the {}: {e}", self.peer())));
                    return true;
                }
            }
        }
        progress
    }

    /// Application plaintext in, encrypted (or queued, plain) for the network.
    fn read_app(&mut self, scratch: &mut [u8], moved: &mut usize) -> bool {
        // After the peer's close_notify our direction stays open (a TLS half
        // close): the application may still answer, then end its output.
        if self.app_eof || self.net.is_none() || !matches!(self.state, State::Open | State::Closed) {
            return false;
        }
        let Some(app) = &self.app else { return false };
        if !self.ready.app_read {
            return false;
        }
        let want = scratch.len().min(APP_READ);
        let n = match (&*app).read(&mut scratch[..want]) {
            Ok(n) => {
                self.ready.app_read = n == want || self.ready.app_hup;
                n
            }
            Err(e) if would_block(&e) => {
                self.ready.app_read = false;
                return false;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return false,
            Err(_) => {
                // The application's end was reset (closed with our data
                // unread): an abandoned stream, not a complete one.
                self.app = None;
                self.app_peer = None;
                self.app_eof = true;
                return true;
            }
        };
        if n == 0 {
            self.app_eof = true;
            self.end_output();
            return true;
        }
        *moved += n;
        self.bytes_out += n as u64;
        match &mut self.tls {
            Some(tls) => {
                if let Err(e) = tls.writer().write_all(&scratch[..n]) {
                    self.fail(Error::new(Code::PSM_ERR_IO, format!("TLS: {e}")));
                }
            }
            None => self.to_net.extend(&scratch[..n]),
        }
        true
    }

    /// The application has no more to say: close_notify (TLS), then a TCP
    /// half close once everything is out.
    fn end_output(&mut self) {
        if let Some(tls) = &mut self.tls
            && !self.close_notify_sent
        {
            tls.send_close_notify();
            self.close_notify_sent = true;
        }
    }

    /// The application closed its end entirely.
    fn app_gone(&mut self) {
        // What it wrote before going still goes out; close_notify only if
        // all of it was read (otherwise the peer must see a truncation).
        let ended = self.drain_app_input();
        self.app = None;
        self.app_peer = None;
        self.app_eof = true;
        if ended {
            self.end_output();
        }
    }

    /// Reads everything the application wrote that psmd has not read yet,
    /// into TLS (or the plain queue). True when its end of input came: only
    /// then may close_notify say that the stream is complete.
    fn drain_app_input(&mut self) -> bool {
        if self.app_eof {
            return true;
        }
        let Some(app) = &self.app else { return false };
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match (&*app).read(&mut chunk) {
                Ok(0) => {
                    self.app_eof = true;
                    return true;
                }
                Ok(n) => {
                    self.bytes_out += n as u64;
                    match &mut self.tls {
                        Some(tls) => {
                            if tls.writer().write_all(&chunk[..n]).is_err() {
                                return false;
                            }
                        }
                        None => self.to_net.extend(&chunk[..n]),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock: the application never ended its output.
                Err(_) => return false,
            }
        }
    }

    fn fail(&mut self, e: Error) {
        if matches!(self.state, State::Open | State::Closed) {
            self.state = State::Failed;
            self.error = Some(e);
        }
    }

    /// Applies the endings once the data before them has been delivered.
    fn settle(&mut self) {
        if self.app_eof && !self.net_shut && !self.net_backlogged() {
            if let Some(net) = &self.net {
                let _ = net.shutdown(std::net::Shutdown::Write);
            }
            self.net_shut = true;
        }
        if self.to_app.is_empty() || self.app.is_none() {
            match self.state {
                State::Open if self.peer_closed => {
                    if let Some(app) = &self.app {
                        let _ = app.shutdown(std::net::Shutdown::Write);
                    }
                    self.app_shut = true;
                    self.state = State::Closed;
                }
                State::Truncated | State::Failed => {
                    self.reset_app();
                    self.net = None;
                }
                _ => {}
            }
        }
        // Each socket closes once both of its directions are over.
        if self.net_shut && (self.peer_closed || self.net_eof) {
            self.net = None;
        }
        if self.app_shut && self.app_eof {
            self.app = None;
            self.app_peer = None;
        }
    }

    /// A failed step-up ends the channel.
    pub fn fail_step_up(&mut self, e: Error) {
        self.fail(e);
        self.settle();
    }

    /// The application closed the channel (or disconnected): send what can
    /// be sent now without waiting; close_notify only if it had ended its
    /// output, so that an abandoned stream reads as truncated to the peer.
    pub fn close_now(&mut self) {
        if self.drain_app_input() {
            self.end_output();
        }
        self.write_net();
    }

    /// Ends the application's channel with ECONNRESET instead of a clean
    /// end of file.
    fn reset_app(&mut self) {
        let Some(app) = self.app.take() else { return };
        if let Some(peer) = self.app_peer.take() {
            let _ = nix::sys::socket::send(
                peer.as_raw_fd(),
                &[0],
                nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            );
            drop(app); // closed with unread data: the kernel resets the peer
            drop(peer);
        }
    }
}

fn peer_certs(tls: &Connection) -> Vec<Vec<u8>> {
    tls.peer_certificates().map(|c| c.iter().map(|d| d.to_vec()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buf_grows_compacts_and_keeps_order() {
        let mut b = Buf::default();
        b.extend(b"hello ");
        b.extend(b"world");
        assert_eq!(b.pending(), b"hello world");
        b.consume(6);
        let room = b.spare(BUF_MIN);
        assert!(room.len() >= BUF_MIN);
        b.extend(&vec![7u8; 100_000]);
        assert_eq!(&b.pending()[..5], b"world");
        assert_eq!(b.len(), 100_005);
        b.consume(100_005);
        assert!(b.is_empty());
        assert!(b.data.len() <= BUF_MAX);
    }

    /// The kernel behaviour `reset_app` relies on: a Unix stream socket
    /// closed with unread data makes its peer's reads fail with ECONNRESET,
    /// after the data queued for the peer.
    #[test]
    fn closing_with_unread_data_resets_the_peer() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        (&ours).write_all(b"data").unwrap();
        let dup = theirs.try_clone().unwrap();
        (&dup).write_all(&[0]).unwrap();
        drop(ours);
        drop(dup);
        let mut buf = [0u8; 8];
        assert_eq!((&theirs).read(&mut buf).unwrap(), 4);
        assert_eq!((&theirs).read(&mut buf).unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    }
}

#[cfg(test)]
mod relay_tests {
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, ServerConnection};
    use std::net::{TcpListener, TcpStream as StdTcp};
    use std::sync::Arc;

    /// Accepts any server certificate: these tests are about the relay.
    #[derive(Debug)]
    struct AnyServer;

    impl ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// A relay whose server, on its own thread, sends `data`, then
    /// close_notify, then closes; and the application's end of the channel.
    fn relay_with_server(
        data: Vec<u8>,
    ) -> (Relay, std::os::unix::net::UnixStream, std::thread::JoinHandle<()>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let chain = vec![cert.cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let server_config =
            Arc::new(ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut conn = ServerConnection::new(server_config).unwrap();
            while conn.is_handshaking() {
                conn.complete_io(&mut sock).unwrap();
            }
            conn.set_buffer_limit(None);
            conn.writer().write_all(&data).unwrap();
            conn.send_close_notify();
            while conn.wants_write() {
                conn.write_tls(&mut sock).unwrap();
            }
        });
        let config = ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer))
            .with_no_client_auth();
        let mut tls = ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
        let mut tcp = StdTcp::connect(addr).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).unwrap();
        }
        tcp.set_nonblocking(true).unwrap();
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        // A tiny channel buffer: the application "does not read".
        let _ = nix::sys::socket::setsockopt(&ours, nix::sys::socket::sockopt::SndBuf, &4096);
        let peer = OwnedFd::from(theirs.try_clone().unwrap());
        let relay = Relay::new(
            1,
            0,
            1,
            UnixStream::from_std(ours),
            peer,
            TcpStream::from_std(tcp),
            Some(Connection::Client(tls)),
            Static::plain("localhost", addr.port()),
            SslOpts::default(),
        );
        (relay, theirs, server)
    }

    #[test]
    fn close_notify_while_the_app_is_not_reading_leaves_the_relay_idle() {
        let (mut relay, app, server) = relay_with_server(vec![9u8; 100_000]);
        server.join().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // The pump must come back (Idle) even though plaintext waits for a
        // reader and the peer has closed: a pump that spins stalls psmd.
        std::thread::spawn(move || {
            let mut scratch = vec![0u8; 256 * 1024];
            for _ in 0..50 {
                // What epoll reports: the server's data and its close.
                relay.note_event(true, true, true, true);
                let _ = relay.pump(&mut scratch);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let _ = tx.send(relay);
        });
        let relay = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("pump() never returned");
        assert!(relay.peer_closed, "the close_notify was read");
        assert!(!relay.to_app.is_empty(), "plaintext still waits for the application");
        drop(app);
    }
}
