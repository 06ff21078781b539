//! The one certificate-path verifier of psmd.
//!
//! Certificate verification requests and TLS channels both end here, so a
//! certificate is judged the same way wherever it shows up. Plain data in
//! (DER blobs, a usage, a name, a time, the store's trust settings as a
//! [`TrustSet`]), plain data out (a [`Verdict`]); no daemon state.
//!
//! rustls-webpki builds and checks the path: signatures, validity periods,
//! basic and name constraints, extended key usage and CRLs. This module adds
//! what webpki leaves to its caller: the store's trust settings (distrusted
//! certificates anywhere in a path, trusted peers accepted without a path), a
//! path-length limit, the validity period of anchors (as NSS checks it),
//! failing closed on CRLs it cannot use, RFC 822 names for e-mail, the key
//! usage an S/MIME signer or recipient needs, and a reason in plain words.
//!
//! What webpki deliberately does not check is not checked here either (CA
//! issuance-profile rules, the subject CN, certificate policies, directory
//! and e-mail name constraints, which it refuses outright): see the
//! x509-limbo harness in `psmd/tests/x509_limbo.rs` for the full list.
//!
//! # Which reason wins
//! When several things are wrong the verdict names one of them:
//! 1. An oversized blob, or a leaf that is explicitly distrusted, is decided
//!    before anything is parsed.
//! 2. A leaf that cannot be parsed is `Invalid`.
//! 3. A trusted peer skips path building; its own validity period, extended
//!    key usage, e-mail key usage and name are checked in that order.
//! 4. Otherwise the path. webpki checks each certificate's own properties
//!    (validity, basic constraints, EKU) before looking for its issuer, so an
//!    expired leaf from an unknown CA is `Expired`. When every candidate path
//!    fails, webpki reports the most specific failure it saw (its ranking:
//!    validity > name > revoked/distrusted > signature > EKU > name
//!    constraints > path length > ... > unknown issuer). One exception: a
//!    self-signed leaf that is not an anchor and fails as `WrongUsage` (a
//!    cA=TRUE self-signed server certificate, typically) is `UnknownIssuer`.
//! 5. Only with a good path: CRLs we hold for a CA in the path but cannot
//!    use make it `Invalid`; then the leaf's usage checks that webpki does
//!    not do (e-mail key usage, code signing's mandatory EKU); then the name.

mod crl;
mod describe;
mod email;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crl::Crls;
use rustls_pki_types::{CertificateDer, DnsName, ServerName, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyPurposeId, KeyPurposeIdIter,
    RequiredEkuNotFoundContext, RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
    VerifiedPath,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Largest certificate accepted, in bytes. Real certificates are a few KiB;
/// even ones carrying a few thousand SANs stay well below this.
pub const MAX_CERT_DER_LEN: usize = 128 * 1024;

/// Largest CRL used, in bytes. Big public CAs publish CRLs of tens of MiB.
pub const MAX_CRL_DER_LEN: usize = 64 * 1024 * 1024;

/// What the certificate is being verified for. Each usage names the extended
/// key usage (EKU) the certificate, and every CA above it, must allow if it
/// carries an EKU extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Usage {
    /// id-kp-serverAuth.
    TlsServer,
    /// id-kp-clientAuth.
    TlsClient,
    /// id-kp-emailProtection (or anyExtendedKeyUsage, RFC 8550 4.4.4); a key
    /// usage extension, if present, must allow digitalSignature or
    /// nonRepudiation.
    EmailSigner,
    /// As `EmailSigner`, but the key usage must allow keyEncipherment or
    /// keyAgreement.
    EmailRecipient,
    /// id-kp-codeSigning, which the leaf must carry (CA/B Forum code signing
    /// requirements); CAs above it may omit the EKU extension.
    CodeSigning,
}

