//! The certificate store end to end: imports in every format, lookups,
//! trust, deletion, CRLs, built-in anchors, bad input leaving the store
//! unchanged, and concurrent trust edits.

mod common;

use common::certs::{self, Spec, ca, make};
use common::{Daemon, RuntimeDir};
use psm::Code;
use psm::proto::{
    CERTS_CA, CERTS_PEOPLE, CERTS_SERVERS, CERTS_USER, TRUST_CA_EMAIL, TRUST_CA_TLS_SERVER, TRUST_DISTRUSTED,
    TRUST_PEER_EMAIL, TRUST_PEER_TLS,
};

fn alice(issuer: &certs::TestCert) -> certs::TestCert {
    make(
        &Spec { cn: "Alice Example", emails: &["alice@Example.COM"], serial: 7, ..Default::default() },
        Some(issuer),
    )
}

#[test]
fn import_pem_der_and_p7b_then_find_by_every_kind_of_name() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("Test Root");
    let leaf = alice(&root);

    let got = c.cert_import(&root.pem(), Some("my root"), TRUST_CA_EMAIL).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].nickname, "my root");
    assert_eq!(got[0].trust, TRUST_CA_EMAIL);
    assert!(got[0].is_ca);
    assert_eq!(got[0].sha256_hex, root.sha256_hex());

    let got = c.cert_import(&leaf.der(), None, 0).unwrap();
    assert_eq!(got[0].nickname, "Alice Example", "derived from the CN");
    assert_eq!(got[0].emails, vec!["alice@example.com".to_string()], "domain lower-cased");
    assert_eq!(got[0].serial_hex, "07");
    assert_eq!(got[0].key_usage, Some(1 | 4), "digitalSignature, keyEncipherment");
    assert_eq!(got[0].ext_key_usage, Some(vec!["clientAuth".to_string(), "emailProtection".to_string()]));
    assert!(!got[0].has_private_key);

    assert_eq!(c.cert_find("my root").unwrap().sha256_hex, root.sha256_hex());
    assert_eq!(c.cert_find("alice@example.com").unwrap().sha256_hex, leaf.sha256_hex());
    assert_eq!(c.cert_find("alice@EXAMPLE.com").unwrap().sha256_hex, leaf.sha256_hex());
    assert_eq!(c.cert_find(&format!("sha256:{}", leaf.sha256_hex())).unwrap().nickname, "Alice Example");
    assert_eq!(c.cert_find("nobody@example.com").unwrap_err().code, Code::PSM_ERR_NOT_FOUND);

    // PKCS#7 certs-only, DER and PEM, with a third certificate.
    let bob =
        make(&Spec { cn: "Bob", emails: &["bob@example.com"], serial: 8, ..Default::default() }, Some(&root));
    let mut stack = openssl::stack::Stack::new().unwrap();
    stack.push(bob.cert.clone()).unwrap();
    stack.push(root.cert.clone()).unwrap();
    let p7 = openssl::pkcs7::Pkcs7::sign(
        &root.cert,
        &root.key,
        &stack,
        b"",
        openssl::pkcs7::Pkcs7Flags::NOSIGS | openssl::pkcs7::Pkcs7Flags::DETACHED,
    );
    // Build a true certs-only bundle with the CLI, as users get them.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("b.pem"), [bob.pem(), root.pem()].concat()).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["crl2pkcs7", "-nocrl", "-outform", "DER", "-certfile"])
        .arg(tmp.path().join("b.pem"))
        .output()
        .unwrap();
    assert!(out.status.success());
    drop(p7);
    let got = c.cert_import(&out.stdout, None, 0).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].nickname, "Bob");
    assert_eq!(got[1].nickname, "my root", "already present: left as it was");
    assert_eq!(c.cert_list(0).unwrap().len(), 3);
}

#[test]
fn lists_filter_cas_people_servers_and_mine() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("Root");
    let server =
        make(&Spec { cn: "www", dns: &["www.example.com"], serial: 2, ..Default::default() }, Some(&root));
    let person = alice(&root);
    for cert in [&root, &server, &person] {
        c.cert_import(&cert.der(), None, 0).unwrap();
    }
    let names = |filter| c.cert_list(filter).unwrap().into_iter().map(|i| i.nickname).collect::<Vec<_>>();
    assert_eq!(names(0), vec!["Alice Example", "Root", "www"]);
    assert_eq!(names(CERTS_CA), vec!["Root"]);
    assert_eq!(names(CERTS_PEOPLE), vec!["Alice Example"]);
    assert_eq!(names(CERTS_SERVERS), vec!["www"]);
    assert_eq!(names(CERTS_PEOPLE | CERTS_SERVERS), vec!["Alice Example", "www"]);
    assert!(names(CERTS_USER).is_empty(), "no keys yet");
    assert_eq!(c.cert_list(1 << 20).unwrap_err().code, Code::PSM_ERR_INVALID_ARGUMENT);
}

