//! Prompts the application answers itself (a prompt handler, or
//! `PSM_EVENT_PROMPT` events) instead of psmd's HTML dialogs.

use super::core::psm_conn;
use super::{boundary, boundary_value, check_null, fail, str_arg};
use crate::client::WeakClient;
use crate::error::Code;
use crate::proto::{Prompt, PromptKind};
use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// `psm_prompt_kind`: a server's certificate failed verification. The
/// details say why; the choices are "once" (this connection only),
/// "always" (remembered for this host, port, certificate and errors) and
/// "reject".
pub const PSM_PROMPT_SERVER_TRUST: u32 = 1;
/// The server asks for a client certificate and several match; the
/// choices are the candidates' "sha256:<hex>".
pub const PSM_PROMPT_CLIENT_CERT: u32 = 2;
/// A password (the answer is the password; there are no choices).
pub const PSM_PROMPT_PASSWORD: u32 = 3;
/// A new password, typed twice in psm's dialog (the answer is the
/// password; the details give the policy's `min_length`).
pub const PSM_PROMPT_NEW_PASSWORD: u32 = 4;
/// Confirm a private key's use; the choices are "allow" and "deny".
pub const PSM_PROMPT_CONFIRM: u32 = 5;

/// A question from psmd for the application to answer with
/// `psm_prompt_answer` (or `psm_prompt_answer_id`). Borrowed: from a prompt
/// handler, valid during the call; from `psm_event_prompt`, until the event
/// is freed. Never freed by the caller.
pub struct psm_prompt {
    prompt: Prompt,
    message: CString,
    details_json: CString,
    choices: Vec<CString>,
    /// Set by `psm_prompt_answer`: the handler's caller then need not cancel.
    answered: AtomicBool,
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

impl psm_prompt {
    pub(super) fn new(prompt: Prompt) -> psm_prompt {
        psm_prompt {
            message: cstring(&prompt.message),
            details_json: cstring(&prompt.details_json),
            choices: prompt.choices.iter().map(|c| cstring(c)).collect(),
            answered: AtomicBool::new(false),
            prompt,
        }
    }
}

/// A prompt handler: called with each prompt psmd raises on the
/// connection. `prompt` is valid only during the call. Return `PSM_OK`
/// after answering it (`psm_prompt_answer`), or to answer later with
/// `psm_prompt_answer_id`; any other result without an answer cancels the
/// prompt.
pub type psm_prompt_cb =
    Option<unsafe extern "C" fn(userdata: *mut c_void, prompt: *const psm_prompt) -> Code>;

/// The callback as Rust calls it: the C side may return any `uint32_t`,
/// which is not necessarily a `Code` variant.
type RawPromptCb = unsafe extern "C" fn(userdata: *mut c_void, prompt: *const psm_prompt) -> u32;

/// The application's callback with its userdata, and the client to cancel
/// prompts it leaves unanswered.
struct CHandler {
    cb: RawPromptCb,
    userdata: *mut c_void,
    /// Weak: the connection holds this handler, which must not hold it open.
    client: WeakClient,
}

// SAFETY: the application promises (psm_set_prompt_handler's contract) that
// its callback may run on any thread with this userdata.
unsafe impl Send for CHandler {}
// SAFETY: as above; the handler is only ever called, never mutated.
unsafe impl Sync for CHandler {}

impl CHandler {
    fn call(&self, prompt: Prompt) {
        let prompt = psm_prompt::new(prompt);
        // SAFETY: the application registered `cb` for this `userdata`;
        // `prompt` outlives the call.
        let result = unsafe { (self.cb)(self.userdata, &prompt) };
        if result != Code::PSM_OK as u32 && !prompt.answered.load(Ordering::Acquire) {
            // Nobody will answer: the operation waiting on it must not hang.
            if let Some(client) = self.client.upgrade() {
                let _ = client.prompt_answer(prompt.prompt.id, None);
            }
        }
    }
}

/// Installs `cb` as the connection's prompt handler (replacing an earlier
/// one), or with `cb` NULL removes it. With a handler, psmd asks the
/// application instead of failing at once when an operation needs a
/// decision (an untrusted server certificate, which client certificate to
/// send, a password).
///
/// `cb` runs on whichever thread is waiting on psmd when the prompt comes,
/// usually the one inside the call that raised the question (often
/// `psm_ssl_connect`), so `userdata` must be usable there. It may call psm
/// functions on the connection, `psm_prompt_answer` included. It may also
/// return `PSM_OK` without answering, keep `psm_prompt_id(prompt)` and
/// answer later from any thread with `psm_prompt_answer_id`; the operation
/// waits until then. If it returns anything else without answering, libpsm
/// answers "cancel" for it (`PSM_ERR_USER_CANCELLED` for the operation).
/// Without a handler psmd shows its own HTML dialog (a `PSM_EVENT_DIALOG`
/// event, see `psm_set_event_handler`), or, for a connection made with
/// `PSM_CONNECT_NO_DIALOGS`, asks nothing: the operation fails with the
/// error that raised the question (`PSM_ERR_NO_UI` when nothing else
/// explains it), unless `psm_set_prompt_events` asked for prompts as
/// events. The policy may keep password questions out of applications'
/// hands (`token.app_password_prompts = false`): those always go to a
/// dialog.
///
/// # Safety
/// `conn` is live; `cb` is NULL or a function that may be called with
/// `userdata` from any thread until it is replaced or removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_set_prompt_handler(
    conn: *mut psm_conn,
    cb: psm_prompt_cb,
    userdata: *mut c_void,
) -> Code {
    boundary(|| {
        check_null!(conn);
        // SAFETY: non-NULL and live per the contract.
        let client = unsafe { &(*conn).client };
        let handler =
            cb.map(|cb| {
                // SAFETY: `Code` is `repr(u32)`: both signatures have the same ABI.
                let cb = unsafe {
                    std::mem::transmute::<
                        unsafe extern "C" fn(*mut c_void, *const psm_prompt) -> Code,
                        RawPromptCb,
                    >(cb)
                };
                let h = CHandler { cb, userdata, client: client.downgrade() };
                Arc::new(move |p: Prompt| h.call(p)) as Arc<dyn Fn(Prompt) + Send + Sync>
            });
        client.set_prompt_handler(handler).map_or_else(fail, |()| Code::PSM_OK)
    })
}

