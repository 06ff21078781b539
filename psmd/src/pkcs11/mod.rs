//! Cryptographic tokens behind PKCS#11 modules (smart cards, HSMs, SoftHSM).
//!
//! Only psmd loads modules, and only those the administrator's policy lists
//! (`pkcs11.modules`, checked by [`allowlist`]). Objects can be named with
//! RFC 7512 URIs ([`uri`]).

pub mod allowlist;
pub mod uri;

pub use uri::{Pkcs11Uri, is_pkcs11_uri};

use std::path::PathBuf;

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
