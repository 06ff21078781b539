//! OpenSSL private keys whose private operations run on a PKCS#11 token,
//! for the OpenSSL code that takes a `PKey<Private>` (CMS signing and
//! decryption). As in libp11's engine, the key holds only the
//! certificate's public key and a method of ours: OpenSSL 3 treats an RSA
//! or EC_KEY whose method is not its default one as a foreign legacy key
//! (`ossl_rsa_is_foreign`, `ossl_ec_key_is_foreign`) and sends every
//! private operation to that method, which asks the token through its
//! module's thread, with the module's timeout. The key never leaves the
//! token; public operations stay in OpenSSL.
//!
//! The module and token key a callback needs hang off the OpenSSL key as
//! ex_data, so they live exactly as long as it. A callback can only tell
//! OpenSSL "failed"; why is kept per thread for [`take_error`].

#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_long, c_uchar, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Arc, OnceLock};

use foreign_types::ForeignType;
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::error::ErrorStack;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::X509;
use openssl_sys::{
    BIGNUM, BN_CTX, CRYPTO_EX_DATA, EC_KEY, EC_POINT, ECDSA_SIG, RSA, RSA_METHOD, RSA_NO_PADDING,
    RSA_PKCS1_PADDING,
};
use psm::{Code, Error};
use zeroize::Zeroizing;

use super::{KeyKind, Module, RsaDecrypt, TokenKey, sign};

enum EC_KEY_METHOD {}

/// `CRYPTO_EX_INDEX_EC_KEY` and `CRYPTO_EX_INDEX_RSA` (openssl/crypto.h).
const CRYPTO_EX_INDEX_EC_KEY: c_int = 8;
const CRYPTO_EX_INDEX_RSA: c_int = 9;

type RsaPrivateOp = unsafe extern "C" fn(
    flen: c_int,
    from: *const c_uchar,
    to: *mut c_uchar,
    rsa: *mut RSA,
    padding: c_int,
) -> c_int;
type EcSign = unsafe extern "C" fn(
    type_: c_int,
    dgst: *const c_uchar,
    dlen: c_int,
    sig: *mut c_uchar,
    siglen: *mut c_uint,
    kinv: *const BIGNUM,
    r: *const BIGNUM,
    eckey: *mut EC_KEY,
) -> c_int;
type EcSignSetup = unsafe extern "C" fn(
    eckey: *mut EC_KEY,
    ctx: *mut BN_CTX,
    kinvp: *mut *mut BIGNUM,
    rp: *mut *mut BIGNUM,
) -> c_int;
type EcSignSig = unsafe extern "C" fn(
    dgst: *const c_uchar,
    dlen: c_int,
    kinv: *const BIGNUM,
    r: *const BIGNUM,
    eckey: *mut EC_KEY,
) -> *mut ECDSA_SIG;
type EcComputeKey = unsafe extern "C" fn(
    psec: *mut *mut c_uchar,
    pseclen: *mut usize,
    pub_key: *const EC_POINT,
    ecdh: *const EC_KEY,
) -> c_int;

unsafe extern "C" {
    fn RSA_PKCS1_OpenSSL() -> *const RSA_METHOD;
    fn RSA_meth_dup(meth: *const RSA_METHOD) -> *mut RSA_METHOD;
    fn RSA_meth_free(meth: *mut RSA_METHOD);
    fn RSA_meth_set1_name(meth: *mut RSA_METHOD, name: *const c_char) -> c_int;
    fn RSA_meth_set_priv_enc(meth: *mut RSA_METHOD, f: Option<RsaPrivateOp>) -> c_int;
    fn RSA_meth_set_priv_dec(meth: *mut RSA_METHOD, f: Option<RsaPrivateOp>) -> c_int;
    fn RSA_set_method(rsa: *mut RSA, meth: *const RSA_METHOD) -> c_int;
    fn RSA_set_ex_data(rsa: *mut RSA, idx: c_int, arg: *mut c_void) -> c_int;
    fn RSA_get_ex_data(rsa: *const RSA, idx: c_int) -> *mut c_void;
    fn RSAPublicKey_dup(rsa: *const RSA) -> *mut RSA;
    fn EC_KEY_OpenSSL() -> *const EC_KEY_METHOD;
    fn EC_KEY_METHOD_new(meth: *const EC_KEY_METHOD) -> *mut EC_KEY_METHOD;
    fn EC_KEY_METHOD_set_sign(
        meth: *mut EC_KEY_METHOD,
        sign: Option<EcSign>,
        sign_setup: Option<EcSignSetup>,
        sign_sig: Option<EcSignSig>,
    );
    fn EC_KEY_METHOD_set_compute_key(meth: *mut EC_KEY_METHOD, ckey: Option<EcComputeKey>);
    fn EC_KEY_set_method(key: *mut EC_KEY, meth: *const EC_KEY_METHOD) -> c_int;
    fn EC_KEY_set_ex_data(key: *mut EC_KEY, idx: c_int, arg: *mut c_void) -> c_int;
    fn EC_KEY_get_ex_data(key: *const EC_KEY, idx: c_int) -> *mut c_void;
    fn ECDSA_size(key: *const EC_KEY) -> c_int;
}

