//! TLS peers for the channel tests: a test PKI made with rcgen at run time,
//! and small servers (rustls TLS servers in several modes, an SMTP-like
//! STARTTLS server, an HTTP CONNECT proxy) run in threads on loopback.
//! Every server stops, and its threads are joined, when it is dropped.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

// ---------------------------------------------------------------- the PKI

/// A certificate with its private key, and the chain a server sends with it.
#[derive(Clone)]
pub struct Cert {
    pub der: Vec<u8>,
    /// PKCS#8 DER.
    pub key: Vec<u8>,
    /// What a server presents: this certificate first, then intermediates.
    pub chain: Vec<Vec<u8>>,
    pub serial: u64,
}

impl Cert {
    pub fn pem(&self) -> Vec<u8> {
        pem_cert(&self.der)
    }

    pub fn sha256_hex(&self) -> String {
        sha256_hex(&self.der)
    }

    /// "sha256:<hex>", the way psm names a certificate.
    pub fn psm_name(&self) -> String {
        format!("sha256:{}", self.sha256_hex())
    }

    /// The same certificate presented without its intermediates.
    pub fn leaf_only(&self) -> Cert {
        Cert { chain: vec![self.der.clone()], ..self.clone() }
    }

    /// A PKCS#12 file (built with the openssl crate) holding the key, this
    /// certificate and the rest of its chain; `name` becomes the friendly name.
    pub fn pkcs12(&self, name: Option<&str>, password: &str) -> Vec<u8> {
        use openssl::pkcs12::Pkcs12;
        use openssl::x509::X509;
        let pkey = openssl::pkey::PKey::private_key_from_pkcs8(&self.key).unwrap();
        let cert = X509::from_der(&self.der).unwrap();
        let mut b = Pkcs12::builder();
        b.pkey(&pkey).cert(&cert);
        if let Some(n) = name {
            b.name(n);
        }
        if self.chain.len() > 1 {
            let mut ca = openssl::stack::Stack::new().unwrap();
            for der in &self.chain[1..] {
                ca.push(X509::from_der(der).unwrap()).unwrap();
            }
            b.ca(ca);
        }
        b.build2(password).unwrap().to_der().unwrap()
    }
}

