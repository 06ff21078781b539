//! Unit tests for the verifier, on a small PKI built at run time with openssl.

use super::*;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509CrlBuilder, X509NameBuilder, X509RevokedBuilder};
use std::sync::atomic::{AtomicU32, Ordering};

/// The verification time of every test: 2025-06-15T16:00:00Z.
const NOW: u64 = 1_750_003_200;
const DAY: i64 = 86_400;

/// A certificate with its key.
struct Issued {
    cert: X509,
    key: PKey<Private>,
}

impl Issued {
    fn der(&self) -> Vec<u8> {
        self.cert.to_der().expect("certificate DER")
    }
}

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("PKey")
}

/// What to put in a test certificate.
#[derive(Clone)]
struct Spec<'a> {
    cn: &'a str,
    email_in_subject: Option<&'a str>,
    ca: Option<Option<u32>>,
    eku: &'a [&'a str],
    key_usage: &'a [&'a str],
    dns: &'a [&'a str],
    ips: &'a [&'a str],
    emails: &'a [&'a str],
    /// Validity, in seconds relative to NOW.
    from: i64,
    until: i64,
}

impl<'a> Spec<'a> {
    fn ca(cn: &'a str) -> Spec<'a> {
        Spec { ca: Some(None), key_usage: &["keyCertSign", "cRLSign"], ..Spec::leaf(cn) }
    }

    fn leaf(cn: &'a str) -> Spec<'a> {
        Spec {
            cn,
            email_in_subject: None,
            ca: None,
            eku: &[],
            key_usage: &[],
            dns: &[],
            ips: &[],
            emails: &[],
            from: -DAY,
            until: 365 * DAY,
        }
    }

    fn server(cn: &'a str, dns: &'a [&'a str]) -> Spec<'a> {
        Spec { eku: &["serverAuth"], key_usage: &["digitalSignature"], dns, ..Spec::leaf(cn) }
    }
}

static SERIAL: AtomicU32 = AtomicU32::new(1);

/// Issues `spec` with a fresh key, signed by `issuer` (self-signed if None).
fn issue(spec: &Spec<'_>, issuer: Option<&Issued>) -> Issued {
    issue_with_key(spec, issuer, new_key())
}

fn issue_with_key(spec: &Spec<'_>, issuer: Option<&Issued>, key: PKey<Private>) -> Issued {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, spec.cn).unwrap();
    if let Some(email) = spec.email_in_subject {
        name.append_entry_by_nid(Nid::PKCS9_EMAILADDRESS, email).unwrap();
    }
    let name = name.build();

    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(SERIAL.fetch_add(1, Ordering::Relaxed) + 1000).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name())).unwrap();
    b.set_pubkey(&key).unwrap();
    let at = |offset: i64| Asn1Time::from_unix(NOW as i64 + offset).unwrap();
    b.set_not_before(&at(spec.from)).unwrap();
    b.set_not_after(&at(spec.until)).unwrap();

    if let Some(pathlen) = spec.ca {
        let mut bc = BasicConstraints::new();
        bc.critical().ca();
        if let Some(n) = pathlen {
            bc.pathlen(n);
        }
        b.append_extension(bc.build().unwrap()).unwrap();
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None)).unwrap();
        b.append_extension(ski).unwrap();
    }
    if !spec.key_usage.is_empty() {
        let mut ku = KeyUsage::new();
        ku.critical();
        for bit in spec.key_usage {
            match *bit {
                "digitalSignature" => ku.digital_signature(),
                "nonRepudiation" => ku.non_repudiation(),
                "keyEncipherment" => ku.key_encipherment(),
                "keyAgreement" => ku.key_agreement(),
                "keyCertSign" => ku.key_cert_sign(),
                "cRLSign" => ku.crl_sign(),
                other => panic!("unknown key usage {other}"),
            };
        }
        b.append_extension(ku.build().unwrap()).unwrap();
    }
    if !spec.eku.is_empty() {
        let mut eku = ExtendedKeyUsage::new();
        for purpose in spec.eku {
            match *purpose {
                "serverAuth" => eku.server_auth(),
                "clientAuth" => eku.client_auth(),
                "emailProtection" => eku.email_protection(),
                "codeSigning" => eku.code_signing(),
                other => eku.other(other),
            };
        }
        b.append_extension(eku.build().unwrap()).unwrap();
    }
    if !(spec.dns.is_empty() && spec.ips.is_empty() && spec.emails.is_empty()) {
        let mut san = SubjectAlternativeName::new();
        spec.dns.iter().for_each(|d| _ = san.dns(d));
        spec.ips.iter().for_each(|ip| _ = san.ip(ip));
        spec.emails.iter().for_each(|e| _ = san.email(e));
        let ext = san.build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None)).unwrap();
        b.append_extension(ext).unwrap();
    }
    b.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256()).unwrap();
    Issued { cert: b.build(), key }
}

