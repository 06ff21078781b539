//! The soft token's login state. Private keys are sealed under a random
//! master key; the master key is wrapped under a key derived from the token
//! password (argon2id). Each session logs in on its own and is logged out
//! after `IDLE_TIMEOUT` without use, or when it disconnects. A token without
//! a password (NSS's "empty password") is always unlocked.

use crate::dialog::PageKind;
use crate::pki::keys::LoadedKey;
use crate::pki::seal::TokenKey;
use crate::pool::ReplyTo;
use crate::prompt::{Check, Question};
use crate::store::{KeyRow, Store, TokenRow};
use psm::proto::PromptKind;
use psm::{Code, Error};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A session that has not used the token for this long must log in again.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A wrong password costs this long, on top of the KDF, against guessing.
pub const WRONG_PASSWORD_DELAY: Duration = Duration::from_secs(1);

struct Login {
    master: Arc<TokenKey>,
    last_use: Instant,
}

/// Parsed keys kept for signing, at most this many.
pub const MAX_CACHED_KEYS: usize = 256;

pub struct TokenState {
    logins: Mutex<HashMap<u64, Login>>,
    /// Parsed private keys by the SHA-256 of their public key (a row id
    /// could be reused after a delete; a public key names one key only),
    /// dropped when the token locks for everyone (logout, idle, a password set).
    keys: Mutex<HashMap<[u8; 32], Arc<LoadedKey>>>,
    /// The same keys by the SHA-256 of a certificate that uses them, so a
    /// repeated signature needs no store lookup. `forget_cert` on delete.
    signers: Mutex<HashMap<[u8; 32], Arc<LoadedKey>>>,
    /// The master key while the token has no password.
    open_master: Mutex<Option<Arc<TokenKey>>>,
    /// Seconds a session's login lasts unused (the policy may change it).
    idle: std::sync::atomic::AtomicU64,
    /// Counts logins, logouts and password changes, for TOKEN_CHANGED events.
    changes: std::sync::atomic::AtomicU64,
}

fn bad_password() -> Error {
    std::thread::sleep(WRONG_PASSWORD_DELAY);
    Error::new(Code::PSM_ERR_BAD_PASSWORD, "wrong token password")
}

fn locked() -> Error {
    Error::new(Code::PSM_ERR_LOGIN_REQUIRED, "the token is locked: log in with its password first")
}

