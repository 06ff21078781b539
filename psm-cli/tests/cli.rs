//! The `psm` tool against a real psmd: every command, tables and JSON,
//! exit codes, and passwords that never appear on the command line.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PSM: &str = env!("CARGO_BIN_EXE_psm");

/// psmd beside this test binary's directory (target/<profile>/psmd).
fn psmd_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("psmd");
    assert!(p.exists(), "{} not built (cargo test --workspace builds it)", p.display());
    p
}

/// A private runtime directory and profile; psmd started by `psm daemon
/// start` (the library's auto-start), stopped at the end.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir(dir.path().join("anchors")).unwrap();
        Env { dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("psm").join("control")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(PSM);
        c.arg("--socket")
            .arg(self.socket())
            .args(args)
            .env("PSM_DAEMON", psmd_path())
            .env("PSM_PROFILE", self.dir.path().join("profile"))
            .env("PSM_CONFIG", self.dir.path().join("config.toml"))
            .env_remove("SSL_CERT_FILE")
            .env("SSL_CERT_DIR", self.dir.path().join("anchors"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs with `input` on stdin (passwords via --password-fd 0).
    fn run_with(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "psm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.run(&["daemon", "stop"]);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a server certificate it issued, made with the openssl CLI.
fn pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=psm cli test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=www.example.test",
        ],
    );
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:www.example.test\nextendedKeyUsage=serverAuth\n")
        .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "10",
            "-extfile",
            "ext",
        ],
    );
    openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "srv.key",
            "-in",
            "srv.pem",
            "-name",
            "srv",
            "-passout",
            "pass:p12 secret",
            "-out",
            "srv.p12",
        ],
    );
}