/// A CRL from `ca` revoking `revoked`.
fn crl(ca: &Issued, revoked: &[&Issued]) -> Vec<u8> {
    let mut b = X509CrlBuilder::new().unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.set_last_update(&Asn1Time::from_unix(NOW as i64 - DAY).unwrap()).unwrap();
    b.set_next_update(&Asn1Time::from_unix(NOW as i64 + 7 * DAY).unwrap()).unwrap();
    for cert in revoked {
        let mut entry = X509RevokedBuilder::new().unwrap();
        entry.set_serial_number(cert.cert.serial_number()).unwrap();
        entry.set_revocation_date(&Asn1Time::from_unix(NOW as i64 - 3600).unwrap()).unwrap();
        b.add_revoked(entry.build()).unwrap();
    }
    let context_holder = X509Builder::new().unwrap();
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&context_holder.x509v3_context(Some(&ca.cert), None))
        .unwrap();
    b.append_extension(aki).unwrap();
    b.append_extension(CrlNumber::new(BigNum::from_u32(1).unwrap()).unwrap().build().unwrap()).unwrap();
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    b.build().unwrap().to_der().unwrap()
}

/// root -> intermediate, the usual shape.
struct Pki {
    root: Issued,
    inter: Issued,
}

impl Pki {
    fn new() -> Pki {
        let root = issue(&Spec::ca("Test Root"), None);
        let inter = issue(&Spec::ca("Test Intermediate"), Some(&root));
        Pki { root, inter }
    }

    fn trust(&self) -> TrustSet {
        TrustSet {
            anchors: vec![self.root.der()],
            intermediates: vec![self.inter.der()],
            ..TrustSet::default()
        }
    }

    fn leaf(&self, spec: &Spec<'_>) -> Issued {
        issue(spec, Some(&self.inter))
    }
}

fn check(verdict: &Verdict, status: Status, detail_has: &str) {
    assert_eq!(verdict.status, status, "unexpected verdict: {}", verdict.detail);
    assert!(verdict.detail.contains(detail_has), "detail {:?} should mention {detail_has:?}", verdict.detail);
}

#[test]
fn server_leaf_under_an_intermediate_is_valid_and_returns_the_whole_chain() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &pki.trust());
    check(&verdict, Status::Valid, "CN=www.example.com <- CN=Test Intermediate <- CN=Test Root");
    assert_eq!(verdict.chain, vec![leaf.der(), pki.inter.der(), pki.root.der()]);
}

#[test]
fn client_leaf_is_valid_for_client_auth_without_a_name() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec { eku: &["clientAuth"], ..Spec::leaf("Client") });
    check(&verify(&leaf.der(), Usage::TlsClient, Name::None, NOW, &pki.trust()), Status::Valid, "TLS client");
}

#[test]
fn server_only_leaf_is_wrong_usage_for_client_auth() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let verdict = verify(&leaf.der(), Usage::TlsClient, Name::None, NOW, &pki.trust());
    check(&verdict, Status::WrongUsage, "allows only serverAuth");
    assert_eq!(verdict.chain, vec![leaf.der()]);
}

