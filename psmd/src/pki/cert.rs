//! Certificates in: decoding what applications import (PEM, DER, PKCS#7
//! certs-only, CRLs) and parsing the fields psmd stores and reports.

use psm::proto::CertInfo;
use psm::{Code, Error};
use rustls_pki_types::pem::PemObject;
use sha2::Digest;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Largest certificate accepted; real ones are a few KiB.
pub const MAX_CERT_SIZE: usize = 64 * 1024;
/// Most subjectAltName entries accepted in one certificate.
pub const MAX_SANS: usize = 1024;
/// Most certificates accepted in one import.
pub const MAX_CERTS_PER_IMPORT: usize = 256;

/// What the store keeps about a certificate besides its DER.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub der: Vec<u8>,
    pub sha256: [u8; 32],
    pub sha1: [u8; 20],
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub key_usage: Option<u16>,
    pub ext_key_usage: Option<Vec<String>>,
    pub emails: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    /// SHA-256 of the SubjectPublicKeyInfo: binds a certificate to its key.
    pub spki_sha256: [u8; 32],
    /// The subject's common name, for deriving a nickname.
    pub common_name: Option<String>,
}

impl Parsed {
    pub fn info(&self, nickname: &str, trust: u32, builtin: bool, has_private_key: bool) -> CertInfo {
        CertInfo {
            der: self.der.clone(),
            nickname: nickname.to_string(),
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            serial_hex: self.serial_hex.clone(),
            sha256_hex: hex::encode(self.sha256),
            sha1_hex: hex::encode(self.sha1),
            emails: self.emails.clone(),
            dns_names: self.dns_names.clone(),
            ip_addresses: self.ip_addresses.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
            is_ca: self.is_ca,
            key_usage: self.key_usage,
            ext_key_usage: self.ext_key_usage.clone(),
            has_private_key,
            trust,
            builtin,
            token: String::new(),
            uri: String::new(),
        }
    }

    /// A nickname for a certificate the user did not name: its common
    /// name, else its first email address, else its subject.
    pub fn default_nickname(&self) -> String {
        self.common_name
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| self.emails.first().cloned())
            .unwrap_or_else(|| {
                if self.subject.is_empty() { self.serial_hex.clone() } else { self.subject.clone() }
            })
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::PSM_ERR_DECODE, msg)
}

/// Parses one DER certificate, strictly: no trailing bytes, bounded size and
/// SAN count, every extension psmd relies on well-formed.
pub fn parse(der: &[u8]) -> Result<Parsed, Error> {
    if der.len() > MAX_CERT_SIZE {
        return Err(invalid(format!(
            "certificate is {} bytes; at most {MAX_CERT_SIZE} are accepted",
            der.len()
        )));
    }
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| invalid(format!("not a valid X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid(format!("{} bytes of trailing data after the certificate", rest.len())));
    }
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| invalid(format!("bad basicConstraints: {e}")))?
        .is_some_and(|bc| bc.value.ca);
    let key_usage =
        cert.key_usage().map_err(|e| invalid(format!("bad keyUsage: {e}")))?.map(|ku| ku.value.flags);
    let ext_key_usage =
        cert.extended_key_usage().map_err(|e| invalid(format!("bad extendedKeyUsage: {e}")))?.map(|eku| {
            let e = eku.value;
            let named = [
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.code_signing, "codeSigning"),
                (e.email_protection, "emailProtection"),
                (e.time_stamping, "timeStamping"),
                (e.ocsp_signing, "OCSPSigning"),
                (e.any, "anyExtendedKeyUsage"),
            ];
            let mut v: Vec<String> = named.iter().filter(|(on, _)| *on).map(|(_, n)| n.to_string()).collect();
            v.extend(e.other.iter().map(|oid| oid.to_id_string()));
            v
        });
    let mut emails = Vec::new();
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Some(san) =
        cert.subject_alternative_name().map_err(|e| invalid(format!("bad subjectAltName: {e}")))?
    {
        if san.value.general_names.len() > MAX_SANS {
            return Err(invalid(format!(
                "certificate has {} subjectAltName entries; at most {MAX_SANS} are accepted",
                san.value.general_names.len()
            )));
        }
        for name in &san.value.general_names {
            match name {
                GeneralName::RFC822Name(e) => emails.push(normalize_email(e)),
                GeneralName::DNSName(d) => dns_names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(ip) => ip_addresses.push(ip_to_string(ip)),
                _ => {}
            }
        }
    }
    for attr in cert.subject().iter_email() {
        if let Ok(e) = attr.as_str() {
            let e = normalize_email(e);
            if !emails.contains(&e) {
                emails.push(e);
            }
        }
    }
    let common_name =
        cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
    Ok(Parsed {
        der: der.to_vec(),
        sha256: sha2::Sha256::digest(der).into(),
        sha1: sha1::Sha1::digest(der).into(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial_hex: serial_hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca,
        key_usage,
        ext_key_usage,
        emails,
        dns_names,
        ip_addresses,
        spki_sha256: sha2::Sha256::digest(cert.public_key().raw).into(),
        common_name,
    })
}

/// The serial number as hex without DER's sign byte (0x8BADF00D, not
/// 008badf00d), as openssl and NSS show it.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start.min(raw.len())..])
}

