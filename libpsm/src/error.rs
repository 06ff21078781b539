//! Result codes shared by the wire protocol, the Rust client and the C ABI.
//!
//! `Code` is exported to C as `psm_result` (a `uint32_t` with named
//! constants). Values are part of the ABI and the wire protocol: never
//! renumber or reuse one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `psm_result`: `PSM_OK` (0) or the reason an operation failed.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u32", from = "u32")]
pub enum Code {
    PSM_OK = 0,
    PSM_ERR_NULL_PARAMETER = 1,
    PSM_ERR_PANIC = 2,
    PSM_ERR_INVALID_ARGUMENT = 3,
    PSM_ERR_BUFFER_TOO_SMALL = 4,
    PSM_ERR_IO = 5,
    PSM_ERR_PROTOCOL = 6,
    PSM_ERR_DISCONNECTED = 7,
    PSM_ERR_TIMEOUT = 8,
    PSM_ERR_DAEMON_START = 9,
    PSM_ERR_PERMISSION_DENIED = 10,
    PSM_ERR_POLICY = 11,
    PSM_ERR_NOT_FOUND = 12,
    PSM_ERR_EXISTS = 13,
    PSM_ERR_DECODE = 14,
    PSM_ERR_UNSUPPORTED = 15,
    PSM_ERR_BAD_PASSWORD = 16,
    PSM_ERR_LOGIN_REQUIRED = 17,
    PSM_ERR_NO_UI = 18,
    PSM_ERR_USER_CANCELLED = 19,
    PSM_ERR_DIALOG_TIMEOUT = 20,
    PSM_ERR_INTERNAL = 21,
    PSM_ERR_BUSY = 22,
    PSM_ERR_CERT_UNKNOWN_ISSUER = 100,
    PSM_ERR_CERT_EXPIRED = 101,
    PSM_ERR_CERT_NOT_YET_VALID = 102,
    PSM_ERR_CERT_NAME_MISMATCH = 103,
    PSM_ERR_CERT_REVOKED = 104,
    PSM_ERR_CERT_BAD_SIGNATURE = 105,
    PSM_ERR_CERT_WRONG_USAGE = 106,
    PSM_ERR_CERT_DISTRUSTED = 107,
    PSM_ERR_CERT_INVALID = 108,
    PSM_ERR_DNS = 200,
    PSM_ERR_CONNECT = 201,
    PSM_ERR_TLS_HANDSHAKE = 202,
    PSM_ERR_TLS_ALERT = 203,
    PSM_ERR_TLS_TRUNCATED = 204,
    PSM_ERR_SMIME_BAD_SIGNATURE = 300,
    PSM_ERR_SMIME_NO_KEY = 301,
    PSM_ERR_SMIME_CONTENT_ALTERED = 302,
    PSM_ERR_SMIME_ADDRESS_MISMATCH = 303,
    PSM_ERR_SMIME_NOT_SIGNED = 304,
}

macro_rules! codes_table {
    ($($name:ident => $text:literal,)*) => {
        impl Code {
            /// Every code, for the tables and tests that must cover them all.
            pub const ALL: &'static [Code] = &[$(Code::$name),*];

            /// A static, human readable description (`psm_result_str`).
            pub fn describe(self) -> &'static str {
                match self { $(Code::$name => $text,)* }
            }

            /// The same text NUL-terminated, for the C ABI.
            pub fn describe_c(self) -> &'static std::ffi::CStr {
                match self { $(Code::$name => {
                    const S: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
                        concat!($text, "\0").as_bytes()) { Ok(s) => s, Err(_) => panic!() };
                    S
                })* }
            }
        }

        impl From<u32> for Code {
            /// Codes this build does not know (a newer daemon) read as
            /// `PSM_ERR_INTERNAL` rather than failing the whole frame.
            fn from(v: u32) -> Code {
                $(if v == Code::$name as u32 { return Code::$name; })*
                Code::PSM_ERR_INTERNAL
            }
        }
    };
}

