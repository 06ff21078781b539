//! TLS channels ("SSL wrap"): options, connect / wrap / accept / STARTTLS,
//! and what a channel can tell about its connection.

use super::cert::psm_cert;
use super::core::psm_conn;
use super::{boundary, boundary_value, check_null, fail, fail_code, malloc_copy, str_arg};
use crate::client::{Client, SslChannel};
use crate::error::Code;
use crate::proto::{SslOpts, TLS_1_2, TLS_1_3};
use std::ffi::c_char;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, OwnedFd};

/// `psm_ssl_opts_set_min_version`: TLS 1.2 (the default minimum).
pub const PSM_TLS_1_2: u16 = 0x0303;
/// `psm_ssl_opts_set_min_version`: TLS 1.3 only.
pub const PSM_TLS_1_3: u16 = 0x0304;
// Literals above so that cbindgen can write them; they are the wire numbers.
const _: () = assert!(PSM_TLS_1_2 == TLS_1_2 && PSM_TLS_1_3 == TLS_1_3);

/// The longest ALPN protocol name TLS can carry (a one-byte length).
const MAX_ALPN_NAME: usize = 255;

/// Options for a TLS channel: ALPN, client certificate, minimum version,
/// HTTP proxy, timeout. Create with `psm_ssl_opts_new`, free with
/// `psm_ssl_opts_free`. The functions that take options copy them: one
/// options object may serve many connections and be freed at any time.
/// Not for concurrent modification from several threads.
pub struct psm_ssl_opts {
    opts: SslOpts,
}

/// A TLS connection run by psmd: the application reads and writes
/// plaintext on `psm_ssl_fd`. Free it with `psm_ssl_free`. It keeps its
/// own reference to the connection to psmd, so it keeps working after
/// `psm_conn_free`; the functions that take both need the connection the
/// channel was opened on.
pub struct psm_ssl {
    channel: SslChannel,
    /// The session the channel belongs to: channel numbers mean nothing in
    /// another session.
    session_id: u64,
}

/// A C string argument that may be NULL ("none").
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn opt_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Code> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { str_arg(p, what) }.map(Some)
}

/// The options `opts` stands for: the defaults when NULL.
///
/// # Safety
/// `opts` is NULL or live.
unsafe fn opts_or_default(opts: *const psm_ssl_opts) -> SslOpts {
    // SAFETY: per the contract.
    unsafe { opts.as_ref() }.map(|o| o.opts.clone()).unwrap_or_default()
}

/// Stores a new channel in `*out`.
///
/// # Safety
/// `out` is writable.
unsafe fn ssl_out(client: &Client, result: crate::Result<SslChannel>, out: *mut *mut psm_ssl) -> Code {
    match result {
        Ok(channel) => {
            let ssl = psm_ssl { channel, session_id: client.session_id() };
            // SAFETY: writable per the contract.
            unsafe { *out = Box::into_raw(Box::new(ssl)) };
            Code::PSM_OK
        }
        Err(e) => fail(e),
    }
}

/// The client, after checking that `ssl` was opened on it.
///
/// # Safety
/// `conn` and `ssl` are non-NULL and live.
unsafe fn client_of<'a>(conn: *mut psm_conn, ssl: *const psm_ssl) -> Result<(&'a Client, &'a psm_ssl), Code> {
    // SAFETY: per the contract.
    let (client, ssl) = unsafe { (&(*conn).client, &*ssl) };
    if client.session_id() != ssl.session_id {
        return Err(fail_code(
            Code::PSM_ERR_INVALID_ARGUMENT,
            "the TLS channel belongs to another connection: pass the psm_conn it was opened on",
        ));
    }
    Ok((client, ssl))
}

/// A descriptor argument the caller keeps: lent to the client for the
/// duration of the call, never closed here.
fn lent_fd(fd: i32) -> Result<ManuallyDrop<OwnedFd>, Code> {
    // A descriptor that is not open must not reach sendmsg(): the kernel
    // would fail the whole frame and take the connection to psmd with it.
    // SAFETY: F_GETFD only queries the descriptor table.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(fail_code(Code::PSM_ERR_INVALID_ARGUMENT, &format!("{fd} is not an open descriptor")));
    }
    // SAFETY: `fd` is open; ManuallyDrop keeps it from being closed here.
    Ok(ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// New options with the defaults: TLS 1.2 and 1.3, no ALPN, a client
/// certificate only when the server asks (chosen by psmd or the user), no
/// proxy, a 30 s limit for connecting and the handshake. On success `*out`
/// owns them: free with `psm_ssl_opts_free`.
///
/// # Safety
/// `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_opts_new(out: *mut *mut psm_ssl_opts) -> Code {
    boundary(|| {
        check_null!(out);
        // SAFETY: checked writable above.
        unsafe { *out = Box::into_raw(Box::new(psm_ssl_opts { opts: SslOpts::default() })) };
        Code::PSM_OK
    })
}

