//! PKCS#11 tokens with a real module: SoftHSM with tokens made for this
//! test run, and a wrapper module whose C_Sign hangs. Uses psmd's
//! `pkcs11` module directly; no daemon is needed.
//!
//! SoftHSM is one instance per process and reads `SOFTHSM2_CONF` when it
//! is first initialized, so every test shares one configuration made once
//! (by [`fixture`]), and each test uses a token of its own: login state is
//! per token, and tests run in parallel.

mod common;

use common::softhsm::run;

use std::collections::HashMap;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use foreign_types::ForeignType;
use openssl::bn::BigNum;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::{X509, X509NameBuilder};
use psm::Code;
use psmd::pkcs11::ossl::{take_error, token_pkey};
use psmd::pkcs11::{
    KeyKind, Module, Modules, ObjectInfo, ObjectType, Pkcs11Uri, PresenceChange, TokenKey,
    sign::ecdsa_raw_to_der,
};
use psmd::pki::keys::SigAlg;
use zeroize::Zeroizing;

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
const SO_PIN: &str = "87654321";
const USER_PIN: &str = "1234";
const TIMEOUT: Duration = Duration::from_secs(10);

/// The tokens this file makes, one per test that logs in (the OpenSSL
/// key tests share "psm-ossl": none of them logs out).
const TOKENS: &[&str] =
    &["psm-list", "psm-login", "psm-sign", "psm-rsa", "psm-hung", "psm-ossl", "psm-ossl-login"];
/// The tokens that also get an RSA-2048 key and certificate (id 02).
const RSA_TOKENS: &[&str] = &["psm-rsa", "psm-ossl"];

struct Fixture {
    dir: PathBuf,
    /// Each token's EC public key, read from the token (the private key
    /// never leaves it).
    ec_public: HashMap<&'static str, Vec<u8>>,
    rsa_public: HashMap<&'static str, Vec<u8>>,
}

fn pkcs11_tool(conf: &Path, token: &str) -> Command {
    let mut c = Command::new("pkcs11-tool");
    c.env("SOFTHSM2_CONF", conf).args(["--module", SOFTHSM, "--token-label", token]);
    c
}

/// A certificate for `public` (DER SubjectPublicKeyInfo) from a throwaway CA.
fn issue_certificate(public: &[u8], cn: &str) -> Vec<u8> {
    let ca = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let name = |cn: &str| {
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        n.build()
    };
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name(cn)).unwrap();
    b.set_issuer_name(&name("psm test CA")).unwrap();
    b.set_pubkey(&PKey::public_key_from_der(public).unwrap()).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap()).unwrap();
    b.sign(&ca, MessageDigest::sha256()).unwrap();
    b.build().to_der().unwrap()
}

/// A key pair to generate on a token, and the labels of the key and of
/// its certificate (which shares the key's id).
struct KeyPair {
    key_type: &'static str,
    id: &'static str,
    key: &'static str,
    cert: &'static str,
}

/// Generates `pair` on `token`, issues a certificate for it and stores that
/// on the token; returns the public key (DER SubjectPublicKeyInfo).
fn key_and_certificate(conf: &Path, token: &str, pair: &KeyPair, usage: &[&str]) -> Vec<u8> {
    let dir = conf.parent().unwrap();
    let login = ["--login", "--pin", USER_PIN];
    run(pkcs11_tool(conf, token)
        .args(login)
        .args(["--keypairgen", "--key-type", pair.key_type, "--id", pair.id, "--label", pair.key])
        .args(usage));
    let public = dir.join(format!("{token}-{}.der", pair.key));
    run(pkcs11_tool(conf, token)
        .args(["--read-object", "--type", "pubkey", "--id", pair.id, "-o"])
        .arg(&public));
    let public = std::fs::read(&public).unwrap();
    let cert = dir.join(format!("{token}-{}.der", pair.cert));
    std::fs::write(&cert, issue_certificate(&public, &format!("{} of {token}", pair.key))).unwrap();
    run(pkcs11_tool(conf, token)
        .args(login)
        .args(["--write-object"])
        .arg(&cert)
        .args(["--type", "cert", "--id", pair.id, "--label", pair.cert]));
    public
}