#[test]
fn intermediate_restricted_to_server_auth_cannot_issue_email_certificates() {
    let root = issue(&Spec::ca("Test Root"), None);
    let inter = issue(&Spec { eku: &["serverAuth"], ..Spec::ca("TLS-only CA") }, Some(&root));
    let leaf = issue(&Spec { emails: &["alice@example.com"], ..Spec::leaf("Alice") }, Some(&inter));
    let trust =
        TrustSet { anchors: vec![root.der()], intermediates: vec![inter.der()], ..TrustSet::default() };
    let verdict = verify(&leaf.der(), Usage::EmailSigner, Name::Email("alice@example.com"), NOW, &trust);
    check(&verdict, Status::WrongUsage, "a CA above CN=Alice restricts");
}

#[test]
fn code_signing_requires_the_code_signing_eku_on_the_leaf() {
    let pki = Pki::new();
    let signer =
        pki.leaf(&Spec { eku: &["codeSigning"], key_usage: &["digitalSignature"], ..Spec::leaf("Signer") });
    check(
        &verify(&signer.der(), Usage::CodeSigning, Name::None, NOW, &pki.trust()),
        Status::Valid,
        "code signing",
    );
    let no_eku = pki.leaf(&Spec::leaf("No EKU"));
    check(
        &verify(&no_eku.der(), Usage::CodeSigning, Name::None, NOW, &pki.trust()),
        Status::WrongUsage,
        "no extended key usage extension",
    );
}

#[test]
fn email_leaf_with_email_protection_is_valid_for_signing_and_receiving() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec {
        eku: &["emailProtection"],
        key_usage: &["digitalSignature", "keyEncipherment"],
        emails: &["alice@example.com"],
        ..Spec::leaf("Alice")
    });
    for usage in [Usage::EmailSigner, Usage::EmailRecipient] {
        let verdict = verify(&leaf.der(), usage, Name::Email("alice@example.com"), NOW, &pki.trust());
        check(&verdict, Status::Valid, "as alice@example.com");
    }
}

#[test]
fn email_leaf_without_any_eku_extension_is_acceptable_per_rfc_8550() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec { emails: &["alice@example.com"], ..Spec::leaf("Alice") });
    let verdict =
        verify(&leaf.der(), Usage::EmailSigner, Name::Email("alice@example.com"), NOW, &pki.trust());
    check(&verdict, Status::Valid, "signing e-mail");
}

#[test]
fn email_leaf_with_any_extended_key_usage_is_acceptable_per_rfc_8550() {
    let pki = Pki::new();
    let leaf =
        pki.leaf(&Spec { eku: &["2.5.29.37.0"], emails: &["alice@example.com"], ..Spec::leaf("Alice") });
    let verdict =
        verify(&leaf.der(), Usage::EmailSigner, Name::Email("alice@example.com"), NOW, &pki.trust());
    check(&verdict, Status::Valid, "signing e-mail");
}

#[test]
fn email_key_usage_must_fit_signing_or_receiving() {
    let pki = Pki::new();
    let signing_only = pki.leaf(&Spec {
        key_usage: &["digitalSignature"],
        emails: &["alice@example.com"],
        ..Spec::leaf("Alice signing")
    });
    let name = Name::Email("alice@example.com");
    check(
        &verify(&signing_only.der(), Usage::EmailSigner, name, NOW, &pki.trust()),
        Status::Valid,
        "signing",
    );
    check(
        &verify(&signing_only.der(), Usage::EmailRecipient, name, NOW, &pki.trust()),
        Status::WrongUsage,
        "lacks keyEncipherment or keyAgreement",
    );
    let encryption_only = pki.leaf(&Spec {
        key_usage: &["keyAgreement"],
        emails: &["alice@example.com"],
        ..Spec::leaf("Alice encryption")
    });
    check(&verify(&encryption_only.der(), Usage::EmailRecipient, name, NOW, &pki.trust()), Status::Valid, "");
    check(
        &verify(&encryption_only.der(), Usage::EmailSigner, name, NOW, &pki.trust()),
        Status::WrongUsage,
        "lacks digitalSignature or nonRepudiation",
    );
}

