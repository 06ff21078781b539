//! A rustls signing key whose private half stays on a PKCS#11 token: each
//! handshake signature is one call to the token (on its module's thread,
//! with the module's timeout).

use crate::hwtokens::KeyRef;
use crate::pkcs11::KeyKind;
use crate::pki::keys::SigAlg;
use crate::tls::TlsContext;
use openssl::nid::Nid;
use psm::{Code, Error};
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use std::sync::{Arc, Weak};

/// The token key of a certificate, for rustls.
pub struct TokenSigningKey {
    /// Weak: a server configuration holding the key may live in the context.
    ctx: Weak<TlsContext>,
    key: KeyRef,
    /// The schemes this key can make, best first.
    schemes: Vec<(SignatureScheme, SigAlg)>,
}

impl std::fmt::Debug for TokenSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigningKey({:?} on {:?})", self.key.key.object.label, self.key.key.token.label)
    }
}

impl TokenSigningKey {
    pub fn new(ctx: &Arc<TlsContext>, key: KeyRef) -> Result<TokenSigningKey, Error> {
        let schemes = match key.key.kind {
            // TLS 1.3 ties an ECDSA scheme to its curve: the certificate's.
            KeyKind::Ec => {
                let curve = openssl::x509::X509::from_der(&key.cert.cert.der)
                    .and_then(|c| c.public_key())
                    .and_then(|k| k.ec_key())
                    .ok()
                    .and_then(|k| k.group().curve_name());
                match curve {
                    Some(Nid::X9_62_PRIME256V1) => {
                        vec![(SignatureScheme::ECDSA_NISTP256_SHA256, SigAlg::EcdsaSha256)]
                    }
                    Some(Nid::SECP384R1) => {
                        vec![(SignatureScheme::ECDSA_NISTP384_SHA384, SigAlg::EcdsaSha384)]
                    }
                    _ => {
                        return Err(Error::new(
                            Code::PSM_ERR_UNSUPPORTED,
                            "TLS with a token key works with P-256 and P-384 EC keys and RSA keys",
                        ));
                    }
                }
            }
            KeyKind::Rsa => vec![
                (SignatureScheme::RSA_PSS_SHA256, SigAlg::RsaPssSha256),
                (SignatureScheme::RSA_PKCS1_SHA256, SigAlg::RsaPkcs1Sha256),
            ],
        };
        Ok(TokenSigningKey { ctx: Arc::downgrade(ctx), key, schemes })
    }
}

impl SigningKey for TokenSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let (scheme, alg) = *self.schemes.iter().find(|(s, _)| offered.contains(s))?;
        Some(Box::new(TokenSigner { ctx: self.ctx.clone(), key: self.key.clone(), scheme, alg }))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.key.key.kind {
            KeyKind::Ec => SignatureAlgorithm::ECDSA,
            KeyKind::Rsa => SignatureAlgorithm::RSA,
        }
    }
}

struct TokenSigner {
    ctx: Weak<TlsContext>,
    key: KeyRef,
    scheme: SignatureScheme,
    alg: SigAlg,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigner({:?})", self.scheme)
    }
}

impl Signer for TokenSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let ctx = self.ctx.upgrade().ok_or_else(|| rustls::Error::General("psmd is stopping".into()))?;
        crate::hwtokens::sign(&ctx, &self.key, self.alg, message).map_err(|e| {
            tracing::warn!(token = %self.key.key.token.label, "token signature for TLS failed: {}", e.message);
            rustls::Error::General(format!("the token could not sign: {}", e.message))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