/// The prompt's kind (`PSM_PROMPT_*`); 0 if `prompt` is NULL.
///
/// # Safety
/// `prompt` is NULL or valid (see `psm_prompt`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_prompt_kind(prompt: *const psm_prompt) -> u32 {
    boundary_value(0, || {
        // SAFETY: per the contract.
        match unsafe { prompt.as_ref() }.map(|p| p.prompt.kind) {
            Some(PromptKind::ServerTrust) => PSM_PROMPT_SERVER_TRUST,
            Some(PromptKind::ClientCert) => PSM_PROMPT_CLIENT_CERT,
            Some(PromptKind::Password) => PSM_PROMPT_PASSWORD,
            Some(PromptKind::NewPassword) => PSM_PROMPT_NEW_PASSWORD,
            Some(PromptKind::Confirm) => PSM_PROMPT_CONFIRM,
            None => 0,
        }
    })
}

/// The prompt's id, for `psm_prompt_answer_id` (never 0); 0 if `prompt`
/// is NULL.
///
/// # Safety
/// `prompt` is NULL or valid (see `psm_prompt`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_prompt_id(prompt: *const psm_prompt) -> u64 {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { prompt.as_ref() }.map_or(0, |p| p.prompt.id))
}

/// One or two sentences for the user, in plain words. Valid as long as the
/// prompt; NULL if `prompt` is NULL.
///
/// # Safety
/// `prompt` is NULL or valid (see `psm_prompt`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_prompt_message(prompt: *const psm_prompt) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { prompt.as_ref() }.map_or(std::ptr::null(), |p| p.message.as_ptr())
    })
}