/// Frees options made by `psm_ssl_opts_new`; channels opened with them are
/// not affected. NULL is ignored.
///
/// # Safety
/// `opts` is NULL or from `psm_ssl_opts_new` and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_opts_free(opts: *mut psm_ssl_opts) {
    boundary_value((), || {
        if !opts.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(opts) });
        }
    })
}

/// The ALPN protocols to offer, most preferred first (e.g. "h2",
/// "http/1.1"): `n` NUL-terminated names of 1 to 255 bytes. `n` 0 (with
/// `protocols` NULL or not) offers none. Replaces an earlier list; on an
/// error the options are unchanged.
///
/// # Safety
/// `opts` is live; `protocols` points to `n` NUL-terminated strings (may
/// be NULL when `n` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_opts_set_alpn(
    opts: *mut psm_ssl_opts,
    protocols: *const *const c_char,
    n: usize,
) -> Code {
    boundary(|| {
        check_null!(opts);
        if n > 0 {
            check_null!(protocols);
        }
        let mut alpn = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: `protocols` holds `n` pointers per the contract.
            let p = unsafe { *protocols.add(i) };
            check_null!(p);
            // SAFETY: non-NULL and NUL-terminated per the contract.
            let name = unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes();
            if name.is_empty() || name.len() > MAX_ALPN_NAME {
                return fail_code(
                    Code::PSM_ERR_INVALID_ARGUMENT,
                    &format!(
                        "ALPN protocol {i} is {} bytes long; it must be 1 to {MAX_ALPN_NAME}",
                        name.len()
                    ),
                );
            }
            alpn.push(serde_bytes::ByteBuf::from(name));
        }
        // SAFETY: non-NULL and live per the contract.
        unsafe { (*opts).opts.alpn = alpn };
        Code::PSM_OK
    })
}

/// The client certificate to present when the server asks for one: its
/// nickname or "sha256:<hex>" (its private key must be in psm's token).
/// NULL returns to the default: when the server asks, the one matching
/// certificate, or the user's choice among several.
///
/// # Safety
/// `opts` is live; `nickname_or_sha256` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_opts_set_client_cert(
    opts: *mut psm_ssl_opts,
    nickname_or_sha256: *const c_char,
) -> Code {
    boundary(|| {
        check_null!(opts);
        // SAFETY: per the contract.
        match unsafe { opt_str(nickname_or_sha256, "nickname_or_sha256") } {
            Ok(name) => {
                // SAFETY: non-NULL and live per the contract.
                unsafe { (*opts).opts.client_cert = name.map(str::to_string) };
                Code::PSM_OK
            }
            Err(c) => c,
        }
    })
}

/// The oldest TLS version to accept: `PSM_TLS_1_2` (the default) or
/// `PSM_TLS_1_3`. Anything else is `PSM_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `opts` is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_opts_set_min_version(opts: *mut psm_ssl_opts, version: u16) -> Code {
    boundary(|| {
        check_null!(opts);
        if version != PSM_TLS_1_2 && version != PSM_TLS_1_3 {
            return fail_code(
                Code::PSM_ERR_INVALID_ARGUMENT,
                &format!("TLS version {version:#06x}: use PSM_TLS_1_2 (0x0303) or PSM_TLS_1_3 (0x0304)"),
            );
        }
        // SAFETY: non-NULL and live per the contract.
        unsafe { (*opts).opts.min_version = version };
        Code::PSM_OK
    })
}

