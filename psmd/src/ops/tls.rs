//! TLS channel requests. Setting a channel up runs on a handshake thread
//! (`tls::handshake`); the event loop then relays (`tls::relay`).

use crate::session::{Outcome, Session};
use crate::tls::handshake::Target;
use psm::proto::{HELLO_HAS_PROMPT_HANDLER, Reply, SslOpts};
use psm::{Code, Error};
use std::os::fd::OwnedFd;

/// Longest host name accepted (RFC 1035: 253 characters).
pub const MAX_HOST: usize = 253;
/// Most ALPN protocols, and the longest one (RFC 7301: 255 bytes).
pub const MAX_ALPN: usize = 32;

/// A channel to set up: what the event loop hands to a handshake thread.
pub struct Start {
    pub can_prompt: bool,
    pub opts: SslOpts,
    pub target: Target,
}

fn check_opts(opts: &SslOpts) -> Result<(), Error> {
    let bad = |m: String| Err(Error::new(Code::PSM_ERR_INVALID_ARGUMENT, m));
    if opts.alpn.len() > MAX_ALPN {
        return bad(format!("{} ALPN protocols given; the limit is {MAX_ALPN}", opts.alpn.len()));
    }
    if opts.alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
        return bad("an ALPN protocol name must be 1 to 255 bytes".into());
    }
    if let Some(p) = &opts.proxy
        && (p.is_empty() || p.len() > MAX_HOST + 8)
    {
        return bad("the proxy must be host:port".into());
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), Error> {
    if host.is_empty() || host.len() > MAX_HOST || host.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::new(Code::PSM_ERR_INVALID_ARGUMENT, format!("\"{host}\" is not a host name")));
    }
    Ok(())
}

fn start(session: &Session, opts: SslOpts, target: Target) -> Outcome {
    match check_opts(&opts) {
        Ok(()) => Outcome::Tls(Start { can_prompt: session.can_ask(), opts, target }),
        Err(e) => Outcome::Reply(Err(e)),
    }
}

pub fn connect(session: &Session, host: String, port: u16, opts: SslOpts, plain: bool) -> Outcome {
    if let Err(e) = check_host(&host) {
        return Outcome::Reply(Err(e));
    }
    if port == 0 {
        return Outcome::Reply(Err(Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "port 0")));
    }
    let target = if plain { Target::Plain { host, port } } else { Target::Connect { host, port } };
    start(session, opts, target)
}

fn no_fd() -> Outcome {
    Outcome::Reply(Err(Error::new(Code::PSM_ERR_PROTOCOL, "the request came without its socket descriptor")))
}

pub fn wrap(session: &Session, fd: Option<OwnedFd>, server_name: String, opts: SslOpts) -> Outcome {
    let Some(fd) = fd else { return no_fd() };
    if let Err(e) = check_host(&server_name) {
        return Outcome::Reply(Err(e));
    }
    start(session, opts, Target::Wrap { fd, server_name })
}

pub fn accept(session: &Session, fd: Option<OwnedFd>, sha256_hex: String, opts: SslOpts) -> Outcome {
    let Some(fd) = fd else { return no_fd() };
    match crate::store::parse_fingerprint(&sha256_hex) {
        Ok(cert) => start(session, opts, Target::Accept { fd, cert }),
        Err(e) => Outcome::Reply(Err(e)),
    }
}

pub fn set_prompt_handler(session: &mut Session, enabled: bool) -> Reply {
    if enabled {
        session.hello_flags |= HELLO_HAS_PROMPT_HANDLER;
    } else {
        session.hello_flags &= !HELLO_HAS_PROMPT_HANDLER;
    }
    Reply::Done
}

/// The peer's certificates as the store knows them (nickname, trust), or
/// as parsed when it does not.
pub fn describe_certs(shared: &crate::session::Shared, ders: Vec<Vec<u8>>) -> Outcome {
    let store = shared.store.clone();
    Outcome::Work(Box::new(move || {
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        let certs =
            ders.iter().map(|d| crate::ops::cert::describe(&store, d)).collect::<Result<Vec<_>, _>>()?;
        Ok(Reply::Certs(certs))
    }))
}
