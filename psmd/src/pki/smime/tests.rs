use super::*;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::{ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder};
use psm::proto::SMIME_VERIFY_INNER;

fn make(email: &str, key: &PKeyRef<Private>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, email).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    let san = SubjectAlternativeName::new().email(email).build(&b.x509v3_context(None, None)).unwrap();
    b.append_extension(san).unwrap();
    b.append_extension(ExtendedKeyUsage::new().email_protection().build().unwrap()).unwrap();
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build()
}

fn rsa() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn ec() -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap())
        .unwrap()
}

fn sign_bytes(cert: &X509, key: &PKey<Private>, flags: u32, data: &[u8]) -> Vec<u8> {
    let out = Bio::mem().unwrap();
    sign(&Signer { cert, key, chain: &[] }, flags, &Bio::slice(data).unwrap(), Some(data), &out)
        .unwrap_or_else(|e| panic!("flags {flags:#x}: {e}"));
    out.mem_contents()
}

fn check(msg: &[u8], content: Option<&[u8]>, flags: u32) -> (SigCheck, Vec<u8>) {
    let mut m = Message::parse(msg).unwrap();
    assert_eq!(m.kind(), Kind::Signed);
    let out = Bio::mem().unwrap();
    let c = check_signature(&mut m, content, None, Some(&out), &[], flags).unwrap();
    (c, out.mem_contents())
}

const MAIL: &[u8] = b"Content-Type: text/plain\n\nHello, world.\nSecond line.\n";

#[test]
fn every_form_of_signature_verifies_and_returns_canonical_content() {
    let key = rsa();
    let cert = make("alice@example.com", &key);
    for flags in
        [0, SMIME_DETACHED, SMIME_DER, SMIME_PEM, SMIME_RSA_PSS, SMIME_SHA384, SMIME_SHA512 | SMIME_DETACHED]
    {
        let msg = sign_bytes(&cert, &key, flags, MAIL);
        let (c, content) = check(&msg, None, 0);
        assert_eq!(c.outcome, SigOutcome::Good, "flags {flags:#x}: {}", c.detail);
        assert_eq!(content, b"Content-Type: text/plain\r\n\r\nHello, world.\r\nSecond line.\r\n");
        assert!(c.signer.is_some());
        assert!(c.signing_time.is_some_and(|t| t > 1_700_000_000));
        let want = if flags & SMIME_SHA384 != 0 {
            "sha384"
        } else if flags & SMIME_SHA512 != 0 {
            "sha512"
        } else {
            "sha256"
        };
        assert_eq!(c.digest, want);
    }
    let msg = sign_bytes(&cert, &key, SMIME_DETACHED, MAIL);
    let text = String::from_utf8_lossy(&msg);
    assert!(text.contains("multipart/signed"), "{text}");
    assert!(text.contains("micalg=\"sha-256\""), "{text}");
}

#[test]
fn detached_der_needs_its_content_and_notices_a_change() {
    let key = ec();
    let cert = make("carol@example.com", &key);
    let sig = sign_bytes(&cert, &key, SMIME_DETACHED | SMIME_DER, MAIL);
    let mut m = Message::parse(&sig).unwrap();
    let r = check_signature(&mut m, None, None, None, &[], 0);
    let e = r.as_ref().err().unwrap_or_else(|| {
        panic!("{:?} {}", r.as_ref().ok().unwrap().outcome, r.as_ref().ok().unwrap().detail)
    });
    assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT);
    let (c, _) = check(&sig, Some(MAIL), 0);
    assert_eq!(c.outcome, SigOutcome::Good, "{}", c.detail);
    let (c, _) = check(&sig, Some(b"Content-Type: text/plain\n\nHello, World.\nSecond line.\n"), 0);
    assert_eq!(c.outcome, SigOutcome::ContentAltered, "{}", c.detail);
}

