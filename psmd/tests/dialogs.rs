//! psm's HTML dialogs over real HTTP: what psmd serves, and every rule that
//! keeps a page of another site, another application or a replayed request
//! from answering a question. The browser end to end is in
//! `dialogs_browser.rs`; here a plain HTTP client sends exactly the bytes
//! each case needs.

mod common;

use common::tls::{Mode, Pki, ServerSetup, TlsServer};
use common::web::{self, DialogApp, exchange, get, origin_of, post, split_url};
use common::{Daemon, wait_until};
use psm::proto::{Event, SslOpts, TRUST_CA_TLS_SERVER};
use psm::{Client, Code};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Env {
    d: Daemon,
    app: DialogApp,
    pki: Pki,
    server: TlsServer,
}

fn env_with(extra: &[&str]) -> Env {
    let d = Daemon::start_with(extra);
    let app = DialogApp::connect(&d.socket(), "dialog-test");
    let pki = Pki::new();
    app.client.cert_import(&pki.root.cert.pem(), Some("test-root"), TRUST_CA_TLS_SERVER).unwrap();
    let server = TlsServer::start(ServerSetup::new(&pki.self_signed, Mode::Echo));
    Env { d, app, pki, server }
}

fn env() -> Env {
    env_with(&[])
}

/// Connects to the self-signed server on a thread: psmd asks through a dialog.
fn connect_in_thread(c: &Client, port: u16) -> JoinHandle<Result<(), psm::Error>> {
    let c = c.clone();
    std::thread::spawn(move || c.ssl_connect("localhost", port, &SslOpts::default()).map(|_| ()))
}

