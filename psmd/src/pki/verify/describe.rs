//! Plain-words reasons: turns webpki's errors into a [`Status`] and a detail
//! that names the certificate, the time or the CRL concerned.

use super::{Name, Rejection, Status, Usage};
use rustls_pki_types::CertificateDer;
use std::net::IpAddr;
use webpki::{CertRevocationList, EndEntityCert};
use x509_parser::extensions::{ExtendedKeyUsage, GeneralName};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::time::ASN1Time;

/// Longest chain of issuer names followed when explaining an unknown issuer;
/// webpki itself gives up after six intermediates.
const MAX_EXPLAINED_HOPS: usize = 8;

/// The subject DN of a certificate, or a stand-in if it cannot be read.
pub(super) fn subject(der: &[u8]) -> String {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => dn(&cert.subject().to_string()),
        Err(_) => "(certificate with an unreadable subject)".to_string(),
    }
}

pub(super) fn dn(s: &str) -> String {
    if s.is_empty() { "(empty subject)".to_string() } else { s.to_string() }
}

/// RFC 3339, UTC: "2024-01-01T00:00:00Z".
pub(super) fn time(secs: u64) -> String {
    time_i64(i64::try_from(secs).unwrap_or(i64::MAX))
}

pub(super) fn time_i64(secs: i64) -> String {
    match ASN1Time::from_timestamp(secs) {
        Ok(t) => {
            let t = t.to_datetime();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
        Err(_) => format!("{secs} seconds after 1970-01-01T00:00:00Z"),
    }
}

fn hex_colons(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A webpki error met while parsing a certificate.
pub(super) fn parse_error(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnsupportedCertVersion => "it is not an X.509 version 3 certificate".to_string(),
        E::BadDerTime => "a time in it is not valid DER".to_string(),
        E::TrailingData(what) => format!("trailing data after its {what:?}"),
        E::MalformedExtensions => "its extensions are malformed".to_string(),
        E::ExtensionValueInvalid => "an extension value is invalid".to_string(),
        E::InvalidSerialNumber => "its serial number is not a valid DER integer".to_string(),
        E::UnsupportedCriticalExtension => "it has a critical extension that is not supported".to_string(),
        E::BadDer => "it is not valid DER".to_string(),
        other => format!("{other:?}"),
    }
}

/// Why a CRL could not be used, naming its issuer if x509-parser can read it.
pub(super) fn crl_parse_error(der: &[u8], e: &webpki::Error) -> String {
    use webpki::Error as E;
    let reason = match e {
        E::UnsupportedCrlVersion => "it is not a version 2 CRL".to_string(),
        E::UnsupportedDeltaCrl => "delta CRLs are not supported".to_string(),
        E::UnsupportedIndirectCrl => "indirect CRLs are not supported".to_string(),
        E::UnsupportedRevocationReason => "it uses an unsupported revocation reason".to_string(),
        E::UnsupportedRevocationReasonsPartitioning => {
            "CRLs partitioned by revocation reason are not supported".to_string()
        }
        E::UnsupportedCrlIssuingDistributionPoint => {
            "its issuing distribution point is of an unsupported kind".to_string()
        }
        E::InvalidCrlNumber => "its CRL number is missing, critical or malformed".to_string(),
        E::UnsupportedCriticalExtension => "it has a critical extension that is not supported".to_string(),
        other => parse_error(other),
    };
    match crl_issuer(der) {
        Some(issuer) => format!("the CRL from {issuer} could not be used: {reason}"),
        None => format!("a CRL could not be used: {reason}"),
    }
}

fn crl_issuer(der: &[u8]) -> Option<String> {
    CertificateRevocationList::from_der(der).ok().map(|(_, crl)| dn(&crl.issuer().to_string()))
}

/// The purposes an EKU extension lists, by name where they have one.
pub(super) fn eku_list(eku: &ExtendedKeyUsage<'_>) -> String {
    let mut names: Vec<String> = [
        (eku.any, "anyExtendedKeyUsage"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| name.to_string())
    .collect();
    names.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    names.join(", ")
}

/// An EKU object identifier given as its arcs, by name where it has one.
fn eku_oid_name(arcs: &[usize]) -> String {
    let name = match arcs {
        [1, 3, 6, 1, 5, 5, 7, 3, 1] => "serverAuth",
        [1, 3, 6, 1, 5, 5, 7, 3, 2] => "clientAuth",
        [1, 3, 6, 1, 5, 5, 7, 3, 3] => "codeSigning",
        [1, 3, 6, 1, 5, 5, 7, 3, 4] => "emailProtection",
        [1, 3, 6, 1, 5, 5, 7, 3, 8] => "timeStamping",
        [1, 3, 6, 1, 5, 5, 7, 3, 9] => "OCSPSigning",
        [2, 5, 29, 37, 0] => "anyExtendedKeyUsage",
        _ => return arcs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("."),
    };
    name.to_string()
}

/// A failed name check, listing the host names and addresses the
/// certificate does have.
pub(super) fn name_error(leaf_der: &[u8], name: &Name<'_>, e: &webpki::Error) -> String {
    let leaf = subject(leaf_der);
    if !matches!(e, webpki::Error::CertNotValidForName(_)) {
        return format!("the names in certificate {leaf} could not be checked: {}", parse_error(e));
    }
    let presented = san_hosts(leaf_der);
    if presented.is_empty() {
        format!("certificate {leaf} names no host or IP address, so it is not valid for {name}")
    } else {
        format!("certificate {leaf} is valid for {}, not for {name}", presented.join(", "))
    }
}

/// The SAN dNSName and iPAddress entries of a certificate, as text.
fn san_hosts(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else { return Vec::new() };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(bytes) => Some(match *bytes {
                [a, b, c, d] => IpAddr::from([*a, *b, *c, *d]).to_string(),
                bytes => match <[u8; 16]>::try_from(bytes) {
                    Ok(v6) => IpAddr::from(v6).to_string(),
                    Err(_) => format!("IP address {}", hex_colons(bytes)),
                },
            }),
            _ => None,
        })
        .collect()
}

