//! Certificates, trust and verification.

use super::core::psm_conn;
use super::{boundary, boundary_value, check_null, fail, fail_code, input, str_arg};
use crate::error::Code;
use crate::proto::{self, CertInfo, CertUsage, Verification};
use std::ffi::{CString, c_char};

/// `PSM_TRUST_*`: trusted as a CA for TLS server certificates.
pub const PSM_TRUST_CA_TLS_SERVER: u32 = 1 << 0;
/// Trusted as a CA for TLS client certificates.
pub const PSM_TRUST_CA_TLS_CLIENT: u32 = 1 << 1;
/// Trusted as a CA for email (S/MIME) certificates.
pub const PSM_TRUST_CA_EMAIL: u32 = 1 << 2;
/// Trusted as a CA for code signing certificates.
pub const PSM_TRUST_CA_CODE: u32 = 1 << 3;
/// Trusted as a TLS peer itself (accepted without a chain).
pub const PSM_TRUST_PEER_TLS: u32 = 1 << 4;
/// Trusted as an email peer itself.
pub const PSM_TRUST_PEER_EMAIL: u32 = 1 << 5;
/// Never trusted, whatever else says so (also as part of a chain).
pub const PSM_TRUST_DISTRUSTED: u32 = 1 << 6;

/// `psm_cert_list_query` filter: certificates with a private key ("mine").
pub const PSM_CERTS_USER: u32 = 1 << 0;
/// Certificate authorities.
pub const PSM_CERTS_CA: u32 = 1 << 1;
/// Other people's (end-entity certificates with an email address).
pub const PSM_CERTS_PEOPLE: u32 = 1 << 2;
/// Servers' (end-entity certificates with a DNS name or IP address).
pub const PSM_CERTS_SERVERS: u32 = 1 << 3;

/// `psm_cert_verify` usage: a TLS server (name: DNS name or IP address).
pub const PSM_USAGE_TLS_SERVER: u32 = 1;
/// A TLS client.
pub const PSM_USAGE_TLS_CLIENT: u32 = 2;
/// The signer of an email (name: the email address).
pub const PSM_USAGE_EMAIL_SIGNER: u32 = 3;
/// The recipient of an encrypted email (name: the email address).
pub const PSM_USAGE_EMAIL_RECIPIENT: u32 = 4;
/// A code signer.
pub const PSM_USAGE_CODE_SIGNING: u32 = 5;

/// A certificate (a snapshot: trust changes made later are not reflected).
/// Free it with `psm_cert_free`.
pub struct psm_cert {
    pub(crate) info: CertInfo,
    ext_key_usage: Option<CString>,
    nickname: CString,
    subject: CString,
    issuer: CString,
    serial: CString,
    sha256: CString,
    email: Option<CString>,
    token: Option<CString>,
    uri: Option<CString>,
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

impl psm_cert {
    pub(crate) fn new(info: CertInfo) -> psm_cert {
        psm_cert {
            nickname: cstring(&info.nickname),
            subject: cstring(&info.subject),
            issuer: cstring(&info.issuer),
            serial: cstring(&info.serial_hex),
            sha256: cstring(&info.sha256_hex),
            email: info.emails.first().map(|e| cstring(e)),
            token: (!info.token.is_empty()).then(|| cstring(&info.token)),
            uri: (!info.uri.is_empty()).then(|| cstring(&info.uri)),
            ext_key_usage: info.ext_key_usage.as_ref().map(|v| cstring(&v.join(","))),
            info,
        }
    }

