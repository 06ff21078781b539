//! The trust set's CRLs: which ones webpki can check, and failing closed on
//! the ones it cannot when they belong to a CA in the path.

use super::{MAX_CRL_DER_LEN, TrustSet, describe};
use webpki::{BorrowedCertRevocationList, CertRevocationList};
use x509_parser::oid_registry::OID_X509_EXT_CRL_NUMBER;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// The trust set's CRLs: those webpki checks, and those it cannot use.
pub(super) struct Crls<'a> {
    /// With each, its issuer DN as x509-parser gives it (empty if unreadable).
    pub usable: Vec<(CertRevocationList<'a>, Vec<u8>)>,
    pub unusable: Vec<UnusableCrl>,
}

/// A CRL from the trust set that cannot be used.
pub(super) struct UnusableCrl {
    /// Raw issuer DN, if x509-parser can read that much.
    issuer: Option<Vec<u8>>,
    pub reason: String,
}

impl<'a> Crls<'a> {
    pub fn parse(trust: &'a TrustSet) -> Crls<'a> {
        let mut crls = Crls { usable: Vec::new(), unusable: Vec::new() };
        for der in &trust.crls {
            let parsed = if der.len() > MAX_CRL_DER_LEN {
                Err(format!("a CRL of {} bytes exceeds the limit of {MAX_CRL_DER_LEN}", der.len()))
            } else {
                BorrowedCertRevocationList::from_der(der)
                    .map_err(|e| describe::crl_parse_error(der, &e))
                    .and_then(|crl| crl_profile(der).map(|()| crl))
            };
            match parsed {
                Ok(crl) => crls.usable.push((crl.into(), crl_issuer_raw(der).unwrap_or_default())),
                Err(reason) => crls.unusable.push(UnusableCrl { issuer: crl_issuer_raw(der), reason }),
            }
        }
        crls
    }

    /// Checks the CRLs of a path webpki accepted, failing closed: a CRL we
    /// hold for a CA in the path but cannot use may be the one that revokes
    /// the certificate; and a CRL signed by a key not allowed to sign CRLs is
    /// refused even when that key is the anchor's (which webpki does not
    /// check, as it keeps no key usage for anchors).
    pub fn check_chain(&self, chain: &[Vec<u8>]) -> Result<(), String> {
        for pair in chain.windows(2) {
            let (cert, issuer) = (&pair[0], &pair[1]);
            let Some(issuer_dn) = issuer_raw(cert) else { continue };
            if let Some(crl) = self.unusable.iter().find(|crl| crl.issuer.as_ref() == Some(&issuer_dn)) {
                return Err(format!(
                    "cannot tell whether {} is revoked: {}",
                    describe::subject(cert),
                    crl.reason
                ));
            }
            if self.usable.iter().any(|(_, crl_issuer)| *crl_issuer == issuer_dn) && !may_sign_crls(issuer) {
                return Err(format!(
                    "cannot tell whether {} is revoked: its CRL is signed by {}, whose key usage does not \
                     allow CRL signing",
                    describe::subject(cert),
                    describe::subject(issuer)
                ));
            }
        }
        Ok(())
    }
}

/// What RFC 5280 5.2.3 requires of every CRL and webpki does not check: a
/// CRL number, in a non-critical extension.
fn crl_profile(der: &[u8]) -> Result<(), String> {
    let Ok((_, crl)) = CertificateRevocationList::from_der(der) else {
        return Err("a CRL could not be used: x509-parser cannot read it".to_string());
    };
    let issuer = describe::dn(&crl.issuer().to_string());
    match crl.extensions().iter().find(|ext| ext.oid == OID_X509_EXT_CRL_NUMBER) {
        None => {
            Err(format!("the CRL from {issuer} could not be used: it has no CRL number (RFC 5280 5.2.3)"))
        }
        Some(ext) if ext.critical => Err(format!(
            "the CRL from {issuer} could not be used: its CRL number is marked critical (RFC 5280 5.2.3)"
        )),
        Some(_) => Ok(()),
    }
}

/// Whether a CA certificate may sign CRLs: no key usage extension, or one
/// with cRLSign (RFC 5280 6.3.3 (f)).
fn may_sign_crls(der: &[u8]) -> bool {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => match cert.key_usage() {
            Ok(Some(ku)) => ku.value.crl_sign(),
            Ok(None) => true,
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// The raw issuer DN of a CRL, to match it with the certificates it covers.
fn crl_issuer_raw(der: &[u8]) -> Option<Vec<u8>> {
    CertificateRevocationList::from_der(der).ok().map(|(_, crl)| crl.issuer().as_raw().to_vec())
}

/// The raw issuer DN of a certificate, in the same form as [`crl_issuer_raw`].
fn issuer_raw(der: &[u8]) -> Option<Vec<u8>> {
    X509Certificate::from_der(der).ok().map(|(_, cert)| cert.issuer().as_raw().to_vec())
}