/// Loads the dialog as a browser would the first time: the page and its cookie.
fn open(url: &str) -> (String, String) {
    let r = get(url, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    (r.cookie(), r.nonce())
}

fn cookie_header(cookie: &str) -> String {
    format!("Cookie: {cookie}")
}

#[test]
fn a_trust_dialog_is_a_page_whose_answer_lets_the_connection_through() {
    let e = env();
    let h = connect_in_thread(&e.app.client, e.server.port());
    let (id, url, w, hgt) = e.app.next_dialog();
    assert!(w >= 400 && hgt >= 300, "{w}x{hgt}");
    let r = get(&url, &[]);
    assert_eq!(r.status, 200);
    // What the user needs to decide is on the page.
    for what in [
        "localhost",
        "not issued by an authority you trust",
        "Connect this time",
        "Always trust for this site",
        "Don't connect",
        "dialog-test",
        &e.pki.self_signed.sha256_hex()[..2].to_uppercase(),
    ] {
        assert!(r.body.contains(what), "{what:?} missing from the page:\n{}", r.body);
    }
    // The security headers, and never CORS.
    let csp = r.header("content-security-policy").unwrap();
    for part in ["frame-ancestors 'none'", "default-src 'none'", "form-action 'self'", "script-src 'sha256-"]
    {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.headers.iter().all(|(k, _)| !k.to_ascii_lowercase().starts_with("access-control-")),
        "{:?}",
        r.headers
    );
    let cookie = r.cookie();
    assert!(
        r.header("set-cookie").unwrap().contains("HttpOnly")
            && r.header("set-cookie").unwrap().contains("SameSite=Strict")
    );
    let done = post(
        &url,
        Some(&origin_of(&url)),
        &[&cookie_header(&cookie)],
        &format!("nonce={}&choice=once", r.nonce()),
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert!(done.body.contains("window.close()"), "{}", done.body);
    h.join().unwrap().expect("the connection goes through after 'once'");
    e.app.wait_done(id);
    // The token was single-use: the URL is gone now.
    assert_eq!(get(&url, &[&cookie_header(&cookie)]).status, 410);
}

#[test]
fn always_is_remembered_across_a_psmd_restart_and_cancel_fails_the_operation() {
    let e = env();
    let h = connect_in_thread(&e.app.client, e.server.port());
    let (id, url, ..) = e.app.next_dialog();
    let (cookie, nonce) = open(&url);
    let r = post(
        &url,
        Some(&origin_of(&url)),
        &[&cookie_header(&cookie)],
        &format!("nonce={nonce}&choice=always"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    h.join().unwrap().unwrap();
    e.app.wait_done(id);
    let port = e.server.port();
    let Env { d, app, server, .. } = e;
    drop(app);
    let d = Daemon::restart_in(d);
    let app = DialogApp::connect(&d.socket(), "after-restart");
    app.client.ssl_connect("localhost", port, &SslOpts::default()).expect("'always' outlives psmd");
    assert!(app.events.try_recv().is_err(), "no dialog the second time");

    // Cancel, on a server psm was never told about.
    let other = TlsServer::start(ServerSetup::new(&Pki::new().expired, Mode::Echo));
    let h = connect_in_thread(&app.client, other.port());
    let (id, url, ..) = app.next_dialog();
    let (cookie, nonce) = open(&url);
    let r = post(
        &url,
        Some(&origin_of(&url)),
        &[&cookie_header(&cookie)],
        &format!("nonce={nonce}&action=cancel"),
    );
    assert_eq!(r.status, 200);
    let err = h.join().unwrap().unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_USER_CANCELLED, "{err:?}");
    app.wait_done(id);
    drop(server);
}

#[test]
fn wrong_tokens_hosts_origins_nonces_and_browsers_change_nothing() {
    let e = env();
    let h = connect_in_thread(&e.app.client, e.server.port());
    let (id, url, ..) = e.app.next_dialog();
    let (port, path) = split_url(&url);
    let origin = origin_of(&url);

    // A wrong token, a malformed one, another path.
    let mut wrong = path.clone();
    wrong.replace_range(wrong.len() - 4.., "0000");
    assert_eq!(get(&format!("http://127.0.0.1:{port}{wrong}"), &[]).status, 404);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/d/xyz"), &[]).status, 404);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/"), &[]).status, 404);
    // DNS rebinding: the right address under another name.
    let rebound =
        exchange(port, format!("GET {path} HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n").as_bytes());
    assert_eq!(rebound.status, 403);
    let no_host = exchange(port, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
    assert_eq!(no_host.status, 403);
    // A page of another site may not even load it.
    assert_eq!(get(&url, &["Sec-Fetch-Site: cross-site"]).status, 403);
    // None of that bound the dialog: `localhost:port` is the same server.
    let r = exchange(port, format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    let (cookie, nonce) = (r.cookie(), r.nonce());
    // Another browser (no cookie, or another) loading it now gets 410.
    assert_eq!(get(&url, &[]).status, 410);
    assert_eq!(get(&url, &["Cookie: psm_dialog=00"]).status, 410);
    // The owner may reload it.
    assert_eq!(get(&url, &[&cookie_header(&cookie)]).status, 200);

    let c = cookie_header(&cookie);
    let form = format!("nonce={nonce}&choice=always");
    // Answers must be POSTs from psm's own page.
    assert_eq!(post(&url, None, &[&c], &form).status, 403, "no Origin");
    assert_eq!(post(&url, Some("http://evil.example"), &[&c], &form).status, 403);
    assert_eq!(post(&url, Some("null"), &[&c], &form).status, 403, "null without Sec-Fetch-Site");
    assert_eq!(post(&url, Some("null"), &[&c, "Sec-Fetch-Site: same-site"], &form).status, 403);
    assert_eq!(post(&url, Some(&origin), &[&c, "Sec-Fetch-Site: cross-site"], &form).status, 403);
    assert_eq!(post(&url, Some(&origin), &[], &form).status, 403, "no cookie");
    assert_eq!(post(&url, Some(&origin), &["Cookie: psm_dialog=11"], &form).status, 403, "another browser");
    assert_eq!(post(&url, Some(&origin), &[&c], "nonce=00&choice=always").status, 403, "wrong nonce");
    assert_eq!(post(&url, Some(&origin), &[&c], "choice=always").status, 403, "no nonce");
    // A GET never answers.
    assert_eq!(get(&format!("{url}?nonce={nonce}&choice=always"), &[&c]).status, 200);
    // An answer that is not one of the choices shows the form again.
    let r = post(&url, Some(&origin), &[&c], &format!("nonce={nonce}&choice=forever"));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Choose one of the answers"), "{}", r.body);
    // ... and spent that nonce.
    assert_eq!(post(&url, Some(&origin), &[&c], &form).status, 403, "a spent nonce");
    let nonce = r.nonce();
    // Another application cannot answer it through the protocol either.
    let other = DialogApp::connect(&e.d.socket(), "other-app");
    let err = other.client.prompt_answer(id, Some("always")).unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_NOT_FOUND);
    // Nor can the asking application: the user answers in the page.
    assert_eq!(e.app.client.prompt_answer(id, Some("always")).unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
    assert!(!h.is_finished(), "nothing above answered the dialog");

    let r = post(&url, Some(&origin), &[&c], &format!("nonce={nonce}&choice=reject"));
    assert_eq!(r.status, 200);
    let err = h.join().unwrap().unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_CERT_UNKNOWN_ISSUER, "{err:?}");
    // A replay of the answer finds the dialog gone.
    assert_eq!(post(&url, Some(&origin), &[&c], &format!("nonce={nonce}&choice=always")).status, 410);
    // And nothing was stored: the next connection asks again.
    let h = connect_in_thread(&e.app.client, e.server.port());
    let (_, url2, ..) = e.app.next_dialog();
    assert_ne!(url, url2, "every dialog has its own token");
    let (cookie, nonce) = open(&url2);
    post(&url2, Some(&origin_of(&url2)), &[&cookie_header(&cookie)], &format!("nonce={nonce}&action=cancel"));
    assert_eq!(h.join().unwrap().unwrap_err().code, Code::PSM_ERR_USER_CANCELLED);
}

#[test]
fn an_unanswered_dialog_times_out_and_no_ui_fails_at_once() {
    let e = env_with(&["--prompt-timeout", "2"]);
    let h = connect_in_thread(&e.app.client, e.server.port());
    let (id, url, ..) = e.app.next_dialog();
    let err = h.join().unwrap().unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_DIALOG_TIMEOUT, "{err:?}");
    e.app.wait_done(id);
    assert_eq!(get(&url, &[]).status, 410);

    // An application without dialogs or a handler is never left waiting.
    let c = e.d.client();
    let started = Instant::now();
    let err = c.ssl_connect("localhost", e.server.port(), &SslOpts::default()).unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_CERT_UNKNOWN_ISSUER);
    c.token_set_password(None, Some("pw-123456")).unwrap();
    c.token_logout().unwrap();
    assert_eq!(c.token_login(None).unwrap_err().code, Code::PSM_ERR_LOGIN_REQUIRED);
    assert!(started.elapsed() < Duration::from_secs(2), "no dialog wait: {:?}", started.elapsed());
}