impl Usage {
    fn describe(self) -> &'static str {
        match self {
            Usage::TlsServer => "TLS server authentication",
            Usage::TlsClient => "TLS client authentication",
            Usage::EmailSigner => "signing e-mail",
            Usage::EmailRecipient => "receiving encrypted e-mail",
            Usage::CodeSigning => "code signing",
        }
    }

    /// The DER contents of the EKU object identifier the usage requires.
    fn eku_oid(self) -> &'static [u8] {
        match self {
            Usage::TlsServer => EKU_SERVER_AUTH,
            Usage::TlsClient => EKU_CLIENT_AUTH,
            Usage::EmailSigner | Usage::EmailRecipient => EKU_EMAIL_PROTECTION,
            Usage::CodeSigning => EKU_CODE_SIGNING,
        }
    }

    /// RFC 8550 4.4.4 lets S/MIME certificates say anyExtendedKeyUsage; the
    /// CA/B Forum forbids it for TLS and code signing, and webpki rejects it.
    fn accepts_any_eku(self) -> bool {
        matches!(self, Usage::EmailSigner | Usage::EmailRecipient)
    }
}

// 1.3.6.1.5.5.7.3.{1,2,3,4} and 2.5.29.37.0, DER contents without tag and length.
const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
const EKU_EMAIL_PROTECTION: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04];
const EKU_ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];

