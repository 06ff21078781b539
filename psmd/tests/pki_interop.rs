//! What psmd's key, CSR, signature and PKCS#12 code produces must be read
//! by the `openssl` command line, and what `openssl` writes (modern and
//! legacy PKCS#12) must be read by psmd. Needs the `openssl` binary.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use openssl::pkey::PKey;
use openssl::x509::X509;
use psm::Code;
use psmd::pki::keys::{self, KeyType, San, SigAlg};
use psmd::pki::pkcs12;

const SUBJECT: &str = "CN=Alice Example,O=Example Org,C=DE,emailAddress=alice@example.com";

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        s(&p)
    }
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().expect("the openssl command line tool is required")
}

/// Runs openssl, asserts it succeeded and returns stdout + stderr.
fn openssl_ok(args: &[&str]) -> String {
    let out = openssl(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

fn public_pem(key: &[u8]) -> Vec<u8> {
    PKey::public_key_from_der(&keys::public_key_der(key).unwrap()).unwrap().public_key_to_pem().unwrap()
}

// ---- certificate requests ---------------------------------------------

#[test]
fn csr_of_every_key_type_verifies_and_shows_subject_and_sans_in_openssl() {
    let dir = Dir::new();
    let sans = [
        San::Dns("alice.example".into()),
        San::Dns("*.alice.example".into()),
        San::Ip("192.0.2.1".parse::<IpAddr>().unwrap()),
        San::Ip("2001:db8::1".parse::<IpAddr>().unwrap()),
        San::Email("alice@example.com".into()),
    ];
    for &(kt, sig_alg) in &[
        (KeyType::EcP256, "ecdsa-with-SHA256"),
        (KeyType::EcP384, "ecdsa-with-SHA384"),
        (KeyType::Ed25519, "ED25519"),
        (KeyType::Rsa2048, "sha256WithRSAEncryption"),
        (KeyType::Rsa3072, "sha256WithRSAEncryption"),
        (KeyType::Rsa4096, "sha256WithRSAEncryption"),
    ] {
        let key = keys::generate(kt).unwrap();
        let csr = keys::make_csr(&key, SUBJECT, &sans).unwrap();
        let path = dir.write(&format!("{kt:?}.csr"), &csr);

        let verified = openssl_ok(&["req", "-inform", "DER", "-in", &path, "-verify", "-noout"]);
        assert!(verified.contains("verify OK"), "{kt:?}: {verified}");

        // RFC 2253 output lists the RDNs most specific first, as we take them.
        let subject =
            openssl_ok(&["req", "-inform", "DER", "-in", &path, "-noout", "-subject", "-nameopt", "RFC2253"]);
        assert_eq!(subject.trim(), format!("subject={SUBJECT}"), "{kt:?}");

        let text = openssl_ok(&["req", "-inform", "DER", "-in", &path, "-noout", "-text"]);
        assert!(
            text.contains(
                "DNS:alice.example, DNS:*.alice.example, IP Address:192.0.2.1, \
                 IP Address:2001:DB8:0:0:0:0:0:1, email:alice@example.com"
            ),
            "{kt:?}: {text}"
        );
        assert!(text.contains(&format!("Signature Algorithm: {sig_alg}")), "{kt:?}: {text}");

        // The request carries the key's public half.
        let pubkey = openssl_ok(&["req", "-inform", "DER", "-in", &path, "-noout", "-pubkey"]);
        assert_eq!(pubkey.as_bytes(), public_pem(&key).as_slice(), "{kt:?}");
    }
}

#[test]
fn csr_subject_with_escapes_and_unicode_reads_back_in_openssl() {
    let dir = Dir::new();
    let key = keys::generate(KeyType::EcP256).unwrap();
    let dn = r"CN=Smith\, John,OU=R\+D,O=Jürgen & Söhne,L=München,ST=Bayern,C=DE";
    let path = dir.write("esc.csr", &keys::make_csr(&key, dn, &[]).unwrap());
    let subject = openssl_ok(&[
        "req",
        "-inform",
        "DER",
        "-in",
        &path,
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253,-esc_msb,utf8",
    ]);
    assert_eq!(subject.trim(), format!("subject={dn}"));
}

#[test]
fn csr_without_sans_has_no_extension_request() {
    let dir = Dir::new();
    let key = keys::generate(KeyType::Ed25519).unwrap();
    let path = dir.write("plain.csr", &keys::make_csr(&key, "CN=plain", &[]).unwrap());
    let text = openssl_ok(&["req", "-inform", "DER", "-in", &path, "-noout", "-text", "-verify"]);
    assert!(!text.contains("Subject Alternative Name"), "{text}");
}

// ---- signatures -------------------------------------------------------

#[test]
fn signatures_verify_with_openssl_dgst_and_pkeyutl() {
    let dir = Dir::new();
    let data_path = dir.write("data", b"the quick brown fox");
    let other_path = dir.write("other", b"the quick brown fox!");
    for &(kt, alg) in &[
        (KeyType::EcP256, SigAlg::EcdsaSha256),
        (KeyType::EcP384, SigAlg::EcdsaSha384),
        (KeyType::Ed25519, SigAlg::Ed25519),
        (KeyType::Rsa2048, SigAlg::RsaPkcs1Sha256),
        (KeyType::Rsa2048, SigAlg::RsaPssSha256),
        (KeyType::Rsa3072, SigAlg::RsaPssSha256),
    ] {
        let key = keys::generate(kt).unwrap();
        let sig = keys::sign(&key, alg, b"the quick brown fox").unwrap();
        let sig_path = dir.write("sig", &sig);
        let pub_path = dir.write("pub.pem", &public_pem(&key));

        let verify = |data: &str, extra: &[&str]| -> Output {
            let mut args: Vec<&str> = match alg {
                SigAlg::Ed25519 => {
                    vec![
                        "pkeyutl", "-verify", "-pubin", "-inkey", &pub_path, "-rawin", "-in", data,
                        "-sigfile", &sig_path,
                    ]
                }
                _ => {
                    let md = if alg == SigAlg::EcdsaSha384 { "-sha384" } else { "-sha256" };
                    vec!["dgst", md, "-verify", &pub_path, "-signature", &sig_path]
                }
            };
            args.extend_from_slice(extra);
            if alg != SigAlg::Ed25519 {
                args.push(data);
            }
            openssl(&args)
        };
        let pss = [
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sigopt",
            "rsa_mgf1_md:sha256",
        ];
        let opts: &[&str] = if alg == SigAlg::RsaPssSha256 { &pss } else { &[] };

        let ok = verify(&data_path, opts);
        assert!(ok.status.success(), "{kt:?} {alg:?}: {}", String::from_utf8_lossy(&ok.stdout));
        assert!(!verify(&other_path, opts).status.success(), "{kt:?} {alg:?} verified other data");
        if alg == SigAlg::RsaPssSha256 {
            // The salt is exactly the digest length, not the maximum.
            let wrong_salt = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:20"];
            assert!(!verify(&data_path, &wrong_salt).status.success());
            // And it is not PKCS#1 v1.5.
            assert!(!verify(&data_path, &[]).status.success());
        }
    }
}

// ---- PKCS#12 ----------------------------------------------------------

/// A key and self-signed certificate made by the openssl CLI (PEM files).
fn cli_key_and_cert(dir: &Dir, name: &str, newkey: &str) -> (String, String) {
    let key = s(&dir.path(&format!("{name}.key")));
    let cert = s(&dir.path(&format!("{name}.crt")));
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        newkey,
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-subj",
        &format!("/CN={name}"),
        "-days",
        "2",
    ]);
    (key, cert)
}

