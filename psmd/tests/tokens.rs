//! PKCS#11 tokens through psmd, end to end: a real psmd loads SoftHSM (the
//! module the policy names) and applications use the tokens in its slots
//! over the real socket: the token list, login with wrong and right PINs
//! (given, or asked through the prompt handler), token certificates in
//! lists and finds (by PKCS#11 URI too), signatures OpenSSL verifies, TLS
//! client authentication to a rustls server that requires a certificate,
//! S/MIME signed with a token key and checked by `openssl cms`, a message
//! decrypted by a token key, a hung module that leaves the soft token and
//! other applications alone, and removal and insertion (a wrapper module
//! that pulls the token out) reported as events, with the login gone.
//!
//! Each psmd is its own SoftHSM instance (login state is per process), and
//! all of them share the token files made once by [`fixture`].

mod common;

use common::certs::{self, Spec, TestCert};
use common::softhsm::{MODULE, SoftHsm, USER_PIN};
use common::tls::{Mode, Pki, ServerSetup, TlsServer};
use common::web::{DialogApp, get, origin_of, post};
use common::{Daemon, PATIENCE, RuntimeDir, wait_until};
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::x509::X509;
use psm::proto::{
    CERTS_USER, Event, Prompt, SigKind, SslOpts, TOKEN_INITIALIZED, TOKEN_LOGGED_IN, TOKEN_LOGIN_REQUIRED,
    TOKEN_SOFT, TRUST_CA_EMAIL, TRUST_CA_TLS_SERVER, TokenInfo,
};
use psm::{Client, Code};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

const EC_TOKEN: &str = "psm-ec";
const RSA_TOKEN: &str = "psm-rsa";
const ALICE: &str = "alice@token.example";
const BOB: &str = "bob@token.example";

struct Fixture {
    hsm: SoftHsm,
    ca: TestCert,
    alice: X509,
    bob: X509,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let hsm = SoftHsm::create(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("tokens-softhsm"));
        let ca = certs::ca("Token Test CA");
        let issue = |token: &str, key_type: &str, id: &str, cn: &str, email: &str| {
            hsm.init_token(token);
            let public = hsm.generate(token, key_type, id, &format!("{cn} key"));
            let spec = Spec {
                cn,
                emails: &[email],
                serial: u32::from_str_radix(id, 16).unwrap(),
                ..Default::default()
            };
            let cert = certs::make_for_public(&spec, &ca, &public);
            hsm.write_certificate(token, id, cn, &cert.to_der().unwrap());
            cert
        };
        let alice = issue(EC_TOKEN, "EC:prime256v1", "01", "Alice", ALICE);
        let bob = issue(RSA_TOKEN, "rsa:2048", "02", "Bob", BOB);
        // A certificate without a key on the token: the CA's, as cards
        // often carry their issuer's.
        hsm.write_certificate(EC_TOKEN, "09", "Token CA", &ca.der());
        Fixture { hsm, ca, alice, bob }
    })
}

fn sha256_hex(c: &X509) -> String {
    hex::encode(c.digest(MessageDigest::sha256()).unwrap())
}

/// A runtime directory whose psmd loads `module` (SoftHSM by default) and
/// sees the fixture's tokens.
fn runtime(module: &Path) -> RuntimeDir {
    runtime_with(module, "")
}

/// The same with more policy settings.
fn runtime_with(module: &Path, policy: &str) -> RuntimeDir {
    let f = fixture();
    let mut rt = RuntimeDir::new();
    rt.write_policy(&format!("{policy}\n[pkcs11]\nmodules = [\"{}\"]\n", module.display()));
    rt.env.push(("SOFTHSM2_CONF".into(), f.hsm.conf.clone().into()));
    rt
}

/// psmd with SoftHSM, trusting the fixture's CA for e-mail and the test
/// PKI's root for TLS servers.
fn daemon() -> Daemon {
    let d = Daemon::start_in(runtime(Path::new(MODULE)));
    let c = d.client();
    c.cert_import(&fixture().ca.pem(), Some("token-ca"), TRUST_CA_EMAIL).unwrap();
    d
}

