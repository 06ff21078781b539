//! Finding psmd and starting it on demand, race-free.
//!
//! try connect → take `spawn.lock` → try connect again → spawn psmd (no
//! shell) → wait for it to report readiness → connect. The lock makes fifty
//! applications starting at once produce exactly one daemon; the second
//! connect attempt lets every one but the first find the daemon the first
//! one started.

use crate::error::{Code, Error, Result};
use crate::transport;
use nix::fcntl::{Flock, FlockArg};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long we wait for another process's spawn of psmd (the lock holder).
const SPAWN_LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long a freshly spawned psmd may take to accept connections.
const DAEMON_READY_WAIT: Duration = Duration::from_secs(5);
/// First and longest pause between polls while waiting.
const BACKOFF_START: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_millis(50);

/// Connects to psmd at `socket`, starting it first when allowed.
pub(crate) fn connect(socket: &Path, allow_spawn: bool) -> Result<UnixStream> {
    let dir = transport::socket_dir(socket)?;
    if dir.exists() {
        // Never talk to a socket in a directory someone else controls: it
        // could be an impostor collecting our requests.
        transport::check_private_dir(dir)?;
        if let Some(s) = try_connect(socket)? {
            return Ok(s);
        }
    }
    if !allow_spawn {
        return Err(Error::new(
            Code::PSM_ERR_DISCONNECTED,
            format!("psmd is not running at {} and PSM_CONNECT_NO_SPAWN was given", socket.display()),
        ));
    }
    transport::ensure_private_dir(dir)?;
    let _lock = lock_spawn(dir)?;
    if let Some(s) = try_connect(socket)? {
        return Ok(s);
    }
    spawn_daemon(socket, dir)?;
    let deadline = Instant::now() + DAEMON_READY_WAIT;
    let mut pause = BACKOFF_START;
    loop {
        if let Some(s) = try_connect(socket)? {
            return Ok(s);
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                Code::PSM_ERR_DAEMON_START,
                format!(
                    "psmd started but {} accepts no connection; see {}",
                    socket.display(),
                    log_path(dir).display()
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(BACKOFF_MAX);
    }
}

/// Ok(None): nobody is listening (no socket, or a stale one).
fn try_connect(socket: &Path) -> Result<Option<UnixStream>> {
    match UnixStream::connect(socket) {
        Ok(s) => {
            // The directory check already keeps others out; this also
            // catches a socket swapped in after that check.
            let (_, uid, _) = transport::peer_credentials(&s).map_err(|e| {
                Error::new(Code::PSM_ERR_DISCONNECTED, format!("SO_PEERCRED on {}: {e}", socket.display()))
            })?;
            if uid != transport::euid() {
                return Err(Error::new(
                    Code::PSM_ERR_PERMISSION_DENIED,
                    format!(
                        "{} is served by uid {uid}, not by you; refusing to talk to it",
                        socket.display()
                    ),
                ));
            }
            Ok(Some(s))
        }
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => Ok(None),
        Err(e) => {
            Err(Error::new(Code::PSM_ERR_DISCONNECTED, format!("connecting to {}: {e}", socket.display())))
        }
    }
}

fn lock_spawn(dir: &Path) -> Result<Flock<std::fs::File>> {
    let path = dir.join("spawn.lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| Error::new(Code::PSM_ERR_DAEMON_START, format!("opening {}: {e}", path.display())))?;
    let deadline = Instant::now() + SPAWN_LOCK_WAIT;
    let mut pause = BACKOFF_START;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR)) => file = f,
            Err((_, e)) => {
                return Err(Error::new(
                    Code::PSM_ERR_DAEMON_START,
                    format!("locking {}: {e}", path.display()),
                ));
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                Code::PSM_ERR_DAEMON_START,
                format!(
                    "another process has held {} for {:?} while starting psmd",
                    path.display(),
                    SPAWN_LOCK_WAIT
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(BACKOFF_MAX);
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("psmd.log")
}

/// Runs `psmd --daemon --socket PATH`. psmd binds the socket, forks, and its
/// first process exits 0 once the socket accepts connections, so waiting for
/// that process is both the readiness check and the reaping (no zombie is
/// left in the application).
fn spawn_daemon(socket: &Path, dir: &Path) -> Result<()> {
    let daemon = find_daemon().ok_or_else(|| {
        Error::new(
            Code::PSM_ERR_DAEMON_START,
            "cannot find psmd: set PSM_DAEMON, install it in <prefix>/libexec, or put it on PATH",
        )
    })?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(log_path(dir))
        .map_err(|e| {
            Error::new(Code::PSM_ERR_DAEMON_START, format!("opening {}: {e}", log_path(dir).display()))
        })?;
    let mut child = Command::new(&daemon)
        .arg("--daemon")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| Error::new(Code::PSM_ERR_DAEMON_START, format!("running {}: {e}", daemon.display())))?;
    let deadline = Instant::now() + DAEMON_READY_WAIT;
    let mut pause = BACKOFF_START;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(Error::new(
                    Code::PSM_ERR_DAEMON_START,
                    format!("{} failed ({status}); see {}", daemon.display(), log_path(dir).display()),
                ));
            }
            Ok(None) => {}
            // SIGCHLD ignored by the host: the kernel reaped it for us.
            Err(_) => return Ok(()),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::new(
                Code::PSM_ERR_DAEMON_START,
                format!(
                    "{} did not become ready within {:?}; see {}",
                    daemon.display(),
                    DAEMON_READY_WAIT,
                    log_path(dir).display()
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(BACKOFF_MAX);
    }
}

/// `$PSM_DAEMON`, else `libexec/psmd` under the prefix this library (or the
/// program it is linked into) was installed to, else `psmd` beside
/// `libpsm.so` (a build tree), else `psmd` in an absolute `PATH` entry.
/// psmd will hold the user's keys, so a relative `PATH` entry (the current
/// directory) or the directory of a statically linked program is never
/// searched: an attacker's file there must not become the daemon.
pub fn find_daemon() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PSM_DAEMON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Some((dir, shared_lib)) = own_dir() {
        candidates.push(dir.join("../libexec/psmd"));
        candidates.push(dir.join("../../libexec/psmd")); // lib/<multiarch>/
        if shared_lib {
            candidates.push(dir.join("psmd"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).filter(|d| d.is_absolute()).map(|d| d.join("psmd")));
    }
    candidates.into_iter().find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Directory of the object this code is in, and whether that object is a
/// shared library (libpsm.so) rather than a program linking libpsm.a.
fn own_dir() -> Option<(PathBuf, bool)> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`.
    let ok = unsafe { libc::dladdr(own_dir as *const libc::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated path owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.to_bytes()));
    let path = std::fs::canonicalize(&path).ok()?;
    let exe = std::fs::canonicalize("/proc/self/exe").ok();
    let shared_lib = exe.as_deref() != Some(path.as_path());
    Some((path.parent()?.to_path_buf(), shared_lib))
}
