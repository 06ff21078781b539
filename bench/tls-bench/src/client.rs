//! The four ways a client reaches the server, each doing the same three
//! jobs (read a whole stream, one full handshake, 1-byte round trips):
//! - in-process rustls (the baseline): the client runs TLS itself;
//! - psm: psmd runs TLS, the client reads plaintext from the channel fd;
//! - relay (a reference): `tls-bench relay`, the least a daemon shaped like
//!   psmd does, runs TLS; the client talks plain to its Unix socket;
//! - stunnel: stunnel4 in client mode runs TLS, the client talks plain TCP
//!   to stunnel's local port.

use crate::Res;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The application's buffer for plaintext reads (from rustls, from psm's
/// channel, from stunnel's socket).
pub const READ_BUF: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rustls,
    Psm,
    Relay,
    Stunnel,
}

/// Every client, in the order of the report.
pub const KINDS: [Kind; 4] = [Kind::Rustls, Kind::Psm, Kind::Relay, Kind::Stunnel];

impl Kind {
    pub fn parse(name: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Rustls => "rustls",
            Kind::Psm => "psm",
            Kind::Relay => "relay",
            Kind::Stunnel => "stunnel",
        }
    }
}

/// How a client reaches one server.
pub enum Via<'a> {
    /// In-process rustls to host:port.
    Rustls(&'a Rustls, u16),
    /// psmd to host:port.
    Psm(&'a psm::Client, &'a str, u16),
    /// The reference relay (`tls-bench relay`) listening on a Unix socket.
    Relay(&'a Path),
    /// Plain TCP to stunnel listening on 127.0.0.1:port.
    Stunnel(u16),
}

impl Via<'_> {
    /// Reads one stream to its clean end; the number of plaintext bytes.
    pub fn stream(&self, buf: &mut [u8]) -> Res<u64> {
        match *self {
            Via::Rustls(r, port) => {
                let mut tls = r.connect(port)?;
                let mut total = 0u64;
                loop {
                    match tls.read(buf)? {
                        0 => break,
                        n => total += n as u64,
                    }
                }
                tls.close();
                Ok(total)
            }
            Via::Psm(c, host, port) => {
                let ch = c.ssl_connect(host, port, &psm::proto::SslOpts::default())?;
                read_to_end(&mut *channel_stream(&ch), buf)
            }
            Via::Relay(path) => read_to_end(&mut UnixStream::connect(path)?, buf),
            Via::Stunnel(port) => read_to_end(&mut plain_connect(port)?, buf),
        }
    }

    /// One full handshake: connect, handshake, then the server's close.
    pub fn handshake(&self) -> Res<()> {
        let mut sink = [0u8; 256];
        match *self {
            Via::Rustls(r, port) => {
                let mut tls = r.connect(port)?;
                while tls.read(&mut sink)? > 0 {}
                tls.close();
            }
            Via::Psm(c, host, port) => {
                let ch = c.ssl_connect(host, port, &psm::proto::SslOpts::default())?;
                read_to_end(&mut *channel_stream(&ch), &mut sink)?;
            }
            Via::Relay(path) => {
                read_to_end(&mut UnixStream::connect(path)?, &mut sink)?;
            }
            Via::Stunnel(port) => {
                read_to_end(&mut plain_connect(port)?, &mut sink)?;
            }
        }
        Ok(())
    }

    /// `warmup` untimed then `samples.len()` timed 1-byte round trips on
    /// one connection; each sample in nanoseconds.
    pub fn round_trips(&self, warmup: usize, samples: &mut [u64]) -> Res<()> {
        match *self {
            Via::Rustls(r, port) => {
                let mut tls = r.connect(port)?;
                let mut one = [0u8; 1];
                timed(warmup, samples, |b| {
                    tls.write(&[b])?;
                    if tls.read(&mut one)? == 0 {
                        return Err("the server closed the connection".into());
                    }
                    Ok(one[0])
                })?;
                tls.close();
                Ok(())
            }
            Via::Psm(c, host, port) => {
                let ch = c.ssl_connect(host, port, &psm::proto::SslOpts::default())?;
                plain_round_trips(&mut *channel_stream(&ch), warmup, samples)
            }
            Via::Relay(path) => plain_round_trips(&mut UnixStream::connect(path)?, warmup, samples),
            Via::Stunnel(port) => plain_round_trips(&mut plain_connect(port)?, warmup, samples),
        }
    }
}

/// Runs `call` warmup + samples.len() times with bytes 0, 1, 2...; each
/// call must return the byte it sent.
fn timed(warmup: usize, samples: &mut [u64], mut call: impl FnMut(u8) -> Res<u8>) -> Res<()> {
    for i in 0..warmup + samples.len() {
        let sent = i as u8;
        let t0 = Instant::now();
        let got = call(sent)?;
        let ns = t0.elapsed().as_nanos() as u64;
        if got != sent {
            return Err(format!("echo returned {got} for {sent}").into());
        }
        if let Some(s) = i.checked_sub(warmup) {
            samples[s] = ns;
        }
    }
    Ok(())
}