    fn boxed(info: CertInfo) -> *mut psm_cert {
        Box::into_raw(Box::new(psm_cert::new(info)))
    }
}

/// A list of certificates. Free it with `psm_cert_list_free`.
pub struct psm_cert_list {
    certs: Vec<psm_cert>,
}

impl psm_cert_list {
    pub(crate) fn boxed(certs: Vec<CertInfo>) -> *mut psm_cert_list {
        Box::into_raw(Box::new(psm_cert_list { certs: certs.into_iter().map(psm_cert::new).collect() }))
    }
}

/// The outcome of `psm_cert_verify`. Free it with `psm_verify_result_free`.
pub struct psm_verify_result {
    status: Code,
    detail: CString,
    chain: Vec<psm_cert>,
}

/// Runs `f` on the connection and stores its certificate in `*out`.
unsafe fn cert_out(
    conn: *mut psm_conn,
    out: *mut *mut psm_cert,
    f: impl FnOnce(&crate::Client) -> crate::Result<CertInfo>,
) -> Code {
    // SAFETY: the callers checked both for NULL; `conn` is live per their contract.
    let client = unsafe { &(*conn).client };
    match f(client) {
        Ok(info) => {
            // SAFETY: writable per the caller's contract.
            unsafe { *out = psm_cert::boxed(info) };
            Code::PSM_OK
        }
        Err(e) => fail(e),
    }
}

/// Imports certificates from PEM (one or more), DER, or PKCS#7 certs-only
/// (.p7b/.p7c) into the store; every certificate in the input is imported
/// (all or none). `nickname` (NULL: derived from the subject) and `trust`
/// (`PSM_TRUST_*` bits, 0: none) apply to the first one, which `*out`
/// returns. Importing a certificate already present is not an error.
/// `PSM_ERR_EXISTS`: the nickname names another certificate;
/// `PSM_ERR_DECODE`: the input holds no valid certificate.
///
/// # Safety
/// `conn` is live; `data` is readable for `len` bytes; `nickname` is NULL or
/// a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_import(
    conn: *mut psm_conn,
    data: *const u8,
    len: usize,
    nickname: *const c_char,
    trust: u32,
    out: *mut *mut psm_cert,
) -> Code {
    boundary(|| {
        check_null!(conn, out);
        // SAFETY: readable for `len` bytes per the contract.
        let data = match unsafe { input(data, len, "data") } {
            Ok(d) => d,
            Err(c) => return c,
        };
        let nickname = if nickname.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated per the contract.
            match unsafe { str_arg(nickname, "nickname") } {
                Ok(n) => Some(n),
                Err(c) => return c,
            }
        };
        // SAFETY: checked above.
        unsafe {
            cert_out(conn, out, |c| {
                let mut certs = c.cert_import(data, nickname, trust)?;
                Ok(certs.swap_remove(0))
            })
        }
    })
}

/// Finds a certificate by nickname, email address (the one that expires
/// last) or `"sha256:<hex>"`, in psm's store and then on the PKCS#11 tokens
/// present, or by an RFC 7512 URI naming certificates on a token
/// (`"pkcs11:token=My%20Card;object=Signing"`, as `psm_cert_uri` gives
/// them; a URI carrying a PIN is refused with `PSM_ERR_POLICY`). A token
/// certificate's nickname is `"<token label>:<object label>"`.
/// `PSM_ERR_NOT_FOUND` when there is none.
///
/// # Safety
/// `conn` is live; `query` is a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_find(
    conn: *mut psm_conn,
    query: *const c_char,
    out: *mut *mut psm_cert,
) -> Code {
    boundary(|| {
        check_null!(conn, query, out);
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let query = match unsafe { str_arg(query, "query") } {
            Ok(q) => q,
            Err(c) => return c,
        };
        // SAFETY: checked above.
        unsafe { cert_out(conn, out, |c| c.cert_find(query)) }
    })
}

/// Lists the store's certificates matching any `PSM_CERTS_*` bit of
/// `filter` (0: all), sorted by nickname, then those on the PKCS#11 tokens
/// present (`psm_cert_token` names the token; a stored certificate that a
/// token holds too is listed once, marked with it). Free with
/// `psm_cert_list_free`.
///
/// # Safety
/// `conn` is live; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_list_query(
    conn: *mut psm_conn,
    filter: u32,
    out: *mut *mut psm_cert_list,
) -> Code {
    boundary(|| {
        check_null!(conn, out);
        // SAFETY: non-NULL and live per the contract.
        let client = unsafe { &(*conn).client };
        match client.cert_list(filter) {
            Ok(certs) => {
                // SAFETY: writable per the contract.
                unsafe { *out = psm_cert_list::boxed(certs) };
                Code::PSM_OK
            }
            Err(e) => fail(e),
        }
    })
}