/// Email addresses compare with the domain in lower case (RFC 5321: the
/// local part is the mailbox owner's, the domain is not case-sensitive).
pub fn normalize_email(e: &str) -> String {
    match e.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => e.to_string(),
    }
}

fn ip_to_string(raw: &[u8]) -> String {
    match raw.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(raw).unwrap()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(raw).unwrap()).to_string(),
        _ => hex::encode(raw),
    }
}

/// Splits an import blob into DER certificates: PEM (any number of
/// CERTIFICATE or PKCS7 blocks), a DER certificate, or DER PKCS#7
/// certs-only (.p7b/.p7c).
pub fn decode_certificates(data: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let text = data.trim_ascii_start();
    let certs = if text.starts_with(b"-----BEGIN") {
        decode_pem(data)?
    } else {
        match parse(data) {
            Ok(p) => vec![p.der],
            // Not a certificate: a PKCS#7 bundle, or else the certificate's
            // own complaint is the most useful message.
            Err(cert_err) => pkcs7_certs(data).map_err(|_| cert_err)?,
        }
    };
    if certs.is_empty() {
        return Err(invalid("the input contains no certificates"));
    }
    if certs.len() > MAX_CERTS_PER_IMPORT {
        return Err(invalid(format!(
            "the input holds {} certificates; at most {MAX_CERTS_PER_IMPORT} per import",
            certs.len()
        )));
    }
    Ok(certs)
}

fn decode_pem(data: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    use rustls_pki_types::pem::SectionKind;
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(data) {
        let (kind, der) = item.map_err(|e| invalid(format!("bad PEM: {e}")))?;
        match kind {
            SectionKind::Certificate => out.push(der),
            _ => {
                // PKCS7 blocks are not a SectionKind rustls knows; fall through below.
            }
        }
    }
    if out.is_empty() {
        // "-----BEGIN PKCS7-----" (certs-only bundles in PEM).
        if let Ok(p7) = openssl::pkcs7::Pkcs7::from_pem(data) {
            return pkcs7_to_der(&p7);
        }
    }
    Ok(out)
}

fn pkcs7_certs(data: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let p7 = openssl::pkcs7::Pkcs7::from_der(data)
        .map_err(|_| invalid("not a certificate, PEM or PKCS#7 certs-only (.p7b) file"))?;
    pkcs7_to_der(&p7)
}

fn pkcs7_to_der(p7: &openssl::pkcs7::Pkcs7) -> Result<Vec<Vec<u8>>, Error> {
    let Some(signed) = p7.signed() else {
        return Err(invalid("the PKCS#7 data is not of type signedData (certs-only)"));
    };
    let Some(certs) = signed.certificates() else { return Ok(Vec::new()) };
    certs.iter().map(|c| c.to_der().map_err(|e| invalid(format!("bad certificate in PKCS#7: {e}")))).collect()
}

/// What the store keeps about a CRL.
pub struct ParsedCrl {
    pub der: Vec<u8>,
    pub sha256: [u8; 32],
    pub issuer: String,
    pub this_update: i64,
    pub next_update: Option<i64>,
}

/// Parses a CRL in DER or PEM ("X509 CRL").
pub fn parse_crl(data: &[u8]) -> Result<ParsedCrl, Error> {
    use rustls_pki_types::CertificateRevocationListDer;
    let der = if data.trim_ascii_start().starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::from_pem_slice(data)
            .map_err(|e| invalid(format!("bad PEM CRL: {e}")))?
            .as_ref()
            .to_vec()
    } else {
        data.to_vec()
    };
    let (rest, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
        .map_err(|e| invalid(format!("not a valid CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid("trailing data after the CRL"));
    }
    // The verifier must be able to use it, or every certificate of that CA
    // would fail closed later: refuse it now, with the reason.
    webpki::OwnedCertRevocationList::from_der(&der).map_err(|e| {
        invalid(format!(
            "this CRL cannot be used for revocation checks ({e:?}); psm needs v2 CRLs with a CRL number"
        ))
    })?;
    Ok(ParsedCrl {
        sha256: sha2::Sha256::digest(&der).into(),
        issuer: crl.issuer().to_string(),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        der,
    })
}

/// The raw subject and issuer names of a certificate.
pub fn names(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, x) = X509Certificate::from_der(der).ok()?;
    Some((x.subject().as_raw().to_vec(), x.issuer().as_raw().to_vec()))
}

/// The CA certificates from `cas` above `leaf`, nearest first, up to `max`
/// and without the self-signed root (the peer must already have it): what
/// psm sends along with a certificate it presents (TLS, S/MIME).
pub fn chain_above(leaf: &[u8], cas: &[Vec<u8>], max: usize) -> Vec<Vec<u8>> {
    let mut chain = Vec::new();
    let mut current = leaf.to_vec();
    while chain.len() < max {
        let Some((subject, issuer)) = names(&current) else { break };
        if subject == issuer {
            break;
        }
        let Some(ca) = cas.iter().find(|ca| names(ca).is_some_and(|(s, _)| s == issuer)) else { break };
        if names(ca).is_some_and(|(s, i)| s == i) {
            break;
        }
        chain.push(ca.clone());
        current = ca.clone();
    }
    chain
}
