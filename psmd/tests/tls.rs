//! TLS data channels end to end, against real peers: rustls servers with a
//! test PKI made at run time (good, expired, not yet valid, wrong host,
//! unknown issuer, self-signed, revoked, missing intermediate), client
//! certificates, trust prompts, close semantics, STARTTLS, an HTTP CONNECT
//! proxy, psmd as a TLS server, resumption, back-pressure and 1000 channels.

mod common;

use common::tls::{
    ConnectProxy, Mode, Noise, Pki, RefusingPort, ServerSetup, StartTlsServer, TlsServer, client_config,
    sha256_hex, stream_sha256,
};
use common::{Daemon, PATIENCE, wait_until};
use psm::client::SslChannel;
use psm::proto::{Prompt, PromptKind, SslOpts, TLS_1_3, TRUST_CA_TLS_SERVER};
use psm::{Client, Code};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// A psmd whose only trust anchor is the test root.
struct Env {
    d: Daemon,
    c: Client,
    pki: Pki,
}

fn env() -> Env {
    let d = Daemon::start();
    let c = d.client();
    let pki = Pki::new();
    c.cert_import(&pki.root.cert.pem(), Some("test-root"), TRUST_CA_TLS_SERVER).unwrap();
    Env { d, c, pki }
}

fn opts() -> SslOpts {
    SslOpts::default()
}

fn echo_server(cert: &common::tls::Cert) -> TlsServer {
    TlsServer::start(ServerSetup::new(cert, Mode::Echo))
}

fn info(c: &Client, ch: &SslChannel) -> Value {
    let json = c.ssl_info_json(ch).unwrap();
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("ssl_info_json is not JSON ({e}): {json}"))
}

/// Waits until the channel's info satisfies `cond` (psmd updates it as
/// events arrive); panics with the last info after the fixture's patience.
fn wait_info(c: &Client, ch: &SslChannel, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let last = info(c, ch);
        if cond(&last) {
            return last;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}; info: {last:#}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The plaintext side as a std stream (reads and writes time out after the
/// fixtures' patience: a hang guard).
fn stream(ch: &SslChannel) -> UnixStream {
    let s = ch.stream().unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads until EOF (Ok) or an error (returned with the data read before it).
fn read_all(s: &mut UnixStream) -> (Vec<u8>, io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (out, Err(e)),
        }
    }
}

/// Sends `data` through an echo server (writing from a second thread while
/// reading) and checks what comes back, by SHA-256.
fn echo_check(ch: &SslChannel, data: &[u8]) {
    let mut reader = stream(ch);
    let mut writer = stream(ch);
    let got = std::thread::scope(|s| {
        let w = s.spawn(move || {
            for chunk in data.chunks(16 * 1024 + 7) {
                writer.write_all(chunk).unwrap();
            }
        });
        let mut got = vec![0u8; data.len()];
        reader.read_exact(&mut got).expect("the echo came back");
        w.join().unwrap();
        got
    });
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256_hex(&got), sha256_hex(data), "the echo differs from what was sent");
}

fn connect_err(c: &Client, host: &str, port: u16, opts: &SslOpts) -> psm::Error {
    match c.ssl_connect(host, port, opts) {
        Ok(ch) => panic!("ssl_connect({host}, {port}) succeeded; info: {:#}", info(c, &ch)),
        Err(e) => e,
    }
}

/// Installs a prompt handler that answers each prompt with `answer(prompt)`
/// (None cancels) and records it.
struct Prompts {
    seen: Arc<Mutex<Vec<Prompt>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Prompts {
    fn install(c: &Client, answer: impl Fn(&Prompt) -> Option<String> + Send + Sync + 'static) -> Prompts {
        let seen: Arc<Mutex<Vec<Prompt>>> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, e, c2) = (seen.clone(), errors.clone(), c.clone());
        c.set_prompt_handler(Some(Arc::new(move |p: Prompt| {
            let a = answer(&p);
            let id = p.id;
            s.lock().unwrap().push(p);
            if let Err(err) = c2.prompt_answer(id, a.as_deref()) {
                e.lock().unwrap().push(err.to_string());
            }
        })))
        .unwrap();
        Prompts { seen, errors }
    }

    fn seen(&self) -> Vec<Prompt> {
        let errors = self.errors.lock().unwrap();
        assert!(errors.is_empty(), "prompt_answer failed: {errors:?}");
        self.seen.lock().unwrap().clone()
    }
}

fn details(p: &Prompt) -> Value {
    serde_json::from_str(&p.details_json)
        .unwrap_or_else(|e| panic!("details_json is not JSON ({e}): {}", p.details_json))
}

/// A server-trust prompt about `cert` on localhost:`port` failing with `code`.
fn assert_trust_prompt(p: &Prompt, port: u16, code: Code, cert: &common::tls::Cert) {
    assert_eq!(p.kind, PromptKind::ServerTrust, "{p:?}");
    assert_eq!(p.choices, vec!["once", "always", "reject"], "{p:?}");
    let d = details(p);
    assert_eq!(d["host"], "localhost", "{d:#}");
    assert_eq!(d["port"], port, "{d:#}");
    assert_eq!(d["result"], format!("{code:?}"), "{d:#}");
    assert_eq!(d["sha256"], cert.sha256_hex(), "{d:#}");
    assert_eq!(d["chain"][0]["sha256"], cert.sha256_hex(), "{d:#}");
    assert!(d["errors"].is_array(), "{d:#}");
}

/// Imports a client certificate with its key (PKCS#12).
fn import_client(c: &Client, cert: &common::tls::Cert, name: Option<&str>) {
    let got = c.pkcs12_import(&cert.pkcs12(name, "pw"), Some("pw")).unwrap();
    assert_eq!(got[0].sha256_hex, cert.sha256_hex());
    assert!(got[0].has_private_key);
}

fn client_auth_server(pki: &Pki) -> TlsServer {
    let mut setup = ServerSetup::new(&pki.good, Mode::Echo);
    setup.client_auth_roots = Some(vec![pki.root.cert.der.clone()]);
    TlsServer::start(setup)
}

