//! What a token is asked to sign: psmd hashes the message in-process and
//! the token signs the digest with a raw mechanism (`CKM_ECDSA`,
//! `CKM_RSA_PKCS` over a DigestInfo, `CKM_RSA_PKCS_PSS`). These are the
//! mechanisms nearly every smart card has, where the hash-and-sign ones
//! (`CKM_SHA256_RSA_PKCS`) are often missing, and only a digest crosses into
//! the token, whatever the message's size. OpenSSL keys on a token
//! ([`super::ossl`]) hash and pad themselves and hand over the result
//! ([`RawSign`]).

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use psm::{Code, Error};
use sha2::Digest;

use super::KeyKind;
use crate::pki::keys::SigAlg;

/// DER of `DigestInfo { AlgorithmIdentifier { sha256, NULL }, OCTET STRING(32) }`
/// without the digest (RFC 8017 9.2, note 1).
const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    0x04, 0x20,
];
/// The longest raw ECDSA signature: two 66-byte integers (P-521).
const MAX_ECDSA_RAW: usize = 2 * 66;

/// A signature the caller has prepared itself (OpenSSL, for a key whose
/// operations run on the token): the token signs the bytes as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RawSign {
    /// `CKM_ECDSA` over a digest.
    Ecdsa,
    /// `CKM_RSA_PKCS` over a DigestInfo: the token adds PKCS#1 v1.5 padding.
    RsaPkcs1,
    /// `CKM_RSA_X_509`, the raw private operation over a block padded
    /// by the caller (PSS).
    RsaRaw,
}

impl RawSign {
    pub(super) fn mechanism(self) -> Mechanism<'static> {
        match self {
            RawSign::Ecdsa => Mechanism::Ecdsa,
            RawSign::RsaPkcs1 => Mechanism::RsaPkcs,
            RawSign::RsaRaw => Mechanism::RsaX509,
        }
    }

    pub(super) fn kind(self) -> KeyKind {
        match self {
            RawSign::Ecdsa => KeyKind::Ec,
            RawSign::RsaPkcs1 | RawSign::RsaRaw => KeyKind::Rsa,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            RawSign::Ecdsa => "ECDSA",
            RawSign::RsaPkcs1 => "RSA PKCS#1 v1.5",
            RawSign::RsaRaw => "raw RSA",
        }
    }
}

/// Refuses `what` (an algorithm or operation) with a key of the wrong kind,
/// before the token is asked.
pub(super) fn check_kind(what: &str, want: KeyKind, kind: KeyKind) -> Result<(), Error> {
    if want == kind {
        return Ok(());
    }
    let want = match want {
        KeyKind::Ec => "EC",
        KeyKind::Rsa => "RSA",
    };
    Err(Error::new(
        Code::PSM_ERR_INVALID_ARGUMENT,
        format!("{what} needs an {want} key; this token key is {kind:?}"),
    ))
}

/// The mechanism and the bytes to hand to `C_Sign` for `alg` over `message`.
pub(super) fn prepare(
    alg: SigAlg,
    kind: KeyKind,
    message: &[u8],
) -> Result<(Mechanism<'static>, Vec<u8>), Error> {
    let name = format!("{alg:?}");
    match alg {
        SigAlg::EcdsaSha256 | SigAlg::EcdsaSha384 => check_kind(&name, KeyKind::Ec, kind)?,
        SigAlg::RsaPkcs1Sha256 | SigAlg::RsaPssSha256 => check_kind(&name, KeyKind::Rsa, kind)?,
        SigAlg::Ed25519 => {}
    }
    match alg {
        SigAlg::EcdsaSha256 => Ok((Mechanism::Ecdsa, sha2::Sha256::digest(message).to_vec())),
        SigAlg::EcdsaSha384 => Ok((Mechanism::Ecdsa, sha2::Sha384::digest(message).to_vec())),
        SigAlg::RsaPkcs1Sha256 => {
            let mut info = SHA256_DIGEST_INFO.to_vec();
            info.extend_from_slice(&sha2::Sha256::digest(message));
            Ok((Mechanism::RsaPkcs, info))
        }
        SigAlg::RsaPssSha256 => {
            // The same parameters as the soft token's PSS: MGF1 with
            // SHA-256 and a salt as long as the digest.
            let params = PkcsPssParams {
                hash_alg: MechanismType::SHA256,
                mgf: PkcsMgfType::MGF1_SHA256,
                s_len: 32u64.into(),
            };
            Ok((Mechanism::RsaPkcsPss(params), sha2::Sha256::digest(message).to_vec()))
        }
        SigAlg::Ed25519 => {
            Err(Error::new(Code::PSM_ERR_UNSUPPORTED, "Ed25519 signatures with token keys are not supported"))
        }
    }
}

/// Converts the raw `r || s` a token returns for `CKM_ECDSA` (PKCS#11
/// 2.3.1) into the DER `Ecdsa-Sig-Value` that X.509, CMS and TLS use.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, Error> {
    ecdsa_raw_to_sig(raw)?
        .to_der()
        .map_err(|e| Error::new(Code::PSM_ERR_INTERNAL, format!("cannot encode an ECDSA signature: {e}")))
}

/// The same raw `r || s` as an OpenSSL `ECDSA_SIG`.
pub fn ecdsa_raw_to_sig(raw: &[u8]) -> Result<EcdsaSig, Error> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > MAX_ECDSA_RAW {
        return Err(Error::new(
            Code::PSM_ERR_DECODE,
            format!(
                "the token returned a {}-byte ECDSA signature; expected r || s of equal halves",
                raw.len()
            ),
        ));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig = (|| EcdsaSig::from_private_components(BigNum::from_slice(r)?, BigNum::from_slice(s)?))();
    sig.map_err(|e| Error::new(Code::PSM_ERR_INTERNAL, format!("cannot make an ECDSA signature: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_becomes_der_that_openssl_reads_back() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero in DER
        raw[31] = 1;
        raw[63] = 2;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        let sig = EcdsaSig::from_der(&der).unwrap();
        assert_eq!(sig.r().to_vec_padded(32).unwrap(), raw[..32]);
        assert_eq!(sig.s().to_vec_padded(32).unwrap(), raw[32..]);
        for bad in [&[][..], &[1, 2, 3][..], &[0u8; 134][..]] {
            assert_eq!(ecdsa_raw_to_der(bad).unwrap_err().code, Code::PSM_ERR_DECODE);
        }
    }

    #[test]
    fn rsa_pkcs1_signs_a_sha256_digest_info() {
        let (m, data) = prepare(SigAlg::RsaPkcs1Sha256, KeyKind::Rsa, b"abc").unwrap();
        assert!(matches!(m, Mechanism::RsaPkcs));
        assert_eq!(data.len(), 19 + 32);
        assert_eq!(&data[19..], &sha2::Sha256::digest(b"abc")[..]);
    }

    #[test]
    fn an_algorithm_for_another_key_kind_is_refused() {
        let e = prepare(SigAlg::EcdsaSha256, KeyKind::Rsa, b"x").err().unwrap();
        assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT);
        assert!(prepare(SigAlg::RsaPssSha256, KeyKind::Ec, b"x").is_err());
        assert_eq!(
            prepare(SigAlg::Ed25519, KeyKind::Ec, b"x").err().unwrap().code,
            Code::PSM_ERR_UNSUPPORTED
        );
    }
}
