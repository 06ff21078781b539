//! Test certificates made at run time with openssl: CAs, leaves, CRLs.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

pub struct TestCert {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl TestCert {
    pub fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }

    pub fn pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.cert.digest(MessageDigest::sha256()).unwrap())
    }
}

pub fn p256() -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap())
        .unwrap()
}

/// What a test certificate should say.
pub struct Spec<'a> {
    pub cn: &'a str,
    pub ca: bool,
    pub emails: &'a [&'a str],
    pub dns: &'a [&'a str],
    /// Validity relative to now, in days.
    pub from_days: i64,
    pub to_days: i64,
    pub serial: u32,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec { cn: "test", ca: false, emails: &[], dns: &[], from_days: -1, to_days: 365, serial: 1 }
    }
}

fn time(days: i64) -> Asn1Time {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    Asn1Time::from_unix(now + days * 86400).unwrap()
}

/// Issued by `issuer`, or self-signed when None.
pub fn make(spec: &Spec<'_>, issuer: Option<&TestCert>) -> TestCert {
    let key = p256();
    TestCert { cert: build(spec, issuer, &key, &key), key }
}

/// A certificate issued by `issuer` for a public key whose private half
/// the test does not have (a key on a token): DER SubjectPublicKeyInfo.
pub fn make_for_public(spec: &Spec<'_>, issuer: &TestCert, public: &[u8]) -> X509 {
    let public = PKey::public_key_from_der(public).unwrap();
    build(spec, Some(issuer), &public, &issuer.key)
}

fn build<T: openssl::pkey::HasPublic>(
    spec: &Spec<'_>,
    issuer: Option<&TestCert>,
    key: &openssl::pkey::PKeyRef<T>,
    self_signer: &PKey<Private>,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, spec.cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(spec.serial).unwrap()).unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name())).unwrap();
    b.set_not_before(&time(spec.from_days)).unwrap();
    b.set_not_after(&time(spec.to_days)).unwrap();
    b.set_pubkey(key).unwrap();
    if spec.ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
    } else {
        b.append_extension(
            KeyUsage::new().critical().digital_signature().key_encipherment().build().unwrap(),
        )
        .unwrap();
        let mut eku = ExtendedKeyUsage::new();
        if !spec.dns.is_empty() {
            eku.server_auth();
        }
        if !spec.emails.is_empty() {
            eku.email_protection();
        }
        eku.client_auth();
        b.append_extension(eku.build().unwrap()).unwrap();
    }
    if !spec.emails.is_empty() || !spec.dns.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for e in spec.emails {
            san.email(e);
        }
        for d in spec.dns {
            san.dns(d);
        }
        let ctx = b.x509v3_context(issuer.map(|i| &*i.cert), None);
        let ext = san.build(&ctx).unwrap();
        b.append_extension(ext).unwrap();
    }
    let signer = issuer.map_or(self_signer, |i| &i.key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

pub fn ca(cn: &str) -> TestCert {
    make(&Spec { cn, ca: true, to_days: 3650, ..Default::default() }, None)
}

/// A CRL from `ca` revoking the given serial numbers (openssl CLI, which
/// the crate cannot drive for CRLs).
pub fn crl(ca: &TestCert, revoked_serials: &[u32], dir: &std::path::Path) -> Vec<u8> {
    let w = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let ca_pem = w("ca.pem", &ca.pem());
    let key_pem = w("ca.key", &ca.key.private_key_to_pem_pkcs8().unwrap());
    let mut index = String::new();
    for s in revoked_serials {
        index.push_str(&format!("R\t391231000000Z\t200101000000Z\t{s:02X}\tunknown\t/CN=revoked\n"));
    }
    w("index.txt", index.as_bytes());
    w("crlnumber", b"01\n");
    // A crlnumber makes a v2 CRL with a CRL Number, as every real CA issues.
    let conf = format!(
        "[ca]\ndefault_ca=d\n[d]\ndatabase={}\ncrlnumber={}\ndefault_md=sha256\ndefault_crl_days=30\n",
        dir.join("index.txt").display(),
        dir.join("crlnumber").display()
    );
    let conf = w("ca.cnf", conf.as_bytes());
    let out = dir.join("crl.der.pem");
    let st = std::process::Command::new("openssl")
        .args(["ca", "-gencrl", "-batch", "-config"])
        .arg(&conf)
        .arg("-cert")
        .arg(&ca_pem)
        .arg("-keyfile")
        .arg(&key_pem)
        .arg("-out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(st.status.success(), "openssl ca -gencrl: {}", String::from_utf8_lossy(&st.stderr));
    std::fs::read(out).unwrap()
}
