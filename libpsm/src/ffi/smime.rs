//! S/MIME and CMS: sign, verify, encrypt, decrypt, certs-only, and their
//! stream forms for messages of any size.

use super::cert::{psm_cert, psm_cert_list};
use super::core::psm_conn;
use super::key::{bytes_out, opt_str};
use super::{boundary, boundary_value, check_null, fail, fail_code, input};
use crate::error::Code;
use crate::proto::{self, SmimeInfo, SmimeOp};
use std::ffi::{CString, c_char};
use std::os::fd::{FromRawFd, RawFd};

/// `PSM_SMIME_*` flags. Sign: a detached signature (multipart/signed)
/// rather than an opaque one (application/pkcs7-mime signed-data).
pub const PSM_SMIME_DETACHED: u32 = 1 << 0;
/// Output DER rather than an S/MIME MIME entity.
pub const PSM_SMIME_DER: u32 = 1 << 1;
/// Sign: leave the signer's certificate and its CA certificates out.
pub const PSM_SMIME_NO_CERTS: u32 = 1 << 2;
/// Encrypt: AES-256-CBC EnvelopedData for older readers (default:
/// AES-256-GCM AuthEnvelopedData, RFC 5083).
pub const PSM_SMIME_CBC: u32 = 1 << 3;
/// Output PEM rather than an S/MIME MIME entity.
pub const PSM_SMIME_PEM: u32 = 1 << 4;
/// The content is binary: lines are not made CRLF (RFC 8551 3.1.1).
pub const PSM_SMIME_BINARY: u32 = 1 << 5;
/// Sign with SHA-384 (default SHA-256).
pub const PSM_SMIME_SHA384: u32 = 1 << 6;
/// Sign with SHA-512.
pub const PSM_SMIME_SHA512: u32 = 1 << 7;
/// Sign with RSASSA-PSS (RSA keys; default PKCS#1 v1.5).
pub const PSM_SMIME_RSA_PSS: u32 = 1 << 8;
/// Decrypt: also verify a signed message inside (sign-then-encrypt).
pub const PSM_SMIME_VERIFY_INNER: u32 = 1 << 9;
/// Verify: remember a good signer's certificate (as a person's, without
/// trust) so that later messages can be encrypted to it. Off by default.
pub const PSM_SMIME_REMEMBER_SIGNER: u32 = 1 << 10;
/// Encrypt: RSAES-OAEP (SHA-256) for RSA recipients (default PKCS#1 v1.5).
pub const PSM_SMIME_RSA_OAEP: u32 = 1 << 11;

// The header needs literal values; these must equal `proto::SMIME_*`.
const _: () = assert!(
    PSM_SMIME_DETACHED == proto::SMIME_DETACHED
        && PSM_SMIME_DER == proto::SMIME_DER
        && PSM_SMIME_NO_CERTS == proto::SMIME_NO_CERTS
        && PSM_SMIME_CBC == proto::SMIME_CBC
        && PSM_SMIME_PEM == proto::SMIME_PEM
        && PSM_SMIME_BINARY == proto::SMIME_BINARY
        && PSM_SMIME_SHA384 == proto::SMIME_SHA384
        && PSM_SMIME_SHA512 == proto::SMIME_SHA512
        && PSM_SMIME_RSA_PSS == proto::SMIME_RSA_PSS
        && PSM_SMIME_VERIFY_INNER == proto::SMIME_VERIFY_INNER
        && PSM_SMIME_REMEMBER_SIGNER == proto::SMIME_REMEMBER_SIGNER
        && PSM_SMIME_RSA_OAEP == proto::SMIME_RSA_OAEP
);

/// What verifying or decrypting a message found. Free it with
/// `psm_smime_result_free`.
pub struct psm_smime_result {
    info: SmimeInfo,
    detail: CString,
    digest: CString,
    cipher: CString,
    signer: Option<psm_cert>,
    chain: Vec<psm_cert>,
}