#[test]
fn daemon_status_sessions_and_exit_codes() {
    let e = Env::new();
    // Not running and not allowed to start: exit 3.
    let out = e.run(&["--no-spawn", "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let started = e.ok(&["daemon", "start"]);
    assert!(started.contains("is running, pid"), "{started}");
    let s = e.json(&["status"]);
    assert!(s["pid"].as_u64().is_some());
    let text = e.ok(&["status"]);
    assert!(text.starts_with("psmd "), "{text}");
    let sessions = e.ok(&["sessions"]);
    assert!(
        sessions.contains("APPLICATION") && sessions.contains("psm") && sessions.contains("(this)"),
        "{sessions}"
    );
    let list = e.json(&["sessions"]);
    assert!(list.as_array().unwrap().iter().any(|x| x["app"] == "psm"));
    // Usage errors are 2.
    assert_eq!(e.run(&["cert", "frobnicate"]).status.code(), Some(2));
    // Completion and the manual page come from the same definitions.
    assert!(e.ok(&["completion", "bash"]).contains("psm"));
    let man = e.ok(&["man"]);
    assert!(man.contains(".TH psm") && man.contains("Exit status"), "{}", &man[..man.len().min(400)]);
    assert!(e.ok(&["daemon", "stop"]).contains("stopped"));
    assert_eq!(e.run(&["--no-spawn", "status"]).status.code(), Some(3));
}

#[test]
fn certificates_are_imported_shown_trusted_verified_exported_and_deleted() {
    let e = Env::new();
    pki(e.dir.path());
    let ca = e.dir.path().join("ca.pem");
    let srv = e.dir.path().join("srv.pem");
    let out =
        e.ok(&["cert", "import", ca.to_str().unwrap(), "--nickname", "test ca", "--trust", "ca-tls-server"]);
    assert!(out.contains("imported \"test ca\""), "{out}");
    e.ok(&["cert", "import", srv.to_str().unwrap(), "--nickname", "www"]);
    let list = e.ok(&["cert", "list"]);
    assert!(list.contains("test ca") && list.contains("ca-tls-server") && list.contains("www"), "{list}");
    let cas = e.json(&["cert", "list", "--kind", "ca"]);
    assert_eq!(cas.as_array().unwrap().len(), 1, "{cas:#}");
    let shown = e.ok(&["cert", "show", "www"]);
    assert!(shown.contains("www.example.test") && shown.contains("sha256:"), "{shown}");

    // Verify: valid for its name, not for another (exit 4), and from a file.
    let ok = e.ok(&["cert", "verify", "www", "--usage", "tls-server", "--name", "www.example.test"]);
    assert!(ok.starts_with("valid"), "{ok}");
    let bad = e.run(&["cert", "verify", "www", "--name", "other.example.test"]);
    assert_eq!(bad.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("NOT VALID"));
    assert!(
        e.ok(&["cert", "verify", srv.to_str().unwrap(), "--name", "www.example.test"]).starts_with("valid")
    );

    // Distrusting the CA breaks the chain.
    let t = e.ok(&["cert", "trust", "test ca", "--set", "distrusted"]);
    assert!(t.contains("distrusted"), "{t}");
    assert_eq!(e.run(&["cert", "verify", "www"]).status.code(), Some(4));
    e.ok(&["cert", "trust", "test ca", "--clear", "distrusted"]);

    // Export PEM and DER match the file.
    let exported = e.dir.path().join("out.pem");
    e.ok(&["cert", "export", "www", "-o", exported.to_str().unwrap()]);
    let a = std::fs::read_to_string(&exported).unwrap();
    let b = std::fs::read_to_string(&srv).unwrap();
    assert_eq!(a.trim(), b.trim());
    e.ok(&["cert", "delete", "www"]);
    assert_eq!(e.run(&["cert", "show", "www"]).status.code(), Some(1));
}

#[test]
fn keys_and_token_passwords_come_from_a_descriptor_or_the_terminal() {
    let e = Env::new();
    pki(e.dir.path());
    let p12 = e.dir.path().join("srv.p12");
    // The PKCS#12 password through fd 0, never argv.
    let out =
        e.run_with(&["cert", "import", "--p12", "--password-fd", "0", p12.to_str().unwrap()], "p12 secret\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("with its private key"));
    let wrong =
        e.run_with(&["cert", "import", "--p12", "--password-fd", "0", p12.to_str().unwrap()], "nope\n");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong password"));

    // A new request for the imported key (a renewal): openssl accepts it,
    // and its public key is the certificate's.
    let list = e.json(&["cert", "list"]);
    let with_key = list.as_array().unwrap().iter().find(|c| c["has_private_key"] == true).expect("the key");
    let name = format!("sha256:{}", with_key["sha256"].as_str().unwrap());
    let renewal = e.dir.path().join("renew.csr");
    e.ok(&[
        "key",
        "csr",
        &name,
        "--subject",
        "CN=renewed",
        "--san",
        "dns:www.example.test",
        "-o",
        renewal.to_str().unwrap(),
    ]);
    openssl(e.dir.path(), &["req", "-in", "renew.csr", "-noout", "-verify"]);
    openssl(e.dir.path(), &["req", "-in", "renew.csr", "-noout", "-pubkey", "-out", "renew.pub"]);
    openssl(e.dir.path(), &["x509", "-in", "srv.pem", "-noout", "-pubkey", "-out", "srv.pub"]);
    assert_eq!(
        std::fs::read(e.dir.path().join("renew.pub")).unwrap(),
        std::fs::read(e.dir.path().join("srv.pub")).unwrap()
    );
    assert_eq!(e.run(&["key", "csr", "sha256:00", "--subject", "CN=x"]).status.code(), Some(1));

    // Key generation writes a CSR openssl accepts.
    let csr = e.dir.path().join("new.csr");
    let out = e.ok(&[
        "key",
        "gen",
        "--type",
        "p256",
        "--subject",
        "CN=cli key",
        "--san",
        "dns:cli.example.test",
        "-o",
        csr.to_str().unwrap(),
    ]);
    assert!(out.is_empty());
    openssl(e.dir.path(), &["req", "-in", "new.csr", "-noout", "-verify"]);

    // Token password: set, checked, changed, removed.
    assert!(e.ok(&["token", "status"]).contains("none"));
    e.ok(&["daemon", "start"]);
    let set = e.run_with(&["token", "passwd", "--password-fd", "0"], "\nfirst pw\n");
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    assert_eq!(e.json(&["token", "status"])["has_password"], true);
    assert!(e.run_with(&["token", "login", "--password-fd", "0"], "first pw\n").status.success());
    let bad = e.run_with(&["token", "login", "--password-fd", "0"], "wrong\n");
    assert_eq!(bad.status.code(), Some(1));
    let changed = e.run_with(&["token", "passwd", "--password-fd", "0"], "first pw\nsecond pw\n");
    assert!(changed.status.success(), "{}", String::from_utf8_lossy(&changed.stderr));
    assert!(e.run_with(&["token", "passwd", "--password-fd", "0"], "second pw\n\n").status.success());
    assert_eq!(e.json(&["token", "status"])["has_password"], false);
    // The token list: the soft token (no PKCS#11 module in this policy).
    let list = e.ok(&["token", "list"]);
    assert!(
        list.starts_with("psm soft token\n") && list.contains("flags:        soft initialized"),
        "{list}"
    );
    let listed = e.json(&["token", "list"]);
    assert_eq!(listed["modules"], serde_json::json!([]), "{listed:#}");
    assert_eq!(listed["tokens"][0]["label"], "psm soft token", "{listed:#}");
    // Its URI names it for login and logout, like --token for a card.
    let uri = listed["tokens"][0]["uri"].as_str().unwrap().to_string();
    assert!(e.ok(&["token", "logout", "--token", &uri]).is_empty());
    let bad = e.run(&["token", "logout", "--token", "pkcs11:token=no%20such%20card"]);
    assert_eq!(bad.status.code(), Some(1), "{}", String::from_utf8_lossy(&bad.stderr));
    // Without a descriptor and without a terminal (a new session has no
    // controlling terminal): a clear error, no hang.
    let mut c = e.cmd(&["token", "login"]);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::setsid();
            Ok(())
        });
    }
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--password-fd"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn policy_files_are_checked_shown_and_reloaded() {
    let e = Env::new();
    let bad = e.dir.path().join("bad.toml");
    std::fs::write(&bad, "[tls]\nmin_version = \"1.1\"\n[pkcs12]\nexprot = false\n").unwrap();
    let out = e.run(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.toml:2:") && text.contains("bad.toml:4:"), "{text}");
    assert!(text.contains("did you mean \"export\""), "{text}");
    let good = e.dir.path().join("good.toml");
    std::fs::write(&good, "[pkcs12]\nexport = false\n").unwrap();
    assert!(e.ok(&["policy", "check", good.to_str().unwrap()]).contains("good"));
    let shown = e.ok(&["policy", "show"]);
    assert!(shown.contains("policy: none") && shown.contains("pkcs12.export = true"), "{shown}");
    assert_eq!(e.json(&["policy", "show"])["tls"]["min_version"], "1.2");
    assert!(e.ok(&["reload"]).contains("read the policy again"));
    // The user's config: checked with --user, read on reload, shown, and
    // a broken one reported by reload (exit 1) while the last good one stays.
    let config = e.dir.path().join("config.toml");
    std::fs::write(&config, "[tls]\nmin_version = \"1.3\"\n[trust]\nanchors = []\n").unwrap();
    let out = e.run(&["policy", "check", "--user", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("config.toml:4:") && text.contains("administrator's alone"), "{text}");
    std::fs::write(&config, "[tls]\nmin_version = \"1.3\"\n").unwrap();
    assert!(e.ok(&["policy", "check", "--user", config.to_str().unwrap()]).contains("good"));
    e.ok(&["reload"]);
    let shown = e.ok(&["policy", "show"]);
    assert!(shown.contains(&format!("your config: {}", config.display())), "{shown}");
    assert!(shown.contains("tls.min_version = \"1.3\"  (yours)"), "{shown}");
    std::fs::write(&config, "[tls]\nmin_versoin = \"1.3\"\n").unwrap();
    let out = e.run(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("did you mean \"min_version\""), "{err}");
    let shown = e.ok(&["policy", "show"]);
    assert!(shown.contains("is not used") && shown.contains("(yours)"), "{shown}");
    // Overrides: none stored; deleting one that is not there is an error.
    assert!(e.ok(&["override", "list"]).starts_with("SITE"));
    assert_eq!(e.json(&["override", "list"]), serde_json::json!([]));
    assert_eq!(e.run(&["override", "delete", "example.com:443"]).status.code(), Some(1));
    assert_eq!(e.run(&["override", "delete", "example.com"]).status.code(), Some(2));
}