fn pem_key_pkcs8(path: &str) -> Vec<u8> {
    PKey::private_key_from_pem(&std::fs::read(path).unwrap()).unwrap().private_key_to_pkcs8().unwrap()
}

fn pem_cert_der(path: &str) -> Vec<u8> {
    X509::from_pem(&std::fs::read(path).unwrap()).unwrap().to_der().unwrap()
}

#[test]
fn openssl_reads_our_p12_and_reports_aes_pbkdf2_sha256() {
    let dir = Dir::new();
    let (key_pem, cert_pem) = cli_key_and_cert(&dir, "leaf", "rsa:2048");
    let (_, ca_pem) = cli_key_and_cert(&dir, "ca", "rsa:2048");
    let key = pem_key_pkcs8(&key_pem);
    let p12 = pkcs12::build(
        &key,
        &pem_cert_der(&cert_pem),
        &[pem_cert_der(&ca_pem)],
        Some("psm test"),
        "pa55 word",
    )
    .unwrap();
    let p12_path = dir.write("ours.p12", &p12);

    let info = openssl_ok(&["pkcs12", "-in", &p12_path, "-passin", "pass:pa55 word", "-nodes", "-info"]);
    assert!(info.contains("MAC: sha256, Iteration 10000"), "{info}");
    let pbes2 = "PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256";
    assert!(info.contains(&format!("PKCS7 Encrypted data: {pbes2}")), "{info}");
    assert!(info.contains(&format!("Shrouded Keybag: {pbes2}")), "{info}");
    assert!(info.contains("friendlyName: psm test"), "{info}");
    assert_eq!(info.matches("-----BEGIN CERTIFICATE-----").count(), 2, "{info}");

    // The key openssl extracts is ours.
    let out_pem = s(&dir.path("out.pem"));
    openssl_ok(&[
        "pkcs12",
        "-in",
        &p12_path,
        "-passin",
        "pass:pa55 word",
        "-nodes",
        "-nocerts",
        "-out",
        &out_pem,
    ]);
    assert_eq!(pem_key_pkcs8(&out_pem), key);

    let wrong = openssl(&["pkcs12", "-in", &p12_path, "-passin", "pass:wrong", "-nodes", "-info"]);
    assert!(!wrong.status.success());
}

