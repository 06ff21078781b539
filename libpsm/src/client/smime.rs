//! S/MIME and CMS: sign, verify, encrypt, decrypt and certs-only messages.
//! Keys stay in psmd. Messages up to `MAX_INLINE_SMIME` travel in the
//! request; larger ones go through a data channel, which the `*_stream`
//! functions also offer for input and output of any size.

use super::{Client, unexpected};
use crate::error::{Code, Error, Result};
use crate::proto::{CertInfo, MAX_INLINE_SMIME, Reply, Request, SmimeInfo, SmimeOp};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

impl Client {
    /// Shows psm's dialog about a message it verified or decrypted for this
    /// connection (`SmimeInfo::result_id`); returns once the user closed it.
    pub fn smime_show_info(&self, result_id: u64) -> Result<()> {
        match self.conn.call(Request::SmimeShowInfo { result_id })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Signs `data` (a MIME entity; raw bytes with `SMIME_BINARY`) with the
    /// certificate `signer` (nickname, e-mail address or "sha256:<hex>")
    /// and its key. `flags`: `SMIME_*`. Returns the S/MIME entity (or DER,
    /// PEM).
    pub fn smime_sign(&self, signer: &str, flags: u32, data: &[u8]) -> Result<Vec<u8>> {
        if data.len() > MAX_INLINE_SMIME {
            let mut out = Vec::new();
            self.smime_stream(SmimeOp::Sign { signer: signer.into() }, flags, &mut &data[..], &mut out)?;
            return Ok(out);
        }
        self.bytes(Request::SmimeSign { signer: signer.into(), flags, data: data.to_vec() })
    }

    /// Encrypts `data` to `recipients` (each a nickname, e-mail address or
    /// "sha256:<hex>"; include your own certificate to read the sent copy).
    pub fn smime_encrypt(&self, recipients: &[&str], flags: u32, data: &[u8]) -> Result<Vec<u8>> {
        let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
        if data.len() > MAX_INLINE_SMIME {
            let mut out = Vec::new();
            self.smime_stream(SmimeOp::Encrypt { recipients }, flags, &mut &data[..], &mut out)?;
            return Ok(out);
        }
        self.bytes(Request::SmimeEncrypt { recipients, flags, data: data.to_vec() })
    }

    /// Verifies a signed message (S/MIME entity, DER or PEM). `content`:
    /// the signed content of a detached signature given apart. `from`: the
    /// sender's address, which the signer's certificate must carry. `Ok`
    /// whenever the message could be read: the verdict is `status`.
    pub fn smime_verify(
        &self,
        msg: &[u8],
        content: Option<&[u8]>,
        from: Option<&str>,
        flags: u32,
    ) -> Result<SmimeInfo> {
        let from = from.map(str::to_string);
        match content {
            // A detached signature's content streams when large; the
            // signature itself always travels in the request.
            Some(c) if c.len() > MAX_INLINE_SMIME || msg.len() > MAX_INLINE_SMIME => {
                if msg.len() > MAX_INLINE_SMIME {
                    return Err(Error::new(
                        Code::PSM_ERR_INVALID_ARGUMENT,
                        "a detached signature larger than 512 KiB: no real signature is that large",
                    ));
                }
                let op = SmimeOp::Verify { signature: Some(crate::proto::ByteBuf::from(msg.to_vec())), from };
                self.smime_stream(op, flags, &mut &c[..], &mut std::io::sink())?
                    .ok_or_else(|| Error::new(Code::PSM_ERR_PROTOCOL, "verify stream without a result"))
            }
            None if msg.len() > MAX_INLINE_SMIME => {
                let mut out = Vec::new();
                let mut info = self
                    .smime_stream(SmimeOp::Verify { signature: None, from }, flags, &mut &msg[..], &mut out)?
                    .ok_or_else(|| Error::new(Code::PSM_ERR_PROTOCOL, "verify stream without a result"))?;
                info.content = crate::proto::ByteBuf::from(out);
                Ok(info)
            }
            _ => self.smime_info(Request::SmimeVerify {
                data: msg.to_vec(),
                content: content.map(|c| crate::proto::ByteBuf::from(c.to_vec())),
                from,
                flags,
            }),
        }
    }

    /// Decrypts a message with a key of the token (logging in through the
    /// prompt handler if one is set). With `SMIME_VERIFY_INNER`, a signed
    /// message inside is verified too, and the result says by whom.
    pub fn smime_decrypt(&self, msg: &[u8], from: Option<&str>, flags: u32) -> Result<SmimeInfo> {
        let from = from.map(str::to_string);
        if msg.len() > MAX_INLINE_SMIME {
            let mut out = Vec::new();
            let mut info = self
                .smime_stream(SmimeOp::Decrypt { from }, flags, &mut &msg[..], &mut out)?
                .ok_or_else(|| Error::new(Code::PSM_ERR_PROTOCOL, "decrypt stream without a result"))?;
            info.content = crate::proto::ByteBuf::from(out);
            return Ok(info);
        }
        self.smime_info(Request::SmimeDecrypt { data: msg.to_vec(), from, flags })
    }

    /// A certs-only message (.p7c) carrying `certs`.
    pub fn smime_certs_only(&self, certs: &[&str], flags: u32) -> Result<Vec<u8>> {
        self.bytes(Request::SmimeCertsOnly { certs: certs.iter().map(|c| c.to_string()).collect(), flags })
    }

    /// The certificates a certs-only (or signed) message carries, not imported.
    pub fn smime_read_certs(&self, msg: &[u8]) -> Result<Vec<CertInfo>> {
        if msg.len() > MAX_INLINE_SMIME {
            return Err(Error::new(Code::PSM_ERR_INVALID_ARGUMENT, "certs-only message larger than 512 KiB"));
        }
        match self.conn.call(Request::SmimeReadCerts { data: msg.to_vec() })?.0 {
            Reply::Certs(c) => Ok(c),
            other => Err(unexpected(&other)),
        }
    }

    /// Runs `op` over a data channel: reads `input` to its end, writes the
    /// output to `output` as psmd produces it (so neither side ever holds
    /// the whole message), and returns the result (for verify and decrypt).
    /// The data moves on a second thread while this one waits for psmd's
    /// result, so prompts (the token password) reach the prompt handler
    /// meanwhile, on this thread.
    pub fn smime_stream(
        &self,
        op: SmimeOp,
        flags: u32,
        input: &mut (dyn Read + Send),
        output: &mut (dyn Write + Send),
    ) -> Result<Option<SmimeInfo>> {
        let (channel, fd) = match self.conn.call(Request::SmimeStream { op, flags })? {
            (Reply::Channel { channel }, Some(fd)) => (channel, fd),
            (other, _) => return Err(unexpected(&other)),
        };
        let (result, pumped) = std::thread::scope(|scope| {
            let pumper =
                std::thread::Builder::new().name("psm-smime-pump".into()).spawn_scoped(scope, move || {
                    let r = pump(&fd, input, output);
                    // Closing our end tells psmd the input ended (or, after an
                    // error, lets it fail instead of waiting).
                    drop(fd);
                    r
                });
            let pumper = match pumper {
                Ok(p) => p,
                Err(e) => {
                    return (Err(Error::io("starting the stream thread", e)), Ok(()));
                }
            };
            let result = self.conn.call(Request::ChannelFinish { channel });
            let pumped = pumper
                .join()
                .unwrap_or_else(|_| Err(Error::new(Code::PSM_ERR_PANIC, "the stream thread panicked")));
            (result, pumped)
        });
        // psmd's verdict first: when it failed, the channel broke because of it.
        match (result, pumped) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok((Reply::Smime(info), _)), Ok(())) => Ok(Some(*info)),
            (Ok((Reply::Done, _)), Ok(())) => Ok(None),
            (Ok((other, _)), Ok(())) => Err(unexpected(&other)),
        }
    }

    fn smime_info(&self, request: Request) -> Result<SmimeInfo> {
        match self.conn.call(request)?.0 {
            Reply::Smime(i) => Ok(*i),
            other => Err(unexpected(&other)),
        }
    }
}