/// The name the certificate must be valid for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name<'a> {
    /// No name check (TLS client certificates, "is this certificate good at all").
    None,
    /// A host name, matched against the SAN dNSName entries (wildcards per
    /// RFC 6125, as webpki does; the subject CN is not consulted).
    Dns(&'a str),
    /// An IP address, matched against the SAN iPAddress entries.
    Ip(IpAddr),
    /// An e-mail address, matched against the SAN rfc822Name entries and the
    /// subject's emailAddress attributes (RFC 8550 section 3): the local part
    /// exactly, the domain ignoring ASCII case.
    Email(&'a str),
}

impl<'a> Name<'a> {
    /// Reads a name as users and the C API write it: "" is no name,
    /// "user@example.com" an e-mail address, "192.0.2.1" or "2001:db8::1"
    /// an IP address, anything else a DNS name.
    pub fn parse(s: &'a str) -> Name<'a> {
        if s.is_empty() {
            Name::None
        } else if s.contains('@') {
            Name::Email(s)
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            Name::Ip(ip)
        } else {
            Name::Dns(s)
        }
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::None => f.write_str("(no name)"),
            Name::Dns(s) | Name::Email(s) => f.write_str(s),
            Name::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The trust settings that apply to one verification, as owned DER blobs.
/// The store builds it from its trust settings for the usage being checked.
#[derive(Clone, Debug, Default)]
pub struct TrustSet {
    /// Certificates trusted as CAs for the usage being checked. Their
    /// subject, key, name constraints and validity period matter; their
    /// other extensions do not (webpki takes an anchor as a name and a key;
    /// the validity check is ours, as NSS does it).
    pub anchors: Vec<Vec<u8>>,
    /// Other known certificates that path building may use (the store's
    /// intermediates; a TLS peer's chain is passed to [`verify_presented`]).
    pub intermediates: Vec<Vec<u8>>,
    /// SHA-256 of certificates explicitly distrusted ([`fingerprint`]). A
    /// distrusted leaf is rejected outright; a path through a distrusted
    /// intermediate or anchor is rejected and path building tries others.
    pub distrusted: HashSet<[u8; 32]>,
    /// Certificates explicitly distrusted by issuer and serial number (the
    /// policy's), judged exactly as those in `distrusted` ([`Self::is_distrusted`]).
    pub distrusted_issuer_serial: Vec<crate::pki::dn::IssuerSerial>,
    /// SHA-256 of leaf certificates explicitly trusted as peers: accepted
    /// without a path (no issuer, no CRL), but their validity period, EKU,
    /// e-mail key usage and name are still checked.
    pub trusted_peers: HashSet<[u8; 32]>,
    /// DER CRLs. A CRL counts for the certificates of the CA that signed it;
    /// one that has passed its nextUpdate still counts.
    pub crls: Vec<Vec<u8>>,
    /// Most intermediate CAs allowed between leaf and anchor, not counting
    /// self-issued ones (RFC 5280 6.1.4 (l)). `None` is webpki's own limit
    /// of six.
    pub max_path_len: Option<usize>,
    /// `anchors` parsed for webpki, on first use; kept with the set, since
    /// TLS verifies many handshakes against one. Build a new set rather
    /// than change `anchors` after a verification.
    pub parsed_anchors: std::sync::OnceLock<std::sync::Arc<ParsedAnchors>>,
}

impl TrustSet {
    /// Whether `der` is explicitly distrusted: by its SHA-256, or by its
    /// issuer and serial number.
    pub fn is_distrusted(&self, der: &[u8]) -> bool {
        if self.distrusted.contains(&fingerprint(der)) {
            return true;
        }
        !self.distrusted_issuer_serial.is_empty()
            && X509Certificate::from_der(der)
                .is_ok_and(|(_, cert)| self.distrusted_issuer_serial.iter().any(|e| e.matches(&cert)))
    }
}

/// The SHA-256 fingerprint under which [`TrustSet::distrusted`] and
/// [`TrustSet::trusted_peers`] name certificates.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// Why a certificate is or is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Valid,
    /// No path to an anchor: an unknown CA, a missing intermediate, an
    /// untrusted self-signed certificate.
    UnknownIssuer,
    /// The leaf, a CA in the path or the anchor has expired.
    Expired,
    NotYetValid,
    /// The leaf is not issued to the name asked for.
    NameMismatch,
    /// The leaf or a CA in the path is on its issuer's CRL.
    Revoked,
    /// A signature in the path does not verify (altered or forged).
    BadSignature,
    /// An EKU or key usage that excludes the usage; a CA certificate as leaf.
    WrongUsage,
    /// Longer than `max_path_len` or a CA's pathLenConstraint allows.
    PathTooLong,
    /// The leaf is distrusted, or every path goes through a distrusted CA.
    Distrusted,
    /// Unparseable, malformed, or using something unsupported (an algorithm,
    /// a critical extension); also a name-constraint violation and a CRL
    /// that cannot be used.
    Invalid,
}

impl Status {
    /// The result code for the wire and the C API. A path that is too long
    /// has no code of its own and reads as `PSM_ERR_CERT_INVALID`.
    pub fn code(self) -> psm::Code {
        use psm::Code;
        match self {
            Status::Valid => Code::PSM_OK,
            Status::UnknownIssuer => Code::PSM_ERR_CERT_UNKNOWN_ISSUER,
            Status::Expired => Code::PSM_ERR_CERT_EXPIRED,
            Status::NotYetValid => Code::PSM_ERR_CERT_NOT_YET_VALID,
            Status::NameMismatch => Code::PSM_ERR_CERT_NAME_MISMATCH,
            Status::Revoked => Code::PSM_ERR_CERT_REVOKED,
            Status::BadSignature => Code::PSM_ERR_CERT_BAD_SIGNATURE,
            Status::WrongUsage => Code::PSM_ERR_CERT_WRONG_USAGE,
            Status::PathTooLong | Status::Invalid => Code::PSM_ERR_CERT_INVALID,
            Status::Distrusted => Code::PSM_ERR_CERT_DISTRUSTED,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::UnknownIssuer => "unknown issuer",
            Status::Expired => "expired",
            Status::NotYetValid => "not yet valid",
            Status::NameMismatch => "name mismatch",
            Status::Revoked => "revoked",
            Status::BadSignature => "bad signature",
            Status::WrongUsage => "wrong usage",
            Status::PathTooLong => "path too long",
            Status::Distrusted => "distrusted",
            Status::Invalid => "invalid",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The outcome of one verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    /// What was checked or what failed, in plain words.
    pub detail: String,
    /// DER certificates, leaf first. When valid: the path up to and
    /// including the anchor (just the leaf for a trusted peer). Otherwise
    /// just the leaf (empty if the leaf was too large to look at).
    pub chain: Vec<Vec<u8>>,
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        self.status == Status::Valid
    }

    fn fail(status: Status, detail: impl Into<String>, leaf_der: &[u8]) -> Verdict {
        Verdict { status, detail: detail.into(), chain: vec![leaf_der.to_vec()] }
    }
}

/// Verifies `leaf_der` for `usage` and `name` at `at_unix_secs` against
/// `trust`, building the path from `trust.anchors` and `trust.intermediates`.
pub fn verify(leaf_der: &[u8], usage: Usage, name: Name<'_>, at_unix_secs: u64, trust: &TrustSet) -> Verdict {
    verify_presented::<&[u8]>(leaf_der, &[], usage, name, at_unix_secs, trust)
}

/// As [`verify`], with certificates the peer presented alongside its leaf
/// (a TLS Certificate message, the certificates of a CMS SignedData). They
/// are tried before `trust.intermediates` and are never trusted by
/// themselves.
pub fn verify_presented<C: AsRef<[u8]>>(
    leaf_der: &[u8],
    presented: &[C],
    usage: Usage,
    name: Name<'_>,
    at_unix_secs: u64,
    trust: &TrustSet,
) -> Verdict {
    if leaf_der.len() > MAX_CERT_DER_LEN {
        return Verdict {
            status: Status::Invalid,
            detail: format!(
                "the certificate is {} bytes long; the limit is {MAX_CERT_DER_LEN}",
                leaf_der.len()
            ),
            chain: Vec::new(),
        };
    }
    let leaf_fp = fingerprint(leaf_der);
    if trust.is_distrusted(leaf_der) {
        let detail = format!("certificate {} is explicitly distrusted", describe::subject(leaf_der));
        return Verdict::fail(Status::Distrusted, detail, leaf_der);
    }
    let leaf_cert_der = CertificateDer::from(leaf_der);
    let ee = match EndEntityCert::try_from(&leaf_cert_der) {
        Ok(ee) => ee,
        Err(e) => {
            let detail = format!("the certificate could not be parsed: {}", describe::parse_error(&e));
            return Verdict::fail(Status::Invalid, detail, leaf_der);
        }
    };
    let check = Check { leaf_der, usage, name, at_unix_secs };
    if trust.trusted_peers.contains(&leaf_fp) {
        return check.trusted_peer(&ee);
    }
    match check.path(&ee, presented, trust) {
        Ok(chain) => check.leaf_after_path(&ee, chain),
        // Many self-signed server certificates say cA=TRUE, which webpki
        // refuses in a leaf before looking for an issuer. Unless such a
        // certificate is itself an anchor, what the user needs to hear is
        // that nobody vouches for it, so that the UI can offer peer trust.
        Err(verdict)
            if verdict.status == Status::WrongUsage
                && ee.subject() == ee.issuer()
                && !trust.anchors.iter().any(|a| a.as_slice() == leaf_der) =>
        {
            check.fail(Status::UnknownIssuer, describe::untrusted_self_signed(leaf_der, usage))
        }
        Err(verdict) => verdict,
    }
}

/// One verification's fixed inputs.
struct Check<'a> {
    leaf_der: &'a [u8],
    usage: Usage,
    name: Name<'a>,
    at_unix_secs: u64,
}

impl Check<'_> {
    fn time(&self) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(self.at_unix_secs))
    }

    fn fail(&self, status: Status, detail: impl Into<String>) -> Verdict {
        Verdict::fail(status, detail, self.leaf_der)
    }

    /// The leaf parsed by x509-parser, for the checks webpki does not do.
    fn leaf_x509(&self) -> Result<X509Certificate<'_>, Verdict> {
        X509Certificate::from_der(self.leaf_der).map(|(_, cert)| cert).map_err(|e| {
            self.fail(Status::Invalid, format!("the certificate's extensions could not be parsed: {e}"))
        })
    }

    /// Builds and checks a path with webpki; on success returns it as DER,
    /// leaf first, anchor last.
    fn path<C: AsRef<[u8]>>(
        &self,
        ee: &EndEntityCert<'_>,
        presented: &[C],
        trust: &TrustSet,
    ) -> Result<Vec<Vec<u8>>, Verdict> {
        let anchors = Anchors::of(trust);
        let intermediates: Vec<CertificateDer<'_>> = presented
            .iter()
            .map(|c| c.as_ref())
            .chain(trust.intermediates.iter().map(|c| c.as_slice()))
            .filter(|der| der.len() <= MAX_CERT_DER_LEN)
            .map(CertificateDer::from)
            .collect();
        let crls = Crls::parse(trust);
        let crl_refs: Vec<&CertRevocationList<'_>> = crls.usable.iter().map(|(crl, _)| crl).collect();
        // Only imported CRLs are consulted: a CA without one is not an error,
        // and an old CRL still proves what it revoked.
        let revocation = RevocationOptionsBuilder::new(&crl_refs).ok().map(|builder| {
            builder
                .with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(UnknownStatusPolicy::Allow)
                .with_expiration_policy(ExpirationPolicy::Ignore)
                .build()
        });

        let time = self.time();
        let rejected: RefCell<Vec<Rejection>> = RefCell::new(Vec::new());
        // Runs on every path webpki has verified up to an anchor; an error
        // makes webpki try the next candidate path.
        let trust_check = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let mut logical_cas = 0;
            for cert in path.intermediate_certificates() {
                let der = cert.der();
                if trust.is_distrusted(&der) {
                    rejected.borrow_mut().push(Rejection::Distrusted(describe::subject(&der)));
                    return Err(webpki::Error::CertDistrusted);
                }
                if cert.subject() != cert.issuer() {
                    logical_cas += 1;
                }
            }
            if let Some(anchor) = anchors.der_of(path.anchor()) {
                if trust.is_distrusted(anchor) {
                    rejected.borrow_mut().push(Rejection::Distrusted(describe::subject(anchor)));
                    return Err(webpki::Error::CertDistrusted);
                }
                anchor_validity(anchor, time)?;
            }
            if let Some(max) = trust.max_path_len
                && logical_cas > max
            {
                rejected.borrow_mut().push(Rejection::TooLong(logical_cas));
                return Err(webpki::Error::MaximumPathDepthExceeded);
            }
            Ok(())
        };

        let result = ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            anchors.parsed,
            &intermediates,
            time,
            EkuRule(self.usage),
            revocation,
            Some(&trust_check),
        );
        let path = match result {
            Ok(path) => path,
            Err(e) => {
                let context = describe::Failure {
                    leaf_der: self.leaf_der,
                    intermediates: &intermediates,
                    anchors: &anchors.ders,
                    crls: &crl_refs,
                    usage: self.usage,
                    at_unix_secs: self.at_unix_secs,
                    max_path_len: trust.max_path_len,
                    rejected: &rejected.borrow(),
                };
                let (status, mut detail) = context.explain(&e);
                if anchors.unparseable > 0 {
                    detail.push_str(&format!(
                        "; {} trusted certificate(s) could not be parsed and were ignored",
                        anchors.unparseable
                    ));
                }
                for crl in &crls.unusable {
                    detail.push_str(&format!("; {}", crl.reason));
                }
                return Err(self.fail(status, detail));
            }
        };

        let mut chain = vec![self.leaf_der.to_vec()];
        chain.extend(path.intermediate_certificates().map(|c| c.der().to_vec()));
        let Some(anchor) = anchors.der_of(path.anchor()) else {
            return Err(self.fail(Status::Invalid, "internal error: webpki returned an unknown trust anchor"));
        };
        chain.push(anchor.to_vec());
        crls.check_chain(&chain).map_err(|detail| self.fail(Status::Invalid, detail))?;
        Ok(chain)
    }

    /// The leaf's usage and name, once its path is good.
    fn leaf_after_path(&self, ee: &EndEntityCert<'_>, chain: Vec<Vec<u8>>) -> Verdict {
        let needs_x509 =
            matches!(self.name, Name::Email(_)) || !matches!(self.usage, Usage::TlsServer | Usage::TlsClient);
        if needs_x509 {
            let leaf = match self.leaf_x509() {
                Ok(leaf) => leaf,
                Err(verdict) => return verdict,
            };
            if let Err(detail) = leaf_usage(&leaf, self.usage) {
                return self.fail(Status::WrongUsage, detail);
            }
        }
        if let Err(verdict) = self.name_check(ee) {
            return verdict;
        }
        let path: Vec<String> = chain.iter().map(|der| describe::subject(der)).collect();
        let detail =
            format!("valid for {}{}; path: {}", self.usage.describe(), self.for_name(), path.join(" <- "));
        Verdict { status: Status::Valid, detail, chain }
    }

    /// A trusted peer: no path, but the certificate itself must still fit.
    fn trusted_peer(&self, ee: &EndEntityCert<'_>) -> Verdict {
        let leaf = match self.leaf_x509() {
            Ok(leaf) => leaf,
            Err(verdict) => return verdict,
        };
        let subject = leaf.subject().to_string();
        let validity = leaf.validity();
        let (not_before, not_after) = (validity.not_before.timestamp(), validity.not_after.timestamp());
        let at = i64::try_from(self.at_unix_secs).unwrap_or(i64::MAX);
        if at < not_before {
            let detail = format!(
                "trusted peer certificate {subject} is not valid before {} (checked at {})",
                describe::time_i64(not_before),
                describe::time(self.at_unix_secs)
            );
            return self.fail(Status::NotYetValid, detail);
        }
        if at > not_after {
            let detail = format!(
                "trusted peer certificate {subject} expired on {} (checked at {})",
                describe::time_i64(not_after),
                describe::time(self.at_unix_secs)
            );
            return self.fail(Status::Expired, detail);
        }
        if let Err(detail) = leaf_eku(&leaf, self.usage).and_then(|()| leaf_usage(&leaf, self.usage)) {
            return self.fail(Status::WrongUsage, detail);
        }
        if let Err(verdict) = self.name_check(ee) {
            return verdict;
        }
        let detail = format!(
            "valid for {}{}: {subject} is explicitly trusted as a peer",
            self.usage.describe(),
            self.for_name()
        );
        Verdict { status: Status::Valid, detail, chain: vec![self.leaf_der.to_vec()] }
    }

    fn for_name(&self) -> String {
        match self.name {
            Name::None => String::new(),
            name => format!(" as {name}"),
        }
    }

    fn name_check(&self, ee: &EndEntityCert<'_>) -> Result<(), Verdict> {
        let server_name = match self.name {
            Name::None => return Ok(()),
            Name::Email(wanted) => {
                let leaf = self.leaf_x509()?;
                return email::check(&leaf, wanted).map_err(|detail| self.fail(Status::NameMismatch, detail));
            }
            Name::Ip(ip) => ServerName::IpAddress(ip.into()),
            Name::Dns(host) => match DnsName::try_from(host) {
                Ok(dns) => ServerName::DnsName(dns),
                Err(_) => {
                    let detail = format!("'{host}' is not a valid DNS name, so no certificate can match it");
                    return Err(self.fail(Status::NameMismatch, detail));
                }
            },
        };
        ee.verify_is_valid_for_subject_name(&server_name).map_err(|e| {
            let detail = describe::name_error(self.leaf_der, &self.name, &e);
            let status = match e {
                webpki::Error::CertNotValidForName(_) | webpki::Error::UnsupportedNameType => {
                    Status::NameMismatch
                }
                _ => Status::Invalid,
            };
            self.fail(status, detail)
        })
    }
}