#[test]
fn email_domain_matches_ignoring_case_but_local_part_must_be_exact() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec { emails: &["alice@example.com"], ..Spec::leaf("Alice") });
    let der = leaf.der();
    let trust = pki.trust();
    check(
        &verify(&der, Usage::EmailSigner, Name::Email("alice@EXAMPLE.Com"), NOW, &trust),
        Status::Valid,
        "",
    );
    check(
        &verify(&der, Usage::EmailSigner, Name::Email("Alice@example.com"), NOW, &trust),
        Status::NameMismatch,
        "valid for alice@example.com, not for Alice@example.com",
    );
}

#[test]
fn email_mismatch_names_the_certificate_addresses() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec { emails: &["alice@example.com", "a@example.org"], ..Spec::leaf("Alice") });
    let verdict =
        verify(&leaf.der(), Usage::EmailRecipient, Name::Email("bob@example.com"), NOW, &pki.trust());
    check(&verdict, Status::NameMismatch, "alice@example.com, a@example.org, not for bob@example.com");
    let not_an_address =
        verify(&leaf.der(), Usage::EmailRecipient, Name::Email("@example.com"), NOW, &pki.trust());
    check(&not_an_address, Status::NameMismatch, "is not an e-mail address");
}

#[test]
fn email_address_in_the_subject_only_is_recognised() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec { email_in_subject: Some("carol@example.com"), ..Spec::leaf("Carol") });
    let verdict =
        verify(&leaf.der(), Usage::EmailSigner, Name::Email("carol@example.com"), NOW, &pki.trust());
    check(&verdict, Status::Valid, "carol@example.com");
}

#[test]
fn dns_name_matches_san_entries_and_wildcards_but_not_the_common_name() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("cn-only.example.com", &["www.example.com", "*.api.example.com"]));
    let der = leaf.der();
    let trust = pki.trust();
    check(&verify(&der, Usage::TlsServer, Name::Dns("WWW.Example.com"), NOW, &trust), Status::Valid, "");
    check(&verify(&der, Usage::TlsServer, Name::Dns("v1.api.example.com"), NOW, &trust), Status::Valid, "");
    check(
        &verify(&der, Usage::TlsServer, Name::Dns("cn-only.example.com"), NOW, &trust),
        Status::NameMismatch,
        "valid for www.example.com, *.api.example.com, not for cn-only.example.com",
    );
    check(
        &verify(&der, Usage::TlsServer, Name::Dns("not a host"), NOW, &trust),
        Status::NameMismatch,
        "not a valid DNS name",
    );
}

#[test]
fn ip_name_matches_only_san_ip_addresses() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec { ips: &["192.0.2.1", "2001:db8::1"], ..Spec::server("192.0.2.7", &[]) });
    let der = leaf.der();
    let trust = pki.trust();
    for ip in ["192.0.2.1", "2001:db8::1"] {
        check(&verify(&der, Usage::TlsServer, Name::parse(ip), NOW, &trust), Status::Valid, ip);
    }
    check(
        &verify(&der, Usage::TlsServer, Name::parse("192.0.2.7"), NOW, &trust),
        Status::NameMismatch,
        "192.0.2.7",
    );
}

#[test]
fn name_parse_tells_dns_ip_and_email_apart() {
    assert_eq!(Name::parse(""), Name::None);
    assert_eq!(Name::parse("example.com"), Name::Dns("example.com"));
    assert_eq!(Name::parse("192.0.2.1"), Name::Ip("192.0.2.1".parse().unwrap()));
    assert_eq!(Name::parse("2001:db8::1"), Name::Ip("2001:db8::1".parse().unwrap()));
    assert_eq!(Name::parse("user@example.com"), Name::Email("user@example.com"));
}

#[test]
fn expired_leaf_is_expired_and_says_when() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec {
        from: -30 * DAY,
        until: -DAY,
        ..Spec::server("old.example.com", &["old.example.com"])
    });
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("old.example.com"), NOW, &pki.trust());
    check(&verdict, Status::Expired, "certificate CN=old.example.com expired on 2025-06-14T16:00:00Z");
    assert!(verdict.detail.contains("checked at 2025-06-15T16:00:00Z"), "{}", verdict.detail);
}

