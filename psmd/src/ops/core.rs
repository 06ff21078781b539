//! Hello and Status.

use crate::session::{Session, Shared};
use psm::proto::{MAX_APP_NAME, PROTOCOL_MAX, PROTOCOL_MIN, Reply};
use psm::{Code, Error};

pub fn hello(
    session: &mut Session,
    min: u16,
    max: u16,
    app_name: String,
    flags: u32,
) -> Result<Reply, Error> {
    if session.app_name.is_some() {
        return Err(Error::new(Code::PSM_ERR_PROTOCOL, "Hello was already sent on this connection"));
    }
    let version = max.min(PROTOCOL_MAX);
    if min > max || version < min.max(PROTOCOL_MIN) {
        return Err(Error::new(
            Code::PSM_ERR_UNSUPPORTED,
            format!("client speaks protocol {min}..{max}; psmd speaks {PROTOCOL_MIN}..{PROTOCOL_MAX}"),
        ));
    }
    if app_name.len() > MAX_APP_NAME || app_name.chars().any(char::is_control) {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            "application name is too long or has control characters",
        ));
    }
    tracing::info!(session = session.id, pid = session.pid, app = %app_name, version, "hello");
    session.app_name = Some(app_name);
    session.hello_flags = flags;
    session.version = version;
    Ok(Reply::Hello {
        daemon_version: env!("CARGO_PKG_VERSION").to_string(),
        session_id: session.id,
        version,
    })
}

/// `Status`: daemon-wide figures plus what the event loop knows of each
/// session and channel (`sessions` and `channels` stay counts, as before).
pub fn status(
    stats: &Shared,
    session_list: Vec<serde_json::Value>,
    channel_list: Vec<serde_json::Value>,
) -> Result<Reply, Error> {
    let (has_password, logged_in) = stats.token.summary();
    let json = serde_json::json!({
        "session_list": session_list,
        "channel_list": channel_list,
        "token": { "has_password": has_password, "logged_in_sessions": logged_in },
        "policy": stats.tls.policy().to_json(),
        "pkcs11": stats.tls.pkcs11_json(),
        "policy_warnings": *stats.tls.policy_warnings.lock().unwrap_or_else(|p| p.into_inner()),
        "requests_failed": stats.requests_failed,
        "operations": stats
            .operations
            .iter()
            .map(|(k, (ok, failed))| (k.to_string(), serde_json::json!({ "ok": ok, "failed": failed })))
            .collect::<serde_json::Map<_, _>>(),
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_secs": stats.started.elapsed().as_secs(),
        "sessions": stats.sessions,
        "channels": stats.channels,
        "requests_served": stats.requests_served,
        "workers": stats.workers,
        "protocol": { "min": PROTOCOL_MIN, "max": PROTOCOL_MAX },
    });
    Ok(Reply::Status { json: json.to_string() })
}
