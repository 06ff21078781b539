//! Certificates psmd presents: a client certificate when a server asks
//! (named by the application, or the only one that fits, or the user's
//! choice), and the server certificate of `SslAcceptFd`. The private key is
//! unsealed from the soft token for the session and signs inside psmd.

use super::TlsContext;
use super::handshake::{Current, Notes};
use crate::dialog::PageKind;
use crate::pool::ReplyTo;
use crate::prompt::Question;
use psm::proto::{CERTS_USER, PromptKind};
use psm::{Code, Error};
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, Mutex};

/// Most CA certificates psmd puts above a leaf it presents.
const MAX_CHAIN: usize = 5;

/// The certificate `sha256` with its private key, ready to present,
/// followed by the CA certificates above it that the store holds (not the
/// self-signed root: the peer must already have it). The key is psm's soft
/// token's, or, for a certificate on a PKCS#11 token, that token's (logged
/// in first, asking the user at `to` for the PIN if given).
pub fn certified_key(
    ctx: &Arc<TlsContext>,
    session: u64,
    to: Option<ReplyTo>,
    sha256: &[u8; 32],
) -> Result<Arc<CertifiedKey>, Error> {
    let r = match load_certified_key(ctx, session, sha256) {
        Err(e) if e.code == Code::PSM_ERR_NOT_FOUND => {
            token_certified_key(ctx, session, to, sha256)?.ok_or(e)
        }
        r => r,
    };
    ctx.audit.record_result(session, "tls-key", || hex::encode(sha256), &r);
    r
}

fn token_certified_key(
    ctx: &Arc<TlsContext>,
    session: u64,
    to: Option<ReplyTo>,
    sha256: &[u8; 32],
) -> Result<Option<Arc<CertifiedKey>>, Error> {
    let Some(key) = crate::hwtokens::key_for(ctx, session, to, sha256, "identify you to a server")? else {
        return Ok(None);
    };
    let leaf = key.cert.cert.der.clone();
    let key = Arc::new(super::token_key::TokenSigningKey::new(ctx, key)?);
    Ok(Some(Arc::new(CertifiedKey::new(with_chain(ctx, leaf)?, key))))
}

fn with_chain(ctx: &TlsContext, leaf: Vec<u8>) -> Result<Vec<CertificateDer<'static>>, Error> {
    let cas: Vec<Vec<u8>> =
        ctx.lock_store().all_with_trust()?.into_iter().filter(|r| r.is_ca).map(|r| r.der).collect();
    let mut chain = crate::pki::cert::chain_above(&leaf, &cas, MAX_CHAIN)
        .into_iter()
        .map(CertificateDer::from)
        .collect::<Vec<_>>();
    chain.insert(0, CertificateDer::from(leaf));
    Ok(chain)
}

fn load_certified_key(ctx: &TlsContext, session: u64, sha256: &[u8; 32]) -> Result<Arc<CertifiedKey>, Error> {
    let (leaf, row) = {
        let store = ctx.lock_store();
        let leaf = store.get(sha256)?;
        let spki = store.cert_spki(sha256)?;
        let row = store.key_for_spki(&spki)?.ok_or_else(|| {
            Error::new(
                Code::PSM_ERR_NOT_FOUND,
                format!("certificate {} has no private key in psm", leaf.nickname),
            )
        })?;
        (leaf, row)
    };
    let master = ctx.token.master(session)?;
    let pkcs8 = row.open(&master)?;
    let key = ctx
        .provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec())))
        .map_err(|e| {
            Error::new(Code::PSM_ERR_UNSUPPORTED, format!("this key cannot be used for TLS: {e}"))
        })?;
    Ok(Arc::new(CertifiedKey::new(with_chain(ctx, leaf.der)?, key)))
}

/// Whether a server's CA hint names `issuer_raw` (hints may come with or
/// without the Name's outer SEQUENCE).
fn hint_matches(hint: &[u8], issuer_raw: &[u8]) -> bool {
    hint == issuer_raw || strip_sequence(issuer_raw) == Some(hint)
}

fn strip_sequence(der: &[u8]) -> Option<&[u8]> {
    if der.first() != Some(&0x30) {
        return None;
    }
    let len0 = *der.get(1)? as usize;
    let (len, start) = if len0 < 0x80 {
        (len0, 2)
    } else {
        let n = len0 & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = der.get(2..2 + n)?;
        (bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize), 2 + n)
    };
    der.get(start..start + len)
}

/// Chooses the client certificate when a server asks for one.
#[derive(Debug)]
pub struct ClientCerts {
    pub ctx: Arc<TlsContext>,
    pub session: u64,
    /// The certificate the application named, if it did.
    pub named: Option<[u8; 32]>,
    pub can_prompt: bool,
    pub to: ReplyTo,
    pub notes: Arc<Mutex<Notes>>,
    /// The server asking, for the user.
    pub host: String,
}