fn token<'a>(tokens: &'a [TokenInfo], label: &str) -> &'a TokenInfo {
    tokens.iter().find(|t| t.label == label).unwrap_or_else(|| panic!("no token {label} in {tokens:#?}"))
}

fn uri_of(c: &Client, label: &str) -> String {
    token(&c.token_list().unwrap(), label).uri.clone()
}

/// A prompt handler answering every PIN question with the next of
/// `answers` (then cancelling), recording the questions.
fn answer_pins(c: &Client, answers: &[&str]) -> Arc<Mutex<Vec<Prompt>>> {
    let seen: Arc<Mutex<Vec<Prompt>>> = Arc::default();
    let answers = Mutex::new(answers.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let (s, c2) = (seen.clone(), c.clone());
    c.set_prompt_handler(Some(Arc::new(move |p: Prompt| {
        let mut left = answers.lock().unwrap();
        let a = (!left.is_empty()).then(|| left.remove(0));
        s.lock().unwrap().push(p.clone());
        c2.prompt_answer(p.id, a.as_deref()).unwrap();
    })))
    .unwrap();
    seen
}

fn verify_ecdsa(cert: &X509, data: &[u8], sig: &[u8]) -> bool {
    let public = cert.public_key().unwrap();
    Verifier::new(MessageDigest::sha256(), &public).unwrap().verify_oneshot(sig, data).unwrap()
}

#[test]
fn lists_the_soft_token_and_the_modules_tokens() {
    let d = daemon();
    let c = d.client();
    let tokens = c.token_list().unwrap();
    assert_eq!(tokens[0].flags & TOKEN_SOFT, TOKEN_SOFT, "{tokens:#?}");
    assert_eq!(tokens[0].module, "");
    for label in [EC_TOKEN, RSA_TOKEN] {
        let t = token(&tokens, label);
        assert_eq!(t.manufacturer, "SoftHSM project", "{t:#?}");
        assert_eq!(t.model, "SoftHSM v2", "{t:#?}");
        assert!(!t.serial.is_empty(), "{t:#?}");
        assert_eq!(Path::new(&t.module).canonicalize().unwrap(), Path::new(MODULE).canonicalize().unwrap());
        assert_eq!(
            t.flags & (TOKEN_INITIALIZED | TOKEN_LOGIN_REQUIRED),
            TOKEN_INITIALIZED | TOKEN_LOGIN_REQUIRED
        );
        assert_eq!(t.flags & TOKEN_LOGGED_IN, 0, "{t:#?}");
        assert!(
            t.uri.starts_with("pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial="),
            "{}",
            t.uri
        );
    }
    // SoftHSM's blank slot is listed too, as not initialized.
    assert!(tokens.iter().any(|t| t.flags & (TOKEN_SOFT | TOKEN_INITIALIZED) == 0), "{tokens:#?}");
    // Status says the module is loaded.
    assert_eq!(d.status()["pkcs11"]["modules"][0]["loaded"], true, "{:#}", d.status());
}

#[test]
fn login_with_a_wrong_pin_fails_and_the_right_one_logs_the_token_in_for_every_application() {
    let d = daemon();
    let (a, b) = (d.client(), d.client());
    let uri = uri_of(&a, EC_TOKEN);
    let e = a.token_login_to(&uri, Some("0000")).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_BAD_PASSWORD, "{e}");
    assert!(!e.message.contains("0000"), "the PIN is in the error: {e}");
    // Without a PIN and nobody to ask: the error says what to do.
    let e = a.token_login_to(&uri, None).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_LOGIN_REQUIRED, "{e}");
    a.token_login_to(&uri, Some(USER_PIN)).unwrap();
    assert_ne!(token(&b.token_list().unwrap(), EC_TOKEN).flags & TOKEN_LOGGED_IN, 0);
    // B signs without a PIN of its own: the card is logged in for psmd.
    let sig = b.key_sign(&sha256_hex(&fixture().alice), SigKind::EcdsaSha256, b"by b").unwrap();
    assert!(verify_ecdsa(&fixture().alice, b"by b", &sig));
    b.token_logout_from(&uri).unwrap();
    assert_eq!(token(&a.token_list().unwrap(), EC_TOKEN).flags & TOKEN_LOGGED_IN, 0);
    let e = a.key_sign(&sha256_hex(&fixture().alice), SigKind::EcdsaSha256, b"x").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_LOGIN_REQUIRED, "{e}");
    // The soft token answers to its URI as well.
    let soft = a.token_list().unwrap()[0].uri.clone();
    a.token_login_to(&soft, None).unwrap();
}

