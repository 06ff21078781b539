//! The system policy, enforced: each setting shown refusing what it
//! forbids through the client API, psmd refusing to start with a policy it
//! cannot trust or read, and reloads (SIGHUP, PolicyReload) that keep the
//! old policy when the new file is broken.

mod common;

use common::tls::{Mode, Pki, ServerSetup, TlsServer};
use common::{PSMD, Reaped, RuntimeDir, wait_until};
use psm::proto::{Event, Prompt, SslOpts, TRUST_CA_TLS_SERVER};
use psm::{Client, Code, ConnectFlags};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A policy file in a directory only its owner can write.
struct PolicyFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl PolicyFile {
    fn new(text: &str) -> PolicyFile {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("policy.toml");
        let f = PolicyFile { _dir: dir, path };
        f.write(text);
        f
    }

    fn write(&self, text: &str) {
        // Replace atomically, as an administrator's editor would.
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

fn psmd(rt: &RuntimeDir, policy: &Path) -> Command {
    let mut cmd = Command::new(PSMD);
    cmd.env("PSM_PROFILE", rt.profile())
        .env("PSM_POLICY", policy)
        .env("PSM_CONFIG", rt.user_config())
        .env_remove("SSL_CERT_FILE")
        .env("SSL_CERT_DIR", rt.no_anchors())
        .arg("--socket")
        .arg(rt.socket())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// psmd running under `policy`.
struct Daemon {
    rt: RuntimeDir,
    child: Reaped,
}

impl Daemon {
    fn start(policy: &PolicyFile) -> Daemon {
        Daemon::start_with_config(policy, None)
    }

    /// psmd under `policy`, with the user's config.toml holding `config`.
    fn start_with_config(policy: &PolicyFile, config: Option<&str>) -> Daemon {
        let rt = RuntimeDir::new();
        if let Some(text) = config {
            std::fs::write(rt.user_config(), text).unwrap();
        }
        let child = Reaped(psmd(&rt, &policy.path).stderr(Stdio::inherit()).spawn().unwrap());
        let d = Daemon { rt, child };
        wait_until("psmd accepts connections", || {
            std::os::unix::net::UnixStream::connect(d.rt.socket()).is_ok()
        });
        d
    }

    fn connect(&self) -> psm::Result<Client> {
        Client::connect_to(
            &self.rt.socket(),
            "policy-test",
            ConnectFlags { no_spawn: true, no_dialogs: true },
        )
    }

    fn client(&self) -> Client {
        self.connect().unwrap()
    }

    /// Writes the user's config.toml, as the user's editor would.
    fn write_config(&self, text: &str) {
        let tmp = self.rt.user_config().with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.rt.user_config()).unwrap();
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.client().status_json().unwrap()).unwrap()
    }

    fn sighup(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    }
}

/// psmd under a policy (and a user config), trusting a test PKI's root,
/// with a server that speaks only TLS 1.2 (`old`) and one that speaks 1.3.
struct TlsSetup {
    policy: PolicyFile,
    d: Daemon,
    c: Client,
    pki: Pki,
    old: TlsServer,
    modern: TlsServer,
}

impl TlsSetup {
    fn start(policy: &str, config: Option<&str>) -> TlsSetup {
        let policy = PolicyFile::new(policy);
        let d = Daemon::start_with_config(&policy, config);
        let c = d.client();
        let pki = Pki::new();
        c.cert_import(&pki.root.cert.pem(), Some("root"), TRUST_CA_TLS_SERVER).unwrap();
        let mut setup = ServerSetup::new(&pki.good, Mode::Echo);
        setup.tls12_only = true;
        let old = TlsServer::start(setup);
        let modern = TlsServer::start(ServerSetup::new(&pki.good, Mode::Echo));
        TlsSetup { policy, d, c, pki, old, modern }
    }