impl psm_smime_result {
    fn boxed(mut info: SmimeInfo) -> *mut psm_smime_result {
        let c = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
        let signer = info.signer.take().map(psm_cert::new);
        let chain = std::mem::take(&mut info.chain).into_iter().map(psm_cert::new).collect();
        Box::into_raw(Box::new(psm_smime_result {
            detail: c(&info.detail),
            digest: c(&info.digest),
            cipher: c(&info.cipher),
            signer,
            chain,
            info,
        }))
    }
}

unsafe fn result_out(r: crate::Result<SmimeInfo>, out: *mut *mut psm_smime_result) -> Code {
    match r {
        Ok(info) => {
            // SAFETY: the callers checked `out` for NULL.
            unsafe { *out = psm_smime_result::boxed(info) };
            Code::PSM_OK
        }
        Err(e) => fail(e),
    }
}

/// The certificates' "sha256:<hex>" names, for requests.
unsafe fn cert_names(certs: *const *const psm_cert, n: usize, what: &str) -> Result<Vec<String>, Code> {
    if n == 0 {
        return Err(fail_code(Code::PSM_ERR_INVALID_ARGUMENT, &format!("no {what} given")));
    }
    if certs.is_null() {
        return Err(fail_code(Code::PSM_ERR_NULL_PARAMETER, &format!("argument `{what}` is NULL")));
    }
    // SAFETY: readable for `n` pointers per the caller's contract.
    let list = unsafe { std::slice::from_raw_parts(certs, n) };
    list.iter()
        .map(|&c| {
            // SAFETY: each entry is NULL or a live certificate.
            match unsafe { c.as_ref() } {
                Some(c) => Ok(format!("sha256:{}", c.info.sha256_hex)),
                None => {
                    Err(fail_code(Code::PSM_ERR_NULL_PARAMETER, &format!("an entry of `{what}` is NULL")))
                }
            }
        })
        .collect()
}

/// Signs `msg` (a MIME entity: headers, blank line, body; or any bytes
/// with `PSM_SMIME_BINARY`, which cannot be multipart/signed: use it with
/// the opaque form or a DER/PEM detached signature) with `signer` and its
/// private key, which must be
/// valid for e-mail signing now. Default: an opaque
/// `application/pkcs7-mime; smime-type=signed-data` entity with CRLF lines,
/// ready to be a message body; `PSM_SMIME_DETACHED`: `multipart/signed`
/// (the right `micalg`); `PSM_SMIME_DER` / `PSM_SMIME_PEM`: the bare CMS
/// structure. Signing time and SMIMECapabilities are signed attributes;
/// SHA-256 unless `PSM_SMIME_SHA384`/`_SHA512`; RSA PKCS#1 v1.5 unless
/// `PSM_SMIME_RSA_PSS`; ECDSA for EC keys. Any size: large messages go
/// through a data channel. `*out` is `psm_free`d by the caller.
/// `PSM_ERR_LOGIN_REQUIRED`: the token is locked and there is no prompt
/// handler to ask for its password.
///
/// # Safety
/// `conn` and `signer` are live; `msg` is readable for `len` bytes;
/// outputs are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_sign(
    conn: *mut psm_conn,
    signer: *const psm_cert,
    msg: *const u8,
    len: usize,
    flags: u32,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(conn, signer, out, out_len);
        // SAFETY: per the contract.
        let data = match unsafe { input(msg, len, "msg") } {
            Ok(d) => d,
            Err(c) => return c,
        };
        // SAFETY: non-NULL and live.
        let (client, signer) = unsafe { (&(*conn).client, &*signer) };
        match client.smime_sign(&format!("sha256:{}", signer.info.sha256_hex), flags, data) {
            // SAFETY: outputs checked above.
            Ok(b) => unsafe { bytes_out(&b, out, out_len) },
            Err(e) => fail(e),
        }
    })
}

