//! The audit log (policy `audit.enabled`): one JSON line per private-key
//! use and per trust decision — when, which application, which
//! certificate, what, and the result — appended to `audit.log` in the
//! profile directory (0600, `O_APPEND`), and rotated to `audit.log.1` past
//! [`ROTATE_AT`]. It never holds secrets: no passwords, no key bytes, no
//! message content.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Size past which the log is rotated.
pub const ROTATE_AT: u64 = 8 * 1024 * 1024;

/// Who a session is, for the log lines.
#[derive(Clone, Debug)]
struct App {
    name: String,
    pid: i32,
    exe: Option<String>,
}

pub struct Audit {
    enabled: AtomicBool,
    path: Mutex<Option<PathBuf>>,
    apps: Mutex<HashMap<u64, App>>,
    rotate_at: u64,
}

impl Default for Audit {
    fn default() -> Audit {
        Audit {
            enabled: AtomicBool::new(false),
            path: Mutex::new(None),
            apps: Mutex::new(HashMap::new()),
            rotate_at: ROTATE_AT,
        }
    }
}

impl Audit {
    /// Where the log goes (the profile directory) and whether to write it.
    pub fn configure(&self, dir: Option<&Path>, enabled: bool) {
        if let Some(d) = dir {
            *self.path.lock().unwrap_or_else(|p| p.into_inner()) = Some(d.join("audit.log"));
        }
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// A session said Hello (or went: `None`).
    pub fn session(&self, id: u64, who: Option<(&str, i32, Option<&str>)>) {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        match who {
            Some((name, pid, exe)) => {
                apps.insert(id, App { name: name.to_string(), pid, exe: exe.map(str::to_string) });
            }
            None => {
                apps.remove(&id);
            }
        }
    }

    /// Records a key use: `op` with the certificate `cert_sha256` (made
    /// only when the log is on: key uses are a hot path), succeeded ("ok")
    /// or failed (its code).
    pub fn record_result<T>(
        &self,
        session: u64,
        op: &str,
        cert_sha256: impl FnOnce() -> String,
        result: &Result<T, psm::Error>,
    ) {
        if !self.enabled() {
            return;
        }
        let outcome = result.as_ref().map_or_else(|e| format!("{:?}", e.code), |_| "ok".to_string());
        self.record(session, op, &cert_sha256(), &outcome, None);
    }

    /// Records one event: `op` on the certificate `cert_sha256` (hex) for
    /// `session`, with `result` ("ok", an error code, a decision) and an
    /// optional `detail` (host:port).
    pub fn record(&self, session: u64, op: &str, cert_sha256: &str, result: &str, detail: Option<&str>) {
        if !self.enabled() {
            return;
        }
        let app = self.apps.lock().unwrap_or_else(|p| p.into_inner()).get(&session).cloned();
        let time =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let line = serde_json::json!({
            "time": time,
            "session": session,
            "app": app.as_ref().map(|a| a.name.clone()),
            "pid": app.as_ref().map(|a| a.pid),
            "exe": app.as_ref().and_then(|a| a.exe.clone()),
            "op": op,
            "cert": cert_sha256,
            "result": result,
            "detail": detail,
        });
        let Some(path) = self.path.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return };
        if let Err(e) = self.append(&path, &format!("{line}\n")) {
            tracing::error!("audit log {}: {e}", path.display());
        }
    }

    fn append(&self, path: &Path, line: &str) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        // One writer at a time, so that rotation and appends do not interleave.
        let _guard = self.path.lock().unwrap_or_else(|p| p.into_inner());
        if std::fs::metadata(path).is_ok_and(|m| m.len() >= self.rotate_at) {
            std::fs::rename(path, path.with_extension("log.1"))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        f.write_all(line.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_and_the_log_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit { rotate_at: 400, ..Audit::default() };
        audit.configure(Some(dir.path()), false);
        audit.record(1, "key-sign", "ab", "ok", None);
        assert!(!dir.path().join("audit.log").exists(), "written while disabled");
        audit.configure(None, true);
        audit.session(1, Some(("mailer", 42, Some("/usr/bin/mailer"))));
        for _ in 0..10 {
            audit.record(1, "key-sign", "ab", "ok", None);
        }
        let log = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        assert_eq!(first["app"], "mailer");
        assert_eq!(first["op"], "key-sign");
        assert!(dir.path().join("audit.log.1").exists(), "not rotated");
        assert!(std::fs::metadata(dir.path().join("audit.log")).unwrap().len() < 800);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("audit.log")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