    /// Connects to the TLS 1.2 server (true) or the 1.3 one.
    fn connect(&self, tls12: bool, opts: &SslOpts) -> psm::Result<()> {
        let port = if tls12 { self.old.port() } else { self.modern.port() };
        self.c.ssl_connect("localhost", port, opts).map(|_| ())
    }
}

/// Waits for the `PolicyChanged` event every application gets on a change.
fn assert_policy_changed(watcher: &Client) {
    while let Some(ev) = watcher.next_event(Some(std::time::Duration::from_secs(5))).unwrap() {
        if ev == Event::PolicyChanged {
            return;
        }
    }
    panic!("no PolicyChanged event");
}

/// Runs psmd under `text` and returns its exit code and stderr (it must not start).
fn refused(text: &str, mode: u32) -> (Option<i32>, String) {
    let policy = PolicyFile::new(text);
    std::fs::set_permissions(&policy.path, std::fs::Permissions::from_mode(mode)).unwrap();
    let rt = RuntimeDir::new();
    let out = psmd(&rt, &policy.path).stderr(Stdio::piped()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn psmd_never_runs_with_a_policy_it_cannot_trust_or_read() {
    let (code, err) = refused("[pkcs12]\nexport = false\n", 0o666);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("writable by others"), "{err}");
    let (code, err) = refused("[tls]\nmin_versoin = \"1.3\"\n[pkcs12]\nexport = 3\n", 0o644);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("line 2") && err.contains("did you mean \"min_version\""), "{err}");
    assert!(err.contains("line 4") && err.contains("true or false"), "{err}");
    let (code, err) = refused("[tls\n", 0o644);
    assert_eq!(code, Some(6), "{err}");
    // No policy file at all: the defaults, and Status says so.
    let rt = RuntimeDir::new();
    let absent = Daemon { child: Reaped(psmd(&rt, &rt.dir.path().join("none.toml")).spawn().unwrap()), rt };
    wait_until("psmd starts without a policy", || absent.connect().is_ok());
    let s: serde_json::Value = serde_json::from_str(&absent.client().status_json().unwrap()).unwrap();
    assert!(s["policy"]["source"].is_null(), "{s:#}");
    assert_eq!(s["policy"]["pkcs12"]["export"], true);
}

#[test]
fn minimum_tls_version_and_certificate_overrides_are_enforced() {
    let t = TlsSetup::start("[tls]\nmin_version = \"1.3\"\n[overrides]\nallowed = false\n", None);
    let (policy, c, pki) = (&t.policy, &t.c, &t.pki);

    // A TLS 1.2 server is refused, even when the application asks for 1.2.
    let opts = SslOpts { min_version: psm::proto::TLS_1_2, ..SslOpts::default() };
    let e = t.connect(true, &opts).unwrap_err();
    assert!(matches!(e.code, Code::PSM_ERR_TLS_HANDSHAKE | Code::PSM_ERR_TLS_ALERT), "{e}");
    t.connect(false, &opts).unwrap();

    // An unknown issuer is not even offered to the user.
    let asked = Arc::new(AtomicUsize::new(0));
    let (a2, weak) = (asked.clone(), c.downgrade());
    c.set_prompt_handler(Some(Arc::new(move |p: Prompt| {
        a2.fetch_add(1, Ordering::SeqCst);
        let _ = weak.upgrade().map(|c| c.prompt_answer(p.id, Some("always")));
    })))
    .unwrap();
    let stranger = TlsServer::start(ServerSetup::new(&pki.unknown_issuer, Mode::Echo));
    let e = c.ssl_connect("localhost", stranger.port(), &SslOpts::default()).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_CERT_UNKNOWN_ISSUER, "{e}");
    assert!(e.message.contains("policy"), "{e}");
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the user was asked");

    // Allow only name mismatches to be accepted: an unknown issuer is
    // still refused without asking; a certificate for another name is
    // asked about.
    policy.write("[tls]\nmin_version = \"1.3\"\n[overrides]\nerrors = [\"name-mismatch\"]\n");
    c.policy_reload().unwrap();
    let e = c.ssl_connect("localhost", stranger.port(), &SslOpts::default()).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_CERT_UNKNOWN_ISSUER, "{e}");
    assert_eq!(asked.load(Ordering::SeqCst), 0);
    let other_name = TlsServer::start(ServerSetup::new(&pki.wrong_host, Mode::Echo));
    c.ssl_connect("localhost", other_name.port(), &SslOpts::default()).unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // The "always" stored a moment ago stops counting once the policy
    // forbids overrides again.
    policy.write("[overrides]\nallowed = false\n");
    c.policy_reload().unwrap();
    let e = c.ssl_connect("localhost", other_name.port(), &SslOpts::default()).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_CERT_NAME_MISMATCH, "{e}");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

#[test]
fn export_password_rules_and_applications_are_enforced() {
    let exe = std::env::current_exe().unwrap();
    let policy = PolicyFile::new(&format!(
        "[pkcs12]\nexport = false\n[token]\npassword_required = true\nmin_password_length = 8\n\
         [applications]\nallowed = [\"{}\", \"{PSMD}\"]\n",
        exe.display()
    ));
    let d = Daemon::start(&policy);
    let c = d.client();
    let pki = Pki::new();
    let p12 = pki.good.pkcs12(Some("mine"), "pw");
    let certs = c.pkcs12_import(&p12, Some("pw")).unwrap();
    let e = c.pkcs12_export(&certs[0].sha256_hex, Some("out pw")).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_POLICY, "{e}");

    let e = c.token_set_password(None, Some("short")).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_POLICY, "{e}");
    assert!(e.message.contains('8'), "{e}");
    c.token_set_password(None, Some("long enough")).unwrap();
    let e = c.token_set_password(Some("long enough"), Some("")).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_POLICY, "{e}");

    // Another program is refused at Hello.
    policy.write("[applications]\nallowed = [\"/usr/bin/nothing-like-this\"]\n");
    c.policy_reload().unwrap();
    let e = d.connect().unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_POLICY, "{e}");
    assert!(e.message.contains(&exe.display().to_string()), "{e}");
    // A connection made before keeps working; the policy is not retroactive.
    c.ping().unwrap();
}