#[test]
fn nicknames_are_unique_and_derived_ones_never_clash() {
    let d = Daemon::start();
    let c = d.client();
    let a = make(&Spec { cn: "Same", serial: 1, ..Default::default() }, None);
    let b = make(&Spec { cn: "Same", serial: 2, ..Default::default() }, None);
    let e = make(&Spec { cn: "Other", serial: 3, ..Default::default() }, None);
    assert_eq!(c.cert_import(&a.der(), None, 0).unwrap()[0].nickname, "Same");
    assert_eq!(c.cert_import(&b.der(), None, 0).unwrap()[0].nickname, "Same #2");
    let err = c.cert_import(&e.der(), Some("Same"), 0).unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_EXISTS);
    assert!(err.message.contains("already used"), "{}", err.message);
    for bad in ["", "a@b", "sha256:x", "line\nbreak"] {
        assert_eq!(
            c.cert_import(&e.der(), Some(bad), 0).unwrap_err().code,
            Code::PSM_ERR_INVALID_ARGUMENT,
            "{bad:?}"
        );
    }
    assert_eq!(c.cert_list(0).unwrap().len(), 2, "the refused imports left nothing behind");
}

#[test]
fn duplicate_imports_are_idempotent() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("Dup");
    let first = c.cert_import(&root.pem(), None, 0).unwrap();
    let again = c.cert_import(&root.der(), None, 0).unwrap();
    assert_eq!(first, again);
    assert_eq!(c.cert_list(0).unwrap().len(), 1);
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("Keep");
    c.cert_import(&root.der(), None, 0).unwrap();
    let der = make(&Spec { cn: "x", serial: 9, ..Default::default() }, None).der();
    let mut trailing = der.clone();
    trailing.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"this is not a certificate".to_vec()),
        ("empty", Vec::new()),
        ("truncated", der[..der.len() / 2].to_vec()),
        ("trailing byte", trailing),
        ("bad PEM", b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec()),
        (
            "PEM without certificates",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
        ),
        ("oversized", vec![0x30; 70_000]),
    ];
    for (what, data) in cases {
        let err = c.cert_import(&data, None, 0).unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_DECODE, "{what}: {err}");
    }
    // A PKCS#7 bundle with no certificates.
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .args(["crl2pkcs7", "-nocrl", "-outform", "DER", "-out"])
        .arg(tmp.path().join("empty.p7b"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = c.cert_import(&std::fs::read(tmp.path().join("empty.p7b")).unwrap(), None, 0).unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_DECODE);
    assert!(err.message.contains("no certificates"), "{}", err.message);
    assert_eq!(c.cert_list(0).unwrap().len(), 1);
}

#[test]
fn a_certificate_with_10000_sans_is_refused() {
    let d = Daemon::start();
    let c = d.client();
    let names: Vec<String> = (0..10_000).map(|i| format!("h{i}.example.com")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let big = make(&Spec { cn: "many", dns: &refs, ..Default::default() }, None);
    let err = c.cert_import(&big.der(), None, 0).unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_DECODE);
    assert!(err.message.contains("bytes") || err.message.contains("subjectAltName"), "{}", err.message);
    assert!(c.cert_list(0).unwrap().is_empty());
}