#[test]
fn token_certificates_appear_in_lists_and_finds_marked_with_their_token() {
    let d = daemon();
    let c = d.client();
    let f = fixture();
    let mine = c.cert_list(CERTS_USER).unwrap();
    for (cert, label) in [(&f.alice, EC_TOKEN), (&f.bob, RSA_TOKEN)] {
        let info = mine
            .iter()
            .find(|i| i.sha256_hex == sha256_hex(cert))
            .unwrap_or_else(|| panic!("{label}'s certificate is not among the user's: {mine:#?}"));
        assert_eq!(info.token, label);
        assert!(info.has_private_key, "{info:#?}");
        assert!(
            info.uri.contains(&format!("token={label}")) && info.uri.ends_with("type=cert"),
            "{}",
            info.uri
        );
        // Its own URI finds it again.
        assert_eq!(c.cert_find(&info.uri).unwrap().sha256_hex, info.sha256_hex);
    }
    let by_uri = c.cert_find(&format!("pkcs11:token={EC_TOKEN};object=Alice")).unwrap();
    assert_eq!(by_uri.sha256_hex, sha256_hex(&f.alice));
    assert_eq!(by_uri.nickname, format!("{EC_TOKEN}:Alice"));
    assert_eq!(c.cert_find(ALICE).unwrap().sha256_hex, sha256_hex(&f.alice));
    assert_eq!(c.cert_find(&format!("sha256:{}", sha256_hex(&f.bob))).unwrap().token, RSA_TOKEN);
    // A certificate on a token without its key is listed, but not as the
    // user's; the store's copy of it is marked with the token.
    let ca = c.cert_find(&format!("pkcs11:token={EC_TOKEN};object=Token%20CA")).unwrap();
    assert!(!ca.has_private_key && ca.is_ca, "{ca:#?}");
    assert!(mine.iter().all(|i| i.sha256_hex != ca.sha256_hex), "a key-less token certificate is the user's");
    let stored = c.cert_find("token-ca").unwrap();
    assert_eq!((stored.token.as_str(), stored.has_private_key), (EC_TOKEN, false), "{stored:#?}");
    // A URI that names several certificates is refused, not guessed.
    let e = c.cert_find("pkcs11:type=cert").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT, "{e}");
    let e = c.cert_find("pkcs11:token=no-such-token").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_NOT_FOUND, "{e}");
    let e = c.cert_find("pkcs11:token=psm-ec?pin-value=1234").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_POLICY, "{e}");
    assert!(!e.message.contains("1234"), "{e}");
}

#[test]
fn signs_with_token_keys_after_asking_for_the_pin_and_openssl_verifies() {
    let d = daemon();
    let c = d.client();
    let f = fixture();
    let seen = answer_pins(&c, &["9999", USER_PIN]);
    let sig = c.key_sign(&sha256_hex(&f.alice), SigKind::EcdsaSha256, b"hello token").unwrap();
    assert!(verify_ecdsa(&f.alice, b"hello token", &sig), "OpenSSL rejects the token's signature");
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "a wrong PIN is asked again: {asked:#?}");
    let details: serde_json::Value = serde_json::from_str(&asked[0].details_json).unwrap();
    assert_eq!(details["token"], EC_TOKEN, "{details:#}");
    // RSA: PKCS#1 v1.5 and PSS.
    *seen.lock().unwrap() = Vec::new();
    let _ = answer_pins(&c, &[USER_PIN]);
    let public = f.bob.public_key().unwrap();
    let sig = c.key_sign(&sha256_hex(&f.bob), SigKind::RsaPkcs1Sha256, b"rsa").unwrap();
    assert!(Verifier::new(MessageDigest::sha256(), &public).unwrap().verify_oneshot(&sig, b"rsa").unwrap());
    let sig = c.key_sign(&sha256_hex(&f.bob), SigKind::RsaPssSha256, b"pss").unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
    v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS).unwrap();
    v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH).unwrap();
    assert!(v.verify_oneshot(&sig, b"pss").unwrap());
    let e = c.key_sign(&sha256_hex(&f.bob), SigKind::EcdsaSha256, b"x").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT, "{e}");
}