#[test]
fn a_flipped_bit_in_the_signature_is_a_bad_signature() {
    let key = rsa();
    let cert = make("alice@example.com", &key);
    let mut der = sign_bytes(&cert, &key, SMIME_DER, MAIL);
    // The signature value is the last thing in a SignerInfo without
    // unsigned attributes: flip a bit near the end.
    let n = der.len();
    der[n - 10] ^= 1;
    let (c, content) = check(&der, None, 0);
    assert_eq!(c.outcome, SigOutcome::BadSignature, "{}", c.detail);
    assert!(!content.is_empty(), "the content is still shown");
}

#[test]
fn encryption_round_trips_for_every_recipient_kind_and_cipher() {
    let (rk, ek) = (rsa(), ec());
    let (rc, ecert) = (make("bob@example.com", &rk), make("carol@example.com", &ek));
    for flags in [0, SMIME_CBC, SMIME_RSA_OAEP, SMIME_DER, SMIME_PEM | SMIME_CBC] {
        let out = Bio::mem().unwrap();
        encrypt(&[rc.clone(), ecert.clone()], flags, &Bio::slice(MAIL).unwrap(), None, &out).unwrap();
        let msg = out.mem_contents();
        for (k, c) in [(&rk, &rc), (&ek, &ecert)] {
            let mut m = Message::parse(&msg).unwrap();
            let want = if flags & SMIME_CBC != 0 { Kind::Enveloped } else { Kind::AuthEnveloped };
            assert_eq!(m.kind(), want);
            assert!(m.cms.is_recipient(c));
            let plain = Bio::mem().unwrap();
            decrypt(&mut m, k, c, None, &plain, 0).unwrap();
            assert_eq!(
                plain.mem_contents(),
                b"Content-Type: text/plain\r\n\r\nHello, world.\r\nSecond line.\r\n"
            );
        }
    }
}

#[test]
fn altered_ciphertext_is_caught() {
    let k = rsa();
    let c = make("bob@example.com", &k);
    let out = Bio::mem().unwrap();
    encrypt(std::slice::from_ref(&c), SMIME_DER, &Bio::slice(&[b'x'; 1000]).unwrap(), None, &out).unwrap();
    let mut der = out.mem_contents();
    let n = der.len();
    der[n - 100] ^= 0x40; // inside the encrypted content
    let mut m = Message::parse(&der).unwrap();
    let plain = Bio::mem().unwrap();
    let e = decrypt(&mut m, &k, &c, None, &plain, 0).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_SMIME_CONTENT_ALTERED, "{e}");
}

#[test]
fn certs_only_round_trips() {
    let (a, b) = (make("a@example.com", &ec()), make("b@example.com", &ec()));
    for flags in [0, SMIME_DER, SMIME_PEM] {
        let msg = certs_only(&[a.clone(), b.clone()], flags).unwrap();
        let m = Message::parse(&msg).unwrap();
        assert_eq!(m.kind(), Kind::Signed);
        assert_eq!(m.cms.signer_count(), 0);
        let got: Vec<Vec<u8>> = m.certs().iter().map(|c| c.to_der().unwrap()).collect();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&a.to_der().unwrap()));
    }
}

#[test]
fn garbage_is_a_decode_error() {
    for bad in [
        &b""[..],
        b"   ",
        b"\x30\x03\x02\x01\x01",
        b"-----BEGIN PKCS7-----\nAAAA\n-----END PKCS7-----\n",
        b"hello",
    ] {
        let e = Message::parse(bad).err().unwrap();
        assert_eq!(e.code, Code::PSM_ERR_DECODE, "{bad:?}: {e}");
    }
    assert!(looks_smime(b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"\r\n\r\n"));
    assert!(looks_smime(
        b"MIME-Version: 1.0\nContent-Type:\n application/pkcs7-mime; smime-type=signed-data\n\nMIIB"
    ));
    assert!(!looks_smime(b"Content-Type: text/plain\r\n\r\nx"));
    // The words inside a DER body, or without a header block, do not count.
    assert!(!looks_smime(b"\x30\x82\x01\x00content-type: application/pkcs7-mime\n\n"));
    assert!(!looks_smime(b"content-type: application/pkcs7-mime"));
    let _ = SMIME_VERIFY_INNER;
}