/// Verifies a signed message: an S/MIME entity (opaque or
/// multipart/signed), DER or PEM. `detached_content` (NULL when
/// `content_len` is 0) is the content a detached DER/PEM signature covers.
/// Returns `PSM_OK` with a result whenever the message could be read
/// (`PSM_ERR_DECODE` otherwise; `PSM_ERR_SMIME_NOT_SIGNED` for one that is
/// not signed); the verdict is `psm_smime_result_status`.
///
/// # Safety
/// `conn` is live; buffers are readable for their lengths; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_verify(
    conn: *mut psm_conn,
    msg: *const u8,
    len: usize,
    detached_content: *const u8,
    content_len: usize,
    out: *mut *mut psm_smime_result,
) -> Code {
    // SAFETY: same contract.
    unsafe { psm_smime_verify_from(conn, msg, len, detached_content, content_len, std::ptr::null(), 0, out) }
}

/// `psm_smime_verify` that also checks the signer's certificate carries
/// `from` (the message's From address; NULL: no check), and takes flags
/// (`PSM_SMIME_REMEMBER_SIGNER`, `PSM_SMIME_BINARY`).
///
/// # Safety
/// As `psm_smime_verify`; `from` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn psm_smime_verify_from(
    conn: *mut psm_conn,
    msg: *const u8,
    len: usize,
    detached_content: *const u8,
    content_len: usize,
    from: *const c_char,
    flags: u32,
    out: *mut *mut psm_smime_result,
) -> Code {
    boundary(|| {
        check_null!(conn, out);
        // SAFETY: per the contract.
        let parsed = unsafe {
            (
                input(msg, len, "msg"),
                input(detached_content, content_len, "detached_content"),
                opt_str(from, "from"),
            )
        };
        let (msg, content, from) = match parsed {
            (Ok(m), Ok(c), Ok(f)) => (m, c, f),
            (Err(c), _, _) | (_, Err(c), _) | (_, _, Err(c)) => return c,
        };
        // SAFETY: non-NULL and live.
        let client = unsafe { &(*conn).client };
        let content = (content_len > 0).then_some(content);
        // SAFETY: out checked above.
        unsafe { result_out(client.smime_verify(msg, content, from, flags), out) }
    })
}

/// Encrypts `msg` to the `n` certificates `recipients` (find them by
/// e-mail address with `psm_cert_find`; add your own so the sent copy
/// stays readable). Each must be valid for receiving encrypted e-mail.
/// AES-256-GCM AuthEnvelopedData unless `PSM_SMIME_CBC`; RSA recipients
/// get RSA v1.5 key transport (`PSM_SMIME_RSA_OAEP`: OAEP), EC recipients
/// ECDH. Output as for `psm_smime_sign`.
///
/// # Safety
/// `conn` is live; `recipients` holds `n` live certificates; buffers are
/// readable/writable as usual.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_encrypt(
    conn: *mut psm_conn,
    recipients: *const *const psm_cert,
    n: usize,
    msg: *const u8,
    len: usize,
    flags: u32,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(conn, out, out_len);
        // SAFETY: per the contract.
        let (names, data) = match unsafe { (cert_names(recipients, n, "recipients"), input(msg, len, "msg")) }
        {
            (Ok(r), Ok(d)) => (r, d),
            (Err(c), _) | (_, Err(c)) => return c,
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        // SAFETY: non-NULL and live.
        let client = unsafe { &(*conn).client };
        match client.smime_encrypt(&names, flags, data) {
            // SAFETY: outputs checked above.
            Ok(b) => unsafe { bytes_out(&b, out, out_len) },
            Err(e) => fail(e),
        }
    })
}

/// Decrypts `msg` with whichever of the user's keys it is encrypted to,
/// logging in to the token (through the prompt handler) if needed.
/// `PSM_ERR_SMIME_NO_KEY`: it is for nobody psm holds a key for;
/// `PSM_ERR_SMIME_CONTENT_ALTERED`: AES-GCM found it altered.
///
/// # Safety
/// `conn` is live; `msg` readable for `len` bytes; outputs writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_decrypt(
    conn: *mut psm_conn,
    msg: *const u8,
    len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(conn, out, out_len);
        // SAFETY: per the contract.
        let data = match unsafe { input(msg, len, "msg") } {
            Ok(d) => d,
            Err(c) => return c,
        };
        // SAFETY: non-NULL and live.
        let client = unsafe { &(*conn).client };
        match client.smime_decrypt(data, None, 0) {
            // SAFETY: outputs checked above.
            Ok(info) => unsafe { bytes_out(&info.content, out, out_len) },
            Err(e) => fail(e),
        }
    })
}

