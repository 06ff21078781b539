//! Socket activation (systemd's psmd.socket): psmd takes over a listening
//! socket passed as fd 3 with LISTEN_FDS/LISTEN_PID, closes everything
//! else it inherited, leaves the socket in place when it stops (so that
//! connections made meanwhile wait for the next psmd), and refuses a
//! descriptor that is not a listening Unix socket.

mod common;

use common::{PSMD, RawConn, Reaped, RuntimeDir, wait_until};
use psm::proto::{Reply, ServerFrame};
use psm::{Client, ConnectFlags};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// psmd started as systemd starts it: `listen` as fd 3, LISTEN_FDS=`fds`,
/// LISTEN_PID its own pid (or another one when `wrong_pid`), and
/// `extra` as fd 4, a descriptor it must not keep.
fn activated(
    rt: &RuntimeDir,
    listen: RawFd,
    fds: u32,
    wrong_pid: bool,
    extra: RawFd,
    args: &[&str],
) -> Command {
    let script = if wrong_pid {
        format!("LISTEN_PID=1 LISTEN_FDS={fds} exec \"$0\" \"$@\"")
    } else {
        // The shell's $$ is psmd's pid after exec.
        format!("LISTEN_PID=$$ LISTEN_FDS={fds} exec \"$0\" \"$@\"")
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(PSMD)
        .args(args)
        .env("PSM_PROFILE", rt.profile())
        .env_remove("SSL_CERT_FILE")
        .env("SSL_CERT_DIR", rt.no_anchors())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only dup/dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let l = libc::fcntl(listen, libc::F_DUPFD, 100);
            let e = libc::fcntl(extra, libc::F_DUPFD, 100);
            if l < 0 || e < 0 || libc::dup2(l, 3) < 0 || libc::dup2(e, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// A file whose descriptor psmd inherits and must close.
fn marker(rt: &RuntimeDir) -> std::fs::File {
    std::fs::File::create(rt.dir.path().join("inherited-marker")).unwrap()
}

fn holds_marker(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|p| p.to_string_lossy().contains("inherited-marker")))
}

fn listener(rt: &RuntimeDir) -> UnixListener {
    std::fs::create_dir_all(rt.socket_dir()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(rt.socket_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    UnixListener::bind(rt.socket()).unwrap()
}

fn ping(rt: &RuntimeDir) {
    let c = Client::connect_to(
        &rt.socket(),
        "activation-test",
        ConnectFlags { no_spawn: true, no_dialogs: true },
    )
    .unwrap();
    c.ping().unwrap();
}

#[test]
fn psmd_takes_over_an_activated_socket_and_leaves_it_for_the_next_start() {
    let rt = RuntimeDir::new();
    let l = listener(&rt);
    let m = marker(&rt);
    // No --socket: the activation socket is where psmd listens.
    let mut child = Reaped(activated(&rt, l.as_raw_fd(), 1, false, m.as_raw_fd(), &[]).spawn().unwrap());
    wait_until("psmd answers on the activated socket", || {
        Client::connect_to(&rt.socket(), "t", ConnectFlags { no_spawn: true, no_dialogs: true }).is_ok()
    });
    ping(&rt);
    assert!(!holds_marker(child.0.id()), "psmd kept a descriptor it inherited");

    // Stopping leaves the socket (systemd's) in place.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(rt.socket().exists(), "psmd removed the activation socket");

    // A connection made while no psmd runs waits in the backlog, and the
    // next psmd answers it.
    let mut waiting = RawConn::connect(&rt.socket());
    let _next = Reaped(activated(&rt, l.as_raw_fd(), 1, false, m.as_raw_fd(), &[]).spawn().unwrap());
    waiting.send(1, common::hello_request());
    match waiting.recv() {
        Some(ServerFrame::Reply { id: 1, result: Ok(Reply::Hello { .. }) }) => {}
        other => panic!("no Hello reply from the next psmd: {other:?}"),
    }
    ping(&rt);
}

#[test]
fn activation_for_another_process_is_ignored() {
    let rt = RuntimeDir::new();
    let l = listener(&rt);
    let m = marker(&rt);
    // LISTEN_PID names another process: psmd binds --socket itself and
    // closes the descriptors, fd 3 included.
    let other = rt.dir.path().join("own").join("control");
    let socket = other.to_string_lossy().into_owned();
    let child = Reaped(
        activated(&rt, l.as_raw_fd(), 1, true, m.as_raw_fd(), &["--socket", &socket]).spawn().unwrap(),
    );
    wait_until("psmd answers on its own socket", || {
        Client::connect_to(&other, "t", ConnectFlags { no_spawn: true, no_dialogs: true }).is_ok()
    });
    assert!(!holds_marker(child.0.id()));
    let fd3 = std::fs::read_link(format!("/proc/{}/fd/3", child.0.id())).ok();
    let ours = std::fs::metadata(rt.socket()).ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    // Whatever fd 3 is now, it is not the listener it was handed.
    if let (Some(link), Some(ino)) = (fd3, ours) {
        assert!(!link.to_string_lossy().contains(&format!("socket:[{ino}]")), "{}", link.display());
    }
}

#[test]
fn an_activation_descriptor_that_is_not_a_listening_unix_socket_is_refused() {
    let rt = RuntimeDir::new();
    let m = marker(&rt);
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = activated(&rt, tcp.as_raw_fd(), 1, false, m.as_raw_fd(), &[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("not a listening Unix stream socket"), "{err}");

    let l = listener(&rt);
    let out = activated(&rt, l.as_raw_fd(), 2, false, m.as_raw_fd(), &[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("exactly one"), "{err}");
}
