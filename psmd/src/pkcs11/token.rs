//! The calls psmd makes into one module, run on that module's thread:
//! initialization, slots and tokens, certificate and key searches, login,
//! logout, signing and decryption. This state never leaves the thread.
//!
//! One read-only session per token is kept open: PKCS#11 logs a token out
//! when its application closes the last session to it, and key handles are
//! cached per session's lifetime.

use std::collections::HashMap;
use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use psm::{Code, Error};
use zeroize::Zeroizing;

use super::error::map;
use super::sign::RawSign;
use super::{
    KeyKind, LibraryInfo, MAX_OBJECTS, ObjectInfo, ObjectType, Pkcs11Uri, RsaDecrypt, SlotPresence,
    TokenCertificate, TokenFlags, TokenInfo, TokenKey, sign,
};
use crate::pki::keys::SigAlg;

pub(super) struct State {
    ctx: Pkcs11,
    /// The module's path, for messages.
    module: String,
    /// False when someone else in this process had already initialized
    /// the module: finalizing it would pull it from under them.
    finalize: bool,
    sessions: HashMap<u64, Session>,
    keys: HashMap<(u64, Vec<u8>), ObjectHandle>,
}

/// Errors after which a session (and the key handles found with it) is
/// gone: the token was removed, or the module was reset.
fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::SlotIdInvalid,
            _
        )
    )
}

fn handle_lost(e: &CkError) -> bool {
    matches!(e, CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _))
}

fn slot(id: u64) -> Result<Slot, Error> {
    Slot::try_from(id).map_err(|_| Error::new(Code::PSM_ERR_INVALID_ARGUMENT, format!("no slot {id}")))
}