#[test]
fn reloads_announce_changes_and_keep_the_old_policy_when_the_new_one_is_broken() {
    let policy = PolicyFile::new("[pkcs12]\nexport = true\n");
    let d = Daemon::start(&policy);
    let c = d.client();
    let pki = Pki::new();
    let certs = c.pkcs12_import(&pki.good.pkcs12(Some("mine"), "pw"), Some("pw")).unwrap();
    let sha = certs[0].sha256_hex.clone();
    c.pkcs12_export(&sha, Some("x")).unwrap();
    let watcher = d.client();

    // SIGHUP reads the file again; every application hears of the change.
    policy.write("[pkcs12]\nexport = false\n");
    d.sighup();
    wait_until("the new policy is in force", || c.pkcs12_export(&sha, Some("x")).is_err());
    assert_policy_changed(&watcher);
    let s: serde_json::Value = serde_json::from_str(&c.status_json().unwrap()).unwrap();
    assert_eq!(s["policy"]["source"], policy.path.display().to_string());
    // Status counts every kind of operation, succeeded and failed.
    assert!(s["operations"]["Pkcs12Export"]["ok"].as_u64() >= Some(1), "{s:#}");
    assert!(s["operations"]["Pkcs12Export"]["failed"].as_u64() >= Some(1), "{s:#}");
    assert!(s["operations"]["Pkcs12Import"]["ok"].as_u64() == Some(1), "{s:#}");
    assert_eq!(s["policy"]["sha256"].as_str().map(str::len), Some(64));

    // A broken file is refused; the policy in force stays.
    policy.write("[pkcs12]\nexport = maybe\n");
    let e = c.policy_reload().unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_POLICY, "{e}");
    assert!(e.message.contains("line 2"), "{e}");
    assert_eq!(c.pkcs12_export(&sha, Some("x")).unwrap_err().code, Code::PSM_ERR_POLICY);
    // So is a file that became writable by others, and one that vanished.
    policy.write("[pkcs12]\nexport = true\n");
    std::fs::set_permissions(&policy.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(c.policy_reload().unwrap_err().code, Code::PSM_ERR_POLICY);
    assert_eq!(c.pkcs12_export(&sha, Some("x")).unwrap_err().code, Code::PSM_ERR_POLICY);
    std::fs::remove_file(&policy.path).unwrap();
    let e = c.policy_reload().unwrap_err();
    assert!(e.message.contains("disappeared"), "{e}");
    assert_eq!(c.pkcs12_export(&sha, Some("x")).unwrap_err().code, Code::PSM_ERR_POLICY);

    // Checking a file applies nothing and explains every problem.
    let problems = c.policy_check("[tls]\nmin_version = \"1.1\"\n[pkcs12]\nexprot = true\n").unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].0, 2);
    assert!(problems[1].1.contains("did you mean \"export\""), "{problems:?}");
    assert!(c.policy_check("[pkcs12]\nexport = true\n").unwrap().is_empty());
}

#[test]
fn enterprise_anchors_distrust_and_the_idle_timeout_are_enforced() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root_pem = dir.path().join("corp-root.pem");
    std::fs::write(&root_pem, pki.root.cert.pem()).unwrap();
    std::fs::set_permissions(&root_pem, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = TlsServer::start(ServerSetup::new(&pki.good, Mode::Echo));

    // The enterprise root is trusted although no store knows it.
    let policy = PolicyFile::new(&format!("[trust]\nanchors = [\"{}\"]\n", dir.path().display()));
    let d = Daemon::start(&policy);
    let c = d.client();
    c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap();
    // Distrusting it on reload takes effect at once (nothing judged under
    // the old policy is reused).
    policy.write(&format!("[trust]\ndistrusted = [\"{}\"]\n", pki.root.cert.sha256_hex()));
    c.policy_reload().unwrap();
    c.cert_import(&pki.root.cert.pem(), Some("root"), TRUST_CA_TLS_SERVER).unwrap();
    let e = c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap_err();
    assert!(matches!(e.code, Code::PSM_ERR_CERT_DISTRUSTED | Code::PSM_ERR_CERT_UNKNOWN_ISSUER), "{e}");
    policy.write("[token]\nidle_timeout_secs = 1\n");
    c.policy_reload().unwrap();
    c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap();

    // A login ends after the policy's idle time.
    let certs = c.pkcs12_import(&pki.good.pkcs12(Some("mine"), "pw"), Some("pw")).unwrap();
    c.token_set_password(None, Some("a password")).unwrap();
    let other = d.client();
    other.token_login(Some("a password")).unwrap();
    other.key_sign(&certs[0].sha256_hex, psm::proto::SigKind::EcdsaSha256, b"x").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let e = other.key_sign(&certs[0].sha256_hex, psm::proto::SigKind::EcdsaSha256, b"x").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_LOGIN_REQUIRED, "{e}");

    // Trusting and distrusting the same certificate, or trusting a file
    // others can write, is refused.
    let (code, err) = refused(
        &format!(
            "[trust]\nanchors = [\"{}\"]\ndistrusted = [\"{}\"]\n",
            root_pem.display(),
            pki.root.cert.sha256_hex()
        ),
        0o644,
    );
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("both trusts and distrusts"), "{err}");
    std::fs::set_permissions(&root_pem, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, err) = refused(&format!("[trust]\nanchors = [\"{}\"]\n", root_pem.display()), 0o644);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("others than root can write"), "{err}");
    let (code, err) = refused("[trust]\ndistrusted = [\"abc\"]\n", 0o644);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("SHA-256"), "{err}");
}