/// What a callback needs: the module to ask and the key on its token.
#[derive(Clone)]
struct Context {
    module: Arc<Module>,
    key: TokenKey,
}

/// A method table of ours and the ex_data index its keys keep their
/// [`Context`] under; made once, never changed or freed.
struct Method<M> {
    table: *mut M,
    index: c_int,
}

// SAFETY: the table is filled in before it is shared and only read after
// that, by OpenSSL, from any thread; the index is a plain number.
unsafe impl<M> Send for Method<M> {}
// SAFETY: as above.
unsafe impl<M> Sync for Method<M> {}

thread_local! {
    static LAST_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// Why the last private operation with a token key on this thread failed,
/// if it did: `PSM_ERR_LOGIN_REQUIRED`, a module that hung
/// (`PSM_ERR_TIMEOUT`), a token that refused, where OpenSSL only reports
/// a generic failure. Taking it clears it.
pub fn take_error() -> Option<Error> {
    LAST_ERROR.try_with(|e| e.borrow_mut().take()).ok().flatten()
}

/// An OpenSSL private key for `key`, whose private operations run on its
/// token through `module`; `cert_der` is the key's certificate, which
/// gives the public key. The key's type (RSA or EC) must be the
/// certificate's.
pub fn token_pkey(module: Arc<Module>, key: TokenKey, cert_der: &[u8]) -> Result<PKey<Private>, Error> {
    let cert = X509::from_der(cert_der).map_err(|e| {
        Error::new(Code::PSM_ERR_DECODE, format!("the token key's certificate is not DER X.509: {e}"))
    })?;
    let public = cert.public_key().map_err(|e| openssl_error("read the certificate's public key", e))?;
    let context = Box::new(Context { module, key });
    // The method is set before the key goes into an EVP_PKEY, which is when
    // OpenSSL decides that the key is foreign.
    match (context.key.kind, public.id()) {
        (KeyKind::Rsa, Id::RSA) => {
            let method = rsa_method()?;
            let public = public.rsa().map_err(|e| openssl_error("read the certificate's RSA key", e))?;
            // SAFETY: `public` is a live RSA; the copy (n and e only) is new.
            let copy = unsafe { RSAPublicKey_dup(public.as_ptr()) };
            let rsa: Rsa<Private> = adopt(copy, "RSA", context, |rsa, ctx| {
                // SAFETY: `rsa` is live; the method lives as long as the process.
                unsafe {
                    RSA_set_method(rsa, method.table) == 1 && RSA_set_ex_data(rsa, method.index, ctx) == 1
                }
            })?;
            PKey::from_rsa(rsa).map_err(|e| openssl_error("make an RSA key", e))
        }
        (KeyKind::Ec, Id::EC) => {
            let method = ec_method()?;
            let public = public.ec_key().map_err(|e| openssl_error("read the certificate's EC key", e))?;
            // SAFETY: `public` is a live EC_KEY; the copy is new.
            let copy = unsafe { openssl_sys::EC_KEY_dup(public.as_ptr()) };
            let ec: EcKey<Private> = adopt(copy, "EC", context, |ec, ctx| {
                // SAFETY: `ec` is live; the method lives as long as the process.
                unsafe {
                    EC_KEY_set_method(ec, method.table) == 1 && EC_KEY_set_ex_data(ec, method.index, ctx) == 1
                }
            })?;
            PKey::from_ec_key(ec).map_err(|e| openssl_error("make an EC key", e))
        }
        (kind, id) => Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("the token key is {kind:?} but its certificate's key is {id:?}"),
        )),
    }
}