// ------------------------------------------------------------ good chain

#[test]
fn good_chain_connects_with_tls13_x25519mlkem768_and_reports_the_chain() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let i = info(&e.c, &ch);
    assert_eq!(i["channel"], ch.id(), "{i:#}");
    assert_eq!(i["mode"], "client", "{i:#}");
    assert_eq!(i["server_name"], "localhost", "{i:#}");
    assert_eq!(i["port"], server.port(), "{i:#}");
    assert_eq!(i["version"], "TLSv1.3", "{i:#}");
    assert!(i["cipher_suite"].as_str().is_some_and(|s| s.starts_with("TLS13_")), "{i:#}");
    assert_eq!(i["key_exchange_group"], "X25519MLKEM768", "{i:#}");
    assert_eq!(i["alpn"], Value::Null, "{i:#}");
    assert_eq!(i["resumed"], false, "{i:#}");
    assert_eq!(i["client_certificate"], Value::Null, "{i:#}");
    assert_eq!(i["verification"]["result"], "PSM_OK", "{i:#}");
    assert_eq!(i["verification"]["override"], Value::Null, "{i:#}");
    assert_eq!(i["state"], "open", "{i:#}");
    assert_eq!(i["error"], Value::Null, "{i:#}");
    let peers = i["peer_certificates"].as_array().expect("peer_certificates");
    let want: Vec<String> = e.pki.good.chain.iter().map(|d| sha256_hex(d)).collect();
    let got: Vec<&str> = peers.iter().map(|p| p["sha256"].as_str().unwrap()).collect();
    assert_eq!(got, want, "leaf then intermediate");
    assert!(peers[0]["subject"].as_str().unwrap().contains("good.localhost"), "{i:#}");
    assert!(peers[0]["issuer"].as_str().unwrap().contains("psm test intermediate"), "{i:#}");
    assert!(peers[1]["subject"].as_str().unwrap().contains("psm test intermediate"), "{i:#}");

    // The server agrees, and got SNI.
    let r = server.record(0);
    assert!(r.handshake_done, "{r:?}");
    assert_eq!(r.version.as_deref(), Some("TLSv1_3"));
    assert_eq!(r.group.as_deref(), Some("X25519MLKEM768"));
    assert_eq!(r.sni.as_deref(), Some("localhost"));
    assert_eq!(r.client_cert, None);
}

#[test]
fn echo_round_trip_preserves_every_byte_and_counts_them() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let data = Noise::bytes(42, 3 * MIB as usize + 12345);
    echo_check(&ch, &data);
    echo_check(&ch, b"x");
    let total = data.len() as u64 + 1;
    let i = info(&e.c, &ch);
    assert!(i["bytes_out"].as_u64().unwrap() >= total, "{i:#}");
    assert!(i["bytes_in"].as_u64().unwrap() >= total, "{i:#}");
    let r = server.record(0);
    assert_eq!(r.bytes_in, total, "the server received exactly what the app wrote");
}

#[test]
fn ssl_peer_certs_returns_the_presented_chain_leaf_first() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let certs = e.c.ssl_peer_certs(&ch).unwrap();
    let ders: Vec<Vec<u8>> = certs.iter().map(|c| c.der.clone()).collect();
    assert_eq!(ders, e.pki.good.chain);
    assert!(certs[0].subject.contains("good.localhost"), "{:?}", certs[0].subject);
}

#[test]
fn alpn_choice_of_the_server_is_reported() {
    let e = env();
    let mut setup = ServerSetup::new(&e.pki.good, Mode::Echo);
    setup.alpn = vec![b"http/1.1".to_vec()];
    let server = TlsServer::start(setup);
    let mut o = opts();
    o.alpn = vec![b"h2".to_vec().into(), b"http/1.1".to_vec().into()];
    let ch = e.c.ssl_connect("localhost", server.port(), &o).unwrap();
    let i = info(&e.c, &ch);
    assert_eq!(i["alpn"], "http/1.1", "{i:#}");
    assert_eq!(server.record(0).alpn.as_deref(), Some(&b"http/1.1"[..]));
}

// ------------------------------------------------------ certificate errors

#[test]
fn expired_certificate_fails_with_cert_expired() {
    let e = env();
    let server = echo_server(&e.pki.expired);
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_EXPIRED, "{err}");
}

#[test]
fn not_yet_valid_certificate_fails_with_cert_not_yet_valid() {
    let e = env();
    let server = echo_server(&e.pki.not_yet_valid);
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_NOT_YET_VALID, "{err}");
}

#[test]
fn certificate_for_another_host_fails_with_name_mismatch() {
    let e = env();
    let server = echo_server(&e.pki.wrong_host);
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_NAME_MISMATCH, "{err}");
}

#[test]
fn certificate_from_an_unknown_ca_fails_with_unknown_issuer() {
    let e = env();
    let server = echo_server(&e.pki.unknown_issuer);
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_UNKNOWN_ISSUER, "{err}");
}

#[test]
fn self_signed_certificate_fails_with_unknown_issuer() {
    let e = env();
    let server = echo_server(&e.pki.self_signed);
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_UNKNOWN_ISSUER, "{err}");
}

#[test]
fn server_sending_only_its_leaf_fails_with_unknown_issuer() {
    let e = env();
    let server = echo_server(&e.pki.good.leaf_only());
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_UNKNOWN_ISSUER, "{err}");
}

#[test]
fn certificate_revoked_by_an_imported_crl_fails_with_revoked() {
    let e = env();
    let revoked = echo_server(&e.pki.revoked);
    let good = echo_server(&e.pki.good);
    // Before the CRL is known the certificate is fine.
    drop(e.c.ssl_connect("localhost", revoked.port(), &opts()).unwrap());
    e.c.crl_import(&e.pki.crl).unwrap();
    let err = connect_err(&e.c, "localhost", revoked.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_REVOKED, "{err}");
    // The CRL revokes that certificate only.
    let ch = e.c.ssl_connect("localhost", good.port(), &opts()).unwrap();
    assert_eq!(info(&e.c, &ch)["verification"]["result"], "PSM_OK");
}

