//! psm's dialogs in a real browser: headless Chromium, driven through
//! chromedriver, opens each dialog's URL the way an application would,
//! fills the form and submits it; the test checks that the operation that
//! asked completed (or failed, for a cancel). Every dialog's screenshot is
//! saved under `target/dialog-screenshots/` (the README links them).

mod common;

use common::Daemon;
use common::browser::Browser;
use common::tls::{Mode, Pki, ServerSetup, TlsServer};
use common::web::DialogApp;
use psm::Code;
use psm::proto::{SslOpts, TRUST_CA_TLS_SERVER};
use std::thread::JoinHandle;

struct Env {
    d: Daemon,
    app: DialogApp,
    pki: Pki,
}

fn env() -> Env {
    let d = Daemon::start();
    let app = DialogApp::connect(&d.socket(), "mail-client");
    let pki = Pki::new();
    app.client.cert_import(&pki.root.cert.pem(), Some("Test Root CA"), TRUST_CA_TLS_SERVER).unwrap();
    Env { d, app, pki }
}

fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    std::thread::spawn(f)
}

/// Opens the next dialog in a browser window of the size it asks for.
fn open_next(app: &DialogApp, shot: &str) -> (u64, Browser) {
    let (id, url, w, h) = app.next_dialog();
    // Headless Chromium counts its (invisible) window frame in the size: add it.
    let b = Browser::start(w, h + 160);
    b.open(&url);
    b.wait_for_text("</form>");
    b.screenshot(shot);
    (id, b)
}

fn finished(b: &Browser, shot: &str) {
    b.wait_for_text("psm has your answer");
    b.screenshot(shot);
}

#[test]
fn a_trust_answer_in_the_browser_lets_the_connection_through_and_always_survives_a_restart() {
    let e = env();
    let server = TlsServer::start(ServerSetup::new(&e.pki.self_signed, Mode::Echo));
    let port = server.port();
    let c = e.app.client.clone();
    let h = spawn(move || c.ssl_connect("localhost", port, &SslOpts::default()).map(|_| ()));
    let (id, b) = open_next(&e.app, "server-trust");
    let page = b.source();
    assert!(page.contains("mail-client") && page.contains("localhost"), "{page}");
    b.click("button[value=always]");
    finished(&b, "done");
    h.join().unwrap().expect("connected after 'always'");
    e.app.wait_done(id);

    let Env { d, app, .. } = e;
    drop(app);
    let d = Daemon::restart_in(d);
    let app = DialogApp::connect(&d.socket(), "mail-client");
    app.client.ssl_connect("localhost", port, &SslOpts::default()).expect("'always' is remembered");
    assert!(app.events.try_recv().is_err(), "no dialog after the restart");
}

#[test]
fn dont_connect_and_cancel_in_the_browser_fail_the_operation() {
    let e = env();
    let server = TlsServer::start(ServerSetup::new(&e.pki.expired, Mode::Echo));
    let port = server.port();
    let c = e.app.client.clone();
    let h = spawn(move || c.ssl_connect("localhost", port, &SslOpts::default()).map(|_| ()));
    let (_, b) = open_next(&e.app, "server-trust-expired");
    b.click("button[value=reject]");
    finished(&b, "done-rejected");
    assert_eq!(h.join().unwrap().unwrap_err().code, Code::PSM_ERR_CERT_EXPIRED);

    e.d.client().token_set_password(None, Some("a long enough password")).unwrap();
    let c = e.app.client.clone();
    let h = spawn(move || c.token_login(None));
    let (_, b) = open_next(&e.app, "password-cancel");
    b.click("button[value=cancel]");
    finished(&b, "done-cancelled");
    assert_eq!(h.join().unwrap().unwrap_err().code, Code::PSM_ERR_USER_CANCELLED);
}

#[test]
fn a_token_login_in_the_browser_unlocks_the_key() {
    let e = env();
    let admin = e.d.client();
    admin.token_set_password(None, Some("correct horse battery")).unwrap();
    // A key that needs the token: a client certificate with its key.
    let p12 = e.pki.client_a.pkcs12(Some("me"), "pw");
    admin.token_login(Some("correct horse battery")).unwrap();
    admin.pkcs12_import(&p12, Some("pw")).unwrap();

    let c = e.app.client.clone();
    let h = spawn(move || c.token_login(None));
    let (id, b) = open_next(&e.app, "password");
    b.type_into("#password", "not the password");
    b.click("button[value=answer]");
    b.wait_for_text("That password was wrong");
    b.screenshot("password-wrong");
    b.type_into("#password", "correct horse battery");
    b.click("button[value=answer]");
    finished(&b, "password-done");
    h.join().unwrap().expect("logged in through the browser");
    e.app.wait_done(id);
    let sig = e
        .app
        .client
        .key_sign(&e.pki.client_a.sha256_hex(), psm::proto::SigKind::EcdsaSha256, b"signed after the dialog")
        .or_else(|_| {
            e.app.client.key_sign(
                &e.pki.client_a.sha256_hex(),
                psm::proto::SigKind::RsaPkcs1Sha256,
                b"signed after the dialog",
            )
        })
        .expect("the key is unlocked for this application");
    assert!(!sig.is_empty());
}

