//! `tls-bench relay`: the least a daemon shaped like psmd must do, as a
//! reference row: a process that accepts plaintext clients on a Unix
//! socket and runs TLS to the server for each, with the baseline's rustls
//! settings, one thread per connection, no protocol, no policy. What psm
//! adds over this is psmd's own cost; what this adds over in-process rustls
//! is the cost of the extra process and hop.

use crate::Res;
use crate::client::{Rustls, Tls};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Plaintext moved per read, either way.
const BUF: usize = 256 * 1024;

pub fn serve(socket: &Path, ca: &Path, host: &str, port: u16) -> Res<()> {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"tls-bench-rly".as_ptr()) };
    crate::sys::tune_malloc();
    let rustls = std::sync::Arc::new(Rustls::new(ca, host)?);
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        while matches!(io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    println!("0");
    io::stdout().flush()?;
    for app in listener.incoming() {
        let Ok(app) = app else { continue };
        let rustls = rustls.clone();
        std::thread::spawn(move || {
            if let Err(e) = relay_one(&rustls, port, app)
                && !e.downcast_ref::<io::Error>().is_some_and(|e| {
                    matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
                })
            {
                eprintln!("tls-bench relay: {e}");
            }
        });
    }
    Ok(())
}

fn poll2(a: i32, b: i32) -> io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd { fd: a, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: b, events: libc::POLLIN, revents: 0 },
    ];
    loop {
        // SAFETY: fds is a valid array of two pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n >= 0 {
            return Ok((fds[0].revents != 0, fds[1].revents != 0));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn relay_one(rustls: &Rustls, port: u16, mut app: UnixStream) -> Res<()> {
    let mut tls = rustls.connect(port)?;
    let mut buf = vec![0u8; BUF];
    let mut raw = vec![0u8; BUF];
    let mut app_open = true;
    loop {
        let app_fd = if app_open { app.as_raw_fd() } else { -1 };
        let (from_app, from_net) = poll2(app_fd, tls.raw_fd())?;
        if from_net && !from_server(&mut tls, &mut app, &mut raw, &mut buf)? {
            // The server's close_notify: the client gets EOF.
            let _ = app.shutdown(Shutdown::Both);
            return Ok(());
        }
        if from_app {
            match app.read(&mut buf)? {
                0 => {
                    tls.close_write()?;
                    app_open = false;
                }
                n => tls.write(&buf[..n])?,
            }
        }
    }
}

/// Moves what the server sent, as far as the socket holds it now, to the
/// client: one large read, decrypted into one large write (psmd's shape).
/// False once the server's close_notify arrived.
fn from_server(tls: &mut Tls, app: &mut UnixStream, raw: &mut [u8], buf: &mut [u8]) -> Res<bool> {
    let Some(n) = tls.recv_nowait(raw)? else { return Ok(true) };
    let mut rest = &raw[..n];
    let mut filled = 0;
    let mut open = true;
    let mut eof_told = false;
    loop {
        // rustls holds little plaintext at a time: take it out between records.
        while open {
            match tls.buffered(&mut buf[filled..])? {
                None => break,
                Some(0) => open = false,
                Some(k) => {
                    filled += k;
                    if filled == buf.len() {
                        app.write_all(buf)?;
                        filled = 0;
                    }
                }
            }
        }
        if !open {
            break;
        }
        if !rest.is_empty() {
            tls.take_records(&mut rest)?;
        } else if n == 0 && !eof_told {
            // The end of the stream, which rustls must hear of.
            tls.take_records(&mut rest)?;
            eof_told = true;
        } else {
            break;
        }
    }
    if filled > 0 {
        app.write_all(&buf[..filled])?;
    }
    Ok(open)
}