#[test]
fn revoked_certificate_is_never_offered_for_override() {
    let e = env();
    let server = echo_server(&e.pki.revoked);
    e.c.crl_import(&e.pki.crl).unwrap();
    let prompts = Prompts::install(&e.c, |_| Some("always".into()));
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_REVOKED, "{err}");
    assert!(prompts.seen().is_empty(), "no prompt for a revoked certificate: {:?}", prompts.seen());
}

// ------------------------------------------------------------ trust prompts

#[test]
fn trust_prompt_once_admits_this_connection_only() {
    let e = env();
    let server = echo_server(&e.pki.self_signed);
    let prompts = Prompts::install(&e.c, |_| Some("once".into()));
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let seen = prompts.seen();
    assert_eq!(seen.len(), 1);
    assert_trust_prompt(&seen[0], server.port(), Code::PSM_ERR_CERT_UNKNOWN_ISSUER, &e.pki.self_signed);
    let i = info(&e.c, &ch);
    assert_eq!(i["verification"]["result"], "PSM_ERR_CERT_UNKNOWN_ISSUER", "{i:#}");
    assert_eq!(i["verification"]["override"], "once", "{i:#}");
    echo_check(&ch, b"accepted once");
    drop(ch);

    // The next connection asks again.
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let i = info(&e.c, &ch);
    assert_eq!(prompts.seen().len(), 2, "'once' is not remembered; info: {i:#}");
    assert_eq!(i["verification"]["override"], "once", "{i:#}");
}

#[test]
fn trust_prompt_always_is_remembered_for_that_host_port_and_certificate() {
    let e = env();
    let a = echo_server(&e.pki.self_signed);
    let b = echo_server(&e.pki.self_signed);
    let prompts = Prompts::install(&e.c, |_| Some("always".into()));
    let ch = e.c.ssl_connect("localhost", a.port(), &opts()).unwrap();
    assert_eq!(prompts.seen().len(), 1);
    assert_trust_prompt(&prompts.seen()[0], a.port(), Code::PSM_ERR_CERT_UNKNOWN_ISSUER, &e.pki.self_signed);
    assert_eq!(info(&e.c, &ch)["verification"]["override"], "always");
    drop(ch);

    // Again: no question, the stored override is used.
    let ch = e.c.ssl_connect("localhost", a.port(), &opts()).unwrap();
    let i = info(&e.c, &ch);
    assert_eq!(prompts.seen().len(), 1, "no second prompt; info: {i:#}");
    assert_eq!(i["verification"]["result"], "PSM_ERR_CERT_UNKNOWN_ISSUER", "{i:#}");
    assert_eq!(i["verification"]["override"], "always", "{i:#}");
    echo_check(&ch, b"remembered");
    drop(ch);

    // It is stored: another application (without a prompt handler) gets it too.
    let other = e.d.client();
    let ch = other.ssl_connect("localhost", a.port(), &opts()).unwrap();
    let i = info(&other, &ch);
    assert_eq!(i["verification"]["override"], "always", "{i:#}");
    // Checked again, not resumed: an override is bound to its port, and a
    // shared session could be resumed on another port of the same server.
    assert_eq!(i["resumed"], false, "{i:#}");
    drop(ch);

    // The same certificate on another port asks again.
    let ch = e.c.ssl_connect("localhost", b.port(), &opts()).unwrap();
    let seen = prompts.seen();
    assert_eq!(seen.len(), 2, "a different port prompts again; info: {:#}", info(&e.c, &ch));
    assert_trust_prompt(&seen[1], b.port(), Code::PSM_ERR_CERT_UNKNOWN_ISSUER, &e.pki.self_signed);
    drop(ch);

    // Another certificate on the same port asks again.
    a.set_setup(&ServerSetup::new(&e.pki.self_signed_2, Mode::Echo));
    let ch = e.c.ssl_connect("localhost", a.port(), &opts()).unwrap();
    let seen = prompts.seen();
    assert_eq!(seen.len(), 3, "a different certificate prompts again; info: {:#}", info(&e.c, &ch));
    assert_trust_prompt(&seen[2], a.port(), Code::PSM_ERR_CERT_UNKNOWN_ISSUER, &e.pki.self_signed_2);
    drop(ch);
}

#[test]
fn trust_prompt_reject_fails_with_the_certificate_error() {
    let e = env();
    let server = echo_server(&e.pki.expired);
    let prompts = Prompts::install(&e.c, |_| Some("reject".into()));
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_EXPIRED, "{err}");
    let seen = prompts.seen();
    assert_eq!(seen.len(), 1);
    assert_trust_prompt(&seen[0], server.port(), Code::PSM_ERR_CERT_EXPIRED, &e.pki.expired);
}

#[test]
fn trust_prompt_cancelled_fails_with_user_cancelled() {
    let e = env();
    let server = echo_server(&e.pki.wrong_host);
    let prompts = Prompts::install(&e.c, |_| None);
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_USER_CANCELLED, "{err}");
    let seen = prompts.seen();
    assert_eq!(seen.len(), 1);
    assert_trust_prompt(&seen[0], server.port(), Code::PSM_ERR_CERT_NAME_MISMATCH, &e.pki.wrong_host);
}

// ------------------------------------------------------- client certificates

#[test]
fn client_certificate_named_in_the_options_is_presented() {
    let e = env();
    let server = client_auth_server(&e.pki);
    import_client(&e.c, &e.pki.client_a, Some("client-a"));
    import_client(&e.c, &e.pki.client_b, None);
    let mut o = opts();
    o.client_cert = Some("client-a".into());
    let ch = e.c.ssl_connect("localhost", server.port(), &o).unwrap();
    echo_check(&ch, b"with a client certificate");
    assert_eq!(server.record(0).client_cert.as_deref(), Some(&e.pki.client_a.der[..]), "the server saw A");
    let i = info(&e.c, &ch);
    assert_eq!(i["client_certificate"]["sha256"], e.pki.client_a.sha256_hex(), "{i:#}");
    drop(ch);

    // By fingerprint, the other one.
    o.client_cert = Some(e.pki.client_b.psm_name());
    let ch = e.c.ssl_connect("localhost", server.port(), &o).unwrap();
    echo_check(&ch, b"B");
    let r = server.record(1);
    let saw = |der: &Option<Vec<u8>>| der.as_deref().map(sha256_hex);
    assert_eq!(
        saw(&r.client_cert),
        Some(e.pki.client_b.sha256_hex()),
        "the server saw B (A is {}); server: {r:?}; info: {:#}",
        e.pki.client_a.sha256_hex(),
        info(&e.c, &ch)
    );
}

