//! Process-wide hardening and detaching.

use crate::error::DaemonError;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FD: i32 = 3;

/// Whether systemd (or anything speaking its protocol) started us with a
/// listening socket: `LISTEN_PID` is our pid and `LISTEN_FDS` is set. The
/// variables are removed either way, so that nothing we start inherits
/// them. Some(n): n descriptors from fd 3 were passed.
pub fn socket_activation() -> Option<u32> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    // SAFETY: called first thing in main, before any thread exists.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let ours = pid?.parse::<u32>().ok()? == std::process::id();
    if !ours {
        return None;
    }
    fds?.parse::<u32>().ok()
}

/// Closes every descriptor above stderr, except the `keep` passed by
/// socket activation (from fd 3).
pub fn close_inherited_fds(keep: u32) {
    let first = 3 + keep.min(1);
    // SAFETY: close_range on our own table; nothing is open yet but 0-2
    // and the activation socket.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
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
