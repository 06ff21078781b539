//! `psm`: see and manage the Personal Security Manager from a shell — the
//! daemon's status and sessions, certificates and trust, keys, the soft
//! token. A thin client of libpsm's Rust API: psmd does the work.
//!
//! Exit codes: 0 success; 1 the operation failed (psm said why); 2 usage;
//! 3 psmd could not be reached or started; 4 `cert verify` found the
//! certificate not valid.

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use psm::proto::{
    CERTS_CA, CERTS_PEOPLE, CERTS_SERVERS, CERTS_USER, CertInfo, CertUsage, KeyKind, TRUST_CA_CODE,
    TRUST_CA_EMAIL, TRUST_CA_TLS_CLIENT, TRUST_CA_TLS_SERVER, TRUST_DISTRUSTED, TRUST_PEER_EMAIL,
    TRUST_PEER_TLS,
};
use psm::{Client, Code, ConnectFlags, Error};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// See and manage the Personal Security Manager: psmd's status and
/// sessions, certificates and trust, keys and the soft token.
///
/// Exit status: 0 success, 1 the operation failed, 2 usage error, 3 psmd
/// could not be reached or started, 4 a certificate verified as not valid.
#[derive(Parser)]
#[command(name = "psm", version, about, long_about)]
struct Cli {
    /// psmd's control socket (default: $PSM_SOCKET, else
    /// $XDG_RUNTIME_DIR/psm/control, else /tmp/psm-$UID/control).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Machine-readable output (JSON) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Do not start psmd when it is not running.
    #[arg(long, global = true)]
    no_spawn: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// psmd's status: version, pid, uptime, counters, token, sessions, channels.
    Status,
    /// The applications connected to psmd.
    Sessions,
    /// Certificates in the store.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Private keys in the soft token.
    #[command(subcommand)]
    Key(KeyCmd),
    /// The soft token and its password.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Starting and stopping psmd.
    #[command(subcommand)]
    Daemon(DaemonCmd),
    /// Server certificates the user accepted despite errors ("always").
    #[command(subcommand)]
    Override(OverrideCmd),
    /// The system security policy (/etc/psm/policy.toml) and your own
    /// config (~/.config/psm/config.toml).
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Make psmd read the policy and your config again (as SIGHUP does); a
    /// broken file is refused and what was read before stays (exit 1).
    Reload,
    /// A shell completion script on standard output.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// This manual page (roff) on standard output.
    #[command(hide = true)]
    Man,
}