#[test]
fn applications_may_be_kept_from_asking_for_the_token_password() {
    use common::certs::{Spec, ca, make};
    let policy = PolicyFile::new("[token]\napp_password_prompts = false\n");
    let d = Daemon::start(&policy);
    let c = d.client();
    let root = ca("Mail Root");
    c.cert_import(&root.pem(), Some("root"), psm::proto::TRUST_CA_EMAIL).unwrap();
    let me =
        make(&Spec { cn: "Me", emails: &["me@example.com"], serial: 4, ..Default::default() }, Some(&root));
    let p12 =
        openssl::pkcs12::Pkcs12::builder().name("me").pkey(&me.key).cert(&me.cert).build2("pw").unwrap();
    c.pkcs12_import(&p12.to_der().unwrap(), Some("pw")).unwrap();
    c.token_set_password(None, Some("token pw")).unwrap();
    let app = d.client();
    let asked = Arc::new(AtomicUsize::new(0));
    let (a2, weak) = (asked.clone(), app.downgrade());
    app.set_prompt_handler(Some(Arc::new(move |p: Prompt| {
        a2.fetch_add(1, Ordering::SeqCst);
        let _ = weak.upgrade().map(|c| c.prompt_answer(p.id, Some("token pw")));
    })))
    .unwrap();
    let signer = format!("sha256:{}", me.sha256_hex());
    let mail = b"Content-Type: text/plain\n\nhi\n";
    let e = app.smime_sign(&signer, 0, mail).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_NO_UI, "{e}");
    assert!(e.message.contains("policy"), "{e}");
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the application was asked for the password");
    // Allowed again: the handler answers and the key signs.
    policy.write("[token]\napp_password_prompts = true\n");
    c.policy_reload().unwrap();
    app.smime_sign(&signer, 0, mail).unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

#[test]
fn the_audit_log_records_key_uses_and_trust_decisions_and_no_secrets() {
    let policy = PolicyFile::new("[audit]\nenabled = true\n");
    let d = Daemon::start(&policy);
    let c = d.client();
    let pki = Pki::new();
    let certs = c.pkcs12_import(&pki.good.pkcs12(Some("mine"), "p12-secret"), Some("p12-secret")).unwrap();
    c.token_set_password(None, Some("token-secret")).unwrap();
    c.key_sign(&certs[0].sha256_hex, psm::proto::SigKind::EcdsaSha256, b"data").unwrap();
    let server = TlsServer::start(ServerSetup::new(&pki.self_signed, Mode::Echo));
    let weak = c.downgrade();
    c.set_prompt_handler(Some(Arc::new(move |p: Prompt| {
        let _ = weak.upgrade().map(|c| c.prompt_answer(p.id, Some("once")));
    })))
    .unwrap();
    c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap();
    let other = d.client();
    let e = other.key_sign(&certs[0].sha256_hex, psm::proto::SigKind::EcdsaSha256, b"data").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_LOGIN_REQUIRED);

    let log_path = d.rt.profile().join("audit.log");
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sign = lines.iter().find(|l| l["op"] == "key-sign" && l["result"] == "ok").expect("a key-sign line");
    assert_eq!(sign["cert"], certs[0].sha256_hex);
    assert_eq!(sign["app"], "policy-test");
    assert!(sign["pid"].as_i64().is_some() && sign["time"].as_u64().is_some());
    assert!(lines.iter().any(|l| l["op"] == "key-sign" && l["result"] == "PSM_ERR_LOGIN_REQUIRED"));
    let trust = lines.iter().find(|l| l["op"] == "trust-decision").expect("a trust-decision line");
    assert_eq!(trust["result"], "once");
    assert_eq!(trust["detail"], format!("localhost:{}", server.port()));
    assert_eq!(trust["cert"], pki.self_signed.sha256_hex());
    assert!(!text.contains("secret"), "a secret in the audit log: {text}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&log_path).unwrap().mode() & 0o777, 0o600);

    // Turned off: nothing more is written.
    policy.write("[audit]\nenabled = false\n");
    c.policy_reload().unwrap();
    c.key_sign(&certs[0].sha256_hex, psm::proto::SigKind::EcdsaSha256, b"data").unwrap();
    assert_eq!(std::fs::read_to_string(&log_path).unwrap(), text);
}