/// Decrypts `msg` and, with `PSM_SMIME_VERIFY_INNER`, verifies a signed
/// message inside (sign-then-encrypt) in the same call: the result holds
/// the innermost content and the signature's verdict (`from` as for
/// `psm_smime_verify_from`).
///
/// # Safety
/// As `psm_smime_decrypt`; `from` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_decrypt_verify(
    conn: *mut psm_conn,
    msg: *const u8,
    len: usize,
    from: *const c_char,
    flags: u32,
    out: *mut *mut psm_smime_result,
) -> Code {
    boundary(|| {
        check_null!(conn, out);
        // SAFETY: per the contract.
        let (data, from) = match unsafe { (input(msg, len, "msg"), opt_str(from, "from")) } {
            (Ok(d), Ok(f)) => (d, f),
            (Err(c), _) | (_, Err(c)) => return c,
        };
        // SAFETY: non-NULL and live.
        let client = unsafe { &(*conn).client };
        // SAFETY: out checked above.
        unsafe { result_out(client.smime_decrypt(data, from, flags), out) }
    })
}

/// A certs-only message (.p7c, `smime-type=certs-only`) carrying the `n`
/// certificates: an S/MIME entity, or DER/PEM with the flags.
///
/// # Safety
/// `conn` is live; `certs` holds `n` live certificates; outputs writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_certs_only(
    conn: *mut psm_conn,
    certs: *const *const psm_cert,
    n: usize,
    flags: u32,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(conn, out, out_len);
        // SAFETY: per the contract.
        let names = match unsafe { cert_names(certs, n, "certs") } {
            Ok(r) => r,
            Err(c) => return c,
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        // SAFETY: non-NULL and live.
        let client = unsafe { &(*conn).client };
        match client.smime_certs_only(&names, flags) {
            // SAFETY: outputs checked above.
            Ok(b) => unsafe { bytes_out(&b, out, out_len) },
            Err(e) => fail(e),
        }
    })
}

/// The certificates in a certs-only message (S/MIME, DER or PEM), without
/// importing them (`psm_cert_import` takes the same input to import).
///
/// # Safety
/// `conn` is live; `msg` readable for `len` bytes; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_read_certs(
    conn: *mut psm_conn,
    msg: *const u8,
    len: usize,
    out: *mut *mut psm_cert_list,
) -> Code {
    boundary(|| {
        check_null!(conn, out);
        // SAFETY: per the contract.
        let data = match unsafe { input(msg, len, "msg") } {
            Ok(d) => d,
            Err(c) => return c,
        };
        // SAFETY: non-NULL and live.
        let client = unsafe { &(*conn).client };
        match client.smime_read_certs(data) {
            Ok(certs) => {
                // SAFETY: writable per the contract.
                unsafe { *out = psm_cert_list::boxed(certs) };
                Code::PSM_OK
            }
            Err(e) => fail(e),
        }
    })
}

/// A descriptor the caller owns, read or written without closing it.
struct Borrowed(std::mem::ManuallyDrop<std::fs::File>);

impl Borrowed {
    fn new(fd: RawFd) -> Borrowed {
        // SAFETY: the caller's descriptor; ManuallyDrop never closes it.
        Borrowed(std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) }))
    }
}

fn bad_fd(what: &str) -> Code {
    fail_code(Code::PSM_ERR_INVALID_ARGUMENT, &format!("`{what}` is not a descriptor"))
}