#[test]
fn client_auth_required_without_a_client_certificate_fails_with_the_servers_alert() {
    let e = env();
    let server = client_auth_server(&e.pki);
    // TLS 1.3: the server may reject the missing certificate after the
    // client's handshake finished; then the first read resets.
    match e.c.ssl_connect("localhost", server.port(), &opts()) {
        Err(err) => assert_eq!(err.code, Code::PSM_ERR_TLS_ALERT, "{err}"),
        Ok(ch) => {
            let (data, res) = read_all(&mut stream(&ch));
            assert!(data.is_empty());
            let err = res.expect_err("a reset, not a clean EOF");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
            let i = wait_info(&e.c, &ch, "the channel failed", |i| i["state"] == "failed");
            assert_eq!(i["error"]["result"], "PSM_ERR_TLS_ALERT", "{i:#}");
            assert!(i["client_certificate"].is_null(), "{i:#}");
        }
    }
    let r = server.wait_record(0, "the server finished", |r| r.finished);
    assert!(r.client_cert.is_none() && r.error.is_some(), "{r:?}");
}

#[test]
fn several_matching_client_certificates_are_chosen_by_the_prompt_handler() {
    let e = env();
    let server = client_auth_server(&e.pki);
    import_client(&e.c, &e.pki.client_a, None);
    import_client(&e.c, &e.pki.client_b, None);
    let b = e.pki.client_b.psm_name();
    let choice = b.clone();
    let prompts = Prompts::install(&e.c, move |_| Some(choice.clone()));
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    echo_check(&ch, b"chosen");
    let seen = prompts.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].kind, PromptKind::ClientCert, "{:?}", seen[0]);
    let mut choices = seen[0].choices.clone();
    choices.sort();
    let mut want = vec![e.pki.client_a.psm_name(), b];
    want.sort();
    assert_eq!(choices, want);
    assert_eq!(server.record(0).client_cert.as_deref(), Some(&e.pki.client_b.der[..]), "the server saw B");
    assert_eq!(info(&e.c, &ch)["client_certificate"]["sha256"], e.pki.client_b.sha256_hex());
}

#[test]
fn several_matching_client_certificates_without_a_handler_fail_with_no_ui() {
    let e = env();
    let server = client_auth_server(&e.pki);
    import_client(&e.c, &e.pki.client_a, None);
    import_client(&e.c, &e.pki.client_b, None);
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_NO_UI, "{err}");
}

// ----------------------------------------------------------- versions, junk

#[test]
fn tls12_only_server_is_reached_with_tls12() {
    let e = env();
    let mut setup = ServerSetup::new(&e.pki.good, Mode::Echo);
    setup.tls12_only = true;
    let server = TlsServer::start(setup);
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let i = info(&e.c, &ch);
    assert_eq!(i["version"], "TLSv1.2", "{i:#}");
    assert!(i["cipher_suite"].as_str().is_some_and(|s| s.starts_with("TLS_ECDHE_")), "{i:#}");
    assert_eq!(i["key_exchange_group"], "X25519", "{i:#}");
    assert_eq!(i["verification"]["result"], "PSM_OK", "{i:#}");
    echo_check(&ch, b"over TLS 1.2");
    assert_eq!(server.record(0).version.as_deref(), Some("TLSv1_2"));
}

#[test]
fn min_version_tls13_against_a_tls12_only_server_fails_with_its_alert() {
    let e = env();
    let mut setup = ServerSetup::new(&e.pki.good, Mode::Echo);
    setup.tls12_only = true;
    let server = TlsServer::start(setup);
    let mut o = opts();
    o.min_version = TLS_1_3;
    let err = connect_err(&e.c, "localhost", server.port(), &o);
    // rustls answers a TLS 1.3-only ClientHello with a protocol_version alert.
    assert_eq!(err.code, Code::PSM_ERR_TLS_ALERT, "{err}");
    let m = err.message.to_lowercase().replace(['_', ' '], "");
    assert!(m.contains("protocolversion"), "the message names the alert: {}", err.message);
}

#[test]
fn server_answering_with_garbage_fails_with_tls_handshake() {
    let e = env();
    let server = TlsServer::start(ServerSetup::new(&e.pki.good, Mode::Garbage));
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_TLS_HANDSHAKE, "{err}");
}

#[test]
fn server_that_never_answers_times_out() {
    let e = env();
    let server = TlsServer::start(ServerSetup::new(&e.pki.good, Mode::Silent));
    let mut o = opts();
    o.timeout_ms = 500;
    let err = connect_err(&e.c, "localhost", server.port(), &o);
    assert_eq!(err.code, Code::PSM_ERR_TIMEOUT, "{err}");
}

/// A server that answers a byte at a time, forever: each read succeeds in
/// time, so only a limit on the whole handshake stops it.
#[test]
fn server_trickling_its_answer_times_out_as_a_whole() {
    let e = env();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut hello = [0u8; 4096];
        let _ = sock.read(&mut hello);
        // A handshake record header announcing 16 KiB, then its body slowly.
        if sock.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]).is_err() {
            return;
        }
        while !stop2.load(Ordering::SeqCst) && sock.write_all(&[0x02]).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut o = opts();
    o.timeout_ms = 500;
    let err = connect_err(&e.c, "localhost", port, &o);
    assert_eq!(err.code, Code::PSM_ERR_TIMEOUT, "{err}");
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
}

// ----------------------------------------------------------- close semantics