/// Reach the server through the HTTP proxy at `host`:`port` (an HTTP
/// CONNECT tunnel; TLS still runs end to end). `host` is a name or an IP
/// address (IPv6 with or without brackets). NULL `host` removes the proxy.
///
/// # Safety
/// `opts` is live; `host` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_opts_set_proxy(
    opts: *mut psm_ssl_opts,
    host: *const c_char,
    port: u16,
) -> Code {
    boundary(|| {
        check_null!(opts);
        // SAFETY: per the contract.
        let proxy = match unsafe { opt_str(host, "host") } {
            Ok(None) => None,
            Ok(Some(h)) if h.is_empty() || port == 0 => {
                return fail_code(
                    Code::PSM_ERR_INVALID_ARGUMENT,
                    "the proxy needs a host and a port other than 0",
                );
            }
            // An IPv6 address is bracketed so that its colons are not
            // mistaken for the port's.
            Ok(Some(h)) if h.contains(':') && !h.starts_with('[') => Some(format!("[{h}]:{port}")),
            Ok(Some(h)) => Some(format!("{h}:{port}")),
            Err(c) => return c,
        };
        // SAFETY: non-NULL and live per the contract.
        unsafe { (*opts).opts.proxy = proxy };
        Code::PSM_OK
    })
}

/// The limit for resolving, connecting and the handshake, in milliseconds
/// (0: the default, 30 s). Time spent waiting for the user to answer a
/// prompt does not count.
///
/// # Safety
/// `opts` is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_opts_set_timeout(opts: *mut psm_ssl_opts, ms: u32) -> Code {
    boundary(|| {
        check_null!(opts);
        // SAFETY: non-NULL and live per the contract.
        unsafe { (*opts).opts.timeout_ms = ms };
        Code::PSM_OK
    })
}

/// psmd resolves `host` (IPv4 and IPv6), connects to `port` (through the
/// options' proxy, if any), runs the TLS handshake with `host` as the
/// server name and checks the server's certificate against the user's
/// trust settings. Returns once the handshake succeeded; `*out` owns the
/// channel (`psm_ssl_free`). `opts` NULL: the defaults.
///
/// A certificate problem fails with the precise `PSM_ERR_CERT_*` code,
/// unless a prompt handler (`psm_set_prompt_handler`) lets the user decide;
/// the handler then runs inside this call. Other failures:
/// `PSM_ERR_DNS`, `PSM_ERR_CONNECT`, `PSM_ERR_TIMEOUT`, `PSM_ERR_TLS_ALERT`
/// (the message names the alert), `PSM_ERR_TLS_HANDSHAKE`.
///
/// # Safety
/// `conn` is live; `host` is a NUL-terminated string; `opts` is NULL or
/// live; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_connect(
    conn: *mut psm_conn,
    host: *const c_char,
    port: u16,
    opts: *const psm_ssl_opts,
    out: *mut *mut psm_ssl,
) -> Code {
    // SAFETY: the caller's contract is this function's.
    unsafe { open_by_host(conn, host, port, opts, out, Client::ssl_connect) }
}

/// The body of the functions that open a channel to `host`:`port`.
///
/// # Safety
/// As `psm_ssl_connect`.
unsafe fn open_by_host(
    conn: *mut psm_conn,
    host: *const c_char,
    port: u16,
    opts: *const psm_ssl_opts,
    out: *mut *mut psm_ssl,
    open: fn(&Client, &str, u16, &SslOpts) -> crate::error::Result<SslChannel>,
) -> Code {
    boundary(|| {
        check_null!(conn, host, out);
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let host = match unsafe { str_arg(host, "host") } {
            Ok(h) => h,
            Err(c) => return c,
        };
        // SAFETY: per the contract.
        let (client, opts) = unsafe { (&(*conn).client, opts_or_default(opts)) };
        // SAFETY: checked writable above.
        unsafe { ssl_out(client, open(client, host, port, &opts), out) }
    })
}

/// Wraps a TCP socket the application connected itself as a TLS client
/// for `server_name` (the name the certificate must match, sent as SNI
/// unless it is an IP address). psmd receives its own duplicate of
/// `connected_fd`: the caller keeps `connected_fd` and may close it at
/// once, but must not read or write it while the channel is open. `*out`
/// is freed with `psm_ssl_free`. Errors as for `psm_ssl_connect`; `opts`
/// NULL: the defaults (a proxy does not apply).
///
/// # Safety
/// `conn` is live; `server_name` is a NUL-terminated string; `opts` is NULL
/// or live; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_wrap_fd(
    conn: *mut psm_conn,
    connected_fd: i32,
    server_name: *const c_char,
    opts: *const psm_ssl_opts,
    out: *mut *mut psm_ssl,
) -> Code {
    boundary(|| {
        check_null!(conn, server_name, out);
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let name = match unsafe { str_arg(server_name, "server_name") } {
            Ok(n) => n,
            Err(c) => return c,
        };
        let fd = match lent_fd(connected_fd) {
            Ok(fd) => fd,
            Err(c) => return c,
        };
        // SAFETY: per the contract.
        let (client, opts) = unsafe { (&(*conn).client, opts_or_default(opts)) };
        // SAFETY: checked writable above.
        unsafe { ssl_out(client, client.ssl_wrap_fd(&fd, name, &opts), out) }
    })
}