/// Makes the SoftHSM configuration and tokens (with separate processes,
/// before this one initializes SoftHSM): every token gets a P-256 key
/// generated on it (id 01) and a certificate for it; the [`RSA_TOKENS`]
/// also get an RSA-2048 key that signs and decrypts, and its certificate
/// (id 02).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pkcs11-softhsm");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        // SAFETY: set once, before any module is loaded, by the first test
        // to get here; the others wait on this OnceLock and nothing else in
        // this binary reads the environment meanwhile.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
        let (mut ec_public, mut rsa_public) = (HashMap::new(), HashMap::new());
        for token in TOKENS {
            run(Command::new("softhsm2-util").env("SOFTHSM2_CONF", &conf).args([
                "--init-token",
                "--free",
                "--label",
                token,
                "--so-pin",
                SO_PIN,
                "--pin",
                USER_PIN,
            ]));
            let ec = KeyPair { key_type: "EC:prime256v1", id: "01", key: "sign-key", cert: "sign-cert" };
            ec_public.insert(*token, key_and_certificate(&conf, token, &ec, &["--usage-sign"]));
            if RSA_TOKENS.contains(token) {
                let rsa = KeyPair { key_type: "rsa:2048", id: "02", key: "rsa-key", cert: "rsa-cert" };
                let usage = ["--usage-sign", "--usage-decrypt"];
                rsa_public.insert(*token, key_and_certificate(&conf, token, &rsa, &usage));
            }
        }
        Fixture { dir, ec_public, rsa_public }
    })
}

fn softhsm_only() -> Modules {
    fixture();
    let mut m = Modules::new(&[PathBuf::from(SOFTHSM)], TIMEOUT);
    m.load(Path::new(SOFTHSM)).unwrap();
    m
}

fn uri(s: &str) -> Pkcs11Uri {
    Pkcs11Uri::parse(s).unwrap()
}

fn pin(p: &str) -> Option<Zeroizing<String>> {
    Some(Zeroizing::new(p.to_owned()))
}

fn verify(public: &PKey<Public>, alg: SigAlg, message: &[u8], signature: &[u8]) -> bool {
    let mut v = Verifier::new(MessageDigest::sha256(), public).unwrap();
    if alg == SigAlg::RsaPssSha256 {
        v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
        v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
        v.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
    }
    v.verify_oneshot(signature, message).unwrap()
}

#[test]
fn lists_tokens_with_label_manufacturer_model_serial_and_flags() {
    let modules = softhsm_only();
    let (tokens, failed) = modules.tokens();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(tokens.iter().any(|t| !t.flags.token_initialized), "SoftHSM's blank token is listed too");
    for label in TOKENS {
        let t =
            tokens.iter().find(|t| t.label == *label).unwrap_or_else(|| panic!("{label} not in {tokens:?}"));
        assert_eq!(t.module, Path::new(SOFTHSM).canonicalize().unwrap());
        assert_eq!(t.manufacturer, "SoftHSM project");
        assert_eq!(t.model, "SoftHSM v2");
        assert!(!t.serial.is_empty());
        assert!(t.flags.token_initialized && t.flags.login_required && t.flags.user_pin_initialized);
        assert!(!t.flags.protected_authentication_path && !t.flags.user_pin_locked);
        assert_eq!(t.library.manufacturer, "SoftHSM");
        // A URI naming the token matches it and no other.
        let by_label = uri(&format!("pkcs11:token={label};serial={}?module-name=softhsm2", t.serial));
        assert_eq!(tokens.iter().filter(|t| by_label.matches_token(t)).count(), 1);
    }
}

#[test]
fn presence_polling_reports_present_tokens_once() {
    let mut modules = softhsm_only();
    let first = modules.poll_presence();
    let inserted = first.iter().filter(|c| matches!(c, PresenceChange::Inserted { .. })).count();
    assert!(inserted >= TOKENS.len(), "{first:?}");
    assert_eq!(modules.poll_presence(), vec![], "nothing changed since the last poll");
    // SoftHSM also offers one more slot, with an uninitialized token in it.
    let slots = modules.loaded()[0].presence().unwrap();
    assert!(slots.iter().filter(|s| s.token_present).count() > TOKENS.len(), "{slots:?}");
}