#[test]
fn server_close_notify_gives_the_app_eof_after_all_data() {
    let e = env();
    let n = 300_000;
    let server = TlsServer::start(ServerSetup::new(&e.pki.good, Mode::Stream(n)));
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let (data, res) = read_all(&mut stream(&ch));
    res.expect("a clean EOF");
    assert_eq!(data.len() as u64, n);
    assert_eq!(sha256_hex(&data), stream_sha256(n));
    let i = wait_info(&e.c, &ch, "the channel is closed", |i| i["state"] != "open");
    assert_eq!(i["state"], "closed", "{i:#}");
    assert_eq!(i["error"], Value::Null, "{i:#}");
}

#[test]
fn tcp_close_without_close_notify_resets_the_app_after_the_data() {
    let e = env();
    let sent = Noise::bytes(7, 100_000);
    let server = TlsServer::start(ServerSetup::new(&e.pki.good, Mode::DataThenTcpClose(sent.clone())));
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let (data, res) = read_all(&mut stream(&ch));
    assert_eq!(
        data.len(),
        sent.len(),
        "all data arrives before the error ({res:?}); info: {:#}",
        info(&e.c, &ch)
    );
    assert_eq!(sha256_hex(&data), sha256_hex(&sent));
    let err = res.expect_err("a truncation must not look like a clean EOF");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    let i = wait_info(&e.c, &ch, "the channel is marked truncated", |i| i["state"] != "open");
    assert_eq!(i["state"], "truncated", "{i:#}");
    assert_eq!(i["error"]["result"], "PSM_ERR_TLS_TRUNCATED", "{i:#}");
}

#[test]
fn app_shutdown_write_sends_close_notify_and_the_reply_still_arrives() {
    let e = env();
    let server = TlsServer::start(ServerSetup::new(&e.pki.good, Mode::ReplyAfterCloseNotify));
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let mut s = stream(&ch);
    let data = Noise::bytes(9, 300_000);
    s.write_all(&data).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (reply, res) = read_all(&mut s);
    res.expect("the server's close_notify gives a clean EOF");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        format!("got {} bytes sha256 {}\n", data.len(), sha256_hex(&data))
    );
    let r = server.wait_record(0, "the server finished", |r| r.finished);
    assert_eq!(r.peer_close_notify, Some(true), "the server saw close_notify: {r:?}");
}

#[test]
fn dropping_the_channel_sends_close_notify() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    echo_check(&ch, b"before the close");
    drop(ch);
    let r = server.wait_record(0, "the server saw the end", |r| r.finished);
    assert_eq!(r.peer_close_notify, Some(true), "{r:?}");
}

/// An application that goes away without ending its output (it still
/// holds the channel, it never shut it down) must not make the server
/// believe the stream was complete: no close_notify, a truncation.
#[test]
fn an_application_that_disconnects_mid_stream_does_not_send_close_notify() {
    let e = env();
    let server = echo_server(&e.pki.good);
    // A process that opens a channel, writes, and exits without a word.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "abandoning_child", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env("PSM_TEST_ABANDON_SOCKET", e.d.socket())
        .env("PSM_TEST_ABANDON_PORT", server.port().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "the child failed: {status}");
    let r = server.wait_record(0, "the server saw the end", |r| r.finished);
    assert_eq!(r.peer_close_notify, Some(false), "{r:?}");
}

/// The child of the test above (ignored unless run by it).
#[test]
#[ignore]
fn abandoning_child() {
    let (Some(socket), Some(port)) =
        (std::env::var_os("PSM_TEST_ABANDON_SOCKET"), std::env::var("PSM_TEST_ABANDON_PORT").ok())
    else {
        return;
    };
    let c =
        Client::connect_to(std::path::Path::new(&socket), "abandoner", psm::ConnectFlags::default()).unwrap();
    let ch = c.ssl_connect("localhost", port.parse().unwrap(), &opts()).unwrap();
    echo_check(&ch, b"half of a message");
    // Exits with the channel open: no shutdown, no ChannelClose.
    std::process::exit(0);
}

// ------------------------------------------------------- other ways to open

#[test]
fn ssl_wrap_fd_runs_tls_over_a_socket_the_app_connected() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let tcp = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let fd = OwnedFd::from(tcp);
    let ch = e.c.ssl_wrap_fd(&fd, "localhost", &opts()).unwrap();
    drop(fd);
    echo_check(&ch, &Noise::bytes(3, 200_000));
    let i = info(&e.c, &ch);
    assert_eq!(i["server_name"], "localhost", "{i:#}");
    assert_eq!(i["verification"]["result"], "PSM_OK", "{i:#}");
    assert_eq!(server.record(0).sni.as_deref(), Some("localhost"));
}

#[test]
fn ssl_accept_fd_serves_tls_with_a_stored_certificate_and_key() {
    let e = env();
    let got = e.c.pkcs12_import(&e.pki.direct.pkcs12(Some("my server"), "pw"), Some("pw")).unwrap();
    assert_eq!(got[0].sha256_hex, e.pki.direct.sha256_hex());
    assert!(got[0].has_private_key);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Noise::bytes(11, MIB as usize);
    let down = Noise::bytes(12, MIB as usize);
    let config = client_config(&e.pki.root.cert.der);
    let (up2, down_len) = (up.clone(), down.len());
    // An in-test rustls client.
    let client = std::thread::spawn(move || -> Result<(Vec<u8>, String, Vec<u8>), String> {
        let sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(PATIENCE)).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(&up2).map_err(|e| format!("writing: {e}"))?;
        let mut got = vec![0u8; down_len];
        tls.read_exact(&mut got).map_err(|e| format!("reading: {e}"))?;
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).map_err(|e| format!("waiting for close_notify: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} bytes more than expected", rest.len()));
        }
        let version = format!("{:?}", tls.conn.protocol_version());
        let peer =
            tls.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
        tls.conn.send_close_notify();
        tls.flush().map_err(|e| e.to_string())?;
        Ok((got, version, peer))
    });
    let (tcp, _) = listener.accept().unwrap();
    let fd = OwnedFd::from(tcp);
    let ch = e.c.ssl_accept_fd(&fd, &e.pki.direct.sha256_hex(), &opts()).unwrap();
    drop(fd);
    let mut s = stream(&ch);
    let mut got = vec![0u8; up.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&up), "client -> app");
    s.write_all(&down).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (rest, res) = read_all(&mut s);
    res.expect("the client's close_notify gives a clean EOF");
    assert!(rest.is_empty());
    let (client_got, version, peer) = client.join().unwrap().unwrap();
    assert_eq!(sha256_hex(&client_got), sha256_hex(&down), "app -> client");
    assert_eq!(version, "Some(TLSv1_3)");
    assert_eq!(peer, e.pki.direct.der);
    let i = info(&e.c, &ch);
    assert_eq!(i["mode"], "server", "{i:#}");
    assert_eq!(i["version"], "TLSv1.3", "{i:#}");
}