/// Takes `copy`, a new key nobody else holds (null if OpenSSL could not
/// make it), and hands it `context` with `set`, which gives the key our
/// method and stores the context as its ex_data; from then on the key's
/// free callback owns the context. If `set` fails, both are dropped here.
fn adopt<K: ForeignType>(
    copy: *mut K::CType,
    kind: &str,
    context: Box<Context>,
    set: impl FnOnce(*mut K::CType, *mut c_void) -> bool,
) -> Result<K, Error> {
    if copy.is_null() {
        return Err(openssl_error(&format!("copy the certificate's {kind} key"), ErrorStack::get()));
    }
    // SAFETY: `copy` is new and ours; `K` frees it from here.
    let key = unsafe { K::from_ptr(copy) };
    let raw = Box::into_raw(context);
    if set(key.as_ptr(), raw.cast()) {
        return Ok(key);
    }
    // SAFETY: `raw` came from Box::into_raw above and the key did not take it.
    drop(unsafe { Box::from_raw(raw) });
    Err(openssl_error(&format!("give an {kind} key the token method"), ErrorStack::get()))
}

fn openssl_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(Code::PSM_ERR_INTERNAL, format!("OpenSSL cannot {what}: {e}"))
}

/// The method in `cell`, made with `make` (null if OpenSSL cannot) the
/// first time, with an ex_data index in `class`.
fn method<M>(
    cell: &'static OnceLock<Option<Method<M>>>,
    class: c_int,
    kind: &str,
    make: impl FnOnce() -> *mut M,
) -> Result<&'static Method<M>, Error> {
    let method = cell.get_or_init(|| {
        let index = new_index(class)?;
        let table = make();
        (!table.is_null()).then_some(Method { table, index })
    });
    method
        .as_ref()
        .ok_or_else(|| openssl_error(&format!("make the {kind} method for token keys"), ErrorStack::get()))
}

fn rsa_method() -> Result<&'static Method<RSA_METHOD>, Error> {
    static RSA_TOKEN: OnceLock<Option<Method<RSA_METHOD>>> = OnceLock::new();
    // SAFETY: the default method is static; the copy is ours and is filled
    // in here, before anyone else sees it. Everything not set (public
    // operations, key generation) stays OpenSSL's.
    method(&RSA_TOKEN, CRYPTO_EX_INDEX_RSA, "RSA", || unsafe {
        let table = RSA_meth_dup(RSA_PKCS1_OpenSSL());
        let ok = !table.is_null()
            && RSA_meth_set1_name(table, c"psm PKCS#11 token RSA".as_ptr()) == 1
            && RSA_meth_set_priv_enc(table, Some(rsa_private::<false>)) == 1
            && RSA_meth_set_priv_dec(table, Some(rsa_private::<true>)) == 1;
        if ok {
            table
        } else {
            RSA_meth_free(table);
            ptr::null_mut()
        }
    })
}

fn ec_method() -> Result<&'static Method<EC_KEY_METHOD>, Error> {
    static EC_TOKEN: OnceLock<Option<Method<EC_KEY_METHOD>>> = OnceLock::new();
    // SAFETY: as for RSA. No sign_setup: the token picks its own nonce, so
    // there is nothing to set up ahead (OpenSSL then refuses
    // ECDSA_sign_setup cleanly).
    method(&EC_TOKEN, CRYPTO_EX_INDEX_EC_KEY, "EC", || unsafe {
        let table = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
        if !table.is_null() {
            EC_KEY_METHOD_set_sign(table, Some(ec_sign), None, Some(ec_sign_sig));
            EC_KEY_METHOD_set_compute_key(table, Some(ec_compute_key));
        }
        table
    })
}

fn new_index(class: c_int) -> Option<c_int> {
    // SAFETY: registers two callbacks that live as long as the process;
    // argl and argp are unused.
    let index = unsafe {
        openssl_sys::CRYPTO_get_ex_new_index(
            class,
            0,
            ptr::null_mut(),
            None,
            Some(dup_context),
            Some(free_context),
        )
    };
    (index >= 0).then_some(index)
}

/// Called by OpenSSL when a key with our index is freed (for every such
/// key, with a null `ptr` for keys that are not ours).
unsafe extern "C" fn free_context(
    _parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: every non-null value under our index is a Box<Context> from
    // `adopt` or `dup_context`, and OpenSSL frees a key's ex_data once.
    let context = unsafe { Box::from_raw(ptr.cast::<Context>()) };
    // Dropping the last handle on a module shuts its thread down; nothing
    // it does may unwind into OpenSSL.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(context)));
}