pub fn pem_cert(der: &[u8]) -> Vec<u8> {
    openssl::x509::X509::from_der(der).unwrap().to_pem().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A CA that can issue (rcgen).
pub struct Ca {
    pub cert: Cert,
    /// The intermediates a server sends after a leaf this CA issued.
    below_root: Vec<Vec<u8>>,
    issuer: Issuer<'static, KeyPair>,
}

/// The test PKI: a root, an intermediate under it, server leaves in every
/// state the tests need, client certificates, and a CRL.
pub struct Pki {
    pub root: Ca,
    pub intermediate: Ca,
    /// localhost, 127.0.0.1 and ::1; issued by the intermediate; the chain
    /// holds the intermediate.
    pub good: Cert,
    /// Like `good`, issued by the root directly (no intermediate needed).
    pub direct: Cert,
    pub expired: Cert,
    pub not_yet_valid: Cert,
    /// For wrong.example.com only.
    pub wrong_host: Cert,
    /// Issued by a CA nobody trusts.
    pub unknown_issuer: Cert,
    /// Self-signed, for localhost.
    pub self_signed: Cert,
    /// Another self-signed one (a different certificate for the same names).
    pub self_signed_2: Cert,
    /// Listed in `crl`.
    pub revoked: Cert,
    /// The intermediate's CRL (DER) revoking `revoked`.
    pub crl: Vec<u8>,
    /// Client certificates issued by the root.
    pub client_a: Cert,
    pub client_b: Cert,
}

/// `epoch` moved by `days` from now (rcgen's time type is not nameable
/// here without a dependency on `time`).
fn days_from_now<T: std::ops::Add<Duration, Output = T>>(epoch: T, days: i64) -> T {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    epoch + Duration::from_secs((now + days * 86400) as u64)
}

/// Parameters for a certificate valid from `from` to `to` days from now.
fn params(cn: &str, sans: &[&str], from: i64, to: i64, serial: u64) -> CertificateParams {
    let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(names).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name.push(DnType::OrganizationName, "psm tests");
    p.not_before = days_from_now(rcgen::date_time_ymd(1970, 1, 1), from);
    p.not_after = days_from_now(rcgen::date_time_ymd(1970, 1, 1), to);
    p.serial_number = Some(SerialNumber::from(serial));
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

fn ca_params(cn: &str, serial: u64, path_len: Option<u8>) -> CertificateParams {
    let mut p = params(cn, &[], -2, 3650, serial);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

fn leaf_params(cn: &str, sans: &[&str], from: i64, to: i64, serial: u64, client: bool) -> CertificateParams {
    let mut p = params(cn, sans, from, to, serial);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages =
        vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
    p
}

impl Ca {
    fn root(cn: &str, serial: u64) -> Ca {
        let key = KeyPair::generate().unwrap();
        let p = ca_params(cn, serial, None);
        let der = p.self_signed(&key).unwrap().der().to_vec();
        let cert = Cert { key: key.serialize_der(), chain: vec![der.clone()], der, serial };
        Ca { cert, below_root: Vec::new(), issuer: Issuer::new(p, key) }
    }

    fn sub(&self, cn: &str, serial: u64) -> Ca {
        let key = KeyPair::generate().unwrap();
        let p = ca_params(cn, serial, Some(0));
        let der = p.signed_by(&key, &self.issuer).unwrap().der().to_vec();
        let mut below_root = vec![der.clone()];
        below_root.extend(self.below_root.iter().cloned());
        let cert = Cert { key: key.serialize_der(), chain: below_root.clone(), der, serial };
        Ca { cert, below_root, issuer: Issuer::new(p, key) }
    }

    /// Issues a leaf; its chain is the leaf and the intermediates up to the root.
    fn issue(&self, p: CertificateParams, serial: u64) -> Cert {
        let key = KeyPair::generate().unwrap();
        let der = p.signed_by(&key, &self.issuer).unwrap().der().to_vec();
        let mut chain = vec![der.clone()];
        chain.extend(self.below_root.iter().cloned());
        Cert { der, key: key.serialize_der(), chain, serial }
    }

    /// A CRL (v2, with CRL number and authority key identifier) revoking
    /// the given serial numbers.
    pub fn crl(&self, revoked: &[u64]) -> Vec<u8> {
        let params = CertificateRevocationListParams {
            this_update: days_from_now(rcgen::date_time_ymd(1970, 1, 1), -1),
            next_update: days_from_now(rcgen::date_time_ymd(1970, 1, 1), 30),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: days_from_now(rcgen::date_time_ymd(1970, 1, 1), -1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().der().to_vec()
    }
}

fn self_signed(cn: &str, sans: &[&str], serial: u64) -> Cert {
    let key = KeyPair::generate().unwrap();
    let p = leaf_params(cn, sans, -1, 365, serial, false);
    let der = p.self_signed(&key).unwrap().der().to_vec();
    Cert { key: key.serialize_der(), chain: vec![der.clone()], der, serial }
}

pub const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

impl Pki {
    pub fn new() -> Pki {
        let root = Ca::root("psm test root", 1);
        let intermediate = root.sub("psm test intermediate", 2);
        let leaf = |cn: &str, sans: &[&str], from: i64, to: i64, serial: u64| {
            intermediate.issue(leaf_params(cn, sans, from, to, serial, false), serial)
        };
        let good = leaf("good.localhost", LOCAL_NAMES, -1, 365, 0x1001);
        let expired = leaf("expired.localhost", LOCAL_NAMES, -30, -1, 0x1002);
        let not_yet_valid = leaf("future.localhost", LOCAL_NAMES, 1, 30, 0x1003);
        let wrong_host = leaf("wrong.example.com", &["wrong.example.com"], -1, 365, 0x1004);
        let revoked = leaf("revoked.localhost", LOCAL_NAMES, -1, 365, 0x1005);
        let direct = root.issue(leaf_params("direct.localhost", LOCAL_NAMES, -1, 365, 0x1006, false), 0x1006);
        let stranger = Ca::root("unknown test root", 1);
        let unknown_issuer =
            stranger.issue(leaf_params("stranger.localhost", LOCAL_NAMES, -1, 365, 7, false), 7);
        let client_a = root.issue(leaf_params("psm client A", &[], -1, 365, 0x2001, true), 0x2001);
        let client_b = root.issue(leaf_params("psm client B", &[], -1, 365, 0x2002, true), 0x2002);
        let crl = intermediate.crl(&[revoked.serial]);
        Pki {
            good,
            direct,
            expired,
            not_yet_valid,
            wrong_host,
            unknown_issuer,
            self_signed: self_signed("self-signed.localhost", LOCAL_NAMES, 0x3001),
            self_signed_2: self_signed("self-signed-2.localhost", LOCAL_NAMES, 0x3002),
            revoked,
            crl,
            client_a,
            client_b,
            root,
            intermediate,
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

// ------------------------------------------------------ listener plumbing

type Handler = Arc<dyn Fn(TcpStream, &Tracker) + Send + Sync>;

/// The connections a listener serves, so that dropping it can end them.
pub struct Tracker {
    inner: Mutex<TrackerInner>,
}

struct TrackerInner {
    stopping: bool,
    streams: Vec<TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Tracker {
    /// Registers another socket (e.g. a proxy's upstream connection) to be
    /// shut down when the listener stops.
    pub fn track(&self, s: &TcpStream) {
        let mut t = self.inner.lock().unwrap();
        let clone = s.try_clone().unwrap();
        if t.stopping {
            let _ = clone.shutdown(Shutdown::Both);
        }
        t.streams.push(clone);
    }
}

/// A TCP listener on loopback whose accept loop runs `handler` for every
/// connection in its own thread. Dropping it stops accepting, shuts every
/// connection down and joins all threads.
pub struct Listener {
    pub addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    tracker: Arc<Tracker>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Listener {
    pub fn start(bind: &str, handler: Handler) -> io::Result<Listener> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let tracker = Arc::new(Tracker {
            inner: Mutex::new(TrackerInner { stopping: false, streams: Vec::new(), threads: Vec::new() }),
        });
        let accepted = Arc::new(AtomicU64::new(0));
        let (t, n) = (tracker.clone(), accepted.clone());
        let accept_thread = std::thread::spawn(move || {
            for s in listener.incoming() {
                let s = match s {
                    Ok(s) => s,
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                        panic!("test server out of descriptors: {e}")
                    }
                    Err(_) => continue,
                };
                let mut inner = t.inner.lock().unwrap();
                if inner.stopping {
                    break;
                }
                n.fetch_add(1, Ordering::SeqCst);
                inner.streams.push(s.try_clone().unwrap());
                let (h, t2) = (handler.clone(), t.clone());
                let th = std::thread::Builder::new()
                    .stack_size(512 * 1024)
                    .spawn(move || h(s, &t2))
                    .expect("spawning a test server thread");
                inner.threads.push(th);
            }
        });
        Ok(Listener { addr, accepted, tracker, accept_thread: Some(accept_thread) })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        {
            let mut inner = self.tracker.inner.lock().unwrap();
            inner.stopping = true;
            for s in &inner.streams {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        // Wake the accept loop; it sees `stopping` and ends.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        let threads = std::mem::take(&mut self.tracker.inner.lock().unwrap().threads);
        for t in threads {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------ TLS servers

/// What a TLS test server does once the handshake is done.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Echoes everything; answers close_notify with close_notify.
    Echo,
    /// Sends this many pseudo-random bytes, then close_notify.
    Stream(u64),
    /// Sends these bytes, then closes TCP without close_notify.
    DataThenTcpClose(Vec<u8>),
    /// Reads until the client's close_notify, then answers
    /// "got <n> bytes sha256 <hex>\n" and sends close_notify.
    ReplyAfterCloseNotify,
    /// Answers the ClientHello with plain text.
    Garbage,
    /// Reads and never answers.
    Silent,
}

/// How a TLS test server is set up.
#[derive(Clone)]
pub struct ServerSetup {
    pub cert: Cert,
    pub mode: Mode,
    pub tls12_only: bool,
    /// Require a client certificate issued by one of these (DER).
    pub client_auth_roots: Option<Vec<Vec<u8>>>,
    pub alpn: Vec<Vec<u8>>,
}

impl ServerSetup {
    pub fn new(cert: &Cert, mode: Mode) -> ServerSetup {
        ServerSetup { cert: cert.clone(), mode, tls12_only: false, client_auth_roots: None, alpn: Vec::new() }
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        let builder = if self.tls12_only {
            ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        } else {
            ServerConfig::builder()
        };
        let builder = match &self.client_auth_roots {
            Some(roots) => {
                let mut store = rustls::RootCertStore::empty();
                for r in roots {
                    store.add(CertificateDer::from(r.clone())).unwrap();
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder(Arc::new(store)).build().unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let chain = self.cert.chain.iter().map(|d| CertificateDer::from(d.clone())).collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.cert.key.clone()));
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = self.alpn.clone();
        Arc::new(config)
    }
}

/// What a TLS test server saw on one connection.
#[derive(Clone, Debug, Default)]
pub struct ConnRecord {
    pub handshake_done: bool,
    /// "TLSv1_3", "TLSv1_2".
    pub version: Option<String>,
    /// e.g. "X25519MLKEM768".
    pub group: Option<String>,
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    pub resumed: bool,
    pub client_cert: Option<Vec<u8>>,
    /// Plaintext bytes received and sent.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// SHA-256 of what the server sent (Stream mode) or received.
    pub sent_sha256: Option<String>,
    pub received_sha256: Option<String>,
    /// The client ended with close_notify (Some(true)), TCP EOF without it
    /// (Some(false)); None while open or after an error.
    pub peer_close_notify: Option<bool>,
    pub error: Option<String>,
    pub finished: bool,
}

type Records = Arc<Mutex<Vec<Arc<Mutex<ConnRecord>>>>>;

/// A rustls server on loopback.
pub struct TlsServer {
    config: Arc<Mutex<Arc<ServerConfig>>>,
    records: Records,
    /// Bytes written so far by Stream-mode connections (progress).
    pub stream_progress: Arc<AtomicU64>,
    pub listener: Listener,
}

impl TlsServer {
    pub fn start(setup: ServerSetup) -> TlsServer {
        TlsServer::start_on("127.0.0.1:0", setup).unwrap()
    }

    pub fn start_on(bind: &str, setup: ServerSetup) -> io::Result<TlsServer> {
        let config = Arc::new(Mutex::new(setup.config()));
        let records: Records = Arc::default();
        let progress = Arc::new(AtomicU64::new(0));
        let (c, r, p, mode) = (config.clone(), records.clone(), progress.clone(), setup.mode.clone());
        let handler: Handler = Arc::new(move |sock: TcpStream, _t: &Tracker| {
            let record = Arc::new(Mutex::new(ConnRecord::default()));
            r.lock().unwrap().push(record.clone());
            let config = c.lock().unwrap().clone();
            serve_tls(sock, config, &mode, &record, &p);
            record.lock().unwrap().finished = true;
        });
        let listener = Listener::start(bind, handler)?;
        Ok(TlsServer { config, records, stream_progress: progress, listener })
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// Serve later connections with another setup (certificate, versions, ...).
    pub fn set_setup(&self, setup: &ServerSetup) {
        *self.config.lock().unwrap() = setup.config();
    }

    /// Snapshots of every connection's record, in accept order.
    pub fn records(&self) -> Vec<ConnRecord> {
        self.records.lock().unwrap().iter().map(|r| r.lock().unwrap().clone()).collect()
    }

    /// The record of the `i`th connection once its handshake is over (the
    /// client may finish its side first, so this waits for the server's).
    pub fn record(&self, i: usize) -> ConnRecord {
        self.wait_record(i, "the test server finished the handshake", |r| {
            r.handshake_done || r.error.is_some() || r.finished
        })
    }

    /// Waits until connection `i` satisfies `cond`; returns its record.
    pub fn wait_record(&self, i: usize, what: &str, cond: impl Fn(&ConnRecord) -> bool) -> ConnRecord {
        super::wait_until(what, || self.records().get(i).is_some_and(&cond));
        self.records()[i].clone()
    }
}

/// Pseudo-random bytes (xorshift), deterministic per seed.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }

    pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        Noise::new(seed).fill(&mut v);
        v
    }
}

fn flush_tls(conn: &mut ServerConnection, sock: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

/// Encrypts and sends all of `data` (rustls takes a bounded amount at a time).
fn send_plain(conn: &mut ServerConnection, sock: &mut TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = conn.writer().write(data)?;
        data = &data[n..];
        flush_tls(conn, sock)?;
    }
    Ok(())
}

/// After our part is done: FIN, then read until the client closes, so the
/// kernel never answers late client bytes with a reset.
fn drain(conn: &mut ServerConnection, sock: &mut TcpStream) {
    let _ = sock.shutdown(Shutdown::Write);
    let mut buf = [0u8; 16384];
    loop {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // Keep rustls fed so it stays consistent; errors do not matter now.
                let _ = conn.read_tls(&mut &buf[..n]);
                let _ = conn.process_new_packets();
            }
        }
    }
}

fn serve_tls(
    mut sock: TcpStream,
    config: Arc<ServerConfig>,
    mode: &Mode,
    record: &Mutex<ConnRecord>,
    progress: &AtomicU64,
) {
    let _ = sock.set_nodelay(true);
    match mode {
        Mode::Garbage => {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf);
            let _ =
                sock.write_all(b"220 this is not TLS at all, just some text instead of a ServerHello\r\n");
            let mut conn = ServerConnection::new(config).unwrap();
            drain(&mut conn, &mut sock);
            return;
        }
        Mode::Silent => {
            let mut buf = [0u8; 4096];
            while matches!(sock.read(&mut buf), Ok(n) if n > 0) {}
            return;
        }
        _ => {}
    }
    let mut conn = ServerConnection::new(config).unwrap();
    if let Err(e) = handshake(&mut conn, &mut sock) {
        // The alert (if any) goes out before we close.
        let _ = flush_tls(&mut conn, &mut sock);
        record.lock().unwrap().error = Some(format!("handshake: {e}"));
        drain(&mut conn, &mut sock);
        return;
    }
    {
        let mut r = record.lock().unwrap();
        r.handshake_done = true;
        r.version = conn.protocol_version().map(|v| format!("{v:?}"));
        r.group = conn.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name()));
        r.sni = conn.server_name().map(str::to_string);
        r.alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        r.resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        r.client_cert = conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
    }
    let result = match mode {
        Mode::Echo => echo(&mut conn, &mut sock, record),
        Mode::Stream(n) => stream(&mut conn, &mut sock, *n, record, progress),
        Mode::DataThenTcpClose(data) => {
            let r = send_plain(&mut conn, &mut sock, data);
            record.lock().unwrap().bytes_out = data.len() as u64;
            r
        }
        Mode::ReplyAfterCloseNotify => reply_after_close_notify(&mut conn, &mut sock, record),
        Mode::Garbage | Mode::Silent => unreachable!(),
    };
    if let Err(e) = result {
        record.lock().unwrap().error = Some(e.to_string());
    }
    drain(&mut conn, &mut sock);
}

fn handshake(conn: &mut ServerConnection, sock: &mut TcpStream) -> io::Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    // Session tickets and the last flight.
    flush_tls(conn, sock)
}

/// Reads plaintext into `buf`: Ok(Some(n)) data, Ok(None) close_notify,
/// Err(UnexpectedEof) TCP closed without close_notify.
fn read_plain(
    conn: &mut ServerConnection,
    sock: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<Option<usize>> {
    loop {
        match conn.reader().read(buf) {
            Ok(0) => return Ok(None),
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let n = conn.read_tls(sock)?;
        let processed = conn.process_new_packets();
        // Alerts and key updates go out either way.
        flush_tls(conn, sock)?;
        processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if n == 0 {
            // TCP EOF: rustls reports it on the next reader() call.
            match conn.reader().read(buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(n)),
                Err(e) => return Err(e),
            }
        }
    }
}

fn note_close(record: &Mutex<ConnRecord>, r: &io::Result<Option<usize>>) {
    match r {
        Ok(None) => record.lock().unwrap().peer_close_notify = Some(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            record.lock().unwrap().peer_close_notify = Some(false)
        }
        _ => {}
    }
}

fn echo(conn: &mut ServerConnection, sock: &mut TcpStream, record: &Mutex<ConnRecord>) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut hash = Sha256::new();
    loop {
        let r = read_plain(conn, sock, &mut buf);
        note_close(record, &r);
        match r? {
            None => break,
            Some(n) => {
                hash.update(&buf[..n]);
                send_plain(conn, sock, &buf[..n])?;
                let mut rec = record.lock().unwrap();
                rec.bytes_in += n as u64;
                rec.bytes_out += n as u64;
            }
        }
    }
    record.lock().unwrap().received_sha256 = Some(hex::encode(hash.finalize()));
    conn.send_close_notify();
    flush_tls(conn, sock)
}

fn stream(
    conn: &mut ServerConnection,
    sock: &mut TcpStream,
    n: u64,
    record: &Mutex<ConnRecord>,
    progress: &AtomicU64,
) -> io::Result<()> {
    let mut noise = Noise::new(n);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        noise.fill(&mut buf[..k]);
        hash.update(&buf[..k]);
        send_plain(conn, sock, &buf[..k])?;
        left -= k as u64;
        progress.fetch_add(k as u64, Ordering::SeqCst);
        record.lock().unwrap().bytes_out += k as u64;
    }
    record.lock().unwrap().sent_sha256 = Some(hex::encode(hash.finalize()));
    conn.send_close_notify();
    flush_tls(conn, sock)
}

/// SHA-256 of the bytes `Mode::Stream(n)` sends.
pub fn stream_sha256(n: u64) -> String {
    let mut noise = Noise::new(n);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        noise.fill(&mut buf[..k]);
        hash.update(&buf[..k]);
        left -= k as u64;
    }
    hex::encode(hash.finalize())
}

fn reply_after_close_notify(
    conn: &mut ServerConnection,
    sock: &mut TcpStream,
    record: &Mutex<ConnRecord>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut hash = Sha256::new();
    let mut total = 0u64;
    loop {
        let r = read_plain(conn, sock, &mut buf);
        note_close(record, &r);
        match r? {
            None => break,
            Some(n) => {
                hash.update(&buf[..n]);
                total += n as u64;
            }
        }
    }
    let sha = hex::encode(hash.finalize());
    let reply = format!("got {total} bytes sha256 {sha}\n");
    {
        let mut rec = record.lock().unwrap();
        rec.bytes_in = total;
        rec.received_sha256 = Some(sha);
        rec.bytes_out = reply.len() as u64;
    }
    send_plain(conn, sock, reply.as_bytes())?;
    conn.send_close_notify();
    flush_tls(conn, sock)
}

// -------------------------------------------------------------- STARTTLS

/// A tiny SMTP-like server: "220 ready", then "STARTTLS" -> "220 go ahead"
/// and TLS (echo); any other line -> "500 unknown command".
pub struct StartTlsServer {
    pub commands: Arc<Mutex<Vec<String>>>,
    records: Records,
    pub listener: Listener,
}

fn read_line(sock: &mut TcpStream) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        // One byte at a time: nothing after the line may be consumed.
        if sock.read(&mut b)? == 0 {
            return Ok(None);
        }
        line.push(b[0]);
        if line.ends_with(b"\r\n") || line.len() > 8192 {
            return Ok(Some(String::from_utf8_lossy(&line).trim_end().to_string()));
        }
    }
}

impl StartTlsServer {
    pub fn start(cert: &Cert) -> StartTlsServer {
        let config = ServerSetup::new(cert, Mode::Echo).config();
        let commands: Arc<Mutex<Vec<String>>> = Arc::default();
        let records: Records = Arc::default();
        let (cmds, recs) = (commands.clone(), records.clone());
        let handler: Handler = Arc::new(move |mut sock: TcpStream, _t: &Tracker| {
            let _ = sock.set_nodelay(true);
            if sock.write_all(b"220 ready\r\n").is_err() {
                return;
            }
            while let Ok(Some(line)) = read_line(&mut sock) {
                cmds.lock().unwrap().push(line.clone());
                if line.eq_ignore_ascii_case("STARTTLS") {
                    if sock.write_all(b"220 go ahead\r\n").is_err() {
                        return;
                    }
                    let record = Arc::new(Mutex::new(ConnRecord::default()));
                    recs.lock().unwrap().push(record.clone());
                    serve_tls(sock, config.clone(), &Mode::Echo, &record, &AtomicU64::new(0));
                    record.lock().unwrap().finished = true;
                    return;
                }
                if sock.write_all(b"500 unknown command\r\n").is_err() {
                    return;
                }
            }
        });
        StartTlsServer { commands, records, listener: Listener::start("127.0.0.1:0", handler).unwrap() }
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// What the TLS part of each upgraded connection saw.
    pub fn records(&self) -> Vec<ConnRecord> {
        self.records.lock().unwrap().iter().map(|r| r.lock().unwrap().clone()).collect()
    }
}

// ------------------------------------------------------ HTTP CONNECT proxy

/// An HTTP proxy that only does CONNECT.
pub struct ConnectProxy {
    /// The request lines it received ("CONNECT host:port HTTP/1.1").
    pub requests: Arc<Mutex<Vec<String>>>,
    pub listener: Listener,
}

impl ConnectProxy {
    /// `refuse`: answer every CONNECT with 403 Forbidden.
    pub fn start(refuse: bool) -> ConnectProxy {
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let reqs = requests.clone();
        let handler: Handler = Arc::new(move |mut client: TcpStream, tracker: &Tracker| {
            let _ = client.set_nodelay(true);
            let Ok(Some(request)) = read_line(&mut client) else { return };
            reqs.lock().unwrap().push(request.clone());
            // The header lines, up to the empty one.
            loop {
                match read_line(&mut client) {
                    Ok(Some(l)) if l.is_empty() => break,
                    Ok(Some(_)) => {}
                    _ => return,
                }
            }
            let mut parts = request.split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if refuse || method != "CONNECT" {
                let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
                let _ = client.shutdown(Shutdown::Write);
                let mut sink = [0u8; 1024];
                while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
            let upstream = match TcpStream::connect(target) {
                Ok(u) => u,
                Err(_) => {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
            };
            let _ = upstream.set_nodelay(true);
            tracker.track(&upstream);
            if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
                return;
            }
            let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::scope(|s| {
                s.spawn(move || pipe(c2, u2));
                pipe(upstream, client);
            });
        });
        ConnectProxy { requests, listener: Listener::start("127.0.0.1:0", handler).unwrap() }
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }
}

/// Copies `from` to `to` until EOF, then half-closes `to`.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A port on 127.0.0.1 that is bound but not listening: connecting to it is
/// refused, and nobody else can take it while this lives.
pub struct RefusingPort {
    _fd: std::os::fd::OwnedFd,
    pub port: u16,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain socket calls on a descriptor we own and local structs.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(raw >= 0, "socket: {}", io::Error::last_os_error());
            let fd = std::os::fd::OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let r =
                libc::bind(fd.as_raw_fd(), &addr as *const libc::sockaddr_in as *const libc::sockaddr, len);
            assert_eq!(r, 0, "bind: {}", io::Error::last_os_error());
            let mut len = len;
            let r = libc::getsockname(
                fd.as_raw_fd(),
                &mut addr as *mut libc::sockaddr_in as *mut libc::sockaddr,
                &mut len,
            );
            assert_eq!(r, 0, "getsockname: {}", io::Error::last_os_error());
            RefusingPort { port: u16::from_be(addr.sin_port), _fd: fd }
        }
    }
}

impl Default for RefusingPort {
    fn default() -> Self {
        RefusingPort::new()
    }
}

/// A rustls client configuration trusting only `root` (for talking to psmd
/// acting as a TLS server).
pub fn client_config(root: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    store.add(CertificateDer::from(root.to_vec())).unwrap();
    Arc::new(rustls::ClientConfig::builder().with_root_certificates(store).with_no_client_auth())
}
