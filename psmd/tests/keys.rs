//! Keys in the soft token end to end: generation with a CSR, binding the
//! issued certificate, signing, the token password (login, logout, change,
//! wrong passwords), PKCS#12 in and out (including legacy files), SDR, and
//! no private key bytes in the database in the clear.

mod common;

use common::Daemon;
use common::certs::{Spec, ca, make};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::x509::{X509, X509Builder, X509Req};
use psm::Code;
use psm::proto::{KeyKind, SigKind};

/// Issues a certificate for `csr_der` from `issuer` (the CSR's key and subject).
fn issue(csr_der: &[u8], issuer: &common::certs::TestCert) -> X509 {
    let req = X509Req::from_der(csr_der).unwrap();
    assert!(req.verify(&req.public_key().unwrap()).unwrap(), "the CSR is signed by its key");
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(req.subject_name()).unwrap();
    b.set_issuer_name(issuer.cert.subject_name()).unwrap();
    b.set_pubkey(&req.public_key().unwrap()).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap()).unwrap();
    b.sign(&issuer.key, MessageDigest::sha256()).unwrap();
    b.build()
}

fn verify_sig(cert: &X509, md: MessageDigest, data: &[u8], sig: &[u8]) -> bool {
    let key = cert.public_key().unwrap();
    let mut v = openssl::sign::Verifier::new(md, &key).unwrap();
    v.update(data).unwrap();
    v.verify(sig).unwrap()
}

#[test]
fn generated_key_signs_a_csr_binds_its_certificate_and_signs_data() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("Key Root");
    let csr = c
        .key_generate(
            KeyKind::EcP256,
            "CN=Alice Key,O=Example",
            Some("alice-key"),
            &["email:alice@example.com"],
        )
        .unwrap();
    let cert = issue(&csr, &root);
    let info = c.cert_import(&cert.to_der().unwrap(), None, 0).unwrap().remove(0);
    assert!(info.has_private_key, "the certificate found its key");
    assert_eq!(info.nickname, "alice-key", "named at generation");
    assert_eq!(c.cert_list(psm::proto::CERTS_USER).unwrap().len(), 1);

    let sig = c.key_sign(&info.sha256_hex, SigKind::EcdsaSha256, b"message").unwrap();
    assert!(verify_sig(&cert, MessageDigest::sha256(), b"message", &sig));
    assert!(!verify_sig(&cert, MessageDigest::sha256(), b"other", &sig));
    let err = c.key_sign(&info.sha256_hex, SigKind::RsaPssSha256, b"m").unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_INVALID_ARGUMENT, "{err}");

    // Deleting the certificate ends its signing at once, cached key or not.
    let again = c.key_sign(&info.sha256_hex, SigKind::EcdsaSha256, b"cached").unwrap();
    assert!(verify_sig(&cert, MessageDigest::sha256(), b"cached", &again));
    c.cert_delete(&info.sha256_hex, true).unwrap();
    assert_eq!(
        c.key_sign(&info.sha256_hex, SigKind::EcdsaSha256, b"m").unwrap_err().code,
        Code::PSM_ERR_NOT_FOUND
    );
    let back = c.cert_import(&cert.to_der().unwrap(), None, 0).unwrap().remove(0);
    assert!(!back.has_private_key, "the key went with the certificate");

    // A certificate without a key in psm cannot sign.
    let other = c.cert_import(&root.der(), None, 0).unwrap().remove(0);
    assert_eq!(
        c.key_sign(&other.sha256_hex, SigKind::EcdsaSha256, b"m").unwrap_err().code,
        Code::PSM_ERR_NOT_FOUND
    );
    assert_eq!(
        c.key_generate(KeyKind::EcP256, "XX=bogus", None, &[]).unwrap_err().code,
        Code::PSM_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        c.key_generate(KeyKind::EcP256, "CN=x", None, &["url:x"]).unwrap_err().code,
        Code::PSM_ERR_INVALID_ARGUMENT
    );
    for bad in ["bad@nick", "sha256:abc", ""] {
        let err = c.key_generate(KeyKind::EcP256, "CN=x", Some(bad), &[]).unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_INVALID_ARGUMENT, "nickname {bad:?}");
    }
}