#[test]
fn new_password_pkcs12_and_client_certificate_dialogs_in_the_browser() {
    let e = env();
    // The token password, typed twice.
    let c = e.app.client.clone();
    let h = spawn(move || c.token_set_password(None, None));
    let (_, b) = open_next(&e.app, "new-password");
    b.type_into("#password", "fresh password 1");
    b.type_into("#confirm", "fresh password 1");
    b.click("button[value=answer]");
    finished(&b, "new-password-done");
    h.join().unwrap().unwrap();
    e.d.client().token_login(Some("fresh password 1")).expect("the dialog set the password");

    // A PKCS#12 file's password.
    let p12 = e.pki.client_a.pkcs12(Some("work"), "file pw");
    let c = e.app.client.clone();
    let h = spawn(move || c.pkcs12_import(&p12, None));
    let (_, b) = open_next(&e.app, "pkcs12-password");
    b.type_into("#password", "file pw");
    b.click("button[value=answer]");
    finished(&b, "pkcs12-done");
    let imported = h.join().unwrap().expect("imported with the typed password");
    assert_eq!(imported[0].sha256_hex, e.pki.client_a.sha256_hex());
    let p12 = e.pki.client_b.pkcs12(Some("home"), "pw");
    e.app.client.pkcs12_import(&p12, Some("pw")).unwrap();

    // Which certificate to send: the user picks the second.
    let mut setup = ServerSetup::new(&e.pki.good, Mode::Echo);
    setup.client_auth_roots = Some(vec![e.pki.root.cert.der.clone()]);
    let server = TlsServer::start(setup);
    let port = server.port();
    let c = e.app.client.clone();
    let h = spawn(move || c.ssl_connect("localhost", port, &SslOpts::default()).map(|ch| (c, ch)));
    let (_, b) = open_next(&e.app, "client-cert");
    b.click(&format!("input[value='sha256:{}']", e.pki.client_b.sha256_hex()));
    b.click("button[value=answer]");
    finished(&b, "client-cert-done");
    let (c, ch) = h.join().unwrap().expect("connected with the chosen certificate");
    let mut s = ch.stream().unwrap();
    use std::io::{Read, Write};
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    let rec = server.wait_record(0, "the client certificate", |r| r.client_cert.is_some());
    assert_eq!(rec.client_cert.unwrap(), e.pki.client_b.der, "the server saw the certificate the user chose");

    // The security advisor for that connection.
    let h = spawn(move || c.ssl_show_info(&ch));
    let (_, b) = open_next(&e.app, "security-info");
    let page = b.source();
    assert!(page.contains("psm verified that this is localhost"), "{page}");
    b.click("button[value=close]");
    finished(&b, "security-info-done");
    h.join().unwrap().unwrap();
}

#[test]
fn the_certificate_viewer_in_the_browser() {
    let e = env();
    let c = e.app.client.clone();
    let root = e.pki.root.cert.sha256_hex();
    let h = spawn(move || c.cert_view(&root));
    let (_, b) = open_next(&e.app, "cert-view");
    let page = b.source();
    assert!(page.contains("Test Root CA") && page.contains("A certificate authority you trust"), "{page}");
    b.click("button[value=close]");
    finished(&b, "cert-view-done");
    h.join().unwrap().unwrap();
}

#[test]
fn confirming_a_keys_use_in_the_browser() {
    let pki = Pki::new();
    let d =
        Daemon::start_with_policy(&format!("[keys]\nconfirm_use = [\"{}\"]\n", pki.client_a.sha256_hex()));
    let app = DialogApp::connect(&d.socket(), "mail-client");
    app.client.pkcs12_import(&pki.client_a.pkcs12(Some("work"), "pw"), Some("pw")).unwrap();
    let c = app.client.clone();
    let fp = pki.client_a.sha256_hex();
    let h = spawn(move || {
        c.key_sign(&fp, psm::proto::SigKind::EcdsaSha256, b"x")
            .or_else(|_| c.key_sign(&fp, psm::proto::SigKind::RsaPkcs1Sha256, b"x"))
    });
    let (_, b) = open_next(&app, "confirm-key-use");
    assert!(b.source().contains("psm client A"));
    b.click("button[value=allow]");
    finished(&b, "confirm-key-use-done");
    assert!(!h.join().unwrap().expect("signed after the user allowed it").is_empty());
}

#[test]
fn the_security_of_a_signed_message_in_the_browser() {
    use common::certs::{Spec, ca, make};
    let d = Daemon::start();
    let app = DialogApp::connect(&d.socket(), "mail-client");
    let root = ca("S/MIME Root");
    app.client.cert_import(&root.pem(), Some("root"), psm::proto::TRUST_CA_EMAIL).unwrap();
    let alice = make(
        &Spec { cn: "Alice", emails: &["alice@example.com"], serial: 10, ..Default::default() },
        Some(&root),
    );
    let p12 =
        openssl::pkcs12::Pkcs12::builder().name("k").pkey(&alice.key).cert(&alice.cert).build2("pw").unwrap();
    app.client.pkcs12_import(&p12.to_der().unwrap(), Some("pw")).unwrap();
    let signed = app
        .client
        .smime_sign(&format!("sha256:{}", alice.sha256_hex()), 0, b"Content-Type: text/plain\n\nHi.\n")
        .unwrap();
    let info = app.client.smime_verify(&signed, None, Some("alice@example.com"), 0).unwrap();
    assert_eq!(info.status, Code::PSM_OK);
    assert!(info.result_id != 0);
    // Only the session that got the verdict may show it.
    let other = d.client();
    assert_eq!(other.smime_show_info(info.result_id).unwrap_err().code, Code::PSM_ERR_NOT_FOUND);

    let c = app.client.clone();
    let h = spawn(move || c.smime_show_info(info.result_id));
    let (_, b) = open_next(&app, "message-info");
    let page = b.source();
    assert!(
        page.contains("A good signature by") && page.contains("Alice") && page.contains("S/MIME Root"),
        "{page}"
    );
    b.click("button[value=close]");
    finished(&b, "message-info-done");
    h.join().unwrap().unwrap();
}