/// Number of certificates in the list; 0 for NULL.
///
/// # Safety
/// `l` is NULL or a live list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_list_len(l: *const psm_cert_list) -> usize {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { l.as_ref() }.map_or(0, |l| l.certs.len()))
}

/// The `i`-th certificate, borrowed: valid until the list is freed (do not
/// `psm_cert_free` it). NULL if `l` is NULL or `i` is out of range.
///
/// # Safety
/// `l` is NULL or a live list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_list_get(l: *const psm_cert_list, i: usize) -> *const psm_cert {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { l.as_ref() }.and_then(|l| l.certs.get(i)).map_or(std::ptr::null(), |c| c as *const psm_cert)
    })
}

/// Frees a list and the certificates it lends out. NULL is ignored.
///
/// # Safety
/// `l` is NULL or from `psm_cert_list_query` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_list_free(l: *mut psm_cert_list) {
    boundary_value((), || {
        if !l.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(l) });
        }
    })
}

/// The label of the PKCS#11 token the certificate is on (a smart card,
/// an HSM), or NULL for a certificate in psm's store (or if `c` is NULL).
/// Valid until the certificate is freed.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_token(c: *const psm_cert) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { c.as_ref() }.and_then(|c| c.token.as_ref()).map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// The RFC 7512 URI of the certificate's object on its PKCS#11 token
/// (`psm_cert_find` takes it), or NULL for a certificate in psm's store.
/// Valid until the certificate is freed.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_uri(c: *const psm_cert) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { c.as_ref() }.and_then(|c| c.uri.as_ref()).map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// A string field of `c`, or NULL.
unsafe fn field(c: *const psm_cert, get: impl FnOnce(&psm_cert) -> &CString) -> *const c_char {
    // SAFETY: the caller passes NULL or a live certificate.
    boundary_value(std::ptr::null(), || unsafe { c.as_ref() }.map_or(std::ptr::null(), |c| get(c).as_ptr()))
}

/// The certificate's nickname in the store ("" if it is not stored).
/// Valid until the certificate is freed; NULL if `c` is NULL.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_nickname(c: *const psm_cert) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(c, |c| &c.nickname) }
}

/// The subject distinguished name, most significant part first as
/// x509-parser prints it (e.g. "C=DE, O=Example, CN=Alice").
/// Valid until the certificate is freed; NULL if `c` is NULL.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_subject(c: *const psm_cert) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(c, |c| &c.subject) }
}

/// The issuer distinguished name, in the same form as the subject.
/// Valid until the certificate is freed; NULL if `c` is NULL.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_issuer(c: *const psm_cert) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(c, |c| &c.issuer) }
}

/// The serial number in lower-case hex, without DER's sign byte.
/// Valid until the certificate is freed; NULL if `c` is NULL.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_serial_hex(c: *const psm_cert) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(c, |c| &c.serial) }
}

/// The SHA-256 fingerprint of the DER, 64 lower-case hex digits.
/// Valid until the certificate is freed; NULL if `c` is NULL.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_sha256_hex(c: *const psm_cert) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { field(c, |c| &c.sha256) }
}

/// The first email address (subjectAltName, else the subject's
/// emailAddress); NULL if there is none or `c` is NULL. Valid until the
/// certificate is freed.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_email(c: *const psm_cert) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { c.as_ref() }.and_then(|c| c.email.as_ref()).map_or(std::ptr::null(), |e| e.as_ptr())
    })
}

/// keyUsage bits of the certificate (bit 0 digitalSignature, 1
/// nonRepudiation, 2 keyEncipherment, 3 dataEncipherment, 4 keyAgreement,
/// 5 keyCertSign, 6 cRLSign, 7 encipherOnly, 8 decipherOnly) into `*bits`.
/// Returns 1 when the extension is present, 0 when it is absent (the key
/// is unrestricted; `*bits` is then 0) or `c` is NULL. `bits` may be NULL.
///
/// # Safety
/// `c` is NULL or a live certificate; `bits` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_key_usage(c: *const psm_cert, bits: *mut u32) -> i32 {
    boundary_value(0, || {
        // SAFETY: per the contract.
        let ku = unsafe { c.as_ref() }.and_then(|c| c.info.key_usage);
        // SAFETY: NULL or writable per the contract.
        if let Some(b) = unsafe { bits.as_mut() } {
            *b = ku.map_or(0, u32::from);
        }
        i32::from(ku.is_some())
    })
}