#[test]
fn the_pin_is_asked_in_psms_dialog_and_a_wrong_one_is_asked_again_in_the_page() {
    let d = daemon();
    let app = DialogApp::connect(&d.socket(), "dialog-app");
    let alice = sha256_hex(&fixture().alice);
    let c = app.client.clone();
    let signing = std::thread::spawn(move || c.key_sign(&alice, SigKind::EcdsaSha256, b"asked"));
    let (id, url, ..) = app.next_dialog();
    let page = get(&url, &[]);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains(&format!("PIN for {EC_TOKEN}")), "{}", page.body);
    assert!(page.body.contains("SoftHSM v2"), "{}", page.body);
    let cookie = format!("Cookie: {}", page.cookie());
    let wrong =
        post(&url, Some(&origin_of(&url)), &[&cookie], &format!("nonce={}&password=0000", page.nonce()));
    assert!(wrong.body.contains("That PIN was wrong"), "{}", wrong.body);
    let right = post(
        &url,
        Some(&origin_of(&url)),
        &[&cookie],
        &format!("nonce={}&password={USER_PIN}", wrong.nonce()),
    );
    assert!(right.body.contains("window.close()"), "{}", right.body);
    app.wait_done(id);
    let sig = signing.join().unwrap().unwrap();
    assert!(verify_ecdsa(&fixture().alice, b"asked", &sig));
}

#[test]
fn an_idle_token_is_logged_out_after_the_policys_timeout() {
    let d = Daemon::start_in(runtime_with(Path::new(MODULE), "[token]\nidle_timeout_secs = 3\n"));
    let c = d.client();
    let uri = uri_of(&c, EC_TOKEN);
    c.token_login_to(&uri, Some(USER_PIN)).unwrap();
    c.key_sign(&sha256_hex(&fixture().alice), SigKind::EcdsaSha256, b"in use").unwrap();
    wait_until("the idle token is logged out", || {
        token(&c.token_list().unwrap(), EC_TOKEN).flags & TOKEN_LOGGED_IN == 0
    });
    let e = c.key_sign(&sha256_hex(&fixture().alice), SigKind::EcdsaSha256, b"later").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_LOGIN_REQUIRED, "{e}");
}

#[test]
fn tls_client_authentication_with_the_key_on_the_token() {
    let d = daemon();
    let c = d.client();
    let f = fixture();
    let pki = Pki::new();
    c.cert_import(&pki.root.cert.pem(), Some("test-root"), TRUST_CA_TLS_SERVER).unwrap();
    let mut setup = ServerSetup::new(&pki.good, Mode::Echo);
    setup.client_auth_roots = Some(vec![f.ca.der()]);
    let server = TlsServer::start(setup);
    c.token_login_to(&uri_of(&c, EC_TOKEN), Some(USER_PIN)).unwrap();
    let opts =
        SslOpts { client_cert: Some(format!("pkcs11:token={EC_TOKEN};object=Alice")), ..Default::default() };
    let ch = c.ssl_connect("localhost", server.port(), &opts).unwrap();
    let mut s = ch.stream().unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    std::io::Write::write_all(&mut s, b"ping").unwrap();
    let mut got = [0u8; 4];
    std::io::Read::read_exact(&mut s, &mut got).unwrap();
    assert_eq!(&got, b"ping");
    assert_eq!(
        server.record(0).client_cert.as_deref(),
        Some(&f.alice.to_der().unwrap()[..]),
        "the server saw Alice"
    );
    // Without naming it, both token certificates fit: psm asks which.
    let e = c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_NO_UI, "{e}");
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let (a, c2, alice) = (asked.clone(), c.clone(), format!("sha256:{}", sha256_hex(&f.alice)));
    c.set_prompt_handler(Some(Arc::new(move |p: Prompt| {
        a.lock().unwrap().extend(p.choices.clone());
        c2.prompt_answer(p.id, Some(&alice)).unwrap();
    })))
    .unwrap();
    let ch = c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap();
    let r = server.wait_record(2, "the third handshake", |r| r.handshake_done);
    assert_eq!(r.client_cert.as_deref(), Some(&f.alice.to_der().unwrap()[..]));
    drop(ch);
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked.contains(&format!("sha256:{}", sha256_hex(&f.bob))),
        "Bob's token certificate was not offered: {asked:?}"
    );
}