#[test]
fn openssl_reads_our_p12_with_empty_password() {
    let dir = Dir::new();
    let key = keys::generate(KeyType::EcP384).unwrap();
    let csr_path = dir.write("k.csr", &keys::make_csr(&key, "CN=empty", &[]).unwrap());
    let key_path = dir.write("k.der", &key);
    let cert_path = s(&dir.path("k.crt"));
    openssl_ok(&[
        "x509", "-req", "-inform", "DER", "-in", &csr_path, "-key", &key_path, "-keyform", "DER", "-days",
        "1", "-out", &cert_path,
    ]);
    let p12 = pkcs12::build(&key, &pem_cert_der(&cert_path), &[], None, "").unwrap();
    let p12_path = dir.write("empty.p12", &p12);
    let info = openssl_ok(&["pkcs12", "-in", &p12_path, "-passin", "pass:", "-nodes", "-info"]);
    assert!(info.contains("BEGIN PRIVATE KEY"), "{info}");
}

#[test]
fn we_read_openssl_default_p12_with_chain() {
    let dir = Dir::new();
    let (key_pem, cert_pem) = cli_key_and_cert(&dir, "leaf", "rsa:2048");
    let (_, ca_pem) = cli_key_and_cert(&dir, "ca", "ed25519");
    let p12_path = s(&dir.path("cli.p12"));
    openssl_ok(&[
        "pkcs12",
        "-export",
        "-inkey",
        &key_pem,
        "-in",
        &cert_pem,
        "-certfile",
        &ca_pem,
        "-name",
        "cli name",
        "-passout",
        "pass:secret",
        "-out",
        &p12_path,
    ]);
    let info = openssl_ok(&["pkcs12", "-in", &p12_path, "-passin", "pass:secret", "-noout", "-info"]);
    assert!(info.contains("AES-256-CBC"), "{info}");

    let p12 = std::fs::read(&p12_path).unwrap();
    let parsed = pkcs12::parse(&p12, "secret").unwrap();
    assert_eq!(parsed.key_pkcs8.as_deref().unwrap().as_slice(), pem_key_pkcs8(&key_pem).as_slice());
    assert_eq!(parsed.cert.as_deref(), Some(pem_cert_der(&cert_pem).as_slice()));
    assert_eq!(parsed.ca, vec![pem_cert_der(&ca_pem)]);
    assert_eq!(parsed.friendly_name.as_deref(), Some("cli name"));
    let spki =
        X509::from_der(parsed.cert.as_deref().unwrap()).unwrap().public_key().unwrap().public_key_to_der();
    assert_eq!(keys::public_key_der(parsed.key_pkcs8.as_deref().unwrap()).unwrap(), spki.unwrap());

    assert_eq!(pkcs12::parse(&p12, "Secret").unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
    assert_eq!(pkcs12::parse(&p12[..p12.len() - 40], "secret").unwrap_err().code, Code::PSM_ERR_DECODE);
}

/// Writes a `-legacy` (RC2-40 certificates, 3DES key, SHA-1 MAC) file and
/// checks openssl really used those algorithms.
fn legacy_p12(dir: &Dir) -> (String, String, String) {
    let (key_pem, cert_pem) = cli_key_and_cert(dir, "old", "rsa:2048");
    let p12_path = s(&dir.path("legacy.p12"));
    openssl_ok(&[
        "pkcs12",
        "-export",
        "-legacy",
        "-inkey",
        &key_pem,
        "-in",
        &cert_pem,
        "-name",
        "old cert",
        "-passout",
        "pass:oldpw",
        "-out",
        &p12_path,
    ]);
    let info =
        openssl_ok(&["pkcs12", "-legacy", "-in", &p12_path, "-passin", "pass:oldpw", "-noout", "-info"]);
    assert!(info.contains("MAC: sha1"), "{info}");
    assert!(info.contains("PKCS7 Encrypted data: pbeWithSHA1And40BitRC2-CBC"), "{info}");
    assert!(info.contains("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
    (p12_path, key_pem, cert_pem)
}

#[test]
fn we_read_legacy_rc2_and_3des_p12() {
    let dir = Dir::new();
    let (p12_path, key_pem, cert_pem) = legacy_p12(&dir);
    let p12 = std::fs::read(&p12_path).unwrap();
    let parsed = pkcs12::parse(&p12, "oldpw").unwrap();
    assert_eq!(parsed.key_pkcs8.as_deref().unwrap().as_slice(), pem_key_pkcs8(&key_pem).as_slice());
    assert_eq!(parsed.cert.as_deref(), Some(pem_cert_der(&cert_pem).as_slice()));
    assert!(parsed.ca.is_empty());
    assert_eq!(parsed.friendly_name.as_deref(), Some("old cert"));
    assert_eq!(pkcs12::parse(&p12, "newpw").unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
    assert_eq!(pkcs12::parse(&p12[..100], "oldpw").unwrap_err().code, Code::PSM_ERR_DECODE);
}

#[test]
fn we_read_a_3des_only_p12() {
    let dir = Dir::new();
    let (key_pem, cert_pem) = cli_key_and_cert(&dir, "des", "rsa:2048");
    let p12_path = s(&dir.path("des.p12"));
    openssl_ok(&[
        "pkcs12", "-export", "-legacy", "-descert", "-inkey", &key_pem, "-in", &cert_pem, "-passout",
        "pass:pw", "-out", &p12_path,
    ]);
    let info = openssl_ok(&["pkcs12", "-legacy", "-in", &p12_path, "-passin", "pass:pw", "-noout", "-info"]);
    assert!(info.contains("PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
    let parsed = pkcs12::parse(&std::fs::read(&p12_path).unwrap(), "pw").unwrap();
    assert_eq!(parsed.cert.as_deref(), Some(pem_cert_der(&cert_pem).as_slice()));
}

/// A legacy file whose MAC uses MD4, which only the legacy provider has.
fn md4_mac_p12(dir: &Dir) -> String {
    let (key_pem, cert_pem) = cli_key_and_cert(dir, "md4", "rsa:2048");
    let p12_path = s(&dir.path("md4.p12"));
    openssl_ok(&[
        "pkcs12", "-export", "-legacy", "-macalg", "md4", "-inkey", &key_pem, "-in", &cert_pem, "-passout",
        "pass:pw", "-out", &p12_path,
    ]);
    let info = openssl_ok(&["pkcs12", "-legacy", "-in", &p12_path, "-passin", "pass:pw", "-noout", "-info"]);
    assert!(info.contains("MAC: md4"), "{info}");
    p12_path
}

#[test]
fn we_read_a_p12_with_an_md4_mac() {
    let dir = Dir::new();
    let p12 = std::fs::read(md4_mac_p12(&dir)).unwrap();
    assert!(pkcs12::parse(&p12, "pw").unwrap().key_pkcs8.is_some());
    assert_eq!(pkcs12::parse(&p12, "wrong").unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
}

/// Set in the child process of the test below.
const LEGACY_CHILD_ENV: &str = "PSM_TEST_LEGACY_P12";
const MD4_CHILD_ENV: &str = "PSM_TEST_MD4_P12";

#[test]
fn legacy_p12_without_legacy_provider_is_unsupported() {
    let dir = Dir::new();
    let (legacy_path, _, _) = legacy_p12(&dir);
    // The provider is loaded once per process, so the case without it runs
    // in a child with an empty module directory.
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "legacy_child_without_provider", "--ignored", "--nocapture", "--test-threads=1"])
        .env(LEGACY_CHILD_ENV, &legacy_path)
        .env(MD4_CHILD_ENV, md4_mac_p12(&dir))
        .env("OPENSSL_MODULES", s(&dir.path("no-modules-here")))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
#[ignore = "run by legacy_p12_without_legacy_provider_is_unsupported in a child process"]
fn legacy_child_without_provider() {
    let Ok(path) = std::env::var(LEGACY_CHILD_ENV) else { return };
    assert!(!pkcs12::legacy_supported());
    let p12 = std::fs::read(&path).unwrap();
    let err = pkcs12::parse(&p12, "oldpw").unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_UNSUPPORTED, "{err}");
    assert!(err.message.contains("legacy provider"), "{err}");
    // The MAC (SHA-1, default provider) is checked first: a wrong password
    // is still reported as such.
    assert_eq!(pkcs12::parse(&p12, "wrong").unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
    // A MAC that cannot be computed is not a wrong password.
    let md4 = std::fs::read(std::env::var(MD4_CHILD_ENV).unwrap()).unwrap();
    for password in ["pw", "wrong"] {
        let err = pkcs12::parse(&md4, password).unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_UNSUPPORTED, "{err}");
    }
    // Loading failed without losing the default provider: modern files work.
    let key = keys::generate(KeyType::EcP256).unwrap();
    let cert = self_signed(&key);
    let p12 = pkcs12::build(&key, &cert, &[], None, "pw").unwrap();
    assert_eq!(pkcs12::parse(&p12, "pw").unwrap().cert, Some(cert));
}

/// A self-signed certificate for `key`, made by openssl (the library).
fn self_signed(key: &[u8]) -> Vec<u8> {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::x509::X509NameBuilder;
    let pkey = PKey::private_key_from_pkcs8(key).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "self").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&pkey).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
    b.sign(&pkey, MessageDigest::sha256()).unwrap();
    b.build().to_der().unwrap()
}