#[test]
fn every_key_type_generates_and_signs() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("Types Root");
    for (kind, alg, md) in [
        (KeyKind::EcP384, SigKind::EcdsaSha384, Some(MessageDigest::sha384())),
        (KeyKind::Ed25519, SigKind::Ed25519, None),
        (KeyKind::Rsa2048, SigKind::RsaPkcs1Sha256, Some(MessageDigest::sha256())),
    ] {
        let csr = c.key_generate(kind, &format!("CN={kind:?}"), None, &[]).unwrap();
        let cert = issue(&csr, &root);
        let info = c.cert_import(&cert.to_der().unwrap(), None, 0).unwrap().remove(0);
        let sig = c.key_sign(&info.sha256_hex, alg, b"data").unwrap();
        match md {
            Some(md) => assert!(verify_sig(&cert, md, b"data", &sig), "{kind:?}"),
            None => {
                let key = cert.public_key().unwrap();
                let mut v = openssl::sign::Verifier::new_without_digest(&key).unwrap();
                assert!(v.verify_oneshot(&sig, b"data").unwrap());
            }
        }
    }
}

#[test]
fn token_password_login_logout_and_change() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("Pw Root");
    let csr = c.key_generate(KeyKind::EcP256, "CN=pw", None, &[]).unwrap();
    let info = c.cert_import(&issue(&csr, &root).to_der().unwrap(), None, 0).unwrap().remove(0);

    c.token_set_password(None, Some("correct horse")).unwrap();
    // Setting a password locks the token for sessions that did not log in.
    let other = d.client();
    assert_eq!(
        other.key_sign(&info.sha256_hex, SigKind::EcdsaSha256, b"m").unwrap_err().code,
        Code::PSM_ERR_LOGIN_REQUIRED
    );
    assert_eq!(other.token_login(Some("wrong")).unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
    assert_eq!(other.token_login(None).unwrap_err().code, Code::PSM_ERR_LOGIN_REQUIRED);
    other.token_login(Some("correct horse")).unwrap();
    other.key_sign(&info.sha256_hex, SigKind::EcdsaSha256, b"m").unwrap();
    c.sdr_encrypt(b"x").unwrap(); // the session that set the password stays logged in
    let third = d.client();
    assert_eq!(
        third.sdr_encrypt(b"x").unwrap_err().code,
        Code::PSM_ERR_LOGIN_REQUIRED,
        "logins are per session"
    );
    // Destroying a key is a use of the token too.
    assert_eq!(third.cert_delete(&info.sha256_hex, true).unwrap_err().code, Code::PSM_ERR_LOGIN_REQUIRED);
    assert!(third.cert_find(&format!("sha256:{}", info.sha256_hex)).unwrap().has_private_key);
    other.token_logout().unwrap();
    assert_eq!(
        other.key_sign(&info.sha256_hex, SigKind::EcdsaSha256, b"m").unwrap_err().code,
        Code::PSM_ERR_LOGIN_REQUIRED
    );

    assert_eq!(c.token_set_password(Some("nope"), Some("x")).unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
    assert_eq!(c.token_set_password(Some("correct horse"), None).unwrap_err().code, Code::PSM_ERR_NO_UI);
    c.token_set_password(Some("correct horse"), Some("battery staple")).unwrap();

    // The new password survives a restart; the old one does not work.
    let mut d = d;
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait();
    let d = Daemon::restart_in(d);
    let c = d.client();
    assert_eq!(c.token_login(Some("correct horse")).unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
    c.token_login(Some("battery staple")).unwrap();
    c.key_sign(&info.sha256_hex, SigKind::EcdsaSha256, b"m").unwrap();
    // Removing the password unlocks the token for everyone again.
    c.token_set_password(Some("battery staple"), Some("")).unwrap();
    d.client().key_sign(&info.sha256_hex, SigKind::EcdsaSha256, b"m").unwrap();
}

fn openssl_p12(key: &PKey<openssl::pkey::Private>, cert: &X509, password: &str, legacy: bool) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("k.pem"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(tmp.path().join("c.pem"), cert.to_pem().unwrap()).unwrap();
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["pkcs12", "-export", "-name", "from openssl", "-passout"])
        .arg(format!("pass:{password}"))
        .arg("-inkey")
        .arg(tmp.path().join("k.pem"))
        .arg("-in")
        .arg(tmp.path().join("c.pem"));
    if legacy {
        cmd.arg("-legacy");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn pkcs12_import_export_round_trip_with_openssl() {
    let d = Daemon::start();
    let c = d.client();
    let root = ca("P12 Root");
    let leaf = make(
        &Spec { cn: "P12 Leaf", emails: &["p12@example.com"], serial: 5, ..Default::default() },
        Some(&root),
    );
    for legacy in [false, true] {
        let p12 = openssl_p12(&leaf.key, &leaf.cert, "s3cret", legacy);
        assert_eq!(c.pkcs12_import(&p12, Some("wrong")).unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
        assert_eq!(c.pkcs12_import(&p12, None).unwrap_err().code, Code::PSM_ERR_NO_UI);
        let certs = c.pkcs12_import(&p12, Some("s3cret")).unwrap();
        assert!(certs[0].has_private_key, "legacy={legacy}");
        assert_eq!(certs[0].sha256_hex, leaf.sha256_hex());
    }
    assert_eq!(c.pkcs12_import(b"garbage", Some("x")).unwrap_err().code, Code::PSM_ERR_DECODE);
    let sha = leaf.sha256_hex();
    let sig = c.key_sign(&sha, SigKind::EcdsaSha256, b"p12").unwrap();
    assert!(verify_sig(&leaf.cert, MessageDigest::sha256(), b"p12", &sig));

    // Export, and read it back with openssl.
    let out = c.pkcs12_export(&sha, Some("export pw")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("out.p12"), &out).unwrap();
    let info = std::process::Command::new("openssl")
        .args(["pkcs12", "-info", "-nodes", "-passin", "pass:export pw", "-in"])
        .arg(tmp.path().join("out.p12"))
        .output()
        .unwrap();
    assert!(info.status.success(), "{}", String::from_utf8_lossy(&info.stderr));
    let text = String::from_utf8_lossy(&info.stderr) + String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("AES-256-CBC"), "{text}");
    assert!(text.contains("BEGIN PRIVATE KEY"));
    assert_eq!(c.pkcs12_export(&root.sha256_hex(), Some("x")).unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
}

#[test]
fn sdr_round_trips_and_refuses_foreign_or_altered_blobs() {
    let d = Daemon::start();
    let c = d.client();
    let blob = c.sdr_encrypt(b"my mail password").unwrap();
    assert_eq!(c.sdr_decrypt(&blob).unwrap(), b"my mail password");
    let mut bad = blob.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(c.sdr_decrypt(&bad).unwrap_err().code, Code::PSM_ERR_DECODE);
    let other = Daemon::start();
    assert_eq!(
        other.client().sdr_decrypt(&blob).unwrap_err().code,
        Code::PSM_ERR_DECODE,
        "another profile's token"
    );
    assert_eq!(c.sdr_encrypt(&vec![0; 70_000]).unwrap_err().code, Code::PSM_ERR_INVALID_ARGUMENT);
}

#[test]
fn the_database_never_holds_private_key_bytes_in_the_clear() {
    let d = Daemon::start();
    let c = d.client();
    let leaf = make(&Spec { cn: "Secret Holder", serial: 11, ..Default::default() }, None);
    c.pkcs12_import(&openssl_p12(&leaf.key, &leaf.cert, "pw", false), Some("pw")).unwrap();
    let ec = leaf.key.ec_key().unwrap();
    let scalar = ec.private_key().to_vec();
    let pkcs8 = leaf.key.private_key_to_pkcs8().unwrap();
    assert!(scalar.len() >= 31);
    let mut files = 0;
    for entry in std::fs::read_dir(d.rt.profile()).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        files += 1;
        for needle in [&scalar[..], &pkcs8[..]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} contains private key bytes",
                entry.path().display()
            );
        }
    }
    assert!(files >= 1);
}
