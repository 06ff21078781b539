//! PKCS#11 failures as `psm::Error`s, mapped once: the code says what the
//! application can do about it, the message names the module, the token
//! and the PKCS#11 function. PINs are never part of either.

use cryptoki::error::{Error as CkError, RvError};
use psm::{Code, Error};

/// Maps a failed call into the module `module` (for a token `token`, if the
/// call concerned one).
pub(super) fn map(e: CkError, module: &str, token: Option<&str>) -> Error {
    let on = match token {
        Some(label) => format!("token {label:?} (PKCS#11 module {module})"),
        None => format!("PKCS#11 module {module}"),
    };
    let (rv, function) = match e {
        CkError::Pkcs11(rv, function) => (rv, function),
        CkError::LibraryLoading(e) => {
            return Error::new(Code::PSM_ERR_IO, format!("cannot load PKCS#11 module {module}: {e}"));
        }
        CkError::MissingSymbol(s) => {
            return Error::new(
                Code::PSM_ERR_UNSUPPORTED,
                format!("{module} is not a PKCS#11 module: it has no {s} function"),
            );
        }
        CkError::NullFunctionPointer | CkError::NotSupported => {
            return Error::new(Code::PSM_ERR_UNSUPPORTED, format!("{on}: a function psm needs is missing"));
        }
        other => return Error::new(Code::PSM_ERR_IO, format!("{on} answered something unexpected: {other}")),
    };
    let (code, what) = match rv {
        RvError::PinIncorrect => (Code::PSM_ERR_BAD_PASSWORD, "wrong PIN".to_owned()),
        RvError::PinLenRange | RvError::PinInvalid => (
            Code::PSM_ERR_BAD_PASSWORD,
            "the PIN is too short, too long or has characters the token refuses".into(),
        ),
        RvError::PinLocked => (
            Code::PSM_ERR_PERMISSION_DENIED,
            "the PIN is locked after too many wrong tries; unblock it with the token's PUK or SO PIN \
             (the token's own tool), then try again"
                .into(),
        ),
        RvError::PinExpired => (
            Code::PSM_ERR_PERMISSION_DENIED,
            "the PIN has expired; change it with the token's own tool".into(),
        ),
        RvError::UserNotLoggedIn => (Code::PSM_ERR_LOGIN_REQUIRED, "log in to the token first".into()),
        RvError::TokenNotPresent | RvError::DeviceRemoved | RvError::SlotIdInvalid => {
            (Code::PSM_ERR_NOT_FOUND, "the token is not there (removed?)".into())
        }
        RvError::TokenNotRecognized => {
            (Code::PSM_ERR_UNSUPPORTED, "the module does not recognize the token".into())
        }
        RvError::MechanismInvalid
        | RvError::MechanismParamInvalid
        | RvError::KeyTypeInconsistent
        | RvError::KeyFunctionNotPermitted
        | RvError::FunctionNotSupported => {
            (Code::PSM_ERR_UNSUPPORTED, "the token cannot do this with this key".into())
        }
        RvError::DataLenRange | RvError::DataInvalid => {
            (Code::PSM_ERR_INVALID_ARGUMENT, "the token refused the data's length or form".into())
        }
        RvError::DeviceMemory | RvError::HostMemory => (Code::PSM_ERR_IO, "out of memory".into()),
        other => (Code::PSM_ERR_IO, format!("{other:?}")),
    };
    Error::new(code, format!("{on}: {function:?}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    #[test]
    fn a_wrong_pin_is_bad_password_and_a_locked_pin_says_what_to_do() {
        let e = map(CkError::Pkcs11(RvError::PinIncorrect, Function::Login), "/m.so", Some("card"));
        assert_eq!(e.code, Code::PSM_ERR_BAD_PASSWORD);
        assert!(e.message.contains("\"card\"") && e.message.contains("/m.so") && e.message.contains("Login"));
        let e = map(CkError::Pkcs11(RvError::PinLocked, Function::Login), "/m.so", Some("card"));
        assert_eq!(e.code, Code::PSM_ERR_PERMISSION_DENIED);
        assert!(e.message.contains("locked"), "{}", e.message);
        let e = map(CkError::Pkcs11(RvError::UserNotLoggedIn, Function::Sign), "/m.so", None);
        assert_eq!(e.code, Code::PSM_ERR_LOGIN_REQUIRED);
    }
}
