//! Events: dialogs to open, prompts to answer, status changes, daemon shutdown.

use super::core::psm_conn;
use super::prompt::psm_prompt;
use super::{boundary, boundary_value, check_null, fail, fail_code};
use crate::error::Code;
use crate::proto::Event;
use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

/// An event from psmd. Free it with `psm_event_free`.
pub struct psm_event {
    event: Event,
    url: Option<CString>,
    prompt: Option<psm_prompt>,
}

impl psm_event {
    fn new(event: Event) -> psm_event {
        let url = match &event {
            Event::Dialog { url, .. } => CString::new(url.as_str()).ok(),
            _ => None,
        };
        let prompt = match &event {
            Event::Prompt(p) => Some(psm_prompt::new(p.clone())),
            _ => None,
        };
        psm_event { event, url, prompt }
    }
}

/// `psm_event_kind`: open `psm_event_dialog_url` in an HTML window.
pub const PSM_EVENT_DIALOG: u32 = 1;
/// `psm_event_kind`: a dialog finished; close its window.
pub const PSM_EVENT_DIALOG_DONE: u32 = 2;
/// `psm_event_kind`: a prompt for the application's own prompt handler.
pub const PSM_EVENT_PROMPT: u32 = 3;
/// `psm_event_kind`: certificates or keys in the store changed.
pub const PSM_EVENT_STORE_CHANGED: u32 = 4;
/// `psm_event_kind`: a token was logged in or out, inserted or removed.
pub const PSM_EVENT_TOKEN_CHANGED: u32 = 5;
/// `psm_event_kind`: the administrator's policy changed.
pub const PSM_EVENT_POLICY_CHANGED: u32 = 6;
/// `psm_event_kind`: psmd is shutting down; the connection will close.
pub const PSM_EVENT_SHUTDOWN: u32 = 7;

/// Waits up to `timeout_ms` (negative: no limit, 0: just look) for the next
/// event. Returns `PSM_ERR_TIMEOUT` when none came, `PSM_ERR_DISCONNECTED`
/// once psmd is gone. On success `*out` owns the event (`psm_event_free`).
///
/// # Safety
/// `conn` is NULL or a live connection; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_next_event(
    conn: *mut psm_conn,
    timeout_ms: i32,
    out: *mut *mut psm_event,
) -> Code {
    boundary(|| {
        check_null!(conn, out);
        // SAFETY: non-NULL and live per the contract.
        let conn = unsafe { &*conn };
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        match conn.client.next_event(timeout) {
            Ok(Some(event)) => {
                // SAFETY: checked writable above.
                unsafe { *out = Box::into_raw(Box::new(psm_event::new(event))) };
                Code::PSM_OK
            }
            Ok(None) => fail_code(Code::PSM_ERR_TIMEOUT, "no event arrived in time"),
            Err(e) => fail(e),
        }
    })
}

/// The event's kind (`PSM_EVENT_*`); 0 if `ev` is NULL.
///
/// # Safety
/// `ev` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_event_kind(ev: *const psm_event) -> u32 {
    boundary_value(0, || {
        // SAFETY: per the contract.
        match unsafe { ev.as_ref() }.map(|e| &e.event) {
            Some(Event::Dialog { .. }) => PSM_EVENT_DIALOG,
            Some(Event::DialogDone { .. }) => PSM_EVENT_DIALOG_DONE,
            Some(Event::Shutdown { .. }) => PSM_EVENT_SHUTDOWN,
            Some(Event::Prompt(_)) => PSM_EVENT_PROMPT,
            Some(Event::StoreChanged) => PSM_EVENT_STORE_CHANGED,
            Some(Event::TokenChanged) => PSM_EVENT_TOKEN_CHANGED,
            Some(Event::PolicyChanged) => PSM_EVENT_POLICY_CHANGED,
            None => 0,
        }
    })
}

/// The URL of a `PSM_EVENT_DIALOG` event, NULL for other kinds. Valid until
/// the event is freed.
///
/// # Safety
/// `ev` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_event_dialog_url(ev: *const psm_event) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { ev.as_ref() }.and_then(|e| e.url.as_ref()).map_or(std::ptr::null(), |u| u.as_ptr())
    })
}