codes_table! {
    PSM_OK => "success",
    PSM_ERR_NULL_PARAMETER => "a required pointer argument was NULL",
    PSM_ERR_PANIC => "internal error: libpsm panicked (please report this)",
    PSM_ERR_INVALID_ARGUMENT => "invalid argument",
    PSM_ERR_BUFFER_TOO_SMALL => "output buffer too small",
    PSM_ERR_IO => "input/output error",
    PSM_ERR_PROTOCOL => "protocol error between libpsm and psmd",
    PSM_ERR_DISCONNECTED => "not connected to psmd (the daemon is not running or went away)",
    PSM_ERR_TIMEOUT => "timed out",
    PSM_ERR_DAEMON_START => "could not start psmd",
    PSM_ERR_PERMISSION_DENIED => "permission denied",
    PSM_ERR_POLICY => "refused by the security policy",
    PSM_ERR_NOT_FOUND => "not found",
    PSM_ERR_EXISTS => "already exists",
    PSM_ERR_DECODE => "could not decode the input",
    PSM_ERR_UNSUPPORTED => "not supported",
    PSM_ERR_BAD_PASSWORD => "wrong password",
    PSM_ERR_LOGIN_REQUIRED => "the token must be logged in first",
    PSM_ERR_NO_UI => "the user must be asked, but the application can show no dialog and has no prompt handler",
    PSM_ERR_USER_CANCELLED => "cancelled by the user",
    PSM_ERR_DIALOG_TIMEOUT => "the dialog was not answered in time",
    PSM_ERR_INTERNAL => "internal error in psmd",
    PSM_ERR_BUSY => "psmd is busy; try again",
    PSM_ERR_CERT_UNKNOWN_ISSUER => "certificate issuer is unknown or not trusted",
    PSM_ERR_CERT_EXPIRED => "certificate has expired",
    PSM_ERR_CERT_NOT_YET_VALID => "certificate is not yet valid",
    PSM_ERR_CERT_NAME_MISMATCH => "certificate does not match the name",
    PSM_ERR_CERT_REVOKED => "certificate has been revoked",
    PSM_ERR_CERT_BAD_SIGNATURE => "certificate signature is invalid",
    PSM_ERR_CERT_WRONG_USAGE => "certificate is not valid for this usage",
    PSM_ERR_CERT_DISTRUSTED => "certificate is explicitly distrusted",
    PSM_ERR_CERT_INVALID => "certificate is invalid",
    PSM_ERR_DNS => "host name lookup failed",
    PSM_ERR_CONNECT => "could not connect to the server",
    PSM_ERR_TLS_HANDSHAKE => "TLS handshake failed",
    PSM_ERR_TLS_ALERT => "the peer sent a TLS alert",
    PSM_ERR_TLS_TRUNCATED => "the peer closed the TLS connection without close_notify (the data may be truncated)",
    PSM_ERR_SMIME_BAD_SIGNATURE => "S/MIME signature is invalid",
    PSM_ERR_SMIME_NO_KEY => "no private key to decrypt this message",
    PSM_ERR_SMIME_CONTENT_ALTERED => "the signed content was altered after it was signed",
    PSM_ERR_SMIME_ADDRESS_MISMATCH => "the signer's certificate is not issued to the sender's address",
    PSM_ERR_SMIME_NOT_SIGNED => "the message is not signed",
}

impl From<Code> for u32 {
    fn from(c: Code) -> u32 {
        c as u32
    }
}

/// An error from psm: a code plus a message that says what failed and,
/// where it can, what to do about it. Messages never contain secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }

    pub fn io(what: &str, e: std::io::Error) -> Error {
        Error::new(Code::PSM_ERR_IO, format!("{what}: {e}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(self.code.describe())
        } else {
            write!(f, "{}: {}", self.code.describe(), self.message)
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_u32() {
        for &c in Code::ALL {
            assert_eq!(Code::from(c as u32), c);
            assert_eq!(c.describe_c().to_str().unwrap(), c.describe());
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut v: Vec<u32> = Code::ALL.iter().map(|&c| c as u32).collect();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), Code::ALL.len());
    }

    #[test]
    fn unknown_code_from_newer_daemon_reads_as_internal() {
        assert_eq!(Code::from(9999), Code::PSM_ERR_INTERNAL);
    }
}
