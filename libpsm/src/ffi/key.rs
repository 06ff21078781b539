//! Private keys and the soft token: login, password, key generation,
//! signing, PKCS#12, SDR.

use super::cert::psm_cert;
use super::core::psm_conn;
use super::{boundary, check_null, fail, fail_code, input, malloc_copy, str_arg};
use crate::error::Code;
use crate::proto::{KeyKind, SigKind};
use std::ffi::c_char;

/// `psm_key_generate` key type: ECDSA on P-256.
pub const PSM_KEY_EC_P256: u32 = 1;
/// ECDSA on P-384.
pub const PSM_KEY_EC_P384: u32 = 2;
/// Ed25519.
pub const PSM_KEY_ED25519: u32 = 3;
/// RSA, 2048 bits.
pub const PSM_KEY_RSA_2048: u32 = 4;
/// RSA, 3072 bits.
pub const PSM_KEY_RSA_3072: u32 = 5;
/// RSA, 4096 bits (generation takes seconds).
pub const PSM_KEY_RSA_4096: u32 = 6;

/// `psm_key_sign` algorithm: ECDSA with SHA-256 (DER signature).
pub const PSM_SIG_ECDSA_SHA256: u32 = 1;
/// ECDSA with SHA-384.
pub const PSM_SIG_ECDSA_SHA384: u32 = 2;
/// Ed25519 (the data itself is signed).
pub const PSM_SIG_ED25519: u32 = 3;
/// RSA PKCS#1 v1.5 with SHA-256.
pub const PSM_SIG_RSA_PKCS1_SHA256: u32 = 4;
/// RSA-PSS with SHA-256, MGF1-SHA-256, salt of 32 bytes.
pub const PSM_SIG_RSA_PSS_SHA256: u32 = 5;

/// Reads an optional C string argument (NULL is None).
pub(super) unsafe fn opt_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Code> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { str_arg(p, what) }.map(Some)
}

/// Hands `bytes` to the caller as a malloc'd buffer.
pub(super) unsafe fn bytes_out(bytes: &[u8], out: *mut *mut u8, out_len: *mut usize) -> Code {
    match malloc_copy(bytes, false) {
        Some(p) => {
            // SAFETY: the callers checked both for NULL.
            unsafe {
                *out = p;
                *out_len = bytes.len();
            }
            Code::PSM_OK
        }
        None => fail_code(Code::PSM_ERR_INTERNAL, "out of memory"),
    }
}

/// Unlocks the soft token for this connection. `password` NULL means "ask
/// the user": psm's password dialog (or the prompt handler), asked again
/// after a wrong password, up to three times; on a connection made with
/// `PSM_CONNECT_NO_DIALOGS` and no handler it fails with
/// `PSM_ERR_LOGIN_REQUIRED` unless the token has no password.
/// `PSM_ERR_BAD_PASSWORD` (after a delay) for a wrong password.
///
/// # Safety
/// `conn` is live; `password` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_login(conn: *mut psm_conn, password: *const c_char) -> Code {
    boundary(|| {
        check_null!(conn);
        // SAFETY: per the contract.
        let password = match unsafe { opt_str(password, "password") } {
            Ok(p) => p,
            Err(c) => return c,
        };
        // SAFETY: non-NULL and live.
        unsafe { &(*conn).client }.token_login(password).map_or_else(fail, |()| Code::PSM_OK)
    })
}

/// Locks the soft token for this connection again.
///
/// # Safety
/// `conn` is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_logout(conn: *mut psm_conn) -> Code {
    boundary(|| {
        check_null!(conn);
        // SAFETY: non-NULL and live.
        unsafe { &(*conn).client }.token_logout().map_or_else(fail, |()| Code::PSM_OK)
    })
}

/// Changes the token password in one atomic step. `old_pw` may be NULL when
/// the token has no password; `new_pw` "" removes the password. A NULL
/// `new_pw` asks the user to type the new one twice in psm's dialog (or
/// the prompt handler, `PSM_PROMPT_NEW_PASSWORD`), under the policy's
/// rules; `PSM_ERR_NO_UI` when psm can ask nobody.
///
/// # Safety
/// `conn` is live; each password is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_token_set_password(
    conn: *mut psm_conn,
    old_pw: *const c_char,
    new_pw: *const c_char,
) -> Code {
    boundary(|| {
        check_null!(conn);
        // SAFETY: per the contract.
        let (old, new) = match unsafe { (opt_str(old_pw, "old_pw"), opt_str(new_pw, "new_pw")) } {
            (Ok(o), Ok(n)) => (o, n),
            (Err(c), _) | (_, Err(c)) => return c,
        };
        // SAFETY: non-NULL and live.
        unsafe { &(*conn).client }.token_set_password(old, new).map_or_else(fail, |()| Code::PSM_OK)
    })
}

