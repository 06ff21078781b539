//! The C ABI (`include/psm.h`). Each function converts its arguments, calls
//! the Rust client and converts the result; logic lives in `client`.
//!
//! Rules every function here follows: no panic crosses the boundary
//! ([`boundary`]), every pointer is NULL-checked, outputs are written only on
//! `PSM_OK`, and each failure leaves its message in [`psm_last_error`].

#![allow(non_camel_case_types)]

pub mod cert;
pub mod core;
pub mod crypto;
pub mod event;
pub mod key;
pub mod prompt;
pub mod smime;
pub mod tls;
pub mod token;

use crate::error::{Code, Error};
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};

/// Major, minor and patch version of this libpsm (also `psm_version()`).
pub const PSM_VERSION_MAJOR: u32 = 0;
pub const PSM_VERSION_MINOR: u32 = 1;
pub const PSM_VERSION_PATCH: u32 = 0;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `e`'s message as this thread's last error and returns its code.
/// The message is the detail only: callers print it after `psm_result_str`.
fn fail(e: Error) -> Code {
    let text = if e.message.is_empty() { e.code.describe().to_string() } else { e.message };
    let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = text);
    e.code
}

fn fail_code(code: Code, message: &str) -> Code {
    fail(Error::new(code, message))
}

/// Runs `f` so that a panic becomes `PSM_ERR_PANIC` instead of unwinding
/// into C (undefined behaviour).
fn boundary(f: impl FnOnce() -> Code) -> Code {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(_) => fail_code(Code::PSM_ERR_PANIC, "libpsm panicked"),
    }
}

/// Like [`boundary`] for functions that return a plain value; `default` on panic.
fn boundary_value<T>(default: T, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(default)
}

/// Returns from the enclosing function with `PSM_ERR_NULL_PARAMETER` when
/// any of the pointers is NULL.
macro_rules! check_null {
    ($($p:expr),+) => {
        $(if $p.is_null() {
            return $crate::ffi::fail_code($crate::error::Code::PSM_ERR_NULL_PARAMETER,
                concat!("argument `", stringify!($p), "` is NULL"));
        })+
    };
}
pub(crate) use check_null;

/// Reads a C string argument as UTF-8.
///
/// # Safety
/// `p` is non-NULL and points to a NUL-terminated string.
unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Code> {
    // SAFETY: per the function contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| fail_code(Code::PSM_ERR_INVALID_ARGUMENT, &format!("{what} is not valid UTF-8")))
}

/// An input buffer argument: `len` bytes at `p`, where `p` may be NULL only
/// when `len` is 0 (an empty input, not a missing one).
///
/// # Safety
/// A non-NULL `p` is readable for `len` bytes.
unsafe fn input<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Code> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(fail_code(Code::PSM_ERR_NULL_PARAMETER, &format!("argument `{what}` is NULL")));
    }
    // SAFETY: per the function contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Copies `bytes` into a fresh `malloc` buffer for the caller (`psm_free`).
fn malloc_copy(bytes: &[u8], nul: bool) -> Option<*mut u8> {
    let size = bytes.len() + usize::from(nul);
    // SAFETY: malloc of at least one byte; checked for NULL below.
    let p = unsafe { libc::malloc(size.max(1)) }.cast::<u8>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` has room for `size` bytes and does not overlap `bytes`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        if nul {
            *p.add(bytes.len()) = 0;
        }
    }
    Some(p)
}

/// Returns the detail of the last failed psm call on the calling thread
/// (what failed and what to do, e.g. "socket directory /run/user/1000/psm is
/// mode 0755; expected 0700"), or "" if none failed yet. Print it after
/// `psm_result_str(result)`. Successful calls leave it unchanged. Valid
/// until the next failing psm call on this thread; never freed by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn psm_last_error() -> *const c_char {
    boundary_value(c"".as_ptr(), || LAST_ERROR.with(|l| l.borrow().as_ptr()))
}

/// Returns a static description of `result`; never NULL, never freed.
/// Unknown values get the text of `PSM_ERR_INTERNAL`.
#[unsafe(no_mangle)]
pub extern "C" fn psm_result_str(result: u32) -> *const c_char {
    boundary_value(c"".as_ptr(), || Code::from(result).describe_c().as_ptr())
}

/// Returns the library version ("MAJOR.MINOR.PATCH"); static, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn psm_version() -> *const c_char {
    const V: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("version contains NUL"),
    };
    V.as_ptr()
}

/// Frees a buffer or string that a psm function returned. NULL is ignored.
///
/// # Safety
/// `p` is NULL or a pointer psm handed to the caller that was not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_free(p: *mut std::ffi::c_void) {
    // SAFETY: every buffer psm returns comes from malloc (`malloc_copy`).
    unsafe { libc::free(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_macros_match_the_crate_version() {
        let v = format!("{PSM_VERSION_MAJOR}.{PSM_VERSION_MINOR}.{PSM_VERSION_PATCH}");
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        // SAFETY: psm_version returns a static NUL-terminated string.
        assert_eq!(unsafe { CStr::from_ptr(psm_version()) }.to_str().unwrap(), v);
    }

    #[test]
    fn a_panic_becomes_psm_err_panic() {
        let r = boundary(|| panic!("boom"));
        assert_eq!(r, Code::PSM_ERR_PANIC);
        // SAFETY: psm_last_error returns a valid thread-local string.
        let msg = unsafe { CStr::from_ptr(psm_last_error()) };
        assert!(msg.to_str().unwrap().contains("panicked"));
    }
}