fn plain_round_trips(s: &mut (impl Read + Write), warmup: usize, samples: &mut [u64]) -> Res<()> {
    let mut one = [0u8; 1];
    timed(warmup, samples, |b| {
        s.write_all(&[b])?;
        s.read_exact(&mut one)?;
        Ok(one[0])
    })
}

fn read_to_end(s: &mut impl Read, buf: &mut [u8]) -> Res<u64> {
    let mut total = 0u64;
    loop {
        match s.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("after {total} bytes: {e}").into()),
        }
    }
}

/// The channel's descriptor as a stream, without a dup and without closing
/// it (the channel does that).
fn channel_stream(ch: &psm::SslChannel) -> ManuallyDrop<UnixStream> {
    // SAFETY: the fd is open for as long as `ch` lives, which outlives the
    // returned value, and ManuallyDrop never closes it.
    ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(ch.fd()) })
}

fn plain_connect(port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// The in-process baseline: what an application using rustls directly
/// does, trusting only the benchmark's CA, resumption off like the server.
pub struct Rustls {
    config: Arc<ClientConfig>,
    host: String,
    name: ServerName<'static>,
}

impl Rustls {
    pub fn new(ca_pem: &Path, host: &str) -> Res<Rustls> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_pem)? {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        let name = ServerName::try_from(host.to_string())?;
        Ok(Rustls { config: Arc::new(config), host: host.to_string(), name })
    }

    /// Version, cipher suite and key exchange group of a connection to
    /// `port`, as psmd's ssl_info_json names them.
    pub fn describe(&self, port: u16) -> Res<String> {
        let tls = self.connect(port)?;
        let version = match tls.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            v => format!("{v:?}"),
        };
        let suite = tls.conn.negotiated_cipher_suite().map(|s| s.suite());
        let group = tls.conn.negotiated_key_exchange_group().map(|g| g.name());
        let described = format!("{version} {:?} {:?}", suite.ok_or("no suite")?, group.ok_or("no group")?);
        tls.close();
        Ok(described)
    }

    /// Connects and completes the handshake.
    pub(crate) fn connect(&self, port: u16) -> Res<Tls> {
        let sock = TcpStream::connect((self.host.as_str(), port))?;
        sock.set_nodelay(true)?;
        let mut tls = Tls { conn: ClientConnection::new(self.config.clone(), self.name.clone())?, sock };
        while tls.conn.is_handshaking() {
            tls.flush()?;
            if tls.conn.read_tls(&mut tls.sock)? == 0 {
                return Err("the server closed the connection during the handshake".into());
            }
            tls.conn.process_new_packets()?;
        }
        tls.flush()?;
        Ok(tls)
    }
}

/// A rustls client connection over TCP, used the way rustls documents it:
/// read_tls straight from the socket (rustls reads at most a record or so
/// at a time). Reading the socket through a large buffer instead (a
/// BufReader of 64 KiB or more) halved the throughput here: the client
/// then drains the socket in bursts and sleeps, and each wakeup across
/// CPUs is expensive on a VM.
pub(crate) struct Tls {
    conn: ClientConnection,
    sock: TcpStream,
}

impl Tls {
    fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
        }
        Ok(())
    }

    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.sock)
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Res<()> {
        self.conn.writer().write_all(data)?;
        Ok(self.flush()?)
    }

    /// Plaintext into `buf`; 0 = the server's close_notify.
    fn read(&mut self, buf: &mut [u8]) -> Res<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
            // At EOF without close_notify, reader() fails next time round.
            self.conn.read_tls(&mut self.sock)?;
            self.conn.process_new_packets()?;
            self.flush()?;
        }
    }

    /// Reads what the socket holds into `raw`, without waiting; 0 at EOF,
    /// None if it held nothing.
    pub(crate) fn recv_nowait(&mut self, raw: &mut [u8]) -> Res<Option<usize>> {
        match DontWait(&self.sock).read(raw) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Hands rustls the front of `raw` (about a record), advancing it; an
    /// empty `raw` tells rustls the stream ended.
    pub(crate) fn take_records(&mut self, raw: &mut &[u8]) -> Res<()> {
        self.conn.read_tls(raw)?;
        self.conn.process_new_packets()?;
        Ok(self.flush()?)
    }

    /// Plaintext rustls has already decrypted; None if none.
    pub(crate) fn buffered(&mut self, buf: &mut [u8]) -> Res<Option<usize>> {
        match self.conn.reader().read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// close_notify, then the end of our half of the TCP connection.
    pub(crate) fn close_write(&mut self) -> Res<()> {
        self.conn.send_close_notify();
        self.flush()?;
        self.sock.shutdown(std::net::Shutdown::Write)?;
        Ok(())
    }

    fn close(mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

/// Reads a blocking socket without blocking (MSG_DONTWAIT).
struct DontWait<'a>(&'a TcpStream);

impl Read for DontWait<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(self.0);
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }
}