/// A trust set's anchors parsed for webpki, with the index in
/// `TrustSet::anchors` each came from.
#[derive(Debug)]
pub struct ParsedAnchors {
    parsed: Vec<TrustAnchor<'static>>,
    index: Vec<usize>,
    unparseable: usize,
}

impl ParsedAnchors {
    fn parse(ders: &[Vec<u8>]) -> ParsedAnchors {
        let mut out = ParsedAnchors { parsed: Vec::new(), index: Vec::new(), unparseable: 0 };
        for (i, der) in ders.iter().enumerate() {
            let der = CertificateDer::from(der.as_slice());
            let parsed = (der.len() <= MAX_CERT_DER_LEN).then(|| webpki::anchor_from_trusted_cert(&der).ok());
            match parsed.flatten() {
                Some(anchor) => {
                    out.parsed.push(anchor.to_owned());
                    out.index.push(i);
                }
                None => out.unparseable += 1,
            }
        }
        out
    }
}

/// The trust set's anchors as webpki takes them, with the DER each came
/// from. Only the anchor a candidate path ends in is looked at further, so a
/// trust set of a few hundred roots costs little more than webpki's parse,
/// which is done once per set.
struct Anchors<'a> {
    parsed: &'a [TrustAnchor<'static>],
    /// Parallel to `parsed`.
    ders: Vec<&'a [u8]>,
    unparseable: usize,
}