#[test]
fn a_wrong_pin_is_bad_password_and_the_right_pin_logs_in() {
    let modules = softhsm_only();
    let u = uri("pkcs11:token=psm-login;object=sign-key;type=private");
    // SoftHSM hides private keys until login.
    assert_eq!(modules.find_key(&u).unwrap_err().code, Code::PSM_ERR_LOGIN_REQUIRED);
    let token = modules.tokens().0.into_iter().find(|t| t.label == "psm-login").unwrap();
    let module = &modules.loaded()[0];
    let e = module.login(&token, pin("0000")).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_BAD_PASSWORD);
    assert!(e.message.contains("psm-login") && e.message.contains("wrong PIN"), "{}", e.message);
    assert!(!e.message.contains("0000"));
    module.login(&token, pin(USER_PIN)).unwrap();
    // Logging in twice is fine.
    module.login(&token, pin(USER_PIN)).unwrap();
    let key = modules.find_key(&u).unwrap();
    assert_eq!((key.kind, key.object.id.as_slice()), (KeyKind::Ec, &[1u8][..]));
    module.logout(&token).unwrap();
    assert_eq!(modules.find_key(&u).unwrap_err().code, Code::PSM_ERR_LOGIN_REQUIRED);
    let e = module.sign(&key, SigAlg::EcdsaSha256, b"after logout").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_LOGIN_REQUIRED, "{}", e.message);
}

#[test]
fn finds_the_certificate_and_key_by_uri_and_signs_with_ecdsa_p256() {
    let modules = softhsm_only();
    let certs = modules.find_certificates(&uri("pkcs11:token=psm-sign;object=sign-cert")).unwrap();
    assert_eq!(certs.len(), 1, "{certs:?}");
    let cert = X509::from_der(&certs[0].der).unwrap();
    assert_eq!(certs[0].object.id, [1]);
    assert_eq!(certs[0].token.label, "psm-sign");
    // The certificate is for the key generated on the token.
    assert_eq!(cert.public_key().unwrap().public_key_to_der().unwrap(), fixture().ec_public["psm-sign"]);
    // Certificates are public: no login needed; a type or id that does not
    // match finds nothing.
    assert!(modules.find_certificates(&uri("pkcs11:token=psm-sign;type=private")).unwrap().is_empty());
    assert!(modules.find_certificates(&uri("pkcs11:token=psm-sign;id=%02")).unwrap().is_empty());

    let token = certs[0].token.clone();
    modules.loaded()[0].login(&token, pin(USER_PIN)).unwrap();
    // The key that goes with the certificate: same token, same CKA_ID.
    let key = modules.find_key(&uri("pkcs11:token=psm-sign;id=%01;type=private")).unwrap();
    let message = b"signed on the token, verified by OpenSSL";
    let raw = modules.loaded()[0].sign(&key, SigAlg::EcdsaSha256, message).unwrap();
    assert_eq!(raw.len(), 64, "CKM_ECDSA on P-256 returns r || s");
    let der = ecdsa_raw_to_der(&raw).unwrap();
    assert!(verify(&cert.public_key().unwrap(), SigAlg::EcdsaSha256, message, &der));
    assert!(!verify(&cert.public_key().unwrap(), SigAlg::EcdsaSha256, b"another message", &der));
    // An RSA algorithm with an EC key is refused before the token is asked.
    let e = modules.loaded()[0].sign(&key, SigAlg::RsaPkcs1Sha256, message).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT);
}

#[test]
fn signs_with_an_rsa_key_on_the_token_pkcs1_and_pss() {
    let modules = softhsm_only();
    let token = modules.tokens().0.into_iter().find(|t| t.label == "psm-rsa").unwrap();
    modules.loaded()[0].login(&token, pin(USER_PIN)).unwrap();
    let key = modules.find_key(&uri("pkcs11:token=psm-rsa;object=rsa-key")).unwrap();
    assert_eq!(key.kind, KeyKind::Rsa);
    let public = PKey::public_key_from_der(&fixture().rsa_public["psm-rsa"]).unwrap();
    for alg in [SigAlg::RsaPkcs1Sha256, SigAlg::RsaPssSha256] {
        let sig = modules.loaded()[0].sign(&key, alg, b"RSA on a token").unwrap();
        assert_eq!(sig.len(), 256);
        assert!(verify(&public, alg, b"RSA on a token", &sig), "{alg:?}");
    }
}

