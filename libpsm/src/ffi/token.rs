//! Tokens: psm's soft token and the smart cards, HSMs and other tokens in
//! the slots of the PKCS#11 modules the administrator's policy names.
//! Only psmd loads modules; this library never does.

use super::core::psm_conn;
use super::key::opt_str;
use super::{boundary, boundary_value, check_null, fail};
use crate::error::Code;
use crate::proto::TokenInfo;
use std::ffi::{CString, c_char};

/// `psm_token_flags`: psm's own soft token.
pub const PSM_TOKEN_SOFT: u32 = 1 << 0;
/// Logged in: its private keys can be used now.
pub const PSM_TOKEN_LOGGED_IN: u32 = 1 << 1;
/// Its private keys need a login (PIN or password).
pub const PSM_TOKEN_LOGIN_REQUIRED: u32 = 1 << 2;
/// The PIN is typed on the reader's PIN pad, never given to psm.
pub const PSM_TOKEN_PIN_PAD: u32 = 1 << 3;
/// Nothing can be written to it.
pub const PSM_TOKEN_WRITE_PROTECTED: u32 = 1 << 4;
/// A wrong PIN was typed since the last right one.
pub const PSM_TOKEN_PIN_COUNT_LOW: u32 = 1 << 5;
/// One more wrong PIN locks the token.
pub const PSM_TOKEN_PIN_FINAL_TRY: u32 = 1 << 6;
/// The PIN is locked (too many wrong PINs).
pub const PSM_TOKEN_PIN_LOCKED: u32 = 1 << 7;
/// Initialized; a blank token must be initialized with its own tools first.
pub const PSM_TOKEN_INITIALIZED: u32 = 1 << 8;

/// A token as psmd described it when listed (a snapshot: `psm_token_list`
/// again for its current state).
pub struct psm_token {
    info: TokenInfo,
    uri: CString,
    label: CString,
    manufacturer: CString,
    model: CString,
    serial: CString,
    module: Option<CString>,
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

impl psm_token {
    fn new(info: TokenInfo) -> psm_token {
        psm_token {
            uri: cstring(&info.uri),
            label: cstring(&info.label),
            manufacturer: cstring(&info.manufacturer),
            model: cstring(&info.model),
            serial: cstring(&info.serial),
            module: (!info.module.is_empty()).then(|| cstring(&info.module)),
            info,
        }
    }
}

/// The tokens `psm_token_list` found. Free it with `psm_tokens_free`.
pub struct psm_tokens {
    tokens: Vec<psm_token>,
}

/// Lists the tokens: psm's soft token first, then every token present in
/// a slot of the PKCS#11 modules the policy names (`pkcs11.modules`),
/// blank ones included. A module that fails or hangs is left out (psmd's
/// Status says why). Free the list with `psm_tokens_free`.
///
/// # Safety
/// `conn` is live; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_list(conn: *mut psm_conn, out: *mut *mut psm_tokens) -> Code {
    boundary(|| {
        check_null!(conn, out);
        // SAFETY: non-NULL and live per the contract.
        match unsafe { &(*conn).client }.token_list() {
            Ok(tokens) => {
                let list = psm_tokens { tokens: tokens.into_iter().map(psm_token::new).collect() };
                // SAFETY: writable per the contract.
                unsafe { *out = Box::into_raw(Box::new(list)) };
                Code::PSM_OK
            }
            Err(e) => fail(e),
        }
    })
}

/// Number of tokens in the list; 0 for NULL.
///
/// # Safety
/// `l` is NULL or a live list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_tokens_len(l: *const psm_tokens) -> usize {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { l.as_ref() }.map_or(0, |l| l.tokens.len()))
}

/// The `i`-th token, borrowed: valid until the list is freed. NULL if `l`
/// is NULL or `i` is out of range.
///
/// # Safety
/// `l` is NULL or a live list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_tokens_get(l: *const psm_tokens, i: usize) -> *const psm_token {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { l.as_ref() }
            .and_then(|l| l.tokens.get(i))
            .map_or(std::ptr::null(), |t| t as *const psm_token)
    })
}

/// Frees a list and the tokens it lends out. NULL is ignored.
///
/// # Safety
/// `l` is NULL or from `psm_token_list` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_tokens_free(l: *mut psm_tokens) {
    boundary_value((), || {
        if !l.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(l) });
        }
    })
}

/// A string field of `t`, or NULL.
unsafe fn field(t: *const psm_token, get: impl FnOnce(&psm_token) -> Option<&CString>) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live token.
        unsafe { t.as_ref() }.and_then(get).map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// The RFC 7512 URI naming the token ("pkcs11:model=...;manufacturer=...;