impl<'a> Anchors<'a> {
    fn of(trust: &'a TrustSet) -> Anchors<'a> {
        let cache =
            trust.parsed_anchors.get_or_init(|| std::sync::Arc::new(ParsedAnchors::parse(&trust.anchors)));
        Anchors {
            parsed: &cache.parsed,
            ders: cache.index.iter().map(|&i| trust.anchors[i].as_slice()).collect(),
            unparseable: cache.unparseable,
        }
    }

    /// The DER of the anchor webpki chose, which is one of `parsed`.
    fn der_of(&self, anchor: &TrustAnchor<'_>) -> Option<&'a [u8]> {
        let i = self
            .parsed
            .iter()
            .position(|a| std::ptr::eq(a as *const _ as *const u8, anchor as *const _ as *const u8))?;
        self.ders.get(i).copied()
    }
}

/// webpki takes an anchor as a name and a key only; like NSS, we also refuse
/// a root outside its validity period, so that path building moves on to
/// another root (a cross-signed one, say) if there is one.
fn anchor_validity(der: &[u8], time: UnixTime) -> Result<(), webpki::Error> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else { return Ok(()) };
    let (not_before, not_after) =
        (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp());
    let at = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
    let unix = |secs: i64| UnixTime::since_unix_epoch(Duration::from_secs(secs.max(0).unsigned_abs()));
    if at < not_before {
        return Err(webpki::Error::CertNotValidYet { time, not_before: unix(not_before) });
    }
    if at > not_after {
        return Err(webpki::Error::CertExpired { time, not_after: unix(not_after) });
    }
    Ok(())
}

/// Why `trust_check` turned a path down, for the detail when no path is left.
enum Rejection {
    Distrusted(String),
    TooLong(usize),
}

/// The EKU rule for a usage, applied by webpki to every certificate in the
/// path: if a certificate has an EKU extension, it must list the usage's
/// purpose (or anyExtendedKeyUsage, for e-mail only). CAs constraining their
/// EKU thereby constrain what they can issue, as in Mozilla's verifier.
struct EkuRule(Usage);

impl webpki::ExtendedKeyUsageValidator for EkuRule {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let wanted = KeyPurposeId::new(self.0.eku_oid());
        let any = KeyPurposeId::new(EKU_ANY);
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            if id == wanted || (self.0.accepts_any_eku() && id == any) {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        // webpki reports an EKU extension with no purposes itself, so
        // nothing here means no extension.
        if present.is_empty() {
            return Ok(());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(RequiredEkuNotFoundContext {
            required: webpki::KeyUsage::required_if_present(self.0.eku_oid()),
            present,
        }))
    }
}

/// The EKU rule of [`EkuRule`] on the leaf alone, for trusted peers (which
/// webpki never sees).
fn leaf_eku(leaf: &X509Certificate<'_>, usage: Usage) -> Result<(), String> {
    let eku = match leaf.extended_key_usage() {
        Ok(Some(eku)) => eku.value,
        Ok(None) => return Ok(()),
        Err(e) => return Err(format!("the extended key usage extension could not be parsed: {e}")),
    };
    let allowed = match usage {
        Usage::TlsServer => eku.server_auth,
        Usage::TlsClient => eku.client_auth,
        Usage::EmailSigner | Usage::EmailRecipient => eku.email_protection || eku.any,
        Usage::CodeSigning => eku.code_signing,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "certificate {} is not valid for {}: its extended key usage allows only {}",
            leaf.subject(),
            usage.describe(),
            describe::eku_list(eku)
        ))
    }
}