/// The extendedKeyUsage purposes, comma-separated ("serverAuth,clientAuth";
/// other purposes as dotted OIDs); NULL when the extension is absent or `c`
/// is NULL. Valid until the certificate is freed.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_ext_key_usage(c: *const psm_cert) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { c.as_ref() }.and_then(|c| c.ext_key_usage.as_ref()).map_or(std::ptr::null(), |e| e.as_ptr())
    })
}

/// Start of the validity period (unix seconds); 0 if `c` is NULL.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_not_before(c: *const psm_cert) -> i64 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { c.as_ref() }.map_or(0, |c| c.info.not_before))
}

/// End of the validity period (unix seconds); 0 if `c` is NULL.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_not_after(c: *const psm_cert) -> i64 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { c.as_ref() }.map_or(0, |c| c.info.not_after))
}

/// 1 if psmd holds the private key of this certificate, else 0.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_has_private_key(c: *const psm_cert) -> i32 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { c.as_ref() }.map_or(0, |c| i32::from(c.info.has_private_key)))
}

/// The `PSM_TRUST_*` bits the certificate had when it was fetched.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_trust(c: *const psm_cert) -> u32 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { c.as_ref() }.map_or(0, |c| c.info.trust))
}

/// 1 if the certificate is a CA (basicConstraints cA), else 0.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_is_ca(c: *const psm_cert) -> i32 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { c.as_ref() }.map_or(0, |c| i32::from(c.info.is_ca)))
}

/// 1 if the certificate is one of the system's trust anchors (it can be
/// distrusted but not deleted), else 0.
///
/// # Safety
/// `c` is NULL or a live certificate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_is_builtin(c: *const psm_cert) -> i32 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { c.as_ref() }.map_or(0, |c| i32::from(c.info.builtin)))
}

/// The certificate's DER, borrowed: valid until the certificate is freed.
///
/// # Safety
/// `c` is NULL or live; `der` and `len` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_der(c: *const psm_cert, der: *mut *const u8, len: *mut usize) -> Code {
    boundary(|| {
        check_null!(c, der, len);
        // SAFETY: all checked above; `c` is live per the contract.
        unsafe {
            let bytes = &(*c).info.der;
            *der = bytes.as_ptr();
            *len = bytes.len();
        }
        Code::PSM_OK
    })
}

/// Frees a certificate from `psm_cert_import`, `psm_cert_find` or the like
/// (not one borrowed from a list or verify result). NULL is ignored.
///
/// # Safety
/// `c` is NULL or an owned certificate not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_free(c: *mut psm_cert) {
    boundary_value((), || {
        if !c.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(c) });
        }
    })
}

unsafe fn change_trust(conn: *mut psm_conn, cert: *const psm_cert, set: u32, clear: u32) -> Code {
    // SAFETY: the callers checked both for NULL; live per their contract.
    let (client, cert) = unsafe { (&(*conn).client, &*cert) };
    match client.cert_change_trust(&cert.info.sha256_hex, set, clear) {
        Ok(_) => Code::PSM_OK,
        Err(e) => fail(e),
    }
}

/// Replaces the certificate's trust with `trust` (`PSM_TRUST_*` bits).
/// `cert` itself is not updated; find it again to see the change.
///
/// # Safety
/// `conn` and `cert` are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_set_trust(conn: *mut psm_conn, cert: *const psm_cert, trust: u32) -> Code {
    boundary(|| {
        check_null!(conn, cert);
        if trust & !proto::TRUST_ALL_BITS != 0 {
            return fail_code(Code::PSM_ERR_INVALID_ARGUMENT, &format!("unknown trust bits {trust:#x}"));
        }
        // SAFETY: checked above.
        unsafe { change_trust(conn, cert, trust, proto::TRUST_ALL_BITS & !trust) }
    })
}

