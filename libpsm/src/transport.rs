//! Platform code for both sides: where the socket lives, how its directory is
//! checked, peer credentials, and passing descriptors with `SCM_RIGHTS`.
//! Everything Unix-specific that the protocol relies on lives here, so that
//! another platform needs one new module rather than edits everywhere.

use crate::error::{Code, Error, Result};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Descriptors accepted in one `recvmsg`; more means a confused peer.
const MAX_FDS_PER_MSG: usize = 4;

pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// `$PSM_SOCKET`, else `$XDG_RUNTIME_DIR/psm/control`, else `/tmp/psm-$UID/control`.
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PSM_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Path::new(&dir).join("psm").join("control");
    }
    PathBuf::from(format!("/tmp/psm-{}", euid())).join("control")
}

/// The directory holding the socket, which must be private to the user.
pub fn socket_dir(socket: &Path) -> Result<&Path> {
    socket.parent().filter(|p| !p.as_os_str().is_empty()).ok_or_else(|| {
        Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!("socket path {} has no directory", socket.display()),
        )
    })
}

/// Creates `dir` (mode 0700) if it is missing, then checks it: a real
/// directory (not a symlink), owned by us, with no group or other access.
/// A directory anyone else can write to would let them swap our socket for
/// theirs and read every request.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::new(
                Code::PSM_ERR_PERMISSION_DENIED,
                format!("cannot create socket directory {}: {e}", dir.display()),
            ));
        }
    }
    check_private_dir(dir)
}

pub fn check_private_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| {
        Error::new(Code::PSM_ERR_PERMISSION_DENIED, format!("socket directory {}: {e}", dir.display()))
    })?;
    let denied = |why: String| Err(Error::new(Code::PSM_ERR_PERMISSION_DENIED, why));
    if !meta.file_type().is_dir() {
        return denied(format!(
            "socket directory {} is not a directory (a symlink or file); remove it",
            dir.display()
        ));
    }
    if meta.uid() != euid() {
        return denied(format!(
            "socket directory {} is owned by uid {}; expected uid {} (remove it or fix its owner)",
            dir.display(),
            meta.uid(),
            euid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return denied(format!(
            "socket directory {} is mode {:04o}; expected 0700 (chmod 700 {})",
            dir.display(),
            mode,
            dir.display()
        ));
    }
    Ok(())
}

/// The peer's (pid, uid, gid) as the kernel recorded them at connect time.
pub fn peer_credentials(fd: &impl AsRawFd) -> io::Result<(i32, u32, u32)> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) };
    let cred = getsockopt(&fd, PeerCredentials).map_err(io::Error::from)?;
    Ok((cred.pid(), cred.uid(), cred.gid()))
}

/// One `sendmsg` with `MSG_NOSIGNAL`; `fds` ride on the first byte sent.
/// Returns the number of bytes written (the descriptors are sent when it is
/// non-zero).
pub fn send_with_fds(fd: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let iov = [IoSlice::new(bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(fd, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// Writes all of `bytes` to a blocking socket without raising SIGPIPE.
pub fn send_all(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = send_with_fds(fd, bytes, &[])?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// One `recvmsg`: data into `buf`, received descriptors (close-on-exec)
/// appended to `fds`. Returns 0 at end of stream.
pub fn recv_with_fds(fd: RawFd, buf: &mut [u8], fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS_PER_MSG]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.map_err(io::Error::from)?,
        };
        let n = msg.bytes;
        let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: the kernel just installed these descriptors in
                    // our table; nothing else owns them.
                    fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
                }
            }
        }
        if truncated {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "peer sent more descriptors than expected",
            ));
        }
        return Ok(n);
    }
}

/// A connected pair of stream sockets, both close-on-exec.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType};
    nix::sys::socket::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .map_err(io::Error::from)
}

/// A select()-able descriptor for applications: an epoll set holding the
/// control socket (bytes from psmd not yet read) and an eventfd that the
/// client raises while events sit in its queue. Readable means "call
/// `psm_next_event`".
pub struct Notifier {
    epoll: OwnedFd,
    eventfd: OwnedFd,
    raised: bool,
}

impl Notifier {
    pub fn new(socket: RawFd) -> io::Result<Notifier> {
        // SAFETY: plain syscalls; each result is checked and owned at once.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(io::Error::last_os_error());
        }
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
        for fd in [socket, eventfd.as_raw_fd()] {
            let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: fd as u64 };
            if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Notifier { epoll, eventfd, raised: false })
    }

    pub fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Makes [`fd`](Self::fd) readable until [`lower`](Self::lower).
    pub fn raise(&mut self) {
        if !self.raised {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
            unsafe { libc::write(self.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            self.raised = true;
        }
    }

    pub fn lower(&mut self) {
        if self.raised {
            let mut v: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 from our own eventfd.
            unsafe { libc::read(self.eventfd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
            self.raised = false;
        }
    }
}

/// Waits until `fd` is readable or `timeout` passes (None: forever).
/// Returns false on timeout.
pub fn wait_readable(fd: RawFd, timeout: Option<std::time::Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                // Round up so we never wake just before the deadline.
                let ms = left.as_millis() + u128::from(left.subsec_nanos() % 1_000_000 != 0);
                ms.min(i32::MAX as u128) as i32
            }
        };
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd on the stack.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r > 0 {
            return Ok(true);
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_dir_is_created_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("psm");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn group_readable_dir_is_refused_with_the_mode_in_the_message() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("psm");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_private_dir(&dir).unwrap_err();
        assert_eq!(err.code, Code::PSM_ERR_PERMISSION_DENIED);
        assert!(err.message.contains("mode 0755; expected 0700"), "{}", err.message);
    }

    #[test]
    fn symlinked_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        ensure_private_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = ensure_private_dir(&link).unwrap_err();
        assert!(err.message.contains("not a directory"), "{}", err.message);
    }

    #[test]
    fn descriptors_travel_with_data() {
        let (a, b) = socketpair().unwrap();
        let (x, _y) = socketpair().unwrap();
        assert_eq!(send_with_fds(a.as_raw_fd(), b"hi", &[x.as_raw_fd()]).unwrap(), 2);
        let mut buf = [0u8; 8];
        let mut fds = VecDeque::new();
        assert_eq!(recv_with_fds(b.as_raw_fd(), &mut buf, &mut fds).unwrap(), 2);
        assert_eq!(fds.len(), 1);
        drop(a);
        assert_eq!(recv_with_fds(b.as_raw_fd(), &mut buf, &mut fds).unwrap(), 0);
    }
}
