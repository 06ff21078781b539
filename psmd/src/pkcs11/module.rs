//! A loaded PKCS#11 module: its thread, what it said about itself, and the
//! operations psmd asks of it, each one a call on that thread with the
//! timeout the module was loaded with.
//!
//! A library can be initialized only once per process, and finalizing it
//! ends every session to it, so each module file is loaded once per
//! process, however many [`super::Modules`] name it (a policy reload builds
//! a new one while the old one still serves requests), and finalized when
//! the last of them lets it go.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoki::types::AuthPin;
use psm::Error;
use zeroize::Zeroizing;

use super::sign::RawSign;
use super::token::State;
use super::worker::Worker;
use super::{
    LibraryInfo, PIN_PAD_TIMEOUT, Pkcs11Uri, RsaDecrypt, SlotPresence, TokenCertificate, TokenInfo, TokenKey,
};
use crate::pki::keys::SigAlg;

struct Shared {
    path: PathBuf,
    library: LibraryInfo,
    worker: Worker<State>,
}

/// Every module file loaded in this process. Taken while a module is
/// loaded or let go, so a file is never initialized while its previous
/// load is still finalizing.
static LOADED: Mutex<Vec<Arc<Shared>>> = Mutex::new(Vec::new());

pub struct Module {
    shared: Arc<Shared>,
    timeout: Duration,
}

impl Module {
    /// Loads the module at `canonical` (already checked against the
    /// policy), or shares the one this process has loaded from that file.
    pub(super) fn load(canonical: &Path, timeout: Duration) -> Result<Module, Error> {
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = loaded.iter().find(|s| s.path == canonical) {
            return Ok(Module { shared: shared.clone(), timeout });
        }
        let path = canonical.to_path_buf();
        let worker = Worker::start(path.display().to_string(), timeout, move || State::open(&path))?;
        let library = match worker.call("C_GetInfo", timeout, |s| s.library_info()) {
            Ok(l) => l,
            Err(e) => {
                worker.shutdown(timeout);
                return Err(e);
            }
        };
        tracing::info!(
            module = %canonical.display(),
            manufacturer = %library.manufacturer,
            description = %library.description,
            "PKCS#11 module loaded"
        );
        let shared = Arc::new(Shared { path: canonical.to_path_buf(), library, worker });
        loaded.push(shared.clone());
        Ok(Module { shared, timeout })
    }