/// Wraps a TCP socket the application accepted as a TLS server presenting
/// `cert` and its private key from psm's token (`PSM_ERR_NOT_FOUND` if psm
/// holds no key for it, `PSM_ERR_LOGIN_REQUIRED` if the token is locked).
/// Returns once the handshake with the client succeeded; `*out` is freed
/// with `psm_ssl_free`. As with
/// `psm_ssl_wrap_fd`, psmd receives its own duplicate of `accepted_fd`;
/// the caller keeps (and may close) its descriptor. `opts` NULL: the
/// defaults (ALPN, the minimum version and the timeout apply; the rest is
/// for clients). psm does not ask the client for a certificate.
///
/// # Safety
/// `conn` and `cert` are live; `opts` is NULL or live; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_accept_fd(
    conn: *mut psm_conn,
    accepted_fd: i32,
    cert: *const psm_cert,
    opts: *const psm_ssl_opts,
    out: *mut *mut psm_ssl,
) -> Code {
    boundary(|| {
        check_null!(conn, cert, out);
        let fd = match lent_fd(accepted_fd) {
            Ok(fd) => fd,
            Err(c) => return c,
        };
        // SAFETY: per the contract.
        let (client, cert, opts) = unsafe { (&(*conn).client, &*cert, opts_or_default(opts)) };
        // SAFETY: checked writable above.
        unsafe { ssl_out(client, client.ssl_accept_fd(&fd, &cert.info.sha256_hex, &opts), out) }
    })
}

/// Connects to `host`:`port` without TLS, for protocols that start in
/// plain text (SMTP, IMAP, LDAP, ...): the channel relays bytes unchanged
/// until `psm_ssl_step_up`. `*out` is freed with `psm_ssl_free`.
///
/// # Safety
/// `conn` is live; `host` is a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_tls_open_plain(
    conn: *mut psm_conn,
    host: *const c_char,
    port: u16,
    out: *mut *mut psm_ssl,
) -> Code {
    // SAFETY: the same contract, with the default options.
    unsafe { psm_tls_open_plain_opts(conn, host, port, std::ptr::null(), out) }
}

/// `psm_tls_open_plain` with options: the proxy and timeout apply to the
/// connection, the rest to the later `psm_ssl_step_up`. `opts` NULL: the
/// defaults.
///
/// # Safety
/// As `psm_tls_open_plain`; `opts` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_tls_open_plain_opts(
    conn: *mut psm_conn,
    host: *const c_char,
    port: u16,
    opts: *const psm_ssl_opts,
    out: *mut *mut psm_ssl,
) -> Code {
    // SAFETY: the caller's contract is this function's.
    unsafe { open_by_host(conn, host, port, opts, out, Client::tls_open_plain) }
}

/// Starts TLS on a channel from `psm_tls_open_plain` (STARTTLS): what the
/// application wrote before this call is sent in plain first; returns once
/// the handshake succeeded and the server's certificate was accepted
/// (errors as for `psm_ssl_connect`). Read the server's plain answer to
/// the STARTTLS command before calling it.
///
/// # Safety
/// `conn` and `ssl` are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_step_up(conn: *mut psm_conn, ssl: *mut psm_ssl) -> Code {
    boundary(|| {
        check_null!(conn, ssl);
        // SAFETY: non-NULL and live per the contract.
        match unsafe { client_of(conn, ssl) } {
            Ok((client, ssl)) => client.ssl_step_up(&ssl.channel).map_or_else(fail, |()| Code::PSM_OK),
            Err(c) => c,
        }
    })
}