#[test]
fn a_module_not_in_the_allowlist_is_refused() {
    fixture();
    let mut modules = Modules::new(&[PathBuf::from("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")], TIMEOUT);
    let e = modules.load(Path::new(SOFTHSM)).err().unwrap();
    assert_eq!(e.code, Code::PSM_ERR_POLICY);
    assert!(e.message.contains(SOFTHSM) && e.message.contains("pkcs11.modules"), "{}", e.message);
    assert!(modules.loaded().is_empty());

    // Listed, but a copy anyone may overwrite.
    let copy = fixture().dir.join("libsofthsm2-copy.so");
    std::fs::copy(SOFTHSM, &copy).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let mut modules = Modules::new(std::slice::from_ref(&copy), TIMEOUT);
    let e = modules.load(&copy).err().unwrap();
    assert_eq!(e.code, Code::PSM_ERR_POLICY);
    assert!(e.message.contains("writable"), "{}", e.message);
}

#[test]
fn a_hung_module_times_out_and_the_other_module_keeps_signing() {
    fixture();
    let sleepy = common::pkcs11_test_module("sleepy_module");
    let timeout = Duration::from_secs(2);
    let mut modules = Modules::new(&[PathBuf::from(SOFTHSM), sleepy.clone()], timeout);
    let plain = modules.load(Path::new(SOFTHSM)).unwrap();
    let hung = modules.load(&sleepy).unwrap();
    let token = plain.tokens().unwrap().into_iter().find(|t| t.label == "psm-hung").unwrap();
    plain.login(&token, pin(USER_PIN)).unwrap();
    let by = |module: &Path| {
        uri(&format!("pkcs11:token=psm-hung;id=%01;type=private?module-path={}", module.display()))
    };
    let plain_key = modules.find_key(&by(plain.path())).unwrap();
    let hung_key = modules.find_key(&by(hung.path())).unwrap();

    let stuck = {
        let hung = hung.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            (hung.sign(&hung_key, SigAlg::EcdsaSha256, b"never signed"), started.elapsed())
        })
    };
    // While the wrapper's C_Sign sleeps, SoftHSM itself keeps signing.
    let public = PKey::public_key_from_der(&fixture().ec_public["psm-hung"]).unwrap();
    let mut signed = 0;
    while !stuck.is_finished() {
        let started = Instant::now();
        let raw = plain.sign(&plain_key, SigAlg::EcdsaSha256, b"meanwhile").unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(verify(&public, SigAlg::EcdsaSha256, b"meanwhile", &ecdsa_raw_to_der(&raw).unwrap()));
        signed += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(signed > 5, "only {signed} signatures while the other module hung");
    let (result, took) = stuck.join().unwrap();
    let e = result.unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_TIMEOUT);
    assert!(
        e.message.contains(&sleepy.display().to_string()) && e.message.contains("C_Sign"),
        "{}",
        e.message
    );
    assert!(took >= timeout && took < timeout + Duration::from_secs(2), "{took:?}");

    // Later calls into the hung module fail at once; the others go on.
    assert!(hung.hung().is_some());
    let started = Instant::now();
    let e = hung.tokens().unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(e.code, Code::PSM_ERR_TIMEOUT);
    assert!(e.message.contains("is hung: C_Sign"), "{}", e.message);
    let (tokens, failed) = modules.tokens();
    assert!(tokens.iter().any(|t| t.label == "psm-hung" && t.module == plain.path()));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, hung.path());
    plain.sign(&plain_key, SigAlg::EcdsaSha256, b"still fine").unwrap();
}

/// Logs in to `label` and returns its module, the private key with CKA_ID
/// `id` and the certificate with the same id, as psmd pairs them.
fn logged_in_key_and_certificate(label: &str, id: u8) -> (Arc<Module>, TokenKey, X509) {
    let modules = softhsm_only();
    let module = modules.loaded()[0].clone();
    let token = module.tokens().unwrap().into_iter().find(|t| t.label == label).unwrap();
    module.login(&token, pin(USER_PIN)).unwrap();
    let key = modules.find_key(&uri(&format!("pkcs11:token={label};id=%{id:02x};type=private"))).unwrap();
    let certs = modules.find_certificates(&uri(&format!("pkcs11:token={label};id=%{id:02x}"))).unwrap();
    assert_eq!(certs.len(), 1, "{certs:?}");
    (module, key, X509::from_der(&certs[0].der).unwrap())
}