const PUMP_BUF: usize = 64 * 1024;

/// Writes `input` into the channel and copies what comes back to `output`
/// at the same time (psmd writes output while it still reads input; doing
/// one after the other would deadlock once both socket buffers fill).
fn pump(fd: &OwnedFd, input: &mut (dyn Read + Send), output: &mut (dyn Write + Send)) -> Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::{MsgFlags, Shutdown, recv, send, shutdown};
    let raw = fd.as_raw_fd();
    let mut inbuf = vec![0u8; PUMP_BUF];
    let mut outbuf = vec![0u8; PUMP_BUF];
    let (mut start, mut end) = (0usize, 0usize);
    let mut input_done = false;
    let broke = |e: nix::Error| Error::new(Code::PSM_ERR_IO, format!("data channel: {e}"));
    loop {
        if !input_done && start == end {
            let n = loop {
                match input.read(&mut inbuf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("reading the input", e)),
                }
            };
            if n == 0 {
                input_done = true;
                let _ = shutdown(raw, Shutdown::Write);
            } else {
                (start, end) = (0, n);
            }
        }
        let mut events = PollFlags::POLLIN;
        if start < end {
            events |= PollFlags::POLLOUT;
        }
        let mut fds = [PollFd::new(fd_borrow(fd), events)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(broke(e)),
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if revents.intersects(PollFlags::POLLNVAL) {
            return Err(Error::new(Code::PSM_ERR_IO, "the data channel's descriptor was closed"));
        }
        if revents.intersects(PollFlags::POLLOUT) && start < end {
            match send(raw, &inbuf[start..end], MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT) {
                Ok(n) => start += n,
                Err(nix::Error::EAGAIN | nix::Error::EINTR) => {}
                Err(e) => return Err(broke(e)),
            }
        }
        if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match recv(raw, &mut outbuf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    if start < end || !input_done {
                        // psmd stopped reading before the input ended:
                        // ChannelFinish tells why.
                        return Err(Error::new(
                            Code::PSM_ERR_IO,
                            "psmd ended the stream before the input ended",
                        ));
                    }
                    return Ok(());
                }
                Ok(n) => output.write_all(&outbuf[..n]).map_err(|e| Error::io("writing the output", e))?,
                Err(nix::Error::EAGAIN | nix::Error::EINTR) => {}
                Err(e) => return Err(broke(e)),
            }
        }
    }
}

fn fd_borrow(fd: &OwnedFd) -> std::os::fd::BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}