/// RFC 3207's injection attack: bytes after the server's answer to
/// STARTTLS, sent in plain, must never read as if they came over TLS.
#[test]
fn starttls_refuses_to_step_up_over_injected_plaintext() {
    let e = env();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.write_all(b"220 ready\r\n").unwrap();
        let mut cmd = [0u8; 10];
        sock.read_exact(&mut cmd).unwrap();
        assert_eq!(&cmd, b"STARTTLS\r\n");
        sock.write_all(b"220 go ahead\r\nINJECTED\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest);
    });
    let ch = e.c.tls_open_plain("localhost", port, &opts()).unwrap();
    let mut s = stream(&ch);
    let mut greeting = [0u8; 11];
    s.read_exact(&mut greeting).unwrap();
    s.write_all(b"STARTTLS\r\n").unwrap();
    // The answer alone, as a careful client reads it; the injected line waits.
    let mut answer = [0u8; 14];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"220 go ahead\r\n");
    // psmd may not have relayed the injected line yet when it is asked.
    let mut injected_seen = false;
    wait_until("psmd relayed the injected line", || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int for an open socket.
        unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&s), libc::FIONREAD, &mut n) };
        injected_seen = n > 0;
        injected_seen
    });
    let err = e.c.ssl_step_up(&ch).expect_err("a step-up over injected plaintext must fail");
    assert_eq!(err.code, Code::PSM_ERR_PROTOCOL, "{err}");
    drop(ch);
    server.join().unwrap();
}

#[test]
fn starttls_relays_plaintext_then_steps_up_to_tls() {
    let e = env();
    let server = StartTlsServer::start(&e.pki.good);
    let ch = e.c.tls_open_plain("localhost", server.port(), &opts()).unwrap();
    let i = info(&e.c, &ch);
    assert_eq!(i["mode"], "plain", "{i:#}");
    assert_eq!(i["version"], Value::Null, "{i:#}");
    let mut s = stream(&ch);
    let read_line = |s: &mut UnixStream| {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            assert_eq!(s.read(&mut b).unwrap(), 1, "the line ended early: {line:?}");
            line.push(b[0]);
        }
        String::from_utf8(line).unwrap()
    };
    assert_eq!(read_line(&mut s), "220 ready\r\n");
    s.write_all(b"STARTTLS\r\n").unwrap();
    assert_eq!(read_line(&mut s), "220 go ahead\r\n");
    e.c.ssl_step_up(&ch).unwrap();
    echo_check(&ch, b"now encrypted");
    let i = info(&e.c, &ch);
    assert_eq!(i["version"], "TLSv1.3", "{i:#}");
    assert_eq!(i["verification"]["result"], "PSM_OK", "{i:#}");
    assert_eq!(*server.commands.lock().unwrap(), vec!["STARTTLS"]);
    let r = server.records();
    assert!(r.len() == 1 && r[0].handshake_done && r[0].sni.as_deref() == Some("localhost"), "{r:?}");
}

#[test]
fn http_connect_proxy_tunnels_to_the_server() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let proxy = ConnectProxy::start(false);
    let mut o = opts();
    o.proxy = Some(format!("127.0.0.1:{}", proxy.port()));
    let ch = e.c.ssl_connect("localhost", server.port(), &o).unwrap();
    echo_check(&ch, &Noise::bytes(5, 100_000));
    assert_eq!(info(&e.c, &ch)["verification"]["result"], "PSM_OK");
    let requests = proxy.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with(&format!("CONNECT localhost:{} HTTP/1.", server.port())), "{requests:?}");
    assert_eq!(server.record(0).sni.as_deref(), Some("localhost"));
}

#[test]
fn http_proxy_refusing_connect_fails_with_connect_error() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let proxy = ConnectProxy::start(true);
    let mut o = opts();
    o.proxy = Some(format!("127.0.0.1:{}", proxy.port()));
    let err = connect_err(&e.c, "localhost", server.port(), &o);
    assert_eq!(err.code, Code::PSM_ERR_CONNECT, "{err}");
    assert_eq!(proxy.requests.lock().unwrap().len(), 1, "the proxy was asked");
    assert_eq!(server.listener.accepted(), 0, "nothing reached the server");
}

// ----------------------------------------------------- names and addresses

#[test]
fn unresolvable_name_fails_with_dns_error() {
    let e = env();
    let err = connect_err(&e.c, "no-such-host.invalid", 443, &opts());
    assert_eq!(err.code, Code::PSM_ERR_DNS, "{err}");
}

#[test]
fn refused_connection_fails_with_connect_error() {
    let e = env();
    let port = RefusingPort::new();
    let err = connect_err(&e.c, "127.0.0.1", port.port, &opts());
    assert_eq!(err.code, Code::PSM_ERR_CONNECT, "{err}");
}

#[test]
fn ipv4_literal_is_verified_against_the_ip_san_without_sni() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let ch = e.c.ssl_connect("127.0.0.1", server.port(), &opts()).unwrap();
    echo_check(&ch, b"v4");
    let i = info(&e.c, &ch);
    assert_eq!(i["verification"]["result"], "PSM_OK", "{i:#}");
    assert_eq!(server.record(0).sni, None, "no SNI for an IP address");
}