#[test]
fn smime_signed_with_a_token_key_verifies_in_openssl_cms_and_a_token_key_decrypts() {
    let d = daemon();
    let c = d.client();
    let f = fixture();
    let _ = answer_pins(&c, &[USER_PIN, USER_PIN]);
    let signed = c.smime_sign(ALICE, 0, b"Signed on a token.\r\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (msg, ca) = (dir.path().join("signed.eml"), dir.path().join("ca.pem"));
    std::fs::write(&msg, &signed).unwrap();
    std::fs::write(&ca, f.ca.pem()).unwrap();
    let out = Command::new("openssl")
        .args(["cms", "-verify", "-purpose", "any", "-in"])
        .arg(&msg)
        .arg("-CAfile")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl cms -verify: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"Signed on a token.\r\n");
    // A message too large to go inline is signed on a stream, by the token.
    let big: Vec<u8> =
        b"A long letter, signed on a card.\r\n".iter().copied().cycle().take(700 * 1024).collect();
    let streamed = c.smime_sign(ALICE, psm::proto::SMIME_DETACHED, &big).unwrap();
    let (big_msg, big_out) = (dir.path().join("big.eml"), dir.path().join("big.out"));
    std::fs::write(&big_msg, &streamed).unwrap();
    let out = Command::new("openssl")
        .args(["cms", "-verify", "-purpose", "any", "-in"])
        .arg(&big_msg)
        .arg("-CAfile")
        .arg(&ca)
        .arg("-out")
        .arg(&big_out)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl cms -verify (streamed): {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&big_out).unwrap(), big);
    // psm itself agrees.
    let v = c.smime_verify(&signed, None, None, 0).unwrap();
    assert_eq!(v.status, Code::PSM_OK, "{v:#?}");
    assert_eq!(v.signer.as_ref().map(|s| s.sha256_hex.clone()), Some(sha256_hex(&f.alice)));

    // openssl encrypts to Bob's RSA certificate (key transport) and to
    // Alice's EC one (ECDH key agreement); each token decrypts its own.
    for (cert, text) in
        [(&f.bob, &b"For Bob's card only.\r\n"[..]), (&f.alice, b"For Alice's card only.\r\n")]
    {
        let enc = openssl_encrypt(dir.path(), cert, text);
        let info = c.smime_decrypt(&enc, None, 0).unwrap();
        assert_eq!(&info.content[..], text);
    }
}

/// `openssl cms -encrypt` (AES-256-CBC) of `text` for `cert`.
fn openssl_encrypt(dir: &Path, cert: &X509, text: &[u8]) -> Vec<u8> {
    let (pem, plain, enc) = (dir.join("recipient.pem"), dir.join("plain"), dir.join("enc.eml"));
    std::fs::write(&pem, cert.to_pem().unwrap()).unwrap();
    std::fs::write(&plain, text).unwrap();
    let out = Command::new("openssl")
        .args(["cms", "-encrypt", "-aes-256-cbc", "-in"])
        .arg(&plain)
        .arg("-out")
        .arg(&enc)
        .arg(&pem)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl cms -encrypt: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(&enc).unwrap()
}