/// Called by OpenSSL when a key of ours is copied (`EC_KEY_copy`): the copy
/// gets a context of its own, or the two keys would free one box twice.
unsafe extern "C" fn dup_context(
    _to: *mut CRYPTO_EX_DATA,
    _from: *const CRYPTO_EX_DATA,
    from_d: *mut *mut c_void,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) -> c_int {
    // SAFETY: `from_d` points at the value OpenSSL is about to store in the
    // copy, which is the original key's Box<Context> (or null); the
    // original stays alive during the copy.
    unsafe {
        if from_d.is_null() || (*from_d).is_null() {
            return 1;
        }
        let original = &*(*from_d).cast::<Context>();
        match catch_unwind(AssertUnwindSafe(|| Box::new(original.clone()))) {
            Ok(copy) => {
                *from_d = Box::into_raw(copy).cast();
                1
            }
            Err(_) => {
                *from_d = ptr::null_mut();
                0
            }
        }
    }
}

/// Runs a callback's body: no panic crosses into OpenSSL, and an error is
/// kept for [`take_error`] while OpenSSL gets `failed`.
fn guarded<T>(failed: T, body: impl FnOnce() -> Result<T, Error>) -> T {
    let _ = LAST_ERROR.try_with(|e| e.borrow_mut().take());
    let result = catch_unwind(AssertUnwindSafe(body))
        .unwrap_or_else(|_| Err(Error::new(Code::PSM_ERR_INTERNAL, "a token key operation panicked")));
    match result {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(code = ?e.code, "token key operation failed: {}", e.message);
            let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(e));
            failed
        }
    }
}

/// The context a key of ours carries under `index`.
fn context(ptr: *mut c_void) -> Result<Context, Error> {
    if ptr.is_null() {
        return Err(Error::new(
            Code::PSM_ERR_INTERNAL,
            "an OpenSSL key with the token method has no token key",
        ));
    }
    // SAFETY: a non-null value under our index is a Box<Context>, alive as
    // long as the key OpenSSL is calling us with.
    Ok(unsafe { &*ptr.cast::<Context>() }.clone())
}

/// The `len` bytes OpenSSL passes at `data`.
///
/// # Safety
/// `data` must point at `len` readable bytes that outlive the slice.
unsafe fn input<'a>(data: *const c_uchar, len: c_int) -> Result<&'a [u8], Error> {
    match usize::try_from(len) {
        Ok(0) => Ok(&[]),
        // SAFETY: the caller's promise.
        Ok(len) if !data.is_null() => Ok(unsafe { std::slice::from_raw_parts(data, len) }),
        _ => Err(Error::new(Code::PSM_ERR_INTERNAL, "OpenSSL passed no input to a token key operation")),
    }
}

/// Copies `data` to OpenSSL's buffer `to` of `room` bytes; its length, as
/// the callback returns it.
///
/// # Safety
/// `to` must point at `room` writable bytes.
unsafe fn output(data: &[u8], to: *mut c_uchar, room: usize) -> Result<c_int, Error> {
    if data.len() > room || to.is_null() {
        return Err(Error::new(
            Code::PSM_ERR_INTERNAL,
            format!("the token returned {} bytes where OpenSSL has room for {room}", data.len()),
        ));
    }
    // SAFETY: the caller's promise, and data.len() <= room.
    unsafe { ptr::copy_nonoverlapping(data.as_ptr(), to, data.len()) };
    c_int::try_from(data.len()).map_err(|_| Error::new(Code::PSM_ERR_INTERNAL, "token result too long"))
}

/// `data` with leading zeros to `size` bytes: the form of a raw RSA result,
/// which a token may return without them.
fn left_padded(data: &[u8], size: usize) -> Zeroizing<Vec<u8>> {
    let mut block = Zeroizing::new(vec![0; size.max(data.len())]);
    let start = block.len() - data.len();
    block[start..].copy_from_slice(data);
    block
}

/// The RSA key's context and its modulus length.
///
/// # Safety
/// `rsa` must be a live RSA key OpenSSL is calling our method with.
unsafe fn rsa_context(rsa: *mut RSA) -> Result<(Context, usize), Error> {
    let index = rsa_method()?.index;
    // SAFETY: the caller's promise.
    let (ptr, size) = unsafe { (RSA_get_ex_data(rsa, index), openssl_sys::RSA_size(rsa)) };
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| Error::new(Code::PSM_ERR_INTERNAL, "a token RSA key without a modulus"))?;
    Ok((context(ptr)?, size))
}

