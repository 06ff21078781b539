//! TLS data channels ("SSL wrap"): psmd runs TLS; the application reads and
//! writes plaintext on the channel's descriptor.

use super::conn::Conn;
use super::{Client, unexpected};
use crate::error::{Code, Error, Result};
use crate::proto::{CertInfo, Reply, Request, SslOpts};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// A TLS connection run by psmd. Read and write plaintext on [`fd`](Self::fd)
/// (select()-able, a Unix stream socket):
/// - `shutdown(fd, SHUT_WR)` sends close_notify; the server may still answer;
/// - a read of 0 bytes means the server closed the connection cleanly;
/// - `ECONNRESET` means it did not (a truncation, or a TLS error after the
///   handshake); [`Client::ssl_info_json`] says which.
///
/// Dropping it closes the connection (close_notify first).
pub struct SslChannel {
    conn: Arc<Conn>,
    channel: u64,
    fd: Option<OwnedFd>,
}

impl std::fmt::Debug for SslChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SslChannel").field("channel", &self.channel).field("fd", &self.fd()).finish()
    }
}

impl SslChannel {
    /// The plaintext side; valid until the channel is dropped.
    pub fn fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// psmd's number for this channel.
    pub fn id(&self) -> u64 {
        self.channel
    }

    /// A std stream over a duplicate of the descriptor, for Read/Write.
    pub fn stream(&self) -> Result<std::os::unix::net::UnixStream> {
        let fd =
            self.fd.as_ref().ok_or_else(|| Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "channel closed"))?;
        let dup = fd.try_clone().map_err(|e| Error::io("duplicating the channel descriptor", e))?;
        Ok(std::os::unix::net::UnixStream::from(dup))
    }
}

impl Drop for SslChannel {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            // psmd sees the end of input at once, even if the application
            // still holds duplicates of the descriptor.
            let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
        self.conn.send_and_forget(Request::ChannelClose { channel: self.channel });
    }
}

impl Client {
    /// psmd resolves `host`, connects to `port` (directly or through
    /// `opts.proxy`), runs the TLS handshake and checks the server's
    /// certificate; the result is the plaintext channel.
    pub fn ssl_connect(&self, host: &str, port: u16, opts: &SslOpts) -> Result<SslChannel> {
        self.ssl_channel(Request::SslConnect { host: host.to_string(), port, opts: opts.clone() }, None)
    }

    /// Wraps a TCP socket the application connected itself; psmd takes its
    /// own reference (the caller may close `fd` afterwards).
    pub fn ssl_wrap_fd(&self, fd: &OwnedFd, server_name: &str, opts: &SslOpts) -> Result<SslChannel> {
        let request = Request::SslWrapFd { server_name: server_name.to_string(), opts: opts.clone() };
        self.ssl_channel(request, Some(fd))
    }

    /// Wraps a TCP socket the application accepted, as a TLS server with the
    /// certificate `cert_sha256_hex` from the store and its private key.
    pub fn ssl_accept_fd(&self, fd: &OwnedFd, cert_sha256_hex: &str, opts: &SslOpts) -> Result<SslChannel> {
        let request = Request::SslAcceptFd { sha256_hex: cert_sha256_hex.to_string(), opts: opts.clone() };
        self.ssl_channel(request, Some(fd))
    }

    /// Connects without TLS: bytes are relayed as they are until
    /// [`ssl_step_up`](Self::ssl_step_up) (STARTTLS).
    pub fn tls_open_plain(&self, host: &str, port: u16, opts: &SslOpts) -> Result<SslChannel> {
        self.ssl_channel(Request::TlsOpenPlain { host: host.to_string(), port, opts: opts.clone() }, None)
    }

    /// Starts TLS on a channel from [`tls_open_plain`](Self::tls_open_plain).
    /// Everything written to the channel before the call is sent in plain
    /// first; returns once the handshake succeeded.
    pub fn ssl_step_up(&self, channel: &SslChannel) -> Result<()> {
        match self.conn.call(Request::SslStepUp { channel: channel.channel })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Protocol version, cipher suite, key exchange group, ALPN, resumption,
    /// the peer's chain, the verification result and byte counts, as JSON.
    pub fn ssl_info_json(&self, channel: &SslChannel) -> Result<String> {
        match self.conn.call(Request::SslInfo { channel: channel.channel })?.0 {
            Reply::Json(j) => Ok(j),
            other => Err(unexpected(&other)),
        }
    }

    /// Shows what protects the channel (psm's security advisor) in a psm
    /// dialog; returns once the user closed it.
    pub fn ssl_show_info(&self, channel: &SslChannel) -> Result<()> {
        match self.conn.call(Request::SslShowInfo { channel: channel.channel })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The certificates the peer presented, leaf first.
    pub fn ssl_peer_certs(&self, channel: &SslChannel) -> Result<Vec<CertInfo>> {
        match self.conn.call(Request::SslPeerCerts { channel: channel.channel })?.0 {
            Reply::Certs(c) => Ok(c),
            other => Err(unexpected(&other)),
        }
    }

    fn ssl_channel(&self, request: Request, fd: Option<&OwnedFd>) -> Result<SslChannel> {
        let reply = match fd {
            Some(fd) => self.conn.call_with_fd(request, fd)?,
            None => self.conn.call(request)?,
        };
        match reply {
            (Reply::Channel { channel }, Some(fd)) => {
                Ok(SslChannel { conn: self.conn.clone(), channel, fd: Some(fd) })
            }
            (other, _) => Err(unexpected(&other)),
        }
    }
}
