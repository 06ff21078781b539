//! The guard in front of the dialog web server. tiny_http reads headers
//! without a size limit and gives each connection a thread, so the loopback
//! port is not tiny_http's: this mio loop accepts there, reads each request
//! under limits (head size, header count, body size, one deadline for the
//! whole request, a connection cap that closes the oldest half-read
//! connection when full), and only a complete request that passed goes on
//! to tiny_http, on a Unix socket in psmd's private directory that nobody
//! else can reach. The response comes back the same way; every connection
//! serves one request.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections read at once; a new one closes the oldest beyond this.
    pub max_conns: usize,
    /// Request line and headers.
    pub max_head: usize,
    pub max_headers: usize,
    pub max_body: usize,
    /// For the whole request to arrive.
    pub deadline: Duration,
    /// Requests handed on at once.
    pub max_relays: usize,
    /// For the answer to come back (a password check can take a second or two).
    pub relay_timeout: Duration,
    /// Largest response relayed.
    pub max_response: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_conns: 1024,
            max_head: 8 * 1024,
            max_headers: 48,
            max_body: 16 * 1024,
            deadline: Duration::from_secs(10),
            max_relays: 16,
            relay_timeout: Duration::from_secs(90),
            max_response: 1024 * 1024,
        }
    }
}

/// What the guard turned away, for Status and tests.
#[derive(Debug, Default)]
pub struct FrontStats {
    pub accepted: AtomicU64,
    pub relayed: AtomicU64,
    pub refused: AtomicU64,
    pub evicted: AtomicU64,
    pub timed_out: AtomicU64,
    pub open: AtomicUsize,
}

struct Conn {
    stream: TcpStream,
    buf: Zeroizing<Vec<u8>>,
    started: Instant,
}

const LISTENER_BASE: usize = 1 << 30;

pub fn run(listeners: Vec<std::net::TcpListener>, backend: PathBuf, limits: Limits, stats: Arc<FrontStats>) {
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => return tracing::error!("dialog server stopped: {e}"),
    };
    let mut ls: Vec<TcpListener> = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        if l.set_nonblocking(true).is_err() {
            continue;
        }
        let mut l = TcpListener::from_std(l);
        if poll.registry().register(&mut l, Token(LISTENER_BASE + i), Interest::READABLE).is_ok() {
            ls.push(l);
        }
    }
    let relays = Arc::new(AtomicUsize::new(0));
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut events = Events::with_capacity(256);
    loop {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(250))) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return tracing::error!("dialog server stopped: {e}");
        }
        for ev in events.iter() {
            let t = ev.token().0;
            if t >= LISTENER_BASE {
                let Some(l) = ls.get(t - LISTENER_BASE) else { continue };
                accept(&poll, l, &mut conns, &limits, &stats);
                continue;
            }
            let done = match conns.get_mut(t) {
                Some(c) => read_request(c, &limits),
                None => continue,
            };
            match done {
                Step::More => {}
                Step::Refuse(status) => {
                    let mut c = conns.remove(t);
                    let _ = poll.registry().deregister(&mut c.stream);
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    refuse(&mut c.stream, status);
                }
                Step::Gone => {
                    let mut c = conns.remove(t);
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                Step::Complete(len) => {
                    let mut c = conns.remove(t);
                    let _ = poll.registry().deregister(&mut c.stream);
                    c.buf.truncate(len);
                    if relays.load(Ordering::Relaxed) >= limits.max_relays {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        refuse(&mut c.stream, 503);
                    } else {
                        relays.fetch_add(1, Ordering::Relaxed);
                        stats.relayed.fetch_add(1, Ordering::Relaxed);
                        let (relays, backend, limits) = (relays.clone(), backend.clone(), limits.clone());
                        let spawned =
                            std::thread::Builder::new().name("psmd-dialog-relay".into()).spawn(move || {
                                relay(c, &backend, &limits);
                                relays.fetch_sub(1, Ordering::Relaxed);
                            });
                        if spawned.is_err() {
                            // The request went with the closure: its connection is closed.
                            tracing::warn!("no thread for a dialog request");
                        }
                    }
                }
            }
        }
        // The deadline covers the whole request: a slow sender is cut off.
        let now = Instant::now();
        let late: Vec<usize> = conns
            .iter()
            .filter(|(_, c)| now.duration_since(c.started) > limits.deadline)
            .map(|(k, _)| k)
            .collect();
        for k in late {
            let mut c = conns.remove(k);
            let _ = poll.registry().deregister(&mut c.stream);
            stats.timed_out.fetch_add(1, Ordering::Relaxed);
            refuse(&mut c.stream, 408);
        }
        stats.open.store(conns.len(), Ordering::Relaxed);
    }
}

