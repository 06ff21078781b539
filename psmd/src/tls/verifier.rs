//! The server certificate check of psmd's TLS clients: the store's trust
//! settings first, then the user's stored overrides, then (if the
//! application can be asked) the user. What happened is written to the
//! connection's [`Notes`] for `SslInfo` and for the error reply.

use super::TlsContext;
use super::handshake::{Current, Notes};
use crate::dialog::PageKind;
use crate::pki::verify::{self, Name, Status, TrustSet, Usage};
use crate::pool::ReplyTo;
use crate::prompt::Question;
use psm::proto::PromptKind;
use psm::{Code, Error};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The kinds of certificate error a user may accept. A revoked, distrusted,
/// forged or malformed certificate is refused outright (as browsers do).
const OVERRIDABLE: u32 =
    bit(Status::UnknownIssuer) | bit(Status::Expired) | bit(Status::NotYetValid) | bit(Status::NameMismatch);

const fn bit(s: Status) -> u32 {
    1 << (s as u32)
}

/// The kinds of error in `bits`, by name (as the policy names them).
pub fn error_names(bits: u32) -> Vec<&'static str> {
    [
        (Status::UnknownIssuer, "unknown-issuer"),
        (Status::Expired, "expired"),
        (Status::NotYetValid, "not-yet-valid"),
        (Status::NameMismatch, "name-mismatch"),
    ]
    .iter()
    .filter(|(s, _)| bits & bit(*s) != 0)
    .map(|(_, n)| *n)
    .collect()
}

/// The answers to a server trust prompt.
pub const ANSWER_ONCE: &str = "once";
pub const ANSWER_ALWAYS: &str = "always";
pub const ANSWER_REJECT: &str = "reject";

#[derive(Debug)]
pub struct Verifier {
    pub ctx: Arc<TlsContext>,
    /// The name the certificate must be valid for, and the port overrides
    /// are bound to.
    pub host: String,
    pub port: u16,
    /// Whether the user may be asked (the application has a prompt handler).
    pub can_prompt: bool,
    pub to: ReplyTo,
    pub notes: Arc<Mutex<Notes>>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsContext")
    }
}

impl Verifier {
    fn notes(&self) -> std::sync::MutexGuard<'_, Notes> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records why the handshake stops and tells rustls which alert to send.
    fn refuse(&self, status: Status, e: Error) -> rustls::Error {
        self.notes().record_verification(e.code, &e.message, None);
        // The server's certificate is the first thing wrong, even if the
        // client certificate choice (which rustls makes earlier) failed too.
        self.notes().error = Some(e);
        rustls::Error::InvalidCertificate(match status {
            Status::Expired => CertificateError::Expired,
            Status::NotYetValid => CertificateError::NotValidYet,
            Status::UnknownIssuer => CertificateError::UnknownIssuer,
            Status::NameMismatch => CertificateError::NotValidForName,
            Status::Revoked => CertificateError::Revoked,
            Status::BadSignature => CertificateError::BadSignature,
            _ => CertificateError::ApplicationVerificationFailure,
        })
    }

    fn accept(&self, v: &verify::Verdict, how: &'static str) -> ServerCertVerified {
        let mut notes = self.notes();
        notes.record_verification(v.status.code(), &v.detail, Some(how));
        // A resumed session skips the verifier: one accepted "once" would
        // skip the question, and one accepted "always" (bound to this port)
        // could be resumed on another port of the same server.
        notes.no_resumption = true;
        ServerCertVerified::assertion()
    }

    fn ask(&self, v: &verify::Verdict, bits: u32, presented: &[&[u8]]) -> Result<String, Error> {
        let chain: Vec<serde_json::Value> = presented.iter().map(|d| cert_json(d)).collect();
        let details = serde_json::json!({
            "host": self.host,
            "port": self.port,
            "result": format!("{:?}", v.status.code()),
            "errors": status_names(bits),
            "detail": v.detail,
            "sha256": hex::encode(verify::fingerprint(presented[0])),
            "chain": chain,
        });
        let message = format!(
            "{}:{} presented a certificate psm cannot verify: {}. Accept it this once, always for this \
             server, or reject it?",
            self.host, self.port, v.detail
        );
        let choices = [ANSWER_ONCE, ANSWER_ALWAYS, ANSWER_REJECT].map(String::from).to_vec();
        let asked = std::time::Instant::now();
        let q = Question { kind: PageKind::Prompt(PromptKind::ServerTrust), message, details, choices };
        let answer = self.ctx.prompts.ask(self.to, q);
        self.notes().user_time += asked.elapsed();
        Ok(answer?.0.clone())
    }
}

