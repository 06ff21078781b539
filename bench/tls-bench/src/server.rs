//! `tls-bench server`: the TLS server every client is measured against, a
//! small rustls server on loopback serving one connection at a time.
//!
//! - stream: after the handshake, N bytes of a fixed buffer, then
//!   close_notify;
//! - handshake: close_notify as soon as the handshake is done;
//! - echo: every byte read is written back, until close_notify.
//!
//! Resumption is off (no session cache, no tickets): every handshake is a
//! full one. The server prints its port on stdout and exits when stdin
//! reaches EOF (its parent went away).

use crate::Res;
use crate::certs::Files;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Plaintext handed to rustls per call in stream mode.
const CHUNK: usize = 256 * 1024;
/// Encrypted data rustls may queue before we write it out.
const SEND_BUFFER: usize = 1024 * 1024;
/// A client that stops talking for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the client's end of the connection after ours.
const LINGER: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Stream(u64),
    Handshake,
    Echo,
}

impl Mode {
    pub fn parse(name: &str, bytes: u64) -> Res<Mode> {
        match name {
            "stream" => Ok(Mode::Stream(bytes)),
            "handshake" => Ok(Mode::Handshake),
            "echo" => Ok(Mode::Echo),
            _ => Err(format!("unknown server mode '{name}' (stream, handshake or echo)").into()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Stream(_) => "stream",
            Mode::Handshake => "handshake",
            Mode::Echo => "echo",
        }
    }
}

fn config(dir: &Path) -> Res<ServerConfig> {
    let files = Files::in_dir(dir);
    let chain = CertificateDer::pem_file_iter(&files.server_cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&files.server_key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

pub fn serve(dir: &Path, mode: Mode) -> Res<()> {
    // Started as /proc/self/exe: a name to tell it by in ps and perf.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"tls-bench-srv".as_ptr()) };
    crate::sys::tune_malloc();
    let config = Arc::new(config(dir)?);
    let v4 = TcpListener::bind("127.0.0.1:0")?;
    let port = v4.local_addr()?.port();
    // "localhost" may resolve to ::1 first; serve there too when we can.
    if let Ok(v6) = TcpListener::bind(("::1", port)) {
        let config = config.clone();
        std::thread::spawn(move || accept_loop(&v6, &config, mode));
    }
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        while matches!(io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    println!("{port}");
    io::stdout().flush()?;
    accept_loop(&v4, &config, mode);
    Ok(())
}

fn accept_loop(listener: &TcpListener, config: &Arc<ServerConfig>, mode: Mode) {
    let pattern: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    for sock in listener.incoming() {
        let Ok(sock) = sock else { continue };
        if let Err(e) = serve_one(sock, config, mode, &pattern) {
            // A client giving up is its own business; anything else is news.
            let quiet = e.downcast_ref::<io::Error>().is_some_and(|e| {
                matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::NotConnected
                )
            });
            if !quiet {
                eprintln!("tls-bench server ({}): {e}", mode.name());
            }
        }
    }
}

fn flush(conn: &mut ServerConnection, mut sock: &TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(&mut sock)?;
    }
    Ok(())
}

fn serve_one(mut sock: TcpStream, config: &Arc<ServerConfig>, mode: Mode, pattern: &[u8]) -> Res<()> {
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(IDLE_TIMEOUT))?;
    sock.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut conn = ServerConnection::new(config.clone())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    match mode {
        Mode::Stream(mut left) => {
            conn.set_buffer_limit(Some(SEND_BUFFER));
            while left > 0 {
                let n = conn.writer().write(&pattern[..pattern.len().min(left as usize)])?;
                left -= n as u64;
                flush(&mut conn, &sock)?;
            }
        }
        Mode::Handshake => {}
        Mode::Echo => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match conn.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => conn.writer().write_all(&buf[..n])?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // At EOF without close_notify, reader() fails next.
                        conn.read_tls(&mut sock)?;
                        conn.process_new_packets()?;
                    }
                    Err(e) => return Err(e.into()),
                }
                flush(&mut conn, &sock)?;
            }
        }
    }
    conn.send_close_notify();
    flush(&mut conn, &sock)?;
    // Our FIN follows the close_notify; then wait for the client to close its
    // end, so nothing it still sends meets a closed socket (a reset).
    // (The client may have closed first: nothing to wait for then.)
    if sock.shutdown(Shutdown::Write).is_err() {
        return Ok(());
    }
    sock.set_read_timeout(Some(LINGER))?;
    let mut sink = [0u8; 4096];
    while matches!(sock.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}
