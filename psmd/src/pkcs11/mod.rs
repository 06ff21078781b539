//! Cryptographic tokens behind PKCS#11 modules (smart cards, HSMs, SoftHSM).
//!
//! Only psmd loads modules, and only those the administrator's policy lists
//! (`pkcs11.modules`): [`Modules`] refuses any other path, even when asked
//! for it by name ([`allowlist`]). Each loaded module gets one thread of its
//! own that makes every PKCS#11 call ([`worker`]); the caller waits at most a
//! per-call timeout, so a module that hangs is reported as hung and never
//! blocks the soft token, other modules or other sessions. Keys stay on the
//! token: psmd hashes in-process and the token signs the digest ([`sign`]);
//! OpenSSL code gets keys whose private operations call back into the
//! token ([`ossl`]).
//! Objects can be named with RFC 7512 URIs ([`uri`]).

pub mod allowlist;
mod error;
mod module;
pub mod ossl;
pub mod sign;
mod token;
pub mod uri;
mod worker;

pub use module::Module;
pub use uri::{Pkcs11Uri, is_pkcs11_uri};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use psm::{Code, Error};

/// How long one PKCS#11 call may take before its module counts as hung.
/// Real tokens answer in well under a second; RSA key generation on a slow
/// smart card is the slowest thing we would ever ask, and we do not.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// A login on a token with a PIN pad waits for the user to type the PIN.
pub const PIN_PAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Most objects of one kind we read from one token in one search.
pub const MAX_OBJECTS: usize = 1000;

/// What a module says about itself (`C_GetInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibraryInfo {
    pub manufacturer: String,
    pub description: String,
    pub version: (u8, u8),
}

/// The flags of a token that psm shows or acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenFlags {
    /// False for a blank token (SoftHSM always offers one to initialize).
    pub token_initialized: bool,
    pub login_required: bool,
    pub user_pin_initialized: bool,
    /// The PIN is typed on the reader's PIN pad, not given to psm.
    pub protected_authentication_path: bool,
    pub user_pin_count_low: bool,
    pub user_pin_final_try: bool,
    pub user_pin_locked: bool,
    pub write_protected: bool,
}

/// A token present in a slot of a loaded module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The module's canonical path.
    pub module: PathBuf,
    pub library: LibraryInfo,
    pub slot: u64,
    pub slot_description: String,
    pub slot_manufacturer: String,
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub flags: TokenFlags,
}

/// A slot and whether a token is in it, for insertion and removal events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotPresence {
    pub slot: u64,
    pub token_present: bool,
}

/// PKCS#11 object classes a URI can name (`type=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Certificate,
    PrivateKey,
    PublicKey,
    SecretKey,
    Data,
}

/// The attributes of an object a URI can match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub class: ObjectType,
    /// `CKA_LABEL`, empty if the object has none.
    pub label: String,
    /// `CKA_ID`, empty if the object has none.
    pub id: Vec<u8>,
}

/// An X.509 certificate found on a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenCertificate {
    pub token: TokenInfo,
    pub object: ObjectInfo,
    pub der: Vec<u8>,
}

/// The kinds of token keys psm signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ec,
    Rsa,
}

/// A private key on a token: a reference only, the key stays there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenKey {
    pub token: TokenInfo,
    pub object: ObjectInfo,
    pub kind: KeyKind,
}

/// How an RSA key on a token decrypts ([`Module::decrypt_rsa`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaDecrypt {
    /// `CKM_RSA_PKCS`: the token checks and removes PKCS#1 v1.5 padding.
    Pkcs1,
    /// `CKM_RSA_X_509`: the raw private operation; the caller removes the
    /// padding (OpenSSL does, for OAEP).
    Raw,
}

/// A token appearing in or leaving a slot, found by [`Modules::poll_presence`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresenceChange {
    Inserted { module: PathBuf, slot: u64 },
    Removed { module: PathBuf, slot: u64 },
}

/// The modules psmd may load (the policy's list) and those it has loaded.
pub struct Modules {
    allowed: Vec<PathBuf>,
    timeout: Duration,
    loaded: Vec<Arc<Module>>,
    presence: Presence,
}

impl Modules {
    /// `allowed` is the policy's `pkcs11.modules`: absolute paths. Entries
    /// that do not exist are kept (a module may be installed later) but can
    /// only match once they do; nothing is loaded yet.
    pub fn new(allowed: &[PathBuf], timeout: Duration) -> Modules {
        Modules { allowed: allowed.to_vec(), timeout, loaded: Vec::new(), presence: Presence::default() }
    }

    /// Loads (and initializes) the module at `path` if the policy lists
    /// it, or returns the one already loaded from the same file.
    pub fn load(&mut self, path: &Path) -> Result<Arc<Module>, Error> {
        let canonical = allowlist::check(path, &self.allowed)?;
        if let Some(m) = self.loaded.iter().find(|m| m.path() == canonical) {
            return Ok(m.clone());
        }
        let module = Arc::new(Module::load(&canonical, self.timeout)?);
        self.loaded.push(module.clone());
        Ok(module)
    }

    /// Loads every module the policy lists; returns the ones that failed
    /// with why, so psmd can report them and carry on with the others.
    pub fn load_all(&mut self) -> Vec<(PathBuf, Error)> {
        let mut failed = Vec::new();
        for path in self.allowed.clone() {
            if let Err(e) = self.load(&path) {
                failed.push((path, e));
            }
        }
        failed
    }