/// Generates a private key of `key_type` (`PSM_KEY_*`) in the soft token
/// and returns a PKCS#10 certificate request for `subject_dn` (e.g.
/// "CN=Alice,O=Example,C=DE") in `*csr_der` (`psm_free` it). Importing the
/// certificate issued for it binds the two; `nickname` (may be NULL) names
/// that certificate. RSA keys take a while; other applications are not held up.
///
/// # Safety
/// `conn` is live; strings are NUL-terminated (`nickname` may be NULL);
/// outputs are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_key_generate(
    conn: *mut psm_conn,
    key_type: u32,
    subject_dn: *const c_char,
    nickname: *const c_char,
    csr_der: *mut *mut u8,
    csr_len: *mut usize,
) -> Code {
    // SAFETY: forwarded contract.
    unsafe {
        psm_key_generate_with_sans(
            conn,
            key_type,
            subject_dn,
            std::ptr::null(),
            0,
            nickname,
            csr_der,
            csr_len,
        )
    }
}

/// Like `psm_key_generate`, with subjectAltNames for the request: `n_sans`
/// strings "dns:NAME", "ip:ADDRESS" or "email:ADDRESS".
///
/// # Safety
/// As `psm_key_generate`; `sans` points to `n_sans` NUL-terminated strings.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn psm_key_generate_with_sans(
    conn: *mut psm_conn,
    key_type: u32,
    subject_dn: *const c_char,
    sans: *const *const c_char,
    n_sans: usize,
    nickname: *const c_char,
    csr_der: *mut *mut u8,
    csr_len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(conn, subject_dn, csr_der, csr_len);
        if n_sans > 0 {
            check_null!(sans);
        }
        let kind = match key_type {
            PSM_KEY_EC_P256 => KeyKind::EcP256,
            PSM_KEY_EC_P384 => KeyKind::EcP384,
            PSM_KEY_ED25519 => KeyKind::Ed25519,
            PSM_KEY_RSA_2048 => KeyKind::Rsa2048,
            PSM_KEY_RSA_3072 => KeyKind::Rsa3072,
            PSM_KEY_RSA_4096 => KeyKind::Rsa4096,
            other => return fail_code(Code::PSM_ERR_INVALID_ARGUMENT, &format!("unknown key type {other}")),
        };
        // SAFETY: per the contract.
        let (dn, nick) = match unsafe { (str_arg(subject_dn, "subject_dn"), opt_str(nickname, "nickname")) } {
            (Ok(d), Ok(n)) => (d, n),
            (Err(c), _) | (_, Err(c)) => return c,
        };
        let mut san_list = Vec::with_capacity(n_sans);
        for i in 0..n_sans {
            // SAFETY: `sans` holds `n_sans` pointers per the contract.
            let p = unsafe { *sans.add(i) };
            check_null!(p);
            // SAFETY: non-NULL, NUL-terminated per the contract.
            match unsafe { str_arg(p, "san") } {
                Ok(s) => san_list.push(s),
                Err(c) => return c,
            }
        }
        // SAFETY: non-NULL and live.
        match unsafe { &(*conn).client }.key_generate(kind, dn, nick, &san_list) {
            // SAFETY: outputs checked above.
            Ok(csr) => unsafe { bytes_out(&csr, csr_der, csr_len) },
            Err(e) => fail(e),
        }
    })
}

/// Signs `data` with the private key of `cert` (which never leaves psmd,
/// or its PKCS#11 token for a token certificate), using `alg` (`PSM_SIG_*`,
/// matching the key). `*sig` is `psm_free`d by the caller.
/// `PSM_ERR_NOT_FOUND` if psm holds no key for the certificate,
/// `PSM_ERR_LOGIN_REQUIRED` if the token is locked and psm may not ask
/// (a token's PIN is asked through the prompt handler or psm's dialog),
/// `PSM_ERR_TIMEOUT` if the token's module hangs.
///
/// # Safety
/// `conn` and `cert` are live; `data` is readable for `len` bytes (NULL if
/// 0); outputs are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_key_sign(
    conn: *mut psm_conn,
    cert: *const psm_cert,
    alg: u32,
    data: *const u8,
    len: usize,
    sig: *mut *mut u8,
    sig_len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(conn, cert, sig, sig_len);
        // SAFETY: readable for `len` bytes per the contract.
        let data = match unsafe { input(data, len, "data") } {
            Ok(d) => d,
            Err(c) => return c,
        };
        let alg = match alg {
            PSM_SIG_ECDSA_SHA256 => SigKind::EcdsaSha256,
            PSM_SIG_ECDSA_SHA384 => SigKind::EcdsaSha384,
            PSM_SIG_ED25519 => SigKind::Ed25519,
            PSM_SIG_RSA_PKCS1_SHA256 => SigKind::RsaPkcs1Sha256,
            PSM_SIG_RSA_PSS_SHA256 => SigKind::RsaPssSha256,
            other => {
                return fail_code(
                    Code::PSM_ERR_INVALID_ARGUMENT,
                    &format!("unknown signature algorithm {other}"),
                );
            }
        };
        // SAFETY: non-NULL and live.
        let (client, cert) = unsafe { (&(*conn).client, &*cert) };
        match client.key_sign(&cert.info.sha256_hex, alg, data) {
            // SAFETY: outputs checked above.
            Ok(s) => unsafe { bytes_out(&s, sig, sig_len) },
            Err(e) => fail(e),
        }
    })
}