#[test]
fn not_yet_valid_leaf_is_not_yet_valid_and_says_from_when() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec { from: DAY, ..Spec::server("new.example.com", &["new.example.com"]) });
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("new.example.com"), NOW, &pki.trust());
    check(&verdict, Status::NotYetValid, "is not valid before 2025-06-16T16:00:00Z");
}

#[test]
fn expired_intermediate_is_named_in_the_detail() {
    let root = issue(&Spec::ca("Test Root"), None);
    let inter = issue(&Spec { from: -30 * DAY, until: -DAY, ..Spec::ca("Old Intermediate") }, Some(&root));
    let leaf = issue(&Spec::server("www.example.com", &["www.example.com"]), Some(&inter));
    let trust =
        TrustSet { anchors: vec![root.der()], intermediates: vec![inter.der()], ..TrustSet::default() };
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Expired, "issuing CA certificate CN=Old Intermediate expired");
}

#[test]
fn expired_root_is_refused_like_nss_does() {
    let root = issue(&Spec { from: -30 * DAY, until: -DAY, ..Spec::ca("Old Root") }, None);
    let leaf = issue(&Spec::server("www.example.com", &["www.example.com"]), Some(&root));
    let trust = TrustSet { anchors: vec![root.der()], ..TrustSet::default() };
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Expired, "trusted root certificate CN=Old Root expired");
}

#[test]
fn leaf_from_an_unknown_ca_is_unknown_issuer_naming_that_ca() {
    let pki = Pki::new();
    let stranger = issue(&Spec::ca("Stranger CA"), None);
    let leaf = issue(&Spec::server("www.example.com", &["www.example.com"]), Some(&stranger));
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &pki.trust());
    check(
        &verdict,
        Status::UnknownIssuer,
        "no trusted issuer found for CN=www.example.com: its issuer CN=Stranger CA",
    );
    assert_eq!(verdict.chain, vec![leaf.der()]);
}

#[test]
fn missing_link_is_unknown_issuer_naming_where_the_path_ends() {
    let root = issue(&Spec::ca("Test Root"), None);
    let unknown_root = issue(&Spec::ca("Unknown Root"), None);
    let inter = issue(&Spec::ca("Orphan Intermediate"), Some(&unknown_root));
    let leaf = issue(&Spec::server("www.example.com", &["www.example.com"]), Some(&inter));
    let trust =
        TrustSet { anchors: vec![root.der()], intermediates: vec![inter.der()], ..TrustSet::default() };
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::UnknownIssuer, "ends at CN=Orphan Intermediate, whose issuer CN=Unknown Root");
}

#[test]
fn expired_leaf_from_an_unknown_ca_reports_expired_first() {
    let stranger = issue(&Spec::ca("Stranger CA"), None);
    let leaf = issue(
        &Spec { until: -DAY, from: -9 * DAY, ..Spec::server("a.example", &["a.example"]) },
        Some(&stranger),
    );
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("a.example"), NOW, &Pki::new().trust());
    check(&verdict, Status::Expired, "expired on");
}

#[test]
fn tampered_certificate_is_bad_signature() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("tamper-me.example.com", &["www.example.com"]));
    let mut der = leaf.der();
    let at = der.windows(9).position(|w| w == b"tamper-me").expect("CN in DER");
    der[at] = b'T';
    let verdict = verify(&der, Usage::TlsServer, Name::Dns("www.example.com"), NOW, &pki.trust());
    check(&verdict, Status::BadSignature, "does not verify");
}