fn accept(poll: &Poll, l: &TcpListener, conns: &mut slab::Slab<Conn>, limits: &Limits, stats: &FrontStats) {
    loop {
        match l.accept() {
            Ok((mut stream, _)) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                if conns.len() >= limits.max_conns {
                    // Full: the oldest half-read request makes room, so a
                    // flood of idle connections cannot lock out the dialog.
                    if let Some(k) = conns.iter().min_by_key(|(_, c)| c.started).map(|(k, _)| k) {
                        let mut c = conns.remove(k);
                        let _ = poll.registry().deregister(&mut c.stream);
                        stats.evicted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let entry = conns.vacant_entry();
                let key = entry.key();
                if poll.registry().register(&mut stream, Token(key), Interest::READABLE).is_ok() {
                    entry.insert(Conn { stream, buf: Zeroizing::new(Vec::new()), started: Instant::now() });
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of descriptors, most likely: try again on the next event.
                tracing::warn!("dialog server: accept failed: {e}");
                return;
            }
        }
    }
}

enum Step {
    More,
    Complete(usize),
    Refuse(u16),
    Gone,
}

fn read_request(c: &mut Conn, limits: &Limits) -> Step {
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        match c.stream.read(&mut chunk[..]) {
            Ok(0) => return Step::Gone,
            Ok(n) => {
                c.buf.extend_from_slice(&chunk[..n]);
                match judge(&c.buf, limits) {
                    Step::More if c.buf.len() > limits.max_head + limits.max_body => {
                        return Step::Refuse(413);
                    }
                    Step::More => continue,
                    other => return other,
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::More,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Step::Gone,
        }
    }
}

/// Whether `buf` holds a whole request that keeps within the limits.
fn judge(buf: &[u8], limits: &Limits) -> Step {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => return Step::Refuse(431),
        Ok(httparse::Status::Partial) => return Step::More,
        Err(httparse::Error::TooManyHeaders) => return Step::Refuse(431),
        Err(_) => return Step::Refuse(400),
    };
    if head_len > limits.max_head {
        return Step::Refuse(431);
    }
    let mut length: Option<usize> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Bodies are small forms: a length, never chunks.
            return Step::Refuse(411);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
            match (n, length) {
                (None, _) => return Step::Refuse(400),
                (Some(n), Some(m)) if n != m => return Step::Refuse(400),
                (Some(n), _) => length = Some(n),
            }
        }
    }
    let body = length.unwrap_or(0);
    if body > limits.max_body {
        return Step::Refuse(413);
    }
    if buf.len() >= head_len + body { Step::Complete(head_len + body) } else { Step::More }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    }
}

/// A short error and the end of the connection (best effort: the peer may
/// not read).
fn refuse(stream: &mut TcpStream, status: u16) {
    let body = format!("{status} {}\n", reason(status));
    let msg = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = stream.write(msg.as_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}

/// Hands one complete request to tiny_http and its response back.
fn relay(c: Conn, backend: &PathBuf, limits: &Limits) {
    let Conn { stream, buf, .. } = c;
    // SAFETY: the descriptor is ours alone (into_raw_fd gave it up).
    let mut tcp = unsafe { std::net::TcpStream::from_raw_fd(stream.into_raw_fd()) };
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_write_timeout(Some(limits.deadline));
    let answer = (|| -> std::io::Result<Zeroizing<Vec<u8>>> {
        let mut up = UnixStream::connect(backend)?;
        up.set_read_timeout(Some(limits.relay_timeout))?;
        up.set_write_timeout(Some(limits.deadline))?;
        up.write_all(&buf)?;
        up.shutdown(Shutdown::Write)?;
        let mut out = Zeroizing::new(Vec::new());
        up.take(limits.max_response as u64).read_to_end(&mut out)?;
        Ok(out)
    })();
    drop(buf);
    match answer {
        Ok(out) if !out.is_empty() => {
            let _ = tcp.write_all(&out);
        }
        Ok(_) | Err(_) => {
            let body = "502 Bad Gateway\n";
            let _ = write!(
                tcp,
                "HTTP/1.1 502 {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                reason(502),
                body.len()
            );
        }
    }
    let _ = tcp.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(buf: &[u8]) -> String {
        match judge(buf, &Limits::default()) {
            Step::More => "more".into(),
            Step::Complete(n) => format!("complete {n}"),
            Step::Refuse(s) => format!("refuse {s}"),
            Step::Gone => "gone".into(),
        }
    }

    #[test]
    fn requests_are_judged_by_their_head_and_length() {
        assert_eq!(step(b"GET / HTTP/1.1\r\nHost: a\r\n"), "more");
        assert_eq!(step(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "complete 27");
        assert_eq!(step(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab"), "more");
        assert_eq!(step(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcdef"), "complete 41");
        assert_eq!(step(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"), "refuse 413");
        assert_eq!(step(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), "refuse 400");
        assert_eq!(step(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), "refuse 400");
        assert_eq!(step(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), "refuse 411");
        assert_eq!(step(b"\x00\x01garbage\r\n\r\n"), "refuse 400");
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(9000, b'a');
        assert_eq!(step(&big), "refuse 431");
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..60 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(step(&many), "refuse 431");
    }
}