#[derive(Subcommand)]
enum CertCmd {
    /// List certificates (all, or those of the given kinds).
    List {
        #[arg(long, value_enum)]
        kind: Vec<Kind>,
    },
    /// Everything about one certificate (nickname, e-mail address or sha256:HEX).
    Show { name: String },
    /// Import certificates from a PEM, DER or PKCS#7 file, or a PKCS#12
    /// file with its key (--p12; its password from --password-fd or the terminal).
    Import {
        file: PathBuf,
        #[arg(long)]
        nickname: Option<String>,
        /// Trust for the (first) certificate, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',')]
        trust: Vec<Trust>,
        #[arg(long)]
        p12: bool,
        #[arg(long, value_name = "FD")]
        password_fd: Option<i32>,
    },
    /// Write a certificate (PEM by default, --der), or with --p12 the
    /// certificate and its key as PKCS#12, to FILE or standard output.
    Export {
        name: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long)]
        der: bool,
        #[arg(long)]
        p12: bool,
        #[arg(long, value_name = "FD")]
        password_fd: Option<i32>,
    },
    /// Change a certificate's trust: --set and --clear, comma-separated.
    Trust {
        name: String,
        #[arg(long, value_enum, value_delimiter = ',')]
        set: Vec<Trust>,
        #[arg(long, value_enum, value_delimiter = ',')]
        clear: Vec<Trust>,
    },
    /// Delete a certificate (and its private key with --with-key).
    Delete {
        name: String,
        #[arg(long)]
        with_key: bool,
    },
    /// Verify a certificate (in the store, or a file) for a usage and,
    /// optionally, a name (host name, IP address or e-mail address).
    Verify {
        /// Nickname, e-mail address, sha256:HEX, or a PEM/DER file.
        cert: String,
        #[arg(long, value_enum, default_value = "tls-server")]
        usage: UsageArg,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Generate a key in the soft token and write a certificate request
    /// (PKCS#10, PEM) for it, to FILE or standard output.
    Gen {
        #[arg(long = "type", value_enum, default_value = "p256")]
        kind: KeyArg,
        /// Subject, e.g. "CN=Alice,O=Example".
        #[arg(long)]
        subject: String,
        /// Subject alternative names: dns:NAME, ip:ADDRESS, email:ADDRESS.
        #[arg(long)]
        san: Vec<String>,
        #[arg(long)]
        nickname: Option<String>,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Write a new certificate request (PKCS#10, PEM) for the key of a
    /// stored certificate (to renew it, or to have another CA certify the
    /// key), to FILE or standard output.
    Csr {
        /// The certificate: nickname, e-mail address or sha256:<hex>.
        cert: String,
        /// Subject, e.g. "CN=Alice,O=Example".
        #[arg(long)]
        subject: String,
        /// Subject alternative names: dns:NAME, ip:ADDRESS, email:ADDRESS.
        #[arg(long)]
        san: Vec<String>,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Whether the token has a password, and how many sessions are logged in.
    Status,
    /// The PKCS#11 modules the policy names (loaded, or why not), then
    /// psm's soft token and every token in their slots: label,
    /// manufacturer, model, serial, module, slot, flags and the URI that
    /// names it.
    List,
    /// Check the soft token's password (a login lasts as long as a
    /// connection: each application logs in for itself), or, with
    /// --token URI, log in to a PKCS#11 token with its PIN (it stays logged
    /// in for every application until logout, the policy's idle timeout or
    /// its removal).
    Login {
        #[arg(long, value_name = "FD")]
        password_fd: Option<i32>,
        /// A token's PKCS#11 URI, as `psm token list` shows it.
        #[arg(long, value_name = "URI")]
        token: Option<String>,
    },
    /// Log this connection out of the soft token, or log a PKCS#11 token out.
    Logout {
        #[arg(long, value_name = "URI")]
        token: Option<String>,
    },
    /// Change the token password (old, then new, from --password-fd one per
    /// line, or the terminal); an empty new password removes it.
    Passwd {
        #[arg(long, value_name = "FD")]
        password_fd: Option<i32>,
    },
}

#[derive(Subcommand)]
enum OverrideCmd {
    /// Every stored override: host, port, certificate, accepted errors.
    List,
    /// Forget the overrides for HOST:PORT.
    Delete {
        #[arg(value_name = "HOST:PORT")]
        target: String,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// The policy in force: its file, hash, every setting, the locked ones,
    /// and what became of your config.
    Show,
    /// Check a policy file, or with --user a user config; every problem
    /// with its line (exit 1 if any).
    Check {
        /// FILE is a user config (config.toml), which may hold only the
        /// settings users may set.
        #[arg(long)]
        user: bool,
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum DaemonCmd {
    /// Start psmd if it is not running; print its pid.
    Start,
    /// Stop psmd (it tells every application first).
    Stop,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    User,
    Ca,
    People,
    Servers,
}

#[derive(Clone, Copy, ValueEnum)]
enum Trust {
    CaTlsServer,
    CaTlsClient,
    CaEmail,
    CaCode,
    PeerTls,
    PeerEmail,
    Distrusted,
}

#[derive(Clone, Copy, ValueEnum)]
enum UsageArg {
    TlsServer,
    TlsClient,
    EmailSigner,
    EmailRecipient,
    CodeSigning,
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyArg {
    P256,
    P384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

const TRUST_NAMES: [(u32, &str); 7] = [
    (TRUST_CA_TLS_SERVER, "ca-tls-server"),
    (TRUST_CA_TLS_CLIENT, "ca-tls-client"),
    (TRUST_CA_EMAIL, "ca-email"),
    (TRUST_CA_CODE, "ca-code"),
    (TRUST_PEER_TLS, "peer-tls"),
    (TRUST_PEER_EMAIL, "peer-email"),
    (TRUST_DISTRUSTED, "distrusted"),
];

fn trust_bits(t: &[Trust]) -> u32 {
    t.iter()
        .map(|t| match t {
            Trust::CaTlsServer => TRUST_CA_TLS_SERVER,
            Trust::CaTlsClient => TRUST_CA_TLS_CLIENT,
            Trust::CaEmail => TRUST_CA_EMAIL,
            Trust::CaCode => TRUST_CA_CODE,
            Trust::PeerTls => TRUST_PEER_TLS,
            Trust::PeerEmail => TRUST_PEER_EMAIL,
            Trust::Distrusted => TRUST_DISTRUSTED,
        })
        .fold(0, |a, b| a | b)
}

fn trust_words(bits: u32) -> String {
    let words: Vec<&str> = TRUST_NAMES.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect();
    if words.is_empty() { "-".into() } else { words.join(",") }
}

/// A failure and the exit status it gives.
struct Failure {
    status: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match e.code {
            Code::PSM_ERR_DISCONNECTED | Code::PSM_ERR_DAEMON_START => 3,
            _ => 1,
        };
        Failure { status, message: format!("{}: {}", e.code.describe(), e.message) }
    }
}

fn fail(message: impl Into<String>) -> Failure {
    Failure { status: 1, message: message.into() }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("psm: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}

fn connect(cli: &Cli) -> Result<Client, Failure> {
    let flags = ConnectFlags { no_spawn: cli.no_spawn, no_dialogs: true };
    let client = match &cli.socket {
        Some(p) => Client::connect_to(p, "psm", flags),
        None => Client::connect("psm", flags),
    };
    client.map_err(|e| Failure { status: 3, message: format!("cannot reach psmd: {}", e.message) })
}

fn run(cli: Cli) -> Outcome {
    match &cli.command {
        Cmd::Completion { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "psm", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(|e| fail(format!("writing the manual page: {e}"))),
        Cmd::Status => status(&cli),
        Cmd::Sessions => sessions(&cli),
        Cmd::Cert(c) => cert(&cli, c),
        Cmd::Key(k) => key(&cli, k),
        Cmd::Token(t) => token(&cli, t),
        Cmd::Daemon(d) => daemon(&cli, d),
        Cmd::Policy(p) => policy(&cli, p),
        Cmd::Override(o) => overrides(&cli, o),
        Cmd::Reload => {
            let c = connect(&cli)?;
            c.policy_reload()?;
            println!("psmd read the policy again");
            // A broken user config does not fail the reload (it never stops
            // psmd); it is the user who runs this and must hear of it.
            let user = &status_value(&c)?["policy"]["user_config"];
            let path = user["path"].as_str().unwrap_or("your config");
            let problems = user["problems"].as_array().cloned().unwrap_or_default();
            for p in &problems {
                eprintln!("psm: {path}: {}", p.as_str().unwrap_or("?"));
            }
            for note in user["ignored"].as_array().into_iter().flatten() {
                eprintln!("psm: {path}: {}", note.as_str().unwrap_or("?"));
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(fail(format!("{path} is not used; what was read before stays")))
            }
        }
    }
}

fn status_value(c: &Client) -> Result<serde_json::Value, Failure> {
    let json = c.status_json()?;
    serde_json::from_str(&json).map_err(|e| fail(format!("psmd's status is not JSON: {e}")))
}

fn status(cli: &Cli) -> Outcome {
    let c = connect(cli)?;
    let s = status_value(&c)?;
    if cli.json {
        println!("{s:#}");
        return Ok(());
    }
    let v =
        |k: &str| s.get(k).map_or_else(|| "?".to_string(), |v| v.to_string().trim_matches('"').to_string());
    println!("psmd {} (pid {}), up {} s", v("version"), v("pid"), v("uptime_secs"));
    println!("sessions: {}   channels: {}   workers: {}", v("sessions"), v("channels"), v("workers"));
    println!("requests: {} served, {} failed", v("requests_served"), v("requests_failed"));
    let token = &s["token"];
    println!(
        "token: {}, {} session(s) logged in",
        if token["has_password"].as_bool() == Some(true) {
            "password set"
        } else {
            "no password (always open)"
        },
        token["logged_in_sessions"]
    );
    Ok(())
}

fn sessions(cli: &Cli) -> Outcome {
    let c = connect(cli)?;
    let s = status_value(&c)?;
    let list = s["session_list"].as_array().cloned().unwrap_or_default();
    if cli.json {
        println!("{:#}", serde_json::Value::Array(list));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|x| {
            let f = |k: &str| match &x[k] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".into(),
                other => other.to_string(),
            };
            let me = if x["id"].as_u64() == Some(c.session_id()) { " (this)" } else { "" };
            vec![f("id") + me, f("app"), f("pid"), f("exe"), f("channels"), f("connected_secs")]
        })
        .collect();
    table(&["SESSION", "APPLICATION", "PID", "EXECUTABLE", "CHANNELS", "CONNECTED (s)"], &rows);
    Ok(())
}

/// Prints rows under headers, columns padded to fit.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

fn cert_json(c: &CertInfo) -> serde_json::Value {
    serde_json::json!({
        "nickname": c.nickname, "subject": c.subject, "issuer": c.issuer, "serial": c.serial_hex,
        "sha256": c.sha256_hex, "sha1": c.sha1_hex, "emails": c.emails, "dns_names": c.dns_names,
        "ip_addresses": c.ip_addresses, "not_before": c.not_before, "not_after": c.not_after,
        "is_ca": c.is_ca, "key_usage": c.key_usage, "ext_key_usage": c.ext_key_usage,
        "has_private_key": c.has_private_key, "trust": trust_words(c.trust), "builtin": c.builtin,
    })
}

fn date(unix: i64) -> String {
    psm::utc_date(unix)
}

fn read_file(p: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(p).map_err(|e| fail(format!("reading {}: {e}", p.display())))
}

fn write_out(output: &Option<PathBuf>, data: &[u8], private: bool) -> Outcome {
    match output {
        Some(p) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mode = if private { 0o600 } else { 0o644 };
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(p)
                .map_err(|e| fail(format!("writing {}: {e}", p.display())))?;
            f.write_all(data).map_err(|e| fail(format!("writing {}: {e}", p.display())))
        }
        None => std::io::stdout().write_all(data).map_err(|e| fail(format!("writing: {e}"))),
    }
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

/// A password: one line from descriptor `fd`, else typed at the terminal
/// without echo. Never taken from the command line.
fn password(fd: Option<i32>, prompt: &str, lines: &mut Option<Vec<String>>) -> Result<String, Failure> {
    if let Some(fd) = fd {
        if lines.is_none() {
            // SAFETY: the caller's descriptor, read and left open (ManuallyDrop).
            let mut f = std::mem::ManuallyDrop::new(unsafe {
                <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
            });
            let mut text = String::new();
            f.read_to_string(&mut text)
                .map_err(|e| fail(format!("reading the password from fd {fd}: {e}")))?;
            *lines = Some(text.lines().rev().map(str::to_string).collect());
        }
        return lines
            .as_mut()
            .and_then(Vec::pop)
            .ok_or_else(|| fail(format!("fd {fd} gave fewer passwords than needed")));
    }
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| fail("no terminal to ask for the password on: use --password-fd"))?;
    let old = tcgetattr(&tty).map_err(|e| fail(format!("terminal: {e}")))?;
    let mut quiet = old.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    let mut w = &tty;
    let _ = write!(w, "{prompt}: ");
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(|e| fail(format!("terminal: {e}")))?;
    let mut line = String::new();
    let read = std::io::BufRead::read_line(&mut std::io::BufReader::new(&tty), &mut line);
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &old);
    let _ = writeln!(w);
    read.map_err(|e| fail(format!("terminal: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn cert(cli: &Cli, cmd: &CertCmd) -> Outcome {
    let c = connect(cli)?;
    match cmd {
        CertCmd::List { kind } => {
            let filter = kind
                .iter()
                .map(|k| match k {
                    Kind::User => CERTS_USER,
                    Kind::Ca => CERTS_CA,
                    Kind::People => CERTS_PEOPLE,
                    Kind::Servers => CERTS_SERVERS,
                })
                .fold(0, |a, b| a | b);
            let certs = c.cert_list(filter)?;
            if cli.json {
                println!("{:#}", serde_json::Value::Array(certs.iter().map(cert_json).collect()));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = certs
                .iter()
                .map(|x| {
                    let key = if x.has_private_key { "key" } else { "" };
                    vec![
                        x.nickname.clone(),
                        trust_words(x.trust),
                        key.into(),
                        date(x.not_after)[..10].into(),
                        x.subject.clone(),
                    ]
                })
                .collect();
            table(&["NICKNAME", "TRUST", "KEY", "EXPIRES", "SUBJECT"], &rows);
            Ok(())
        }
        CertCmd::Show { name } => {
            let x = c.cert_find(name)?;
            if cli.json {
                println!("{:#}", cert_json(&x));
                return Ok(());
            }
            println!("nickname:   {}", x.nickname);
            println!("subject:    {}", x.subject);
            println!("issuer:     {}", x.issuer);
            println!("serial:     {}", x.serial_hex);
            println!("valid:      {} to {}", date(x.not_before), date(x.not_after));
            println!("sha256:     {}", x.sha256_hex);
            println!("sha1:       {}", x.sha1_hex);
            for (what, list) in [("e-mail", &x.emails), ("dns", &x.dns_names), ("ip", &x.ip_addresses)] {
                if !list.is_empty() {
                    println!("{:<12}{}", format!("{what}:"), list.join(", "));
                }
            }
            if let Some(eku) = &x.ext_key_usage {
                println!("ext. usage: {}", eku.join(", "));
            }
            println!("CA:         {}", if x.is_ca { "yes" } else { "no" });
            println!("trust:      {}", trust_words(x.trust));
            println!("key:        {}", if x.has_private_key { "yes, in the soft token" } else { "no" });
            if x.builtin {
                println!("built in:   yes (a system anchor: may be distrusted, not deleted)");
            }
            Ok(())
        }
        CertCmd::Import { file, nickname, trust, p12, password_fd } => {
            let data = read_file(file)?;
            let certs = if *p12 {
                let pw = password(*password_fd, "PKCS#12 password", &mut None)?;
                c.pkcs12_import(&data, Some(&pw))?
            } else {
                c.cert_import(&data, nickname.as_deref(), trust_bits(trust))?
            };
            for x in &certs {
                let key = if x.has_private_key { " with its private key" } else { "" };
                println!("imported \"{}\" (sha256:{}){key}", x.nickname, x.sha256_hex);
            }
            Ok(())
        }
        CertCmd::Export { name, output, der, p12, password_fd } => {
            let x = c.cert_find(name)?;
            if *p12 {
                let pw = password(*password_fd, "password for the PKCS#12 file", &mut None)?;
                let data = c.pkcs12_export(&x.sha256_hex, Some(&pw))?;
                return write_out(output, &data, true);
            }
            let data = if *der { x.der.clone() } else { pem("CERTIFICATE", &x.der) };
            write_out(output, &data, false)
        }
        CertCmd::Trust { name, set, clear } => {
            let x = c.cert_find(name)?;
            let x = c.cert_change_trust(&x.sha256_hex, trust_bits(set), trust_bits(clear))?;
            println!("{}: {}", x.nickname, trust_words(x.trust));
            Ok(())
        }
        CertCmd::Delete { name, with_key } => {
            let x = c.cert_find(name)?;
            c.cert_delete(&x.sha256_hex, *with_key)?;
            println!("deleted \"{}\"{}", x.nickname, if *with_key { " and its private key" } else { "" });
            Ok(())
        }
        CertCmd::Verify { cert, usage, name } => {
            let path = PathBuf::from(cert);
            let der = if path.is_file() {
                let data = read_file(&path)?;
                c.cert_import_preview(&data)?
            } else {
                c.cert_find(cert)?.der
            };
            let usage = match usage {
                UsageArg::TlsServer => CertUsage::TlsServer,
                UsageArg::TlsClient => CertUsage::TlsClient,
                UsageArg::EmailSigner => CertUsage::EmailSigner,
                UsageArg::EmailRecipient => CertUsage::EmailRecipient,
                UsageArg::CodeSigning => CertUsage::CodeSigning,
            };
            let v = c.cert_verify(&der, usage, name.as_deref(), 0)?;
            if cli.json {
                println!(
                    "{:#}",
                    serde_json::json!({
                        "status": format!("{:?}", v.status), "valid": v.status == Code::PSM_OK,
                        "detail": v.detail, "chain": v.chain.iter().map(cert_json).collect::<Vec<_>>(),
                    })
                );
            } else {
                println!("{}: {}", if v.status == Code::PSM_OK { "valid" } else { "NOT VALID" }, v.detail);
                for (i, x) in v.chain.iter().enumerate() {
                    println!("  {i}: {}", x.subject);
                }
            }
            if v.status == Code::PSM_OK {
                Ok(())
            } else {
                Err(Failure { status: 4, message: v.status.describe().into() })
            }
        }
    }
}

/// The first certificate of a PEM or DER file, to verify without importing.
trait Preview {
    fn cert_import_preview(&self, data: &[u8]) -> Result<Vec<u8>, Failure>;
}

impl Preview for Client {
    fn cert_import_preview(&self, data: &[u8]) -> Result<Vec<u8>, Failure> {
        let text = String::from_utf8_lossy(data);
        if let Some(start) = text.find("-----BEGIN CERTIFICATE-----") {
            let body: String = text[start + 27..]
                .split("-----END")
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            return decode_b64(&body).ok_or_else(|| fail("the PEM certificate's base64 is damaged"));
        }
        if data.first() == Some(&0x30) {
            return Ok(data.to_vec());
        }
        Err(fail("not a PEM or DER certificate"))
    }
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in bytes {
        acc = (acc << 6) | u32::from(val(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn key(cli: &Cli, cmd: &KeyCmd) -> Outcome {
    let c = connect(cli)?;
    match cmd {
        KeyCmd::Gen { kind, subject, san, nickname, output } => {
            let (kind, name) = match kind {
                KeyArg::P256 => (KeyKind::EcP256, "P-256"),
                KeyArg::P384 => (KeyKind::EcP384, "P-384"),
                KeyArg::Ed25519 => (KeyKind::Ed25519, "Ed25519"),
                KeyArg::Rsa2048 => (KeyKind::Rsa2048, "RSA-2048"),
                KeyArg::Rsa3072 => (KeyKind::Rsa3072, "RSA-3072"),
                KeyArg::Rsa4096 => (KeyKind::Rsa4096, "RSA-4096"),
            };
            eprint!("psm: generating a {name} key in the soft token...");
            let sans: Vec<&str> = san.iter().map(String::as_str).collect();
            let started = std::time::Instant::now();
            let csr = c.key_generate(kind, subject, nickname.as_deref(), &sans);
            eprintln!(" {:.1} s", started.elapsed().as_secs_f64());
            let csr = csr?;
            write_out(output, &pem("CERTIFICATE REQUEST", &csr), false)
        }
        KeyCmd::Csr { cert, subject, san, output } => {
            let found = c.cert_find(cert)?;
            let sans: Vec<&str> = san.iter().map(String::as_str).collect();
            let csr = c.key_csr(&found.sha256_hex, subject, &sans)?;
            write_out(output, &pem("CERTIFICATE REQUEST", &csr), false)
        }
    }
}

fn token(cli: &Cli, cmd: &TokenCmd) -> Outcome {
    let c = connect(cli)?;
    match cmd {
        TokenCmd::Status => {
            let s = status_value(&c)?;
            if cli.json {
                println!("{:#}", s["token"]);
            } else {
                let has = s["token"]["has_password"].as_bool() == Some(true);
                println!("password: {}", if has { "set" } else { "none (the token is always open)" });
                println!("logged in: {} session(s)", s["token"]["logged_in_sessions"]);
            }
            Ok(())
        }
        TokenCmd::List => {
            let tokens = c.token_list()?;
            // The modules the policy names, loaded or why not (Status).
            let modules = status_value(&c)?["pkcs11"]["modules"].clone();
            if cli.json {
                let tokens = serde_json::to_value(&tokens).map_err(|e| fail(e.to_string()))?;
                println!("{:#}", serde_json::json!({ "modules": modules, "tokens": tokens }));
                return Ok(());
            }
            for m in modules.as_array().into_iter().flatten() {
                let path = m["path"].as_str().unwrap_or("?");
                match (m["error"].as_str(), m["hung"]["call"].as_str()) {
                    (Some(e), _) => println!("module {path}: not loaded: {e}"),
                    (None, Some(call)) => {
                        println!("module {path}: hung in {call} for {}s", m["hung"]["seconds"])
                    }
                    (None, None) => println!("module {path}: loaded"),
                }
            }
            for t in &tokens {
                println!("{}", if t.label.is_empty() { "(no label)" } else { &t.label });
                println!("  manufacturer: {}", t.manufacturer);
                println!("  model:        {}", t.model);
                if !t.serial.is_empty() {
                    println!("  serial:       {}", t.serial);
                }
                if !t.module.is_empty() {
                    println!("  module:       {} ({}), slot {}", t.module, t.module_description, t.slot);
                }
                println!("  flags:        {}", token_flags(t.flags));
                println!("  uri:          {}", t.uri);
            }
            Ok(())
        }
        TokenCmd::Login { password_fd, token: None } => {
            let pw = password(*password_fd, "token password", &mut None)?;
            c.token_login(Some(&pw))?;
            println!("the password is right");
            Ok(())
        }
        TokenCmd::Login { password_fd, token: Some(uri) } => {
            let pin_pad =
                c.token_list()?.iter().any(|t| t.uri == *uri && t.flags & psm::proto::TOKEN_PIN_PAD != 0);
            if pin_pad {
                // The reader takes the PIN; psm never sees it.
                println!("type the PIN on the reader's PIN pad");
                c.token_login_to(uri, None)?;
            } else {
                let pin = password(*password_fd, "token PIN", &mut None)?;
                c.token_login_to(uri, Some(&pin))?;
            }
            println!("logged in");
            Ok(())
        }
        TokenCmd::Logout { token: None } => {
            c.token_logout()?;
            Ok(())
        }
        TokenCmd::Logout { token: Some(uri) } => {
            c.token_logout_from(uri)?;
            Ok(())
        }
        TokenCmd::Passwd { password_fd } => {
            let mut lines = None;
            let old = password(*password_fd, "current token password (empty if none)", &mut lines)?;
            let new = password(*password_fd, "new token password (empty to remove it)", &mut lines)?;
            if password_fd.is_none() {
                let again = password(None, "new token password again", &mut lines)?;
                if again != new {
                    return Err(fail("the two new passwords differ; nothing changed"));
                }
            }
            c.token_set_password(Some(&old), Some(&new))?;
            println!(
                "{}",
                if new.is_empty() {
                    "the token password is removed"
                } else {
                    "the token password is changed"
                }
            );
            Ok(())
        }
    }
}

/// `TOKEN_*` bits in words.
fn token_flags(flags: u32) -> String {
    use psm::proto::*;
    let words: Vec<&str> = [
        (TOKEN_SOFT, "soft"),
        (TOKEN_INITIALIZED, "initialized"),
        (TOKEN_LOGIN_REQUIRED, "login-required"),
        (TOKEN_LOGGED_IN, "logged-in"),
        (TOKEN_PIN_PAD, "pin-pad"),
        (TOKEN_WRITE_PROTECTED, "write-protected"),
        (TOKEN_PIN_COUNT_LOW, "pin-count-low"),
        (TOKEN_PIN_FINAL_TRY, "pin-final-try"),
        (TOKEN_PIN_LOCKED, "pin-locked"),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, w)| w)
    .collect();
    if words.is_empty() { "blank (not initialized)".into() } else { words.join(" ") }
}

fn daemon(cli: &Cli, cmd: &DaemonCmd) -> Outcome {
    match cmd {
        DaemonCmd::Start => {
            let c = connect(cli)?;
            let s = status_value(&c)?;
            println!("psmd {} is running, pid {}", s["version"].as_str().unwrap_or("?"), s["pid"]);
            Ok(())
        }
        DaemonCmd::Stop => {
            let flags = ConnectFlags { no_spawn: true, no_dialogs: true };
            let c = match &cli.socket {
                Some(p) => Client::connect_to(p, "psm", flags),
                None => Client::connect("psm", flags),
            };
            let Ok(c) = c else {
                println!("psmd is not running");
                return Ok(());
            };
            let pid = status_value(&c)?["pid"].as_i64().ok_or_else(|| fail("psmd did not say its pid"))?;
            drop(c);
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
                .map_err(|e| fail(format!("signalling psmd (pid {pid}): {e}")))?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while nix::sys::signal::kill(pid, None).is_ok() && !zombie(pid) {
                if std::time::Instant::now() > deadline {
                    return Err(fail(format!("psmd (pid {pid}) did not stop within 10 s")));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            println!("psmd stopped");
            Ok(())
        }
    }
}

/// An exited process not yet reaped by its parent counts as gone.
fn zombie(pid: nix::unistd::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

fn policy(cli: &Cli, cmd: &PolicyCmd) -> Outcome {
    let c = connect(cli)?;
    match cmd {
        PolicyCmd::Show => {
            let s = status_value(&c)?;
            let p = &s["policy"];
            if cli.json {
                println!("{p:#}");
                return Ok(());
            }
            match p["source"].as_str() {
                Some(src) => println!("policy: {src} (sha256 {})", p["sha256"].as_str().unwrap_or("?")),
                None => println!("policy: none (the defaults below)"),
            }
            let user = &p["user_config"];
            let path = user["path"].as_str().unwrap_or("(no home directory)");
            match user["source"].as_str() {
                Some(src) => {
                    println!("your config: {src} (sha256 {})", user["sha256"].as_str().unwrap_or("?"))
                }
                None => println!("your config: none ({path})"),
            }
            let listed = |key: &str| -> Vec<String> {
                user[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            };
            let (applied, locked) = (listed("applied"), p["locked"]["settings"].clone());
            for section in ["tls", "overrides", "pkcs12", "token", "applications", "audit"] {
                if let Some(map) = p[section].as_object() {
                    for (k, v) in map {
                        let v = if v.is_null() { "(any)".to_string() } else { v.to_string() };
                        let name = format!("{section}.{k}");
                        let mark = if applied.contains(&name) {
                            "  (yours)"
                        } else if locked.as_array().is_some_and(|l| l.iter().any(|x| x == &name)) {
                            "  (locked)"
                        } else {
                            ""
                        };
                        println!("  {name} = {v}{mark}");
                    }
                }
            }
            for note in listed("ignored") {
                println!("ignored: {note}");
            }
            let problems = listed("problems");
            if !problems.is_empty() {
                println!("your config is not used, what was read before stays:");
                for problem in problems {
                    println!("  {path}: {problem}");
                }
            }
            Ok(())
        }
        PolicyCmd::Check { user, file } => {
            let data = read_file(file)?;
            let text =
                String::from_utf8(data).map_err(|_| fail(format!("{} is not UTF-8 text", file.display())))?;
            let problems = if *user { c.config_check(&text)? } else { c.policy_check(&text)? };
            if cli.json {
                let list: Vec<serde_json::Value> =
                    problems.iter().map(|(l, m)| serde_json::json!({"line": l, "message": m})).collect();
                println!("{:#}", serde_json::Value::Array(list));
            } else {
                for (line, message) in &problems {
                    println!("{}:{line}: {message}", file.display());
                }
            }
            if problems.is_empty() {
                if !cli.json {
                    println!("{}: good", file.display());
                }
                Ok(())
            } else {
                Err(fail(format!("{} problem(s) in {}", problems.len(), file.display())))
            }
        }
    }
}

fn overrides(cli: &Cli, cmd: &OverrideCmd) -> Outcome {
    let c = connect(cli)?;
    match cmd {
        OverrideCmd::List => {
            let json = c.override_list_json()?;
            let list: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| fail(format!("psmd's override list is not JSON: {e}")))?;
            if cli.json {
                println!("{list:#}");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| {
                            let errors: Vec<&str> = o["errors"]
                                .as_array()
                                .map(|e| e.iter().filter_map(|x| x.as_str()).collect())
                                .unwrap_or_default();
                            vec![
                                format!("{}:{}", o["host"].as_str().unwrap_or("?"), o["port"]),
                                errors.join(","),
                                date(o["added"].as_i64().unwrap_or(0))[..10].to_string(),
                                format!("sha256:{}", o["sha256"].as_str().unwrap_or("?")),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(&["SITE", "ACCEPTED ERRORS", "ADDED", "CERTIFICATE"], &rows);
            Ok(())
        }
        OverrideCmd::Delete { target } => {
            let (host, port) = target
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                .ok_or_else(|| Failure { status: 2, message: format!("\"{target}\" is not HOST:PORT") })?;
            c.override_delete(host, port)?;
            println!("forgot the overrides for {host}:{port}");
            Ok(())
        }
    }
}
