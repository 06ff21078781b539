//! S/MIME against real peers: everything psm signs verifies with `openssl
//! cms` and `gpgsm`, everything it encrypts decrypts with `openssl cms`;
//! psm verifies and decrypts what they produce; the verdicts on expired,
//! revoked, untrusted and forged messages; hostile input; and the PKCS#7
//! files of cryptography-vectors.

mod common;

use common::Daemon;
use common::smime::*;
use psm::proto::*;
use psm::{Client, Code};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A daemon whose store trusts the test root for e-mail, knows the
/// intermediate and the CRL, and holds the keys of `with_keys`.
struct World {
    _d: Daemon,
    c: Client,
    pki: SmimePki,
    dir: tempfile::TempDir,
}

impl World {
    fn new(with_keys: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let pki = SmimePki::new(&dir.path().join("pki"));
        let d = Daemon::start();
        let c = d.client();
        c.cert_import(&std::fs::read(pki.ca_pem()).unwrap(), Some("test root"), TRUST_CA_EMAIL).unwrap();
        c.cert_import(&std::fs::read(pki.intermediate_pem()).unwrap(), None, 0).unwrap();
        c.crl_import(&pki.crl_der_bytes()).unwrap();
        for e in pki.leaves() {
            if with_keys.contains(&e.name) {
                c.pkcs12_import(&e.p12_der(), Some(P12_PASSWORD)).unwrap();
            } else if with_keys.contains(&"people") {
                c.cert_import(&e.cert_der(), None, 0).unwrap();
            }
        }
        World { _d: d, c, pki, dir }
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn gpgsm(&self) -> Gpgsm {
        Gpgsm::new(&self.dir.path().join("gnupg"), &self.pki)
    }
}

fn id(e: &Entity) -> String {
    format!("sha256:{}", hex::encode(e.cert.digest(openssl::hash::MessageDigest::sha256()).unwrap()))
}

const MAIL: &[u8] =
    b"Content-Type: text/plain; charset=us-ascii\n\nDear Bob,\n\nthe meeting moves to 5 pm.\n\nAlice\n";

/// The canonical form psm signs and encrypts (RFC 8551 3.1.1: CRLF).
fn canonical(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in b {
        if c == b'\n' && out.last() != Some(&b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

fn form_of(flags: u32) -> Form {
    if flags & SMIME_DER != 0 {
        Form::Der
    } else if flags & SMIME_PEM != 0 {
        Form::Pem
    } else {
        Form::Smime
    }
}

#[test]
fn what_psm_signs_verifies_with_openssl_and_gpgsm() {
    let w = World::new(&["alice", "carol"]);
    let g = w.gpgsm();
    let canon = canonical(MAIL);
    let rsa_flags = [
        0,
        SMIME_DETACHED,
        SMIME_DER,
        SMIME_PEM,
        SMIME_DETACHED | SMIME_DER,
        SMIME_RSA_PSS,
        SMIME_RSA_PSS | SMIME_DETACHED,
        SMIME_SHA384,
        SMIME_SHA512 | SMIME_DETACHED,
    ];
    let ec_flags = [0, SMIME_DETACHED, SMIME_SHA384 | SMIME_DER];
    for (signer, flag_set) in [(&w.pki.alice, &rsa_flags[..]), (&w.pki.carol, &ec_flags[..])] {
        for &flags in flag_set {
            let what = format!("{} flags {flags:#x}", signer.name);
            let signed = w.c.smime_sign(&id(signer), flags, MAIL).unwrap();
            let msg = w.file("signed", &signed);
            let bare_detached = flags & SMIME_DETACHED != 0 && form_of(flags) != Form::Smime;
            let canon_file = w.file("canon.eml", &canon);
            let detached = bare_detached.then_some(canon_file.as_path());
            // A multipart/signed entity is read as a mail reader reads it
            // (text mode); the others byte for byte.
            let binary = form_of(flags) != Form::Smime;
            let out = openssl_cms_verify_mode(
                &msg,
                form_of(flags),
                detached,
                w.pki.ca_pem(),
                binary,
                &["-purpose", "smimesign"],
            );
            let got = out.expect_ok(&what);
            if !bare_detached {
                assert_eq!(got, canon, "{what}: openssl's content");
            }
            if flags & SMIME_DETACHED != 0 && form_of(flags) == Form::Smime {
                let text = String::from_utf8_lossy(&signed);
                let micalg = if flags & SMIME_SHA512 != 0 { "sha-512" } else { "sha-256" };
                assert!(text.contains("multipart/signed"), "{what}");
                assert!(text.contains(&format!("micalg=\"{micalg}\"")), "{what}: {text}");
            }
            let printed = openssl_cms_print(&msg, form_of(flags));
            assert!(printed.contains("signingTime"), "{what}: no signing time");
            assert!(
                printed.contains("SMIMECapabilities") || printed.contains("S/MIME Capabilities"),
                "{what}"
            );
            if flags & SMIME_RSA_PSS != 0 {
                assert!(printed.contains("rsassaPss"), "{what}");
            }
            // gpgsm reads DER only; the fixture splits S/MIME entities.
            let v = match form_of(flags) {
                Form::Smime => {
                    let scratch = w.dir.path().join("scratch");
                    std::fs::create_dir_all(&scratch).unwrap();
                    g.verify_smime(&msg, &scratch)
                }
                Form::Der => g.verify(&msg, detached),
                Form::Pem => continue,
            };
            v.assert_good_from(signer);
        }
    }
}

#[test]
fn what_psm_encrypts_decrypts_with_openssl() {
    let w = World::new(&["alice", "people"]);
    let canon = canonical(MAIL);
    for flags in [0, SMIME_CBC, SMIME_RSA_OAEP, SMIME_DER, SMIME_PEM | SMIME_CBC] {
        let enc =
            w.c.smime_encrypt(&[&id(&w.pki.bob), &id(&w.pki.carol), &id(&w.pki.alice)], flags, MAIL).unwrap();
        let msg = w.file("enc", &enc);
        let printed = openssl_cms_print(&msg, form_of(flags));
        if flags & SMIME_CBC != 0 {
            assert!(printed.contains("aes-256-cbc"), "{flags:#x}: {printed}");
        } else {
            assert!(printed.contains("authEnvelopedData"), "{flags:#x}: {printed}");
            assert!(
                printed.contains("aes-256-gcm") || printed.contains("id-aes256-GCM"),
                "{flags:#x}: {printed}"
            );
        }
        if flags & SMIME_RSA_OAEP != 0 {
            assert!(printed.contains("rsaesOaep"), "{printed}");
        }
        // ECDH with a SHA-256 KDF for carol, not OpenSSL's SHA-1 default.
        assert!(printed.contains("dhSinglePass-stdDH-sha256kdf-scheme"), "{printed}");
        for who in [&w.pki.bob, &w.pki.carol, &w.pki.alice] {
            let got = openssl_cms_decrypt(&msg, form_of(flags), who).expect_ok(who.name);
            assert_eq!(got, canon, "{flags:#x} as {}", who.name);
        }
    }
    // gpgsm 2.2 reads AES-CBC with RSA v1.5 (not GCM, not OAEP).
    let g = w.gpgsm();
    let enc = w.c.smime_encrypt(&[&id(&w.pki.alice)], SMIME_CBC | SMIME_DER, MAIL).unwrap();
    let out = g.decrypt(&w.file("for-gpgsm", &enc));
    assert!(out.ok, "gpgsm: {}", out.stderr);
    assert_eq!(out.stdout, canon);
}

#[test]
fn psm_verifies_and_decrypts_what_openssl_and_gpgsm_make() {
    let w = World::new(&["alice", "bob", "carol"]);
    let content = w.file("content.eml", MAIL);
    let canon = canonical(MAIL);
    for (signer, detached, form, pss) in [
        (&w.pki.alice, false, Form::Smime, false),
        (&w.pki.alice, true, Form::Smime, false),
        (&w.pki.alice, false, Form::Der, true),
        (&w.pki.alice, false, Form::Pem, false),
        (&w.pki.carol, true, Form::Smime, false),
        (&w.pki.carol, false, Form::Der, false),
    ] {
        let what = format!("openssl {} detached={detached} {form:?} pss={pss}", signer.name);
        let opts = SignOptions { detached, form, pss, binary: false, ..Default::default() };
        let signed = openssl_cms_sign(&content, signer, &opts).expect_ok(&what);
        let info = w.c.smime_verify(&signed, None, Some(signer.email()), 0).unwrap();
        assert_eq!(info.status, Code::PSM_OK, "{what}: {}", info.detail);
        assert_eq!(info.content.as_ref(), &canon[..], "{what}");
        assert!(info.signing_time > 0, "{what}");
        assert_eq!(info.chain.len(), 3, "{what}: leaf, intermediate, root");
    }
    // A bare detached DER signature from openssl, content given apart.
    let opts = SignOptions { detached: true, form: Form::Der, ..Default::default() };
    let sig = openssl_cms_sign(&content, &w.pki.alice, &opts).expect_ok("detached DER");
    let info = w.c.smime_verify(&sig, Some(MAIL), None, SMIME_BINARY).unwrap();
    assert_eq!(info.status, Code::PSM_OK, "{}", info.detail);

    let g = w.gpgsm();
    for detached in [false, true] {
        let signed = g.sign(&content, "alice@example.com", detached);
        let info =
            w.c.smime_verify(&signed, detached.then_some(MAIL), Some("alice@example.com"), SMIME_BINARY)
                .unwrap();
        assert_eq!(info.status, Code::PSM_OK, "gpgsm detached={detached}: {}", info.detail);
        if !detached {
            assert_eq!(info.content.as_ref(), MAIL);
        }
    }

    for (cipher, oaep) in
        [("aes-256-gcm", false), ("aes-128-gcm", false), ("aes-256-cbc", true), ("des-ede3-cbc", false)]
    {
        for form in [Form::Smime, Form::Der] {
            let enc = openssl_cms_encrypt(&content, &[&w.pki.bob, &w.pki.carol], cipher, oaep, form)
                .expect_ok(cipher);
            let info = w.c.smime_decrypt(&enc, None, 0).unwrap();
            assert_eq!(info.content.as_ref(), MAIL, "{cipher} {form:?}");
        }
    }
    let enc = g.encrypt(&content, &["bob@example.com"]);
    assert_eq!(w.c.smime_decrypt(&enc, None, 0).unwrap().content.as_ref(), MAIL, "gpgsm");

    // Sign-then-encrypt by openssl (text mode: the signed part is
    // canonical CRLF, as RFC 8551 wants), unwrapped and verified in one call.
    let opts = SignOptions { detached: true, binary: false, ..Default::default() };
    let signed = openssl_cms_sign(&content, &w.pki.alice, &opts).expect_ok("sign");
    let signed_file = w.file("signed.eml", &signed);
    let enc =
        openssl_cms_encrypt(&signed_file, &[&w.pki.bob], "aes-256-gcm", false, Form::Smime).expect_ok("enc");
    let info = w.c.smime_decrypt(&enc, Some("alice@example.com"), SMIME_VERIFY_INNER).unwrap();
    assert!(info.signed && info.encrypted);
    assert_eq!(info.status, Code::PSM_OK, "{}", info.detail);
    assert_eq!(info.content.as_ref(), &canon[..]);
}

#[test]
fn verdicts_name_what_is_wrong() {
    let w = World::new(&["alice", "bob", "people"]);
    let content = w.file("content.eml", MAIL);
    let sign = |e: &Entity| {
        openssl_cms_sign(&content, e, &SignOptions { detached: false, binary: false, ..Default::default() })
            .expect_ok(e.name)
    };
    let verdict = |msg: &[u8], from: Option<&str>| {
        let i = w.c.smime_verify(msg, None, from, 0).unwrap();
        (i.status, i.detail)
    };
    assert_eq!(verdict(&sign(&w.pki.alice), None).0, Code::PSM_OK);
    assert_eq!(verdict(&sign(&w.pki.dave), None).0, Code::PSM_ERR_CERT_EXPIRED);
    assert_eq!(verdict(&sign(&w.pki.eve), None).0, Code::PSM_ERR_CERT_REVOKED);
    let (s, d) = verdict(&sign(&w.pki.alice), Some("bob@example.com"));
    assert_eq!(s, Code::PSM_ERR_SMIME_ADDRESS_MISMATCH, "{d}");
    assert!(d.contains("alice@example.com"), "{d}");
    // The address's domain is case-insensitive, its local part is not.
    assert_eq!(verdict(&sign(&w.pki.alice), Some("alice@EXAMPLE.com")).0, Code::PSM_OK);

    // A signer from a CA nobody trusts.
    let stranger_ca = common::certs::ca("Stranger CA");
    let stranger = common::certs::make(
        &common::certs::Spec {
            cn: "Stranger",
            emails: &["stranger@example.org"],
            serial: 9,
            ..Default::default()
        },
        Some(&stranger_ca),
    );
    let msg = openssl::cms::CmsContentInfo::sign(
        Some(&stranger.cert),
        Some(&stranger.key),
        None,
        Some(MAIL),
        openssl::cms::CMSOptions::empty(),
    )
    .unwrap()
    .to_der()
    .unwrap();
    assert_eq!(verdict(&msg, None).0, Code::PSM_ERR_CERT_UNKNOWN_ISSUER);

    // Content changed after signing, and a forged signature value.
    let detached = openssl_cms_sign(&content, &w.pki.alice, &SignOptions::default()).expect_ok("detached");
    let text = String::from_utf8(detached.clone()).unwrap();
    let altered = text.replacen("5 pm", "6 pm", 1);
    assert_ne!(text, altered);
    assert_eq!(verdict(altered.as_bytes(), None).0, Code::PSM_ERR_SMIME_CONTENT_ALTERED);
    let mut der = openssl_cms_sign(
        &content,
        &w.pki.alice,
        &SignOptions { form: Form::Der, detached: false, ..Default::default() },
    )
    .expect_ok("der");
    let n = der.len();
    der[n - 20] ^= 0x01; // in the RSA signature value, the SignerInfo's last field
    let i = w.c.smime_verify(&der, None, None, 0).unwrap();
    assert_eq!(i.status, Code::PSM_ERR_SMIME_BAD_SIGNATURE, "{}", i.detail);

    // psm neither signs with nor encrypts to a certificate it would reject.
    w.c.pkcs12_import(&w.pki.dave.p12_der(), Some(P12_PASSWORD)).unwrap();
    assert_eq!(w.c.smime_sign(&id(&w.pki.dave), 0, MAIL).unwrap_err().code, Code::PSM_ERR_CERT_EXPIRED);
    assert_eq!(w.c.smime_encrypt(&[&id(&w.pki.eve)], 0, MAIL).unwrap_err().code, Code::PSM_ERR_CERT_REVOKED);
    assert_eq!(
        w.c.smime_sign(&id(&w.pki.carol), 0, MAIL).unwrap_err().code,
        Code::PSM_ERR_NOT_FOUND,
        "no key"
    );

    // Encrypted for somebody else.
    let enc =
        openssl_cms_encrypt(&content, &[&w.pki.carol], "aes-256-gcm", false, Form::Der).expect_ok("enc");
    assert_eq!(w.c.smime_decrypt(&enc, None, 0).unwrap_err().code, Code::PSM_ERR_SMIME_NO_KEY);
    // Verify and decrypt say what a message is when given the wrong one.
    assert_eq!(w.c.smime_verify(&enc, None, None, 0).unwrap_err().code, Code::PSM_ERR_SMIME_NOT_SIGNED);
    assert_eq!(
        w.c.smime_decrypt(&sign(&w.pki.alice), None, 0).unwrap_err().code,
        Code::PSM_ERR_INVALID_ARGUMENT
    );
}

#[test]
fn a_locked_token_is_opened_through_the_prompt_handler() {
    let w = World::new(&["bob"]);
    w.c.token_set_password(None, Some("correct horse")).unwrap();
    let content = w.file("content.eml", MAIL);
    let enc =
        openssl_cms_encrypt(&content, &[&w.pki.bob], "aes-256-gcm", false, Form::Smime).expect_ok("enc");
    let c = w._d.client();
    assert_eq!(c.smime_decrypt(&enc, None, 0).unwrap_err().code, Code::PSM_ERR_LOGIN_REQUIRED);
    // Wrong first, then right: the prompt is asked again.
    let asked: Arc<Mutex<Vec<Prompt>>> = Arc::default();
    let (a2, weak) = (asked.clone(), c.downgrade());
    c.set_prompt_handler(Some(Arc::new(move |p: Prompt| {
        let n = {
            let mut a = a2.lock().unwrap();
            a.push(p.clone());
            a.len()
        };
        let answer = if n == 1 { "wrong" } else { "correct horse" };
        weak.upgrade().unwrap().prompt_answer(p.id, Some(answer)).unwrap();
    })))
    .unwrap();
    let info = c.smime_decrypt(&enc, None, 0).unwrap();
    assert_eq!(info.content.as_ref(), MAIL);
    let asked = asked.lock().unwrap();
    assert_eq!(asked.len(), 2);
    assert!(asked.iter().all(|p| p.kind == PromptKind::Password && p.choices.is_empty()));
    assert!(!asked[0].message.contains("correct horse"));
}

#[test]
fn signers_are_remembered_only_when_asked() {
    let w = World::new(&[]);
    let content = w.file("content.eml", MAIL);
    let signed =
        openssl_cms_sign(&content, &w.pki.alice, &SignOptions { binary: false, ..Default::default() })
            .expect_ok("sign");
    let info = w.c.smime_verify(&signed, None, None, 0).unwrap();
    assert_eq!(info.status, Code::PSM_OK, "{}", info.detail);
    assert!(info.signer.unwrap().nickname.is_empty(), "not stored");
    assert_eq!(w.c.cert_find("alice@example.com").unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
    let info = w.c.smime_verify(&signed, None, None, SMIME_REMEMBER_SIGNER).unwrap();
    assert!(!info.signer.unwrap().nickname.is_empty());
    let alice = w.c.cert_find("alice@example.com").unwrap();
    assert_eq!(alice.trust, 0, "remembered without trust");
    // Now psm can encrypt to her.
    let enc = w.c.smime_encrypt(&["alice@example.com"], 0, MAIL).unwrap();
    let got = openssl_cms_decrypt(&w.file("to-alice", &enc), Form::Smime, &w.pki.alice).expect_ok("decrypt");
    assert_eq!(got, canonical(MAIL));
}

/// The verdict on a damaged message must never be "good" for anything but
/// the original content by the original signer.
fn assert_never_falsely_good(c: &Client, msg: &[u8], what: &str) {
    match c.smime_verify(msg, None, None, 0) {
        Ok(i) if i.status == Code::PSM_OK => {
            assert_eq!(i.content.as_ref(), &canonical(MAIL)[..], "{what}: good, with other content");
        }
        Ok(_) => {}
        Err(e) => assert!(
            matches!(
                e.code,
                Code::PSM_ERR_DECODE
                    | Code::PSM_ERR_SMIME_NOT_SIGNED
                    | Code::PSM_ERR_INVALID_ARGUMENT
                    | Code::PSM_ERR_UNSUPPORTED
            ),
            "{what}: {e}"
        ),
    }
}

#[test]
fn hostile_messages_get_precise_errors() {
    let w = World::new(&["alice", "bob"]);
    let content = w.file("content.eml", MAIL);
    let der = w.c.smime_sign(&id(&w.pki.alice), SMIME_DER, MAIL).unwrap();
    // Truncated at many points, and bit-flipped all over.
    for cut in (0..der.len()).step_by(37) {
        assert_never_falsely_good(&w.c, &der[..cut], &format!("cut at {cut}"));
    }
    for pos in (0..der.len()).step_by(11) {
        let mut m = der.clone();
        m[pos] ^= 1 << (pos % 8);
        assert_never_falsely_good(&w.c, &m, &format!("bit flip at {pos}"));
    }
    let smime = w.c.smime_sign(&id(&w.pki.alice), 0, MAIL).unwrap();
    for cut in (0..smime.len()).step_by(97) {
        assert_never_falsely_good(&w.c, &smime[..cut], &format!("S/MIME cut at {cut}"));
    }

    // Empty input, and an empty message signed.
    assert_eq!(w.c.smime_verify(b"", None, None, 0).unwrap_err().code, Code::PSM_ERR_DECODE);
    assert_eq!(w.c.smime_decrypt(b"", None, 0).unwrap_err().code, Code::PSM_ERR_DECODE);
    let empty = w.c.smime_sign(&id(&w.pki.alice), SMIME_BINARY, b"").unwrap();
    let i = w.c.smime_verify(&empty, None, None, SMIME_BINARY).unwrap();
    assert_eq!(i.status, Code::PSM_OK, "{}", i.detail);
    assert!(i.content.is_empty());

    // Nested multipart 100 deep is not S/MIME.
    let mut nested = String::new();
    for i in 0..100 {
        nested.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"));
    }
    nested.push_str("Content-Type: text/plain\r\n\r\nhi\r\n");
    for i in (0..100).rev() {
        nested.push_str(&format!("--b{i}--\r\n"));
    }
    let e = w.c.smime_verify(nested.as_bytes(), None, None, 0).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_SMIME_NOT_SIGNED, "{e}");
    assert!(e.message.contains("multipart/mixed"), "{e}");
    assert_eq!(w.c.smime_decrypt(nested.as_bytes(), None, 0).unwrap_err().code, Code::PSM_ERR_DECODE);

    // An unknown digest algorithm OID (sha256's last arc changed).
    let sha256_oid = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    let mut unknown = der.clone();
    let mut replaced = 0;
    let mut i = 0;
    while i + sha256_oid.len() <= unknown.len() {
        if unknown[i..i + sha256_oid.len()] == sha256_oid {
            unknown[i + sha256_oid.len() - 1] = 0x7f;
            replaced += 1;
        }
        i += 1;
    }
    assert!(replaced > 0);
    match w.c.smime_verify(&unknown, None, None, 0) {
        Ok(i) => assert_ne!(i.status, Code::PSM_OK, "{}", i.detail),
        Err(e) => assert!(matches!(e.code, Code::PSM_ERR_DECODE | Code::PSM_ERR_UNSUPPORTED), "{e}"),
    }
    // An unknown content cipher.
    let enc = w.c.smime_encrypt(&[&id(&w.pki.bob)], SMIME_DER, MAIL).unwrap();
    let gcm_oid = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2e];
    let pos = enc.windows(gcm_oid.len()).position(|w| w == gcm_oid).expect("aes-256-gcm OID");
    let mut bad = enc.clone();
    bad[pos + gcm_oid.len() - 1] = 0x7f;
    let e = w.c.smime_decrypt(&bad, None, 0).unwrap_err();
    assert!(matches!(e.code, Code::PSM_ERR_UNSUPPORTED | Code::PSM_ERR_DECODE), "{e}");
    // A damaged encrypted key, and damaged ciphertext.
    let mut bad = enc.clone();
    let mid = enc.len() / 3;
    bad[mid] ^= 0x55;
    let e = w.c.smime_decrypt(&bad, None, 0).unwrap_err();
    assert!(
        matches!(
            e.code,
            Code::PSM_ERR_DECODE | Code::PSM_ERR_SMIME_CONTENT_ALTERED | Code::PSM_ERR_SMIME_NO_KEY
        ),
        "{e}"
    );
    let mut bad = enc.clone();
    let n = bad.len();
    bad[n - 30] ^= 0x55;
    let e = w.c.smime_decrypt(&bad, None, 0).unwrap_err();
    assert!(matches!(e.code, Code::PSM_ERR_SMIME_CONTENT_ALTERED | Code::PSM_ERR_DECODE), "{e}");

    // 10,000 recipients: refused precisely, not ground through.
    let bob = w.pki.bob.cert.clone();
    let mut certs = openssl::stack::Stack::new().unwrap();
    for _ in 0..10_000 {
        certs.push(bob.clone()).unwrap();
    }
    let many = openssl::cms::CmsContentInfo::encrypt(
        &certs,
        MAIL,
        openssl::symm::Cipher::aes_256_cbc(),
        openssl::cms::CMSOptions::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let e = w.c.smime_decrypt(&many, None, 0).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_DECODE, "{e}");
    assert!(e.message.contains("10000"), "{e}");

    // 10,000 signers (P-256, cheap to make).
    let carol = &w.pki.carol;
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-nocerts", "-noattr", "-in"])
        .arg(&content);
    for _ in 0..10_000 {
        cmd.arg("-signer").arg(&carol.cert_pem).arg("-inkey").arg(&carol.key_pem);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let i = w.c.smime_verify(&out.stdout, None, None, 0).unwrap();
    assert_eq!(i.status, Code::PSM_ERR_UNSUPPORTED, "{}", i.detail);
    assert!(i.detail.contains("10000"), "{}", i.detail);

    // psmd is still there and still right.
    w.c.ping().unwrap();
    let ok = w.c.smime_verify(&der, None, None, 0).unwrap();
    assert_eq!(ok.status, Code::PSM_OK);
}

fn vectors_file(base: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(base.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn cryptography_vectors_parse_and_decrypt() {
    let base = cryptography_vectors();
    let w = World::new(&[]);
    // The vectors' own CA key, to open the enveloped samples.
    let cert = openssl::x509::X509::from_pem(&vectors_file(&base, "x509/custom/ca/rsa_ca.pem")).unwrap();
    let key = openssl::pkey::PKey::private_key_from_pem(&vectors_file(&base, "x509/custom/ca/rsa_key.pem"))
        .unwrap();
    let p12 = openssl::pkcs12::Pkcs12::builder().name("vectors").pkey(&key).cert(&cert).build2("pw").unwrap();
    w.c.pkcs12_import(&p12.to_der().unwrap(), Some("pw")).unwrap();

    let mut seen = 0;
    for entry in std::fs::read_dir(base.join("pkcs7")).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Each request ends in a result or a precise error; none kills psmd.
        for r in [
            w.c.smime_verify(&data, None, None, 0).map(|i| i.status),
            w.c.smime_decrypt(&data, None, 0).map(|i| i.status),
            w.c.smime_read_certs(&data).map(|_| Code::PSM_OK),
        ] {
            if let Err(e) = r {
                assert!(
                    e.code != Code::PSM_ERR_INTERNAL && e.code != Code::PSM_ERR_DISCONNECTED,
                    "{name}: {e}"
                );
            }
        }
        w.c.ping().unwrap();
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} files under pkcs7/");
    let mut decrypted = 0;
    for v in enveloped_vectors() {
        let data = vectors_file(&base, v.file);
        let r = w.c.smime_decrypt(&data, None, SMIME_BINARY);
        match (v.recipient, v.plaintext) {
            (Some(_), Some(plain)) => {
                assert_eq!(r.unwrap().content.as_ref(), plain, "{}", v.file);
                decrypted += 1;
            }
            (Some(_), None) => {
                assert_eq!(r.unwrap_err().code, Code::PSM_ERR_DECODE, "{}: no content", v.file)
            }
            (None, _) => assert_eq!(r.unwrap_err().code, Code::PSM_ERR_SMIME_NO_KEY, "{}", v.file),
        }
    }
    assert_eq!(decrypted, 2);
    // The certs-only samples read as certificates.
    let certs = w.c.smime_read_certs(&vectors_file(&base, "pkcs7/amazon-roots.p7b")).unwrap();
    assert!(certs.len() >= 2);
    let isrg = w.c.smime_read_certs(&vectors_file(&base, "pkcs7/isrg.pem")).unwrap();
    assert!(!isrg.is_empty());
}