#[test]
fn ipv6_loopback_works_when_the_machine_has_it() {
    let e = env();
    let server = match TlsServer::start_on("[::1]:0", ServerSetup::new(&e.pki.good, Mode::Echo)) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("skipped: no IPv6 loopback here ({err})");
            return;
        }
    };
    let ch = e.c.ssl_connect("::1", server.port(), &opts()).unwrap();
    echo_check(&ch, b"v6");
    assert_eq!(info(&e.c, &ch)["verification"]["result"], "PSM_OK");
    assert_eq!(server.record(0).sni, None, "no SNI for an IP address");
}

// --------------------------------------------------------------- resumption

#[test]
fn second_application_resumes_the_session_of_the_first() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let first = e.d.client();
    let ch = first.ssl_connect("localhost", server.port(), &opts()).unwrap();
    // A round trip: the session tickets are in by the time the echo is.
    echo_check(&ch, b"first");
    assert_eq!(info(&first, &ch)["resumed"], false);
    drop(ch);

    let second = e.d.client();
    let ch = second.ssl_connect("localhost", server.port(), &opts()).unwrap();
    echo_check(&ch, b"second");
    let i = info(&second, &ch);
    assert_eq!(i["resumed"], true, "{i:#}");
    assert_eq!(i["verification"]["result"], "PSM_OK", "{i:#}");
    assert!(server.record(1).resumed, "the server resumed too");
}

// ------------------------------------------------------ back-pressure, scale

/// Samples psmd's RSS until dropped; keeps the maximum.
struct RssSampler {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: i32) -> RssSampler {
        let max = Arc::new(AtomicU64::new(common::rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                m.fetch_max(common::rss_kib(pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler { max, stop, thread: Some(thread) }
    }

    fn max_kib(&self) -> u64 {
        self.max.load(Ordering::SeqCst)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn slow_reader_gets_all_64_mib_while_psmd_memory_stays_bounded() {
    let e = env();
    let n = 64 * MIB;
    let server = TlsServer::start(ServerSetup::new(&e.pki.good, Mode::Stream(n)));
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let before = e.d.rss_kib();
    let sampler = RssSampler::start(e.d.pid());

    // The app reads nothing. Wait until the server cannot send any more
    // (no progress for a second) or has sent everything: with bounded
    // buffering it stalls; without, it finishes.
    wait_until("the server started sending", || server.stream_progress.load(Ordering::SeqCst) > 0);
    let (mut last, mut quiet) = (0, 0);
    while quiet < 10 {
        std::thread::sleep(Duration::from_millis(100));
        let now = server.stream_progress.load(Ordering::SeqCst);
        if now == n {
            break;
        }
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    let stalled_at = server.stream_progress.load(Ordering::SeqCst);
    let stalled_rss = e.d.rss_kib();
    assert!(
        stalled_at < n,
        "the server sent all {n} bytes while the app read nothing: psmd buffered without bound \
         (RSS {before} -> {stalled_rss} KiB)"
    );

    // Now read everything.
    let mut s = stream(&ch);
    let mut hash = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                hash.update(&buf[..k]);
                total += k as u64;
            }
            Err(err) => panic!("read failed after {total} bytes: {err}"),
        }
    }
    let peak = sampler.max_kib();
    drop(sampler);
    assert_eq!(total, n);
    assert_eq!(hex::encode(hash.finalize()), stream_sha256(n), "the data arrived intact");
    let growth = peak.saturating_sub(before);
    eprintln!(
        "psmd RSS {before} KiB before, {stalled_rss} KiB stalled at {stalled_at} bytes, peak {peak} KiB"
    );
    assert!(growth < 64 * 1024, "psmd grew by {growth} KiB for one channel (peak {peak}, before {before})");
}

/// Raises this process's descriptor limit to the hard limit (psmd started
/// afterwards inherits it); returns the new limit.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

#[test]
fn thousand_channels_open_at_once_across_four_sessions_all_echo() {
    let limit = raise_nofile();
    // The app side, the server side and its bookkeeping: about 3 per channel.
    assert!(limit >= 4096, "RLIMIT_NOFILE hard limit {limit} is too low for this test");
    let e = env();
    let server = echo_server(&e.pki.good);
    let clients: Vec<Client> = (0..4).map(|_| e.d.client()).collect();
    let per = 250;
    std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let port = server.port();
                s.spawn(move || {
                    let channels: Vec<SslChannel> = (0..per)
                        .map(|i| {
                            c.ssl_connect("localhost", port, &opts())
                                .unwrap_or_else(|err| panic!("session {k}, channel {i}: {err}"))
                        })
                        .collect();
                    channels
                })
            })
            .collect();
        let all: Vec<Vec<SslChannel>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // Every channel is open at once; each echoes its own message.
        let mut streams = Vec::new();
        for (k, chans) in all.iter().enumerate() {
            for (i, ch) in chans.iter().enumerate() {
                let msg = format!("session {k} channel {i} ").into_bytes();
                let mut payload = msg.clone();
                payload.extend(Noise::bytes((k * 1000 + i) as u64, 1000));
                let mut st = stream(ch);
                st.write_all(&payload).unwrap();
                streams.push((st, payload));
            }
        }
        assert_eq!(streams.len(), 1000);
        for (st, payload) in &mut streams {
            let mut got = vec![0u8; payload.len()];
            st.read_exact(&mut got).unwrap();
            assert!(
                got == *payload,
                "channel {:?} got another channel's data",
                String::from_utf8_lossy(&payload[..24])
            );
        }
        let done = server.records().iter().filter(|r| r.handshake_done).count();
        assert!(done >= 1000, "the server saw {done} handshakes");
    });
}

#[test]
fn a_session_holds_256_channels_and_the_next_is_busy() {
    raise_nofile();
    let e = env();
    let server = echo_server(&e.pki.good);
    let mut channels: Vec<SslChannel> = (0..256)
        .map(|i| {
            e.c.ssl_connect("localhost", server.port(), &opts()).unwrap_or_else(|err| panic!("{i}: {err}"))
        })
        .collect();
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_BUSY, "{err}");
    // Another session is not affected.
    let other = e.d.client();
    echo_check(&other.ssl_connect("localhost", server.port(), &opts()).unwrap(), b"other session");
    // Closing one frees its slot (the close is asynchronous).
    channels.pop();
    let mut reopened = None;
    wait_until("a closed channel's slot is free again", || {
        reopened = e.c.ssl_connect("localhost", server.port(), &opts()).ok();
        reopened.is_some()
    });
    echo_check(&reopened.unwrap(), b"reopened");
}