unsafe fn run_stream(
    conn: *mut psm_conn,
    op: SmimeOp,
    flags: u32,
    in_fd: RawFd,
    out_fd: RawFd,
    out: *mut *mut psm_smime_result,
) -> Code {
    if in_fd < 0 {
        return bad_fd("in_fd");
    }
    let mut input = Borrowed::new(in_fd);
    let mut sink = std::io::sink();
    let mut output = (out_fd >= 0).then(|| Borrowed::new(out_fd));
    let writer: &mut (dyn std::io::Write + Send) = match output.as_mut() {
        Some(o) => &mut *o.0,
        None => &mut sink,
    };
    // SAFETY: the callers checked `conn`.
    let client = unsafe { &(*conn).client };
    match client.smime_stream(op, flags, &mut *input.0, writer) {
        Ok(Some(info)) if !out.is_null() => {
            // SAFETY: non-NULL, writable per the contract.
            unsafe { result_out(Ok(info), out) }
        }
        Ok(None) if !out.is_null() => fail_code(Code::PSM_ERR_PROTOCOL, "psmd sent no result for the stream"),
        Ok(_) => Code::PSM_OK,
        Err(e) => fail(e),
    }
}

/// `psm_smime_sign` from `in_fd` to `out_fd` (files, pipes, sockets; read
/// to end of file, neither closed) through a data channel: a message of
/// any size, in bounded memory on both sides. The data moves on a thread of
/// libpsm's while the calling thread waits for psmd and answers prompts.
///
/// # Safety
/// `conn` and `signer` are live; the descriptors are open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_sign_stream(
    conn: *mut psm_conn,
    signer: *const psm_cert,
    flags: u32,
    in_fd: i32,
    out_fd: i32,
) -> Code {
    boundary(|| {
        check_null!(conn, signer);
        if out_fd < 0 {
            return bad_fd("out_fd");
        }
        // SAFETY: non-NULL and live.
        let signer = format!("sha256:{}", unsafe { &*signer }.info.sha256_hex);
        // SAFETY: conn checked; no result for signing.
        unsafe { run_stream(conn, SmimeOp::Sign { signer }, flags, in_fd, out_fd, std::ptr::null_mut()) }
    })
}

/// `psm_smime_encrypt` from `in_fd` to `out_fd`, in bounded memory.
///
/// # Safety
/// `conn` is live; `recipients` holds `n` live certificates; the
/// descriptors are open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_encrypt_stream(
    conn: *mut psm_conn,
    recipients: *const *const psm_cert,
    n: usize,
    flags: u32,
    in_fd: i32,
    out_fd: i32,
) -> Code {
    boundary(|| {
        check_null!(conn);
        if out_fd < 0 {
            return bad_fd("out_fd");
        }
        // SAFETY: per the contract.
        let recipients = match unsafe { cert_names(recipients, n, "recipients") } {
            Ok(r) => r,
            Err(c) => return c,
        };
        // SAFETY: conn checked.
        unsafe {
            run_stream(conn, SmimeOp::Encrypt { recipients }, flags, in_fd, out_fd, std::ptr::null_mut())
        }
    })
}

/// Verifies a message read from `in_fd`. With a detached `signature`
/// (DER, PEM or the S/MIME signature part; NULL when `sig_len` is 0),
/// `in_fd` is the content it covers and streams through. Without, `in_fd`
/// is the whole signed message (DER, PEM or opaque S/MIME: any size, in
/// bounded memory, psmd spooling the content to an unnamed temporary
/// file; a multipart/signed entity is read into memory, at most 512 MiB),
/// and the content goes to `out_fd` (-1: discarded) as it is checked. The
/// result has no content; see `psm_smime_verify_from`. Prompts (the token
/// password) reach the prompt handler while the data moves.
///
/// # Safety
/// `conn` is live; `signature` readable for `sig_len` bytes; `from` NULL or
/// NUL-terminated; `out` writable; the descriptors open.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn psm_smime_verify_stream(
    conn: *mut psm_conn,
    in_fd: i32,
    out_fd: i32,
    signature: *const u8,
    sig_len: usize,
    from: *const c_char,
    flags: u32,
    out: *mut *mut psm_smime_result,
) -> Code {
    boundary(|| {
        check_null!(conn, out);
        // SAFETY: per the contract.
        let (sig, from) = match unsafe { (input(signature, sig_len, "signature"), opt_str(from, "from")) } {
            (Ok(s), Ok(f)) => (s, f),
            (Err(c), _) | (_, Err(c)) => return c,
        };
        let signature = (sig_len > 0).then(|| proto::ByteBuf::from(sig.to_vec()));
        let op = SmimeOp::Verify { signature, from: from.map(str::to_string) };
        // SAFETY: conn and out checked.
        unsafe { run_stream(conn, op, flags, in_fd, out_fd, out) }
    })
}