/// Everything the question is about, as a JSON object. For
/// `PSM_PROMPT_SERVER_TRUST`: "host", "port", "result" (the
/// `PSM_ERR_CERT_*` name), "errors", "detail", "sha256" and "chain" (sha256,
/// subject, issuer per certificate). Valid as long as the prompt; NULL if
/// `prompt` is NULL.
///
/// # Safety
/// `prompt` is NULL or valid (see `psm_prompt`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_prompt_details_json(prompt: *const psm_prompt) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { prompt.as_ref() }.map_or(std::ptr::null(), |p| p.details_json.as_ptr())
    })
}

/// The number of accepted answers (0 for a password, or if `prompt` is NULL).
///
/// # Safety
/// `prompt` is NULL or valid (see `psm_prompt`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_prompt_choice_count(prompt: *const psm_prompt) -> usize {
    // SAFETY: per the contract.
    boundary_value(0, || unsafe { prompt.as_ref() }.map_or(0, |p| p.choices.len()))
}

/// The `i`-th accepted answer; valid as long as the prompt. NULL if
/// `prompt` is NULL or `i` is out of range.
///
/// # Safety
/// `prompt` is NULL or valid (see `psm_prompt`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_prompt_choice(prompt: *const psm_prompt, i: usize) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { prompt.as_ref() }.and_then(|p| p.choices.get(i)).map_or(std::ptr::null(), |c| c.as_ptr())
    })
}

/// Answers `prompt` with one of its choices (or, for a password, the
/// password); `answer` NULL cancels (the waiting operation fails with
/// `PSM_ERR_USER_CANCELLED`). psmd refuses an answer that is not one of
/// the choices, and one for a prompt already answered or given up.
///
/// # Safety
/// `conn` is live and the connection the prompt came on; `prompt` is valid
/// (see `psm_prompt`); `answer` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_prompt_answer(
    conn: *mut psm_conn,
    prompt: *const psm_prompt,
    answer: *const c_char,
) -> Code {
    boundary(|| {
        check_null!(conn, prompt);
        // SAFETY: non-NULL and valid per the contract.
        let prompt = unsafe { &*prompt };
        // SAFETY: per the contract.
        let code = unsafe { answer_id(conn, prompt.prompt.id, answer) };
        if code == Code::PSM_OK {
            prompt.answered.store(true, Ordering::Release);
        }
        code
    })
}

/// With `enable` non-zero, prompts arrive as `PSM_EVENT_PROMPT` events
/// (`psm_next_event`, `psm_event_prompt`) instead of through a handler, for
/// an application that answers from its own event loop; any handler is
/// removed. The call that raised the question (say `psm_ssl_connect`)
/// waits for the answer, so answer from another thread, or open channels
/// from a thread that is not the one reading events. With `enable` zero,
/// operations that need the user fail at once (as without a handler).
///
/// # Safety
/// `conn` is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_set_prompt_events(conn: *mut psm_conn, enable: i32) -> Code {
    boundary(|| {
        check_null!(conn);
        // SAFETY: non-NULL and live per the contract.
        let client = unsafe { &(*conn).client };
        client.set_prompt_events(enable != 0).map_or_else(fail, |()| Code::PSM_OK)
    })
}

/// Answers the prompt `id` (`psm_prompt_id`), from any thread and after
/// the prompt itself is gone; otherwise as `psm_prompt_answer`.
///
/// # Safety
/// `conn` is live; `answer` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_prompt_answer_id(conn: *mut psm_conn, id: u64, answer: *const c_char) -> Code {
    boundary(|| {
        check_null!(conn);
        // SAFETY: per the contract.
        unsafe { answer_id(conn, id, answer) }
    })
}

/// # Safety
/// `conn` is non-NULL and live; `answer` is NULL or a NUL-terminated string.
unsafe fn answer_id(conn: *mut psm_conn, id: u64, answer: *const c_char) -> Code {
    let answer = if answer.is_null() {
        None
    } else {
        // SAFETY: non-NULL and NUL-terminated per the contract.
        match unsafe { str_arg(answer, "answer") } {
            Ok(a) => Some(a),
            Err(c) => return c,
        }
    };
    // SAFETY: per the contract.
    let client = unsafe { &(*conn).client };
    client.prompt_answer(id, answer).map_or_else(fail, |()| Code::PSM_OK)
}