/// serial=...;token=..."), for `psm_cert_find` queries and `psm token`.
/// Valid while the token is; NULL if `t` is NULL.
///
/// # Safety
/// `t` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_uri(t: *const psm_token) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(t, |t| Some(&t.uri)) }
}

/// The token's label. Valid while the token is; NULL if `t` is NULL.
///
/// # Safety
/// `t` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_label(t: *const psm_token) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(t, |t| Some(&t.label)) }
}

/// The token's manufacturer. Valid while the token is; NULL if `t` is NULL.
///
/// # Safety
/// `t` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_manufacturer(t: *const psm_token) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(t, |t| Some(&t.manufacturer)) }
}

/// The token's model. Valid while the token is; NULL if `t` is NULL.
///
/// # Safety
/// `t` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_model(t: *const psm_token) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(t, |t| Some(&t.model)) }
}

/// The token's serial number. Valid while the token is; NULL if `t` is NULL.
///
/// # Safety
/// `t` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_serial(t: *const psm_token) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(t, |t| Some(&t.serial)) }
}

/// The path of the PKCS#11 module the token is in; NULL for psm's soft
/// token (or if `t` is NULL). Valid while the token is.
///
/// # Safety
/// `t` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_module(t: *const psm_token) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(t, |t| t.module.as_ref()) }
}

/// The module's slot the token is in (0 for the soft token).
///
/// # Safety
/// `t` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_slot(t: *const psm_token) -> u64 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { t.as_ref() }.map_or(0, |t| t.info.slot))
}

/// The token's `PSM_TOKEN_*` bits when it was listed; 0 if `t` is NULL.
///
/// # Safety
/// `t` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_flags(t: *const psm_token) -> u32 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { t.as_ref() }.map_or(0, |t| t.info.flags))
}

/// Logs in to the token. `pin` NULL means "ask the user": psm's PIN
/// dialog (or the prompt handler), asked again after a wrong PIN, up to
/// three times; a token with a PIN pad takes the PIN on the reader. For
/// the soft token this is `psm_token_login`.
///
/// A PKCS#11 token is logged in for psmd as a whole, as the card itself
/// is: every application of this user may use its keys until
/// `psm_token_logout_from`, the policy's idle timeout (`token.idle_timeout_secs`)
/// or the token's removal. psm never keeps the PIN.
///
/// `PSM_ERR_BAD_PASSWORD` for a wrong PIN, `PSM_ERR_NOT_FOUND` if the token
/// is gone, `PSM_ERR_TIMEOUT` if its module hangs.
///
/// # Safety
/// `conn` is live; `t` is a live token; `pin` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_login_to(
    conn: *mut psm_conn,
    t: *const psm_token,
    pin: *const c_char,
) -> Code {
    boundary(|| {
        check_null!(conn, t);
        // SAFETY: per the contract.
        let pin = match unsafe { opt_str(pin, "pin") } {
            Ok(p) => p,
            Err(c) => return c,
        };
        // SAFETY: non-NULL and live per the contract.
        let (client, t) = unsafe { (&(*conn).client, &*t) };
        client.token_login_to(&t.info.uri, pin).map_or_else(fail, |()| Code::PSM_OK)
    })
}

/// Logs out of the token (for the soft token: `psm_token_logout`).
///
/// # Safety
/// `conn` is live; `t` is a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_logout_from(conn: *mut psm_conn, t: *const psm_token) -> Code {
    boundary(|| {
        check_null!(conn, t);
        // SAFETY: non-NULL and live per the contract.
        let (client, t) = unsafe { (&(*conn).client, &*t) };
        client.token_logout_from(&t.info.uri).map_or_else(fail, |()| Code::PSM_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto;

    #[test]
    fn token_flags_are_the_wire_bits() {
        for (c, wire) in [
            (PSM_TOKEN_SOFT, proto::TOKEN_SOFT),
            (PSM_TOKEN_LOGGED_IN, proto::TOKEN_LOGGED_IN),
            (PSM_TOKEN_LOGIN_REQUIRED, proto::TOKEN_LOGIN_REQUIRED),
            (PSM_TOKEN_PIN_PAD, proto::TOKEN_PIN_PAD),
            (PSM_TOKEN_WRITE_PROTECTED, proto::TOKEN_WRITE_PROTECTED),
            (PSM_TOKEN_PIN_COUNT_LOW, proto::TOKEN_PIN_COUNT_LOW),
            (PSM_TOKEN_PIN_FINAL_TRY, proto::TOKEN_PIN_FINAL_TRY),
            (PSM_TOKEN_PIN_LOCKED, proto::TOKEN_PIN_LOCKED),
            (PSM_TOKEN_INITIALIZED, proto::TOKEN_INITIALIZED),
        ] {
            assert_eq!(c, wire);
        }
    }
}