impl ClientCerts {
    fn notes(&self) -> std::sync::MutexGuard<'_, Notes> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user's certificates with a private key, valid now for TLS client
    /// authentication, issued by a CA the server names (any, if it names none).
    fn candidates(&self, hints: &[&[u8]]) -> Result<Vec<psm::proto::CertInfo>, Error> {
        let now = super::unix_now() as i64;
        let mut certs = self.ctx.lock_store().list(CERTS_USER)?;
        // And those on the tokens present whose key is there too.
        crate::hwtokens::add_token_certs(&self.ctx, &mut certs, CERTS_USER);
        Ok(certs
            .into_iter()
            .filter(|c| c.has_private_key && c.not_before <= now && now <= c.not_after && !c.is_ca)
            .filter(|c| c.ext_key_usage.as_ref().is_none_or(|ekus| ekus.iter().any(|e| e == "clientAuth")))
            .filter(|c| {
                hints.is_empty()
                    || crate::pki::cert::names(&c.der)
                        .is_some_and(|(_, issuer)| hints.iter().any(|h| hint_matches(h, &issuer)))
            })
            .collect())
    }

    fn choose(&self, hints: &[&[u8]]) -> Result<Option<[u8; 32]>, Error> {
        if let Some(named) = self.named {
            return Ok(Some(named));
        }
        let candidates = self.candidates(hints)?;
        let sha = |c: &psm::proto::CertInfo| crate::store::parse_fingerprint(&c.sha256_hex);
        match candidates.len() {
            0 => Ok(None),
            1 => sha(&candidates[0]).map(Some),
            n if !self.can_prompt => Err(Error::new(
                Code::PSM_ERR_NO_UI,
                format!(
                    "the server asks for a client certificate and {n} of yours match; name one in the \
                     options or register a prompt handler"
                ),
            )),
            _ => {
                let choices: Vec<String> =
                    candidates.iter().map(|c| format!("sha256:{}", c.sha256_hex)).collect();
                let list: Vec<serde_json::Value> = candidates
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "choice": format!("sha256:{}", c.sha256_hex),
                            "nickname": c.nickname,
                            "subject": c.subject,
                            "issuer": c.issuer,
                            "not_after": c.not_after,
                        })
                    })
                    .collect();
                let details = serde_json::json!({ "certificates": list, "host": self.host });
                let message =
                    "The server asks who you are. Which certificate should identify you?".to_string();
                let asked = std::time::Instant::now();
                let q =
                    Question { kind: PageKind::Prompt(PromptKind::ClientCert), message, details, choices };
                let answer = self.ctx.prompts.ask(self.to, q);
                self.notes().user_time += asked.elapsed();
                crate::store::parse_fingerprint(&answer?.0).map(Some)
            }
        }
    }
}

/// The certificate chooser every client connection shares (see
/// `SharedVerifier` for why); the connection is this thread's [`Current`].
#[derive(Debug)]
pub struct SharedClientCerts;

impl ResolvesClientCert for SharedClientCerts {
    fn resolve(&self, hints: &[&[u8]], sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Current::with(|cur| {
            let certs = ClientCerts {
                ctx: cur.ctx.clone(),
                session: cur.to.session_id,
                named: cur.named,
                can_prompt: cur.can_prompt,
                to: cur.to,
                notes: cur.notes.clone(),
                host: cur.host.clone(),
            };
            certs.resolve(hints, sigschemes)
        })
        .flatten()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ClientCerts {
    fn resolve(&self, hints: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let chosen = self.choose(hints).and_then(|c| match c {
            Some(sha) => {
                let operation = format!("identify you to {}", self.host);
                crate::token::confirm_key_use(&self.ctx, self.to, &sha, &operation)?;
                let to = self.can_prompt.then_some(self.to);
                certified_key(&self.ctx, self.session, to, &sha).map(|k| Some((sha, k)))
            }
            None => Ok(None),
        });
        match chosen {
            Ok(Some((_, key))) => {
                let mut notes = self.notes();
                notes.client_cert = key.cert.first().map(|c| c.to_vec());
                // The server ties a resumed session to this identity; no
                // other application may resume it.
                notes.no_resumption = true;
                Some(key)
            }
            Ok(None) => None,
            Err(e) => {
                // rustls cannot fail the handshake from here; the handshake
                // driver sees the recorded error and stops.
                self.notes().fail(e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_matches_with_or_without_the_outer_sequence() {
        let name = [0x30, 0x03, 0x31, 0x01, 0x00];
        assert!(hint_matches(&name, &name));
        assert!(hint_matches(&name[2..], &name));
        assert!(!hint_matches(&[0x31], &name));
        assert_eq!(strip_sequence(&[0x30, 0x81]), None);
    }
}