#[test]
fn trust_changes_and_deletion() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("T");
    let info = c.cert_import(&root.der(), None, TRUST_CA_TLS_SERVER).unwrap().remove(0);
    let info = c
        .cert_change_trust(&info.sha256_hex, TRUST_CA_EMAIL | TRUST_DISTRUSTED, TRUST_CA_TLS_SERVER)
        .unwrap();
    assert_eq!(info.trust, TRUST_CA_EMAIL | TRUST_DISTRUSTED);
    assert_eq!(
        c.cert_change_trust(&info.sha256_hex, 1 << 12, 0).unwrap_err().code,
        Code::PSM_ERR_INVALID_ARGUMENT
    );
    assert_eq!(c.cert_change_trust(&"00".repeat(32), 1, 0).unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
    assert_eq!(c.cert_change_trust("nothex", 1, 0).unwrap_err().code, Code::PSM_ERR_INVALID_ARGUMENT);
    c.cert_delete(&info.sha256_hex, false).unwrap();
    assert_eq!(c.cert_find("T").unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
    assert_eq!(c.cert_delete(&info.sha256_hex, false).unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
}

#[test]
fn two_applications_editing_trust_at_once_lose_no_update() {
    let d = Daemon::start();
    let root = ca("Shared");
    let sha = d.client().cert_import(&root.der(), None, 0).unwrap().remove(0).sha256_hex;
    let threads: Vec<_> = [TRUST_PEER_TLS, TRUST_PEER_EMAIL]
        .into_iter()
        .map(|bit| {
            let c = d.client();
            let sha = sha.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    if i % 2 == 0 {
                        c.cert_change_trust(&sha, bit, 0).unwrap();
                    } else {
                        c.cert_change_trust(&sha, 0, bit).unwrap();
                    }
                }
                c.cert_change_trust(&sha, bit, 0).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        d.client().cert_find(&format!("sha256:{sha}")).unwrap().trust,
        TRUST_PEER_TLS | TRUST_PEER_EMAIL
    );
}

/// psmd whose system anchors are exactly the certificates in `bundle`.
fn spawn_with_anchors(rt: &RuntimeDir, bundle: &std::path::Path) -> (common::Reaped, psm::Client) {
    let child = std::process::Command::new(common::PSMD)
        .arg("--socket")
        .arg(rt.socket())
        .env("PSM_PROFILE", rt.profile())
        .env("SSL_CERT_FILE", bundle)
        .env_remove("SSL_CERT_DIR")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let flags = psm::ConnectFlags { no_spawn: true, no_dialogs: true };
    common::wait_until("psmd is up", || psm::Client::connect_to(&rt.socket(), "t", flags).is_ok());
    (common::Reaped(child), psm::Client::connect_to(&rt.socket(), "t", flags).unwrap())
}

#[test]
fn system_anchors_are_built_in_distrustable_and_undeletable() {
    let rt = RuntimeDir::new();
    let anchor = ca("System Root");
    let bundle = rt.dir.path().join("bundle.pem");
    std::fs::write(&bundle, [anchor.pem(), make(&Spec::default(), None).pem()].concat()).unwrap();
    let (child, c) = spawn_with_anchors(&rt, &bundle);
    let all = c.cert_list(0).unwrap();
    assert_eq!(all.len(), 1, "only the CA of the bundle becomes an anchor");
    assert!(all[0].builtin);
    assert_eq!(all[0].trust & TRUST_CA_TLS_SERVER, TRUST_CA_TLS_SERVER);
    let err = c.cert_delete(&all[0].sha256_hex, false).unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_PERMISSION_DENIED);
    assert!(err.message.contains("distrusted"), "{}", err.message);
    c.cert_change_trust(&all[0].sha256_hex, TRUST_DISTRUSTED, 0).unwrap();
    drop(child);

    // A restart keeps the user's distrust; the anchor is not re-added.
    let (child, c) = spawn_with_anchors(&rt, &bundle);
    let all = c.cert_list(0).unwrap();
    assert_eq!(all.len(), 1);
    assert_ne!(all[0].trust & TRUST_DISTRUSTED, 0);
    drop(child);
}

#[test]
fn crls_import_in_der_and_pem_and_older_ones_are_refused() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("CRL Root");
    let tmp = tempfile::tempdir().unwrap();
    let pem = certs::crl(&root, &[7], tmp.path());
    c.crl_import(&pem).unwrap();
    c.crl_import(&pem).unwrap(); // idempotent
    let der = openssl::x509::X509Crl::from_pem(&pem).unwrap().to_der().unwrap();
    c.crl_import(&der).unwrap();
    assert_eq!(c.crl_import(b"not a crl").unwrap_err().code, Code::PSM_ERR_DECODE);
}

#[test]
fn the_store_survives_a_restart() {
    let mut d = Daemon::start();
    let root = ca("Persistent");
    d.client().cert_import(&root.der(), Some("kept"), TRUST_CA_EMAIL).unwrap();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    let d2 = Daemon::restart_in(d);
    let info = d2.client().cert_find("kept").unwrap();
    assert_eq!(info.trust, TRUST_CA_EMAIL);
}