/// `RSA_private_encrypt` (`DECRYPT` false): a PKCS#1 v1.5 signature over
/// the DigestInfo OpenSSL built, or the raw private operation over a block
/// it padded (PSS). `RSA_private_decrypt` (`DECRYPT` true): PKCS#1 v1.5
/// decryption, or the raw private operation whose result OpenSSL decodes
/// itself (OAEP).
unsafe extern "C" fn rsa_private<const DECRYPT: bool>(
    flen: c_int,
    from: *const c_uchar,
    to: *mut c_uchar,
    rsa: *mut RSA,
    padding: c_int,
) -> c_int {
    guarded(-1, || {
        // SAFETY: OpenSSL passes `flen` bytes at `from`, an output buffer
        // of RSA_size(rsa) bytes at `to` and the key it works with.
        let (data, (ctx, size)) = unsafe { (input(from, flen)?, rsa_context(rsa)?) };
        let (module, key) = (&ctx.module, &ctx.key);
        let result = match (DECRYPT, padding) {
            (false, RSA_PKCS1_PADDING) => Zeroizing::new(module.sign_rsa_pkcs1_raw(key, data)?),
            (false, RSA_NO_PADDING) => Zeroizing::new(module.sign_rsa_x509(key, data)?),
            (true, RSA_PKCS1_PADDING) => module.decrypt_rsa(key, RsaDecrypt::Pkcs1, data)?,
            (true, RSA_NO_PADDING) => module.decrypt_rsa(key, RsaDecrypt::Raw, data)?,
            (decrypt, other) => {
                return Err(Error::new(
                    Code::PSM_ERR_UNSUPPORTED,
                    format!(
                        "{} with an RSA token key in OpenSSL padding mode {other} is not supported",
                        if decrypt { "decryption" } else { "signing" }
                    ),
                ));
            }
        };
        // Signatures and raw results are one modulus long, the form OpenSSL
        // expects; a token may leave out their leading zeros.
        let result =
            if DECRYPT && padding == RSA_PKCS1_PADDING { result } else { left_padded(&result, size) };
        // SAFETY: as above.
        unsafe { output(&result, to, size) }
    })
}

/// Signs OpenSSL's digest on the token.
///
/// # Safety
/// `dgst` must point at `dlen` bytes and `eckey` be a live EC key OpenSSL
/// is calling our method with.
unsafe fn token_ecdsa(dgst: *const c_uchar, dlen: c_int, eckey: *const EC_KEY) -> Result<EcdsaSig, Error> {
    let index = ec_method()?.index;
    // SAFETY: the caller's promise.
    let (digest, ptr) = unsafe { (input(dgst, dlen)?, EC_KEY_get_ex_data(eckey, index)) };
    let ctx = context(ptr)?;
    let raw = ctx.module.sign_digest_ecdsa(&ctx.key, digest)?;
    sign::ecdsa_raw_to_sig(&raw)
}

/// `ECDSA_do_sign`: the signature as an `ECDSA_SIG` that OpenSSL frees.
unsafe extern "C" fn ec_sign_sig(
    dgst: *const c_uchar,
    dlen: c_int,
    _kinv: *const BIGNUM,
    _r: *const BIGNUM,
    eckey: *mut EC_KEY,
) -> *mut ECDSA_SIG {
    guarded(ptr::null_mut(), || {
        // SAFETY: OpenSSL passes `dlen` bytes at `dgst` and its key.
        let sig = unsafe { token_ecdsa(dgst, dlen, eckey)? };
        let raw = sig.as_ptr();
        std::mem::forget(sig);
        Ok(raw)
    })
}

/// `ECDSA_sign`: the DER signature in OpenSSL's buffer of
/// `ECDSA_size(eckey)` bytes. A precomputed `kinv` and `r` are ignored:
/// the token picks its own nonce.
unsafe extern "C" fn ec_sign(
    _type: c_int,
    dgst: *const c_uchar,
    dlen: c_int,
    sig: *mut c_uchar,
    siglen: *mut c_uint,
    _kinv: *const BIGNUM,
    _r: *const BIGNUM,
    eckey: *mut EC_KEY,
) -> c_int {
    guarded(0, || {
        // SAFETY: OpenSSL passes `dlen` bytes at `dgst`, a buffer of
        // ECDSA_size(eckey) bytes at `sig`, where the length goes, and
        // its key.
        unsafe {
            let der = token_ecdsa(dgst, dlen, eckey)?
                .to_der()
                .map_err(|e| openssl_error("encode an ECDSA signature", e))?;
            let room = usize::try_from(ECDSA_size(eckey)).unwrap_or(0);
            let len = c_uint::try_from(output(&der, sig, room)?).unwrap_or(0);
            if siglen.is_null() {
                return Err(Error::new(Code::PSM_ERR_INTERNAL, "OpenSSL gave no signature length"));
            }
            *siglen = len;
        }
        Ok(1)
    })
}