#[test]
fn cipher_suites_and_key_exchange_groups_are_limited_to_the_policy() {
    let policy = PolicyFile::new(
        "[tls]\ncipher_suites = [\"TLS13_CHACHA20_POLY1305_SHA256\"]\ngroups = [\"secp384r1\"]\n",
    );
    let d = Daemon::start(&policy);
    let c = d.client();
    let pki = Pki::new();
    c.cert_import(&pki.root.cert.pem(), Some("root"), TRUST_CA_TLS_SERVER).unwrap();
    let server = TlsServer::start(ServerSetup::new(&pki.good, Mode::Echo));
    let ch = c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap();
    let info: serde_json::Value = serde_json::from_str(&c.ssl_info_json(&ch).unwrap()).unwrap();
    assert_eq!(info["cipher_suite"], "TLS13_CHACHA20_POLY1305_SHA256", "{info:#}");
    assert_eq!(info["key_exchange_group"], "secp384r1", "{info:#}");
    // Without the policy, psm offers its defaults (post-quantum hybrid first).
    policy.write("");
    c.policy_reload().unwrap();
    let ch = c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap();
    let info: serde_json::Value = serde_json::from_str(&c.ssl_info_json(&ch).unwrap()).unwrap();
    assert_eq!(info["key_exchange_group"], "X25519MLKEM768", "{info:#}");
    // Names are checked: a misspelling gets a suggestion, and TLS 1.3 with
    // only TLS 1.2 suites is a contradiction.
    let p = c.policy_check("[tls]\ngroups = [\"X25519MLKEM769\"]\n").unwrap();
    assert!(p[0].1.contains("did you mean \"X25519MLKEM768\""), "{p:?}");
    let p = c
        .policy_check(
            "[tls]\nmin_version = \"1.3\"\ncipher_suites = [\"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\"]\n",
        )
        .unwrap();
    assert!(p.iter().any(|(_, m)| m.contains("only TLS 1.2 suites")), "{p:?}");
}

/// The issuer and serial number of `der` as `psm cert show` prints them.
fn issuer_and_serial(der: &[u8]) -> (String, String) {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    (cert.issuer().to_string(), hex::encode(cert.raw_serial()))
}

#[test]
fn certificates_distrusted_by_issuer_and_serial_are_refused_as_by_fingerprint() {
    let pki = Pki::new();
    let policy = PolicyFile::new("");
    let d = Daemon::start(&policy);
    let c = d.client();
    c.cert_import(&pki.root.cert.pem(), Some("root"), TRUST_CA_TLS_SERVER).unwrap();
    let server = TlsServer::start(ServerSetup::new(&pki.good, Mode::Echo));
    c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap();

    // The leaf, by fingerprint and then by issuer and serial: the same refusal.
    policy.write(&format!("[trust]\ndistrusted = [\"{}\"]\n", pki.good.sha256_hex()));
    c.policy_reload().unwrap();
    let by_sha = c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap_err();
    assert_eq!(by_sha.code, Code::PSM_ERR_CERT_DISTRUSTED, "{by_sha}");
    let (issuer, serial) = issuer_and_serial(&pki.good.der);
    policy.write(&format!(
        "[trust]\ndistrusted = [\n  {{ issuer = \"{issuer}\", serial = \"{serial}\" }},\n]\n"
    ));
    c.policy_reload().unwrap();
    let by_name = c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap_err();
    assert_eq!(by_name.code, by_sha.code, "{by_name}");
    assert_eq!(by_name.message, by_sha.message);
    let s: serde_json::Value = serde_json::from_str(&c.status_json().unwrap()).unwrap();
    assert_eq!(s["policy"]["trust"]["distrusted"][0]["issuer"], issuer.as_str(), "{s:#}");

    // The intermediate, its issuer written the RFC 4514 way (most specific
    // RDN first, no spaces) and its serial with colons and in upper case.
    let (issuer, serial) = issuer_and_serial(&pki.intermediate.cert.der);
    let rfc4514: Vec<&str> = issuer.split(", ").collect::<Vec<_>>().into_iter().rev().collect();
    let colons: Vec<String> =
        serial.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect();
    policy.write(&format!(
        "[trust]\ndistrusted = [{{ issuer = \"{}\", serial = \"{}\" }}]\n",
        rfc4514.join(","),
        colons.join(":")
    ));
    c.policy_reload().unwrap();
    let e = c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_CERT_DISTRUSTED, "{e}");
    assert!(e.message.contains("distrusted"), "{e}");
    // Another serial from the same issuer is not distrusted.
    policy.write(&format!("[trust]\ndistrusted = [{{ issuer = \"{issuer}\", serial = \"7fffffff\" }}]\n"));
    c.policy_reload().unwrap();
    c.ssl_connect("localhost", server.port(), &SslOpts::default()).unwrap();

    // Bad entries are explained on their own lines.
    let p = c
        .policy_check(
            "[trust]\ndistrusted = [\n  { issuer = \"CN=Evil CA, Inc.\", serial = \"01\" },\n  \
             { issuer = \"CN=Evil CA\", serail = \"01\" },\n  { issuer = \"CN=Evil CA\" },\n  \
             { issuer = \"CM=Evil CA\", serial = \"01\" },\n  { issuer = \"CN=Evil CA\", serial = \"zz\" },\n]\n",
        )
        .unwrap();
    assert_eq!(p.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [3, 4, 5, 6, 7], "{p:?}");
    assert!(p[0].1.contains("\\,"), "{p:?}");
    assert!(p[1].1.contains("did you mean \"serial\""), "{p:?}");
    assert!(p[2].1.contains("both issuer"), "{p:?}");
    assert!(p[3].1.contains("did you mean \"CN\""), "{p:?}");
    assert!(p[4].1.contains("hex"), "{p:?}");
    // An anchor the policy also distrusts by issuer and serial is a contradiction.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root_pem = dir.path().join("corp-root.pem");
    std::fs::write(&root_pem, pki.root.cert.pem()).unwrap();
    std::fs::set_permissions(&root_pem, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (issuer, serial) = issuer_and_serial(&pki.root.cert.der);
    let (code, err) = refused(
        &format!(
            "[trust]\nanchors = [\"{}\"]\ndistrusted = [{{ issuer = \"{issuer}\", serial = \"{serial}\" }}]\n",
            root_pem.display()
        ),
        0o644,
    );
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("both trusts and distrusts"), "{err}");
}