    pub fn loaded(&self) -> &[Arc<Module>] {
        &self.loaded
    }

    /// The loaded module whose canonical path is `path`.
    pub fn get(&self, path: &Path) -> Result<&Arc<Module>, Error> {
        self.loaded.iter().find(|m| m.path() == path).ok_or_else(|| {
            Error::new(Code::PSM_ERR_NOT_FOUND, format!("PKCS#11 module {} is not loaded", path.display()))
        })
    }

    /// Tokens present in every loaded module that answers; a module that
    /// fails or hangs is reported in the second list and skipped.
    pub fn tokens(&self) -> (Vec<TokenInfo>, Vec<(PathBuf, Error)>) {
        let mut tokens = Vec::new();
        let mut failed = Vec::new();
        for m in &self.loaded {
            match m.tokens() {
                Ok(t) => tokens.extend(t),
                Err(e) => failed.push((m.path().to_path_buf(), e)),
            }
        }
        (tokens, failed)
    }

    /// X.509 certificates on the tokens a URI names that match its object
    /// attributes.
    pub fn find_certificates(&self, uri: &Pkcs11Uri) -> Result<Vec<TokenCertificate>, Error> {
        let mut certs = Vec::new();
        for (m, token) in matching_tokens(&self.loaded, uri)? {
            certs.extend(m.certificates(&token, uri)?);
        }
        Ok(certs)
    }

    /// The one private key a URI names (see [`find_key`]).
    pub fn find_key(&self, uri: &Pkcs11Uri) -> Result<TokenKey, Error> {
        find_key(&self.loaded, uri)
    }

    /// Polls every loaded module's slots and returns the tokens inserted or
    /// removed since the last poll (the first poll reports every present
    /// token as inserted). A module that fails to answer is skipped.
    pub fn poll_presence(&mut self) -> Vec<PresenceChange> {
        self.presence.poll(&self.loaded)
    }
}

/// The tokens of `modules` a URI can name (by module-path, module-name
/// and the token attributes), with their module.
pub fn matching_tokens(
    modules: &[Arc<Module>],
    uri: &Pkcs11Uri,
) -> Result<Vec<(Arc<Module>, TokenInfo)>, Error> {
    let mut found = Vec::new();
    let mut first_error = None;
    for m in modules {
        match m.tokens() {
            Ok(tokens) => {
                found.extend(tokens.into_iter().filter(|t| uri.matches_token(t)).map(|t| (m.clone(), t)))
            }
            // A hung or failing module must not hide the tokens of the
            // others; its error is reported only if nothing matched.
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (found.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(found),
    }
}

/// The one private key on the tokens of `modules` a URI names. None, or
/// more than one, is an error that says which; a key hidden until login
/// yields `PSM_ERR_LOGIN_REQUIRED` naming the token.
pub fn find_key(modules: &[Arc<Module>], uri: &Pkcs11Uri) -> Result<TokenKey, Error> {
    let mut keys = Vec::new();
    let mut login_needed = None;
    for (m, token) in matching_tokens(modules, uri)? {
        match m.private_keys(&token, uri) {
            Ok(k) => keys.extend(k),
            Err(e) if e.code == Code::PSM_ERR_LOGIN_REQUIRED => login_needed = Some(e),
            Err(e) => return Err(e),
        }
    }
    match keys.len() {
        1 => Ok(keys.remove(0)),
        0 => Err(login_needed.unwrap_or_else(|| {
            Error::new(Code::PSM_ERR_NOT_FOUND, "no private key on any token matches the PKCS#11 URI")
        })),
        n => Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("{n} private keys match the PKCS#11 URI; name one with token=, object= or id="),
        )),
    }
}

/// What slots held a token at the last poll, per module, to tell
/// insertions and removals apart.
#[derive(Default)]
pub struct Presence {
    seen: Vec<(PathBuf, Vec<SlotPresence>)>,
}

impl Presence {
    /// Polls the slots of `modules` and returns the tokens inserted or
    /// removed since the last poll (the first poll reports every present
    /// token as inserted). A module that fails to answer is skipped.
    pub fn poll(&mut self, modules: &[Arc<Module>]) -> Vec<PresenceChange> {
        let mut changes = Vec::new();
        for m in modules {
            let Ok(now) = m.presence() else { continue };
            let path = m.path().to_path_buf();
            let before = match self.seen.iter_mut().find(|(p, _)| *p == path) {
                Some((_, b)) => b,
                None => {
                    self.seen.push((path.clone(), Vec::new()));
                    &mut self.seen.last_mut().expect("just pushed").1
                }
            };
            let was_present =
                |slot: u64| before.iter().any(|s: &SlotPresence| s.slot == slot && s.token_present);
            for s in &now {
                if s.token_present && !was_present(s.slot) {
                    changes.push(PresenceChange::Inserted { module: path.clone(), slot: s.slot });
                }
            }
            for s in before.iter().filter(|s| s.token_present) {
                if !now.iter().any(|n| n.slot == s.slot && n.token_present) {
                    changes.push(PresenceChange::Removed { module: path.clone(), slot: s.slot });
                }
            }
            *before = now;
        }
        changes
    }
}