    /// The module file's canonical path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    pub fn library(&self) -> &LibraryInfo {
        &self.shared.library
    }

    /// If a call into this module has been running for longer than the
    /// timeout: which function, and for how long.
    pub fn hung(&self) -> Option<(&'static str, Duration)> {
        self.shared.worker.hung(self.timeout)
    }

    fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut State) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.shared.worker.call(what, self.timeout, f)
    }

    /// Every slot and whether a token is in it (for insertion and removal
    /// events; a removed token's login is forgotten).
    pub fn presence(&self) -> Result<Vec<SlotPresence>, Error> {
        self.call("C_GetSlotInfo", |s| s.presence())
    }

    /// The tokens present in this module's slots.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        let path = self.shared.path.clone();
        let library = self.shared.library.clone();
        self.call("C_GetTokenInfo", move |s| s.tokens(&path, &library))
    }

    pub fn certificates(&self, token: &TokenInfo, uri: &Pkcs11Uri) -> Result<Vec<TokenCertificate>, Error> {
        let (token, uri) = (token.clone(), uri.clone());
        self.call("C_FindObjects", move |s| s.certificates(&token, &uri))
    }

    pub fn private_keys(&self, token: &TokenInfo, uri: &Pkcs11Uri) -> Result<Vec<TokenKey>, Error> {
        let (token, uri) = (token.clone(), uri.clone());
        self.call("C_FindObjects", move |s| s.private_keys(&token, &uri))
    }

    /// Logs in to `token` with `pin`, or, with `None`, on the token's own
    /// PIN pad (which waits for the user, so the call may take longer).
    /// A wrong PIN is `PSM_ERR_BAD_PASSWORD`.
    pub fn login(&self, token: &TokenInfo, pin: Option<Zeroizing<String>>) -> Result<(), Error> {
        let token = token.clone();
        // The PIN moves into the closure and is wiped when it is dropped,
        // whether or not the call is ever made.
        let pin = pin.map(|p| AuthPin::from(p.as_str()));
        let timeout = if token.flags.protected_authentication_path {
            self.timeout.max(PIN_PAD_TIMEOUT)
        } else {
            self.timeout
        };
        self.shared.worker.call("C_Login", timeout, move |s| s.login(&token, pin))
    }

    pub fn logout(&self, token: &TokenInfo) -> Result<(), Error> {
        let token = token.clone();
        self.call("C_Logout", move |s| s.logout(&token))
    }

    /// Whether this process is logged in to `token`.
    pub fn logged_in(&self, token: &TokenInfo) -> Result<bool, Error> {
        let token = token.clone();
        self.call("C_GetSessionInfo", move |s| s.logged_in(&token))
    }

    /// Whether `token` holds a key pair object with CKA_ID `id`.
    pub fn has_key_pair(&self, token: &TokenInfo, id: &[u8]) -> Result<bool, Error> {
        let (token, id) = (token.clone(), id.to_vec());
        self.call("C_FindObjects", move |s| s.has_key_pair(&token, &id))
    }

    /// ECDH of the token's EC key with `peer_point` (uncompressed): the
    /// `len`-byte shared secret (see `State::ecdh`).
    pub fn ecdh(&self, key: &TokenKey, peer_point: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (key, point) = (key.clone(), peer_point.to_vec());
        self.call("C_DeriveKey", move |s| s.ecdh(&key, &point, len))
    }

    /// Whether a call into this module has been running for longer than
    /// `d` (the watcher leaves such a module alone rather than queue
    /// behind the call).
    pub fn busy_for(&self, d: Duration) -> bool {
        self.shared.worker.hung(d).is_some()
    }

    /// Signs `message` with a key on this module's token. For ECDSA the
    /// result is raw `r || s` ([`super::sign::ecdsa_raw_to_der`]).
    pub fn sign(&self, key: &TokenKey, alg: SigAlg, message: &[u8]) -> Result<Vec<u8>, Error> {
        let (key, message) = (key.clone(), message.to_vec());
        self.call("C_Sign", move |s| s.sign(&key, alg, &message))
    }

    /// Signs a digest the caller made with `CKM_ECDSA`; the result is raw
    /// `r || s` ([`super::sign::ecdsa_raw_to_der`]).
    pub fn sign_digest_ecdsa(&self, key: &TokenKey, digest: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_raw(key, RawSign::Ecdsa, digest)
    }

    /// Signs `data`, a DigestInfo the caller built, with `CKM_RSA_PKCS`
    /// (the token adds the PKCS#1 v1.5 padding).
    pub fn sign_rsa_pkcs1_raw(&self, key: &TokenKey, data: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_raw(key, RawSign::RsaPkcs1, data)
    }

    /// The raw RSA private operation on `block`, one modulus long and
    /// already padded by the caller (PSS), with `CKM_RSA_X_509` `C_Sign`:
    /// a signing key may sign but, on most cards, not decrypt.
    pub fn sign_rsa_x509(&self, key: &TokenKey, block: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_raw(key, RawSign::RsaRaw, block)
    }

    fn sign_raw(&self, key: &TokenKey, raw: RawSign, data: &[u8]) -> Result<Vec<u8>, Error> {
        let (key, data) = (key.clone(), data.to_vec());
        self.call("C_Sign", move |s| s.sign_raw(&key, raw, &data))
    }

    /// Decrypts `data` with an RSA key on this module's token.
    pub fn decrypt_rsa(
        &self,
        key: &TokenKey,
        padding: RsaDecrypt,
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (key, data) = (key.clone(), data.to_vec());
        self.call("C_Decrypt", move |s| s.decrypt_rsa(&key, padding, &data))
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        // Only this handle and the registry hold it: the last user is
        // leaving, so finalize now, under the lock, before anyone can load
        // the file again.
        if Arc::strong_count(&self.shared) == 2 {
            loaded.retain(|s| !Arc::ptr_eq(s, &self.shared));
            self.shared.worker.shutdown(self.timeout);
            tracing::info!(module = %self.shared.path.display(), "PKCS#11 module unloaded");
        }
    }
}
