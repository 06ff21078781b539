//! Connections: connect, free, ping, status.

use super::{boundary, boundary_value, check_null, fail, fail_code, malloc_copy, str_arg};
use crate::client::{Client, ConnectFlags};
use crate::error::Code;
use std::ffi::c_char;
use std::path::Path;

/// A connection to psmd. Safe to use from several threads at once; free it
/// with `psm_conn_free` once no other call on it is in progress. A child
/// process must not use its parent's connection after fork(): connect anew.
pub struct psm_conn {
    pub(crate) client: Client,
}

/// `psm_connect` flag: fail with `PSM_ERR_DISCONNECTED` instead of starting psmd.
pub const PSM_CONNECT_NO_SPAWN: u32 = 1 << 0;
/// `psm_connect` flag: this application cannot open psmd's HTML dialogs.
pub const PSM_CONNECT_NO_DIALOGS: u32 = 1 << 1;
const KNOWN_FLAGS: u32 = PSM_CONNECT_NO_SPAWN | PSM_CONNECT_NO_DIALOGS;

unsafe fn connect_with(
    socket: Option<&Path>,
    app_name: *const c_char,
    flags: u32,
    out: *mut *mut psm_conn,
) -> Code {
    // SAFETY: the caller checked app_name for NULL.
    let app = match unsafe { str_arg(app_name, "app_name") } {
        Ok(a) => a,
        Err(c) => return c,
    };
    if flags & !KNOWN_FLAGS != 0 {
        return fail_code(
            Code::PSM_ERR_INVALID_ARGUMENT,
            &format!("unknown psm_connect flags {:#x}", flags & !KNOWN_FLAGS),
        );
    }
    let flags = ConnectFlags {
        no_spawn: flags & PSM_CONNECT_NO_SPAWN != 0,
        no_dialogs: flags & PSM_CONNECT_NO_DIALOGS != 0,
    };
    let result = match socket {
        Some(s) => Client::connect_to(s, app, flags),
        None => Client::connect(app, flags),
    };
    match result {
        Ok(client) => {
            // SAFETY: `out` is non-NULL (checked by the caller).
            unsafe { *out = Box::into_raw(Box::new(psm_conn { client })) };
            Code::PSM_OK
        }
        Err(e) => fail(e),
    }
}

/// Connects to the user's psmd, starting it if needed (unless
/// `PSM_CONNECT_NO_SPAWN`). `app_name` is shown to the user in prompts. On
/// success `*out` owns a new connection: free it with `psm_conn_free`.
///
/// # Safety
/// `app_name` is a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_connect(app_name: *const c_char, flags: u32, out: *mut *mut psm_conn) -> Code {
    boundary(|| {
        check_null!(app_name, out);
        // SAFETY: checked above.
        unsafe { connect_with(None, app_name, flags, out) }
    })
}

/// Like `psm_connect`, to the daemon at `socket_path` (started there if needed).
///
/// # Safety
/// `socket_path` and `app_name` are NUL-terminated strings; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_connect_to(
    socket_path: *const c_char,
    app_name: *const c_char,
    flags: u32,
    out: *mut *mut psm_conn,
) -> Code {
    boundary(|| {
        check_null!(socket_path, app_name, out);
        // SAFETY: checked above.
        let path = match unsafe { str_arg(socket_path, "socket_path") } {
            Ok(p) => Path::new(p),
            Err(c) => return c,
        };
        // SAFETY: checked above.
        unsafe { connect_with(Some(path), app_name, flags, out) }
    })
}

/// Frees the connection handle. The connection to psmd closes once the
/// handle and every stream opened on it are freed (an unfinished stream keeps
/// working until then). NULL is ignored.
///
/// # Safety
/// `conn` is NULL or from `psm_connect`, not yet freed, and no other call on
/// it is in progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_conn_free(conn: *mut psm_conn) {
    boundary_value((), || {
        if !conn.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(conn) });
        }
    })
}

/// A descriptor to select()/poll() for reading: readable when
/// `psm_next_event` may return an event (or report that psmd went away).
/// Owned by the connection: do not read from or close it. -1 if `conn` is NULL.
///
/// # Safety
/// `conn` is NULL or a live connection.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_conn_fd(conn: *const psm_conn) -> i32 {
    boundary_value(-1, || {
        // SAFETY: per the contract.
        unsafe { conn.as_ref() }.map_or(-1, |c| c.client.event_fd())
    })
}

/// Round trip to psmd.
///
/// # Safety
/// `conn` is NULL or a live connection.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ping(conn: *mut psm_conn) -> Code {
    boundary(|| {
        check_null!(conn);
        // SAFETY: non-NULL and live per the contract.
        let conn = unsafe { &*conn };
        conn.client.ping().map_or_else(fail, |()| Code::PSM_OK)
    })
}

/// The daemon's status as a JSON object (version, pid, uptime_secs, sessions,
/// channels, requests_served, ...). `*json_out` is a NUL-terminated string
/// the caller frees with `psm_free`.
///
/// # Safety
/// `conn` is NULL or a live connection; `json_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_status_json(conn: *mut psm_conn, json_out: *mut *mut c_char) -> Code {
    boundary(|| {
        check_null!(conn, json_out);
        // SAFETY: non-NULL and live per the contract.
        let conn = unsafe { &*conn };
        match conn.client.status_json() {
            Ok(json) => match malloc_copy(json.as_bytes(), true) {
                Some(p) => {
                    // SAFETY: checked writable above.
                    unsafe { *json_out = p.cast() };
                    Code::PSM_OK
                }
                None => fail_code(Code::PSM_ERR_INTERNAL, "out of memory"),
            },
            Err(e) => fail(e),
        }
    })
}