#[test]
fn the_token_password_dialog_asks_again_in_the_same_page_after_a_wrong_password() {
    let e = env();
    let admin = e.d.client();
    admin.token_set_password(None, Some("correct horse")).unwrap();
    let c = e.app.client.clone();
    let h = std::thread::spawn(move || c.token_login(None));
    let (id, url, ..) = e.app.next_dialog();
    let (cookie, nonce) = open(&url);
    let c = cookie_header(&cookie);
    let origin = origin_of(&url);
    let r = post(&url, Some(&origin), &[&c], &format!("nonce={nonce}&password=wrong"));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("That password was wrong") && r.body.contains("2 tries left"), "{}", r.body);
    let r = post(&url, Some(&origin), &[&c], &format!("nonce={}&password=correct+horse", r.nonce()));
    assert!(r.body.contains("window.close()"), "{}", r.body);
    h.join().unwrap().expect("logged in through the dialog");
    e.app.wait_done(id);
    // The login is this application's: it can use the token now.
    e.app.client.sdr_encrypt(b"x").expect("the token is unlocked for the application");
}

#[test]
fn a_new_password_dialog_wants_it_typed_twice() {
    let e = env();
    let c = e.app.client.clone();
    let h = std::thread::spawn(move || c.token_set_password(None, None));
    let (_, url, ..) = e.app.next_dialog();
    let (cookie, nonce) = open(&url);
    let c = cookie_header(&cookie);
    let origin = origin_of(&url);
    let r = post(&url, Some(&origin), &[&c], &format!("nonce={nonce}&password=abcdefgh&confirm=abcdefgX"));
    assert!(r.body.contains("The two passwords differ"), "{}", r.body);
    let r = post(
        &url,
        Some(&origin),
        &[&c],
        &format!("nonce={}&password=new-secret-1&confirm=new-secret-1", r.nonce()),
    );
    assert!(r.body.contains("window.close()"), "{}", r.body);
    h.join().unwrap().unwrap();
    // The new password is the token's.
    let other = e.d.client();
    assert_eq!(other.token_login(Some("wrong")).unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
    other.token_login(Some("new-secret-1")).unwrap();
}

#[test]
fn limits_hold_against_slowloris_huge_headers_and_bodies() {
    let e = env();
    let h = connect_in_thread(&e.app.client, e.server.port());
    let (_, url, ..) = e.app.next_dialog();
    let (port, path) = split_url(&url);
    let rss_before = e.d.rss_kib();

    // 500 connections that send half a request and then nothing.
    let mut held = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
        held.push(s);
    }
    let started = Instant::now();
    let r = get(&url, &[]);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    let (cookie, _) = (r.cookie(), r.nonce());
    eprintln!("dialog loaded in {took:?} with 500 slowloris connections held open");

    // A header that never ends: refused after a few KiB, memory bounded.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: ").as_bytes()).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut sent: u64 = 0;
    while sent < (1 << 30) {
        match s.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
    }
    assert!(sent < 1 << 30, "psmd read a 1 GiB header");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    if !out.is_empty() {
        assert_eq!(web::parse(&out).status, 431);
    }
    // A body larger than any form.
    let r = exchange(
        port,
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 1000000000\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 413);
    let r = exchange(
        port,
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 411);
    let grown = e.d.rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "psmd grew by {grown} KiB");

    // The slow connections are cut at the request deadline.
    let mut first = held.remove(0);
    first.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    let _ = first.read_to_end(&mut out);
    assert_eq!(web::parse(&out).status, 408);
    drop(held);

    // The dialog still works.
    let r = get(&url, &[&cookie_header(&cookie)]);
    let r = post(
        &url,
        Some(&origin_of(&url)),
        &[&cookie_header(&cookie)],
        &format!("nonce={}&action=cancel", r.nonce()),
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.join().unwrap().unwrap_err().code, Code::PSM_ERR_USER_CANCELLED);
}

