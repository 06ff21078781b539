//! What `SslInfo` reports about a channel: what the handshake settled
//! (kept in [`Static`]) plus the live state of the relay.

use super::handshake::Notes;
use super::verifier::cert_json;
use psm::Error;
use rustls::{Connection, HandshakeKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Client,
    Server,
    Plain,
}

/// Facts fixed once the handshake is done.
#[derive(Clone, Debug)]
pub struct Static {
    pub mode: Mode,
    /// The server's name (client), the client's address (server).
    pub peer_name: String,
    pub port: u16,
    pub verification: Option<super::Verification>,
    /// The certificate psmd presented: the client certificate, or the
    /// server certificate of an accepted connection.
    pub own_cert: Option<Vec<u8>>,
}

impl Static {
    pub fn plain(host: &str, port: u16) -> Static {
        Static { mode: Mode::Plain, peer_name: host.to_string(), port, verification: None, own_cert: None }
    }

    pub fn client(mode: Mode, host: &str, port: u16, notes: &Notes) -> Static {
        Static {
            mode,
            peer_name: host.to_string(),
            port,
            verification: notes.verification.clone(),
            own_cert: notes.client_cert.clone(),
        }
    }

    pub fn server(peer: &str, port: u16, cert: Option<Vec<u8>>) -> Static {
        Static { mode: Mode::Server, peer_name: peer.to_string(), port, verification: None, own_cert: cert }
    }
}

/// Where the relay is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Open,
    /// The peer closed cleanly (close_notify) and everything was delivered.
    Closed,
    /// The peer's TCP stream ended without close_notify.
    Truncated,
    /// A TLS or I/O error after the handshake.
    Failed,
}

pub struct Live<'a> {
    pub channel: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub state: State,
    pub error: Option<&'a Error>,
    /// The peer's certificates, kept after the connection is gone.
    pub peer_certs: &'a [Vec<u8>],
}

fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

/// The JSON of `SslInfo`.
pub fn json(s: &Static, live: &Live<'_>, negotiated: &Negotiated) -> String {
    let verification = s.verification.as_ref().map(|(code, detail, how)| {
        serde_json::json!({ "result": format!("{code:?}"), "detail": detail, "override": how })
    });
    let own = s.own_cert.as_deref().map(cert_json);
    let chain: Vec<serde_json::Value> = live.peer_certs.iter().map(|d| cert_json(d)).collect();
    let error =
        live.error.map(|e| serde_json::json!({ "result": format!("{:?}", e.code), "message": e.message }));
    let mode = match s.mode {
        Mode::Client => "client",
        Mode::Server => "server",
        Mode::Plain => "plain",
    };
    let state = match live.state {
        State::Open => "open",
        State::Closed => "closed",
        State::Truncated => "truncated",
        State::Failed => "failed",
    };
    let (name_key, port_key) = match s.mode {
        Mode::Server => ("client_address", "local_port"),
        _ => ("server_name", "port"),
    };
    let mut v = serde_json::json!({
        "channel": live.channel,
        "mode": mode,
        "version": negotiated.version,
        "cipher_suite": negotiated.cipher_suite,
        "key_exchange_group": negotiated.group,
        "alpn": negotiated.alpn,
        "resumed": negotiated.resumed,
        "peer_certificates": chain,
        "verification": verification,
        "bytes_in": live.bytes_in,
        "bytes_out": live.bytes_out,
        "state": state,
        "error": error,
    });
    v[name_key] = serde_json::json!(s.peer_name);
    v[port_key] = serde_json::json!(s.port);
    v[if s.mode == Mode::Server { "server_certificate" } else { "client_certificate" }] =
        serde_json::json!(own);
    v.to_string()
}

/// What the handshake negotiated, read from the connection once.
#[derive(Clone, Debug, Default)]
pub struct Negotiated {
    pub version: Option<String>,
    pub cipher_suite: Option<String>,
    pub group: Option<String>,
    pub alpn: Option<String>,
    pub resumed: bool,
}

impl Negotiated {
    pub fn of(tls: &Connection) -> Negotiated {
        Negotiated {
            version: tls.protocol_version().map(version_name),
            cipher_suite: tls.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())),
            group: tls.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name())),
            alpn: tls.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
            resumed: matches!(tls.handshake_kind(), Some(HandshakeKind::Resumed)),
        }
    }
}