/// Decrypts a message read from `in_fd` (DER, PEM or S/MIME, any size, in
/// bounded memory) and writes the content to `out_fd`; flags and `from` as
/// for `psm_smime_decrypt_verify`. The result has no content. AES-GCM
/// content is written before its tag is checked at the end: discard what
/// `out_fd` got unless this returns `PSM_OK`.
///
/// # Safety
/// `conn` is live; `from` NULL or NUL-terminated; `out` writable; the
/// descriptors open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_decrypt_stream(
    conn: *mut psm_conn,
    in_fd: i32,
    out_fd: i32,
    from: *const c_char,
    flags: u32,
    out: *mut *mut psm_smime_result,
) -> Code {
    boundary(|| {
        check_null!(conn, out);
        if out_fd < 0 {
            return bad_fd("out_fd");
        }
        // SAFETY: per the contract.
        let from = match unsafe { opt_str(from, "from") } {
            Ok(f) => f,
            Err(c) => return c,
        };
        let op = SmimeOp::Decrypt { from: from.map(str::to_string) };
        // SAFETY: conn and out checked.
        unsafe { run_stream(conn, op, flags, in_fd, out_fd, out) }
    })
}

/// The verdict: `PSM_OK` only for an intact signature by a signer whose
/// chain is valid for e-mail at the signing time (or, for an unsigned
/// message that was decrypted, success); else why not:
/// `PSM_ERR_SMIME_BAD_SIGNATURE`, `PSM_ERR_SMIME_CONTENT_ALTERED`,
/// `PSM_ERR_CERT_UNKNOWN_ISSUER` (untrusted signer), `PSM_ERR_CERT_EXPIRED`,
/// `PSM_ERR_CERT_REVOKED`, `PSM_ERR_SMIME_ADDRESS_MISMATCH`,
/// `PSM_ERR_NOT_FOUND` (signer's certificate unknown), `PSM_ERR_UNSUPPORTED`.
/// `PSM_ERR_NULL_PARAMETER` for NULL.
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_status(r: *const psm_smime_result) -> Code {
    // SAFETY: per the contract.
    boundary_value(Code::PSM_ERR_NULL_PARAMETER, || {
        unsafe { r.as_ref() }.map_or(Code::PSM_ERR_NULL_PARAMETER, |r| r.info.status)
    })
}

/// The signer's chain checked now rather than at the signing time
/// (`PSM_ERR_CERT_EXPIRED` for an old message whose signer has since
/// expired, while the status says `PSM_OK`).
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_status_now(r: *const psm_smime_result) -> Code {
    // SAFETY: per the contract.
    boundary_value(Code::PSM_ERR_NULL_PARAMETER, || {
        unsafe { r.as_ref() }.map_or(Code::PSM_ERR_NULL_PARAMETER, |r| r.info.status_now)
    })
}

/// The verdict in words ("good signature by CN=...", or what failed).
/// Valid until the result is freed; "" for NULL.
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_detail(r: *const psm_smime_result) -> *const c_char {
    // SAFETY: per the contract.
    boundary_value(c"".as_ptr(), || unsafe { r.as_ref() }.map_or(c"".as_ptr(), |r| r.detail.as_ptr()))
}

