//! The helper processes of a run: the TLS server (this binary's `server`
//! subcommand) and stunnel, each on a chosen CPU. Both die with us: the
//! handle kills them when dropped, the kernel (PR_SET_PDEATHSIG) if we are
//! killed.

use crate::Res;
use crate::server::Mode;
use crate::sys;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running helper; killed and reaped on drop.
pub struct Helper {
    child: Child,
    pub port: u16,
    /// The Unix socket it listens on, if that is how it is reached.
    pub path: Option<PathBuf>,
}

impl Helper {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the child on `cpu`, and ends it when we die.
fn placed(cmd: &mut Command, cpu: usize) -> &mut Command {
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            sys::pin(0, cpu)
        })
    }
}

/// This program, to run a subcommand of it: our own executable even if a
/// rebuild replaced the file meanwhile.
fn ourselves() -> Res<Command> {
    let exe = match Path::new("/proc/self/exe").exists() {
        true => PathBuf::from("/proc/self/exe"),
        false => std::env::current_exe()?,
    };
    Ok(Command::new(exe))
}

/// Spawns `cmd` on `cpu` and waits for the port it prints when ready.
fn start_ours(cmd: &mut Command, cpu: usize, what: &str) -> Res<(Child, u16)> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = placed(cmd, cpu).spawn()?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout).read_line(&mut line)?;
    match line.trim().parse() {
        Ok(port) => Ok((child, port)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("the {what} did not start").into())
        }
    }
}

/// Starts `tls-bench server` for `mode` on `cpu`, with the certificates
/// in `dir`; returns once it listens.
pub fn server(dir: &Path, mode: Mode, cpu: usize) -> Res<Helper> {
    let bytes = match mode {
        Mode::Stream(n) => n,
        _ => 0,
    };
    let mut cmd = ourselves()?;
    cmd.arg("server").arg("--dir").arg(dir).arg("--mode").arg(mode.name());
    cmd.arg("--bytes").arg(bytes.to_string());
    let (child, port) = start_ours(&mut cmd, cpu, &format!("{} server", mode.name()))?;
    Ok(Helper { child, port, path: None })
}

/// Starts `tls-bench relay` on `cpu`, listening on `dir/relay-TAG.sock`,
/// relaying to `host`:`server_port`; its errors go to `dir/relay-TAG.log`.
pub fn relay(dir: &Path, tag: &str, host: &str, server_port: u16, cpu: usize) -> Res<Helper> {
    let path = dir.join(format!("relay-{tag}.sock"));
    let mut cmd = ourselves()?;
    cmd.stderr(std::fs::File::create(dir.join(format!("relay-{tag}.log")))?);
    cmd.arg("relay").arg("--dir").arg(dir).arg("--socket").arg(&path);
    cmd.arg("--host").arg(host).arg("--port").arg(server_port.to_string());
    let (child, _) = start_ours(&mut cmd, cpu, "relay")?;
    Ok(Helper { child, port: 0, path: Some(path) })
}

/// The stunnel binary: $STUNNEL, else stunnel4 or stunnel on $PATH.
pub fn find_stunnel() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STUNNEL").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|d| [d.join("stunnel4"), d.join("stunnel")]).find(|p| p.is_file())
}

/// stunnel in client mode on `cpu`: plain TCP on 127.0.0.1 (the returned
/// port) to TLS at 127.0.0.1:`server_port`, verifying the server against
/// `ca` for the name localhost. Its log is `dir/stunnel-TAG.log`.
pub fn stunnel(bin: &Path, dir: &Path, tag: &str, ca: &Path, server_port: u16, cpu: usize) -> Res<Helper> {
    let port = sys::free_port()?;
    let log = dir.join(format!("stunnel-{tag}.log"));
    let conf = dir.join(format!("stunnel-{tag}.conf"));
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\noutput = {log}\ndebug = err\n\n[bench]\nclient = yes\n\
             accept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{server_port}\nsni = localhost\n\
             verifyChain = yes\nCAfile = {ca}\ncheckHost = localhost\n\
             socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n",
            log = log.display(),
            ca = ca.display(),
        ),
    )?;
    let mut cmd = Command::new(bin);
    cmd.arg(&conf).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut helper = Helper { child: placed(&mut cmd, cpu).spawn()?, port, path: None };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sys::listening(port) {
        if let Some(status) = helper.child.try_wait()? {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("stunnel exited ({status}): {}", text.trim()).into());
        }
        if Instant::now() > deadline {
            return Err(format!("stunnel did not listen on port {port} within 10 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(helper)
}

/// What the relay or stunnel (`name`) logged: errors only (a failed
/// verification, say).
pub fn logged_errors(dir: &Path, name: &str, tag: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(format!("{name}-{tag}.log"))).ok()?;
    let first = text.lines().find(|l| !l.trim().is_empty())?;
    Some(format!("{} line(s) in its log, first: {first}", text.lines().count()))
}
