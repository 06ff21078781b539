//! The daemon's life: auto-start races, kill -9 and stale sockets, SIGTERM,
//! single instance, directory checks, and refusing other users.

mod common;

use common::{Daemon, RuntimeDir, alive, child_report, spawn_child_client, wait_until};
use nix::sys::signal::Signal;
use psm::proto::Event;
use psm::{Client, Code, ConnectFlags};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Not a test of its own: the client process that other tests start.
#[test]
#[ignore]
fn child_client() {
    common::child_client_main();
}

fn psmd_processes_for(socket: &std::path::Path) -> Vec<i32> {
    let want = socket.to_str().unwrap();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"psmd")) && args.contains(&want.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

fn kill_daemon_of(rt: &RuntimeDir) {
    if let Some(pid) = rt.daemon_pid() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[test]
fn fifty_clients_at_once_start_exactly_one_daemon() {
    let rt = RuntimeDir::new();
    let mut children: Vec<_> = (0..50).map(|_| spawn_child_client(&rt.socket())).collect();
    let reports: Vec<(i32, u64)> = children.iter_mut().map(child_report).collect();
    let pid = reports[0].0;
    assert!(reports.iter().all(|r| r.0 == pid), "clients saw different daemons: {reports:?}");
    let mut sessions: Vec<u64> = reports.iter().map(|r| r.1).collect();
    sessions.sort();
    sessions.dedup();
    assert_eq!(sessions.len(), 50, "every client has its own session");
    assert_eq!(psmd_processes_for(&rt.socket()), vec![pid]);
    let c = Client::connect_to(&rt.socket(), "t", ConnectFlags { no_spawn: true, no_dialogs: true }).unwrap();
    let status: serde_json::Value = serde_json::from_str(&c.status_json().unwrap()).unwrap();
    assert_eq!(status["sessions"], 51);
    for mut ch in children {
        drop(ch.stdin.take());
        assert!(ch.wait().unwrap().success());
    }
    kill_daemon_of(&rt);
}

#[test]
fn kill_9_leaves_a_stale_socket_and_the_next_client_gets_a_new_daemon() {
    let rt = RuntimeDir::new();
    let mut first = spawn_child_client(&rt.socket());
    let (pid1, _) = child_report(&mut first);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid1), Signal::SIGKILL).unwrap();
    drop(first.stdin.take());
    let _ = first.wait();
    wait_until("the old daemon is gone", || !alive(pid1) || is_zombie(pid1));
    assert!(rt.socket().exists(), "kill -9 leaves the socket file behind");

    let mut second = spawn_child_client(&rt.socket());
    let (pid2, _) = child_report(&mut second);
    assert_ne!(pid1, pid2);
    drop(second.stdin.take());
    assert!(second.wait().unwrap().success());
    kill_daemon_of(&rt);
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

#[test]
fn calls_fail_promptly_with_disconnected_when_the_daemon_dies() {
    let d = Daemon::start();
    let c = d.client();
    let c2 = c.clone();
    let blocked = std::thread::spawn(move || c2.debug_sleep(10_000));
    std::thread::sleep(Duration::from_millis(100));
    d.signal(Signal::SIGKILL);
    let err = blocked.join().unwrap().unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_DISCONNECTED);
    assert_eq!(c.ping().unwrap_err().code, Code::PSM_ERR_DISCONNECTED);
    // The event side learns of it too, instead of waiting forever.
    assert_eq!(c.next_event(None).unwrap_err().code, Code::PSM_ERR_DISCONNECTED);
}

#[test]
fn sigterm_notifies_clients_removes_the_socket_and_exits_cleanly() {
    let mut d = Daemon::start();
    let c = d.client();
    assert_eq!(c.next_event(Some(Duration::ZERO)).unwrap(), None);
    d.signal(Signal::SIGTERM);
    // As an application's select() loop would: wait for the event fd, then
    // take the event without blocking.
    assert!(psm::transport::wait_readable(c.event_fd(), Some(common::PATIENCE)).unwrap());
    match c.next_event(Some(Duration::ZERO)).unwrap() {
        Some(Event::Shutdown { reason }) => assert!(reason.contains("signal"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.wait(), Some(0));
    assert!(!d.socket().exists(), "socket removed on clean shutdown");
    assert_eq!(c.ping().unwrap_err().code, Code::PSM_ERR_DISCONNECTED);
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let mut d = Daemon::start();
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait(), Some(0));
    assert!(!d.socket().exists());
}

#[test]
fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    let d = Daemon::start();
    let out = common::psmd_command().arg("--socket").arg(d.socket()).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    // Auto-start mode treats a running daemon as success.
    let out = common::psmd_command().arg("--daemon").arg("--socket").arg(d.socket()).output().unwrap();
    assert!(out.status.success());
    d.client().ping().unwrap();
}