#[test]
fn revoked_leaf_is_revoked_by_its_ca_crl_and_others_stay_valid() {
    let pki = Pki::new();
    let revoked = pki.leaf(&Spec::server("revoked.example.com", &["revoked.example.com"]));
    let fine = pki.leaf(&Spec::server("fine.example.com", &["fine.example.com"]));
    let trust = TrustSet { crls: vec![crl(&pki.inter, &[&revoked])], ..pki.trust() };
    let verdict = verify(&revoked.der(), Usage::TlsServer, Name::Dns("revoked.example.com"), NOW, &trust);
    check(&verdict, Status::Revoked, "certificate CN=revoked.example.com (serial ");
    assert!(verdict.detail.contains("was revoked on 2025-06-15T15:00:00Z"), "{}", verdict.detail);
    let verdict = verify(&fine.der(), Usage::TlsServer, Name::Dns("fine.example.com"), NOW, &trust);
    check(&verdict, Status::Valid, "");
}

#[test]
fn revoked_intermediate_revokes_the_leaves_below_it() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let trust = TrustSet { crls: vec![crl(&pki.root, &[&pki.inter])], ..pki.trust() };
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Revoked, "issuing CA certificate CN=Test Intermediate");
}

#[test]
fn crl_without_a_crl_number_from_a_ca_in_the_path_fails_closed() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let mut bad = crl(&pki.inter, &[]);
    // Turn the cRLNumber OID (2.5.29.20) into an unknown one (2.5.29.99).
    let at = bad.windows(5).position(|w| w == [0x06, 0x03, 0x55, 0x1d, 0x14]).expect("CRL number OID");
    bad[at + 4] = 0x63;
    let trust = TrustSet { crls: vec![bad], ..pki.trust() };
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Invalid, "cannot tell whether CN=www.example.com is revoked");
    assert!(verdict.detail.contains("no CRL number"), "{}", verdict.detail);
}

#[test]
fn crl_signed_by_a_root_without_crl_sign_fails_closed() {
    let root = issue(&Spec { key_usage: &["keyCertSign"], ..Spec::ca("No CRL Root") }, None);
    let leaf = issue(&Spec::server("www.example.com", &["www.example.com"]), Some(&root));
    let trust = TrustSet { anchors: vec![root.der()], crls: vec![crl(&root, &[])], ..TrustSet::default() };
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Invalid, "does not allow CRL signing");
}

#[test]
fn garbage_crl_from_an_unknown_issuer_is_ignored() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let trust = TrustSet { crls: vec![b"not a CRL".to_vec()], ..pki.trust() };
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Valid, "");
}

#[test]
fn path_longer_than_max_path_len_is_path_too_long() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let der = leaf.der();
    let name = Name::Dns("www.example.com");
    let limited = TrustSet { max_path_len: Some(0), ..pki.trust() };
    check(
        &verify(&der, Usage::TlsServer, name, NOW, &limited),
        Status::PathTooLong,
        "has 1 intermediate CAs; the limit is 0",
    );
    let enough = TrustSet { max_path_len: Some(1), ..pki.trust() };
    check(&verify(&der, Usage::TlsServer, name, NOW, &enough), Status::Valid, "");
}

#[test]
fn path_len_constraint_of_a_ca_is_path_too_long() {
    let root = issue(&Spec { ca: Some(Some(0)), ..Spec::ca("Root pathlen 0") }, None);
    let inter = issue(&Spec::ca("Intermediate"), Some(&root));
    let leaf = issue(&Spec::server("www.example.com", &["www.example.com"]), Some(&inter));
    // webpki does not read an anchor's basic constraints, so put the
    // constraint on an intermediate: root -> A (pathlen 0) -> B -> leaf.
    let a = issue(&Spec { ca: Some(Some(0)), ..Spec::ca("A pathlen 0") }, Some(&root));
    let b = issue(&Spec::ca("B"), Some(&a));
    let leaf_b = issue(&Spec::server("www.example.com", &["www.example.com"]), Some(&b));
    let trust = TrustSet {
        anchors: vec![root.der()],
        intermediates: vec![inter.der(), a.der(), b.der()],
        ..TrustSet::default()
    };
    check(
        &verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust),
        Status::Valid,
        "",
    );
    check(
        &verify(&leaf_b.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust),
        Status::PathTooLong,
        "path length constraint",
    );
}