#[test]
fn a_hung_module_fails_its_callers_and_leaves_the_soft_token_and_other_sessions_alone() {
    let sleepy = common::pkcs11_test_module("sleepy_module");
    let d = Daemon::start_in(runtime(&sleepy));
    let (slow, other) = (d.client(), d.client());
    slow.token_login_to(&uri_of(&slow, EC_TOKEN), Some(USER_PIN)).unwrap();
    // A soft-token key for the other application.
    let pki = Pki::new();
    other.pkcs12_import(&pki.client_a.pkcs12(Some("soft"), "pw"), Some("pw")).unwrap();
    let alice = sha256_hex(&fixture().alice);
    let hung = std::thread::spawn(move || slow.key_sign(&alice, SigKind::EcdsaSha256, b"never"));
    // Give the token's C_Sign a moment to start and hang (what follows
    // holds whether it started or not).
    std::thread::sleep(std::time::Duration::from_millis(200));
    for i in 0..20 {
        let sig = other.key_sign(&pki.client_a.sha256_hex(), SigKind::EcdsaSha256, &[i]).unwrap();
        assert!(!sig.is_empty());
        other.ping().unwrap();
    }
    // Certificate lists and finds leave the busy module out rather than
    // wait for it.
    let listed = other.cert_list(CERTS_USER).unwrap();
    assert!(listed.iter().any(|c| c.sha256_hex == pki.client_a.sha256_hex()), "{listed:#?}");
    assert_eq!(other.cert_find("soft").unwrap().sha256_hex, pki.client_a.sha256_hex());
    assert!(!hung.is_finished(), "the hung call ended before 20 soft-token signatures did");
    let e = hung.join().unwrap().unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_TIMEOUT, "{e}");
    assert!(e.message.contains("C_Sign") && e.message.contains("sleepy"), "{e}");
    // Status reports it (once the call has run for the whole timeout).
    wait_until("Status reports the hung module", || {
        d.status()["pkcs11"]["modules"][0]["hung"]["call"] == "C_Sign"
    });
    // While it stays stuck, calls into that module fail at once.
    let started = Instant::now();
    let e = other.key_sign(&sha256_hex(&fixture().alice), SigKind::EcdsaSha256, b"x").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_TIMEOUT, "{e}");
    assert!(started.elapsed() < PATIENCE, "a hung module's caller waited for it");
}

/// Waits for the next TOKEN_CHANGED, skipping other events.
fn wait_token_changed(c: &Client) {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Some(Event::TokenChanged) = c.next_event(Some(deadline - Instant::now())).unwrap() {
            return;
        }
    }
    panic!("no TOKEN_CHANGED event");
}

#[test]
fn removal_and_insertion_are_reported_and_removal_logs_the_token_out() {
    let removable = common::pkcs11_test_module("removable_module");
    let mut rt = runtime(&removable);
    let flag: PathBuf = rt.dir.path().join("token-removed");
    rt.env.push(("PSM_TEST_TOKEN_REMOVED".into(), flag.clone().into()));
    let d = Daemon::start_in(rt);
    let c = d.client();
    let uri = uri_of(&c, EC_TOKEN);
    c.token_login_to(&uri, Some(USER_PIN)).unwrap();
    wait_token_changed(&c);
    let alice = sha256_hex(&fixture().alice);
    c.key_sign(&alice, SigKind::EcdsaSha256, b"inserted").unwrap();

    std::fs::write(&flag, b"").unwrap();
    wait_token_changed(&c);
    let tokens = c.token_list().unwrap();
    assert!(tokens.iter().all(|t| t.label != EC_TOKEN), "a removed token is listed: {tokens:#?}");
    assert!(c.cert_list(CERTS_USER).unwrap().iter().all(|i| i.sha256_hex != alice));
    let e = c.key_sign(&alice, SigKind::EcdsaSha256, b"removed").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_NOT_FOUND, "{e}");

    std::fs::remove_file(&flag).unwrap();
    wait_token_changed(&c);
    let t = token(&c.token_list().unwrap(), EC_TOKEN).clone();
    assert_eq!(t.flags & TOKEN_LOGGED_IN, 0, "the token came back logged in: {t:#?}");
    let e = c.key_sign(&alice, SigKind::EcdsaSha256, b"back").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_LOGIN_REQUIRED, "{e}");
    c.token_login_to(&t.uri, Some(USER_PIN)).unwrap();
    c.key_sign(&alice, SigKind::EcdsaSha256, b"back").unwrap();
}