#[test]
fn a_user_config_may_tighten_the_policy_and_no_application_can_loosen_it() {
    let t = TlsSetup::start(
        "[token]\nidle_timeout_secs = 900\n",
        Some("[tls]\nmin_version = \"1.3\"\n[token]\nidle_timeout_secs = 60\n"),
    );
    // The application asks for TLS 1.2; the user's minimum wins.
    let opts = SslOpts { min_version: psm::proto::TLS_1_2, ..SslOpts::default() };
    let e = t.connect(true, &opts).unwrap_err();
    assert!(matches!(e.code, Code::PSM_ERR_TLS_HANDSHAKE | Code::PSM_ERR_TLS_ALERT), "{e}");
    t.connect(false, &opts).unwrap();

    let s = t.d.status();
    let user = &s["policy"]["user_config"];
    assert_eq!(user["source"], t.d.rt.user_config().display().to_string(), "{s:#}");
    assert_eq!(user["applied"], serde_json::json!(["tls.min_version", "token.idle_timeout_secs"]), "{s:#}");
    assert_eq!(s["policy"]["tls"]["min_version"], "1.3");
    assert_eq!(s["policy"]["token"]["idle_timeout_secs"], 60);

    // A value looser than the policy's is ignored, and says so.
    t.d.write_config("[token]\nidle_timeout_secs = 3600\n");
    t.c.policy_reload().unwrap();
    t.connect(true, &opts).unwrap();
    let s = t.d.status();
    assert_eq!(s["policy"]["token"]["idle_timeout_secs"], 900, "{s:#}");
    let ignored = s["policy"]["user_config"]["ignored"].to_string();
    assert!(
        ignored.contains("token.idle_timeout_secs = 3600 is ignored") && ignored.contains("900"),
        "{ignored}"
    );
}

#[test]
fn a_setting_the_policy_locks_ignores_the_users_value_and_reports_it() {
    let t = TlsSetup::start(
        "[tls]\nmin_version = \"1.2\"\n[locked]\nsettings = [\"tls.min_version\"]\n",
        Some("[tls]\nmin_version = \"1.3\"\n[pkcs12]\nexport = false\n"),
    );
    t.connect(true, &SslOpts::default()).unwrap();
    // The settings not locked are the user's.
    let certs = t.c.pkcs12_import(&t.pki.good.pkcs12(Some("mine"), "pw"), Some("pw")).unwrap();
    assert_eq!(t.c.pkcs12_export(&certs[0].sha256_hex, Some("x")).unwrap_err().code, Code::PSM_ERR_POLICY);

    let s = t.d.status();
    let p = &s["policy"];
    assert_eq!(p["tls"]["min_version"], "1.2", "{s:#}");
    assert_eq!(p["locked"]["settings"], serde_json::json!(["tls.min_version"]));
    assert_eq!(p["user_config"]["applied"], serde_json::json!(["pkcs12.export"]), "{s:#}");
    let ignored = p["user_config"]["ignored"].as_array().unwrap();
    assert_eq!(ignored.len(), 1, "{s:#}");
    let note = ignored[0].as_str().unwrap();
    assert!(note.contains("tls.min_version = \"1.3\" is ignored") && note.contains("locks it"), "{note}");

    // A lock names a setting users may set; anything else is explained.
    let p =
        t.c.policy_check("[locked]\nsettings = [\n  \"tls.min_versoin\",\n  \"trust.anchors\",\n]\n")
            .unwrap();
    assert_eq!(p.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [3, 4], "{p:?}");
    assert!(p[0].1.contains("did you mean \"tls.min_version\""), "{p:?}");
    assert!(p[1].1.contains("needs no lock"), "{p:?}");
}