#[test]
fn distrusted_leaf_is_distrusted_outright() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let mut trust = pki.trust();
    trust.distrusted.insert(fingerprint(&leaf.der()));
    trust.trusted_peers.insert(fingerprint(&leaf.der()));
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Distrusted, "certificate CN=www.example.com is explicitly distrusted");
}

#[test]
fn distrusted_intermediate_without_another_path_is_distrusted() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let mut trust = pki.trust();
    trust.distrusted.insert(fingerprint(&pki.inter.der()));
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Distrusted, "explicitly distrusted certificate (CN=Test Intermediate)");
}

#[test]
fn distrusted_intermediate_is_bypassed_through_a_cross_signed_alternative() {
    let root_a = issue(&Spec::ca("Root A"), None);
    let root_b = issue(&Spec::ca("Root B"), None);
    let key = new_key();
    let key_copy = PKey::private_key_from_der(&key.private_key_to_der().unwrap()).unwrap();
    let via_a = issue_with_key(&Spec::ca("Shared Intermediate"), Some(&root_a), key);
    let via_b = issue_with_key(&Spec::ca("Shared Intermediate"), Some(&root_b), key_copy);
    let leaf = issue(&Spec::server("www.example.com", &["www.example.com"]), Some(&via_a));
    let mut trust = TrustSet {
        anchors: vec![root_a.der(), root_b.der()],
        intermediates: vec![via_a.der(), via_b.der()],
        ..TrustSet::default()
    };
    trust.distrusted.insert(fingerprint(&via_a.der()));
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Valid, "<- CN=Root B");
    assert_eq!(verdict.chain, vec![leaf.der(), via_b.der(), root_b.der()]);
}

#[test]
fn distrusted_root_rejects_the_paths_that_end_in_it() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let mut trust = pki.trust();
    trust.distrusted.insert(fingerprint(&pki.root.der()));
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::Distrusted, "CN=Test Root");
}

#[test]
fn trusted_peer_self_signed_leaf_is_valid_without_a_chain() {
    let peer =
        issue(&Spec { ca: Some(None), ..Spec::server("self.example.com", &["self.example.com"]) }, None);
    let mut trust = TrustSet::default();
    trust.trusted_peers.insert(fingerprint(&peer.der()));
    let verdict = verify(&peer.der(), Usage::TlsServer, Name::Dns("self.example.com"), NOW, &trust);
    check(&verdict, Status::Valid, "explicitly trusted as a peer");
    assert_eq!(verdict.chain, vec![peer.der()]);
    // Without the peer trust it is just an unknown self-signed certificate.
    let verdict =
        verify(&peer.der(), Usage::TlsServer, Name::Dns("self.example.com"), NOW, &TrustSet::default());
    check(&verdict, Status::UnknownIssuer, "self-signed");
}

#[test]
fn expired_trusted_peer_is_expired() {
    let peer = issue(
        &Spec { from: -9 * DAY, until: -DAY, ..Spec::server("self.example.com", &["self.example.com"]) },
        None,
    );
    let mut trust = TrustSet::default();
    trust.trusted_peers.insert(fingerprint(&peer.der()));
    let verdict = verify(&peer.der(), Usage::TlsServer, Name::Dns("self.example.com"), NOW, &trust);
    check(&verdict, Status::Expired, "trusted peer certificate CN=self.example.com expired on");
}

#[test]
fn trusted_peer_still_needs_the_right_name_and_usage() {
    let peer = issue(&Spec::server("self.example.com", &["self.example.com"]), None);
    let mut trust = TrustSet::default();
    trust.trusted_peers.insert(fingerprint(&peer.der()));
    let der = peer.der();
    check(
        &verify(&der, Usage::TlsServer, Name::Dns("other.example.com"), NOW, &trust),
        Status::NameMismatch,
        "",
    );
    check(
        &verify(&der, Usage::TlsClient, Name::None, NOW, &trust),
        Status::WrongUsage,
        "allows only serverAuth",
    );
}