/// Imports a PKCS#12 (.p12/.pfx) file: the key into the soft token, the
/// certificates into the store. `*out` is the key's certificate.
/// `PSM_ERR_BAD_PASSWORD` for a wrong password; a NULL password asks the
/// user (psm's dialog or the prompt handler, again after a wrong one;
/// `PSM_ERR_NO_UI` when psm can ask nobody). Legacy (RC2/3DES) files work.
///
/// # Safety
/// `conn` is live; `p12` is readable for `len` bytes; `password` is NULL or
/// NUL-terminated; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_pkcs12_import(
    conn: *mut psm_conn,
    p12: *const u8,
    len: usize,
    password: *const c_char,
    out: *mut *mut psm_cert,
) -> Code {
    boundary(|| {
        check_null!(conn, out);
        // SAFETY: per the contract.
        let password = match unsafe { opt_str(password, "password") } {
            Ok(p) => p,
            Err(c) => return c,
        };
        // SAFETY: readable for `len` bytes per the contract; `conn` is live.
        let (client, data) = match unsafe { input(p12, len, "p12") } {
            Ok(d) => (unsafe { &(*conn).client }, d),
            Err(c) => return c,
        };
        match client.pkcs12_import(data, password) {
            Ok(mut certs) if !certs.is_empty() => {
                // SAFETY: checked writable above.
                unsafe { *out = Box::into_raw(Box::new(psm_cert::new(certs.swap_remove(0)))) };
                Code::PSM_OK
            }
            Ok(_) => fail_code(Code::PSM_ERR_PROTOCOL, "psmd returned no certificate"),
            Err(e) => fail(e),
        }
    })
}

/// Exports `cert` and its private key as PKCS#12 (AES-256-CBC, PBKDF2 with
/// SHA-256), readable by OpenSSL 3 and NSS. `*out` is `psm_free`d by the caller.
/// A NULL password asks the user for one (typed twice) as
/// `psm_pkcs12_import` does.
///
/// # Safety
/// `conn` and `cert` are live; `password` is NULL or NUL-terminated;
/// outputs are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_pkcs12_export(
    conn: *mut psm_conn,
    cert: *const psm_cert,
    password: *const c_char,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(conn, cert, out, out_len);
        // SAFETY: per the contract.
        let password = match unsafe { opt_str(password, "password") } {
            Ok(p) => p,
            Err(c) => return c,
        };
        // SAFETY: non-NULL and live.
        let (client, cert) = unsafe { (&(*conn).client, &*cert) };
        match client.pkcs12_export(&cert.info.sha256_hex, password) {
            // SAFETY: outputs checked above.
            Ok(p12) => unsafe { bytes_out(&p12, out, out_len) },
            Err(e) => fail(e),
        }
    })
}

unsafe fn sdr(
    conn: *mut psm_conn,
    data: *const u8,
    len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
    encrypt: bool,
) -> Code {
    check_null!(conn, out, out_len);
    // SAFETY: readable for `len` bytes per the caller's contract; conn is live.
    let (client, data) = match unsafe { input(data, len, "data") } {
        Ok(d) => (unsafe { &(*conn).client }, d),
        Err(c) => return c,
    };
    let result = if encrypt { client.sdr_encrypt(data) } else { client.sdr_decrypt(data) };
    match result {
        // SAFETY: outputs checked above.
        Ok(b) => unsafe { bytes_out(&b, out, out_len) },
        Err(e) => fail(e),
    }
}

/// Encrypts a small secret (at most 64 KiB, e.g. a saved password) under
/// a key held in the soft token ("secret decoder ring"). Only this
/// profile's token can decrypt it, and only while unlocked.
///
/// # Safety
/// `conn` is live; `data` readable for `len` bytes; outputs writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_sdr_encrypt(
    conn: *mut psm_conn,
    data: *const u8,
    len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> Code {
    // SAFETY: forwarded contract.
    boundary(|| unsafe { sdr(conn, data, len, out, out_len, true) })
}

/// Decrypts what `psm_sdr_encrypt` produced. `PSM_ERR_DECODE` if the blob
/// is not from this token or was altered.
///
/// # Safety
/// `conn` is live; `data` readable for `len` bytes; outputs writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_sdr_decrypt(
    conn: *mut psm_conn,
    data: *const u8,
    len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> Code {
    // SAFETY: forwarded contract.
    boundary(|| unsafe { sdr(conn, data, len, out, out_len, false) })
}