/// The signer's certificate, borrowed (valid until the result is freed);
/// NULL if the message is not signed or names a signer nobody has.
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_signer(r: *const psm_smime_result) -> *const psm_cert {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { r.as_ref() }
            .and_then(|r| r.signer.as_ref())
            .map_or(std::ptr::null(), |c| c as *const psm_cert)
    })
}

/// Number of certificates in the signer's verified chain (leaf first).
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_chain_len(r: *const psm_smime_result) -> usize {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { r.as_ref() }.map_or(0, |r| r.chain.len()))
}

/// The `i`-th certificate of the chain, borrowed; NULL out of range.
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_chain_get(r: *const psm_smime_result, i: usize) -> *const psm_cert {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { r.as_ref() }.and_then(|r| r.chain.get(i)).map_or(std::ptr::null(), |c| c as *const psm_cert)
    })
}

/// The signing time the signer claims (unix seconds), 0 if absent.
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_signing_time(r: *const psm_smime_result) -> i64 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { r.as_ref() }.map_or(0, |r| r.info.signing_time))
}

/// 1 if the message was signed, else 0.
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_is_signed(r: *const psm_smime_result) -> i32 {
    // SAFETY: per the contract.
    boundary_value(0, || i32::from(unsafe { r.as_ref() }.is_some_and(|r| r.info.signed)))
}

/// 1 if the message was encrypted, else 0.
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_is_encrypted(r: *const psm_smime_result) -> i32 {
    // SAFETY: per the contract.
    boundary_value(0, || i32::from(unsafe { r.as_ref() }.is_some_and(|r| r.info.encrypted)))
}

/// The signature's digest algorithm ("sha256", ...), "" if unsigned.
/// Valid until the result is freed.
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_digest(r: *const psm_smime_result) -> *const c_char {
    // SAFETY: per the contract.
    boundary_value(c"".as_ptr(), || unsafe { r.as_ref() }.map_or(c"".as_ptr(), |r| r.digest.as_ptr()))
}

/// How the message was encrypted ("AuthEnvelopedData" for AES-GCM,
/// "EnvelopedData"), "" if it was not. Valid until the result is freed.
///
/// # Safety
/// `r` is NULL or a live result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_cipher(r: *const psm_smime_result) -> *const c_char {
    // SAFETY: per the contract.
    boundary_value(c"".as_ptr(), || unsafe { r.as_ref() }.map_or(c"".as_ptr(), |r| r.cipher.as_ptr()))
}

/// The (innermost) content, borrowed: valid until the result is freed.
/// Empty for a stream's result (the content went to `out_fd`).
///
/// # Safety
/// `r` is live; `data` and `len` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_content(
    r: *const psm_smime_result,
    data: *mut *const u8,
    len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(r, data, len);
        // SAFETY: non-NULL and live/writable per the contract.
        unsafe {
            *data = (*r).info.content.as_ptr();
            *len = (*r).info.content.len();
        }
        Code::PSM_OK
    })
}

/// Frees a result and the certificates it lends out. NULL is ignored.
///
/// # Safety
/// `r` is NULL or a result not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_result_free(r: *mut psm_smime_result) {
    boundary_value((), || {
        if !r.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(r) });
        }
    })
}

/// Shows psm's dialog about the message `result` came from (psm's own
/// verdict, not the application's: what is protected, who signed, why psm
/// trusts them). `result` must come from a verify or decrypt on this same
/// connection. Returns once the user closed the dialog (open its URL from
/// the `PSM_EVENT_DIALOG` event, `psm_set_event_handler`); `PSM_ERR_NO_UI`
/// for a connection made with `PSM_CONNECT_NO_DIALOGS`.
///
/// # Safety
/// `conn` and `result` are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_smime_show_info(conn: *mut psm_conn, result: *const psm_smime_result) -> Code {
    boundary(|| {
        check_null!(conn, result);
        // SAFETY: checked above; live per the contract.
        let (client, result) = unsafe { (&(*conn).client, &*result) };
        client.smime_show_info(result.info.result_id).map_or_else(fail, |()| Code::PSM_OK)
    })
}
