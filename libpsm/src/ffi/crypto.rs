//! Crypto primitives and data-channel streams: random bytes, digests.

use super::core::psm_conn;
use super::{boundary, boundary_value, check_null, fail, fail_code, input, malloc_copy};
use crate::client::Stream;
use crate::error::Code;
use crate::proto::HashAlg;

/// `psm_digest` algorithm: SHA-1, for legacy formats only.
pub const PSM_HASH_SHA1: u32 = 1;
pub const PSM_HASH_SHA256: u32 = 2;
pub const PSM_HASH_SHA384: u32 = 3;
pub const PSM_HASH_SHA512: u32 = 4;

fn hash_alg(alg: u32) -> Result<HashAlg, Code> {
    match alg {
        PSM_HASH_SHA1 => Ok(HashAlg::Sha1),
        PSM_HASH_SHA256 => Ok(HashAlg::Sha256),
        PSM_HASH_SHA384 => Ok(HashAlg::Sha384),
        PSM_HASH_SHA512 => Ok(HashAlg::Sha512),
        other => Err(fail_code(Code::PSM_ERR_INVALID_ARGUMENT, &format!("unknown hash algorithm {other}"))),
    }
}

/// A data channel for a stream operation. Free it with `psm_stream_free`.
pub struct psm_stream {
    stream: Option<Stream>,
}

/// Fills `buf[0..len]` with bytes from psmd's CSPRNG (the kernel's). `buf`
/// may be NULL when `len` is 0.
///
/// # Safety
/// `conn` is NULL or a live connection; `buf` is NULL or writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_random(conn: *mut psm_conn, buf: *mut u8, len: usize) -> Code {
    boundary(|| {
        check_null!(conn);
        if len > 0 {
            check_null!(buf);
        }
        // SAFETY: non-NULL and live per the contract.
        let conn = unsafe { &*conn };
        // Filled in full before `buf` is touched: outputs only on PSM_OK.
        let mut tmp = Vec::new();
        if tmp.try_reserve_exact(len).is_err() {
            return fail_code(Code::PSM_ERR_INVALID_ARGUMENT, &format!("cannot allocate {len} bytes"));
        }
        tmp.resize(len, 0);
        match conn.client.random(&mut tmp) {
            Ok(()) => {
                // SAFETY: `buf` is writable for `len` bytes.
                unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr(), buf, len) };
                Code::PSM_OK
            }
            Err(e) => fail(e),
        }
    })
}

/// Digest of `data[0..len]` into `out` (`out_cap` bytes); `*out_len` gets
/// the digest size. `data` may be NULL when `len` is 0. Inputs of any size
/// work (large ones are streamed). `PSM_ERR_BUFFER_TOO_SMALL` when `out_cap`
/// is less than the digest size (20, 32, 48 or 64).
///
/// # Safety
/// `conn` is NULL or live; `data` is readable for `len` bytes; `out` is
/// writable for `out_cap` bytes; `out_len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_digest(
    conn: *mut psm_conn,
    alg: u32,
    data: *const u8,
    len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(conn, out, out_len);
        // SAFETY: readable for `len` bytes per the contract.
        let input = match unsafe { input(data, len, "data") } {
            Ok(d) => d,
            Err(c) => return c,
        };
        let alg = match hash_alg(alg) {
            Ok(a) => a,
            Err(c) => return c,
        };
        if out_cap < alg.output_len() {
            return fail_code(
                Code::PSM_ERR_BUFFER_TOO_SMALL,
                &format!("digest needs {} bytes; out_cap is {out_cap}", alg.output_len()),
            );
        }
        // SAFETY: non-NULL and live per the contract.
        let conn = unsafe { &*conn };
        match conn.client.digest(alg, input) {
            Ok(d) => {
                // SAFETY: out has room for the digest (checked above); out_len writable.
                unsafe {
                    std::ptr::copy_nonoverlapping(d.as_ptr(), out, d.len());
                    *out_len = d.len();
                }
                Code::PSM_OK
            }
            Err(e) => fail(e),
        }
    })
}

/// Opens a streaming digest: write the input to `psm_stream_fd(*out)`, then
/// call `psm_stream_finish` for the digest. `*out` is freed with
/// `psm_stream_free`.
///
/// # Safety
/// `conn` is NULL or live; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_digest_stream(conn: *mut psm_conn, alg: u32, out: *mut *mut psm_stream) -> Code {
    boundary(|| {
        check_null!(conn, out);
        let alg = match hash_alg(alg) {
            Ok(a) => a,
            Err(c) => return c,
        };
        // SAFETY: non-NULL and live per the contract.
        let conn = unsafe { &*conn };
        match conn.client.digest_stream(alg) {
            Ok(stream) => {
                // SAFETY: checked writable above.
                unsafe { *out = Box::into_raw(Box::new(psm_stream { stream: Some(stream) })) };
                Code::PSM_OK
            }
            Err(e) => fail(e),
        }
    })
}

/// The stream's data channel: a blocking socket to write input to and read
/// output from (select()-able). Owned by the stream: do not close it. Write
/// with `send(fd, buf, len, MSG_NOSIGNAL)` (or ignore SIGPIPE) so that psmd
/// going away gives an EPIPE error instead of killing the application.
/// -1 if `s` is NULL or already finished.
///
/// # Safety
/// `s` is NULL or a live stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_stream_fd(s: *const psm_stream) -> i32 {
    boundary_value(-1, || {
        // SAFETY: per the contract.
        unsafe { s.as_ref() }.and_then(|s| s.stream.as_ref()).map_or(-1, Stream::fd)
    })
}

/// Ends the input (`shutdown(SHUT_WR)` if the application has not), waits
/// for psmd to finish and returns the operation's result: for a digest
/// stream, `*out` gets the digest (`psm_free` it) and `*out_len` its size.
/// The channel is closed afterwards; finishing twice is
/// `PSM_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `s` is NULL or a live stream; `out` and `out_len` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_stream_finish(
    s: *mut psm_stream,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> Code {
    boundary(|| {
        check_null!(s, out, out_len);
        // SAFETY: non-NULL and live per the contract.
        let Some(stream) = (unsafe { &mut *s }).stream.take() else {
            return fail_code(Code::PSM_ERR_INVALID_ARGUMENT, "stream already finished");
        };
        match stream.finish() {
            Ok(bytes) => match malloc_copy(&bytes, false) {
                Some(p) => {
                    // SAFETY: checked writable above.
                    unsafe {
                        *out = p;
                        *out_len = bytes.len();
                    }
                    Code::PSM_OK
                }
                None => fail_code(Code::PSM_ERR_INTERNAL, "out of memory"),
            },
            Err(e) => fail(e),
        }
    })
}

/// Frees a stream, abandoning its operation if it was not finished. NULL is
/// ignored.
///
/// # Safety
/// `s` is NULL or from a `psm_*_stream` function and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_stream_free(s: *mut psm_stream) {
    boundary_value((), || {
        if !s.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(s) });
        }
    })
}