#[test]
fn verification_uses_the_stores_trust_and_says_why() {
    use psm::proto::CertUsage;
    let d = Daemon::start();
    let c = d.client();
    let root = make(
        &Spec { cn: "Verify Root", ca: true, from_days: -60, to_days: 3650, ..Default::default() },
        None,
    );
    let leaf = alice(&root);
    let server =
        make(&Spec { cn: "srv", dns: &["www.example.com"], serial: 3, ..Default::default() }, Some(&root));
    let expired = make(
        &Spec {
            cn: "old",
            emails: &["old@example.com"],
            from_days: -30,
            to_days: -1,
            serial: 4,
            ..Default::default()
        },
        Some(&root),
    );

    // Nothing trusted yet: unknown issuer, and the chain is just the leaf.
    let v = c.cert_verify(&leaf.der(), CertUsage::EmailSigner, Some("alice@example.com"), 0).unwrap();
    assert_eq!(v.status, Code::PSM_ERR_CERT_UNKNOWN_ISSUER, "{}", v.detail);
    assert_eq!(v.chain.len(), 1);

    c.cert_import(&root.der(), Some("vroot"), TRUST_CA_EMAIL).unwrap();
    let v = c.cert_verify(&leaf.der(), CertUsage::EmailSigner, Some("alice@example.com"), 0).unwrap();
    assert_eq!(v.status, Code::PSM_OK, "{}", v.detail);
    assert_eq!(v.chain.len(), 2);
    assert_eq!(v.chain[1].nickname, "vroot", "chain members in the store carry their nickname");

    let v = c.cert_verify(&leaf.der(), CertUsage::EmailSigner, Some("mallory@example.com"), 0).unwrap();
    assert_eq!(v.status, Code::PSM_ERR_CERT_NAME_MISMATCH, "{}", v.detail);

    // Trusted for email only: the same root does not vouch for TLS servers.
    let v = c.cert_verify(&server.der(), CertUsage::TlsServer, Some("www.example.com"), 0).unwrap();
    assert_eq!(v.status, Code::PSM_ERR_CERT_UNKNOWN_ISSUER, "{}", v.detail);
    let r = c.cert_find("vroot").unwrap();
    c.cert_change_trust(&r.sha256_hex, TRUST_CA_TLS_SERVER, 0).unwrap();
    let v = c.cert_verify(&server.der(), CertUsage::TlsServer, Some("www.example.com"), 0).unwrap();
    assert_eq!(v.status, Code::PSM_OK, "{}", v.detail);
    let v = c.cert_verify(&server.der(), CertUsage::TlsServer, Some("evil.example.com"), 0).unwrap();
    assert_eq!(v.status, Code::PSM_ERR_CERT_NAME_MISMATCH);

    let v = c.cert_verify(&expired.der(), CertUsage::EmailSigner, None, 0).unwrap();
    assert_eq!(v.status, Code::PSM_ERR_CERT_EXPIRED, "{}", v.detail);
    assert!(v.detail.contains("expired"), "{}", v.detail);
    // ... but valid at a time when it was.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let at = now - 10 * 86400;
    let v = c.cert_verify(&expired.der(), CertUsage::EmailSigner, None, at).unwrap();
    assert_eq!(v.status, Code::PSM_OK, "at {at}: {}", v.detail);

    // Revoked by an imported CRL.
    let tmp = tempfile::tempdir().unwrap();
    c.crl_import(&certs::crl(&root, &[7], tmp.path())).unwrap();
    let v = c.cert_verify(&leaf.der(), CertUsage::EmailSigner, Some("alice@example.com"), 0).unwrap();
    assert_eq!(v.status, Code::PSM_ERR_CERT_REVOKED, "{}", v.detail);

    // Distrusting the root wins over its trust bits.
    c.cert_change_trust(&r.sha256_hex, TRUST_DISTRUSTED, 0).unwrap();
    let v = c.cert_verify(&server.der(), CertUsage::TlsServer, Some("www.example.com"), 0).unwrap();
    assert_ne!(v.status, Code::PSM_OK, "{}", v.detail);

    // Garbage is refused before verification.
    assert_eq!(c.cert_verify(b"junk", CertUsage::TlsServer, None, 0).unwrap_err().code, Code::PSM_ERR_DECODE);
}