/// `ECDH_compute_key`'s method (CMS decryption to an EC certificate):
/// the token derives the shared secret (`CKM_ECDH1_DERIVE`) with the
/// peer's point; OpenSSL runs the KDF over it and frees it
/// (`OPENSSL_clear_free`), so it is handed over in OpenSSL's memory.
unsafe extern "C" fn ec_compute_key(
    psec: *mut *mut c_uchar,
    pseclen: *mut usize,
    pub_key: *const EC_POINT,
    ecdh: *const EC_KEY,
) -> c_int {
    guarded(0, || {
        if psec.is_null() || pseclen.is_null() || pub_key.is_null() {
            return Err(Error::new(Code::PSM_ERR_INTERNAL, "OpenSSL gave no ECDH output or peer"));
        }
        let index = ec_method()?.index;
        // SAFETY: OpenSSL passes its live key, whose group the peer's point
        // is on; point2oct writes at most the length it returned for NULL.
        let (ctx, point, len) = unsafe {
            let ctx = context(EC_KEY_get_ex_data(ecdh, index))?;
            let group = openssl_sys::EC_KEY_get0_group(ecdh);
            let uncompressed = openssl_sys::point_conversion_form_t::POINT_CONVERSION_UNCOMPRESSED;
            let n = openssl_sys::EC_POINT_point2oct(
                group,
                pub_key,
                uncompressed,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
            );
            let mut point = vec![0u8; n];
            if n == 0
                || openssl_sys::EC_POINT_point2oct(
                    group,
                    pub_key,
                    uncompressed,
                    point.as_mut_ptr(),
                    n,
                    ptr::null_mut(),
                ) != n
            {
                return Err(Error::new(Code::PSM_ERR_DECODE, "the peer's ECDH public key cannot be encoded"));
            }
            let bits = usize::try_from(openssl_sys::EC_GROUP_get_degree(group)).unwrap_or(0);
            (ctx, point, bits.div_ceil(8))
        };
        let secret = ctx.module.ecdh(&ctx.key, &point, len)?;
        // SAFETY: a fresh OpenSSL allocation of secret.len() bytes, written
        // whole, and both outputs checked non-NULL above.
        unsafe {
            let out = openssl_sys::CRYPTO_malloc(secret.len(), c"psm-ecdh".as_ptr(), 0).cast::<c_uchar>();
            if out.is_null() {
                return Err(Error::new(Code::PSM_ERR_INTERNAL, "out of memory for the ECDH secret"));
            }
            ptr::copy_nonoverlapping(secret.as_ptr(), out, secret.len());
            *psec = out;
            *pseclen = secret.len();
        }
        Ok(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_raw_rsa_result_is_left_padded_to_the_modulus_length() {
        assert_eq!(*left_padded(&[1, 2], 4), [0, 0, 1, 2]);
        assert_eq!(*left_padded(&[1, 2, 3, 4], 4), [1, 2, 3, 4]);
        // Too long stays too long, for `output` to refuse.
        let long = left_padded(&[1, 2, 3], 2);
        let mut buf = [0u8; 2];
        // SAFETY: `buf` has room for 2 bytes.
        let e = unsafe { output(&long, buf.as_mut_ptr(), buf.len()) }.unwrap_err();
        assert_eq!(e.code, Code::PSM_ERR_INTERNAL);
    }

    #[test]
    fn a_failing_callback_keeps_its_error_for_take_error_and_a_panic_is_contained() {
        let failed = guarded(-1, || Err(Error::new(Code::PSM_ERR_LOGIN_REQUIRED, "log in")));
        assert_eq!(failed, -1);
        assert_eq!(take_error().map(|e| e.code), Some(Code::PSM_ERR_LOGIN_REQUIRED));
        assert_eq!(take_error(), None);
        assert_eq!(guarded(0, || -> Result<c_int, Error> { panic!("in a callback") }), 0);
        assert_eq!(take_error().map(|e| e.code), Some(Code::PSM_ERR_INTERNAL));
        assert_eq!(guarded(0, || Ok(7)), 7);
        assert_eq!(take_error(), None);
    }
}
