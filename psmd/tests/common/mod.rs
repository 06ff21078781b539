//! Shared fixtures for the daemon integration tests: a real psmd on a
//! private socket, raw protocol connections, and re-running this test
//! binary as a separate client process.

#![allow(dead_code)]

pub mod browser;
pub mod certs;
pub mod smime;
pub mod softhsm;
pub mod tls;
pub mod web;

use psm::proto::{FrameReader, Request, RequestFrame, ServerFrame, decode_server_frame, encode_request};
use psm::{Client, ConnectFlags};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PSMD: &str = env!("CARGO_BIN_EXE_psmd");

/// How long fixtures wait for the daemon to do something before failing
/// the test (a hang guard, not a performance assertion).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A private runtime directory (0700) holding the socket.
pub struct RuntimeDir {
    pub dir: tempfile::TempDir,
    /// Environment variables psmd started for this directory gets.
    pub env: Vec<(String, std::ffi::OsString)>,
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        // PSM_TEST_KEEP=1 keeps runtime dirs (and psmd.log) for debugging.
        if std::env::var_os("PSM_TEST_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept {}", self.dir.path().display());
        }
    }
}

impl RuntimeDir {
    pub fn new() -> RuntimeDir {
        let dir = tempfile::Builder::new().prefix("psm-test-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        RuntimeDir { dir, env: Vec::new() }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("psm").join("control")
    }

    pub fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// Where psmd started for this directory looks for the user's
    /// config.toml (`$PSM_CONFIG`); there is none until a test writes it.
    pub fn user_config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The system policy psmd started for this directory reads
    /// (`$PSM_POLICY`), if a test wrote one ([`RuntimeDir::write_policy`]).
    pub fn policy(&self) -> PathBuf {
        self.dir.path().join("etc").join("policy.toml")
    }

    /// Writes the policy where psmd will read it: in a directory only its
    /// owner may write, as psmd demands.
    pub fn write_policy(&self, text: &str) {
        let etc = self.dir.path().join("etc");
        let _ = std::fs::create_dir(&etc);
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(self.policy(), text).unwrap();
        std::fs::set_permissions(self.policy(), std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// An empty directory to use as `SSL_CERT_DIR`: no system anchors.
    pub fn no_anchors(&self) -> PathBuf {
        let d = self.dir.path().join("no-anchors");
        let _ = std::fs::create_dir(&d);
        d
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("psm")
    }

    /// The pid psmd recorded in daemon.lock, if any.
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.socket_dir().join("daemon.lock")).ok()?.trim().parse().ok()
    }
}

/// A psmd run in the foreground by the test (with `--test-hooks`).
pub struct Daemon {
    pub rt: RuntimeDir,
    pub child: Option<Child>,
    /// The connection `status()` asks through. It is one of the daemon's
    /// sessions for the whole test, so session counts include it.
    observer: Option<Client>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Daemon {
        Daemon::start_limited(extra, None)
    }

    /// A psmd under the system policy `text`.
    pub fn start_with_policy(text: &str) -> Daemon {
        let rt = RuntimeDir::new();
        rt.write_policy(text);
        Daemon::start_in(rt)
    }

    /// A psmd for a runtime directory set up by the test (its policy,
    /// its environment).
    pub fn start_in(rt: RuntimeDir) -> Daemon {
        let child = spawn_psmd_in(&rt, &[], None);
        let mut d = Daemon { rt, child: Some(child), observer: None };
        wait_until("psmd accepts connections", || UnixStream::connect(d.socket()).is_ok());
        d.observer = Some(d.client());
        d
    }

    /// A psmd whose log (stderr) goes to `log`.
    pub fn start_logging(extra: &[&str], log: std::fs::File) -> Daemon {
        let rt = RuntimeDir::new();
        let child = spawn_psmd_with(&rt, extra, None, Stdio::from(log));
        let mut d = Daemon { rt, child: Some(child), observer: None };
        wait_until("psmd accepts connections", || UnixStream::connect(d.socket()).is_ok());
        d.observer = Some(d.client());
        d
    }