/// Pings psmd from another application, failing (instead of hanging) if
/// the event loop does not answer: a loop stuck on one channel stalls all.
fn assert_responsive(d: &Daemon) {
    let c = d.client();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(c.ping());
    });
    let r = rx.recv_timeout(PATIENCE).expect("psmd stopped answering while a channel waits for its reader");
    r.expect("ping");
}

#[test]
fn psmd_stays_responsive_while_a_slow_reader_drains_a_closed_stream() {
    let e = env();
    // More than the channel's socket buffer and psmd's queue hold, so the
    // server's close_notify is read while plaintext still waits for the app.
    let n = 16 * MIB;
    let server = TlsServer::start(ServerSetup::new(&e.pki.good, Mode::Stream(n)));
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    let mut s = stream(&ch);
    let mut data = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let k = s.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        data.extend_from_slice(&buf[..k]);
        // A slow reader: psmd holds queued plaintext most of the time.
        if data.len() as u64 > n - 4 * MIB {
            assert_responsive(&e.d);
        }
    }
    assert_eq!(data.len() as u64, n);
    assert_eq!(sha256_hex(&data), stream_sha256(n));
    assert_responsive(&e.d);
}

#[test]
fn prompts_as_events_are_answered_from_another_thread() {
    let e = env();
    let server = echo_server(&e.pki.self_signed);
    e.c.set_prompt_events(true).unwrap();
    let answerer = e.c.clone();
    let t = std::thread::spawn(move || {
        loop {
            match answerer.next_event(Some(PATIENCE)).unwrap() {
                Some(psm::proto::Event::Prompt(p)) => {
                    assert_eq!(p.kind, PromptKind::ServerTrust);
                    answerer.prompt_answer(p.id, Some("once")).unwrap();
                    return;
                }
                Some(_) => {}
                None => panic!("no prompt event came"),
            }
        }
    });
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    t.join().unwrap();
    assert_eq!(info(&e.c, &ch)["verification"]["override"], "once");
    echo_check(&ch, b"answered from the event loop");

    // Switched off: psmd asks nobody and fails at once.
    e.c.set_prompt_events(false).unwrap();
    let err = connect_err(&e.c, "localhost", server.port(), &opts());
    assert_eq!(err.code, Code::PSM_ERR_CERT_UNKNOWN_ISSUER, "{err}");
}

#[test]
fn status_lists_sessions_with_their_executable_and_tls_channels() {
    let e = env();
    let server = echo_server(&e.pki.good);
    let ch = e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    echo_check(&ch, b"counted");
    let stream = e.c.digest_stream(psm::proto::HashAlg::Sha256).unwrap();
    let s: Value = serde_json::from_str(&e.c.status_json().unwrap()).unwrap();
    let me = s["session_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == e.c.session_id())
        .unwrap_or_else(|| panic!("our session is listed: {s:#}"))
        .clone();
    assert_eq!(me["pid"], std::process::id(), "{me:#}");
    let exe = std::env::current_exe().unwrap().display().to_string();
    assert_eq!(me["exe"], exe.as_str(), "{me:#}");
    assert_eq!(me["channels"], 2, "{me:#}");
    let channels = s["channel_list"].as_array().unwrap();
    let tls = channels.iter().find(|c| c["id"] == ch.id()).unwrap_or_else(|| panic!("{s:#}"));
    assert_eq!(tls["kind"], "tls-client", "{tls:#}");
    assert_eq!(tls["peer"], format!("localhost:{}", server.port()), "{tls:#}");
    assert_eq!(tls["bytes_out"], b"counted".len(), "{tls:#}");
    assert_eq!(tls["state"], "open", "{tls:#}");
    assert!(channels.iter().any(|c| c["kind"] == "stream"), "{s:#}");
    assert_eq!(s["token"]["has_password"], false, "{s:#}");
    drop(stream);
}

#[test]
fn other_applications_hear_of_store_and_token_changes() {
    let e = env();
    let watcher = e.d.client();
    // Drain what came before (the fixture's own imports).
    while watcher.next_event(Some(Duration::ZERO)).unwrap().is_some() {}
    e.c.cert_import(&e.pki.client_a.der, Some("watched"), 0).unwrap();
    let wait = |what: psm::proto::Event| loop {
        match watcher.next_event(Some(PATIENCE)).unwrap() {
            Some(ev) if ev == what => return,
            Some(_) => {}
            None => panic!("no {what:?} event came"),
        }
    };
    wait(psm::proto::Event::StoreChanged);
    e.c.token_set_password(None, Some("a password")).unwrap();
    wait(psm::proto::Event::TokenChanged);
}

#[test]
fn stored_overrides_are_listed_and_forgotten() {
    let e = env();
    let server = echo_server(&e.pki.self_signed);
    let prompts = Prompts::install(&e.c, |_| Some("always".into()));
    e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    assert_eq!(prompts.seen().len(), 1);
    let list: Value = serde_json::from_str(&e.c.override_list_json().unwrap()).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["host"], "localhost");
    assert_eq!(list[0]["port"], server.port());
    assert_eq!(list[0]["sha256"], e.pki.self_signed.sha256_hex());
    assert_eq!(list[0]["errors"], serde_json::json!(["unknown-issuer"]));
    // Remembered: no question the second time.
    e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    assert_eq!(prompts.seen().len(), 1);
    // Forgotten: asked again.
    e.c.override_delete("localhost", server.port()).unwrap();
    assert_eq!(e.c.override_delete("localhost", server.port()).unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
    assert_eq!(e.c.override_list_json().unwrap(), "[]");
    e.c.ssl_connect("localhost", server.port(), &opts()).unwrap();
    assert_eq!(prompts.seen().len(), 2);
}