/// What a usage needs of the leaf beyond the EKU rule: the key usage bits an
/// S/MIME signer or recipient must have (when the extension is present), and
/// code signing's mandatory EKU. Call it once the EKU rule has passed, so a
/// code-signing leaf without the extension is the only EKU case left.
fn leaf_usage(leaf: &X509Certificate<'_>, usage: Usage) -> Result<(), String> {
    match usage {
        Usage::TlsServer | Usage::TlsClient => Ok(()),
        Usage::CodeSigning => match leaf.extended_key_usage() {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(format!(
                "certificate {} has no extended key usage extension; code signing requires id-kp-codeSigning",
                leaf.subject()
            )),
            Err(e) => Err(format!("the extended key usage extension could not be parsed: {e}")),
        },
        Usage::EmailSigner | Usage::EmailRecipient => {
            let ku = match leaf.key_usage() {
                Ok(Some(ku)) => ku.value,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("the key usage extension could not be parsed: {e}")),
            };
            let (allowed, needed) = if usage == Usage::EmailSigner {
                (ku.digital_signature() || ku.non_repudiation(), "digitalSignature or nonRepudiation")
            } else {
                (ku.key_encipherment() || ku.key_agreement(), "keyEncipherment or keyAgreement")
            };
            if allowed {
                Ok(())
            } else {
                Err(format!(
                    "certificate {} is not valid for {}: its key usage ({ku}) lacks {needed}",
                    leaf.subject(),
                    usage.describe()
                ))
            }
        }
    }
}