#[test]
fn passwords_typed_in_a_dialog_reach_no_log_or_url() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let d = Daemon::start_logging(&["-vv"], log.reopen().unwrap());
    let app = DialogApp::connect(&d.socket(), "dialog-test");
    let admin = d.client();
    admin.token_set_password(None, Some("Tr0ub4dor-unique-pw")).unwrap();
    let c = app.client.clone();
    let h = std::thread::spawn(move || c.token_login(None));
    let (_, url, ..) = app.next_dialog();
    assert!(!url.contains("Tr0ub4dor"));
    let (cookie, nonce) = open(&url);
    let r = post(
        &url,
        Some(&origin_of(&url)),
        &[&cookie_header(&cookie)],
        &format!("nonce={nonce}&password=Tr0ub4dor-unique-pw"),
    );
    assert!(r.body.contains("window.close()"));
    h.join().unwrap().unwrap();
    // Nothing in psmd's arguments or environment, nor in the dialog's pages.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", d.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("Tr0ub4dor"));
    assert!(!r.body.contains("Tr0ub4dor"));
    let status = d.status().to_string();
    assert!(!status.contains("Tr0ub4dor"), "{status}");
    wait_until("the dialog is gone", || {
        app.events.try_recv().map(|ev| matches!(ev, Event::DialogDone { .. })).unwrap_or(false)
    });
    // The trace-level log saw the dialog, never the password.
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(text.contains("dialog opened"), "the log is psmd's: {text}");
    assert!(!text.contains("Tr0ub4dor"), "the password is in the log");
}