impl TokenState {
    /// Loads the token, creating it (no password) on first start.
    pub fn init(store: &mut Store) -> Result<TokenState, Error> {
        let row = match store.token()? {
            Some(row) => row,
            None => {
                let row = TokenRow::protect(&TokenKey::generate()?, "")?;
                store.put_token(&row)?;
                row
            }
        };
        let open_master = if row.has_password {
            None
        } else {
            let master = row.unlock("")?.ok_or_else(|| {
                Error::new(
                    Code::PSM_ERR_INTERNAL,
                    "the token claims no password but the empty one does not open it",
                )
            })?;
            Some(Arc::new(master))
        };
        Ok(TokenState {
            logins: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            signers: Mutex::new(HashMap::new()),
            open_master: Mutex::new(open_master),
            idle: std::sync::atomic::AtomicU64::new(IDLE_TIMEOUT.as_secs()),
            changes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn open(&self) -> Option<Arc<TokenKey>> {
        self.open_master.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The master key for `session`, or `PSM_ERR_LOGIN_REQUIRED`.
    pub fn master(&self, session: u64) -> Result<Arc<TokenKey>, Error> {
        if let Some(m) = self.open() {
            return Ok(m);
        }
        let mut logins = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        match logins.get_mut(&session) {
            Some(l)
                if l.last_use.elapsed()
                    < Duration::from_secs(self.idle.load(std::sync::atomic::Ordering::Relaxed)) =>
            {
                l.last_use = Instant::now();
                Ok(l.master.clone())
            }
            Some(_) => {
                logins.remove(&session);
                self.changed();
                if logins.is_empty() {
                    self.forget_keys();
                }
                Err(Error::new(
                    Code::PSM_ERR_LOGIN_REQUIRED,
                    "the token login expired after inactivity: log in again",
                ))
            }
            None => Err(locked()),
        }
    }

    pub fn login(&self, store: &Store, session: u64, password: Option<&str>) -> Result<(), Error> {
        let row = store.token()?.ok_or_else(|| Error::new(Code::PSM_ERR_INTERNAL, "no token"))?;
        if !row.has_password {
            return Ok(());
        }
        let Some(password) = password else { return Err(locked()) };
        let master = row.unlock(password)?.ok_or_else(bad_password)?;
        self.logins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session, Login { master: Arc::new(master), last_use: Instant::now() });
        self.changed();
        Ok(())
    }

    /// Changes with every login, logout and password change.
    /// How long a login lasts unused (`token.idle_timeout_secs`).
    pub fn set_idle_timeout(&self, secs: u64) {
        self.idle.store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a change for the next TOKEN_CHANGED event (PKCS#11 tokens
    /// report theirs here too).
    pub(crate) fn changed(&self) {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the token has a password, and how many sessions are logged in.
    pub fn summary(&self) -> (bool, usize) {
        let logins = self.logins.lock().unwrap_or_else(|p| p.into_inner()).len();
        (self.open().is_none(), logins)
    }

    pub fn logout(&self, session: u64) {
        let mut logins = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        if logins.remove(&session).is_some() {
            self.changed();
            if logins.is_empty() {
                self.forget_keys();
            }
        }
    }

    /// The parsed private key of `row` for `session` (which must be able
    /// to use the token), parsing it once.
    pub fn key(&self, session: u64, spki_sha256: &[u8; 32], row: &KeyRow) -> Result<Arc<LoadedKey>, Error> {
        let master = self.master(session)?;
        if let Some(k) = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(spki_sha256) {
            return Ok(k.clone());
        }
        let loaded = Arc::new(LoadedKey::load(&row.open(&master)?)?);
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(*spki_sha256, loaded.clone());
        Ok(loaded)
    }

    fn forget_keys(&self) {
        if self.open().is_none() {
            self.keys.lock().unwrap_or_else(|p| p.into_inner()).clear();
            self.signers.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// The parsed key of certificate `cert_sha256`, if it was used before
    /// and `session` may use the token now.
    pub fn cached_signer(&self, session: u64, cert_sha256: &[u8; 32]) -> Option<Arc<LoadedKey>> {
        let key = self.signers.lock().unwrap_or_else(|p| p.into_inner()).get(cert_sha256).cloned()?;
        self.master(session).ok().map(|_| key)
    }

    pub fn remember_signer(&self, cert_sha256: &[u8; 32], key: Arc<LoadedKey>) {
        let mut signers = self.signers.lock().unwrap_or_else(|p| p.into_inner());
        if signers.len() >= MAX_CACHED_KEYS {
            signers.clear();
        }
        signers.insert(*cert_sha256, key);
    }

    /// A certificate was deleted: it no longer names a key.
    pub fn forget_cert(&self, cert_sha256: &[u8; 32]) {
        self.signers.lock().unwrap_or_else(|p| p.into_inner()).remove(cert_sha256);
    }

    /// Re-wraps the master key under `new` (empty: no password) in one
    /// write; sealed keys are untouched, so a crash leaves the old password
    /// or the new one working, never neither.
    /// The session that sets a password stays logged in: it just proved it
    /// knows the old one and chose the new one.
    pub fn set_password(
        &self,
        store: &mut Store,
        session: u64,
        old: Option<&str>,
        new: &str,
    ) -> Result<(), Error> {
        let row = store.token()?.ok_or_else(|| Error::new(Code::PSM_ERR_INTERNAL, "no token"))?;
        let old = match old {
            Some(o) => o,
            None if !row.has_password => "",
            None => return Err(locked()),
        };
        let master = row.unlock(old)?.ok_or_else(bad_password)?;
        store.put_token(&TokenRow::protect(&master, new)?)?;
        let master = Arc::new(master);
        *self.open_master.lock().unwrap_or_else(|p| p.into_inner()) =
            if new.is_empty() { Some(master.clone()) } else { None };
        let mut logins = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        if !new.is_empty() {
            logins.insert(session, Login { master, last_use: Instant::now() });
        }
        self.changed();
        Ok(())
    }
}
/// Tries at the token password before psm gives up.
pub const PASSWORD_TRIES: u32 = 3;

/// Asks the user for the token password (dialog or prompt handler) and
/// logs `session` in with it; a wrong password is asked again, in the
/// same dialog, up to [`PASSWORD_TRIES`] times.
pub fn ask_password(
    ctx: &crate::tls::TlsContext,
    to: ReplyTo,
    session: u64,
    purpose: &str,
) -> Result<(), Error> {
    let q = Question {
        kind: PageKind::Prompt(PromptKind::Password),
        message: format!("Enter the password of your psm token: {purpose}."),
        details: serde_json::json!({ "token": "psm soft token", "purpose": purpose }),
        choices: Vec::new(),
    };
    ctx.prompts.ask_until(to, q, PASSWORD_TRIES, |password| {
        let store = ctx.lock_store();
        match ctx.token.login(&store, session, Some(&password.0)) {
            Ok(()) => Check::Accept,
            Err(e) if e.code == Code::PSM_ERR_BAD_PASSWORD => {
                Check::Retry(Error::new(Code::PSM_ERR_BAD_PASSWORD, "That password was wrong."))
            }
            Err(e) => Check::Fail(e),
        }
    })
}
/// Asks the user, in psm's dialog, whether the application at `to` may
/// use the private key of certificate `cert_sha256` for `operation`, when
/// the policy wants each use confirmed (`keys.confirm_use`). "deny" is
/// `PSM_ERR_USER_CANCELLED`.
pub fn confirm_key_use(
    ctx: &crate::tls::TlsContext,
    to: ReplyTo,
    cert_sha256: &[u8; 32],
    operation: &str,
) -> Result<(), Error> {
    if !ctx.policy().must_confirm(cert_sha256) {
        return Ok(());
    }
    let stored = ctx.lock_store().get(cert_sha256);
    let cert = match stored {
        Ok(c) => c,
        Err(e) => crate::hwtokens::cert_by_sha256(ctx, cert_sha256).map(|c| c.info.clone()).ok_or(e)?,
    };
    let q = Question {
        kind: PageKind::Prompt(PromptKind::Confirm),
        message: format!("This application wants to use your private key ({operation}). Allow it this once?"),
        details: serde_json::json!({ "certificate": cert, "operation": operation }),
        choices: vec!["allow".into(), "deny".into()],
    };
    let answer = ctx.prompts.ask(to, q);
    let result = match answer {
        Ok(a) if a.0 == "allow" => Ok(()),
        Ok(_) => Err(Error::new(
            Code::PSM_ERR_USER_CANCELLED,
            format!("the user did not allow the key's use ({operation})"),
        )),
        Err(e) => Err(e),
    };
    ctx.audit.record_result(to.session_id, "key-confirm", || hex::encode(cert_sha256), &result);
    result
}