    pub fn start_limited(extra: &[&str], max_fds: Option<u64>) -> Daemon {
        let rt = RuntimeDir::new();
        let child = spawn_psmd_in(&rt, extra, max_fds);
        let mut d = Daemon { rt, child: Some(child), observer: None };
        wait_until("psmd accepts connections", || UnixStream::connect(d.socket()).is_ok());
        d.observer = Some(d.client());
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.rt.socket()
    }

    /// A new psmd on the same runtime dir and profile, after `old` exited.
    pub fn restart_in(mut old: Daemon) -> Daemon {
        let rt = std::mem::replace(&mut old.rt, RuntimeDir::new());
        drop(old);
        let child = spawn_psmd_in(&rt, &[], None);
        let mut d = Daemon { rt, child: Some(child), observer: None };
        wait_until("psmd accepts connections", || UnixStream::connect(d.socket()).is_ok());
        d.observer = Some(d.client());
        d
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn client(&self) -> Client {
        Client::connect_to(&self.socket(), "psmd-test", ConnectFlags { no_spawn: true, no_dialogs: true })
            .unwrap()
    }

    pub fn raw(&self) -> RawConn {
        RawConn::connect(&self.socket())
    }

    /// Daemon status as JSON (asked through the observer session).
    pub fn status(&self) -> serde_json::Value {
        let observer = self.observer.as_ref().unwrap();
        serde_json::from_str(&observer.status_json().unwrap()).unwrap()
    }

    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the daemon to exit and returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        self.child.take().unwrap().wait().unwrap().code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts psmd for `rt` (its socket and profile, no system anchors) with at
/// most `max_fds` open descriptors (soft and hard).
pub fn spawn_psmd_in(rt: &RuntimeDir, extra: &[&str], max_fds: Option<u64>) -> Child {
    spawn_psmd_with(rt, extra, max_fds, Stdio::inherit())
}

pub fn spawn_psmd_with(rt: &RuntimeDir, extra: &[&str], max_fds: Option<u64>, stderr: Stdio) -> Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(PSMD);
    cmd.env("PSM_PROFILE", rt.profile()).env_remove("SSL_CERT_FILE").env("SSL_CERT_DIR", rt.no_anchors());
    // Not the developer's own ~/.config/psm/config.toml.
    cmd.env("PSM_CONFIG", rt.user_config());
    if rt.policy().exists() {
        cmd.env("PSM_POLICY", rt.policy());
    }
    cmd.envs(rt.env.iter().map(|(k, v)| (k, v)));
    if let Some(n) = max_fds {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.arg("--socket")
        .arg(rt.socket())
        .arg("--test-hooks")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// A child process killed and reaped when dropped, so a failing test never
/// leaves a psmd behind (holding the test runner's output pipe open).
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `psmd` with a throwaway profile and no system anchors, for tests that
/// run it by hand (the profile lives as long as the test process).
pub fn psmd_command() -> Command {
    static PROFILE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = PROFILE.get_or_init(|| tempfile::tempdir().unwrap());
    let mut cmd = Command::new(PSMD);
    cmd.env("PSM_PROFILE", dir.path().join("profile"))
        .env("SSL_CERT_FILE", "/dev/null")
        .env("PSM_CONFIG", dir.path().join("config.toml"));
    cmd
}

pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Polls `cond` until it holds; panics after [`PATIENCE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Builds the PKCS#11 test module `psmd/tests/pkcs11/{name}.c` (a wrapper
/// over SoftHSM) into a shared object, once per process, and returns its
/// path: `lib{name}.so` in a directory of the target's tmp dir. Both are
/// made 0755, as psmd refuses a module that its group or others could
/// replace. Another test binary may build the same module at the same
/// time: each compiles to a file of its own and renames it into place.
pub fn pkcs11_test_module(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<std::collections::BTreeMap<String, PathBuf>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(out) = built.get(name) {
        return out.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pkcs11").join(format!("{name}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pkcs11-modules");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.join(format!("lib{name}.so"));
    let partial = dir.join(format!(".lib{name}.so.{}", std::process::id()));
    const FLAGS: &[&str] = &["-shared", "-fPIC", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-pthread"];
    let mut cc = Command::new("cc");
    cc.args(FLAGS).arg("-I/usr/include/p11-kit-1").arg("-o").arg(&partial).arg(&src).arg("-ldl");
    let result = cc.output().unwrap_or_else(|e| panic!("{cc:?}: {e}"));
    assert!(result.status.success(), "{cc:?}:\n{}", String::from_utf8_lossy(&result.stderr));
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&partial, &out).unwrap();
    built.insert(name.to_owned(), out.clone());
    out
}

/// A connection speaking the wire protocol by hand, for hostile input.
pub struct RawConn {
    pub stream: UnixStream,
    reader: FrameReader,
    pub fds: std::collections::VecDeque<std::os::fd::OwnedFd>,
}

impl RawConn {
    pub fn connect(socket: &Path) -> RawConn {
        let stream = UnixStream::connect(socket).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        RawConn { stream, reader: FrameReader::new(), fds: Default::default() }
    }

    pub fn send(&mut self, id: u64, request: Request) {
        let mut out = Vec::new();
        encode_request(&RequestFrame { id, request }, &mut out).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    pub fn hello(&mut self) {
        self.send(0, hello_request());
        match self.recv() {
            Some(ServerFrame::Reply { id: 0, result: Ok(_) }) => {}
            other => panic!("hello failed: {other:?}"),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends a frame with this body (length prefix added).
    pub fn send_body(&mut self, body: &[u8]) {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        self.send_raw(&out);
    }

    /// The next frame, or None at end of stream. Descriptors that come with
    /// frames (data channels) are kept in `fds`, in order.
    pub fn recv(&mut self) -> Option<ServerFrame> {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 65536];
        loop {
            if let Some(body) = self.reader.next_frame().unwrap() {
                return Some(decode_server_frame(body).unwrap());
            }
            let n = psm::transport::recv_with_fds(self.stream.as_raw_fd(), &mut buf, &mut self.fds)
                .expect("read from psmd (timed out?)");
            if n == 0 {
                return None;
            }
            self.reader.push(&buf[..n]);
        }
    }

    /// True when the daemon closed the connection (without sending anything).
    pub fn closed_without_reply(&mut self) -> bool {
        let mut buf = [0u8; 16];
        match self.stream.read(&mut buf) {
            Ok(0) => true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
            _ => false,
        }
    }
}

pub fn hello_request() -> Request {
    Request::Hello {
        version_min: psm::proto::PROTOCOL_MIN,
        version_max: psm::proto::PROTOCOL_MAX,
        app_name: "raw-test".into(),
        flags: 0,
    }
}

/// Runs this test binary's `child_client` test in a new process: it
/// connects to `socket` with auto-start (psmd from `PSM_DAEMON`), prints
/// `pid=<daemon pid> session=<id>` and holds its session until its stdin
/// closes.
pub fn spawn_child_client(socket: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_client", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env("PSM_TEST_CHILD_SOCKET", socket)
        .env("PSM_DAEMON", PSMD)
        .env("PSM_PROFILE", socket.parent().unwrap().parent().unwrap().join("profile"))
        .env("SSL_CERT_FILE", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads the child's `pid=.. session=..` line.
pub fn child_report(child: &mut Child) -> (i32, u64) {
    use std::io::BufRead;
    let out = child.stdout.as_mut().unwrap();
    let mut reader = std::io::BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "child client exited without reporting");
        if let Some(rest) = line.trim().strip_prefix("pid=") {
            let (pid, session) = rest.split_once(" session=").unwrap();
            return (pid.parse().unwrap(), session.parse().unwrap());
        }
        if let Some(err) = line.trim().strip_prefix("error=") {
            panic!("child client failed: {err}");
        }
    }
}

/// The body of the `child_client` test (see [`spawn_child_client`]).
pub fn child_client_main() {
    let Some(socket) = std::env::var_os("PSM_TEST_CHILD_SOCKET") else {
        return;
    };
    match Client::connect_to(Path::new(&socket), "child", ConnectFlags { no_spawn: false, no_dialogs: true })
    {
        Ok(client) => {
            client.ping().unwrap();
            let status: serde_json::Value = serde_json::from_str(&client.status_json().unwrap()).unwrap();
            println!("pid={} session={}", status["pid"], client.session_id());
            std::io::stdout().flush().unwrap();
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        }
        Err(e) => {
            println!("error={e}");
        }
    }
}
