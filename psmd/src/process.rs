//! Process-wide hardening and detaching.

use crate::error::DaemonError;

/// Closes every descriptor above stderr.
pub fn close_inherited_fds() {
    // SAFETY: close_range on our own table; nothing is open yet but 0-2.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
}

/// No core dumps, no ptrace by other same-uid processes (`PR_SET_DUMPABLE 0`
/// makes /proc/PID/mem root-only), no SIGPIPE, private file modes.
pub fn harden() -> Result<(), DaemonError> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| DaemonError::os("prctl(PR_SET_DUMPABLE, 0)", e))?;
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(DaemonError::os("setrlimit(RLIMIT_CORE, 0)", std::io::Error::last_os_error()));
    }
    // SAFETY: setting a signal disposition to SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // Every connection and data channel is a descriptor: use all we may.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    Ok(())
}

/// Forks; the parent exits 0 at once (the socket is already listening, so
/// the process that spawned us may connect), the child leaves the caller's
/// session and process group so the terminal's signals do not reach it.
pub fn detach(in_parent: impl FnOnce(u32)) -> Result<(), DaemonError> {
    // SAFETY: called before any thread exists (the pool starts later).
    match unsafe { nix::unistd::fork() }.map_err(|e| DaemonError::os("fork", e))? {
        nix::unistd::ForkResult::Parent { child } => {
            in_parent(child.as_raw() as u32);
            // SAFETY: _exit skips destructors: the listener belongs to the child now.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Child => {
            nix::unistd::setsid().map_err(|e| DaemonError::os("setsid", e))?;
            let _ = std::env::set_current_dir("/");
            Ok(())
        }
    }
}