impl State {
    /// Loads the module and initializes it for use from several threads
    /// with the operating system's locks (`CKF_OS_LOCKING_OK`).
    pub fn open(path: &Path) -> Result<State, Error> {
        let module = path.display().to_string();
        let ctx = Pkcs11::new(path).map_err(|e| map(e, &module, None))?;
        let finalize = match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => true,
            // Another user of the same library in this process (an OpenSSL
            // provider, or two module files sharing one implementation)
            // initialized it first; it is usable, but not ours to finalize.
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
                tracing::debug!(module = %module, "PKCS#11 module was already initialized in this process");
                false
            }
            Err(e) => return Err(map(e, &module, None)),
        };
        Ok(State { ctx, module, finalize, sessions: HashMap::new(), keys: HashMap::new() })
    }

    pub fn library_info(&self) -> Result<LibraryInfo, Error> {
        let info = self.ctx.get_library_info().map_err(|e| map(e, &self.module, None))?;
        let v = info.library_version();
        Ok(LibraryInfo {
            manufacturer: info.manufacturer_id().to_owned(),
            description: info.library_description().to_owned(),
            version: (v.major(), v.minor()),
        })
    }

    /// Every slot and whether it holds a token. Sessions to tokens that
    /// are gone are dropped (the token logged itself out).
    pub fn presence(&mut self) -> Result<Vec<SlotPresence>, Error> {
        let slots = self.ctx.get_all_slots().map_err(|e| map(e, &self.module, None))?;
        let mut out = Vec::with_capacity(slots.len());
        for s in slots {
            let present = match self.ctx.get_slot_info(s) {
                Ok(info) => info.token_present(),
                Err(e) if session_lost(&e) => false,
                Err(e) => return Err(map(e, &self.module, None)),
            };
            if !present {
                self.forget(s.id());
            }
            out.push(SlotPresence { slot: s.id(), token_present: present });
        }
        Ok(out)
    }

    pub fn tokens(&mut self, module: &Path, library: &LibraryInfo) -> Result<Vec<TokenInfo>, Error> {
        let slots = self.ctx.get_slots_with_token().map_err(|e| map(e, &self.module, None))?;
        let mut tokens = Vec::with_capacity(slots.len());
        for s in slots {
            let (slot_info, info) = match (self.ctx.get_slot_info(s), self.ctx.get_token_info(s)) {
                (Ok(si), Ok(ti)) => (si, ti),
                // Removed between the list and the question.
                (Err(e), _) | (_, Err(e)) if session_lost(&e) => continue,
                (Err(e), _) | (_, Err(e)) => return Err(map(e, &self.module, None)),
            };
            tokens.push(TokenInfo {
                module: module.to_path_buf(),
                library: library.clone(),
                slot: s.id(),
                slot_description: slot_info.slot_description().to_owned(),
                slot_manufacturer: slot_info.manufacturer_id().to_owned(),
                label: info.label().to_owned(),
                manufacturer: info.manufacturer_id().to_owned(),
                model: info.model().to_owned(),
                serial: info.serial_number().to_owned(),
                flags: TokenFlags {
                    token_initialized: info.token_initialized(),
                    login_required: info.login_required(),
                    user_pin_initialized: info.user_pin_initialized(),
                    protected_authentication_path: info.protected_authentication_path(),
                    user_pin_count_low: info.user_pin_count_low(),
                    user_pin_final_try: info.user_pin_final_try(),
                    user_pin_locked: info.user_pin_locked(),
                    write_protected: info.write_protected(),
                },
            });
        }
        Ok(tokens)
    }

    fn forget(&mut self, slot: u64) {
        // A session of a token that went away was closed with it: the
        // C_CloseSession its drop makes fails, as expected (and cryptoki's
        // complaint is filtered out of psmd's log, see `logging`).
        self.sessions.remove(&slot);
        self.keys.retain(|(s, _), _| *s != slot);
    }

    /// Runs `f` with the token's session, opening it if needed, and maps
    /// its error.
    fn with_session<T>(
        &mut self,
        token: &TokenInfo,
        f: impl FnOnce(&Session) -> Result<T, CkError>,
    ) -> Result<T, Error> {
        self.with_session_raw(token, f)?.map_err(|e| map(e, &self.module, Some(&token.label)))
    }

    /// The same, leaving `f`'s error unmapped for the caller to look at;
    /// either way the session is forgotten if the token went away.
    fn with_session_raw<T>(
        &mut self,
        token: &TokenInfo,
        f: impl FnOnce(&Session) -> Result<T, CkError>,
    ) -> Result<Result<T, CkError>, Error> {
        if !self.sessions.contains_key(&token.slot) {
            let s = self
                .ctx
                .open_ro_session(slot(token.slot)?)
                .map_err(|e| map(e, &self.module, Some(&token.label)))?;
            self.sessions.insert(token.slot, s);
        }
        let result = f(&self.sessions[&token.slot]);
        if result.as_ref().is_err_and(session_lost) {
            self.forget(token.slot);
        }
        Ok(result)
    }

    pub fn logged_in(&mut self, token: &TokenInfo) -> Result<bool, Error> {
        self.with_session(token, |s| {
            Ok(matches!(s.get_session_info()?.session_state(), SessionState::RoUser | SessionState::RwUser))
        })
    }

    /// Objects of `class` on the token whose label and id match the URI
    /// (the token filters; at most [`MAX_OBJECTS`]), with the attributes
    /// `extra` read as well.
    fn find(
        &mut self,
        token: &TokenInfo,
        uri: &Pkcs11Uri,
        mut template: Vec<Attribute>,
        extra: &[AttributeType],
    ) -> Result<Vec<(ObjectInfo, Vec<Attribute>)>, Error> {
        if let Some(label) = &uri.object {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            template.push(Attribute::Id(id.clone()));
        }
        let class = match template.first() {
            Some(Attribute::Class(c)) if *c == ObjectClass::CERTIFICATE => ObjectType::Certificate,
            _ => ObjectType::PrivateKey,
        };
        let mut wanted = vec![AttributeType::Label, AttributeType::Id];
        wanted.extend_from_slice(extra);
        self.with_session(token, |s| {
            let mut found = Vec::new();
            for handle in s.iter_objects(&template)?.take(MAX_OBJECTS) {
                let mut attrs = s.get_attributes(handle?, &wanted)?;
                let mut info = ObjectInfo { class, label: String::new(), id: Vec::new() };
                attrs.retain(|a| match a {
                    Attribute::Label(l) => {
                        info.label = String::from_utf8_lossy(l).into_owned();
                        false
                    }
                    Attribute::Id(id) => {
                        info.id = id.clone();
                        false
                    }
                    _ => true,
                });
                if uri.matches_object(&info) {
                    found.push((info, attrs));
                }
            }
            Ok(found)
        })
    }

    pub fn certificates(
        &mut self,
        token: &TokenInfo,
        uri: &Pkcs11Uri,
    ) -> Result<Vec<TokenCertificate>, Error> {
        if uri.object_type.is_some_and(|t| t != ObjectType::Certificate) {
            return Ok(Vec::new());
        }
        let template = vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
        ];
        let found = self.find(token, uri, template, &[AttributeType::Value])?;
        Ok(found
            .into_iter()
            .filter_map(|(object, attrs)| {
                let der = attrs.into_iter().find_map(|a| match a {
                    Attribute::Value(v) => Some(v),
                    _ => None,
                })?;
                Some(TokenCertificate { token: token.clone(), object, der })
            })
            .collect())
    }

    /// Private keys psm can sign with (EC and RSA) that match the URI. A
    /// token that hides its keys until login and is not logged in yields
    /// `PSM_ERR_LOGIN_REQUIRED` rather than an empty list.
    pub fn private_keys(&mut self, token: &TokenInfo, uri: &Pkcs11Uri) -> Result<Vec<TokenKey>, Error> {
        if uri.object_type.is_some_and(|t| t != ObjectType::PrivateKey) {
            return Ok(Vec::new());
        }
        let template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        let found = self.find(token, uri, template, &[AttributeType::KeyType])?;
        let keys: Vec<TokenKey> = found
            .into_iter()
            .filter_map(|(object, attrs)| {
                let kind = attrs.iter().find_map(|a| match a {
                    Attribute::KeyType(t) if *t == KeyType::EC => Some(KeyKind::Ec),
                    Attribute::KeyType(t) if *t == KeyType::RSA => Some(KeyKind::Rsa),
                    _ => None,
                })?;
                Some(TokenKey { token: token.clone(), object, kind })
            })
            .collect();
        if keys.is_empty() && token.flags.login_required && !self.logged_in(token)? {
            return Err(Error::new(
                Code::PSM_ERR_LOGIN_REQUIRED,
                format!(
                    "token {:?} shows its private keys only after login; log in to it first",
                    token.label
                ),
            ));
        }
        Ok(keys)
    }

    /// Whether the token holds the private key of the certificate with
    /// CKA_ID `id` (PKCS#11 ties a key pair and its certificate by id).
    /// A token that hides private keys until login and is not logged in
    /// cannot say: then a public key with that id stands for the pair.
    pub fn has_key_pair(&mut self, token: &TokenInfo, id: &[u8]) -> Result<bool, Error> {
        if id.is_empty() {
            return Ok(false);
        }
        let hidden = token.flags.login_required && !self.logged_in(token)?;
        self.with_session(token, |s| {
            let classes: &[ObjectClass] = if hidden {
                &[ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY]
            } else {
                &[ObjectClass::PRIVATE_KEY]
            };
            for class in classes {
                let template = [Attribute::Class(*class), Attribute::Id(id.to_vec())];
                if s.iter_objects(&template)?.next().is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Logs the user in; `pin` is `None` on a token with a PIN pad. Being
    /// logged in already is success.
    pub fn login(&mut self, token: &TokenInfo, pin: Option<AuthPin>) -> Result<(), Error> {
        self.with_session(token, |s| match s.login(UserType::User, pin.as_ref()) {
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            r => r,
        })
    }

    pub fn logout(&mut self, token: &TokenInfo) -> Result<(), Error> {
        if !self.sessions.contains_key(&token.slot) {
            return Ok(());
        }
        self.keys.retain(|(s, _), _| *s != token.slot);
        self.with_session(token, |s| match s.logout() {
            Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => Ok(()),
            r => r,
        })
    }

    fn key_handle(&mut self, key: &TokenKey) -> Result<ObjectHandle, Error> {
        let cache_key = (key.token.slot, key.object.id.clone());
        if let Some(h) = self.keys.get(&cache_key) {
            return Ok(*h);
        }
        // A key is named by its CKA_ID (what ties it to its certificate),
        // or by its label when it has none.
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        if key.object.id.is_empty() {
            template.push(Attribute::Label(key.object.label.as_bytes().to_vec()));
        } else {
            template.push(Attribute::Id(key.object.id.clone()));
        }
        let handles = self.with_session(&key.token, |s| s.find_objects(&template))?;
        match handles.as_slice() {
            [h] => {
                self.keys.insert(cache_key, *h);
                Ok(*h)
            }
            [] if !self.logged_in(&key.token)? => Err(Error::new(
                Code::PSM_ERR_LOGIN_REQUIRED,
                format!("log in to token {:?} to use its key {:?}", key.token.label, key.object.label),
            )),
            [] => Err(Error::new(
                Code::PSM_ERR_NOT_FOUND,
                format!("key {:?} is no longer on token {:?}", key.object.label, key.token.label),
            )),
            _ => Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                format!("token {:?} has {} private keys with this key's id", key.token.label, handles.len()),
            )),
        }
    }

    /// Runs `f` with the key's handle. If the token says the handle is
    /// stale (the token was reset or re-inserted since it was found), the
    /// key is found again, once.
    fn with_key<T>(
        &mut self,
        key: &TokenKey,
        f: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<T, Error> {
        let handle = self.key_handle(key)?;
        match self.with_session_raw(&key.token, |s| f(s, handle))? {
            Ok(v) => Ok(v),
            Err(e) if handle_lost(&e) => {
                self.keys.remove(&(key.token.slot, key.object.id.clone()));
                let handle = self.key_handle(key)?;
                self.with_session(&key.token, |s| f(s, handle))
            }
            Err(e) => Err(map(e, &self.module, Some(&key.token.label))),
        }
    }

    /// Signs `message` with the token key; for ECDSA the result is the
    /// raw `r || s` the token returns ([`sign::ecdsa_raw_to_der`] makes DER).
    pub fn sign(&mut self, key: &TokenKey, alg: SigAlg, message: &[u8]) -> Result<Vec<u8>, Error> {
        let (mechanism, data) = sign::prepare(alg, key.kind, message)?;
        self.with_key(key, |s, handle| s.sign(&mechanism, handle, &data))
    }

    /// Signs `data` exactly as given with a raw mechanism: the caller has
    /// hashed, and for RSA built the DigestInfo or the whole padded block.
    pub fn sign_raw(&mut self, key: &TokenKey, raw: RawSign, data: &[u8]) -> Result<Vec<u8>, Error> {
        sign::check_kind(raw.name(), raw.kind(), key.kind)?;
        let mechanism = raw.mechanism();
        self.with_key(key, |s, handle| s.sign(&mechanism, handle, data))
    }

    /// Decrypts `data` with the token's RSA key.
    pub fn decrypt_rsa(
        &mut self,
        key: &TokenKey,
        padding: RsaDecrypt,
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        sign::check_kind("RSA decryption", KeyKind::Rsa, key.kind)?;
        let mechanism = match padding {
            RsaDecrypt::Pkcs1 => Mechanism::RsaPkcs,
            RsaDecrypt::Raw => Mechanism::RsaX509,
        };
        self.with_key(key, |s, handle| s.decrypt(&mechanism, handle, data)).map(Zeroizing::new)
    }

    /// ECDH (`CKM_ECDH1_DERIVE`, no KDF) of the token's EC key with
    /// `peer_point` (an uncompressed point): the shared secret, `len`
    /// bytes, which the caller runs its own KDF over (CMS does). The token
    /// makes it a session object that can be read, psm reads it and
    /// destroys the object at once.
    pub fn ecdh(
        &mut self,
        key: &TokenKey,
        peer_point: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        sign::check_kind("ECDH", KeyKind::Ec, key.kind)?;
        let secret = self.with_key(key, |s, handle| {
            let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point);
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::ValueLen((len as u64).into()),
            ];
            let derived = s.derive_key(&Mechanism::Ecdh1Derive(params), handle, &template)?;
            let value = s.get_attributes(derived, &[AttributeType::Value]);
            let _ = s.destroy_object(derived);
            Ok(value?.into_iter().find_map(|a| match a {
                Attribute::Value(v) => Some(Zeroizing::new(v)),
                _ => None,
            }))
        })?;
        secret.filter(|v| v.len() == len).ok_or_else(|| {
            Error::new(
                Code::PSM_ERR_INTERNAL,
                format!("token {:?} returned no {len}-byte ECDH secret", key.token.label),
            )
        })
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Sessions close before the module is finalized.
        self.keys.clear();
        self.sessions.clear();
        if self.finalize
            && let Err(e) = self.ctx.clone().finalize()
        {
            tracing::warn!(module = %self.module, "C_Finalize failed: {e}");
        }
    }
}