#[test]
fn presented_intermediates_complete_the_path() {
    let pki = Pki::new();
    let leaf = pki.leaf(&Spec::server("www.example.com", &["www.example.com"]));
    let trust = TrustSet { anchors: vec![pki.root.der()], ..TrustSet::default() };
    let name = Name::Dns("www.example.com");
    check(&verify(&leaf.der(), Usage::TlsServer, name, NOW, &trust), Status::UnknownIssuer, "");
    let verdict = verify_presented(&leaf.der(), &[pki.inter.der()], Usage::TlsServer, name, NOW, &trust);
    check(&verdict, Status::Valid, "");
    assert_eq!(verdict.chain.len(), 3);
}

#[test]
fn garbage_truncated_and_oversized_certificates_are_invalid_not_panics() {
    let pki = Pki::new();
    let good = pki.leaf(&Spec::server("www.example.com", &["www.example.com"])).der();
    let trust = pki.trust();
    let name = Name::Dns("www.example.com");
    check(&verify(b"", Usage::TlsServer, name, NOW, &trust), Status::Invalid, "could not be parsed");
    check(&verify(b"garbage", Usage::TlsServer, name, NOW, &trust), Status::Invalid, "could not be parsed");
    for len in [1, 2, 10, good.len() / 2, good.len() - 1] {
        check(
            &verify(&good[..len], Usage::TlsServer, name, NOW, &trust),
            Status::Invalid,
            "could not be parsed",
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    check(&verify(&trailing, Usage::TlsServer, name, NOW, &trust), Status::Invalid, "");
    let huge = vec![0x30; MAX_CERT_DER_LEN + 1];
    let verdict = verify(&huge, Usage::TlsServer, name, NOW, &trust);
    check(&verdict, Status::Invalid, "the limit is 131072");
    assert!(verdict.chain.is_empty());
    for usage in [Usage::EmailSigner, Usage::CodeSigning] {
        check(
            &verify(b"\x30\x03\x02\x01\x00", usage, Name::Email("a@b.c"), NOW, &trust),
            Status::Invalid,
            "",
        );
    }
}

#[test]
fn unparseable_anchors_are_ignored_and_mentioned() {
    let pki = Pki::new();
    let stranger = issue(&Spec::ca("Stranger CA"), None);
    let leaf = issue(&Spec::server("www.example.com", &["www.example.com"]), Some(&stranger));
    let trust = TrustSet { anchors: vec![b"junk".to_vec(), pki.root.der()], ..pki.trust() };
    let verdict = verify(&leaf.der(), Usage::TlsServer, Name::Dns("www.example.com"), NOW, &trust);
    check(&verdict, Status::UnknownIssuer, "1 trusted certificate(s) could not be parsed");
}

#[test]
fn ca_certificate_is_wrong_usage_as_a_server_leaf() {
    let pki = Pki::new();
    let verdict = verify(&pki.inter.der(), Usage::TlsServer, Name::None, NOW, &pki.trust());
    check(&verdict, Status::WrongUsage, "is a CA certificate");
}

#[test]
fn every_status_maps_to_its_psm_code() {
    use psm::Code;
    let pairs = [
        (Status::Valid, Code::PSM_OK),
        (Status::UnknownIssuer, Code::PSM_ERR_CERT_UNKNOWN_ISSUER),
        (Status::Expired, Code::PSM_ERR_CERT_EXPIRED),
        (Status::NotYetValid, Code::PSM_ERR_CERT_NOT_YET_VALID),
        (Status::NameMismatch, Code::PSM_ERR_CERT_NAME_MISMATCH),
        (Status::Revoked, Code::PSM_ERR_CERT_REVOKED),
        (Status::BadSignature, Code::PSM_ERR_CERT_BAD_SIGNATURE),
        (Status::WrongUsage, Code::PSM_ERR_CERT_WRONG_USAGE),
        (Status::PathTooLong, Code::PSM_ERR_CERT_INVALID),
        (Status::Distrusted, Code::PSM_ERR_CERT_DISTRUSTED),
        (Status::Invalid, Code::PSM_ERR_CERT_INVALID),
    ];
    for (status, code) in pairs {
        assert_eq!(status.code(), code, "{status}");
    }
}