impl Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let trust = self.ctx.server_trust().map_err(|e| self.refuse(Status::Invalid, e))?;
        let name = host_name(&self.host);
        let at = now.as_secs();
        let v =
            verify::verify_presented(end_entity.as_ref(), intermediates, Usage::TlsServer, name, at, &trust);
        if v.is_valid() {
            self.notes().record_verification(Code::PSM_OK, &v.detail, None);
            return Ok(ServerCertVerified::assertion());
        }
        let bits = error_bits(end_entity.as_ref(), intermediates, name, at, &trust, v.status);
        let refuse = |why: String| self.refuse(v.status, Error::new(v.status.code(), why));
        if bits & !OVERRIDABLE != 0 {
            return Err(refuse(v.detail.clone()));
        }
        if !self.ctx.policy().may_override(bits) {
            // Not even an override the user stored before the policy said so.
            return Err(refuse(format!("{} (the security policy does not let users accept this)", v.detail)));
        }
        let sha256 = verify::fingerprint(end_entity.as_ref());
        let decided = |result: &str| {
            let site = format!("{}:{}", self.host, self.port);
            self.ctx.audit.record(
                self.to.session_id,
                "trust-decision",
                &hex::encode(sha256),
                result,
                Some(&site),
            );
        };
        let stored = self.ctx.lock_store().override_bits(&self.host, self.port, &sha256);
        match stored {
            Ok(Some(accepted)) if bits & !accepted == 0 => {
                decided("stored-always");
                return Ok(self.accept(&v, ANSWER_ALWAYS));
            }
            Ok(_) => {}
            Err(e) => return Err(self.refuse(v.status, e)),
        }
        if !self.can_prompt {
            return Err(refuse(v.detail.clone()));
        }
        let mut presented: Vec<&[u8]> = vec![end_entity.as_ref()];
        presented.extend(intermediates.iter().map(|c| c.as_ref()));
        match self.ask(&v, bits, &presented).as_deref() {
            Ok(ANSWER_ONCE) => {
                decided("once");
                Ok(self.accept(&v, ANSWER_ONCE))
            }
            Ok(ANSWER_ALWAYS) => {
                if let Err(e) = self.ctx.lock_store().put_override(&self.host, self.port, &sha256, bits) {
                    return Err(self.refuse(v.status, e));
                }
                decided("always");
                Ok(self.accept(&v, ANSWER_ALWAYS))
            }
            Ok(_) => {
                decided("rejected");
                Err(refuse(format!("{} (the user rejected the certificate)", v.detail)))
            }
            Err(e) => Err(self.refuse(v.status, e.clone())),
        }
    }
}

/// The verifier every client connection shares: rustls resumes a session
/// only with the verifier (and certificate resolver) instance that made it.
/// The connection at hand is the one this thread runs ([`Current`]).
#[derive(Debug)]
pub struct SharedVerifier {
    pub provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for SharedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Current::with(|cur| {
            let v = Verifier {
                ctx: cur.ctx.clone(),
                host: cur.host.clone(),
                port: cur.port,
                can_prompt: cur.can_prompt,
                to: cur.to,
                notes: cur.notes.clone(),
            };
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        })
        .unwrap_or_else(|| Err(rustls::Error::General("certificate check outside a psmd handshake".into())))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The name a server certificate must match: an IP address or a DNS name
/// (never an e-mail address, whatever the string holds).
pub fn host_name(host: &str) -> Name<'_> {
    match host.parse() {
        Ok(ip) => Name::Ip(ip),
        Err(_) => Name::Dns(host),
    }
}

/// Every kind of problem the certificate has, not just the first one found,
/// so that an override accepted for one kind never covers another: the
/// leaf's own validity period and name, and the path to an anchor at a time
/// the leaf is valid.
fn error_bits(
    ee: &[u8],
    intermediates: &[CertificateDer<'_>],
    name: Name<'_>,
    at: u64,
    trust: &TrustSet,
    first: Status,
) -> u32 {
    let mut bits = bit(first);
    let mut when = at;
    if let Ok((_, x)) = X509Certificate::from_der(ee) {
        let (nb, na) = (x.validity().not_before.timestamp(), x.validity().not_after.timestamp());
        let t = at as i64;
        if t < nb {
            bits |= bit(Status::NotYetValid);
        }
        if t > na {
            bits |= bit(Status::Expired);
        }
        if t < nb || t > na {
            when = u64::try_from(nb + (na - nb) / 2).unwrap_or(at);
        }
    }
    let at_when = verify::verify_presented(ee, intermediates, Usage::TlsServer, Name::None, when, trust);
    if !at_when.is_valid() {
        bits |= bit(at_when.status);
    }
    let server_name = match name {
        Name::Dns(h) => ServerName::try_from(h).ok(),
        Name::Ip(ip) => Some(ServerName::IpAddress(ip.into())),
        _ => None,
    };
    let der = CertificateDer::from(ee);
    if let (Some(server_name), Ok(cert)) = (server_name, webpki::EndEntityCert::try_from(&der))
        && cert.verify_is_valid_for_subject_name(&server_name).is_err()
    {
        bits |= bit(Status::NameMismatch);
    }
    bits
}

fn status_names(bits: u32) -> Vec<String> {
    [
        Status::UnknownIssuer,
        Status::Expired,
        Status::NotYetValid,
        Status::NameMismatch,
        Status::Revoked,
        Status::BadSignature,
        Status::WrongUsage,
        Status::PathTooLong,
        Status::Distrusted,
        Status::Invalid,
    ]
    .into_iter()
    .filter(|s| bits & bit(*s) != 0)
    .map(|s| format!("{:?}", s.code()))
    .collect()
}

/// SHA-256, subject and issuer of a certificate, for prompts and `SslInfo`.
pub fn cert_json(der: &[u8]) -> serde_json::Value {
    match crate::pki::cert::parse(der) {
        Ok(p) => {
            let i = p.info("", 0, false, false);
            serde_json::json!({
                "sha256": i.sha256_hex, "subject": i.subject, "issuer": i.issuer, "serial_hex": i.serial_hex,
                "sha1_hex": i.sha1_hex, "not_before": i.not_before, "not_after": i.not_after,
                "dns_names": i.dns_names, "emails": i.emails,
            })
        }
        Err(_) => {
            serde_json::json!({ "sha256": hex::encode(verify::fingerprint(der)), "subject": null, "issuer": null })
        }
    }
}