/// Sets the `set` bits and clears the `clear` bits in one atomic step, so
/// that two applications editing different bits at once both succeed.
///
/// # Safety
/// `conn` and `cert` are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_change_trust(
    conn: *mut psm_conn,
    cert: *const psm_cert,
    set: u32,
    clear: u32,
) -> Code {
    boundary(|| {
        check_null!(conn, cert);
        // SAFETY: checked above.
        unsafe { change_trust(conn, cert, set, clear) }
    })
}

unsafe fn delete(conn: *mut psm_conn, cert: *const psm_cert, with_key: bool) -> Code {
    // SAFETY: the callers checked both for NULL; live per their contract.
    let (client, cert) = unsafe { (&(*conn).client, &*cert) };
    client.cert_delete(&cert.info.sha256_hex, with_key).map_or_else(fail, |()| Code::PSM_OK)
}

/// Shows psm's read-only view of `cert` (a stored certificate): its
/// details, chain and trust, and whether psm verifies it now. The call
/// returns once the user closed the dialog; open its URL from the
/// `PSM_EVENT_DIALOG` event (`psm_set_event_handler`). `PSM_ERR_NO_UI` for
/// a connection made with `PSM_CONNECT_NO_DIALOGS`.
///
/// # Safety
/// `conn` and `cert` are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_view(conn: *mut psm_conn, cert: *const psm_cert) -> Code {
    boundary(|| {
        check_null!(conn, cert);
        // SAFETY: checked above; live per the contract.
        let (client, cert) = unsafe { (&(*conn).client, &*cert) };
        client.cert_view(&cert.info.sha256_hex).map_or_else(fail, |()| Code::PSM_OK)
    })
}

/// Deletes the certificate from the store; its private key, if any, stays
/// (see `psm_cert_delete_with_key`). System anchors cannot be deleted
/// (`PSM_ERR_PERMISSION_DENIED`): distrust them instead.
///
/// # Safety
/// `conn` and `cert` are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_delete(conn: *mut psm_conn, cert: *const psm_cert) -> Code {
    boundary(|| {
        check_null!(conn, cert);
        // SAFETY: checked above.
        unsafe { delete(conn, cert, false) }
    })
}

/// Deletes the certificate and its private key (unless another stored
/// certificate uses the same key).
///
/// # Safety
/// `conn` and `cert` are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_delete_with_key(conn: *mut psm_conn, cert: *const psm_cert) -> Code {
    boundary(|| {
        check_null!(conn, cert);
        // SAFETY: checked above.
        unsafe { delete(conn, cert, true) }
    })
}

/// Verifies `cert` for `usage` (`PSM_USAGE_*`) and, if not NULL, `name` (a
/// DNS name or IP address for TLS, an email address for email) at `at` (unix
/// seconds, 0 = now) against the store's trust settings. Returns `PSM_OK`
/// whenever the certificate could be evaluated; the verdict is
/// `psm_verify_result_status`, the reason `psm_verify_result_detail`.
///
/// # Safety
/// `conn` and `cert` are live; `name` is NULL or NUL-terminated; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_cert_verify(
    conn: *mut psm_conn,
    cert: *const psm_cert,
    usage: u32,
    name: *const c_char,
    at: i64,
    out: *mut *mut psm_verify_result,
) -> Code {
    boundary(|| {
        check_null!(conn, cert, out);
        let usage = match usage {
            PSM_USAGE_TLS_SERVER => CertUsage::TlsServer,
            PSM_USAGE_TLS_CLIENT => CertUsage::TlsClient,
            PSM_USAGE_EMAIL_SIGNER => CertUsage::EmailSigner,
            PSM_USAGE_EMAIL_RECIPIENT => CertUsage::EmailRecipient,
            PSM_USAGE_CODE_SIGNING => CertUsage::CodeSigning,
            other => return fail_code(Code::PSM_ERR_INVALID_ARGUMENT, &format!("unknown usage {other}")),
        };
        let name = if name.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated per the contract.
            match unsafe { str_arg(name, "name") } {
                Ok(n) => Some(n),
                Err(c) => return c,
            }
        };
        // SAFETY: checked above; live per the contract.
        let (client, cert) = unsafe { (&(*conn).client, &*cert) };
        match client.cert_verify(&cert.info.der, usage, name, at) {
            Ok(Verification { status, detail, chain }) => {
                let result = psm_verify_result {
                    status,
                    detail: cstring(&detail),
                    chain: chain.into_iter().map(psm_cert::new).collect(),
                };
                // SAFETY: writable per the contract.
                unsafe { *out = Box::into_raw(Box::new(result)) };
                Code::PSM_OK
            }
            Err(e) => fail(e),
        }
    })
}