/// The prompt of a `PSM_EVENT_PROMPT` event (answer it with
/// `psm_prompt_answer`), NULL for other kinds. Valid until the event is
/// freed. Prompts come as events only while no prompt handler is installed
/// (`psm_set_prompt_handler`).
///
/// # Safety
/// `ev` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_event_prompt(ev: *const psm_event) -> *const psm_prompt {
    boundary_value(std::ptr::null(), || {
        // SAFETY: per the contract.
        unsafe { ev.as_ref() }
            .and_then(|e| e.prompt.as_ref())
            .map_or(std::ptr::null(), |p| p as *const psm_prompt)
    })
}

/// The window size a `PSM_EVENT_DIALOG` asks for; 0 x 0 for other kinds.
/// Either output pointer may be NULL.
///
/// # Safety
/// `ev` is NULL or a live event; `w` and `h` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_event_dialog_size(ev: *const psm_event, w: *mut u32, h: *mut u32) {
    boundary_value((), || {
        // SAFETY: per the contract.
        let (width, height) = match unsafe { ev.as_ref() }.map(|e| &e.event) {
            Some(Event::Dialog { width, height, .. }) => (*width, *height),
            _ => (0, 0),
        };
        // SAFETY: each is NULL or writable per the contract.
        unsafe {
            if let Some(w) = w.as_mut() {
                *w = width;
            }
            if let Some(h) = h.as_mut() {
                *h = height;
            }
        }
    })
}

/// Frees an event and the URL or prompt it lends out. NULL is ignored.
///
/// # Safety
/// `ev` is NULL or from `psm_next_event` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_event_free(ev: *mut psm_event) {
    boundary_value((), || {
        if !ev.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(ev) });
        }
    })
}

/// An event handler: called with each event psmd sends on the connection
/// (other than prompts, while a prompt handler is installed). `ev` is valid
/// only during the call; do not free it.
pub type psm_event_cb = Option<unsafe extern "C" fn(userdata: *mut c_void, ev: *const psm_event)>;

struct CEventHandler {
    cb: unsafe extern "C" fn(*mut c_void, *const psm_event),
    userdata: *mut c_void,
}

// SAFETY: the application promises (psm_set_event_handler's contract) that
// its callback may run on any thread with this userdata.
unsafe impl Send for CEventHandler {}
// SAFETY: as above; the handler is only ever called, never mutated.
unsafe impl Sync for CEventHandler {}

impl CEventHandler {
    fn call(&self, e: Event) {
        let ev = psm_event::new(e);
        // SAFETY: the application registered `cb` for this `userdata`; `ev`
        // outlives the call.
        unsafe { (self.cb)(self.userdata, &ev) }
    }
}

/// Installs `cb` as the connection's event handler (replacing an earlier
/// one), or with `cb` NULL removes it. Events then go to `cb` instead of
/// waiting for `psm_next_event`.
///
/// `cb` runs on whichever thread is waiting on psmd when the event comes,
/// usually one blocked in the call that needs the user: a single-threaded
/// application blocked in `psm_ssl_connect` still learns that psmd shows a
/// dialog (`PSM_EVENT_DIALOG`: open `psm_event_dialog_url` in an HTML
/// window, e.g. `chromium --app=URL`) and when it ended
/// (`PSM_EVENT_DIALOG_DONE`). It should return quickly (start the browser,
/// do not wait for it); it may call psm functions.
///
/// # Safety
/// `conn` is live; `cb` is NULL or a function that may be called with
/// `userdata` from any thread until it is replaced or removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_set_event_handler(
    conn: *mut psm_conn,
    cb: psm_event_cb,
    userdata: *mut c_void,
) -> Code {
    boundary(|| {
        check_null!(conn);
        // SAFETY: non-NULL and live per the contract.
        let client = unsafe { &(*conn).client };
        let handler = cb.map(|cb| {
            let h = CEventHandler { cb, userdata };
            Arc::new(move |e: Event| h.call(e)) as Arc<dyn Fn(Event) + Send + Sync>
        });
        client.set_event_handler(handler);
        Code::PSM_OK
    })
}

/// The id of a `PSM_EVENT_DIALOG` or `PSM_EVENT_DIALOG_DONE` event (the
/// same for both ends of one dialog); 0 for other kinds.
///
/// # Safety
/// `ev` is NULL or a live event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_event_dialog_id(ev: *const psm_event) -> u64 {
    boundary_value(0, || {
        // SAFETY: per the contract.
        match unsafe { ev.as_ref() }.map(|e| &e.event) {
            Some(Event::Dialog { id, .. } | Event::DialogDone { id }) => *id,
            _ => 0,
        }
    })
}