/// Signs `data` into a CMS SignedData with the token key and checks the
/// signature with OpenSSL in-process and with the `openssl cms` command.
fn assert_cms_signature_verifies(pkey: &PKey<Private>, cert: &X509, name: &str) {
    let data = b"CMS content signed by a key that stays on the token";
    let cms = CmsContentInfo::sign(Some(cert), Some(pkey), None, Some(data), CMSOptions::BINARY)
        .unwrap_or_else(|e| panic!("{name}: {e} ({:?})", take_error()));
    assert_eq!(take_error(), None);
    let der = cms.to_der().unwrap();

    let mut certs = Stack::new().unwrap();
    certs.push(cert.clone()).unwrap();
    let mut content = Vec::new();
    let mut parsed = CmsContentInfo::from_der(&der).unwrap();
    parsed.verify(Some(&certs), None, None, Some(&mut content), CMSOptions::NOVERIFY).unwrap();
    assert_eq!(content, data);

    let (signed, cert_pem) =
        (fixture().dir.join(format!("{name}.cms")), fixture().dir.join(format!("{name}.pem")));
    std::fs::write(&signed, &der).unwrap();
    std::fs::write(&cert_pem, cert.to_pem().unwrap()).unwrap();
    let out = run(Command::new("openssl")
        .args(["cms", "-verify", "-noverify", "-binary", "-inform", "DER", "-in"])
        .arg(&signed)
        .arg("-certfile")
        .arg(&cert_pem));
    assert_eq!(out, data);
}

/// The OpenSSL key for the key with CKA_ID `id` on "psm-ossl" (1: P-256,
/// 2: RSA-2048), and its certificate.
fn ossl_token_pkey(id: u8) -> (PKey<Private>, X509) {
    let (module, key, cert) = logged_in_key_and_certificate("psm-ossl", id);
    let want = if id == 1 { (KeyKind::Ec, Id::EC) } else { (KeyKind::Rsa, Id::RSA) };
    assert_eq!(key.kind, want.0);
    let pkey = token_pkey(module, key, &cert.to_der().unwrap()).unwrap();
    assert_eq!(pkey.id(), want.1);
    (pkey, cert)
}

#[test]
fn cms_signed_with_an_ec_token_key_verifies_against_its_certificate() {
    let (pkey, cert) = ossl_token_pkey(1);
    assert_cms_signature_verifies(&pkey, &cert, "ossl-ec");
}

#[test]
fn cms_signed_with_an_rsa_token_key_verifies_against_its_certificate() {
    let (pkey, cert) = ossl_token_pkey(2);
    assert_cms_signature_verifies(&pkey, &cert, "ossl-rsa");
}

#[test]
fn rsa_pss_through_openssl_uses_the_raw_private_operation_on_the_token() {
    let (pkey, cert) = ossl_token_pkey(2);
    let message = b"PSS padding is OpenSSL's, the private operation the token's";
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey).unwrap();
    signer.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
    signer.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
    signer.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
    let sig = signer.sign_oneshot_to_vec(message).unwrap();
    assert_eq!(sig.len(), 256);
    assert!(verify(&cert.public_key().unwrap(), SigAlg::RsaPssSha256, message, &sig));
}

#[test]
fn cms_encrypted_to_the_rsa_certificate_decrypts_with_the_token_key() {
    let (pkey, cert) = ossl_token_pkey(2);
    let mut recipients = Stack::new().unwrap();
    recipients.push(cert.clone()).unwrap();
    let secret = b"only the token can unwrap the content key";
    let cms =
        CmsContentInfo::encrypt(&recipients, secret, Cipher::aes_256_cbc(), CMSOptions::BINARY).unwrap();
    let cms = CmsContentInfo::from_der(&cms.to_der().unwrap()).unwrap();
    let plain = cms.decrypt(&pkey, &cert).unwrap_or_else(|e| panic!("{e} ({:?})", take_error()));
    assert_eq!(plain, secret);

    // OAEP: OpenSSL removes the padding from the token's raw result.
    let public = cert.public_key().unwrap();
    let mut enc = PkeyCtx::new(&public).unwrap();
    enc.encrypt_init().unwrap();
    enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    let mut wrapped = Vec::new();
    enc.encrypt_to_vec(b"an OAEP-wrapped key", &mut wrapped).unwrap();
    let mut dec = PkeyCtx::new(&pkey).unwrap();
    dec.decrypt_init().unwrap();
    dec.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    let mut unwrapped = Vec::new();
    dec.decrypt_to_vec(&wrapped, &mut unwrapped).unwrap();
    assert_eq!(unwrapped, b"an OAEP-wrapped key");
}

