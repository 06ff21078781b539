//! Binding the control socket: private directory, single instance, stale
//! socket recovery, mode 0600.

use crate::error::DaemonError;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long we wait for a dying predecessor to release `daemon.lock`.
const DYING_DAEMON_WAIT: Duration = Duration::from_secs(3);

/// A bound control socket and the lock that makes us the only psmd for it.
pub struct Bound {
    pub listener: UnixListener,
    pub path: PathBuf,
    /// (dev, ino) of the socket file we created, so that shutdown removes
    /// our socket and never a successor's; None for a socket activation
    /// passed us (its owner, systemd, keeps it for the next start).
    identity: Option<(u64, u64)>,
    _lock: Flock<File>,
}

impl Bound {
    /// Records the daemon's pid in `daemon.lock`, for tools and tests that
    /// need to signal it.
    pub fn record_pid(&self, pid: u32) {
        use std::io::{Seek, Write};
        let mut f: &File = &self._lock;
        let _ = f.set_len(0);
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = writeln!(f, "{pid}");
    }

    /// Removes the socket file if it is still the one we bound.
    pub fn remove_socket(&self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && Some((m.dev(), m.ino())) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub fn bind(path: &Path) -> Result<Bound, DaemonError> {
    let dir = psm::transport::socket_dir(path)?;
    psm::transport::ensure_private_dir(dir)?;
    let lock = lock_instance(dir, path)?;
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            // We hold the instance lock, so no psmd of ours owns this socket;
            // still, never steal a socket that answers.
            if UnixStream::connect(path).is_ok() {
                return Err(DaemonError::AlreadyRunning(format!(
                    "another process is listening on {}",
                    path.display()
                )));
            }
            // Only ever delete a socket: a mistyped --socket must not cost
            // the user a file.
            let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            });
            if !is_socket {
                return Err(DaemonError::Socket(format!(
                    "{} exists and is not a socket; choose another socket path",
                    path.display()
                )));
            }
            tracing::info!(socket = %path.display(), "removing stale socket");
            std::fs::remove_file(path)
                .map_err(|e| DaemonError::Socket(format!("removing stale socket {}: {e}", path.display())))?;
            UnixListener::bind(path)
                .map_err(|e| DaemonError::Socket(format!("binding {}: {e}", path.display())))?
        }
        Err(e) => {
            return Err(DaemonError::Socket(format!("binding {}: {e}", path.display())));
        }
    };
    // umask 077 already made it 0600; say so explicitly in case umask changes.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| DaemonError::Socket(format!("chmod 600 {}: {e}", path.display())))?;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| DaemonError::Socket(format!("{}: {e}", path.display())))?;
    listener.set_nonblocking(true).map_err(|e| DaemonError::os("set_nonblocking", e))?;
    Ok(Bound { listener, path: path.to_path_buf(), identity: Some((meta.dev(), meta.ino())), _lock: lock })
}

/// Takes over the listening socket that socket activation passed as `fd`
/// (systemd's psmd.socket): it must be a listening Unix stream socket
/// bound to a path, in a directory private to the user, and owned by us.
/// The instance lock is taken beside it, as for a socket we bind.
pub fn adopt(fd: std::os::fd::RawFd) -> Result<Bound, DaemonError> {
    use nix::sys::socket::{
        AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
    };
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
    let refuse = |why: String| DaemonError::Socket(format!("socket activation: descriptor {fd} {why}"));
    // SAFETY: socket activation hands fd 3 to us; main kept it open and
    // nothing else owns it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let listening =
        getsockopt(&borrowed, sockopt::AcceptConn).map_err(|e| refuse(format!("is not a socket ({e})")))?;
    let ty =
        getsockopt(&borrowed, sockopt::SockType).map_err(|e| refuse(format!("is not a socket ({e})")))?;
    let addr: SockaddrStorage = getsockname(fd).map_err(|e| refuse(format!("has no address ({e})")))?;
    if addr.family() != Some(AddressFamily::Unix) || ty != SockType::Stream || !listening {
        return Err(refuse(
            "is not a listening Unix stream socket (psmd.socket must say ListenStream=<path>)".into(),
        ));
    }
    let path = addr
        .as_unix_addr()
        .and_then(|u| u.path())
        .map(Path::to_path_buf)
        .ok_or_else(|| refuse("is not bound to a path".into()))?;
    let dir = psm::transport::socket_dir(&path)?;
    psm::transport::ensure_private_dir(dir)?;
    let meta =
        std::fs::symlink_metadata(&path).map_err(|e| refuse(format!("names {}: {e}", path.display())))?;
    // SAFETY: getuid cannot fail.
    if meta.uid() != unsafe { libc::getuid() } {
        return Err(refuse(format!("is bound to {}, which another user owns", path.display())));
    }
    let lock = lock_instance(dir, &path)?;
    // SAFETY: we take ownership of the activation descriptor.
    let listener = UnixListener::from(unsafe { OwnedFd::from_raw_fd(fd) });
    listener.set_nonblocking(true).map_err(|e| DaemonError::os("set_nonblocking", e))?;
    Ok(Bound { listener, path, identity: None, _lock: lock })
}

/// Takes `daemon.lock`, held for the daemon's lifetime. A daemon killed
/// with SIGKILL closes its socket a moment before the kernel drops its lock,
/// so while the lock is held but the socket does not answer we wait (up to
/// [`DYING_DAEMON_WAIT`]) rather than leave the application with no daemon.
fn lock_instance(dir: &Path, socket: &Path) -> Result<Flock<File>, DaemonError> {
    let path = dir.join("daemon.lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| DaemonError::Socket(format!("opening {}: {e}", path.display())))?;
    let deadline = Instant::now() + DYING_DAEMON_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(DaemonError::Socket(format!("locking {}: {e}", path.display()))),
        }
        if UnixStream::connect(socket).is_ok() || Instant::now() >= deadline {
            return Err(DaemonError::AlreadyRunning(format!("another psmd holds {}", path.display())));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