pub(super) fn untrusted_self_signed(leaf_der: &[u8], usage: Usage) -> String {
    format!(
        "certificate {} is self-signed and is trusted neither as a CA nor as a peer for {}",
        subject(leaf_der),
        usage.describe()
    )
}

/// Everything known about a failed path search, to explain its error.
pub(super) struct Failure<'a> {
    pub leaf_der: &'a [u8],
    pub intermediates: &'a [CertificateDer<'a>],
    pub anchors: &'a [&'a [u8]],
    pub crls: &'a [&'a CertRevocationList<'a>],
    pub usage: Usage,
    pub at_unix_secs: u64,
    pub max_path_len: Option<usize>,
    pub rejected: &'a [Rejection],
}

impl Failure<'_> {
    /// The status and detail for webpki's final error.
    pub fn explain(&self, e: &webpki::Error) -> (Status, String) {
        use webpki::Error as E;
        let leaf = subject(self.leaf_der);
        #[allow(deprecated)]
        match e {
            E::UnknownIssuer => (Status::UnknownIssuer, self.unknown_issuer()),
            E::CertExpired { not_after, .. } => {
                let which = self.which_cert(|c| c.validity().not_after.timestamp(), not_after.as_secs());
                let detail = format!(
                    "{which} expired on {} (checked at {})",
                    time(not_after.as_secs()),
                    time(self.at_unix_secs)
                );
                (Status::Expired, detail)
            }
            E::CertNotValidYet { not_before, .. } => {
                let which = self.which_cert(|c| c.validity().not_before.timestamp(), not_before.as_secs());
                let detail = format!(
                    "{which} is not valid before {} (checked at {})",
                    time(not_before.as_secs()),
                    time(self.at_unix_secs)
                );
                (Status::NotYetValid, detail)
            }
            E::InvalidCertValidity => (
                Status::Invalid,
                format!(
                    "a certificate in the path of {leaf} has a validity period that ends before it begins"
                ),
            ),
            E::CertRevoked => (Status::Revoked, self.revoked()),
            E::UnknownRevocationStatus | E::CrlExpired { .. } => (
                Status::Revoked,
                format!(
                    "the revocation status of a certificate in the path of {leaf} could not be determined"
                ),
            ),
            E::CertDistrusted => (Status::Distrusted, self.distrusted()),
            E::InvalidSignatureForPublicKey => (
                Status::BadSignature,
                format!(
                    "the signature on {leaf}, or on a CA certificate above it, does not verify with its \
                     issuer's public key (the certificate was altered or signed by another key)"
                ),
            ),
            E::SignatureAlgorithmMismatch => (
                Status::BadSignature,
                format!(
                    "a certificate in the path of {leaf} names a different signature algorithm inside \
                     than the one it is signed with"
                ),
            ),
            E::InvalidCrlSignatureForPublicKey => (
                Status::Invalid,
                format!(
                    "a CRL covering the path of {leaf} has a signature that does not verify with its \
                     issuer's key, so revocation cannot be checked"
                ),
            ),
            E::IssuerNotCrlSigner => (
                Status::Invalid,
                format!(
                    "a CRL covering the path of {leaf} is signed by a CA whose key usage does not \
                     allow CRL signing, so revocation cannot be checked"
                ),
            ),
            E::EmptyEkuExtension => (
                Status::WrongUsage,
                format!(
                    "a certificate in the path of {leaf} has an extended key usage extension listing nothing"
                ),
            ),
            E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
                (Status::WrongUsage, self.wrong_eku(e))
            }
            E::CaUsedAsEndEntity => (
                Status::WrongUsage,
                format!(
                    "certificate {leaf} is a CA certificate and cannot be used as an end-entity certificate"
                ),
            ),
            E::EndEntityUsedAsCa => (
                Status::Invalid,
                format!(
                    "the only issuers found for {leaf} are not CA certificates (their basic constraints \
                     do not allow issuing)"
                ),
            ),
            E::NameConstraintViolation => (
                Status::Invalid,
                format!(
                    "certificate {leaf} has a name that its issuing CA is not permitted to certify (name constraints)"
                ),
            ),
            E::PathLenConstraintViolated => (
                Status::PathTooLong,
                format!("the path of {leaf} has more CAs than a CA's path length constraint allows"),
            ),
            E::MaximumPathDepthExceeded => (Status::PathTooLong, self.too_long()),
            E::MaximumSignatureChecksExceeded
            | E::MaximumPathBuildCallsExceeded
            | E::MaximumNameConstraintComparisonsExceeded => (
                Status::Invalid,
                format!(
                    "path building for {leaf} was stopped because the certificates offered make it too \
                     expensive ({e:?})"
                ),
            ),
            E::UnsupportedSignatureAlgorithm
            | E::UnsupportedSignatureAlgorithmContext(_)
            | E::UnsupportedSignatureAlgorithmForPublicKey
            | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => (
                Status::Invalid,
                format!(
                    "a certificate in the path of {leaf} is signed with an unsupported algorithm or \
                     key type"
                ),
            ),
            E::UnsupportedCrlSignatureAlgorithm
            | E::UnsupportedCrlSignatureAlgorithmContext(_)
            | E::UnsupportedCrlSignatureAlgorithmForPublicKey
            | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => (
                Status::Invalid,
                format!("a CRL covering the path of {leaf} is signed with an unsupported algorithm"),
            ),
            E::InvalidNetworkMaskConstraint | E::MalformedNameConstraint => (
                Status::Invalid,
                format!("a CA certificate in the path of {leaf} has malformed name constraints"),
            ),
            E::MalformedDnsIdentifier => (
                Status::Invalid,
                format!("a certificate in the path of {leaf} contains a malformed DNS name"),
            ),
            other => (
                Status::Invalid,
                format!("a certificate or CRL in the path of {leaf} is invalid: {}", parse_error(other)),
            ),
        }
    }

    /// Leaf, intermediates and anchors, each with what to call it; unreadable
    /// ones are skipped.
    fn certs(&self) -> impl Iterator<Item = (&'static str, X509Certificate<'_>)> {
        std::iter::once(("certificate", self.leaf_der))
            .chain(self.intermediates.iter().map(|c| ("issuing CA certificate", c.as_ref())))
            .chain(self.anchors.iter().map(|der| ("trusted root certificate", *der)))
            .filter_map(|(what, der)| X509Certificate::from_der(der).ok().map(|(_, c)| (what, c)))
    }

    /// "certificate CN=leaf", "issuing CA certificate CN=ca": the first one
    /// whose `field` equals `value` (the time webpki complained about).
    fn which_cert(&self, field: impl Fn(&X509Certificate<'_>) -> i64, value: u64) -> String {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        match self.certs().find(|(_, c)| field(c) == value) {
            Some((what, c)) => format!("{what} {}", dn(&c.subject().to_string())),
            None => "a certificate in the path".to_string(),
        }
    }

    /// Follows issuer names up from the leaf through the known
    /// intermediates and names where the trail ends.
    fn unknown_issuer(&self) -> String {
        let Ok((_, leaf)) = X509Certificate::from_der(self.leaf_der) else {
            return "no trusted issuer found for the certificate".to_string();
        };
        let leaf_subject = dn(&leaf.subject().to_string());
        if leaf.subject().as_raw() == leaf.issuer().as_raw() {
            return untrusted_self_signed(self.leaf_der, self.usage);
        }
        let intermediates: Vec<X509Certificate<'_>> = self
            .intermediates
            .iter()
            .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok().map(|(_, c)| c))
            .collect();
        let mut last = &leaf;
        let mut hops = 0;
        while hops < MAX_EXPLAINED_HOPS {
            let next = intermediates.iter().find(|c| {
                c.subject().as_raw() == last.issuer().as_raw() && c.subject().as_raw() != c.issuer().as_raw()
            });
            match next {
                Some(next) => last = next,
                None => break,
            }
            hops += 1;
        }
        let issuer = dn(&last.issuer().to_string());
        if hops == 0 {
            format!(
                "no trusted issuer found for {leaf_subject}: its issuer {issuer} is not a trusted CA for {}, \
                 and no known intermediate certificate leads to one",
                self.usage.describe()
            )
        } else {
            format!(
                "no trusted issuer found for {leaf_subject}: its path through known intermediates ends at {}, \
                 whose issuer {issuer} is not a trusted CA for {}",
                dn(&last.subject().to_string()),
                self.usage.describe()
            )
        }
    }

    /// Names the revoked certificate, its serial, date and reason.
    fn revoked(&self) -> String {
        let ders = std::iter::once(self.leaf_der).chain(self.intermediates.iter().map(|c| c.as_ref()));
        for der in ders {
            let cert_der = CertificateDer::from(der);
            let Ok(cert) = EndEntityCert::try_from(&cert_der) else { continue };
            for crl in self.crls {
                if crl.issuer() != cert.issuer() {
                    continue;
                }
                if let Ok(Some(entry)) = crl.find_serial(cert.serial()) {
                    let reason = match entry.reason_code {
                        Some(reason) => format!(" (reason: {reason:?})"),
                        None => String::new(),
                    };
                    let what = if der == self.leaf_der { "certificate" } else { "issuing CA certificate" };
                    return format!(
                        "{what} {} (serial {}) was revoked on {}{reason}",
                        subject(der),
                        hex_colons(cert.serial()),
                        time(entry.revocation_date.as_secs())
                    );
                }
            }
        }
        format!("certificate {} or a CA above it has been revoked", subject(self.leaf_der))
    }

    fn distrusted(&self) -> String {
        let mut names: Vec<&str> = self
            .rejected
            .iter()
            .filter_map(|r| match r {
                Rejection::Distrusted(name) => Some(name.as_str()),
                Rejection::TooLong(_) => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            format!("the path of {} uses a CA key that webpki distrusts by default", subject(self.leaf_der))
        } else {
            format!(
                "every path from {} to a trusted CA goes through an explicitly distrusted certificate ({})",
                subject(self.leaf_der),
                names.join("; ")
            )
        }
    }

    fn too_long(&self) -> String {
        let shortest = self
            .rejected
            .iter()
            .filter_map(|r| match r {
                Rejection::TooLong(n) => Some(*n),
                Rejection::Distrusted(_) => None,
            })
            .min();
        match (shortest, self.max_path_len) {
            (Some(n), Some(max)) => format!(
                "the shortest path from {} to a trusted CA has {n} intermediate CAs; the limit is {max}",
                subject(self.leaf_der)
            ),
            _ => format!(
                "no path from {} to a trusted CA within the limit of {} intermediate CAs",
                subject(self.leaf_der),
                self.max_path_len.map_or(6, |max| max.min(6))
            ),
        }
    }

    fn wrong_eku(&self, e: &webpki::Error) -> String {
        let usage = self.usage.describe();
        let present = match e {
            webpki::Error::RequiredEkuNotFoundContext(context) => {
                context.present.iter().map(|arcs| eku_oid_name(arcs)).collect::<Vec<_>>().join(", ")
            }
            _ => String::new(),
        };
        let leaf_refuses = match X509Certificate::from_der(self.leaf_der) {
            Ok((_, leaf)) => super::leaf_eku(&leaf, self.usage).is_err(),
            Err(_) => true,
        };
        if leaf_refuses {
            format!(
                "certificate {} is not valid for {usage}: its extended key usage allows only {present}",
                subject(self.leaf_der)
            )
        } else {
            format!(
                "a CA above {} restricts its extended key usage to {present}, which excludes {usage}",
                subject(self.leaf_der)
            )
        }
    }
}