#[test]
fn a_socket_directory_open_to_others_is_refused_by_daemon_and_client() {
    let rt = RuntimeDir::new();
    let dir = rt.socket_dir();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = common::psmd_command().arg("--socket").arg(rt.socket()).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is mode 0755; expected 0700"), "{stderr}");
    let err = Client::connect_to(&rt.socket(), "t", ConnectFlags::default()).unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_PERMISSION_DENIED);
    assert!(err.message.contains("expected 0700"), "{}", err.message);
}

#[test]
fn a_file_that_is_not_a_socket_is_never_removed() {
    let rt = RuntimeDir::new();
    std::fs::create_dir(rt.socket_dir()).unwrap();
    std::fs::set_permissions(rt.socket_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(rt.socket(), b"precious").unwrap();
    let out = common::psmd_command().arg("--socket").arg(rt.socket()).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a socket"));
    assert_eq!(std::fs::read(rt.socket()).unwrap(), b"precious");
}

#[test]
fn a_daemon_that_never_answers_hello_times_out() {
    let rt = RuntimeDir::new();
    std::fs::create_dir(rt.socket_dir()).unwrap();
    std::fs::set_permissions(rt.socket_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // Accepts (through the backlog) and never reads or writes.
    let _mute = std::os::unix::net::UnixListener::bind(rt.socket()).unwrap();
    let err =
        Client::connect_to(&rt.socket(), "t", ConnectFlags { no_spawn: true, no_dialogs: true }).unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_TIMEOUT);
    assert!(err.message.contains("did not answer Hello"), "{}", err.message);
}

#[test]
fn no_spawn_without_a_daemon_is_disconnected() {
    let rt = RuntimeDir::new();
    let err = Client::connect_to(&rt.socket(), "t", ConnectFlags { no_spawn: true, no_dialogs: false })
        .unwrap_err();
    assert_eq!(err.code, Code::PSM_ERR_DISCONNECTED);
    assert!(err.message.contains("not running"));
}

#[test]
fn the_socket_is_mode_0600_in_a_0700_directory() {
    let d = Daemon::start();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(d.socket()).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(d.rt.socket_dir()).unwrap().mode() & 0o777, 0o700);
}

#[test]
fn the_daemon_is_not_dumpable() {
    let d = Daemon::start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    // PR_SET_DUMPABLE 0 also makes /proc/PID owned by root; check the limit too.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert!(core.split_whitespace().nth(4) == Some("0"), "{core}");
    assert!(status.contains("State:"));
}

/// A process of another uid reaching the socket (the test opens the
/// directory and socket to everyone) is closed without a byte of reply.
#[test]
fn a_connection_from_another_uid_is_closed_without_a_reply() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as nobody");
        return;
    }
    let d = Daemon::start();
    let good = d.client();
    for p in [d.rt.dir.path().to_path_buf(), d.rt.socket_dir()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut hello = Vec::new();
    psm::proto::encode_request(
        &psm::proto::RequestFrame { id: 1, request: common::hello_request() },
        &mut hello,
    )
    .unwrap();
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(20)
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
except OSError:
    pass
try:
    print(len(s.recv(4096)))
except ConnectionResetError:
    print(0)
"#;
    let hex: String = hello.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script])
        .arg(d.socket())
        .arg(hex)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "client as nobody failed to run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "another uid got a reply");
    // (A fresh client would now refuse the 0711 directory, so ask the old one.)
    let status: serde_json::Value = serde_json::from_str(&good.status_json().unwrap()).unwrap();
    assert_eq!(status["sessions"], 2, "good + observer; nobody's connection is gone");
}