/// Loads `url` and submits `form` (its nonce added) as the page's owner.
fn answer(url: &str, form: &str) -> web::Response {
    let (cookie, nonce) = open(url);
    post(url, Some(&origin_of(url)), &[&cookie_header(&cookie)], &format!("nonce={nonce}&{form}"))
}

#[test]
fn token_password_questions_are_asked_one_at_a_time() {
    let e = env();
    e.d.client().token_set_password(None, Some("shared secret")).unwrap();
    let second = DialogApp::connect(&e.d.socket(), "second-app");
    let (c1, c2) = (e.app.client.clone(), second.client.clone());
    let h1 = std::thread::spawn(move || c1.token_login(None));
    let (id1, url1, ..) = e.app.next_dialog();
    let h2 = std::thread::spawn(move || c2.token_login(None));
    // While the first question is open, the second application waits for
    // its turn: no dialog yet, and its call has not returned.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!second.events.try_iter().any(|ev| matches!(ev, Event::Dialog { .. })));
    assert!(!h2.is_finished());
    assert!(answer(&url1, "password=shared+secret").body.contains("window.close()"));
    h1.join().unwrap().unwrap();
    e.app.wait_done(id1);
    let (_, url2, ..) = second.next_dialog();
    assert!(answer(&url2, "password=shared+secret").body.contains("window.close()"));
    h2.join().unwrap().unwrap();
}

#[test]
fn a_pkcs12_export_password_is_typed_twice_in_a_dialog() {
    let e = env();
    let p12 = e.pki.client_a.pkcs12(Some("mine"), "pw");
    e.app.client.pkcs12_import(&p12, Some("pw")).unwrap();
    let c = e.app.client.clone();
    let fp = e.pki.client_a.sha256_hex();
    let h = std::thread::spawn(move || c.pkcs12_export(&fp, None));
    let (_, url, ..) = e.app.next_dialog();
    let (cookie, nonce) = open(&url);
    let c = cookie_header(&cookie);
    let origin = origin_of(&url);
    let r = post(&url, Some(&origin), &[&c], &format!("nonce={nonce}&password=&confirm="));
    assert!(r.body.contains("must not be empty"), "{}", r.body);
    let r = post(
        &url,
        Some(&origin),
        &[&c],
        &format!("nonce={}&password=export+pw&confirm=export+pw", r.nonce()),
    );
    assert!(r.body.contains("window.close()"), "{}", r.body);
    let der = h.join().unwrap().expect("exported with the typed password");
    // OpenSSL opens it with that password, and finds the key and certificate.
    let parsed = openssl::pkcs12::Pkcs12::from_der(&der).unwrap().parse2("export pw").unwrap();
    assert_eq!(parsed.cert.unwrap().to_der().unwrap(), e.pki.client_a.der);
    assert!(parsed.pkey.is_some());
}

#[test]
fn a_new_token_password_must_meet_the_policys_rules_in_the_dialog() {
    let d = Daemon::start_with_policy("[token]\nmin_password_length = 12\n");
    let app = DialogApp::connect(&d.socket(), "dialog-test");
    let c = app.client.clone();
    let h = std::thread::spawn(move || c.token_set_password(None, None));
    let (_, url, ..) = app.next_dialog();
    let (cookie, nonce) = open(&url);
    let c = cookie_header(&cookie);
    let origin = origin_of(&url);
    let r = get(&url, &[&c]);
    assert!(r.body.contains("At least 12 characters"), "{}", r.body);
    let r = post(&url, Some(&origin), &[&c], &format!("nonce={nonce}&password=short&confirm=short"));
    assert!(r.body.contains("at least 12 characters") && r.body.contains("tries left"), "{}", r.body);
    let r = post(
        &url,
        Some(&origin),
        &[&c],
        &format!("nonce={}&password=long+enough+pw&confirm=long+enough+pw", r.nonce()),
    );
    assert!(r.body.contains("window.close()"), "{}", r.body);
    h.join().unwrap().unwrap();
    d.client().token_login(Some("long enough pw")).unwrap();
}