#[test]
fn before_login_a_token_key_operation_fails_with_login_required() {
    let modules = softhsm_only();
    let module = modules.loaded()[0].clone();
    let token = module.tokens().unwrap().into_iter().find(|t| t.label == "psm-ossl-login").unwrap();
    // Certificates are public: the key is named by its certificate's id
    // before anyone has logged in.
    let cert = modules.find_certificates(&uri("pkcs11:token=psm-ossl-login;id=%01")).unwrap().remove(0);
    let key = TokenKey {
        token: token.clone(),
        object: ObjectInfo { class: ObjectType::PrivateKey, label: "sign-key".into(), id: vec![1] },
        kind: KeyKind::Ec,
    };
    let x509 = X509::from_der(&cert.der).unwrap();
    let pkey = token_pkey(module.clone(), key, &cert.der).unwrap();
    let data = b"signed after login only";
    assert!(CmsContentInfo::sign(Some(&x509), Some(&pkey), None, Some(data), CMSOptions::BINARY).is_err());
    let e = take_error().expect("the token's reason is kept");
    assert_eq!(e.code, Code::PSM_ERR_LOGIN_REQUIRED, "{}", e.message);
    assert!(e.message.contains("psm-ossl-login"), "{}", e.message);
    assert_eq!(take_error(), None, "taking the error clears it");

    module.login(&token, pin(USER_PIN)).unwrap();
    CmsContentInfo::sign(Some(&x509), Some(&pkey), None, Some(data), CMSOptions::BINARY).unwrap();
    assert_eq!(take_error(), None);
}

unsafe extern "C" {
    fn X509_check_private_key(cert: *const openssl_sys::X509, pkey: *const openssl_sys::EVP_PKEY) -> c_int;
}

#[test]
fn a_token_pkey_matches_its_certificate_and_it_and_its_copies_hold_the_module_while_they_live() {
    let (module, key, cert) = logged_in_key_and_certificate("psm-ossl", 2);
    let (_, ec_key, ec_cert) = logged_in_key_and_certificate("psm-ossl", 1);
    let before = Arc::strong_count(&module);
    let pkey = token_pkey(module.clone(), key.clone(), &cert.to_der().unwrap()).unwrap();
    assert_eq!(Arc::strong_count(&module), before + 1, "the key holds the module");
    assert!(pkey.public_eq(&cert.public_key().unwrap()));
    // SAFETY: both pointers are live for the call.
    assert_eq!(unsafe { X509_check_private_key(cert.as_ptr(), pkey.as_ptr()) }, 1);
    // SAFETY: as above.
    assert_eq!(unsafe { X509_check_private_key(ec_cert.as_ptr(), pkey.as_ptr()) }, 0);
    let _ = openssl::error::ErrorStack::get();
    let ec = token_pkey(module.clone(), ec_key, &ec_cert.to_der().unwrap()).unwrap();
    assert!(ec.public_eq(&ec_cert.public_key().unwrap()));
    // SAFETY: as above.
    assert_eq!(unsafe { X509_check_private_key(ec_cert.as_ptr(), ec.as_ptr()) }, 1);

    // A copy of the EC_KEY (EC_KEY_copy) gets a context of its own, and
    // signs on the token too.
    let ec_key = ec.ec_key().unwrap();
    // SAFETY: `ec_key` is live; the copy is new, and `EcKey` frees it.
    let copy = unsafe { EcKey::<Private>::from_ptr(openssl_sys::EC_KEY_dup(ec_key.as_ptr())) };
    assert_eq!(Arc::strong_count(&module), before + 3);
    let digest = openssl::sha::sha256(b"signed with a copy of the key");
    let sig = EcdsaSig::sign(&digest, &copy).unwrap();
    assert!(sig.verify(&digest, &ec_cert.public_key().unwrap().ec_key().unwrap()).unwrap());
    drop((pkey, ec, ec_key, copy));
    assert_eq!(Arc::strong_count(&module), before, "freeing the keys let the module go");

    // A certificate for another kind of key is refused.
    let e = token_pkey(module, key, &ec_cert.to_der().unwrap()).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT, "{}", e.message);
}
