//! The safe Rust client of psmd.
//!
//! ```no_run
//! let client = psm::Client::connect("my-app", psm::ConnectFlags::default())?;
//! client.ping()?;
//! let digest = client.digest(psm::proto::HashAlg::Sha256, b"abc")?;
//! # Ok::<(), psm::Error>(())
//! ```
//!
//! A [`Client`] is cheap to clone and may be used from several threads at
//! once; replies find their caller by request id.

mod conn;
mod prompt;
mod smime;
mod spawn;
mod tls;

pub use prompt::WeakClient;
pub use spawn::find_daemon;
pub use tls::SslChannel;

use crate::error::{Code, Error, Result};
use crate::proto::{
    CertInfo, CertUsage, Event, HashAlg, KeyKind, MAX_APP_NAME, MAX_INLINE_DIGEST, MAX_RANDOM, PROTOCOL_MAX,
    PROTOCOL_MIN, Reply, Request, SigKind, TokenInfo, Verification,
};
use crate::transport;
use conn::Conn;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a daemon that accepted our connection may take to answer Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for [`Client::connect`] (the `PSM_CONNECT_*` flags of the C API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectFlags {
    /// Fail instead of starting psmd when it is not running.
    pub no_spawn: bool,
    /// The application cannot open the HTML dialogs psmd offers.
    pub no_dialogs: bool,
}

#[derive(Clone)]
pub struct Client {
    conn: Arc<Conn>,
    session_id: u64,
    daemon_version: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("session_id", &self.session_id).finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the user's psmd (see [`transport::default_socket_path`]),
    /// starting it if needed.
    pub fn connect(app_name: &str, flags: ConnectFlags) -> Result<Client> {
        Client::connect_to(&transport::default_socket_path(), app_name, flags)
    }

    pub fn connect_to(socket: &Path, app_name: &str, flags: ConnectFlags) -> Result<Client> {
        if app_name.len() > MAX_APP_NAME {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                format!("application name is {} bytes; the limit is {MAX_APP_NAME}", app_name.len()),
            ));
        }
        // A daemon that is shutting down (or was just killed) may accept our
        // connection and close it before answering Hello; one more attempt
        // finds, or starts, its successor.
        match Client::handshake(spawn::connect(socket, !flags.no_spawn)?, app_name, flags) {
            Err(e) if e.code == Code::PSM_ERR_DISCONNECTED => {
                Client::handshake(spawn::connect(socket, !flags.no_spawn)?, app_name, flags)
            }
            r => r,
        }
    }

    fn handshake(
        stream: std::os::unix::net::UnixStream,
        app_name: &str,
        flags: ConnectFlags,
    ) -> Result<Client> {
        let conn = Conn::new(OwnedFd::from(stream))?;
        let hello = Request::Hello {
            version_min: PROTOCOL_MIN,
            version_max: PROTOCOL_MAX,
            app_name: app_name.to_string(),
            flags: if flags.no_dialogs { 0 } else { crate::proto::HELLO_CAN_SHOW_DIALOGS },
        };
        let reply = conn.call_within(hello, Some(HELLO_TIMEOUT)).map_err(|e| match e.code {
            Code::PSM_ERR_TIMEOUT => Error::new(
                Code::PSM_ERR_TIMEOUT,
                format!("psmd accepted the connection but did not answer Hello within {HELLO_TIMEOUT:?}"),
            ),
            _ => e,
        })?;
        match reply {
            (Reply::Hello { daemon_version, session_id, version }, _) => {
                if !(PROTOCOL_MIN..=PROTOCOL_MAX).contains(&version) {
                    return Err(Error::new(
                        Code::PSM_ERR_PROTOCOL,
                        format!("psmd chose protocol version {version}, which this libpsm does not speak"),
                    ));
                }
                Ok(Client { conn: Arc::new(conn), session_id, daemon_version })
            }
            (other, _) => Err(unexpected(&other)),
        }
    }

    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    pub fn daemon_version(&self) -> &str {
        &self.daemon_version
    }

    /// Readable (select/poll) when [`next_event`](Self::next_event) may have
    /// something, including the news that the connection died.
    pub fn event_fd(&self) -> RawFd {
        self.conn.event_fd()
    }

    pub fn ping(&self) -> Result<()> {
        match self.conn.call(Request::Ping)?.0 {
            Reply::Pong => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    pub fn status_json(&self) -> Result<String> {
        match self.conn.call(Request::Status)?.0 {
            Reply::Status { json } => Ok(json),
            other => Err(unexpected(&other)),
        }
    }

    /// Fills `buf` from psmd's CSPRNG.
    pub fn random(&self, buf: &mut [u8]) -> Result<()> {
        for chunk in buf.chunks_mut(MAX_RANDOM as usize) {
            match self.conn.call(Request::Random { len: chunk.len() as u32 })?.0 {
                Reply::Bytes(b) if b.len() == chunk.len() => chunk.copy_from_slice(&b),
                other => return Err(unexpected(&other)),
            }
        }
        Ok(())
    }

    /// Digest of `data`; large inputs go through a data channel.
    pub fn digest(&self, alg: HashAlg, data: &[u8]) -> Result<Vec<u8>> {
        if data.len() > MAX_INLINE_DIGEST {
            let stream = self.digest_stream(alg)?;
            transport::send_all(stream.fd(), data).map_err(channel_write_error)?;
            return stream.finish();
        }
        match self.conn.call(Request::Digest { alg, data: data.to_vec() })?.0 {
            Reply::Bytes(d) if d.len() == alg.output_len() => Ok(d),
            other => Err(unexpected(&other)),
        }
    }

    /// Opens a data channel that digests everything written to it.
    pub fn digest_stream(&self, alg: HashAlg) -> Result<Stream> {
        self.open_stream(Request::DigestStream { alg })
    }

    fn open_stream(&self, request: Request) -> Result<Stream> {
        match self.conn.call(request)? {
            (Reply::Channel { channel }, Some(fd)) => {
                Ok(Stream { conn: self.conn.clone(), channel, fd: Some(fd) })
            }
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// The next event, waiting at most `timeout` (None: until one comes).
    /// `Ok(None)` when the time ran out.
    pub fn next_event(&self, timeout: Option<Duration>) -> Result<Option<Event>> {
        self.conn.next_event(timeout)
    }

    /// Imports certificates (PEM, DER, PKCS#7 certs-only); the first gets
    /// `nickname` (None: derived) and `trust` (`TRUST_*` bits).
    pub fn cert_import(&self, data: &[u8], nickname: Option<&str>, trust: u32) -> Result<Vec<CertInfo>> {
        let request =
            Request::CertImport { data: data.to_vec(), nickname: nickname.map(str::to_string), trust };
        self.certs(request)
    }

    /// Makes psmd read the system policy again (as SIGHUP does); the error
    /// says why a file was refused (the old policy stays in force).
    pub fn policy_reload(&self) -> Result<()> {
        match self.conn.call(Request::PolicyReload)?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The user's certificate overrides, as JSON: a list of `{host, port,
    /// sha256, errors, added}`.
    pub fn override_list_json(&self) -> Result<String> {
        match self.conn.call(Request::OverrideList)?.0 {
            Reply::Json(j) => Ok(j),
            other => Err(unexpected(&other)),
        }
    }

    /// Forgets the certificate overrides for `host`:`port`.
    pub fn override_delete(&self, host: &str, port: u16) -> Result<()> {
        match self.conn.call(Request::OverrideDelete { host: host.to_string(), port })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Checks a policy file's text without applying it: every problem with
    /// its line (empty: the policy is good).
    pub fn policy_check(&self, text: &str) -> Result<Vec<(usize, String)>> {
        match self.conn.call(Request::PolicyCheck { text: text.to_string() })?.0 {
            Reply::Problems(p) => Ok(p.into_iter().map(|(line, m)| (line as usize, m)).collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// Checks a user config file's text (`config.toml`) without applying
    /// it: every problem with its line (empty: the config is good).
    pub fn config_check(&self, text: &str) -> Result<Vec<(usize, String)>> {
        match self.conn.call(Request::ConfigCheck { text: text.to_string() })?.0 {
            Reply::Problems(p) => Ok(p.into_iter().map(|(line, m)| (line as usize, m)).collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// By nickname, email address or `sha256:<hex>`.
    pub fn cert_find(&self, query: &str) -> Result<CertInfo> {
        self.one_cert(Request::CertFind { query: query.to_string() })
    }

    /// Certificates matching any `CERTS_*` bit of `filter` (0: all).
    pub fn cert_list(&self, filter: u32) -> Result<Vec<CertInfo>> {
        self.certs(Request::CertList { filter })
    }

    /// Atomically sets and clears `TRUST_*` bits; returns the updated certificate.
    pub fn cert_change_trust(&self, sha256_hex: &str, set: u32, clear: u32) -> Result<CertInfo> {
        self.one_cert(Request::CertChangeTrust { sha256_hex: sha256_hex.to_string(), set, clear })
    }

    pub fn cert_delete(&self, sha256_hex: &str, with_key: bool) -> Result<()> {
        match self.conn.call(Request::CertDelete { sha256_hex: sha256_hex.to_string(), with_key })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Verifies `der` for `usage` and `name` at `at` (unix seconds, 0 = now).
    /// `Ok` whenever psmd could evaluate it; the verdict is in the result.
    pub fn cert_verify(
        &self,
        der: &[u8],
        usage: CertUsage,
        name: Option<&str>,
        at: i64,
    ) -> Result<Verification> {
        let request = Request::CertVerify { der: der.to_vec(), usage, name: name.map(str::to_string), at };
        match self.conn.call(request)?.0 {
            Reply::Verification(v) => Ok(v),
            other => Err(unexpected(&other)),
        }
    }

    pub fn crl_import(&self, data: &[u8]) -> Result<()> {
        match self.conn.call(Request::CrlImport { data: data.to_vec() })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Unlocks the soft token for this connection (None: ask the user,
    /// which needs the dialog support of a later release).
    pub fn token_login(&self, password: Option<&str>) -> Result<()> {
        self.done(Request::TokenLogin { password: password.map(secret) })
    }

    pub fn token_logout(&self) -> Result<()> {
        self.done(Request::TokenLogout)
    }

    /// psm's soft token first, then the tokens in the slots of the PKCS#11
    /// modules the policy names.
    pub fn token_list(&self) -> Result<Vec<TokenInfo>> {
        match self.conn.call(Request::TokenList)?.0 {
            Reply::Tokens(t) => Ok(t),
            other => Err(unexpected(&other)),
        }
    }

    /// Logs in to the token `uri` names (a [`TokenInfo::uri`]); `pin`
    /// None: psm asks the user (prompt handler or dialog), again after a
    /// wrong PIN. A PKCS#11 token then stays logged in for every
    /// application of this user until [`token_logout_from`](Self::token_logout_from),
    /// the policy's idle timeout, or its removal.
    pub fn token_login_to(&self, uri: &str, pin: Option<&str>) -> Result<()> {
        self.done(Request::TokenLoginTo { token: uri.to_string(), pin: pin.map(secret) })
    }

    pub fn token_logout_from(&self, uri: &str) -> Result<()> {
        self.done(Request::TokenLogoutFrom { token: uri.to_string() })
    }

    /// Changes the token password; an empty `new` removes it.
    pub fn token_set_password(&self, old: Option<&str>, new: Option<&str>) -> Result<()> {
        self.done(Request::TokenSetPassword { old: old.map(secret), new: new.map(secret) })
    }

    /// Generates a key in the token and returns a PKCS#10 request (DER).
    /// `sans`: "dns:NAME", "ip:ADDRESS", "email:ADDRESS".
    /// A new certificate request (PEM-less PKCS#10 DER) for the key of the
    /// stored certificate `sha256_hex`, with `subject_dn` and `sans`
    /// ("dns:NAME", "ip:ADDRESS", "email:ADDRESS").
    pub fn key_csr(&self, sha256_hex: &str, subject_dn: &str, sans: &[&str]) -> Result<Vec<u8>> {
        self.bytes(Request::KeyCsr {
            sha256_hex: sha256_hex.to_string(),
            subject_dn: subject_dn.to_string(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
        })
    }

    pub fn key_generate(
        &self,
        kind: KeyKind,
        subject_dn: &str,
        nickname: Option<&str>,
        sans: &[&str],
    ) -> Result<Vec<u8>> {
        self.bytes(Request::KeyGenerate {
            kind,
            subject_dn: subject_dn.to_string(),
            nickname: nickname.map(str::to_string),
            sans: sans.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Signs `data` with the private key of the certificate `sha256_hex`.
    pub fn key_sign(&self, sha256_hex: &str, alg: SigKind, data: &[u8]) -> Result<Vec<u8>> {
        self.bytes(Request::KeySign { sha256_hex: sha256_hex.to_string(), alg, data: data.to_vec() })
    }

    /// Imports a PKCS#12 file: its key into the token, its certificates
    /// into the store (the key's certificate first).
    pub fn pkcs12_import(&self, data: &[u8], password: Option<&str>) -> Result<Vec<CertInfo>> {
        self.certs(Request::Pkcs12Import { data: data.to_vec(), password: password.map(secret) })
    }

    pub fn pkcs12_export(&self, sha256_hex: &str, password: Option<&str>) -> Result<Vec<u8>> {
        self.bytes(Request::Pkcs12Export {
            sha256_hex: sha256_hex.to_string(),
            password: password.map(secret),
        })
    }

    pub fn sdr_encrypt(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.bytes(Request::SdrEncrypt { data: data.to_vec() })
    }

    pub fn sdr_decrypt(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.bytes(Request::SdrDecrypt { data: data.to_vec() })
    }

    fn done(&self, request: Request) -> Result<()> {
        match self.conn.call(request)?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn bytes(&self, request: Request) -> Result<Vec<u8>> {
        match self.conn.call(request)?.0 {
            Reply::Bytes(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }

    fn certs(&self, request: Request) -> Result<Vec<CertInfo>> {
        match self.conn.call(request)?.0 {
            Reply::Certs(c) => Ok(c),
            other => Err(unexpected(&other)),
        }
    }

    fn one_cert(&self, request: Request) -> Result<CertInfo> {
        let mut certs = self.certs(request)?;
        if certs.len() != 1 {
            return Err(Error::new(
                Code::PSM_ERR_PROTOCOL,
                "psmd sent a certificate list where one was expected",
            ));
        }
        Ok(certs.remove(0))
    }

    /// Test hook (psmd `--test-hooks` only): occupies a daemon worker.
    pub fn debug_sleep(&self, ms: u32) -> Result<()> {
        match self.conn.call(Request::DebugSleep { ms })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

fn secret(s: &str) -> crate::proto::Secret {
    crate::proto::Secret(s.to_string())
}

/// A data channel whose far end vanished means psmd went away.
fn channel_write_error(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
            Error::new(Code::PSM_ERR_DISCONNECTED, format!("psmd closed the data channel: {e}"))
        }
        _ => Error::io("writing to the data channel", e),
    }
}

pub(crate) fn unexpected(reply: &Reply) -> Error {
    let kind = match reply {
        Reply::Hello { .. } => "Hello",
        Reply::Pong => "Pong",
        Reply::Status { .. } => "Status",
        Reply::Bytes(_) => "Bytes",
        Reply::Channel { .. } => "Channel",
        Reply::Done => "Done",
        Reply::Certs(_) => "Certs",
        Reply::Verification(_) => "Verification",
        Reply::Json(_) => "Json",
        Reply::Smime(_) => "Smime",
        Reply::Problems(_) => "Problems",
        Reply::Tokens(_) => "Tokens",
    };
    Error::new(Code::PSM_ERR_PROTOCOL, format!("unexpected {kind} reply from psmd"))
}

/// A data channel for a stream operation. Write the input to [`fd`](Self::fd),
/// then call [`finish`](Self::finish): it ends the input (`SHUT_WR`) and
/// returns the operation's result.
pub struct Stream {
    conn: Arc<Conn>,
    channel: u64,
    fd: Option<OwnedFd>,
}

impl Stream {
    pub fn fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    pub fn finish(mut self) -> Result<Vec<u8>> {
        let fd = self.fd.take();
        if let Some(fd) = &fd {
            // ENOTCONN: the application already shut it down, or psmd closed it.
            let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        }
        let result = self.conn.call(Request::ChannelFinish { channel: self.channel });
        self.channel = 0;
        match result?.0 {
            Reply::Bytes(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.channel != 0 {
            self.conn.send_and_forget(Request::ChannelClose { channel: self.channel });
        }
    }
}