#[test]
fn a_broken_user_config_never_stops_psmd_and_is_reported() {
    let t = TlsSetup::start(
        "",
        Some("[tls]\nmin_versoin = \"1.3\"\n[applications]\nallowed = [\"/bin/true\"]\n"),
    );
    let s = t.d.status();
    let user = &s["policy"]["user_config"];
    assert!(user["source"].is_null(), "{s:#}");
    let problems: Vec<&str> =
        user["problems"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(problems.len(), 2, "{s:#}");
    assert!(
        problems[0].starts_with("line 2:") && problems[0].contains("did you mean \"min_version\""),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("line 4:") && problems[1].contains("administrator's alone"),
        "{problems:?}"
    );
    // The defaults apply: a TLS 1.2 server is fine.
    t.connect(true, &SslOpts::default()).unwrap();
    // The same check before installing a config.
    let p = t.c.config_check("[tls]\nmin_versoin = \"1.3\"\n").unwrap();
    assert_eq!(p[0].0, 2, "{p:?}");
    assert!(t.c.config_check("[tls]\nmin_version = \"1.3\"\n").unwrap().is_empty());
    // A config that is not even TOML, or not a file, is no worse.
    let d2 = Daemon::start_with_config(&t.policy, Some("[tls\n"));
    assert!(d2.status()["policy"]["user_config"]["problems"][0].as_str().unwrap().starts_with("line 1"));
    std::fs::remove_file(t.d.rt.user_config()).unwrap();
    std::fs::create_dir(t.d.rt.user_config()).unwrap();
    t.c.policy_reload().unwrap();
    let problem = &t.d.status()["policy"]["user_config"]["problems"][0];
    assert!(problem.as_str().unwrap().contains("not a regular file"), "{problem}");
}

#[test]
fn reloads_pick_up_the_user_config_and_keep_the_last_good_one() {
    let t = TlsSetup::start("", None);
    let any = SslOpts::default();
    t.connect(true, &any).unwrap();
    let watcher = t.d.client();

    // SIGHUP: the new config is in force and announced.
    t.d.write_config("[tls]\nmin_version = \"1.3\"\n");
    t.d.sighup();
    wait_until("the user's minimum TLS version is in force", || t.connect(true, &any).is_err());
    assert_policy_changed(&watcher);

    // Broken on reload: the reload of the policy still succeeds, the
    // config read before stays, and Status says why.
    t.d.write_config("[tls]\nmin_version = 1.3\n");
    t.c.policy_reload().unwrap();
    assert!(t.connect(true, &any).is_err());
    t.connect(false, &any).unwrap();
    let s = t.d.status();
    let user = &s["policy"]["user_config"];
    assert_eq!(user["source"], t.d.rt.user_config().display().to_string(), "{s:#}");
    assert!(user["problems"][0].as_str().unwrap().starts_with("line 2"), "{s:#}");

    // Fixed, then removed: the user's file is the user's to drop.
    t.d.write_config("[tls]\nmin_version = \"1.2\"\n");
    t.c.policy_reload().unwrap();
    t.connect(true, &any).unwrap();
    assert_eq!(t.d.status()["policy"]["user_config"]["problems"], serde_json::json!([]));
    t.d.write_config("[tls]\nmin_version = \"1.3\"\n");
    t.c.policy_reload().unwrap();
    assert!(t.connect(true, &any).is_err());
    std::fs::remove_file(t.d.rt.user_config()).unwrap();
    t.c.policy_reload().unwrap();
    t.connect(true, &any).unwrap();
    assert!(t.d.status()["policy"]["user_config"]["source"].is_null());
}

fn sign_any(c: &Client, cert: &common::tls::Cert) -> psm::Result<Vec<u8>> {
    let fp = cert.sha256_hex();
    c.key_sign(&fp, psm::proto::SigKind::EcdsaSha256, b"data").or_else(|e| match e.code {
        Code::PSM_ERR_INVALID_ARGUMENT | Code::PSM_ERR_UNSUPPORTED => {
            c.key_sign(&fp, psm::proto::SigKind::RsaPkcs1Sha256, b"data")
        }
        _ => Err(e),
    })
}

#[test]
fn keys_the_policy_names_are_used_only_after_the_user_allows_it_in_psms_dialog() {
    use common::web::{DialogApp, get, origin_of, post};
    let pki = Pki::new();
    let policy = PolicyFile::new(&format!("[keys]\nconfirm_use = [\"{}\"]\n", pki.client_a.sha256_hex()));
    let d = Daemon::start(&policy);
    let admin = d.client();
    for cert in [&pki.client_a, &pki.client_b] {
        admin.pkcs12_import(&cert.pkcs12(None, "pw"), Some("pw")).unwrap();
    }
    // A key the policy does not name signs as before; the named one needs
    // psm's dialog, which this application cannot show, and its own prompt
    // handler is no substitute.
    sign_any(&admin, &pki.client_b).unwrap();
    assert_eq!(sign_any(&admin, &pki.client_a).unwrap_err().code, Code::PSM_ERR_NO_UI);
    admin.set_prompt_handler(Some(Arc::new(|_p: Prompt| {}))).unwrap();
    let e = sign_any(&admin, &pki.client_a).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_NO_UI, "{e:?}");
    assert!(e.message.contains("confirm"), "{e:?}");
    admin.set_prompt_handler(None).unwrap();

    // An application that shows dialogs: the user allows once, then denies.
    let app = DialogApp::connect(&d.rt.socket(), "signer");
    for (answer, ok) in [("allow", true), ("deny", false)] {
        let c = app.client.clone();
        let a = pki.client_a.clone();
        let h = std::thread::spawn(move || sign_any(&c, &a));
        let (id, url, ..) = app.next_dialog();
        let r = get(&url, &[]);
        assert!(r.body.contains("Use your private key?") && r.body.contains("psm client A"), "{}", r.body);
        let cookie = r.cookie();
        let done = post(
            &url,
            Some(&origin_of(&url)),
            &[&format!("Cookie: {cookie}")],
            &format!("nonce={}&choice={answer}", r.nonce()),
        );
        assert_eq!(done.status, 200);
        match h.join().unwrap() {
            Ok(sig) => assert!(ok && !sig.is_empty()),
            Err(e) => assert!(!ok && e.code == Code::PSM_ERR_USER_CANCELLED, "{e:?}"),
        }
        app.wait_done(id);
    }
    // TLS client authentication with that key asks the same way.
    admin.cert_import(&pki.root.cert.pem(), Some("root"), TRUST_CA_TLS_SERVER).unwrap();
    admin.cert_delete(&pki.client_b.sha256_hex(), true).unwrap();
    let mut setup = ServerSetup::new(&pki.good, Mode::Echo);
    setup.client_auth_roots = Some(vec![pki.root.cert.der.clone()]);
    let server = TlsServer::start(setup);
    let port = server.port();
    let c = app.client.clone();
    let h = std::thread::spawn(move || c.ssl_connect("localhost", port, &SslOpts::default()).map(|_| ()));
    let (id, url, ..) = app.next_dialog();
    let r = get(&url, &[]);
    assert!(r.body.contains("identify you to localhost"), "{}", r.body);
    let cookie = r.cookie();
    post(
        &url,
        Some(&origin_of(&url)),
        &[&format!("Cookie: {cookie}")],
        &format!("nonce={}&choice=allow", r.nonce()),
    );
    h.join().unwrap().expect("connected with the confirmed key");
    app.wait_done(id);
    let rec = server.wait_record(0, "the client certificate", |r| r.client_cert.is_some());
    assert_eq!(rec.client_cert.unwrap(), pki.client_a.der);

    // Status reports the setting.
    let status = d.status();
    assert_eq!(status["policy"]["keys"]["confirm_use"][0], pki.client_a.sha256_hex(), "{status:#}");
}