/// `PSM_OK` if the certificate is valid, else why not
/// (`PSM_ERR_CERT_*`). `PSM_ERR_NULL_PARAMETER` for NULL.
///
/// # Safety
/// `v` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_verify_result_status(v: *const psm_verify_result) -> Code {
    // SAFETY: per the contract.
    boundary_value(Code::PSM_ERR_NULL_PARAMETER, || {
        unsafe { v.as_ref() }.map_or(Code::PSM_ERR_NULL_PARAMETER, |v| v.status)
    })
}

/// The verdict in words ("certificate expired on ..."); valid until the
/// result is freed. NULL if `v` is NULL.
///
/// # Safety
/// `v` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_verify_result_detail(v: *const psm_verify_result) -> *const c_char {
    // SAFETY: per the contract.
    boundary_value(std::ptr::null(), || unsafe { v.as_ref() }.map_or(std::ptr::null(), |v| v.detail.as_ptr()))
}

/// Length of the chain: the certificate itself first, then its issuers up
/// to the trust anchor (just the certificate when no chain was found).
///
/// # Safety
/// `v` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_verify_result_chain_len(v: *const psm_verify_result) -> usize {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { v.as_ref() }.map_or(0, |v| v.chain.len()))
}

/// The `i`-th certificate of the chain (0 = the certificate itself),
/// borrowed until the result is freed. NULL when out of range.
///
/// # Safety
/// `v` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_verify_result_chain_get(
    v: *const psm_verify_result,
    i: usize,
) -> *const psm_cert {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { v.as_ref() }.and_then(|v| v.chain.get(i)).map_or(std::ptr::null(), |c| c as *const psm_cert)
    })
}

/// Frees a verify result and the chain it lends out. NULL is ignored.
///
/// # Safety
/// `v` is NULL or from `psm_cert_verify` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_verify_result_free(v: *mut psm_verify_result) {
    boundary_value((), || {
        if !v.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(v) });
        }
    })
}

/// Imports a CRL (DER or PEM); later verifications check revocation
/// against it. A CRL older than the one held for the same issuer is refused.
///
/// # Safety
/// `conn` is live; `data` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_crl_import(conn: *mut psm_conn, data: *const u8, len: usize) -> Code {
    boundary(|| {
        check_null!(conn);
        // SAFETY: readable for `len` bytes per the contract; `conn` is live.
        let (client, data) = match unsafe { input(data, len, "data") } {
            Ok(d) => (unsafe { &(*conn).client }, d),
            Err(c) => return c,
        };
        client.crl_import(data).map_or_else(fail, |()| Code::PSM_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_constants_match_the_wire_protocol() {
        let pairs = [
            (PSM_TRUST_CA_TLS_SERVER, proto::TRUST_CA_TLS_SERVER),
            (PSM_TRUST_CA_TLS_CLIENT, proto::TRUST_CA_TLS_CLIENT),
            (PSM_TRUST_CA_EMAIL, proto::TRUST_CA_EMAIL),
            (PSM_TRUST_CA_CODE, proto::TRUST_CA_CODE),
            (PSM_TRUST_PEER_TLS, proto::TRUST_PEER_TLS),
            (PSM_TRUST_PEER_EMAIL, proto::TRUST_PEER_EMAIL),
            (PSM_TRUST_DISTRUSTED, proto::TRUST_DISTRUSTED),
            (PSM_CERTS_USER, proto::CERTS_USER),
            (PSM_CERTS_CA, proto::CERTS_CA),
            (PSM_CERTS_PEOPLE, proto::CERTS_PEOPLE),
            (PSM_CERTS_SERVERS, proto::CERTS_SERVERS),
        ];
        for (c, wire) in pairs {
            assert_eq!(c, wire);
        }
    }
}