/// The plaintext side of the channel: a Unix stream socket to read,
/// write, select() and poll(). Owned by the channel: do not close it.
/// Write with `send(fd, buf, len, MSG_NOSIGNAL)` (or ignore SIGPIPE).
/// `shutdown(fd, SHUT_WR)` sends close_notify (the peer may still answer);
/// a read of 0 bytes means the peer closed the connection cleanly;
/// `ECONNRESET` means it did not (a truncation or a TLS error after the
/// handshake: `psm_ssl_info_json` says which). -1 if `ssl` is NULL.
///
/// # Safety
/// `ssl` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_fd(ssl: *const psm_ssl) -> i32 {
    boundary_value(-1, || {
        // SAFETY: per the contract.
        unsafe { ssl.as_ref() }.map_or(-1, |s| s.channel.fd())
    })
}

/// The channel's security information as a JSON object: "version",
/// "cipher_suite", "key_exchange_group", "alpn", "resumed",
/// "peer_certificates" (sha256, subject, issuer; leaf first),
/// "client_certificate", "verification" (result, detail, override),
/// "bytes_in", "bytes_out", "state" and "error" (see README.md).
/// `*json_out` is a NUL-terminated string the caller frees with `psm_free`.
///
/// # Safety
/// `conn` and `ssl` are live (`ssl` opened on `conn`); `json_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_info_json(
    conn: *mut psm_conn,
    ssl: *const psm_ssl,
    json_out: *mut *mut c_char,
) -> Code {
    boundary(|| {
        check_null!(conn, ssl, json_out);
        // SAFETY: non-NULL and live per the contract.
        let (client, ssl) = match unsafe { client_of(conn, ssl) } {
            Ok(v) => v,
            Err(c) => return c,
        };
        match client.ssl_info_json(&ssl.channel) {
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

/// The `index`-th certificate the peer presented (0: its own, then the
/// chain as sent). `PSM_ERR_NOT_FOUND` past the end (and at 0 when the
/// peer sent none, e.g. a client without a certificate). `*out` is a new
/// certificate (`psm_cert_free`), whose nickname is "" unless it is in the
/// store.
///
/// # Safety
/// `conn` and `ssl` are live (`ssl` opened on `conn`); `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_peer_cert(
    conn: *mut psm_conn,
    ssl: *const psm_ssl,
    index: usize,
    out: *mut *mut psm_cert,
) -> Code {
    boundary(|| {
        check_null!(conn, ssl, out);
        // SAFETY: non-NULL and live per the contract.
        let (client, ssl) = match unsafe { client_of(conn, ssl) } {
            Ok(v) => v,
            Err(c) => return c,
        };
        let certs = match client.ssl_peer_certs(&ssl.channel) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let len = certs.len();
        let Some(info) = certs.into_iter().nth(index) else {
            return fail_code(
                Code::PSM_ERR_NOT_FOUND,
                &format!("the peer presented {len} certificates; there is none at index {index}"),
            );
        };
        // SAFETY: checked writable above.
        unsafe { *out = Box::into_raw(Box::new(psm_cert::new(info))) };
        Code::PSM_OK
    })
}

/// Frees the channel: its descriptor is closed and psmd sends close_notify
/// to the peer and closes the connection. Usable after `psm_conn_free`.
/// NULL is ignored.
///
/// # Safety
/// `ssl` is NULL or from a psm function that opens channels, not yet freed,
/// and no other call on it is in progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_free(ssl: *mut psm_ssl) {
    boundary_value((), || {
        if !ssl.is_null() {
            // SAFETY: per the contract, we own it now.
            drop(unsafe { Box::from_raw(ssl) });
        }
    })
}

/// Shows what protects the channel in psm's dialog (psm's security
/// advisor: who the server is and why psm believes it, what is encrypted
/// and how). The call returns once the user closed the dialog; open its
/// URL from the `PSM_EVENT_DIALOG` event (`psm_set_event_handler`).
/// `PSM_ERR_NO_UI` for a connection made with `PSM_CONNECT_NO_DIALOGS`.
///
/// # Safety
/// `conn` and `ssl` are live (`ssl` opened on `conn`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn psm_ssl_show_info(conn: *mut psm_conn, ssl: *const psm_ssl) -> Code {
    boundary(|| {
        check_null!(conn, ssl);
        // SAFETY: non-NULL and live per the contract.
        let (client, ssl) = match unsafe { client_of(conn, ssl) } {
            Ok(v) => v,
            Err(c) => return c,
        };
        client.ssl_show_info(&ssl.channel).map_or_else(fail, |()| Code::PSM_OK)
    })
}