#[test]
fn keys_confirm_use_rejects_what_is_not_a_fingerprint() {
    let d = common::Daemon::start();
    let c = d.client();
    let problems = c.policy_check("[keys]\nconfirm_use = [\"all\", \"abc\", 7]\n").unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().all(|(line, _)| *line == 2), "{problems:?}");
}

#[test]
fn only_the_pkcs11_modules_the_policy_names_are_loaded() {
    const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
    // A copy of the same module that anybody could replace: never loaded.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let open_copy = dir.path().join("libopen.so");
    std::fs::copy(SOFTHSM, &open_copy).unwrap();
    std::fs::set_permissions(&open_copy, std::fs::Permissions::from_mode(0o666)).unwrap();
    let policy = PolicyFile::new(&format!(
        "[pkcs11]\nmodules = [\"{SOFTHSM}\", \"{}\", \"/nonexistent/libnone.so\"]\n",
        open_copy.display()
    ));
    let d = Daemon::start(&policy);
    let status = d.status();
    let modules = status["pkcs11"]["modules"].as_array().unwrap().clone();
    assert_eq!(modules.len(), 3, "{status:#}");
    assert_eq!(modules[0]["path"], SOFTHSM);
    assert_eq!(modules[0]["loaded"], true, "{:#}", modules[0]);
    assert_eq!(modules[1]["loaded"], false);
    assert!(modules[1]["error"].as_str().unwrap().contains("writable"), "{:#}", modules[1]);
    assert_eq!(modules[2]["loaded"], false);
    assert!(modules[2]["error"].is_string(), "{:#}", modules[2]);

    // A policy that names none: none stays loaded after a reload.
    let c = d.client();
    policy.write("[audit]\nenabled = false\n");
    d.sighup();
    wait_until("the modules are gone", || {
        d.status()["pkcs11"]["modules"].as_array().is_some_and(|m| m.is_empty())
    });
    // And a policy path that is not absolute is a problem, with its line.
    let problems = c.policy_check("[pkcs11]\nmodules = [\"libsofthsm2.so\"]\n").unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, 2);
}

#[test]
fn a_policy_that_distrusts_every_anchor_is_reported() {
    let pki = Pki::new();
    let text = format!("[trust]\ndistrusted = [\"{}\"]\n", pki.root.cert.sha256_hex());
    let policy = PolicyFile::new(&text);
    let d = Daemon::start(&policy);
    let c = d.client();
    c.cert_import(&pki.root.cert.pem(), Some("root"), TRUST_CA_TLS_SERVER).unwrap();
    // `psm policy check` explains it, with the line ...
    let problems = c.policy_check(&text).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, 2);
    assert!(problems[0].1.contains("every trust anchor psm knows (1)"), "{problems:?}");
    assert!(c.policy_check("[audit]\nenabled = true\n").unwrap().is_empty());
    // ... and psmd, which runs it (the administrator may mean it), says so
    // in its log and Status.
    d.sighup();
    wait_until("Status warns", || {
        d.status()["policy_warnings"][0].as_str().is_some_and(|w| w.contains("every trust anchor"))
    });
}
